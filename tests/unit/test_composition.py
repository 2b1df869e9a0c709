"""composition_analysis: the rule-of-thirds measure on generated frames with a known subject
position (independent of the weights), and the analyzer on tiny synthetic CLIP weights
(schema, shots from upstream, batching, bad clips)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data
from pydantic import ValidationError

from tiktok_analyzer.analyzers._clip import ClipZeroShot, build_clip_model, fit_square
from tiktok_analyzer.analyzers.base import Clip, ClipMeta, NotApplicable
from tiktok_analyzer.analyzers.composition import (
    SCENES,
    STYLES,
    CompositionAnalysis,
    find_subject,
    placement_of,
    shot_spans,
    thirds_score,
)
from tiktok_analyzer.analyzers.weights import MODE_ENV, load_manifest, resolve

from . import upstream as up

H, W = 640, 360  # a vertical short-form frame


def background(kind: str, seed: int = 0) -> np.ndarray:
    """flat colour; smooth grey blobs with pixel noise; a vertical gradient."""
    rng = np.random.default_rng(seed)
    if kind == "flat":
        return np.full((H, W, 3), (50, 60, 80), np.uint8)
    if kind == "gradient":
        return (np.linspace(30, 110, H)[:, None, None] * np.ones((1, W, 3))).astype(np.uint8)
    blobs = cv2.GaussianBlur(rng.normal(0, 1, (H // 8, W // 8)), (0, 0), 3)
    blobs = cv2.resize(blobs / blobs.std(), (W, H))
    grey = np.clip(60 + 15 * blobs[..., None] + rng.normal(0, 4, (H, W, 1)), 0, 255)
    return np.repeat(grey, 3, axis=2).astype(np.uint8)


def with_subject(img: np.ndarray, x: float, y: float, kind: str = "disc") -> np.ndarray:
    """A bright disc (radius 10 % of the width), or the astronaut photograph (30 % of the
    height), centred on (x, y) in normalised coordinates."""
    img = img.copy()
    if kind == "disc":
        cv2.circle(img, (round(x * W), round(y * H)), round(0.1 * W), (245, 225, 90), -1)
        return img
    side = int(0.3 * H)
    photo = cv2.resize(skimage.data.astronaut(), (side, side), interpolation=cv2.INTER_AREA)
    x0, y0 = round(x * W - side / 2), round(y * H - side / 2)
    xa, ya, xb, yb = max(0, x0), max(0, y0), min(W, x0 + side), min(H, y0 + side)
    img[ya:yb, xa:xb] = photo[ya - y0 : yb - y0, xa - x0 : xb - x0]
    return img


THIRDS_POINTS = [(1 / 3, 1 / 3), (2 / 3, 1 / 3), (1 / 3, 2 / 3), (2 / 3, 2 / 3)]

# (position, placement, lowest score, highest score): a subject on a thirds point scores
# near 1, a centred one near 0, one in a corner 0, one halfway between centre and a thirds
# point about 0.5 (the score is linear in the distance).
CASES = [
    *[((x, y), "thirds", 0.9, 1.0) for x, y in THIRDS_POINTS],
    ((0.5, 0.5), "center", 0.0, 0.1),
    ((0.1, 0.1), "edge", 0.0, 0.0),
    ((0.9, 0.9), "edge", 0.0, 0.0),
    ((0.42, 0.42), "off_center", 0.35, 0.6),
]


@pytest.mark.parametrize("bg", ["flat", "blobs", "gradient"])
@pytest.mark.parametrize(("pos", "placement", "low", "high"), CASES)
def test_thirds_measure_on_a_bright_subject(bg, pos, placement, low, high):
    subject = find_subject(with_subject(background(bg), *pos))
    assert subject is not None
    # The subject is found where it was drawn, within 2 % of the frame.
    assert abs(subject.x - pos[0]) < 0.02 and abs(subject.y - pos[1]) < 0.02, subject
    assert low <= thirds_score(subject.x, subject.y) <= high
    assert placement_of(subject.x, subject.y) == placement
    assert subject.strength > 0.05


@pytest.mark.parametrize("bg", ["flat", "blobs"])
def test_thirds_measure_on_a_real_photograph(bg):
    """The astronaut photograph as the subject: the measure separates thirds from centre."""
    frame = background(bg)
    on_thirds = [find_subject(with_subject(frame, x, y, "photo")) for x, y in THIRDS_POINTS]
    centred = find_subject(with_subject(frame, 0.5, 0.5, "photo"))
    assert min(thirds_score(s.x, s.y) for s in on_thirds) >= 0.6
    assert thirds_score(centred.x, centred.y) <= 0.3
    assert placement_of(centred.x, centred.y) == "center"


def test_thirds_score_geometry():
    assert thirds_score(1 / 3, 2 / 3) == pytest.approx(1.0)
    assert thirds_score(0.5, 0.5) == pytest.approx(0.0, abs=1e-9)
    assert thirds_score(0.0, 0.0) == 0.0
    # linear: halfway from a thirds point to the centre
    assert thirds_score(5 / 12, 5 / 12) == pytest.approx(0.5)


def test_featureless_frames_have_no_subject():
    assert find_subject(np.full((H, W, 3), 128, np.uint8)) is None
    rng = np.random.default_rng(0)
    noise = np.clip(rng.normal(60, 6, (H, W, 3)), 0, 255).astype(np.uint8)
    assert find_subject(noise) is None


def test_two_subjects_do_not_average_into_the_empty_middle():
    frame = with_subject(with_subject(background("flat"), 1 / 3, 1 / 3), 2 / 3, 2 / 3)
    frame[round(2 / 3 * H) - 5 : round(2 / 3 * H) + 5] //= 2  # the second one a little less
    subject = find_subject(frame)
    assert placement_of(subject.x, subject.y) == "thirds"


def test_shot_spans_prefer_cuts_then_scenes_then_the_whole_clip():
    def spans(upstream: dict):
        return shot_spans(Clip(meta=ClipMeta(3.0, 2.0, 64, 64), upstream=upstream), 3.0)

    cuts = {"cut_analysis": up.cuts([1.0], 3.0)}
    scenes = {"scene_segmentation": up.scenes([(0, 3)])}
    assert spans({**cuts, **scenes}) == ([(0, 1), (1, 3)], "cut_analysis")
    assert spans(scenes) == ([(0, 3)], "scene_segmentation")
    assert spans({}) == ([(0.0, 3.0)], "whole_clip")
    broken = {"cut_analysis": up.cuts([], shots=[(2, 1)]), **scenes}
    assert spans(broken)[1] == "scene_segmentation"
    assert spans({"cut_analysis": up.cuts([], shots=[(2, 1)])})[1] == "whole_clip"
    # a result its model refuses fails loudly rather than reading as no shots
    with pytest.raises(ValidationError, match="shots"):
        spans({"cut_analysis": {**cuts["cut_analysis"], "shots": "nonsense"}})


def test_fit_square_crop_and_pad():
    img = np.zeros((400, 200, 3), np.uint8)
    img[:80] = 255  # the top fifth is white
    crop = fit_square(img, 224, "crop")
    pad = fit_square(img, 224, "pad")
    assert crop.shape == pad.shape == (224, 224, 3)
    assert crop[0, 112].max() == 0  # the centre square loses the top
    mean_colour = np.round(np.array([0.48145466, 0.4578275, 0.40821073]) * 255)
    assert np.all(pad[:, :50] == mean_colour.astype(np.uint8))  # the letterbox
    assert pad[5, 112].min() == 255  # and keeps the whole picture


def test_full_config_is_vit_l_14():
    import torch

    config = load_manifest()["composition_analysis/clip-vit-l-14-openai"].synthetic["full"]
    with torch.device("meta"):
        model = build_clip_model(config)
    # open_clip's published figure for ViT-L-14: 427.62 M parameters
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(427.62e6, rel=1e-4)


# ---------------------------------------------------------------------------------------
# The analyzer on tiny synthetic weights


@pytest.fixture(scope="module")
def analyzer():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(MODE_ENV, "synthetic-tiny")
        yield CompositionAnalysis()


def make_clip(frames: np.ndarray, fps: float = 2.0, upstream=None) -> Clip:
    n, h, w = frames.shape[:3]
    return Clip(
        meta=ClipMeta(duration_s=n / fps, fps=fps, width=w, height=h),
        frames=frames,
        timestamps_s=np.arange(n) / fps,
        frame_indices=np.arange(n),
        upstream=upstream or {},
    )


def three_shots() -> tuple[Clip, list[tuple[float, float]]]:
    """Three 1.5 s shots at 2 fps: subject on a thirds point, centred, in a corner."""
    positions = [(2 / 3, 1 / 3), (0.5, 0.5), (0.1, 0.9)]
    frames = np.stack(
        [with_subject(background("blobs", seed=k), *pos) for pos in positions for k in range(3)]
    )
    spans = [(0.0, 1.5), (1.5, 3.0), (3.0, 4.5)]
    upstream = {"cut_analysis": up.cuts([a for a, _ in spans[1:]], shots=spans)}
    return make_clip(frames, upstream=upstream), spans


def test_result_schema_and_thirds_per_shot(analyzer):
    clip, spans = three_shots()
    result = analyzer.analyze(clip)
    assert analyzer.weights == "synthetic-tiny"
    data = result.model_dump(mode="json")
    assert result.shot_source == "cut_analysis"
    assert [(s["start_s"], s["end_s"]) for s in data["shot_types"]] == spans
    for shot in data["shot_types"]:
        assert shot["type"] in {"close_up", "medium", "wide"}
        assert shot["frames"] == 3
        assert sum(shot["scores"].values()) == pytest.approx(1.0, abs=1e-3)
    placements = [s["placement"] for s in data["shot_types"]]
    assert placements == ["thirds", "center", "edge"]
    scores = [s["thirds_score"] for s in data["shot_types"]]
    assert scores[0] >= 0.9 and scores[1] <= 0.1 and scores[2] == 0.0
    assert result.thirds_score == pytest.approx(np.mean(scores), abs=0.01)
    # labels: the top 3 of each vocabulary, probabilities within it
    kinds = [label["kind"] for label in data["labels"]]
    assert kinds == ["scene"] * 3 + ["style"] * 3
    for label in data["labels"]:
        vocab = SCENES if label["kind"] == "scene" else STYLES
        assert label["label"] in vocab.labels and 0.0 <= label["score"] <= 1.0
    assert result.frames_analyzed == 9


def test_whole_clip_and_short_shots(analyzer):
    frames = np.stack([with_subject(background("flat"), 1 / 3, 2 / 3)] * 4)
    result = analyzer.analyze(make_clip(frames))
    assert result.shot_source == "whole_clip"
    assert [(s.start_s, s.end_s) for s in result.shot_types] == [(0.0, 2.0)]
    # A shot shorter than the sampling step takes the frame nearest its middle.
    upstream = {"scene_segmentation": up.scenes([(0.1, 0.2)])}
    short = analyzer.analyze(make_clip(frames, upstream=upstream))
    assert short.shot_source == "scene_segmentation"
    assert short.shot_types[0].frames == 1
    # A featureless clip has no subject, and says so.
    flat = analyzer.analyze(make_clip(np.full((3, 64, 64, 3), 90, np.uint8)))
    assert flat.thirds_score is None and flat.subject is None and flat.placement is None


def test_synthetic_weights_are_the_same_in_every_instance():
    """Two Triton instances of the same config build the same random model (seeded)."""
    import torch

    weights = resolve("composition_analysis", "synthetic-tiny")
    torch.manual_seed(123)  # whatever ran before
    a = ClipZeroShot._build(weights).state_dict()
    b = ClipZeroShot._build(weights).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_batch_keeps_each_clips_failure_its_own(analyzer):
    good, _ = three_shots()
    empty = make_clip(np.zeros((0, 32, 32, 3), np.uint8))
    floats = make_clip(np.zeros((2, 32, 32, 3), np.float32))
    tiny = make_clip(np.full((2, 16, 16, 3), 200, np.uint8))
    out = analyzer.analyze_batch([good, empty, floats, tiny])
    assert isinstance(out[0], CompositionAnalysis.Result)
    assert isinstance(out[1], NotApplicable)
    assert isinstance(out[2], ValueError) and "uint8" in str(out[2])
    assert isinstance(out[3], ValueError) and "16x16 pixels are too small" in str(out[3])
    # the batch gives each clip what it gives alone
    assert out[0] == analyzer.analyze(good)


def test_real_tokenizer_vocabulary():
    from open_clip.tokenizer import SimpleTokenizer

    tok = SimpleTokenizer(context_length=77)
    assert tok.vocab_size == 49408
    ids = tok(["a photo of a cat"])[0].tolist()
    # CLIP's BPE ids: <start> a photo of a cat <end>
    assert ids[:7] == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert len(ids) == 77


@pytest.mark.parametrize("file", ["pytorch_model.bin", "open_clip_model.safetensors"])
def test_real_weights_load_from_the_local_folder(tmp_path, file):
    """The real path: the state dict from the folder (OpenAI's pytorch_model.bin through
    torch.load(weights_only=True), or open_clip's safetensors), loaded strictly into the
    manifest's architecture (here a tiny one standing in for ViT-L/14), nothing fetched."""
    import dataclasses

    import torch
    from safetensors.torch import save_file

    from tiktok_analyzer.analyzers.weights import Weights

    entry = load_manifest()["composition_analysis/clip-vit-l-14-openai"]
    assert list(entry.files) == ["pytorch_model.bin"]
    tiny = entry.synthetic["tiny"]
    torch.manual_seed(7)
    source = build_clip_model(tiny)
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    state["input_resolution"] = torch.tensor(224)  # OpenAI checkpoints carry these
    if file.endswith(".safetensors"):
        save_file(state, str(tmp_path / file))
    else:
        torch.save(state, tmp_path / file)
    stand_in = dataclasses.replace(entry, synthetic={"full": tiny}, files={file: ""})
    loaded = ClipZeroShot._build(Weights("real", stand_in, tmp_path)).state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in source.state_dict().items())
    # a file of another architecture fails loudly
    wrong = dataclasses.replace(stand_in, synthetic={"full": {**tiny, "embed_dim": 32}})
    with pytest.raises(RuntimeError, match="size mismatch"):
        ClipZeroShot._build(Weights("real", wrong, tmp_path))
