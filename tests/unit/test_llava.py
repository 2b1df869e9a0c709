"""video_llava: the answer parser on fixed strings, the scene alignment, and the whole
analyzer end to end on the tiny synthetic LLaVA-NeXT-Video (CPU, random weights)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from tiktok_analyzer.analyzers import load_class
from tiktok_analyzer.analyzers.base import Clip, ClipMeta, NotApplicable, Unavailable
from tiktok_analyzer.analyzers.llava import (
    VideoLlava,
    _even_ranges,
    batch_buckets,
    build_config,
    build_processor,
    build_prompt,
    parse_answer,
    save_synthetic,
    scene_ranges,
)
from tiktok_analyzer.analyzers.weights import DIR_ENV, MODE_ENV, resolve

from . import upstream as up

# ---------------------------------------------------------------------------------------
# The parser

LABELLED = """\
SUMMARY: A woman shows how to make iced coffee in her kitchen.
SCENE 1: She holds a glass of ice up to the camera.
SCENE 2: She pours cold brew over the ice
and stirs in milk.
SETTING: A bright home kitchen.
PEOPLE: One young woman, talking to the camera and making a drink.
STYLE: Handheld close-ups, warm colours, bold captions.
HOOK: The glass of ice thrust at the lens in the first second.
CTA: Follow for more recipes.
"""

MARKDOWN = """\
Sure! Here is the description.

**Summary:** A man skateboards down a hill at sunset.
**Scene 1 (0.0 s to 2.5 s):** He pushes off at the top of the street.
- **Scene 2** - He carves past parked cars.
**Visual style:** Drone shots, orange light.
**Hook:** A fast drop seen from above.
**Call to action:** None.
"""

JSON_ANSWER = """```json
{"summary": "A cat knocks a cup off a table.",
 "scenes": [{"start_s": 0, "end_s": 2, "description": "The cat eyes the cup."},
            "The cup falls and the cat runs."],
 "setting": "A living room",
 "people": [],
 "style": "static phone camera",
 "hook": "the cat's stare",
 "call_to_action": "no call to action"}
```"""

# What the model often does when it runs out of tokens: JSON cut short; its lines still read.
TRUNCATED_JSON = """{
  "summary": "Two friends try a spicy noodle challenge.",
  "scene 1": "They open the packets.",
  "hook": "One of them screams",
  "cta": "Comment your spice lev"""


@pytest.mark.parametrize(
    ("text", "want"),
    [
        (
            LABELLED,
            {
                "summary": "A woman shows how to make iced coffee in her kitchen.",
                "scenes": {
                    1: "She holds a glass of ice up to the camera.",
                    2: "She pours cold brew over the ice and stirs in milk.",
                },
                "setting": "A bright home kitchen.",
                "people": "One young woman, talking to the camera and making a drink.",
                "style": "Handheld close-ups, warm colours, bold captions.",
                "hook": "The glass of ice thrust at the lens in the first second.",
                "call_to_action": "Follow for more recipes.",
            },
        ),
        (
            MARKDOWN,
            {
                "summary": "A man skateboards down a hill at sunset.",
                "scenes": {
                    1: "He pushes off at the top of the street.",
                    2: "He carves past parked cars.",
                },
                "setting": None,
                "style": "Drone shots, orange light.",
                "hook": "A fast drop seen from above.",
                "call_to_action": None,
            },
        ),
        (
            JSON_ANSWER,
            {
                "summary": "A cat knocks a cup off a table.",
                "scenes": {1: "The cat eyes the cup.", 2: "The cup falls and the cat runs."},
                "setting": "A living room",
                "people": None,
                "style": "static phone camera",
                "hook": "the cat's stare",
                "call_to_action": None,
            },
        ),
        (
            TRUNCATED_JSON,
            {
                "summary": "Two friends try a spicy noodle challenge.",
                "scenes": {1: "They open the packets."},
                "hook": "One of them screams",
                "call_to_action": "Comment your spice lev",
            },
        ),
    ],
    ids=["labelled", "markdown", "json", "truncated-json"],
)
def test_structured_answers_are_read_into_fields(text, want):
    answer = parse_answer(text)
    assert answer.parsed
    for name, value in want.items():
        assert getattr(answer, name) == value, name


@pytest.mark.parametrize(
    "text",
    [
        "",
        "gxo jsigxo jsigxo jsi mdrduo fsjiaepuk",
        "The video shows a dog running on a beach while waves roll in.",
        "{not json at all",
        '{"colour": "blue"}',
    ],
)
def test_unstructured_answers_are_not_parsed(text):
    answer = parse_answer(text)
    assert not answer.parsed
    assert answer.summary is None and not answer.scenes


def test_one_field_alone_is_not_enough_but_a_summary_is():
    assert not parse_answer("Setting: a beach").parsed
    assert parse_answer("Summary: a dog on a beach").parsed
    assert parse_answer("Setting: a beach\nHook: a dog leaps at the camera").parsed


def test_unnumbered_scene_lines_take_the_next_numbers():
    answer = parse_answer("Summary: x\nScene: first part\nScene 3: third\nScene: another")
    assert answer.scenes == {1: "first part", 3: "third", 4: "another"}


# ---------------------------------------------------------------------------------------
# Scenes and the prompt

META = ClipMeta(duration_s=6.0, fps=30.0, width=597, height=336)
UPSTREAM = {"scene_segmentation": up.scenes([(2.5, 6.0), (0.0, 2.5)])}


def test_scenes_follow_upstream_or_cover_the_whole_clip():
    clip = Clip(meta=META, upstream=UPSTREAM)
    assert scene_ranges(clip) == ([(0.0, 2.5), (2.5, 6.0)], "scene_segmentation")
    assert scene_ranges(Clip(meta=META)) == ([(0.0, 6.0)], "whole_clip")
    # scenes no range can be made of (backwards, before the start) are left out
    broken = {"scene_segmentation": up.scenes([(3.0, 1.0), (-1.0, 2.0)])}
    assert scene_ranges(Clip(meta=META, upstream=broken)) == ([(0.0, 6.0)], "whole_clip")
    # a result its model refuses fails loudly rather than reading as no scenes
    garbled = {"scene_segmentation": {"scenes": [{"start_s": "x"}]}}
    with pytest.raises(ValidationError, match="scenes"):
        scene_ranges(Clip(meta=META, upstream=garbled))


def test_prompt_names_each_scene_range_and_label():
    prompt = build_prompt([(0.0, 2.5), (2.5, 6.0)], 6.0, 3.0)
    assert "Scene 1: 0.0 s to 2.5 s" in prompt and "Scene 2: 2.5 s to 6.0 s" in prompt
    for label in ("SUMMARY:", "SCENE 1:", "SCENE 2:", "SETTING:", "PEOPLE:", "STYLE:", "CTA:"):
        assert label in prompt
    assert "first 3 seconds" in prompt
    # the model's own labelled answer to this prompt parses back
    answer = parse_answer("SUMMARY: s\nSCENE 1: a\nSCENE 2: b\nHOOK: h\nCTA: none")
    assert answer.parsed and answer.scenes == {1: "a", 2: "b"} and answer.call_to_action is None


# ---------------------------------------------------------------------------------------
# The model end to end (tiny synthetic weights, CPU)


@pytest.fixture(scope="module")
def tiny():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(MODE_ENV, "synthetic-tiny")
        analyzer = VideoLlava()
    assert analyzer.available, analyzer._unavailable
    return analyzer


def _frames(n: int, h: int = 336, w: int = 189, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def _clip(frames, upstream=None, duration=6.0) -> Clip:
    n = 0 if frames is None else len(frames)
    return Clip(
        meta=ClipMeta(duration_s=duration, fps=30.0, width=189, height=336),
        frames=frames,
        timestamps_s=None if frames is None else np.linspace(0, duration, n, endpoint=False),
        upstream=upstream or {},
    )


def test_tiny_synthetic_answers_a_valid_unparsed_result(tiny):
    assert load_class("video_llava") is VideoLlava
    assert tiny.weights == "synthetic-tiny" and tiny.model_name == "llava-next-video-7b-hf"
    result = tiny.analyze(_clip(_frames(4), UPSTREAM))
    body = result.model_dump(mode="json")
    for key in ("description", "scenes", "hook", "call_to_action"):  # docs/REPORT_CONTRACT.md
        assert key in body
    # random weights: exactly the whole budget (a real answer's longest), garbage, raw text
    assert result.new_tokens == result.max_new_tokens == tiny.params.max_new_tokens == 384
    assert result.raw_text and not result.parsed
    assert result.description == result.raw_text
    assert result.hook is None and result.call_to_action is None
    assert [(s.start_s, s.end_s) for s in result.scenes] == [(0.0, 2.5), (2.5, 6.0)]
    assert result.scenes_from == "scene_segmentation"
    assert result.precision == "fp32" and result.frames_used == 4
    assert result.timings.generate_s > 0 and result.timings.batch_clips == 1
    assert result.timings.compiled is False  # a CPU runs eager


def test_batch_keeps_each_clip_apart(tiny):
    good = _clip(_frames(4))
    outcomes = tiny.analyze_batch(
        [
            good,
            _clip(_frames(4, 16, 16)),  # too small to describe
            _clip(None),  # no picture
            _clip(_frames(2, seed=1)),  # another frame count: its own generate call
            good,
        ]
    )
    first, small, empty, other, again = outcomes
    assert isinstance(small, ValueError) and "16x16" in str(small)
    assert isinstance(empty, NotApplicable)
    assert first.frames_used == 4 and other.frames_used == 2
    assert first.timings.batch_clips == 2 and other.timings.batch_clips == 1
    # same clip, same batch: same answer; the whole clip is one scene
    assert again.raw_text == first.raw_text
    assert [(s.start_s, s.end_s) for s in first.scenes] == [(0.0, 6.0)]
    assert first.scenes[0].description == first.description


def test_vision_tower_runs_in_passes_with_the_same_features(tiny, monkeypatch):
    """A batch's frames go through the vision tower a few at a time, keeping only the
    layer the model reads (the tower's peak is one pass's), and the language model gets
    the same features, so the same answers."""
    import torch

    from tiktok_analyzer.analyzers.llava import chunk_vision_tower

    owner = tiny.model.model
    tower = owner.vision_tower
    assert tower.forward.frames == tiny.params.vision_frames == 32
    whole = tower.forward.unchunked
    passes: list[int] = []

    def counted(pixel_values, *args, **kwargs):  # the tower's own pass, counted
        passes.append(int(pixel_values.shape[0]))
        return whole(pixel_values, *args, **kwargs)

    monkeypatch.setattr(tower, "forward", counted)
    try:
        side = int(tiny.model.config.vision_config.image_size)
        pixels = torch.randn(3, 2, 3, side, side, generator=torch.Generator().manual_seed(0))
        kwargs = {
            "vision_feature_layer": tiny.model.config.vision_feature_layer,
            "vision_feature_select_strategy": tiny.model.config.vision_feature_select_strategy,
        }
        want = owner.get_video_features(pixels, **kwargs)
        assert passes == [6]
        passes.clear()
        chunk_vision_tower(tiny.model, 2)  # two frames a pass: one tiny clip's
        got = owner.get_video_features(pixels, **kwargs)
        assert passes == [2, 2, 2]
        got, want = (getattr(x, "pooler_output", x) for x in (got, want))
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)

        monkeypatch.setattr(tiny.params, "max_new_tokens", 8)
        clips = [_clip(_frames(2, seed=k), UPSTREAM) for k in range(3)]
        assert tower.forward.frames == 2
        passes.clear()
        chunked_answers = [r.raw_text for r in tiny.analyze_batch(clips)]
        assert passes == [2, 2, 2]
        tower.forward = counted
        passes.clear()
        assert [r.raw_text for r in tiny.analyze_batch(clips)] == chunked_answers
        assert passes == [6]
    finally:
        chunk_vision_tower(tiny.model, tiny.params.vision_frames)


@pytest.mark.parametrize(
    ("size", "want"), [(1, [1]), (2, [1, 2]), (4, [1, 2, 4]), (6, [1, 2, 4, 6]), (8, [1, 2, 4, 8])]
)
def test_batch_buckets(size, want):
    assert batch_buckets(size) == want


def test_fast_path_pads_batch_and_prompt_but_answers_each_clip(tiny, monkeypatch):
    """The GPU path (static cache, batch padded to a warmed-up size, prompt padded to a
    multiple of pad_multiple tokens) run on the CPU, where transformers does not compile:
    three clips become a batch of four, and only three answers come back, each with the
    whole budget. Warm-up runs one generation per batch size."""
    monkeypatch.setattr(tiny, "compiled", True)
    monkeypatch.setattr(tiny.params, "max_new_tokens", 8)
    monkeypatch.setattr(tiny.params, "max_frames", 2)
    seen = []
    real_generate = tiny.model.generate

    def spy(**kwargs):
        seen.append((tuple(kwargs["input_ids"].shape), kwargs.get("cache_implementation")))
        return real_generate(**kwargs)

    monkeypatch.setattr(tiny.model, "generate", spy)
    clips = [_clip(_frames(2, seed=k), UPSTREAM) for k in range(3)]
    results = tiny.analyze_batch(clips)
    assert len(results) == 3
    assert all(r.new_tokens == r.max_new_tokens == 8 for r in results)
    assert all(r.timings.compiled and r.timings.batch_clips == 3 for r in results)
    (shape, cache), *_ = seen
    assert shape[0] == 4 and shape[1] % tiny.params.pad_multiple == 0 and cache == "static"
    seen.clear()
    tiny._warm_up()
    assert [s[0][0] for s in seen] == batch_buckets(tiny.params.batch_size)
    # The warm-up's prompt is as long as any clip's with up to warm_up_scenes scenes: such
    # a clip meets the static cache and graphs the warm-up sized, not larger ones.
    warm_len = seen[0][0][1]
    n = tiny.params.warm_up_scenes
    many = {"scene_segmentation": up.scenes([(1.25 * i, 1.25 * (i + 1)) for i in range(n)])}
    seen.clear()
    tiny.analyze_batch([_clip(_frames(2, seed=9), many, duration=1.25 * n)])
    assert seen[0][0][1] <= warm_len


def test_gpu_decoding_loop_answers_as_generate(tiny, monkeypatch):
    """The GPU path with our decoding loop (built uncompiled here): the same answers as
    transformers' generate with the static cache, and the timings say which ran."""
    from tiktok_analyzer.analyzers._decoding import StaticGreedyDecoder

    monkeypatch.setattr(tiny, "compiled", True)
    monkeypatch.setattr(tiny.params, "max_new_tokens", 12)
    monkeypatch.setattr(tiny.params, "max_frames", 2)
    clips = [_clip(_frames(2, seed=k), UPSTREAM) for k in range(3)]
    monkeypatch.setattr(tiny, "_decoder", None)
    want = tiny.analyze_batch(clips)
    decoder = StaticGreedyDecoder(tiny.model, compile=False, max_batch=4)
    monkeypatch.setattr(tiny, "_decoder", decoder)
    got = tiny.analyze_batch(clips)
    assert [r.timings.decoder for r in want] == ["generate"] * 3
    assert [r.timings.decoder for r in got] == ["loop"] * 3
    assert [r.raw_text for r in got] == [r.raw_text for r in want]
    assert all(r.new_tokens == 12 for r in got)


def test_unknown_decoder_is_refused(monkeypatch):
    monkeypatch.setenv(MODE_ENV, "synthetic-tiny")
    with pytest.raises(ValueError, match="decoder must be one of loop, generate"):
        VideoLlava(params=VideoLlava.Params(decoder="vllm"))


def test_many_frames_are_subsampled(tiny, monkeypatch):
    monkeypatch.setattr(tiny.params, "max_frames", 3)
    result = tiny.analyze(_clip(_frames(7)))
    assert result.frames_used == 3


def test_pad_keeps_the_whole_vertical_frame(tiny, monkeypatch):
    """A red band along the top of a 9:16 frame: padded, the model sees it; with the
    processor's own centre crop it is cut away."""
    frames = np.zeros((2, 597, 336, 3), np.uint8)
    frames[:, :40] = (255, 0, 0)

    def top_centre_red(fit: str) -> float:
        monkeypatch.setattr(tiny.params, "frame_fit", fit)
        prepared = tiny._prepare(_clip(frames))
        out = tiny.processor(text=[prepared.prompt], videos=[prepared.frames], return_tensors="pt")
        return float(out["pixel_values_videos"][0, 0, 0, 5, 168])  # CLIP-normalised red

    assert top_centre_red("pad") > 1.5
    assert top_centre_red("crop") < -1.5


def test_saved_synthetic_model_loads_like_real_weights(tiny, tmp_path, monkeypatch):
    """The from_pretrained + AutoProcessor path real weights take (and synthetic nf4 on a
    GPU), run on a saved tiny model: it answers exactly as the model built in memory."""
    import torch

    monkeypatch.setenv(MODE_ENV, "synthetic-tiny")
    monkeypatch.setenv(DIR_ENV, str(tmp_path))
    folder = save_synthetic(resolve("video_llava"), "cpu", torch.float32)
    assert (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()
    assert folder.is_relative_to(tmp_path / "synthetic" / "video_llava")
    loaded = VideoLlava()
    loaded._load_pretrained(folder)
    loaded.processor.tokenizer.padding_side = "left"
    clip = _clip(_frames(4), UPSTREAM)
    assert loaded.analyze(clip).raw_text == tiny.analyze(clip).raw_text


def test_synthetic_tokenizer_has_the_real_ids():
    config = build_config(resolve("video_llava", "synthetic-tiny").config)
    processor = build_processor(config)
    tok = processor.tokenizer
    assert len(tok) == config.text_config.vocab_size == 32064
    assert tok.convert_tokens_to_ids(["<video>", "<image>"]) == [32000, 32001]
    assert (tok.bos_token_id, tok.eos_token_id) == (1, 2)
    text = "USER: <video>\nWhat happens? ASSISTANT:"
    ids = tok(text)["input_ids"]
    assert ids[0] == 1 and ids.count(32000) == 1
    # Llama-like pieces: letter runs of at most 4, each digit, a space before a number
    pieces = tok.backend_tokenizer.pre_tokenizer.pre_tokenize_str("What happens? at 12.5 s")
    assert [p for p, _ in pieces] == [
        "What",
        "happ",
        "ens",
        "?",
        "at",
        " ",
        "1",
        "2",
        ".",
        "5",
        "s",
    ]
    assert tok.convert_ids_to_tokens(tok("ens ?")["input_ids"]) == ["<s>", "ens", "?"]
    # 336 px frames, 14 px patches pooled 2x2: 144 tokens a frame
    frames = _frames(3)
    out = processor(text=[text], videos=[frames], return_tensors="pt")
    assert int((out["input_ids"] == 32000).sum()) == 3 * 144
    assert tuple(out["pixel_values_videos"].shape) == (1, 3, 3, 336, 336)


#: Tokens of the real model's tokenizer (Llama 2's, 32000 pieces; LLaVA-NeXT-Video-7B adds
#: <video> and <image> as one token each) for build_prompt's prompt of a 30 s clip cut into
#: N even scenes, as video_llava sends it. Counted on 2026-12-07 with llama-tokenizer-js
#: 1.2.2 (npm; the Llama 2 vocabulary and merges), BOS included.
LLAMA_TOKENS = {1: 194, 3: 260, 5: 324, 8: 421, 12: 561, 24: 985}


@pytest.mark.parametrize("scenes", sorted(LLAMA_TOKENS))
def test_synthetic_prompts_are_as_long_as_real_ones(scenes):
    """A synthetic run prefills and caches as many prompt tokens as a real one would: not
    fewer (it would time less work), at most 12 % more. Byte pieces gave 2 to 3 times."""
    config = build_config(resolve("video_llava", "synthetic-tiny").config)
    tok = build_processor(config).tokenizer
    ranges = _even_ranges(30.0, scenes)
    llava = VideoLlava()
    llava._video_token = "<video>"  # load() takes it from the processor
    prompt = llava._prompt(build_prompt(ranges, 30.0, 3.0))
    ratio = len(tok(prompt)["input_ids"]) / LLAMA_TOKENS[scenes]
    assert 1.0 <= ratio <= 1.12, ratio


def test_full_config_is_the_real_7b():
    import torch
    from transformers import LlavaNextVideoForConditionalGeneration

    config = build_config(resolve("video_llava", "synthetic-full").config)
    with torch.device("meta"):
        model = LlavaNextVideoForConditionalGeneration(config)
    params = sum(p.numel() for p in model.parameters())
    assert params == pytest.approx(7.06e9, rel=0.002)  # the model card's 7.06 B
    assert config.text_config.vocab_size == 32064 and config.video_token_index == 32000
    assert config.vision_config.image_size // config.vision_config.patch_size == 24


def test_precision_choices_on_a_cpu(monkeypatch):
    monkeypatch.setenv(MODE_ENV, "synthetic-tiny")
    nf4 = VideoLlava(VideoLlava.Params(precision="nf4"))
    (outcome,) = nf4.analyze_batch([_clip(_frames(2))])
    assert isinstance(outcome, Unavailable) and "CUDA" in str(outcome)
    for byte in ("int4", "fp8", "int8"):
        (outcome,) = VideoLlava(VideoLlava.Params(precision=byte)).analyze_batch(
            [_clip(_frames(2))]
        )
        assert isinstance(outcome, Unavailable) and f"{byte} needs a CUDA GPU" in str(outcome)
    with pytest.raises(ValueError, match="precision"):
        VideoLlava(VideoLlava.Params(precision="fp16"))


def test_real_weights_missing_say_how_to_get_them(monkeypatch, tmp_path):
    monkeypatch.setenv(MODE_ENV, "real")
    monkeypatch.setenv(DIR_ENV, str(tmp_path))
    analyzer = VideoLlava()
    (outcome,) = analyzer.analyze_batch([_clip(_frames(2))])
    assert isinstance(outcome, Unavailable)
    assert "tiktok-analyzer weights pull video_llava" in str(outcome)


def test_gpu_config_prefers_the_compiled_batch_sizes():
    from tiktok_analyzer.serving.generate import render_config

    assert VideoLlava.preferred_batch == tuple(batch_buckets(VideoLlava.Params().batch_size))
    config = render_config("video_llava", "KIND_GPU")
    assert "preferred_batch_size: [ 1, 2, 4 ]" in config
    assert "kind: KIND_GPU count: 1 }" in config and "\n# Conservative" in config
    assert "preferred_batch_size" not in render_config("video_llava")  # the CPU config


def test_warm_up_falls_back_to_the_models_step_with_its_layers_split_again(tiny, monkeypatch):
    """Where our step fails in the warm-up, the model's own step takes over; under int4 the
    fused q/k/v and gate/up products are split back into their parts first (the model's
    step calls the parts, each of which would otherwise run the whole fused product)."""
    import torch

    from tiktok_analyzer.analyzers import llava
    from tiktok_analyzer.analyzers._decoding import StaticGreedyDecoder
    from tiktok_analyzer.analyzers._quant import fuse_int4_projections, quantize_linears

    decoder_layers = tiny.model.get_decoder()
    quantize_linears(decoder_layers, "int4")
    assert fuse_int4_projections(decoder_layers) > 0
    monkeypatch.setattr(tiny, "compiled", True)
    monkeypatch.setattr(tiny.params, "max_new_tokens", 4)
    monkeypatch.setattr(tiny.params, "max_frames", 2)
    ours = StaticGreedyDecoder(tiny.model, compile=False, max_batch=4)
    assert ours.step_kind == "ours"

    def broken(*args, **kwargs):
        raise RuntimeError("inductor could not compile the step")

    monkeypatch.setattr(ours, "generate", broken)
    monkeypatch.setattr(tiny, "_decoder", ours)
    built = []

    def uncompiled(model, compile, max_batch, step):  # inductor is the GPU's, not the test's
        built.append(step)
        return StaticGreedyDecoder(model, compile=False, max_batch=max_batch, step=step)

    monkeypatch.setattr(llava, "StaticGreedyDecoder", uncompiled)
    item = tiny._prepare(_clip(_frames(2), UPSTREAM))
    with torch.no_grad():
        tiny._warm_up_batch([item])
    assert built == ["transformers"] and tiny._decoder.step_kind == "transformers"
    assert not any(
        hasattr(m, "qkv_proj") or hasattr(m, "gate_up_proj") for m in decoder_layers.modules()
    )
    result = tiny.analyze(_clip(_frames(2), UPSTREAM))
    assert result.timings.decoder == "loop" and result.new_tokens == 4
