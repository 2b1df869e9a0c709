"""eye_tracking on clips built from real photographs (scikit-image's astronaut, who looks
into the lens, and its cameraman, whose head is turned three-quarters to the image's right),
through mediapipe's real face mesh (bundled in the wheel: real weights in every mode)."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest

from tiktok_analyzer.analyzers import weights
from tiktok_analyzer.analyzers.base import Clip, ClipMeta
from tiktok_analyzer.analyzers.eyes import EyeTracking, find_blinks
from tiktok_analyzer.groundtruth import CATALOG
from tiktok_analyzer.groundtruth.clips import Photo, _resize_to, iter_frames, load_frames
from tiktok_analyzer.groundtruth.clips import truth as truth_of

#: The astronaut's iris centres in scikit-image's 512x512 photograph, (x, y) pixels, marked
#: on the photo: her right eye (image left) and her left eye.
ASTRONAUT_EYES = ((203.0, 101.0), (246.0, 104.0))
#: The cameraman's head and camera (fractions of scikit-image's `camera` photograph).
CAMERAMAN_HEAD = (0.25, 0.0, 0.75, 0.5)
FPS = EyeTracking.frames.fps
SIDE = EyeTracking.frames.short_side


@pytest.fixture(scope="module")
def tracker(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(weights.DIR_ENV, str(tmp_path_factory.mktemp("weights")))
        # Bundled weights: the synthetic modes load the real face mesh too.
        mp.setenv(weights.MODE_ENV, "synthetic-tiny")
        analyzer = EyeTracking()
    assert analyzer.available, analyzer._unavailable
    return analyzer


def clip_from(frames: np.ndarray, times: np.ndarray) -> Clip:
    h, w = frames.shape[1:3]
    duration = float(times[-1]) + 1 / FPS if len(times) else 0.0
    return Clip(
        meta=ClipMeta(duration_s=duration, fps=FPS, width=w, height=h),
        frames=frames,
        timestamps_s=times,
        frame_indices=np.arange(len(frames)),
    )


def decoded(clip_factory, name: str, **overrides) -> tuple[Clip, dict]:
    """A catalog clip rendered to H.264 and decoded as the orchestrator ships it."""
    path, truth = clip_factory(name, **overrides)
    frames, times, _ = load_frames(path, SIDE, FPS)
    return clip_from(frames, times), truth


def photo_point(truth: dict, u: float, v: float, size: int = 512) -> tuple[float, float]:
    """A pixel of the original photograph -> normalised frame coordinates, through the
    photo's crop, scale, mirror and placement (at its start)."""
    ph = truth["photos"][0]
    x0, y0, x1, y1 = ph["crop"] or (0.0, 0.0, 1.0, 1.0)
    cw, ch = (x1 - x0) * size, (y1 - y0) * size
    bx0, by0, bx1, by1 = ph["bbox"]
    scale = (by1 - by0) / ch
    cu, cv_ = u - x0 * size, v - y0 * size
    if ph["mirror"]:
        cu = cw - cu
    return (bx0 + cu * scale) / truth["width"], (by0 + cv_ * scale) / truth["height"]


def run(tracker: EyeTracking, clip: Clip):
    (out,) = tracker.analyze_batch([clip])
    assert not isinstance(out, Exception), out
    return out


@pytest.fixture(scope="module")
def analysed(tracker, clip_factory):
    """analysed(name) -> (clip, truth, result) of a catalog clip, each analysed once."""
    cache: dict[str, tuple] = {}

    def get(name: str):
        if name not in cache:
            clip, truth = decoded(clip_factory, name)
            cache[name] = (clip, truth, run(tracker, clip))
        return cache[name]

    return get


def centre_x(box: list[float]) -> float:
    return (box[0] + box[2]) / 2


# ---------------------------------------------------------------------------------------


def test_bundled_weights_are_real_in_every_mode_and_match_the_wheel(tracker, tmp_path):
    assert tracker.weights == "real" and tracker.model_name == "mediapipe-face-mesh"
    entry = weights.load_manifest()["eye_tracking/mediapipe-face-mesh"]
    assert entry.bundled and not entry.synthetic
    for name, (rel,) in entry.package_files.items():
        digest = hashlib.sha256(weights._package_data(rel).read_bytes()).hexdigest()
        assert digest == entry.files[name], name


def test_finds_the_face_and_both_irises(analysed):
    clip, truth, res = analysed("face")
    assert res.faces_max == 1 and len(res.faces) == 1
    face = res.faces[0]
    assert res.first_face_s == 0.0 and face.first_s == 0.0
    assert face.last_s >= truth["duration_s"] - 2 / FPS
    assert res.face_share == 1.0 and face.frames == len(clip.frames)
    assert face.irises_share >= 0.95
    # Each iris where it is in the photograph, within 15 % of the distance between the eyes.
    want = [photo_point(truth, *eye) for eye in ASTRONAUT_EYES]
    apart = np.hypot(want[1][0] - want[0][0], (want[1][1] - want[0][1]))
    for got, ref in ((face.iris_right, want[0]), (face.iris_left, want[1])):
        assert np.hypot(got[0] - ref[0], got[1] - ref[1]) <= 0.15 * apart, (got, ref)
    # The face box holds both eyes and lies inside the photograph.
    x0, y0, x1, y1 = face.bbox
    assert all(x0 < x < x1 and y0 < y < y1 for x, y in want)
    px0, py0, px1, py1 = np.array(truth["photos"][0]["bbox"]) / (
        [truth["width"], truth["height"]] * 2
    )
    assert px0 - 0.01 <= x0 and x1 <= px1 + 0.01 and py0 - 0.01 <= y0 and y1 <= py1 + 0.01
    # A portrait looking into the lens: near-frontal gaze, eye contact throughout.
    assert abs(face.mean_yaw) <= 8 and abs(face.mean_pitch) <= 12
    assert res.eye_contact_share >= 0.9 and res.eye_contact_share_of_face_time >= 0.9
    assert res.blink_count == 0 and res.blinks == []
    assert len(res.gaze) == len(clip.frames)
    assert [g.time_s for g in res.gaze] == pytest.approx(list(clip.timestamps_s), abs=1e-3)


def test_mirrored_photo_mirrors_the_face_and_the_irises(analysed):
    _, truth, plain = analysed("face")
    _, truth_m, flipped = analysed("face_mirrored")
    a, b = plain.faces[0], flipped.faces[0]
    ph = np.array(truth["photos"][0]["bbox"]) / truth["width"]
    axis = (ph[0] + ph[2]) / 2  # the photo's vertical centre line, where mirroring pivots
    assert centre_x(b.bbox) == pytest.approx(2 * axis - centre_x(a.bbox), abs=0.015)
    # Her right iris is now on the image's right, where the mirrored photo puts it.
    want = photo_point(truth_m, *ASTRONAUT_EYES[0])
    assert b.iris_left[0] == pytest.approx(want[0], abs=0.02)
    assert b.iris_left[0] > b.iris_right[0]
    assert abs(b.mean_yaw + a.mean_yaw) <= 6


@pytest.fixture(scope="module")
def cameraman(tracker, clip_factory):
    out = {}
    for mirror in (False, True):
        photo = Photo("camera", y=0.4, height=0.6, crop=CAMERAMAN_HEAD, mirror=mirror)
        clip, _ = decoded(clip_factory, "face", photos=(photo,))
        out[mirror] = run(tracker, clip)
    return out


def test_mirroring_a_turned_head_flips_the_yaw(cameraman):
    plain, mirrored = cameraman[False], cameraman[True]
    assert plain.faces_max == 1 and mirrored.faces_max == 1
    # He faces the image's right (his camera's viewfinder): about 45 degrees of head yaw.
    head = np.mean([g.head_yaw for g in plain.gaze])
    head_m = np.mean([g.head_yaw for g in mirrored.gaze])
    assert head >= 30 and head_m <= -30
    assert abs(head + head_m) <= 15
    assert plain.faces[0].mean_yaw >= 30 and mirrored.faces[0].mean_yaw <= -15
    # Looking into a viewfinder, not at us.
    assert plain.eye_contact_share <= 0.1 and mirrored.eye_contact_share <= 0.1


def test_moving_the_photo_moves_the_face(analysed):
    _, truth, centred = analysed("face")
    _, truth_m, moved = analysed("face_moved")
    a, b = centred.faces[0], moved.faces[0]
    shift = (truth_m["photos"][0]["bbox"][0] - truth["photos"][0]["bbox"][0]) / truth["width"]
    assert centre_x(b.bbox) - centre_x(a.bbox) == pytest.approx(shift, abs=0.01)
    assert b.bbox[1] == pytest.approx(a.bbox[1], abs=0.01)


def test_a_photo_sliding_across_is_one_face_that_follows_it(tracker, clip_factory):
    speed = 60.0  # px/s of the 540-px-wide clip
    photo = Photo(
        "astronaut",
        crop=(0.22, 0.0, 0.72, 0.55),
        x=0.35,
        y=0.4,
        height=0.45,
        shift_px_per_s=(speed, 0.0),
    )
    clip, truth = decoded(clip_factory, "face", photos=(photo,))
    res = run(tracker, clip)
    assert len(res.faces) == 1, [f.track_id for f in res.faces]
    face = res.faces[0]
    travelled = speed * (face.last_s - face.first_s) / truth["width"]
    assert centre_x(face.bbox_last) - centre_x(face.bbox_first) == pytest.approx(
        travelled, abs=0.015
    )
    gaze_x = [g.time_s for g in res.gaze]
    assert gaze_x == sorted(gaze_x)


def _close_eyes(frame: np.ndarray, truth: dict) -> np.ndarray:
    """Paint the astronaut's eyes shut: each eye opening filled with the skin below it and
    a dark lid line across (a crude closed eye, enough for the mesh's eyelids)."""
    out = frame.copy()
    h, w = out.shape[:2]
    ph = truth["photos"][0]
    scale = (ph["bbox"][3] - ph["bbox"][1]) / ((ph["crop"][3] - ph["crop"][1]) * 512)
    for u, v in ASTRONAUT_EYES:
        x, y = photo_point(truth, u, v)
        cx, cy = int(round(x * w)), int(round(y * h))
        ax, ay = int(round(13 * scale)), int(round(6 * scale))
        skin = out[cy + 2 * ay : cy + 3 * ay, cx - ax : cx + ax].reshape(-1, 3).mean(axis=0)
        cv2.ellipse(out, (cx, cy), (ax, ay), 0, 0, 360, tuple(int(c) for c in skin), -1)
        cv2.line(out, (cx - ax, cy + ay // 2), (cx + ax, cy + ay // 2), (70, 45, 40), 2)
    return out


def test_blinks_are_found_when_they_happen(tracker):
    spec = CATALOG["face"]
    truth = truth_of(spec)
    shut = {8, 9, 20, 29, 30}  # analysed frames with the eyes painted shut
    wanted = {round(i * spec.fps / FPS): i for i in range(int(truth["duration_s"] * FPS))}
    frames = []
    for k, img in enumerate(iter_frames(spec)):
        if k in wanted:
            i = wanted[k]
            frames.append(_resize_to(_close_eyes(img, truth) if i in shut else img, SIDE))
    times = np.arange(len(frames)) / FPS
    res = run(tracker, clip_from(np.stack(frames), times))
    want = [8.5 / FPS, 20 / FPS, 29.5 / FPS]
    assert res.blink_count == 3, res.blinks
    for blink, t in zip(res.blinks, want, strict=True):
        assert blink.time_s == pytest.approx(t, abs=0.75 / FPS)
        assert blink.track_id == res.faces[0].track_id
    assert res.faces[0].blink_count == 3


@pytest.mark.parametrize(
    ("ear", "expected"),
    [
        # open, one closed frame, open: one blink at the closed frame
        ([0.3, 0.3, 0.3, 0.1, 0.3, 0.3, 0.3], [(0.3, 0.1)]),
        # a two-frame blink, the minimum on the second frame
        ([0.3, 0.3, 0.15, 0.1, 0.3, 0.3, 0.3, 0.3], [(0.3, 0.2)]),
        # hovering between the thresholds (hysteresis): one blink, not three
        ([0.3, 0.3, 0.15, 0.22, 0.15, 0.22, 0.3, 0.3, 0.3], [(0.2, 0.4)]),
        # eyes shut for a second: not a blink
        ([0.3] * 4 + [0.1] * 10 + [0.3] * 6, []),
        # closed at the end of the track: unknown, not counted
        ([0.3] * 6 + [0.1, 0.1], []),
        # steady eyes, small noise
        ([0.3, 0.29, 0.31, 0.3, 0.28, 0.3], []),
    ],
)
def test_find_blinks(ear, expected):
    times = np.arange(len(ear)) / 10.0
    got = find_blinks(times, np.array(ear), 0.65, 0.8, 0.7, 0.5)
    assert [(round(t, 3), round(d, 3)) for t, d in got] == expected


def test_one_instance_serves_clip_after_clip(tracker, analysed):
    """Video mode keeps state: each clip starts afresh, a clip without a face reports none,
    and tiny or face-less frames are ok, not failures."""
    face, _, first = analysed("face")
    grey = clip_from(np.full((6, 64, 36, 3), 128, np.uint8), np.arange(6) / FPS)
    tiny = clip_from(np.zeros((3, 16, 16, 3), np.uint8), np.arange(3) / FPS)
    outs = tracker.analyze_batch([grey, face, tiny])
    assert outs[0].faces_max == 0 and outs[0].first_face_s is None and outs[0].gaze == []
    assert outs[0].eye_contact_share == 0.0 and outs[2].faces_max == 0
    again = outs[1]
    assert again.faces_max == 1 and again.faces[0].bbox == pytest.approx(
        first.faces[0].bbox, abs=0.01
    )
    # a face that appears late: first_face_s is its first frame
    blank = np.full((5, *face.frames.shape[1:]), 128, np.uint8)
    late = clip_from(np.concatenate([blank, face.frames[:10]]), np.arange(15) / FPS)
    res = run(tracker, late)
    assert res.first_face_s == pytest.approx(5 / FPS, abs=1e-6)
    assert res.face_share == pytest.approx(10 / 15, abs=1e-3)
