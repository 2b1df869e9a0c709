"""Video description: LLaVA-NeXT-Video-7B watches 32 frames and says what the clip is.

The model (transformers' ``LlavaNextVideoForConditionalGeneration``) gets the clip's frames,
sampled uniformly, and one prompt that names the scenes found by scene_segmentation (their
time ranges) and asks for labelled lines: a summary, one line per scene, the setting, the
people and what they do, the visual style, the hook of the first seconds and the call to
action. :func:`parse_answer` reads the answer back into fields: JSON first (some answers
come as JSON), then labelled lines, else the raw text alone with ``parsed = False``. The
result's ``scenes`` always carry exactly the upstream scene ranges (one scene for the whole
clip when scene_segmentation did not run), each with what the model said about it.

Precision (``precision`` Param): ``bf16`` on a GPU with at least ``bf16_min_gpu_gb`` of
memory, bitsandbytes ``nf4`` (double quantization; the vision tower, the projector and the
LM head stay bf16) on a smaller GPU, ``fp32`` on a CPU. bitsandbytes is an optional GPU
extra (``pip install 'tiktok-analyzer[gpu]'``); without it nf4 answers ``unavailable``.
``int4`` (GPU only, chosen by name) loads bf16 and then stores the text model's decoder
weights in four bits, in groups of 128 inputs with a bf16 scale and offset each
(:mod:`._quant`, torch's tinygemm kernel, as gpt-fast and torchao's int4 weight-only; the
vision tower, the projector and the LM head stay bf16). Decoding a token reads the decoder's
weights once, so at a few clips a step it is bound by memory bandwidth: on an H100 a
step's linear layers took 0.64 ms a pass of 8 layers against bf16's 1.37, and 384 tokens
2.8 to 3.1 s in the pipeline against bf16's 3.8 to 4.1 (bench/results/gpu_h100.md). A
prompt's thousands of rows take cuBLAS with the weights widened to bf16 (tinygemm is made
for a few rows: through it the prompt cost 2.3 s more). The price is precision: four-bit
groups round a weight by up to 1/30 of its group's range, and the answers' quality on real
weights is not measured here (no real weights on our machines), so bf16 stays the default
where it fits.
``fp8`` and ``int8`` (GPU only, chosen by name) store them in one byte each: 6.5 GB less,
for a GPU where bf16 does not fit beside the other models. They are not faster on an H100
(bench/gpu/linear_bench.py, bench/gpu/step_profile.py): cuBLAS streams bf16 weights at 2.3
TB/s; its fp8 kernels for a few rows reach 1.25 TB/s of one-byte weights (a 7 B step: 8.3
ms a token against bf16's 7.7), and int8 takes 20 % less time than bf16 at one clip but
twice as much at four. int4 needs compute capability 8.0 or more, fp8 8.9.

Frames (``frame_fit`` Param): short-form video is vertical, and the model's own processor
keeps the centre square of each frame (resize the short side to 336, crop): captions and
calls to action at the top and bottom would be cut away. ``pad`` (the default) pads each
frame to a square with CLIP's mean colour first, so the whole picture is seen, smaller;
``crop`` hands the frames to the processor as they are.

Synthetic weights (``TIKTOK_ANALYZER_WEIGHTS=synthetic-tiny|synthetic-full``): the same
model class from the manifest's config with random values, a tokenizer and processor built
here (:func:`build_processor`: exactly the real vocabulary size, ``<video>``/``<image>`` at
the real ids, prompts cut into 1.02-1.11 times the real tokenizer's tokens, CLIP's
preprocessing). Random weights never stop and say nothing: generation
is forced to exactly ``max_new_tokens`` tokens (``min_new_tokens = max_new_tokens``), the
longest answer a real model is allowed, so a benchmark on synthetic weights times the worst
case and nothing shorter; the answer lands as raw text (``parsed = False``) and the result's
``max_new_tokens`` states the budget. The tiny model keeps the full budget too: 384 tokens
take about 1.5 s on one CPU core. On a GPU the full model is built on the device directly;
for nf4 it is built in bf16, saved once under ``<weights dir>/synthetic/video_llava/`` and
loaded back through the same ``from_pretrained`` + ``BitsAndBytesConfig`` path as real
weights.

Speed on a GPU (``compile`` Param, on by default, CUDA only; a CPU always runs eager):
generation uses a static KV cache and a decoding step compiled with ``torch.compile``
(CUDA graphs). By default (``decoder = "loop"``) our own greedy loop replays that step
token after token with nothing else between two replays (:mod:`._decoding`: transformers'
``generate`` runs its Python and reads a flag back from the GPU at every token; with it the
H100 took 14 ms a token). The step is our own walk through the Llama text model's layers,
with q, k, v (and the MLP's gate, up) as one four-bit product each under int4; ``decoder = "generate"`` uses transformers' ``generate`` with
its own static cache, and takes over if the loop fails to compile. Both give the same
tokens. Compiling takes tens of seconds per input shape, so :meth:`VideoLlava.load` pays it
once with warm-up generations at the real frame count and ``max_new_tokens`` for every
batch size a batch is padded to (:func:`batch_buckets`), and prompts are left-padded to a
multiple of ``pad_multiple`` tokens: a clip's shapes then always match a compiled graph and
the first clip pays nothing. Measured figures are in bench/results/gpu_h100.md.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import logging
import math
import re
import shutil
import string
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tiktok_analyzer.analyzers import weights as weights_layer
from tiktok_analyzer.analyzers._decoding import STEPS, LlamaStep, StaticGreedyDecoder
from tiktok_analyzer.analyzers._learned import LearnedAnalyzer, Prepared, seeded
from tiktok_analyzer.analyzers.base import (
    AnalyzerResult,
    Clip,
    ClipMeta,
    FrameSpec,
    Unavailable,
)
from tiktok_analyzer.analyzers.results.llava import (  # noqa: F401 - re-exported
    SceneDescription,
    Timings,
    VideoLlavaResult,
)
from tiktok_analyzer.analyzers.results.scenes import SceneSegmentationResult

__all__ = [
    "PRECISIONS",
    "ParsedAnswer",
    "SceneDescription",
    "Timings",
    "VideoLlava",
    "batch_buckets",
    "build_config",
    "build_processor",
    "build_prompt",
    "parse_answer",
    "scene_ranges",
]

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "bf16", "int4", "fp8", "int8", "nf4", "fp32")
# Decoder weights quantized by _quant after a bf16 model is built or loaded.
_QUANTIZED = ("int4", "fp8", "int8")
# The least compute capability each needs: tinygemm's int4 kernel, fp8 tensor cores.
_MIN_CAPABILITY = {"int4": (8, 0), "fp8": (8, 9)}
FRAME_FITS = ("pad", "crop")
DECODERS = ("loop", "generate")
# CLIP's mean colour (OPENAI_CLIP_MEAN x 255): padding that normalises to zero.
_CLIP_MEAN_RGB = (122, 116, 104)
# Bumped when build_processor changes, so saved synthetic folders are rebuilt.
_SYNTHETIC_PROCESSOR_VERSION = 2  # 2: Llama-like pieces, not bytes
_GPU_EXTRA = "pip install 'tiktok-analyzer[gpu]'"


# ---------------------------------------------------------------------------------------
# The answer: prompt and parser


@dataclass
class ParsedAnswer:
    """Fields read from the model's answer (None: not found). ``scenes`` maps the scene
    number (1-based) to its text; unnumbered scene lines take the next free number."""

    summary: str | None = None
    scenes: dict[int, str] = field(default_factory=dict)
    setting: str | None = None
    people: str | None = None
    style: str | None = None
    hook: str | None = None
    call_to_action: str | None = None
    parsed: bool = False

    def found(self) -> int:
        """How many distinct fields the answer gave."""
        singles = [self.summary, self.setting, self.people, self.style, self.hook]
        return sum(v is not None for v in singles) + bool(self.scenes) + bool(self.call_to_action)


# Label (as the model may write it) -> field. Longer labels are tried first.
_LABELS = {
    "summary": "summary",
    "video summary": "summary",
    "description": "summary",
    "overview": "summary",
    "scene": "scene",
    "setting": "setting",
    "location": "setting",
    "people and actions": "people",
    "people & actions": "people",
    "people": "people",
    "characters": "people",
    "subjects": "people",
    "visual style": "style",
    "style": "style",
    "hook": "hook",
    "opening hook": "hook",
    "call to action": "call_to_action",
    "cta": "call_to_action",
}
_LABEL_ALT = "|".join(
    re.escape(k).replace(r"\ ", r"[\s_-]+") for k in sorted(_LABELS, key=len, reverse=True)
)
# "SCENE 2 (3.0-6.5 s): text", "**Hook:** text", "- Setting - text", '"summary": "text",'
_LINE = re.compile(
    r"^\s*(?:[-*•>#]+\s*|\d+[.)]\s+)?(?:\*\*|__)?\s*[\"']?"
    rf"(?P<label>{_LABEL_ALT})(?:\s*(?P<num>\d+))?[\"']?\s*(?:\([^)]*\))?\s*(?:\*\*|__)?"
    r"\s*(?::|\s[-–—]\s)\s*(?:\*\*|__)?\s*(?P<text>.*)$",
    re.IGNORECASE,
)
_NONE = re.compile(
    r"^(?:none|n/?a|nothing|not applicable|no(?:ne)?(?: clear| explicit)? call[\s-]to[\s-]action"
    r"(?: (?:is )?(?:present|shown|given))?|there is no(?: clear| explicit)? call[\s-]to[\s-]action"
    r"(?: in (?:this|the) video)?|no hook)\W*$",
    re.IGNORECASE,
)


def _clean(text: Any) -> str | None:
    """One line of prose: flattened, whitespace collapsed, stray quotes and markdown off."""
    if text is None:
        return None
    if isinstance(text, dict):
        text = ", ".join(s for s in (_clean(v) for v in text.values()) if s)
    elif isinstance(text, (list, tuple)):
        text = "; ".join(s for s in (_clean(v) for v in text) if s)
    text = " ".join(str(text).split())
    text = text.strip().strip("*_").strip().rstrip(",").strip().strip("\"'").strip()
    return text or None


def _field_of(label: str) -> str:
    return _LABELS[re.sub(r"[\s_-]+", " ", label.lower())]


def _key_field(key: str) -> tuple[str | None, int | None]:
    """A JSON key -> (field, scene number)."""
    norm = re.sub(r"[\s_-]+", " ", key.strip().lower())
    m = re.fullmatch(r"scene (\d+)", norm)
    if m:
        return "scene", int(m.group(1))
    if norm in ("scenes", "scene descriptions", "per scene"):
        return "scenes", None
    if norm == "call to action":
        return "call_to_action", None
    return _LABELS.get(norm), None


def _parse_json(text: str) -> ParsedAnswer | None:
    body = re.sub(r"```(?:json)?", "", text)
    start, end = body.find("{"), body.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        data = json.loads(body[start : end + 1])
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    out = ParsedAnswer()
    for key, value in data.items():
        name, number = _key_field(str(key))
        if name is None:
            continue
        if name == "scenes":
            _json_scenes(value, out)
        elif name == "scene":
            if number is not None and (t := _clean(value)):
                out.scenes[number] = t
        else:
            setattr(out, name, _clean(value))
    if out.found() == 0:
        return None
    return out


def _json_scenes(value: Any, out: ParsedAnswer) -> None:
    items: list[tuple[int | None, Any]]
    if isinstance(value, dict):
        items = []
        for k, v in value.items():
            m = re.search(r"\d+", str(k))
            items.append((int(m.group()) if m else None, v))
    elif isinstance(value, list):
        items = [(None, v) for v in value]
    else:
        items = [(None, value)]
    for number, item in items:
        if isinstance(item, dict):
            for k in ("scene", "index", "number", "id"):
                if isinstance(item.get(k), int):
                    number = item[k]
                    break
            for k in ("description", "text", "summary", "content", "what_happens"):
                if k in item:
                    item = item[k]
                    break
        text = _clean(item)
        if text:
            out.scenes[number if number is not None else _next_free(out.scenes)] = text


def _next_free(scenes: dict[int, str]) -> int:
    return max(scenes, default=0) + 1


def _parse_lines(text: str) -> ParsedAnswer:
    out = ParsedAnswer()
    current: tuple[str, int | None] | None = None
    parts: dict[tuple[str, int | None], list[str]] = {}
    order: list[tuple[str, int | None]] = []
    for line in text.splitlines():
        m = _LINE.match(line)
        if m:
            name = _field_of(m.group("label"))
            number = int(m.group("num")) if name == "scene" and m.group("num") else None
            if name == "scene" and number is None:
                number = -(len([k for k in order if k[0] == "scene"]) + 1)  # placeholder
            key = (name, number)
            if key not in parts:
                parts[key] = []
                order.append(key)
            parts[key].append(m.group("text"))
            current = key
        elif current is not None and line.strip():
            parts[current].append(line)
    for name, number in order:
        value = _clean(" ".join(parts[(name, number)]))
        if value is None:
            continue
        if name == "scene":
            slot = number if number is not None and number > 0 else _next_free(out.scenes)
            out.scenes.setdefault(slot, value)
        elif getattr(out, name) is None:
            setattr(out, name, value)
    return out


def parse_answer(text: str) -> ParsedAnswer:
    """Read the model's answer: JSON first, then labelled lines. ``parsed`` is True when the
    answer gave its summary or at least two of the asked-for fields."""
    answer = _parse_json(text) or _parse_lines(text)
    for name in ("hook", "call_to_action"):
        value = getattr(answer, name)
        if value is not None and _NONE.match(value):
            setattr(answer, name, None)
    answer.parsed = answer.summary is not None or answer.found() >= 2
    return answer


def scene_ranges(clip: Clip) -> tuple[list[tuple[float, float]], str]:
    """The scene ranges to describe: scene_segmentation's, exactly, or the whole clip.
    Returns (ranges, source) with source ``scene_segmentation`` or ``whole_clip``."""
    upstream = clip.upstream_result(SceneSegmentationResult)
    ranges = [
        (s.start_s, s.end_s)
        for s in (upstream.scenes if upstream is not None else [])
        if math.isfinite(s.start_s) and math.isfinite(s.end_s) and s.end_s > s.start_s >= 0
    ]
    if ranges:
        return sorted(ranges), "scene_segmentation"
    end = float(clip.meta.duration_s or 0.0)
    if clip.timestamps_s is not None and len(clip.timestamps_s):
        end = max(end, float(np.max(clip.timestamps_s)))
    return [(0.0, end)], "whole_clip"


def _even_ranges(duration_s: float, count: int) -> list[tuple[float, float]]:
    step = duration_s / max(count, 1)
    return [(i * step, (i + 1) * step) for i in range(max(count, 1))]


def build_prompt(ranges: Sequence[tuple[float, float]], duration_s: float, hook_s: float) -> str:
    """The question put after the video: the scenes by time, and the labelled lines wanted."""
    scene_lines = "\n".join(
        f"Scene {i}: {a:.1f} s to {b:.1f} s" for i, (a, b) in enumerate(ranges, start=1)
    )
    answer_scenes = "\n".join(
        f"SCENE {i}: <what happens in scene {i}>" for i in range(1, len(ranges) + 1)
    )
    return (
        f"This is a short vertical social-media video of {duration_s:.1f} seconds, shown as "
        f"frames sampled evenly from start to end. It has {len(ranges)} "
        f"scene{'s' if len(ranges) != 1 else ''}:\n{scene_lines}\n"
        "Describe the video. Answer with exactly these labelled lines and nothing else:\n"
        "SUMMARY: <one or two sentences about the whole video>\n"
        f"{answer_scenes}\n"
        "SETTING: <where it takes place>\n"
        "PEOPLE: <who appears and what they do, or none>\n"
        "STYLE: <visual style: camera, editing, colours, text on screen>\n"
        f"HOOK: <what grabs attention in the first {hook_s:g} seconds>\n"
        "CTA: <the call to action (follow, buy, comment, link...), or none>"
    )


# ---------------------------------------------------------------------------------------
# Synthetic model: config, tokenizer and processor built here


def build_config(table: dict[str, Any]):
    """The manifest's synthetic table -> ``LlavaNextVideoConfig`` (nested vision and text
    tables become CLIPVisionConfig and LlamaConfig)."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaNextVideoConfig

    rest = {k: v for k, v in table.items() if k not in ("vision_config", "text_config")}
    return LlavaNextVideoConfig(
        vision_config=CLIPVisionConfig(**dict(table["vision_config"])),
        text_config=LlamaConfig(**dict(table["text_config"])),
        **rest,
    )


#: How the synthetic tokenizer cuts text: a space before a digit, each digit, letters in
#: runs of at most four, punctuation runs. On our prompts this gives 1.02 to 1.11 times
#: the tokens of the real model's (Llama 2) tokenizer, measured with llama-tokenizer-js
#: 1.2.2 (tests/unit/test_llava.py): the prompt a synthetic run prefills and caches is as
#: long as a real one's, never shorter. Byte-level pieces, as before, gave 2 to 3 times.
_SYNTHETIC_PIECES = r" (?=\d)|\d|[A-Za-z]{1,4}|[^\sA-Za-z\d]+"


def _synthetic_tokenizer(vocab_size: int, video_id: int, image_id: int):
    """A tokenizer of exactly ``vocab_size`` ids: ``<unk> <s> </s>`` at 0-2 (Llama's),
    ``<video>`` and ``<image>`` at the real model's ids, ``<pad>`` after them, reserved ids
    to the end. Text is cut into pieces about as many as Llama's tokens
    (:data:`_SYNTHETIC_PIECES`); a piece outside the vocabulary (single characters, a
    space, letter runs of two and three, then of four to fill) is ``<unk>``. Random ids
    decode to word-like garbage."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        models,
        pre_tokenizers,
        processors,
    )
    from transformers import PreTrainedTokenizerFast

    specials = {0: "<unk>", 1: "<s>", 2: "</s>", video_id: "<video>", image_id: "<image>"}
    pad_id = max(video_id, image_id) + 1
    specials[pad_id] = "<pad>"
    if pad_id >= vocab_size:
        raise ValueError(f"vocab_size {vocab_size} leaves no room for <pad> after the media ids")
    letters = string.ascii_lowercase
    symbols = iter(
        [
            " ",
            *(c for c in string.printable if not c.isspace()),
            *("".join(c) for n in (2, 3, 4) for c in itertools.product(letters, repeat=n)),
        ]
    )
    vocab: dict[str, int] = {}
    for i in range(vocab_size):
        if i in specials:
            vocab[specials[i]] = i
        elif i < min(video_id, image_id):
            vocab[next(symbols)] = i
        else:
            vocab[f"<reserved_{i}>"] = i
    if len(vocab) != vocab_size:
        raise ValueError("synthetic vocabulary collided")
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(
        Regex(_SYNTHETIC_PIECES), behavior="removed", invert=True
    )
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    reserved = [t for t, i in vocab.items() if t.startswith("<reserved_")]
    tok.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in [*specials.values(), *reserved]]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        padding_side="left",
    )


def build_processor(config):
    """A ``LlavaNextVideoProcessor`` built locally for a synthetic model: the synthetic
    tokenizer and the real model's preprocessing (short side to the vision tower's size,
    centre crop, CLIP mean and std)."""
    from transformers import LlavaNextImageProcessor, LlavaNextVideoProcessor
    from transformers.models.llava_next_video.video_processing_llava_next_video import (
        LlavaNextVideoVideoProcessor,
    )

    side = int(config.vision_config.image_size)
    tokenizer = _synthetic_tokenizer(
        int(config.text_config.vocab_size),
        int(config.video_token_index),
        int(config.image_token_index),
    )
    size = {"shortest_edge": side}
    crop = {"height": side, "width": side}
    return LlavaNextVideoProcessor(
        video_processor=LlavaNextVideoVideoProcessor(size=size, crop_size=crop),
        image_processor=LlavaNextImageProcessor(
            size=size, crop_size=crop, image_grid_pinpoints=config.image_grid_pinpoints
        ),
        tokenizer=tokenizer,
        patch_size=int(config.vision_config.patch_size),
        vision_feature_select_strategy=config.vision_feature_select_strategy,
    )


def synthetic_folder(weights: weights_layer.Weights) -> Path:
    """Where a synthetic model of ``weights.config`` is saved (keyed by the config's hash)."""
    digest = hashlib.sha256(
        json.dumps([weights.config, _SYNTHETIC_PROCESSOR_VERSION], sort_keys=True).encode()
    ).hexdigest()[:12]
    size = weights.kind.removeprefix("synthetic-")
    entry = weights.model
    return (
        weights_layer.weights_dir() / "synthetic" / entry.analyzer / f"{entry.name}-{size}-{digest}"
    )


def build_random_model(config, device: str, dtype):
    """The model with random values (seed 0), built directly on ``device`` in ``dtype``:
    a 7 B model is never initialised on the CPU first."""
    import torch
    from transformers import LlavaNextVideoForConditionalGeneration

    seeded(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlavaNextVideoForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    return model.eval()


def save_synthetic(weights: weights_layer.Weights, device: str, dtype) -> Path:
    """Build the synthetic model and its processor once and save them as a model folder
    (safetensors + config + processor files), so it loads through ``from_pretrained`` like
    real weights. A concurrent build of the same folder is harmless (atomic rename)."""
    folder = synthetic_folder(weights)
    if (folder / "config.json").is_file():
        return folder
    config = build_config(weights.config or {})
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=folder.parent))
    try:
        model = build_random_model(config, device, dtype)
        model.save_pretrained(tmp)
        build_processor(config).save_pretrained(tmp)
        del model
        if device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()  # the bf16 copy goes before the quantized one loads
        tmp.chmod(0o755)  # mkdtemp makes it private; other users' servers read it too
        try:
            tmp.rename(folder)
        except OSError:
            if not (folder / "config.json").is_file():  # not a concurrent build that won
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


# ---------------------------------------------------------------------------------------
# The analyzer


@dataclass
class _Prepared:
    frames: np.ndarray
    ranges: list[tuple[float, float]]
    scenes_from: str
    prompt: str


class VideoLlava(LearnedAnalyzer):
    """What the clip shows, scene by scene; its hook and its call to action."""

    name = "video_llava"
    # LLaVA-NeXT-Video was trained on 32 frames sampled uniformly; 336 is its CLIP's input.
    frames = FrameSpec(count=32, short_side=336)
    depends_on = ("scene_segmentation",)
    model_name = "llava-next-video-7b-hf"
    gpu_instances = 1
    # The batch sizes load() compiles (batch_buckets of the default batch_size 4).
    preferred_batch = (1, 2, 4)
    gpu_note = (
        "one 7 B model in bf16 (~20 GB with its cache) batches clips itself; its decoding "
        "step runs at the compiled sizes 1, 2 and 4, rows past a batch idle"
    )
    # Its 384 tokens are most of a clip's wall time on a GPU (bench/results/gpu_h100.md).
    gpu_critical = True

    @dataclass
    class Params:
        # auto: bf16 on a GPU with >= bf16_min_gpu_gb, nf4 on a smaller GPU, fp32 on a CPU;
        # int4 (GPU only): bf16 with the decoder's weights in four bits (tinygemm), for
        # speed; fp8 / int8 (GPU only): in one byte each, for memory.
        precision: str = "auto"
        bf16_min_gpu_gb: float = 40.0
        # Tokens of the answer at most (the labelled lines take ~150 to 300). Synthetic
        # (random) weights generate exactly this many: the worst case, honestly timed.
        max_new_tokens: int = 384
        # Clips generated together (same frame count); 8 x 32 frames fit an H100 in bf16.
        batch_size: int = 4
        # More frames than this are subsampled uniformly (each costs 144 tokens).
        max_frames: int = 32
        # pad: the whole (vertical) frame padded to a square; crop: the processor's centre crop.
        frame_fit: str = "pad"
        # Frames smaller than this (short side, px) carry nothing to describe: failed.
        min_side: int = 32
        # The hook is what happens in the first hook_s seconds.
        hook_s: float = 3.0
        # GPU only: static KV cache + compiled decoding step, warmed up while loading
        # (~2.5x faster generation; tens of seconds of compiling per batch size at start).
        compile: bool = True
        # GPU only: "loop" decodes greedily in our own loop over the compiled step (no
        # Python between CUDA graph replays; see _decoding), "generate" uses transformers'
        # generate with its static cache. Both give the same tokens.
        decoder: str = "loop"
        # GPU only, with decoder "loop": the decoding step. "ours" walks the Llama text
        # model's layers (int4: q, k, v and gate, up fused into one product each);
        # "transformers" is the model's own forward; "auto" is ours where the model is
        # a Llama. Both give the same tokens.
        step: str = "auto"
        # Prompts are left-padded to a multiple of this many tokens, so prompts of other
        # scene counts reuse one compiled graph instead of compiling their own.
        pad_multiple: int = 256
        # The warm-up's prompt has this many scenes, so that clips with up to this many
        # reuse its compiled graphs (a clip with more compiles once more, on first sight).
        warm_up_scenes: int = 24
        # Frames through the vision tower at once (0: every frame of the batch). The
        # tower keeps every layer's hidden states, about 1 GB a clip of 32 frames in
        # bf16: on the H100, with every other model loaded, a batch of 7 clips ran out of
        # memory there (bench/results/gpu_h100.md).
        vision_frames: int = 32

    Result = VideoLlavaResult

    def load(self, weights: weights_layer.Weights) -> None:
        import torch

        p = self.params
        if p.precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {p.precision!r}"
            )
        if p.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, got {p.decoder!r}")
        if p.step not in STEPS:
            raise ValueError(f"step must be one of {', '.join(STEPS)}, got {p.step!r}")
        if p.frame_fit not in FRAME_FITS:
            raise ValueError(
                f"frame_fit must be one of {', '.join(FRAME_FITS)}, got {p.frame_fit!r}"
            )
        self.precision = self._choose_precision()
        self._dtype = torch.float32 if self.precision == "fp32" else torch.bfloat16
        self.synthetic = weights.kind != "real"
        started = time.perf_counter()
        if weights.kind == "real":
            assert weights.path is not None
            self._load_pretrained(weights.path)
        elif self.precision == "nf4":
            # Quantization happens inside from_pretrained: save the bf16 model once, then
            # load it exactly as real weights load.
            self._load_pretrained(save_synthetic(weights, self.device, torch.bfloat16))
        else:
            config = build_config(weights.config or {})
            self.processor = build_processor(config)
            self.model = build_random_model(config, self.device, self._dtype)
        log.info(
            "%s: %s weights on %s in %.1f s",
            self.name,
            weights.kind,
            self.model.device,
            time.perf_counter() - started,
        )
        if self.precision in _QUANTIZED:
            self._quantize()
        if p.vision_frames > 0:
            chunk_vision_tower(self.model, p.vision_frames)
        self.processor.tokenizer.padding_side = "left"
        self._video_token = getattr(self.processor, "video_token", "<video>")
        # transformers compiles the static cache's decoding step only on CUDA; a CPU keeps
        # the eager, dynamic cache (compiling there buys nothing and costs minutes).
        self.compiled = bool(p.compile) and str(self.model.device).startswith("cuda")
        self._decoder = None
        if self.compiled and p.decoder == "loop":
            self._decoder = StaticGreedyDecoder(
                self.model,
                compile=True,
                max_batch=max(batch_buckets(p.batch_size)),
                step=p.step,
            )
            log.info("%s: decoding step: %s", self.name, self._decoder.step_kind)
        if self.compiled:
            self._warm_up()

    def warm_up_first_call(self) -> None:
        """Nothing more: :meth:`load` already generated a full answer per batch size."""

    def _warm_up(self) -> None:
        """Compile now, in Triton's initialize, not on the first clip: one generation of
        the full ``max_new_tokens`` at the real frame count per padded batch size."""
        count = min(int(self.frames.count or 1), self.params.max_frames)
        side = int(self.model.config.vision_config.image_size)
        frames = np.full((count, side, side * 9 // 16, 3), 128, np.uint8)
        clip = Clip(
            meta=ClipMeta(duration_s=30.0, fps=30.0, width=frames.shape[2], height=side),
            frames=frames,
            timestamps_s=np.linspace(0.0, 30.0, count, endpoint=False),
        )
        item = self._prepare(clip)
        # The longest prompt a clip may bring (warm_up_scenes scenes): the static cache is
        # sized by the longest call so far and the compiled graphs by its size, so a real
        # clip with more scenes than the warm-up's would compile every bucket once more
        # (seen on the H100: 30 s on the first clip, 48 s on the first batch of 4).
        ranges = _even_ranges(30.0, self.params.warm_up_scenes)
        item = replace(
            item,
            ranges=ranges,
            prompt=self._prompt(build_prompt(ranges, 30.0, self.params.hook_s)),
        )
        for size in batch_buckets(self.params.batch_size):
            start = time.perf_counter()
            self._warm_up_batch([item] * size)
            log.info(
                "%s: warm-up of batch %d (%d frames, %d new tokens) took %.1f s",
                self.name,
                size,
                count,
                self.params.max_new_tokens,
                time.perf_counter() - start,
            )

    def _warm_up_batch(self, batch: list) -> None:
        """One warm-up generation. Never a dead model for a faster loop: where our step
        fails to compile, our loop over the model's own step; where that fails too,
        transformers' generate (the result's timings name the decoder that ran)."""
        try:
            self._generate(batch)
            return
        except Exception:
            if self._decoder is None:
                raise
            log.exception("%s: our decoding (step %s) failed", self.name, self._decoder.step_kind)
        if self._decoder.step_kind == "ours":
            from tiktok_analyzer.analyzers._quant import unfuse_int4_projections

            # The model's own step calls q, k, v one by one: each on its own tiles again.
            unfused = unfuse_int4_projections(self.model.get_decoder())
            if unfused:
                log.info("%s: %d fused products split again", self.name, unfused)
            self._decoder = StaticGreedyDecoder(
                self.model, compile=True, max_batch=self._decoder.max_batch, step="transformers"
            )
            try:
                self._generate(batch)
                return
            except Exception:
                log.exception("%s: our loop over the model's step failed too", self.name)
        log.warning("%s: decoding with transformers' generate", self.name)
        self._decoder = None
        self._generate(batch)

    def _quantize(self) -> None:
        """The text model's decoder layers to four bits or one byte a weight (the LM head
        stays bf16: it is 2 % of the bytes, and the logits set every token)."""
        import torch

        from tiktok_analyzer.analyzers._quant import fuse_int4_projections, quantize_linears

        started = time.perf_counter()
        count = quantize_linears(self.model.get_decoder(), self.precision)
        fused = 0
        p = self.params
        ours = p.decoder == "loop" and p.step != "transformers"
        if self.precision == "int4" and ours and LlamaStep.fits(self.model.get_decoder()):
            # q, k, v and gate, up as one product each in our decoding step (_decoding).
            fused = fuse_int4_projections(self.model.get_decoder())
        if self.precision == "int8":
            # One row at a time, inductor fuses the int8 -> bf16 widening into the
            # matrix-vector product only with this on; without it the step writes the
            # bf16 weights out first and is slower than bf16.
            import torch._inductor.config as inductor

            inductor.coordinate_descent_tuning = True
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()
        log.info(
            "%s: %d decoder layers' weights in %s, %d fused products (%.1f s)",
            self.name,
            count,
            self.precision,
            fused,
            time.perf_counter() - started,
        )

    def _choose_precision(self) -> str:
        import torch

        wanted = self.params.precision
        on_gpu = self.device.startswith("cuda")
        if not on_gpu:
            if wanted in ("nf4", *_QUANTIZED):
                raise Unavailable(
                    f"video_llava precision {wanted} needs a CUDA GPU; this "
                    "instance runs on the CPU: set precision auto or fp32"
                )
            if wanted == "bf16":
                log.warning("video_llava: bf16 asked on the CPU, running fp32")
            return "fp32"
        if wanted == "auto":
            total = torch.cuda.get_device_properties(torch.device(self.device)).total_memory
            wanted = "bf16" if total >= self.params.bf16_min_gpu_gb * 1e9 else "nf4"
        if wanted in _MIN_CAPABILITY:
            major, minor = torch.cuda.get_device_capability(torch.device(self.device))
            least = _MIN_CAPABILITY[wanted]
            if (major, minor) < least:
                raise Unavailable(
                    f"video_llava precision {wanted} needs compute capability "
                    f"{least[0]}.{least[1]} or more; this GPU has {major}.{minor}: "
                    "set precision bf16 or int8"
                )
        if wanted == "nf4":
            missing = [
                m for m in ("bitsandbytes", "accelerate") if importlib.util.find_spec(m) is None
            ]
            if missing:
                raise Unavailable(
                    f"video_llava in nf4 needs {' and '.join(missing)} (not installed): "
                    f"{_GPU_EXTRA}"
                )
        return wanted

    def _load_pretrained(self, folder: Path) -> None:
        """Load a model folder (real weights, or a saved synthetic model) and its processor."""
        import torch
        from transformers import AutoProcessor, LlavaNextVideoForConditionalGeneration

        kwargs: dict[str, Any] = {"local_files_only": True, "dtype": self._dtype}
        if self.device.startswith("cuda"):
            kwargs["device_map"] = self.device
        if self.precision == "nf4":
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_compute_dtype=torch.bfloat16,
                bnb_4bit_use_double_quant=True,
                llm_int8_skip_modules=["vision_tower", "multi_modal_projector", "lm_head"],
            )
        self.model = LlavaNextVideoForConditionalGeneration.from_pretrained(
            str(folder), **kwargs
        ).eval()
        self.processor = AutoProcessor.from_pretrained(str(folder), local_files_only=True)

    # -- per clip -------------------------------------------------------------------------

    def _prepare(self, clip: Clip) -> _Prepared:
        p = self.params
        frames = np.asarray(clip.frames)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be (N, H, W, 3) RGB, got {list(frames.shape)}")
        h, w = frames.shape[1:3]
        if min(h, w) < p.min_side:
            raise ValueError(
                f"frames of {w}x{h} px are too small to describe "
                f"(video_llava needs at least {p.min_side} px on the short side)"
            )
        if frames.dtype != np.uint8:
            frames = np.clip(frames, 0, 255).astype(np.uint8)
        if len(frames) > p.max_frames:
            keep = np.linspace(0, len(frames) - 1, p.max_frames).round().astype(int)
            frames = frames[keep]
        frames = _fit(frames, int(self.model.config.vision_config.image_size), p.frame_fit)
        ranges, source = scene_ranges(clip)
        duration = max(float(clip.meta.duration_s or 0.0), ranges[-1][1])
        question = build_prompt(ranges, duration, p.hook_s)
        return _Prepared(np.ascontiguousarray(frames), ranges, source, self._prompt(question))

    def _prompt(self, question: str) -> str:
        return f"USER: {self._video_token}\n{question} ASSISTANT:"

    def prepare(self, clip: Clip) -> Prepared:
        # The clip is the model's input: it is batched whole, prompt and frames together.
        return Prepared(inputs=[self._prepare(clip)])

    def batch_group(self, item: _Prepared) -> int:
        # Clips of one generate call must have as many frames (pixel_values_videos stacks).
        return len(item.frames)

    def infer(self, inputs: list[_Prepared]) -> list[AnalyzerResult]:
        return self._generate(inputs)

    def finish(self, clip: Clip, prepared: Prepared, outputs: list[AnalyzerResult]) -> Result:
        return outputs[0]  # type: ignore[return-value]

    def _generate(self, batch: list[_Prepared]) -> list[AnalyzerResult]:
        import torch

        p = self.params
        compiled = getattr(self, "compiled", False)
        real = len(batch)
        rows = None
        if compiled:
            # A compiled graph per batch size: our step runs the next warmed-up size with
            # the rows past the batch idle; elsewhere the batch is filled up to it with
            # copies of its last clip (their answers are dropped).
            size = next(b for b in batch_buckets(p.batch_size) if b >= real)
            decoder = getattr(self, "_decoder", None)
            if decoder is not None and decoder.step_kind == "ours":
                rows = size
            else:
                batch = batch + [batch[-1]] * (size - real)
        start = time.perf_counter()
        text_kwargs: dict[str, Any] = {"pad_to_multiple_of": p.pad_multiple} if compiled else {}
        inputs = self.processor(
            text=[b.prompt for b in batch],
            videos=[b.frames for b in batch],
            padding=True,
            return_tensors="pt",
            **text_kwargs,
        )
        device = self.model.device
        inputs = {k: v.to(device) for k, v in inputs.items()}
        inputs["pixel_values_videos"] = inputs["pixel_values_videos"].to(self._dtype)
        preprocess_s = time.perf_counter() - start
        tokenizer = self.processor.tokenizer
        kwargs: dict[str, Any] = {
            "do_sample": False,
            "num_beams": 1,
            "max_new_tokens": p.max_new_tokens,
            "pad_token_id": tokenizer.pad_token_id
            if tokenizer.pad_token_id is not None
            else tokenizer.eos_token_id,
        }
        if self.synthetic:
            # Random weights never emit the end token: the whole budget, as a real answer
            # at its longest (a shorter forced answer would time less than a real one).
            kwargs["min_new_tokens"] = p.max_new_tokens
        start = time.perf_counter()
        with torch.inference_mode():
            new = self._decode(inputs, kwargs, compiled, rows)
        on_cuda = str(device).startswith("cuda")
        if on_cuda:
            torch.cuda.synchronize(device)
        generate_s = time.perf_counter() - start
        if on_cuda:
            # The prefill's activations (GBs at batch 4) go back to the driver: the GPU is
            # shared with the other models' processes.
            torch.cuda.empty_cache()
        new = new[:real].cpu()
        timings = Timings(
            preprocess_s=round(preprocess_s, 4),
            generate_s=round(generate_s, 4),
            batch_clips=real,
            compiled=compiled,
            decoder="loop" if getattr(self, "_decoder", None) is not None else "generate",
        )
        results = []
        for item, row in zip(batch[:real], new, strict=True):
            count = _answer_length(row, tokenizer.eos_token_id)
            raw = tokenizer.decode(row[:count], skip_special_tokens=True).strip()
            results.append(self._result(item, raw, count, timings))
        return results

    def _decode(
        self, inputs: dict[str, Any], kwargs: dict[str, Any], compiled: bool, rows: int | None
    ):
        """The new tokens of every row (greedy): our loop where it was built (its step
        ``rows`` wide), else transformers' generate (static cache and compiled on a GPU,
        eager on a CPU)."""
        decoder = getattr(self, "_decoder", None)
        if decoder is not None:
            eos = self.model.generation_config.eos_token_id
            if eos is None:
                eos = self.processor.tokenizer.eos_token_id
            return decoder.generate(
                inputs,
                max_new_tokens=kwargs["max_new_tokens"],
                eos_ids=list(eos) if isinstance(eos, list | tuple) else [eos],
                pad_id=kwargs["pad_token_id"],
                forced="min_new_tokens" in kwargs,
                rows=rows,
            )
        if compiled:
            kwargs["cache_implementation"] = "static"
        else:
            kwargs["disable_compile"] = True
        generated = self.model.generate(**inputs, **kwargs)
        return generated[:, inputs["input_ids"].shape[1] :]

    def _result(self, item: _Prepared, raw: str, count: int, timings: Timings) -> Result:
        answer = parse_answer(raw)
        if answer.parsed:
            description = answer.summary or " ".join(answer.scenes.values()) or raw
        else:
            description = raw
        scenes = []
        for k, (a, b) in enumerate(item.ranges, start=1):
            text = answer.scenes.get(k, "") if answer.parsed else ""
            if not text and len(item.ranges) == 1:
                text = description  # one scene is the whole clip
            scenes.append(SceneDescription(start_s=a, end_s=b, description=text))
        return self.Result(
            description=description,
            scenes=scenes,
            hook=answer.hook if answer.parsed else None,
            call_to_action=answer.call_to_action if answer.parsed else None,
            setting=answer.setting if answer.parsed else None,
            people=answer.people if answer.parsed else None,
            style=answer.style if answer.parsed else None,
            raw_text=raw,
            parsed=answer.parsed,
            new_tokens=count,
            max_new_tokens=self.params.max_new_tokens,
            frames_used=len(item.frames),
            scenes_from=item.scenes_from,
            precision=self.precision,
            timings=timings,
        )


def chunk_vision_tower(model, frames: int) -> None:
    """Make ``model`` (a LLaVA-NeXT-Video) run its vision tower on at most ``frames``
    frames at a time, and keep of every pass only the layers the model reads
    (``vision_feature_layer``; the others become None). The tower keeps each layer's
    hidden states, about 1 GB a clip of 32 frames in bf16, and its batch is every frame
    of every clip: a batch of 7 clips ran out of memory there on the H100. The features
    are the same, in the same order. An output without hidden states (a tuple) is left to
    the tower's own one pass."""
    owner = getattr(model, "model", model)  # the inner LlavaNextVideoModel
    tower = getattr(owner, "vision_tower", None)
    if tower is None:
        return
    original = getattr(tower.forward, "unchunked", tower.forward)
    layer = model.config.vision_feature_layer
    wanted = [layer] if isinstance(layer, int) else list(layer)
    step = max(1, int(frames))

    def forward(pixel_values, *args, **kwargs):
        n = int(pixel_values.shape[0])
        if n <= step:
            return original(pixel_values, *args, **kwargs)
        parts = []
        for start in range(0, n, step):
            part = original(pixel_values[start : start + step], *args, **kwargs)
            if getattr(part, "hidden_states", None) is None:
                del parts, part  # not the form this knows: one pass, as the model would
                return original(pixel_values, *args, **kwargs)
            keep = {i % len(part.hidden_states) for i in wanted}
            part.hidden_states = tuple(
                h if i in keep else None for i, h in enumerate(part.hidden_states)
            )
            part.attentions = None
            parts.append(part)
        return _joined(parts)

    forward.unchunked = original  # type: ignore[attr-defined]
    forward.frames = step  # type: ignore[attr-defined]
    tower.forward = forward


def _joined(parts):
    """One tower output from the passes' outputs, each field joined along the frames."""
    import torch

    def cat(tensors):
        return None if tensors[0] is None else torch.cat(tensors, dim=0)

    first = parts[0]
    for key in ("last_hidden_state", "pooler_output"):
        if getattr(first, key, None) is not None:
            setattr(first, key, cat([getattr(p, key) for p in parts]))
    first.hidden_states = tuple(
        cat([p.hidden_states[i] for p in parts]) for i in range(len(first.hidden_states))
    )
    return first


def batch_buckets(batch_size: int) -> list[int]:
    """The batch sizes a compiled model is warmed up for: powers of two below
    ``batch_size``, and ``batch_size`` itself. A batch is padded up to the next one, so
    at most half of a batch is padding and no clip meets an uncompiled shape."""
    top = max(1, int(batch_size))
    sizes = {top}
    size = 1
    while size < top:
        sizes.add(size)
        size *= 2
    return sorted(sizes)


def _answer_length(row, eos_id: int | None) -> int:
    """Generated tokens up to and including the first end token (padding after it)."""
    if eos_id is not None:
        hits = (row == eos_id).nonzero()
        if len(hits):
            return int(hits[0, 0]) + 1
    return int(row.shape[0])


def _fit(frames: np.ndarray, side: int, fit: str) -> np.ndarray:
    """Frames for the processor: larger ones shrunk (area averaging) to what the model will
    see anyway, and with ``pad`` padded to squares so the processor's centre crop keeps
    the whole picture."""
    h, w = frames.shape[1:3]
    scale = side / (max(h, w) if fit == "pad" else min(h, w))
    if scale < 1:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        frames = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])
    if fit == "pad" and frames.shape[1] != frames.shape[2]:
        frames = _pad_square(frames)
    return frames


def _pad_square(frames: np.ndarray) -> np.ndarray:
    """Pad (N, H, W, 3) frames to squares with CLIP's mean colour, the picture centred."""
    n, h, w, _ = frames.shape
    side = max(h, w)
    out = np.empty((n, side, side, 3), np.uint8)
    out[:] = np.array(_CLIP_MEAN_RGB, np.uint8)
    top, left = (side - h) // 2, (side - w) // 2
    out[:, top : top + h, left : left + w] = frames
    return out
