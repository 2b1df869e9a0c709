"""background_segmentation: the chroma-key green measure on known colours and textures
(independent of the weights), the analyzer on tiny synthetic SegFormer weights over a
generated clip with a flat green-screen shot among others, shares per scene against a
known person mask, and the real-weights loading path on a locally saved model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tiktok_analyzer.analyzers.base import Clip, ClipMeta, NotApplicable
from tiktok_analyzer.analyzers.segmentation import (
    BackgroundSegmentation,
    ade20k_names,
    chroma_key_green,
    green_screen_measure,
)
from tiktok_analyzer.analyzers.weights import DIR_ENV, MODE_ENV, load_manifest
from tiktok_analyzer.groundtruth import ClipSpec, Shot, load_frames, render
from tiktok_analyzer.groundtruth.clips import BLUE, GREEN, RED, YELLOW

ENTRY = load_manifest()["background_segmentation/segformer-b2-ade-512"]
CHROMA = (0, 177, 64)  # chroma-key green, #00B140
PARAMS = BackgroundSegmentation.Params()


def flat(rgb, h=64, w=48) -> np.ndarray:
    return np.full((h, w, 3), rgb, np.uint8)


@pytest.mark.parametrize(
    ("rgb", "low", "high"),
    [
        (CHROMA, 1.0, 1.0),
        ((0, 255, 0), 1.0, 1.0),  # digital green
        ((60, 170, 80), 1.0, 1.0),  # a saturated mid green
        ((200, 60, 50), 0.0, 0.0),  # red
        ((50, 90, 200), 0.0, 0.0),  # blue
        ((45, 160, 160), 0.0, 0.0),  # teal: hue 180
        ((0, 30, 10), 0.0, 0.0),  # green but nearly black
        ((120, 140, 120), 0.0, 0.0),  # greyish green: too little saturation
        # yellow-green, hue 81.4: 8.6 deg under the range, 15 deg soft edge: 0.43
        ((150, 200, 60), 0.4, 0.46),
    ],
)
def test_chroma_key_green_membership(rgb, low, high):
    member, _ = chroma_key_green(flat(rgb))
    assert low - 1e-6 <= float(member.mean()) <= high + 1e-6


def textured(rgb, amplitude: float, seed: int = 0, h=256, w=144) -> np.ndarray:
    """``rgb`` with smooth blobs and fine detail of +-amplitude, like foliage or grass."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.normal(0, 1, (h, w)), (0, 0), 2.0)
    noise /= noise.std()
    img = np.asarray(rgb, np.float32) + amplitude * noise[..., None] / 2.5
    return np.clip(img, 0, 255).astype(np.uint8)


def test_green_screen_measure_flat_textured_and_people():
    assert green_screen_measure(flat(CHROMA, 256, 144), None, PARAMS) == (1.0, 1.0)
    cover, flatness = green_screen_measure(textured((60, 170, 80), 40), None, PARAMS)
    assert cover > 0.9 and flatness < 0.2  # green foliage: green, but not flat
    # Half red, half green: half the area is green; the green half is flat.
    img = flat(CHROMA, 256, 144)
    img[:, :72] = RED
    cover, flatness = green_screen_measure(img, None, PARAMS)
    assert cover == pytest.approx(0.5, abs=0.01) and flatness == 1.0
    # A person standing in front of the screen: only the rest counts.
    person = np.zeros(img.shape[:2], bool)
    person[:, :72] = True
    assert green_screen_measure(img, person, PARAMS) == (1.0, 1.0)
    assert green_screen_measure(img, np.ones_like(person), PARAMS) == (0.0, 0.0)
    assert green_screen_measure(flat(BLUE, 256, 144), None, PARAMS) == (0.0, 0.0)


# ---------------------------------------------------------------------------------------
# The analyzer

SHOTS = [
    Shot(2.0, CHROMA, pattern="flat"),  # the green screen
    Shot(2.0, RED),
    Shot(2.0, GREEN, amplitude=40.0),  # textured green: foliage, not a screen
    Shot(2.0, BLUE, pattern="flat"),
    Shot(2.0, YELLOW, motion="pan_left"),
]


@pytest.fixture(scope="module")
def green_clip(tmp_path_factory):
    spec = ClipSpec(width=180, height=320, fps=10.0, shots=SHOTS, audio=None, seed=9)
    path = tmp_path_factory.mktemp("segmentation") / "green.mp4"
    info = render(spec, path)
    spec_frames = BackgroundSegmentation.frames
    frames, stamps, _ = load_frames(path, short_side=180, fps=spec_frames.fps)
    scenes = [
        {"start_s": s["start_s"], "end_s": s["end_s"], "shot_count": 1} for s in info["shots"]
    ]
    clip = Clip(
        meta=ClipMeta(info["duration_s"], info["fps"], 180, 320),
        frames=frames,
        timestamps_s=stamps,
        upstream={"scene_segmentation": {"scenes": scenes}},
    )
    return clip, info


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setenv(MODE_ENV, "synthetic-tiny")
    # A small model input keeps it quick; the colour measures run on the frames themselves.
    analyzer = BackgroundSegmentation(BackgroundSegmentation.Params(input_size=128))
    assert analyzer.weights == "synthetic-tiny", analyzer._unavailable
    return analyzer


def test_the_green_screen_shot_scores_high_and_the_others_low(tiny, green_clip):
    clip, info = green_clip
    result = tiny.analyze(clip)
    BackgroundSegmentation.Result.model_validate(result.model_dump())
    assert result.scenes_from == "scene_segmentation"
    assert [(s.start_s, s.end_s) for s in result.scenes] == [
        (s["start_s"], s["end_s"]) for s in info["shots"]
    ]
    scores = [s.green_screen_likelihood for s in result.scenes]
    assert scores[0] >= 0.9, scores
    assert max(scores[1:]) <= 0.2, scores
    # The foliage shot is green but not flat; red, blue and yellow are not green.
    assert result.scenes[2].green_cover > 0.8 and result.scenes[2].green_flatness < 0.3
    assert all(s.green_cover < 0.05 for s in result.scenes[1:2] + result.scenes[3:])
    assert result.green_screen_likelihood == scores[0]
    assert result.green_screen_share == pytest.approx(2 / len(clip.frames), abs=1e-3)
    assert all(s.frames == 2 for s in result.scenes)
    # Random weights still give well-formed shares.
    assert result.frames_analyzed == len(clip.frames)
    assert 0 <= result.foreground_share <= 1
    assert sum(c.share for c in result.classes) <= 1 + 1e-3  # each rounded to 1e-4
    names = set(ade20k_names())
    assert all(c.label in names for c in result.classes)


def test_without_scenes_the_clip_is_one_scene(tiny, green_clip):
    clip, info = green_clip
    alone = Clip(meta=clip.meta, frames=clip.frames, timestamps_s=clip.timestamps_s)
    result = tiny.analyze(alone)
    assert result.scenes_from == "whole_clip"
    assert [(s.start_s, s.end_s, s.frames) for s in result.scenes] == [
        (0.0, info["duration_s"], len(clip.frames))
    ]
    # One green shot in five: a fifth of the clip's frames.
    assert result.green_screen_likelihood == pytest.approx(0.2, abs=0.05)


def test_shares_follow_the_label_maps(tiny, green_clip, monkeypatch):
    """With the segmentation known (a person over the left half of the frames of the first
    two scenes, sky elsewhere), shares per scene and over the clip follow it exactly, and
    the person in front of the green screen leaves its likelihood at 1."""
    clip, _ = green_clip
    labels = tiny.labels
    person, sky = labels.index("person"), labels.index("sky")

    def address(a: np.ndarray) -> int:
        return a.__array_interface__["data"][0]

    def segment(frames):
        maps = np.full((len(frames), 32, 32), sky, np.uint8)
        for k, frame in enumerate(frames):
            index = (address(frame) - address(clip.frames)) // clip.frames[0].nbytes
            if index < 4:  # the first four frames (0-3 s): the first two scenes
                maps[k, :, :16] = person
        return maps

    monkeypatch.setattr(tiny, "_segment", segment)
    result = tiny.analyze(clip)
    n = len(clip.frames)
    assert result.foreground_share == pytest.approx(0.5 * 4 / n, abs=1e-4)
    assert [(c.label, c.share) for c in result.classes] == [
        ("sky", pytest.approx(1 - 2 / n, abs=1e-4)),
        ("person", pytest.approx(2 / n, abs=1e-4)),
    ]
    first, second, third = result.scenes[:3]
    assert first.foreground_share == 0.5 and third.foreground_share == 0.0
    assert {c.label: c.share for c in second.classes} == {"person": 0.5, "sky": 0.5}
    assert first.green_screen_likelihood >= 0.9 and first.green_cover >= 0.95


def test_bad_clips_fail_alone(tiny, green_clip):
    clip, _ = green_clip
    tiny16 = Clip(
        meta=clip.meta, frames=np.zeros((2, 16, 16, 3), np.uint8), timestamps_s=np.arange(2.0)
    )
    empty = Clip(meta=clip.meta, frames=None)
    big = Clip(
        meta=clip.meta,
        frames=np.full((1, 1920, 1080, 3), CHROMA, np.uint8),
        timestamps_s=np.zeros(1),
    )
    out = tiny.analyze_batch([tiny16, clip, empty, big])
    assert isinstance(out[0], ValueError) and "too small" in str(out[0])
    assert isinstance(out[2], NotApplicable)
    assert out[1].frames_analyzed == len(clip.frames)
    assert out[3].green_screen_likelihood == 1.0


def test_batches_span_clips(tiny, green_clip, monkeypatch):
    whole, _ = green_clip
    clip = Clip(meta=whole.meta, frames=whole.frames[:5], timestamps_s=whole.timestamps_s[:5])
    alone = tiny.analyze(clip)
    monkeypatch.setattr(tiny.params, "batch_size", 3)
    sizes: list[int] = []
    real = tiny._segment

    def spy(frames):
        sizes.append(len(frames))
        return real(frames)

    monkeypatch.setattr(tiny, "_segment", spy)
    one, two = tiny.analyze_batch([clip, clip])
    total = 2 * len(clip.frames)  # both clips' frames, in batches of 3 across them
    assert sizes == [3] * (total // 3) + [total % 3] * (total % 3 > 0)
    assert one.model_dump() == alone.model_dump() == two.model_dump()


def test_real_weights_missing_make_it_unavailable(monkeypatch, tmp_path):
    monkeypatch.setenv(DIR_ENV, str(tmp_path))
    monkeypatch.delenv(MODE_ENV, raising=False)
    analyzer = BackgroundSegmentation(BackgroundSegmentation.Params(model="segformer"))
    assert analyzer.weights == "none"
    (out,) = analyzer.analyze_batch([Clip(meta=ClipMeta(1.0, 1.0, 64, 64))])
    assert "weights pull background_segmentation/segformer-b2-ade-512" in str(out)


def test_without_segformer_auto_runs_the_selfie_tier_and_says_so(monkeypatch, tmp_path, green_clip):
    """No SegFormer weights: the bundled selfie tier runs, the report names it, the ADE20K
    shares are unavailable with the fix, and the green screen is still measured."""
    monkeypatch.setenv(DIR_ENV, str(tmp_path))
    monkeypatch.delenv(MODE_ENV, raising=False)
    analyzer = BackgroundSegmentation()
    assert analyzer.model_name == "mediapipe-selfie-segmentation", analyzer._unavailable
    assert analyzer.weights == "real"
    clip, info = green_clip
    result = analyzer.analyze(clip)
    assert result.classes == [] and all(s.classes == [] for s in result.scenes)
    assert "weights pull background_segmentation/segformer-b2-ade-512" in (
        result.classes_unavailable or ""
    )
    # Flat colours, no one in them: the pose gate leaves no person.
    assert result.foreground_share == 0.0
    green = [s for s in result.scenes if s.green_screen_likelihood > 0.5]
    assert len(green) == 1, result.scenes
    # In a synthetic mode auto keeps SegFormer (its synthetic model), with classes.
    monkeypatch.setenv(MODE_ENV, "synthetic-tiny")
    tiny = BackgroundSegmentation(BackgroundSegmentation.Params(input_size=64))
    assert tiny.model_name == "segformer-b2-ade-512" and tiny.weights == "synthetic-tiny"
    assert tiny.analyze(clip).classes_unavailable is None


def test_a_wrong_model_name_is_refused():
    with pytest.raises(ValueError, match="model must be auto or one of segformer, selfie"):
        BackgroundSegmentation(BackgroundSegmentation.Params(model="deeplab"))


def test_real_weights_load_from_a_local_folder(monkeypatch, tmp_path):
    """The real path: a transformers folder (config.json naming the classes,
    preprocessor_config.json, pytorch_model.bin) in the weights directory, loaded offline."""
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    config = dict(ENTRY.synthetic["tiny"])
    config.pop("labels")
    names = [f"class {i}" for i in range(150)]
    names[12] = "person"
    torch.manual_seed(5)
    source = SegformerForSemanticSegmentation(
        SegformerConfig(**config, num_labels=150, id2label=dict(enumerate(names)))
    ).eval()
    folder = tmp_path / "background_segmentation" / "segformer-b2-ade-512"
    folder.mkdir(parents=True)
    source.config.save_pretrained(folder)
    torch.save(source.state_dict(), folder / "pytorch_model.bin")
    (folder / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]})
    )
    assert set(p.name for p in folder.iterdir()) == set(ENTRY.files)
    monkeypatch.setenv(DIR_ENV, str(tmp_path))
    monkeypatch.setenv(MODE_ENV, "real")
    analyzer = BackgroundSegmentation(BackgroundSegmentation.Params(input_size=64))
    assert analyzer.weights == "real", analyzer._unavailable
    assert analyzer.labels[12] == "person" and analyzer.person == 12
    frame = np.random.default_rng(0).integers(0, 255, (1, 64, 64, 3), dtype=np.uint8)
    x = (torch.from_numpy(frame).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5
    with torch.inference_mode():
        want = source(pixel_values=x).logits.argmax(1).numpy()
    got = analyzer._segment(list(frame))
    assert got.shape == want.shape and (got == want).mean() > 0.99


def test_the_full_config_is_segformer_b2():
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    config = dict(ENTRY.synthetic["full"])
    labels = ade20k_names(config.pop("labels"))
    assert len(labels) == 150 and labels[12] == "person" and labels[2] == "sky"
    # Spot checks of the entry-by-entry comparison with CSAILVision's objectInfo150.txt
    # (the manifest's labels_source): its ends, and the two rows where ultralytics' name
    # is not the row's first synonym.
    assert labels[0] == "wall" and labels[149] == "flag"
    assert labels[89] == "television receiver" and labels[105] == "conveyor belt"
    with torch.device("meta"):
        model = SegformerForSemanticSegmentation(SegformerConfig(**config, num_labels=150))
    # 27.5 M published for B2 (ADE20K head included)
    assert sum(p.numel() for p in model.parameters()) == 27_461_974
