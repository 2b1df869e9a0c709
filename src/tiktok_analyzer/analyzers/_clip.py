"""CLIP for the zero-shot picture analyzers (composition_analysis, product_detection).

One class, :class:`ClipZeroShot`, holds an ``open_clip`` CLIP model, its tokenizer and its
preprocessing, and turns pictures into L2-normalised embeddings that are compared with the
text embeddings of label prompts (computed once, when the analyzer loads).

Weights (:mod:`.weights`):

* real: the state dict open_clip itself loads for the OpenAI tags, from the Hugging Face
  repositories named in ``open_clip/pretrained.py`` (``timm/vit_*_clip_224.openai``):
  ``open_clip_model.safetensors`` where the pinned revision has it, else OpenAI's
  ``pytorch_model.bin`` (read with ``torch.load(weights_only=True)``), from the local
  folder only, into the architecture committed in the manifest (``[model.synthetic.full]``
  is the real model's exact architecture; ``load_state_dict(strict=True)`` proves it).
  open_clip never downloads anything.
* synthetic: the same ``open_clip.model.CLIP`` class built from the manifest's config after
  :func:`seeded` ``(0)``: random values, real vocabulary (49408 tokens) and context (77).

The tokenizer is open_clip's ``SimpleTokenizer``, whose BPE merges ship inside the
open_clip_torch wheel: the real CLIP vocabulary, offline, for real and synthetic runs alike.

Preprocessing is CLIP's (resize the short side with area/bicubic filtering, centre-crop
the square, OpenAI mean/std), done on uint8 arrays with OpenCV and normalised as one torch
batch; ``fit="pad"`` instead letterboxes the whole picture into the square (a tall bottle
or a vertical frame keeps its ends), padding with the mean colour so padded pixels are 0
after normalisation.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tiktok_analyzer.analyzers import weights as weights_layer
from tiktok_analyzer.analyzers._learned import check_frames, chunks, seeded
from tiktok_analyzer.analyzers.base import Clip, Unavailable

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "FITS",
    "MIN_FRAME_SIDE",
    "ClipZeroShot",
    "Vocabulary",
    "build_clip_model",
    "clip_duration",
    "fit_square",
    "load_state",
    "validate_frames",
    "weights_file",
]

log = logging.getLogger(__name__)

#: OpenAI CLIP's normalisation (open_clip.constants.OPENAI_DATASET_MEAN / _STD).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
FITS = ("crop", "pad")
#: Frames whose short side is below this are refused (a failed clip, with the reason).
MIN_FRAME_SIDE = 32
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
# Keys of OpenAI's original checkpoints that are not parameters of open_clip's CLIP.
_NON_PARAMS = ("input_resolution", "context_length", "vocab_size")


@dataclass(frozen=True)
class Vocabulary:
    """Labels and, per label, the prompts whose mean embedding stands for it."""

    labels: tuple[str, ...]
    prompts: tuple[tuple[str, ...], ...]

    @classmethod
    def of(cls, entries: Sequence[tuple[str, Sequence[str]]]) -> Vocabulary:
        labels = tuple(label for label, _ in entries)
        if len(set(labels)) != len(labels):
            raise ValueError("vocabulary labels must be unique")
        prompts = tuple(tuple(p) for _, p in entries)
        if any(not p for p in prompts):
            raise ValueError("every label needs at least one prompt")
        return cls(labels, prompts)

    @classmethod
    def templated(cls, labels: Sequence[str], templates: Sequence[str]) -> Vocabulary:
        """Each label through each template (``"a photo of {}."``)."""
        return cls.of([(label, [t.format(label) for t in templates]) for label in labels])


def build_clip_model(config: dict[str, Any]):
    """open_clip's CLIP from a manifest table: ``embed_dim``, ``quick_gelu``,
    ``[vision_cfg]`` and ``[text_cfg]`` (open_clip's CLIPVisionCfg / CLIPTextCfg fields)."""
    from open_clip.model import CLIP

    cfg = dict(config)
    unknown = set(cfg) - {"embed_dim", "quick_gelu", "vision_cfg", "text_cfg"}
    if unknown:
        raise ValueError(f"unknown CLIP config key(s): {', '.join(sorted(unknown))}")
    return CLIP(
        embed_dim=int(cfg["embed_dim"]),
        vision_cfg=dict(cfg["vision_cfg"]),
        text_cfg=dict(cfg["text_cfg"]),
        quick_gelu=bool(cfg.get("quick_gelu", False)),
    )


def fit_square(image: np.ndarray, size: int, fit: str = "crop") -> np.ndarray:
    """One uint8 RGB picture (H, W, 3) as a ``size`` x ``size`` uint8 square.

    ``crop``: CLIP's own preprocessing, the short side resized to ``size`` and the centre
    cut out. ``pad``: the long side resized to ``size`` and the rest filled with CLIP's
    mean colour."""
    h, w = image.shape[:2]
    if h < 1 or w < 1:
        raise ValueError(f"empty picture of {w}x{h} pixels")
    scale = size / min(h, w) if fit == "crop" else size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    # Area averaging when shrinking (no aliasing from 4K frames), bicubic when enlarging,
    # as CLIP's bicubic-with-antialias resize does.
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(np.ascontiguousarray(image), (nw, nh), interpolation=interp)
    if fit == "crop":
        top, left = (nh - size) // 2, (nw - size) // 2
        return np.ascontiguousarray(resized[top : top + size, left : left + size])
    if fit != "pad":
        raise ValueError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")
    out = np.empty((size, size, 3), np.uint8)
    out[:] = np.round(np.array(CLIP_MEAN) * 255).astype(np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top : top + nh, left : left + nw] = resized
    return out


def weights_file(entry: weights_layer.ModelEntry) -> str:
    """The one state-dict file among a manifest entry's files."""
    found = [name for name in entry.files if name.endswith(_WEIGHT_SUFFIXES)]
    if len(found) != 1:
        raise Unavailable(f"{entry.key}: expected one weights file in the manifest, got {found}")
    return found[0]


def load_state(path: Path) -> dict[str, Any]:
    """A state dict from safetensors, or from a PyTorch file with ``weights_only=True`` (no
    arbitrary unpickling; its SHA-256 was checked by the weights layer when known)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(path)))
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise Unavailable(f"{path.name} holds no state dict")
    return dict(state)


class ClipZeroShot:
    """A CLIP model ready for zero-shot scoring on one device.

    ``vocabularies`` maps a name to a :class:`Vocabulary`; their text embeddings (the mean
    of each label's prompt embeddings, renormalised) are computed here, once."""

    def __init__(
        self,
        weights: weights_layer.Weights,
        device: str,
        vocabularies: dict[str, Vocabulary],
    ) -> None:
        import torch
        from open_clip.tokenizer import SimpleTokenizer

        self.torch = torch
        self.device = device
        model = self._build(weights)
        # Half precision on a GPU only (CLIP was trained in fp16); float32 on a CPU.
        self.dtype = torch.float16 if str(device).startswith("cuda") else torch.float32
        self.model = model.to(device=device, dtype=self.dtype).eval()
        size = self.model.visual.image_size
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.logit_scale = float(self.model.logit_scale.detach().float().exp().clamp(max=100))
        self.tokenizer = SimpleTokenizer(context_length=self.model.context_length)
        mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1) * 255
        std = torch.tensor(CLIP_STD).view(1, 3, 1, 1) * 255
        self._mean, self._std = mean, std
        self.text = {name: self._encode_vocabulary(v) for name, v in vocabularies.items()}
        self.vocabularies = dict(vocabularies)

    @staticmethod
    def _build(weights: weights_layer.Weights):
        if weights.kind == "real":
            assert weights.path is not None
            architecture = weights.model.synthetic.get("full")
            if architecture is None:
                raise Unavailable(
                    f"{weights.model.key}: the manifest lacks the real architecture "
                    "([model.synthetic.full]) to load its weights into"
                )
            model = build_clip_model(architecture)
            state = load_state(weights.path / weights_file(weights.model))
            for key in _NON_PARAMS:
                state.pop(key, None)
            model.load_state_dict(state, strict=True)
            return model
        if weights.config is None:
            raise Unavailable(f"{weights.model.key}: no synthetic architecture")
        # The same random values in every process that builds this config.
        seeded(0)
        return build_clip_model(weights.config)

    # --- text -----------------------------------------------------------------------------

    def encode_texts(self, texts: Sequence[str], batch: int = 256):
        """(len(texts), D) float32 L2-normalised text embeddings, on the CPU."""
        torch = self.torch
        out = []
        with torch.inference_mode():
            for part in chunks(len(texts), batch):
                tokens = self.tokenizer(list(texts[part])).to(self.device)
                emb = self.model.encode_text(tokens).float()
                out.append(torch.nn.functional.normalize(emb, dim=-1).cpu())
        return torch.cat(out)

    def _encode_vocabulary(self, vocabulary: Vocabulary):
        torch = self.torch
        flat = [p for prompts in vocabulary.prompts for p in prompts]
        emb = self.encode_texts(flat)
        rows, start = [], 0
        for prompts in vocabulary.prompts:
            rows.append(emb[start : start + len(prompts)].mean(0))
            start += len(prompts)
        return torch.nn.functional.normalize(torch.stack(rows), dim=-1)

    # --- pictures -------------------------------------------------------------------------

    def pixels(self, images: Sequence[np.ndarray] | np.ndarray, fit: str = "crop"):
        """uint8 RGB pictures (each (H, W, 3), any sizes) -> the model's input batch
        (N, 3, S, S) float32 on the CPU."""
        torch = self.torch
        s = self.image_size
        if len(images) == 0:
            return torch.empty((0, 3, s, s))
        squares = np.stack([fit_square(img, s, fit) for img in images])
        x = torch.from_numpy(squares).permute(0, 3, 1, 2).float()
        return (x - self._mean) / self._std

    def encode_pixels(self, pixels, batch: int = 32):
        """(N, 3, S, S) -> (N, D) float32 L2-normalised image embeddings on the CPU, in
        model batches of ``batch``."""
        torch = self.torch
        if len(pixels) == 0:
            return torch.empty((0, self.model.visual.output_dim))
        out = []
        with torch.inference_mode():
            for part in chunks(len(pixels), batch):
                x = pixels[part].to(self.device, dtype=self.dtype, non_blocking=True)
                emb = self.model.encode_image(x).float()
                out.append(torch.nn.functional.normalize(emb, dim=-1).cpu())
        return torch.cat(out)

    def embed(self, images: Sequence[np.ndarray], fit: str = "crop", batch: int = 32):
        """uint8 RGB pictures of any sizes -> (N, D) L2-normalised embeddings. Pictures are
        turned into pixels one model batch at a time, so a long clip's frames never sit in
        memory as float tensors all at once."""
        torch = self.torch
        if len(images) == 0:
            return torch.empty((0, self.model.visual.output_dim))
        out = [
            self.encode_pixels(self.pixels(images[part], fit), batch)
            for part in chunks(len(images), batch)
        ]
        return torch.cat(out)

    def stack(self, rows: Sequence):
        """Embedding rows (of :meth:`embed`, possibly from several batches) -> (N, D)."""
        torch = self.torch
        if len(rows) == 0:
            return torch.empty((0, self.model.visual.output_dim))
        return torch.stack([torch.as_tensor(r) for r in rows])

    def probabilities(self, image_emb, vocabulary: str) -> np.ndarray:
        """Softmax over one vocabulary's labels for each image embedding: (N, L)."""
        torch = self.torch
        logits = self.logit_scale * image_emb @ self.text[vocabulary].T
        return torch.softmax(logits, dim=-1).numpy().astype(np.float64)


# ---------------------------------------------------------------------------------------
# Frames of a clip


def validate_frames(clip: Clip, analyzer: str) -> None:
    """ValueError (a failed clip) for frames the analyzers cannot read."""
    # Smaller, CLIP would see a few blown-up pixels.
    check_frames(clip, analyzer, MIN_FRAME_SIDE, "embed with CLIP")


def clip_duration(clip: Clip, times: np.ndarray) -> float:
    """The clip's duration: the probe's, or at least one sampling step past the last
    frame."""
    step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    return max(float(clip.meta.duration_s or 0.0), float(times[-1]) + max(step, 1e-3))
