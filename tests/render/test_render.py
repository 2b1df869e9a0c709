"""The HTML timeline and the PNG summary, drawn from the report of a generated clip (the
real pipeline, run once) and from variants of it: every analyzer family filled in, failed /
skipped / unavailable / missing analyzers, a clip without sound, a vanished video.

The page is checked in headless Chromium, driven over the DevTools protocol: its live DOM
holds the report's items lane by lane, broken lanes say why, it asked the network for
nothing (and its CSP refused nothing), hovering shows details, and its screenshot is not
blank.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tiktok_analyzer.render import build_timeline, render_html, render_png
from tiktok_analyzer.render.assets import CSP
from tiktok_analyzer.render.keyframes import extract_keyframes, keyframe_times
from tiktok_analyzer.render.png import HEIGHT, KEYFRAME_H, MARGIN, WIDTH
from tiktok_analyzer.render.timeline import Item, pack_rows

from ..unit import upstream as up

CLI = str(Path(sys.executable).parent / "tiktok-analyzer")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HOSTILE = '<img src=x onerror="alert(1)">'


# --- the report of a real clip, and variants of it ------------------------------------------


@pytest.fixture(scope="module")
def clip(clip_factory):
    return clip_factory("sample", width=360, height=640)


@pytest.fixture(scope="module")
def report(clip, tmp_path_factory) -> dict:
    path, _truth = clip
    out = tmp_path_factory.mktemp("report") / "report.json"
    proc = subprocess.run(
        [CLI, "analyze", path, "--out", str(out), "-q"],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode in (0, 3), proc.stderr[-2000:]
    return json.loads(out.read_text())


def _ok(result: dict) -> dict:
    return {
        "status": "ok",
        "error": None,
        "elapsed_s": 0.05,
        "model": {"name": "test-fixture", "weights": "synthetic-tiny"},
        "result": result,
    }


def _not_ok(status: str, error: str) -> dict:
    return {
        "status": status,
        "error": error,
        "elapsed_s": 0.0,
        "model": {"name": "test-fixture", "weights": "none"},
        "result": None,
    }


def full(report: dict) -> dict:
    """Every lane's analyzer ok with a few items, some overlapping, some text hostile; each
    result built through its analyzer's Result model (the timeline reads them so)."""
    r = copy.deepcopy(report)
    a = r["analyzers"]
    a["text_overlay"] = _ok(
        up.texts(
            [
                up.text(f"SALE {HOSTILE}", 0.4, 3.0, "title", [0.1, 0.1, 0.9, 0.2]),
                up.text("link in bio", 2.0, 6.0, "caption", [0.1, 0.8, 0.9, 0.9]),
                up.text("\u2728", 9.0, 10.5, "decorative", [0.4, 0.4, 0.6, 0.6]),
            ]
        )
    )
    words = ["hey", "look", "at", "this", "<b>deal</b>", "it's", "half", "price", "today", "only"]
    a["speech_transcription"] = _ok(
        up.transcript(
            [(w, 0.3 + 0.4 * i, 0.6 + 0.4 * i) for i, w in enumerate(words)],
            [{"start_s": 0.3, "end_s": 4.3, "text": " ".join(words)}],
        )
    )
    a["sound_effects"] = _ok(
        up.sound_events([("whoosh", 2.4, 2.8, 0.8), ("applause", 12.0, 14.0, 0.7)], 15.0)
    )
    a["object_detection"] = _ok(
        up.objects(
            [
                up.track("person", 1, 0.0, 9.0, share=0.3, confidence=0.95),
                up.track("bottle", 2, 1.0, 4.0, share=0.05, confidence=0.7),
                up.track("cup", 3, 3.0, 12.0, share=0.04, confidence=0.6),
                up.track("phone", 4, 11.0, 15.0, share=0.1, confidence=0.8),
            ]
        )
    )
    a["eye_tracking"] = _ok(
        up.eyes(
            [(0.5 + i, 4.0 * i - 20, 2.0, i % 2 == 0) for i in range(12)],
            blinks=[1.2, 5.4, 9.9],
        )
    )
    a["composition_analysis"] = _ok(
        up.composition(
            [(0.0, 6.5, "close_up"), (6.5, 15.0, "wide")], labels=[("indoor", 0.9, "scene")]
        )
    )
    a["speech_emotion"] = _ok(
        up.emotion([(0.3, 2.0, "happy", 0.8), (2.0, 4.3, "neutral", 0.6)], dominant="happy")
    )
    a["temporal_flow"] = _ok(
        up.flow(
            15.0,
            [(i % 5) / 4 for i in range(15)],
            score=0.81,
            first_cut_s=2.5,
            first_face_s=0.0,
            first_text_s=0.4,
            first_word_s=0.3,
        )
    )
    a["video_llava"] = _ok(
        up.llava(
            f"A colourful product video {HOSTILE} with fast cuts.",
            [(0.0, 6.5, "red and blue textures")],
            hook="bold colours from the first frame",
            call_to_action="none",
        )
    )
    return r


def broken(report: dict) -> dict:
    """Each way an analyzer can be absent, and a result that cannot be read."""
    r = full(report)
    a = r["analyzers"]
    a["cut_analysis"] = _not_ok("failed", f"decoder exploded {HOSTILE}")
    a["camera_analysis"] = _not_ok("skipped", "too few frames for motion")
    a["audio_analysis"] = _not_ok(
        "unavailable", "weights missing: run tiktok-analyzer weights pull"
    )
    a.pop("scene_segmentation", None)
    a["visual_effects"] = _ok({"effects": 5})
    a[f"evil{HOSTILE}"] = _not_ok("failed", "an analyzer the renderer has never heard of")
    r["video"]["path"] = "/nonexistent/clip.mp4"
    return r


AUDIO_ANALYZERS = (
    "audio_analysis",
    "audio_environment",
    "speech_transcription",
    "speech_emotion",
    "speech_rate",
    "sound_effects",
)


PULL = "run `tiktok-analyzer weights pull {}/ast-audioset`"


def _partial(result: dict, name: str, fields: list[str]) -> dict:
    """A sound analyzer's answer without its model's weights: measured, with null fields."""
    missing = [
        {
            "field": f,
            "reason": f"real weights of {name}/ast-audioset are not in /w {HOSTILE}",
            "fix": PULL.format(name),
        }
        for f in fields
    ]
    return {
        "status": "partial",
        "error": f"without its model, {', '.join(fields)} unavailable: {PULL.format(name)}",
        "elapsed_s": 0.4,
        "model": {"name": "ast-audioset", "weights": "none"},
        "result": result,
        "unavailable_fields": missing,
    }


def partial(report: dict) -> dict:
    """audio_environment, sound_effects and speech_emotion without their weights: what
    they measured (shares, SNR, reverberation; events and their shapes; voiced windows),
    the labels null."""
    r = full(report)
    a = r["analyzers"]
    a["audio_environment"] = _partial(
        {
            "scene": None,
            "audioset_top": None,
            "music_share": 0.33,
            "speech_share": 0.6,
            "noise_share": 0.07,
            "silence_share": 0.0,
            "shares_source": "dsp",
            "snr_db": 23.4,
            "signal_dbfs": -21.0,
            "noise_floor_dbfs": -44.4,
            "reverberation": {"rt60_s": 0.21, "label": "dry", "decays": 4},
            "windows": [],
        },
        "audio_environment",
        ["scene", "audioset_top"],
    )
    a["sound_effects"] = _partial(
        {
            "events": [
                {
                    "label": None,
                    "start_s": 1.0,
                    "end_s": 1.1,
                    "confidence": None,
                    "shape": "impulsive",
                    "stand_out_db": 20.0,
                    "on_cut": False,
                    "cut_offset_s": None,
                },
                {
                    "label": None,
                    "start_s": 3.0,
                    "end_s": 3.6,
                    "confidence": None,
                    "shape": "tonal",
                    "stand_out_db": 15.0,
                    "on_cut": True,
                    "cut_offset_s": 0.0,
                },
            ],
            "on_cut_share": 0.5,
            "cuts_known": True,
            "beat_suppressed": 0,
            "speech_suppressed": 0,
            "events_per_minute": 8.0,
        },
        "sound_effects",
        ["events[].label", "events[].confidence"],
    )
    # speech_emotion without wav2vec2: the voiced windows, no emotion.
    windows = [(0.3, 2.0), (2.0, 4.3)]
    none = dict.fromkeys(("emotion", "confidence", "scores", "valence", "arousal"))
    a["speech_emotion"] = _partial(
        {
            "segments": [{"start_s": s, "end_s": e, **none} for s, e in windows],
            "dominant": None,
            "distribution": None,
            "valence": None,
            "arousal": None,
            "arc": [
                {"time_s": (s + e) / 2, "valence": None, "arousal": None, "emotion": None}
                for s, e in windows
            ],
            "speech_s": 4.0,
            "source": "vad",
            "labels": None,
        },
        "speech_emotion",
        ["segments[].emotion", "dominant", "labels"],
    )
    return r


def no_audio(report: dict) -> dict:
    r = full(report)
    r["video"]["has_audio"] = False
    for name in AUDIO_ANALYZERS:
        r["analyzers"][name] = _not_ok("skipped", "the clip has no audio")
    return r


def no_flow(report: dict) -> dict:
    """The real report as a server without temporal_flow would give it."""
    r = copy.deepcopy(report)
    r["analyzers"]["temporal_flow"] = _not_ok("unavailable", "not loaded on this server")
    return r


VARIANTS = {
    "real": lambda r: r,
    "full": full,
    "broken": broken,
    "partial": partial,
    "no_audio": no_audio,
    "no_flow": no_flow,
}


# --- reading the page back from Chromium --------------------------------------------------------


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node] = []
        self.text_parts: list[str] = []

    def iter(self):
        yield self
        for c in self.children:
            yield from c.iter()

    def find_all(self, **attrs: str) -> list[Node]:
        return [
            n
            for n in self.iter()
            if all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    @property
    def text(self) -> str:
        return "".join(self.text_parts) + "".join(c.text for c in self.children)


class _DomBuilder(HTMLParser):
    VOID = {
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "source",
        "track",
        "wbr",
    }

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs}, self.cur)
        self.cur.children.append(node)
        if tag not in self.VOID:
            self.cur = node

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.cur))

    def handle_endtag(self, tag):
        node = self.cur
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.cur = node.parent

    def handle_data(self, data):
        self.cur.text_parts.append(data)


def parse(markup: str) -> Node:
    builder = _DomBuilder()
    builder.feed(markup)
    return builder.root


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe
    (``--remote-debugging-pipe``: JSON messages ending in NUL on fds 3 and 4), so no
    websocket client and no port are needed. Records what each page asks of the network."""

    # Runs in the page before its own script: collects what its CSP refused to load, so an
    # attempt to fetch shows even though the browser blocked it.
    WATCH_CSP = (
        "window.__refused = []; document.addEventListener('securitypolicyviolation',"
        " e => window.__refused.push(e.blockedURI));"
    )

    def __init__(self, profile: Path) -> None:
        self.r_in, self.w_in = os.pipe()
        self.r_out, self.w_out = os.pipe()

        def child_fds() -> None:  # the protocol's fixed fds; dup first: pipes are CLOEXEC
            a, b = os.dup(self.r_in), os.dup(self.w_out)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--remote-debugging-pipe",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-extensions",
                "--mute-audio",
                f"--user-data-dir={profile}",
                # Nothing may resolve: a page that needed the network would render incomplete.
                "--host-resolver-rules=MAP * ~NOTFOUND",
                "about:blank",
            ],
            preexec_fn=child_fds,
            close_fds=False,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(self.r_in)
        os.close(self.w_out)
        self.buf, self.next_id, self.events = b"", 0, []
        try:
            self._attach()
        except BaseException:
            self.close()
            raise

    def _attach(self) -> None:
        targets = self.send("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.send(
            "Target.attachToTarget", {"targetId": page["targetId"], "flatten": True}
        )["sessionId"]
        for method in ("Network.enable", "Page.enable", "Runtime.enable"):
            self.send(method, session=True)
        self.send("Page.addScriptToEvaluateOnNewDocument", {"source": self.WATCH_CSP}, session=True)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1400, "height": 2000, "deviceScaleFactor": 1, "mobile": False},
            session=True,
        )

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.r_out], [], [], left)[0]:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self.r_out, 1 << 16)
            if not chunk:
                raise EOFError("chromium exited")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        return json.loads(raw)

    def send(
        self, method: str, params: dict | None = None, session: bool = False, timeout: float = 60
    ) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        os.write(self.w_in, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            m = self._read(deadline)
            if m.get("id") == self.next_id:
                assert "error" not in m, (method, m["error"])
                return m["result"]
            self.events.append(m)

    def _wait(self, method: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            event = self._read(deadline)
            self.events.append(event)
            if event.get("method") == "Page.javascriptDialogOpening":
                # An alert() would hold the page (and its load event) forever.
                self.send("Page.handleJavaScriptDialog", {"accept": True}, session=True)

    def open(self, page: Path) -> Visit:
        self.events = []
        self.send("Page.navigate", {"url": page.resolve().as_uri()}, session=True)
        self._wait("Page.loadEventFired")
        requested = [
            e["params"]["request"]["url"]
            for e in self.events
            if e.get("method") == "Network.requestWillBeSent"
        ]
        errors = [
            e["params"]["exceptionDetails"]
            for e in self.events
            if e.get("method") == "Runtime.exceptionThrown"
        ]
        errors += [
            e["params"] for e in self.events if e.get("method") == "Page.javascriptDialogOpening"
        ]
        return Visit(
            fetched=[u for u in requested if not u.startswith(("file:", "data:"))],
            refused=self.eval("window.__refused"),
            errors=errors,
            dom=parse(self.eval("document.documentElement.outerHTML")),
        )

    def eval(self, expression: str):
        result = self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True
        )
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def hover(self, selector: str) -> str | None:
        """Move the mouse to the middle of the first ``selector``; the tooltip's text, or
        None when it is hidden."""
        x, y = self.eval(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
            " el.scrollIntoView({block: 'center'});"
            " const r = el.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        self.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y}, session=True)
        return self.eval(
            "(() => { const t = document.getElementById('tip');"
            " return t.hidden ? null : t.textContent; })()"
        )

    def screenshot(self, out: Path) -> Path:
        data = self.send("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        out.write_bytes(base64.b64decode(data))
        return out

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (OSError, EOFError, TimeoutError):
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.w_in)
        os.close(self.r_out)


@dataclass
class Visit:
    fetched: list[str]  # URLs the page asked the network for
    refused: list[str]  # URLs its CSP refused
    errors: list[dict]  # uncaught script exceptions and dialogs (alert) opened
    dom: Node


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install chromium)")
    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


# --- the page ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pages(report, browser, tmp_path_factory):
    """variant -> (report, the page as written, what Chromium made of it)."""
    work = tmp_path_factory.mktemp("pages")
    out = {}
    for name, make in VARIANTS.items():
        r = make(report)
        page = render_html(r, work / f"{name}.html")
        out[name] = (r, page.read_text(), browser.open(page))
    return out


def _result(r: dict, name: str) -> dict | None:
    entry = r["analyzers"].get(name)
    return entry["result"] if entry and entry["status"] in ("ok", "partial") else None


# (lane, analyzer, item kind, how many the report holds)
LANE_ITEMS = [
    ("shots", "cut_analysis", "cut", lambda res: len(res["cuts"])),
    ("shots", "cut_analysis", "shot", lambda res: len(res["shots"])),
    ("shots", "cut_analysis", "flash", lambda res: len(res.get("flashes", []))),
    ("scenes", "scene_segmentation", "scene", lambda res: len(res["scenes"])),
    ("camera", "camera_analysis", "camera", lambda res: len(res["segments"])),
    ("effects", "visual_effects", "effect", lambda res: len(res["effects"])),
    ("framing", "composition_analysis", "framing", lambda res: len(res["shot_types"])),
    ("text", "text_overlay", "text", lambda res: len(res["texts"])),
    ("objects", "object_detection", "object", lambda res: len(res["objects"])),
    ("faces", "eye_tracking", "gaze", lambda res: len(res["gaze"])),
    ("words", "speech_transcription", "word", lambda res: len(res["words"])),
    ("emotion", "speech_emotion", "emotion", lambda res: len(res["segments"])),
    ("sounds", "sound_effects", "sound", lambda res: len(res["events"])),
    ("loudness", "audio_analysis", "beat", lambda res: len(res["beats_s"])),
    ("loudness", "audio_analysis", "silence", lambda res: len(res["silences"])),
]


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize(
    ("lane", "analyzer", "kind", "count"),
    LANE_ITEMS,
    ids=[f"{lane}-{kind}" for lane, _, kind, _ in LANE_ITEMS],
)
def test_lane_holds_the_reports_items(pages, variant, lane, analyzer, kind, count):
    r, _, visit = pages[variant]
    dom = visit.dom
    [el] = dom.find_all(data_lane=lane)
    items = [n for n in el.iter() if n.attrs.get("data-kind") == kind]
    entry = r["analyzers"].get(analyzer)
    if entry is None:
        assert el.attrs["data-status"] == "missing" and "missing" in el.text
        assert not items
        return
    if entry["status"] not in ("ok", "partial"):
        # The status and its reason instead of items.
        assert el.attrs["data-status"] == entry["status"]
        [status] = [n for n in el.iter() if "lane-status" in n.classes()]
        assert status.text.startswith(entry["status"]) and entry["error"] in status.text
        assert not items
        return
    try:
        expected = count(entry["result"])
    except (TypeError, KeyError):  # the variant made this result unreadable on purpose
        assert el.attrs["data-status"] == "error" and "unreadable" in el.text
        return
    # partial: what was measured is drawn as ever; the lane says what it lacks.
    assert el.attrs["data-status"] == entry["status"]
    assert len(items) == expected


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_cut_markers_sit_at_the_cuts(pages, variant):
    r, _, visit = pages[variant]
    dom = visit.dom
    markers = [n for n in dom.iter() if "cut-marker" in n.classes()]
    res = _result(r, "cut_analysis")
    cuts = res["cuts"] if res else []
    assert len(markers) == len(cuts)
    for m, c in zip(markers, cuts, strict=True):
        assert float(m.attrs["data-time"]) == pytest.approx(c["time_s"], abs=1e-3)
        left = float(re.search(r"left:([\d.]+)%", m.attrs["style"]).group(1))
        assert left == pytest.approx(100 * c["time_s"] / r["video"]["duration_s"], abs=0.01)


def test_real_report_has_cuts(report):
    # Guards the tests above against passing on an empty report.
    assert report["analyzers"]["cut_analysis"]["status"] == "ok"
    assert len(report["analyzers"]["cut_analysis"]["result"]["cuts"]) >= 5


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_analyzer_in_the_status_table(pages, variant):
    r, _, visit = pages[variant]
    dom = visit.dom
    rows = {n.attrs["data-analyzer"]: n for n in dom.iter() if "data-analyzer" in n.attrs}
    assert set(rows) == set(r["analyzers"])
    for name, entry in r["analyzers"].items():
        row = rows[name]
        assert row.attrs["data-status"] == entry["status"]
        assert f"status-{entry['status']}" in {c for n in row.iter() for c in n.classes()}
        if entry["status"] == "partial":
            # What was measured, then each model-made field marked unavailable with the fix.
            marked = {
                n.attrs["data-field"]: n.text
                for n in row.iter()
                if "unavailable-field" in n.classes()
            }
            assert list(marked) == [f["field"] for f in entry["unavailable_fields"]]
            for f in entry["unavailable_fields"]:
                assert "unavailable" in marked[f["field"]] and f["fix"] in marked[f["field"]]
        elif entry["status"] != "ok":
            assert entry["error"] in row.text


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_page_fetches_nothing(pages, variant):
    _, markup, visit = pages[variant]
    assert visit.fetched == [] and visit.refused == [] and visit.errors == []
    # Nothing in the page could fetch either: every src is inline, no href leaves the page.
    for node in visit.dom.iter():
        for attr in ("src", "href", "poster", "action", "srcset"):
            value = node.attrs.get(attr)
            assert value is None or value.startswith(("data:", "#")), (node.tag, attr, value)
    styles = "".join(n.text for n in visit.dom.iter() if n.tag == "style")
    styles += "".join(n.attrs.get("style", "") for n in visit.dom.iter())
    assert "@import" not in styles
    assert all(u.startswith("data:") for u in re.findall(r"url\(\s*['\"]?([^'\")]*)", styles))
    assert "http://" not in markup and "https://" not in markup


@pytest.mark.parametrize(
    ("csp", "seen"), [("", "fetched"), (CSP, "refused")], ids=["open", "with-our-csp"]
)
def test_network_check_can_fail(browser, tmp_path, csp, seen):
    """A page that does load things is caught: as fetches, or as refusals under our CSP,
    which also keeps an injected script from running."""
    page = tmp_path / "leaky.html"
    page.write_text(
        f'<!DOCTYPE html><meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<img src="http://example.invalid/pixel.png">'
        '<link rel="stylesheet" href="https://fonts.example.invalid/a.css">'
        f"<p>{HOSTILE}</p><script>alert(2)</script>"
    )
    visit = browser.open(page)
    urls = " ".join(getattr(visit, seen))
    assert "http://example.invalid/pixel.png" in urls
    assert "https://fonts.example.invalid/a.css" in urls
    assert len(visit.errors) == (0 if csp else 2)  # alert(1) and alert(2) ran without it


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_report_strings_are_escaped(pages, variant):
    _, markup, visit = pages[variant]
    dom = visit.dom
    assert HOSTILE not in markup
    assert not [n for n in dom.iter() if n.tag == "img" and n.attrs.get("src") == "x"]
    assert not [n for n in dom.iter() if "onerror" in n.attrs]
    if variant not in ("real", "no_flow"):  # the hostile strings arrive as text
        assert HOSTILE in dom.text


def test_keyframes_one_per_shot(pages, clip):
    _, truth = clip
    r, _, visit = pages["full"]
    dom = visit.dom
    frames = dom.find_all(data_kind="keyframe")
    shots = _result(r, "cut_analysis")["shots"]
    assert len(frames) == len(shots) == len(truth["shots"])
    for f, s in zip(frames, shots, strict=True):
        assert s["start_s"] <= float(f.attrs["data-time"]) <= s["end_s"]
        [img] = [n for n in f.iter() if n.tag == "img"]
        assert img.attrs["src"].startswith("data:image/jpeg;base64,")


def test_keyframes_show_each_shots_colour(clip):
    path, truth = clip
    shots = [(s["start_s"], s["end_s"]) for s in truth["shots"]]
    flashes = [(f["time_s"], f["time_s"] + f["frames"] / truth["fps"]) for f in truth["flashes"]]
    kf = extract_keyframes(path, shots, truth["duration_s"], height=64, avoid=flashes)
    assert not kf.note
    for k, s in zip(kf.frames, truth["shots"], strict=True):
        mean = np.asarray(k.image, dtype=np.float64).reshape(-1, 3).mean(0)
        # Textures and checkers swing around the shot's colour; a flash would be white.
        assert np.abs(mean - np.array(s["color"])).max() < 60, (k.time_s, mean, s["color"])


def test_keyframe_times_step_off_flashes():
    times, per_shot = keyframe_times([(6.5, 9.0)], 15.0, avoid=[(7.7, 7.77)], frame_s=1 / 30)
    # Off the flash by more than a frame either side, still inside the shot.
    assert per_shot and not 7.7 - 1 / 30 <= times[0][0] <= 7.77 + 1 / 30
    assert 6.5 <= times[0][0] <= 9.0
    times, per_shot = keyframe_times([], 15.0)
    assert not per_shot and 4 <= len(times) <= 12


@pytest.mark.parametrize("variant", ["broken"])
def test_missing_video_gives_a_note_not_a_crash(pages, variant):
    dom = pages[variant][2].dom
    assert not dom.find_all(data_kind="keyframe")
    [note] = [n for n in dom.iter() if "keyframes-missing" in n.classes()]
    assert "/nonexistent/clip.mp4" in note.text


def test_no_audio_clip(pages):
    r, _, visit = pages["no_audio"]
    dom = visit.dom
    facts = {n.text: n.parent.text for n in dom.iter() if n.tag == "dt"}
    assert facts["audio"].endswith("none")
    for lane in ("loudness", "words", "sounds", "emotion"):
        [el] = dom.find_all(data_lane=lane)
        assert el.attrs["data-status"] == "skipped" and "no audio" in el.text


def test_partial_results_show_what_was_measured_and_what_is_missing(pages):
    r, _, visit = pages["partial"]
    dom = visit.dom
    a = r["analyzers"]
    # The sound lane draws the measured events, named by their shape, and says why they
    # have no labels and what fixes that.
    [lane] = dom.find_all(data_lane="sounds")
    assert lane.attrs["data-status"] == "partial"
    sounds = lane.find_all(data_kind="sound")
    assert [n.text for n in sounds] == ["impulsive", "tonal"]
    assert [float(n.attrs["data-start"]) for n in sounds] == [1.0, 3.0]
    assert "unlabelled" in sounds[0].attrs["title"]
    [note] = [n for n in lane.iter() if "lane-status" in n.classes()]
    assert "events[].label" in note.text and PULL.format("sound_effects") in note.text
    # audio_environment's measures in its row and in the headline numbers.
    [row] = dom.find_all(data_analyzer="audio_environment")
    [badge] = [n for n in row.iter() if "badge" in n.classes()]
    assert badge.text == "partial" and "status-partial" in badge.classes()
    assert "SNR 23.4 dB" in row.text and "speech 60%" in row.text and "dry" in row.text
    assert a["audio_environment"]["result"]["scene"] is None
    metrics = {}
    for n in dom.iter():
        if "metric" in n.classes():
            parts = {c: k.text for k in n.iter() for c in k.classes() & {"l", "v"}}
            metrics[parts["l"]] = parts["v"]
    assert metrics["SNR"] == "23 dB"
    # The count line tells partial answers apart from ok and unavailable ones.
    [counts] = [n for n in dom.iter() if "counts" in n.classes()]
    partial_count = sum(e["status"] == "partial" for e in a.values())
    assert partial_count >= 3 and f"{partial_count} partial" in counts.text
    # The emotion lane draws the voiced windows, and says they carry no emotion.
    [lane] = dom.find_all(data_lane="emotion")
    assert lane.attrs["data-status"] == "partial"
    voiced = lane.find_all(data_kind="emotion")
    assert [float(n.attrs["data-start"]) for n in voiced] == [0.3, 2.0]
    assert all("no emotion" in n.attrs["title"] for n in voiced)
    [note] = [n for n in lane.iter() if "lane-status" in n.classes()]
    assert "segments[].emotion" in note.text and PULL.format("speech_emotion") in note.text
    # Nothing says synthetic where no weights ran: the weights column says none.
    cells = [n.text for n in row.iter() if n.tag == "td"]
    assert "none" in cells and "synthetic-tiny" not in cells


def test_pacing_falls_back_to_cut_rate(pages):
    real = pages["no_flow"][2].dom.find_all(data_lane="pacing")[0]
    full_ = pages["full"][2].dom.find_all(data_lane="pacing")[0]
    assert real.attrs["data-source"] == "cut_analysis" and real.find_all(data_kind="pacing-curve")
    assert full_.attrs["data-source"] == "temporal_flow"
    assert full_.find_all(data_kind="pacing-curve")


def test_hook_window_always_drawn(pages):
    for _, _, visit in pages.values():
        [hook] = visit.dom.find_all(data_lane="hook")
        [window] = hook.find_all(data_kind="hook-window")
        assert "width:20.000%" in window.attrs["style"]  # 3 s of 15


def test_llava_description_shown(pages):
    [section] = pages["full"][2].dom.find_all(id="description")
    assert "A colourful product video" in section.text


@pytest.mark.parametrize(
    "report_dict",
    [
        {},
        {"video": "junk", "analyzers": {"x": 3}},
        {"analyzers": {"cut_analysis": {"status": "ok"}}},
    ],
    ids=["empty", "junk", "no-result"],
)
def test_renders_whatever_it_is_given(report_dict, tmp_path):
    page = render_html(report_dict, tmp_path / "page.html")
    png = render_png(report_dict, tmp_path / "page.png")
    assert page.stat().st_size > 1000
    assert Image.open(png).size == (WIDTH, HEIGHT)


def _not_blank(img: Image.Image) -> tuple[float, int]:
    arr = np.asarray(img.convert("RGB"))
    colours = len(np.unique(arr.reshape(-1, 3)[::7], axis=0))
    return float(arr.std()), colours


def test_screenshot_is_not_blank(browser, pages, tmp_path):
    page = tmp_path / "full.html"
    page.write_text(pages["full"][1])
    browser.open(page)
    shot = browser.screenshot(tmp_path / "full.png")
    std, colours = _not_blank(Image.open(shot))
    assert std > 20 and colours > 200, (std, colours)


def test_hover_shows_details(browser, pages, tmp_path):
    r, markup, _ = pages["full"]
    page = tmp_path / "hover.html"
    page.write_text(markup)
    browser.open(page)
    cut = r["analyzers"]["cut_analysis"]["result"]["cuts"][0]
    assert f"cut at {cut['time_s']:.2f} s" in browser.hover(".cut-marker")
    assert "\u201chey\u201d" in browser.hover('[data-lane="words"] [data-kind="word"]')
    assert "person" in browser.hover('[data-lane="objects"] [data-kind="object"]')
    assert "LUFS" in browser.hover('[data-lane="loudness"] svg.curve')
    assert browser.hover("h1") is None
    # The cursor line follows the mouse over the lanes, with the time under it.
    browser.hover(".cut-marker")
    label = browser.eval("document.querySelector('.cursor span').textContent")
    assert float(label.removesuffix(" s")) == pytest.approx(cut["time_s"], abs=0.05)


# --- the PNG ---------------------------------------------------------------------------


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_png_summary(report, variant, tmp_path):
    r = VARIANTS[variant](report)
    img = Image.open(render_png(r, tmp_path / f"{variant}.png"))
    assert img.format == "PNG" and img.size == (WIDTH, HEIGHT)
    std, colours = _not_blank(img)
    assert std > 20 and colours > 100, (std, colours)
    # The strip holds the clip's pictures, or a flat placeholder when the video is gone.
    strip = np.asarray(img.convert("RGB"))[92 : 92 + KEYFRAME_H, MARGIN : WIDTH - MARGIN]
    if variant == "broken":
        assert strip[:, :200].std() < 5
    else:
        assert strip[:, :60].std() > 20


def test_timeline_model_reads_the_real_report(report):
    tl = build_timeline(report)
    res = report["analyzers"]["cut_analysis"]["result"]
    assert tl.duration_s == report["video"]["duration_s"]
    assert [i.start_s for i in tl.lane("shots").items if i.kind == "cut"] == [
        c["time_s"] for c in res["cuts"]
    ]
    assert sum(tl.status_counts().values()) == len(report["analyzers"])


def _span_item(start: float, end: float, variant: str = "") -> Item:
    return Item("x", start, end, "", "", variant=variant)


# (spans as (start, end, variant), max_rows, by_variant, expected rows)
PACKING = [
    ([(0, 1, ""), (1, 2, ""), (2, 3, "")], 4, False, [0, 0, 0]),  # touching: one row
    ([(0, 2, ""), (1, 3, ""), (2.5, 4, "")], 4, False, [0, 1, 0]),  # overlap: next free row
    ([(0, 3, ""), (1, 3, ""), (2, 3, "")], 2, False, [0, 1, 1]),  # past max_rows: fold
    ([(0, 1, "a"), (1, 2, "b"), (2, 3, "a")], 4, True, [0, 1, 0]),  # a row per variant
]


@pytest.mark.parametrize(("spans", "max_rows", "by_variant", "expected"), PACKING)
def test_pack_rows(spans, max_rows, by_variant, expected):
    items = [_span_item(*s) for s in spans]
    assert pack_rows(items, 4.0, max_rows, by_variant) == expected
