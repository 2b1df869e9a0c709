"""The ground-truth generator: its truth must describe exactly what it renders, since every
analyzer's accuracy test trusts it."""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
import pytest

from tiktok_analyzer.groundtruth import (
    CATALOG,
    AudioSpec,
    ClipSpec,
    Shot,
    iter_frames,
    load_frames,
    render,
    render_audio,
    scale_spec,
    truth,
)

# Small enough to render in about a second, large enough for the texture to have detail.
W, H = 180, 320
SR = 16_000


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    spec = scale_spec(CATALOG["sample"], W, H)
    path = tmp_path_factory.mktemp("gt") / "sample.mp4"
    info = render(spec, path)
    frames, stamps, audio = load_frames(path, short_side=0)
    return spec, info, frames, stamps, audio


def _mean_rgb(frame: np.ndarray) -> np.ndarray:
    return frame.reshape(-1, 3).astype(np.float64).mean(0)


def _layer_boxes(info: dict, k: int) -> list[list[int]]:
    """Pixel boxes of the photos and overlays the truth shows at frame k."""
    t = k / info["fps"]
    photos = [p["bbox"] for p in info["photos"] if p["start_s"] <= t < p["end_s"]]
    texts = [
        o["box"] or o["bbox"] for o in info["overlays"] if o["start_frame"] <= k < o["end_frame"]
    ]
    return photos + texts


def _shot_rgb(frame: np.ndarray, info: dict, k: int) -> np.ndarray:
    """Mean colour of the shot's own picture at frame k: the layers over it left out."""
    keep = np.ones(frame.shape[:2], bool)
    for x0, y0, x1, y1 in _layer_boxes(info, k):
        keep[max(0, y0 - 2) : y1 + 2, max(0, x0 - 2) : x1 + 2] = False
    return frame[keep].astype(np.float64).mean(0)


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_truth_is_consistent(name):
    spec = CATALOG[name]
    t = truth(spec)
    fps = spec.fps
    if spec.shots:
        assert t["n_frames"] == round(t["duration_s"] * fps)
        assert t["duration_s"] == pytest.approx(
            sum(s.duration_s for s in spec.shots), abs=0.5 / fps
        )
        # Shots tile the clip without gaps; each cut is the next shot's first frame.
        assert t["shots"][0]["start_s"] == 0.0
        assert t["shots"][-1]["end_s"] == pytest.approx(t["duration_s"])
        for a, b in zip(t["shots"], t["shots"][1:], strict=False):
            assert a["end_s"] == b["start_s"]
        assert len(t["cuts"]) == len(t["shots"]) - 1
        for cut, shot in zip(t["cuts"], t["shots"][1:], strict=True):
            assert cut["frame"] == round(cut["time_s"] * fps) == shot["start_frame"]
            assert cut["kind"] == shot["transition_in"]
        for fl in t["flashes"]:
            assert fl["frame"] == round(fl["time_s"] * fps)
    else:
        assert t["n_frames"] == 0 and not t["has_video"] and not t["cuts"]
    if t["tempo_bpm"]:
        period = 60.0 / t["tempo_bpm"]
        steps = np.diff(t["beats_s"]) / period
        # Consecutive beats are one period apart, or a whole number of periods across a
        # silence (whose beats are left out).
        np.testing.assert_allclose(steps, np.round(steps), atol=1e-9)
        assert steps.min() == pytest.approx(1.0)
        for b in t["beats_s"]:
            assert not any(s["start_s"] <= b < s["end_s"] for s in t["silences"])


def test_render_is_deterministic(tmp_path):
    spec = scale_spec(CATALOG["effects"], 90, 160)
    # What the spec defines is exact: every frame and sample, whenever it is made.
    assert all(
        np.array_equal(a, b) for a, b in zip(iter_frames(spec), iter_frames(spec), strict=True)
    )
    assert np.array_equal(render_audio(spec)[0], render_audio(spec)[0])
    # The encoded file decodes to the same picture and sound. Not required to the byte: in
    # two fresh-clone CI runs x264 (one thread) encoded this clip differently once, after
    # the heavier unit tests had run in the same process; the cause is not found.
    decoded = []
    for i in range(2):
        path = tmp_path / f"clip{i}.mp4"
        render(spec, path)
        decoded.append(load_frames(path, short_side=0))
    (f0, _, a0), (f1, _, a1) = decoded
    assert f0.shape == f1.shape and np.array_equal(a0, a1)
    per_frame = np.abs(f0.astype(np.int16) - f1.astype(np.int16)).mean(axis=(1, 2, 3))
    assert per_frame.max() < 0.5, per_frame.max()  # seen: 0.03
    other = list(iter_frames(dataclasses.replace(spec, seed=spec.seed + 1)))
    assert not np.array_equal(other[0], next(iter_frames(spec)))


def test_decoded_stream_matches_truth(sample):
    spec, info, frames, stamps, audio = sample
    assert frames.shape == (info["n_frames"], H, W, 3)
    np.testing.assert_allclose(stamps, np.arange(info["n_frames"]) / info["fps"], atol=1e-6)
    assert len(audio) / SR == pytest.approx(info["duration_s"], abs=0.01)


def test_load_frames_resizes_and_samples(tmp_path):
    spec = scale_spec(CATALOG["no_audio"], 90, 160)
    path = tmp_path / "clip.mp4"
    info = render(spec, path)
    frames, stamps, audio = load_frames(path, short_side=64, fps=5.0)
    assert frames.shape[1:] == (114, 64, 3)  # 160 * 64 / 90 = 113.8 -> even 114
    assert len(frames) == round(info["duration_s"] * 5.0)
    np.testing.assert_allclose(np.diff(stamps), 0.2, atol=1e-6)
    assert audio.size == 0


def test_hard_cuts_change_colour_and_shots_hold_it(sample):
    spec, info, frames, _, _ = sample
    hard = [c for c in info["cuts"] if c["kind"] == "hard"]
    assert len(hard) >= 4
    flash_frames = {f["frame"] + i for f in info["flashes"] for i in range(f["frames"])}
    for cut in hard:
        k = cut["frame"]
        jump = np.linalg.norm(_shot_rgb(frames[k], info, k) - _shot_rgb(frames[k - 1], info, k - 1))
        assert jump > 40, (cut, jump)
    for shot in info["shots"]:
        inner = [
            k
            for k in range(shot["start_frame"] + 15, shot["end_frame"] - 15)
            if k not in flash_frames
        ]
        means = np.array([_shot_rgb(frames[k], info, k) for k in inner])
        # Frame-to-frame colour stays put inside a shot: the texture moves, the colour doesn't.
        assert np.abs(np.diff(means, axis=0)).max() < 5, shot
        if shot["pattern"] == "texture":
            np.testing.assert_allclose(means.mean(0), shot["color"], atol=6)


def test_fade_and_dissolve_centres(sample):
    _, info, frames, _, _ = sample
    fade = next(c for c in info["cuts"] if c["kind"] == "fade")
    assert frames[fade["frame"]].mean() < 5
    dissolve = next(c for c in info["cuts"] if c["kind"] == "dissolve")
    k = dissolve["frame"]
    before = next(s for s in info["shots"] if s["end_frame"] == k)["color"]
    after = next(s for s in info["shots"] if s["start_frame"] == k)["color"]
    np.testing.assert_allclose(_mean_rgb(frames[k]), (np.add(before, after)) / 2, atol=8)


def test_flash_is_white_and_brief(sample):
    _, info, frames, _, _ = sample
    assert info["flashes"]
    for fl in info["flashes"]:
        k, n = fl["frame"], fl["frames"]
        assert frames[k : k + n].min() > 240
        assert frames[k - 1].mean() < 200 and frames[k + n].mean() < 200


def test_silence_is_silent_and_beats_sound(sample):
    _, info, _, _, audio = sample
    (sil,) = info["silences"]
    # 20 ms margins: the AAC frame around a silence's edge spreads a little energy into it.
    inside = audio[round((sil["start_s"] + 0.02) * SR) : round((sil["end_s"] - 0.02) * SR)]
    assert np.abs(inside).max() < 1e-3
    assert np.sqrt(np.mean(audio[: round(sil["start_s"] * SR)] ** 2)) > 0.05
    # Beats under the voice (ducked, the voice around them) or a sound effect are left to
    # test_sample.py; here each beat must stand out of what precedes it.
    busy = [(e["onset_s"], e["end_s"]) for e in info["sound_events"]]
    if info["speech"]:
        busy.append((info["speech"]["start_s"] - 0.1, info["speech"]["end_s"] + 0.1))
    clear = [b for b in info["beats_s"] if not any(a - 0.05 <= b <= e for a, e in busy)]
    assert len(clear) >= 10
    for b in clear:
        s = round(b * SR)
        before = np.abs(audio[s - 800 : s - 80]).max()
        onset = np.abs(audio[s : s + 320]).max()
        assert onset > 0.5 and onset > 2.5 * before, (b, onset, before)


@pytest.mark.parametrize("bpm", [90, 120, 150])
def test_tempo_clips_beat_at_their_tempo(bpm):
    t = truth(CATALOG[f"tempo_{bpm}"])
    assert t["tempo_bpm"] == bpm
    np.testing.assert_allclose(np.diff(t["beats_s"]), 60.0 / bpm)
    assert len(t["beats_s"]) == math.floor((t["duration_s"] - t["beats_s"][0]) * bpm / 60) + 1


# (motion, expected sign of the content's dx, dy between consecutive frames)
CAMERA_CASES = [
    ("static", 0, 0),
    ("pan_left", 1, 0),
    ("pan_right", -1, 0),
    ("tilt_up", 0, 1),
    ("tilt_down", 0, -1),
]


@pytest.mark.parametrize(("motion", "sx", "sy"), CAMERA_CASES)
def test_pan_and_tilt_move_content_as_documented(motion, sx, sy):
    spec = ClipSpec(width=W, height=H, shots=[Shot(0.5, motion=motion, speed=3.0)], audio=None)
    frames = [f.astype(np.float32).mean(2) for f in iter_frames(spec)]
    (dx, dy), _ = cv2.phaseCorrelate(frames[5], frames[6])
    assert dx == pytest.approx(3.0 * sx, abs=0.5) and dy == pytest.approx(3.0 * sy, abs=0.5)
    shot = truth(spec)["shots"][0]
    assert (shot["content_dx_px"], shot["content_dy_px"]) == (3.0 * sx, 3.0 * sy)


@pytest.mark.parametrize(("motion", "grows"), [("zoom_in", True), ("zoom_out", False)])
def test_zoom_scales_content_as_documented(motion, grows):
    spec = ClipSpec(width=W, height=H, shots=[Shot(1.0, motion=motion, speed=1.5)], audio=None)
    frames = list(iter_frames(spec))
    a, b = frames[0].astype(np.float32), frames[15].astype(np.float32)
    factor = 1.5**0.5  # half a second of zoom
    big, small = (a, b) if not grows else (b, a)  # `big` shows the content larger
    # Enlarging the centre of the smaller view by `factor` must reproduce the larger view.
    up = cv2.resize(small, None, fx=factor, fy=factor, interpolation=cv2.INTER_LINEAR)
    y0, x0 = (up.shape[0] - H) // 2, (up.shape[1] - W) // 2
    err_scaled = np.abs(up[y0 : y0 + H, x0 : x0 + W] - big)[40:-40, 40:-40].mean()
    err_plain = np.abs(small - big)[40:-40, 40:-40].mean()
    assert err_scaled < 0.4 * err_plain


def test_shake_jitters_around_a_fixed_point():
    shaky = ClipSpec(width=W, height=H, shots=[Shot(1.0, motion="shake", speed=3.0)], audio=None)
    # The same shot held still shows the same canvas: the reference for every offset.
    still = dataclasses.replace(shaky, shots=[Shot(1.0)])
    ref = next(iter_frames(still)).astype(np.float32).mean(2)
    frames = [f.astype(np.float32).mean(2) for f in iter_frames(shaky)]
    shifts = np.array([cv2.phaseCorrelate(ref, f)[0] for f in frames])
    assert 2.0 < np.abs(np.diff(shifts, axis=0)).mean() < 6  # several px per frame
    assert np.abs(shifts).max() < 2.5 * 3.0 + 1
    assert np.abs(shifts.mean(0)).max() < 1.5  # zero-mean


def test_blur_and_noise_levels():
    base = ClipSpec(width=W, height=H, shots=[Shot(0.2, amplitude=60.0)], audio=None)
    clean = next(iter_frames(base)).astype(np.float32)
    sharpness = [
        cv2.Laplacian(
            next(
                iter_frames(
                    dataclasses.replace(base, shots=[Shot(0.2, amplitude=60.0, blur_sigma=s)])
                )
            ),
            cv2.CV_32F,
        ).var()
        for s in (0.0, 1.0, 2.0, 4.0)
    ]
    assert all(a > 1.5 * b for a, b in zip(sharpness, sharpness[1:], strict=False))
    for sigma in (8.0, 16.0, 32.0):
        shot = Shot(0.2, amplitude=60.0, noise_sigma=sigma)
        noisy = next(iter_frames(dataclasses.replace(base, shots=[shot]))).astype(np.float32)
        # Clipping at 0/255 trims the widest noise a little, hence the tolerance.
        assert (noisy - clean).std() == pytest.approx(sigma, rel=0.1)


def test_effects_split_screen_and_freeze():
    spec = scale_spec(CATALOG["effects"], W, H)
    t = truth(spec)
    frames = list(iter_frames(spec))
    split = next(s for s in t["shots"] if s["split_screen"])
    f = frames[split["start_frame"] + 10]
    left, right = _mean_rgb(f[:, : W // 2]), _mean_rgb(f[:, W // 2 :])
    assert np.linalg.norm(left - right) > 60
    np.testing.assert_allclose(left, split["color"], atol=8)
    shot = next(s for s in t["shots"] if s["freeze"])
    first = round(shot["freeze_start_s"] * spec.fps)
    assert shot["start_frame"] < first < shot["end_frame"]
    # Moving up to the freeze, then one image repeated to the shot's end.
    assert not np.array_equal(frames[first - 2], frames[first - 1])
    run = frames[first - 1 : shot["end_frame"]]
    assert not np.array_equal(run[0], run[1])
    assert all(np.array_equal(run[1], g) for g in run[2:])
    still = ClipSpec(width=64, height=64, shots=[Shot(0.5, motion="pan_left", freeze=True)])
    frames = list(iter_frames(still))
    assert all(np.array_equal(frames[0], g) for g in frames[1:])
    assert truth(still)["shots"][0]["content_dx_px"] == 0
    kinds = {e["kind"] for e in t["effects"]}
    assert kinds == {"flash", "split_screen", "freeze", "punch_in"}


def test_audio_only_and_no_audio(tmp_path):
    spec = ClipSpec(
        shots=[], audio=AudioSpec(tempo_bpm=100.0, silences=[(1.0, 1.5)]), duration_s=3.0
    )
    info = render(spec, tmp_path / "a.m4a")
    frames, stamps, audio = load_frames(tmp_path / "a.m4a", short_side=64)
    assert frames.shape[0] == 0 and stamps.size == 0
    assert len(audio) / SR == pytest.approx(3.0, abs=0.01)
    assert info["has_audio"] and not info["has_video"]
    assert info["beats_s"] == pytest.approx([0.5, 1.7, 2.3, 2.9])  # 1.1 is in the silence

    quiet = ClipSpec(width=64, height=64, shots=[Shot(0.5)], audio=None)
    info = render(quiet, tmp_path / "v.mp4")
    frames, _, audio = load_frames(tmp_path / "v.mp4", short_side=0)
    assert not info["has_audio"] and audio.size == 0 and len(frames) == 15


@pytest.mark.parametrize(
    ("shots", "match"),
    [
        (lambda: [Shot(0.2), Shot(0.2, transition_in="dissolve", transition_s=1.0)], "shorter"),
        (lambda: [Shot(1.0, motion="zoom_in", speed=0.5)], "must be > 1"),
        (lambda: [Shot(1.0, motion="spin")], "unknown motion"),
    ],
)
def test_bad_specs_are_refused(shots, match):
    with pytest.raises(ValueError, match=match):
        truth(ClipSpec(width=64, height=64, shots=shots()))


def test_cli_renders_named_clips(tmp_path, capsys):
    from tiktok_analyzer.groundtruth.__main__ import main

    assert main(["--list"]) == 0
    assert "sample\t720x1280" in capsys.readouterr().out
    assert main([str(tmp_path), "--names", "audio_only"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(str(tmp_path / "audio_only.m4a"))
    assert (tmp_path / "audio_only.truth.json").exists()
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--names", "nope"])


def test_overlays_photos_and_sound_events_are_where_the_truth_says(tmp_path):
    import numpy as np

    from tiktok_analyzer.groundtruth import render_audio
    from tiktok_analyzer.groundtruth.clips import iter_frames

    spec = CATALOG["text_overlays"]
    info = truth(spec)
    frames = list(iter_frames(spec))
    for ov in info["overlays"]:
        x0, y0, x1, y1 = ov["box"]
        inside = frames[ov["start_frame"]][y0:y1, x0:x1]
        before = frames[ov["start_frame"] - 1][y0:y1, x0:x1]
        # the box is drawn from its first frame on, not before
        assert np.abs(inside.astype(int) - before.astype(int)).mean() > 20, ov["text"]
    spec = CATALOG["face_mirrored"]
    (photo,) = truth(spec)["photos"]
    x0, y0, x1, y1 = photo["bbox"]
    first = next(iter_frames(spec))
    plain = next(iter_frames(CATALOG["face"]))
    # the mirror image, up to resampling
    diff = first[y0:y1, x0:x1].astype(int) - plain[y0:y1, x0:x1][:, ::-1].astype(int)
    assert np.abs(diff).mean() < 3
    spec = CATALOG["sound_events"]
    audio, sr = render_audio(spec)
    for ev in truth(spec)["sound_events"]:
        s = round(ev["onset_s"] * sr)
        during = np.abs(audio[s : s + round(0.05 * sr)]).max()
        quiet = np.abs(audio[s - round(0.2 * sr) : s - round(0.1 * sr)]).max()
        assert during > 4 * quiet, ev
