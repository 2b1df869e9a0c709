"""Write (or check) every model's config.pbtxt and model.py from the analyzers' declarations.

A model's inputs follow what its analyzer declares (frames -> FRAMES, TIMESTAMPS,
FRAME_INDEX; audio -> AUDIO; META always; the format is :mod:`tiktok_analyzer.wire`), and
its ``parameters`` are its declaration followed by the analyzer's Params
with their production defaults, so config and code cannot drift apart: the test suite runs
``--check``.

    python -m tiktok_analyzer.serving.generate          # write
    python -m tiktok_analyzer.serving.generate --check  # exit 1 if any file differs
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from tiktok_analyzer import wire
from tiktok_analyzer.analyzers import ANALYZER_NAMES, load_class

#: The model repository, shipped inside the package (package data).
HERE = Path(__file__).resolve().parent / "model_repository"

#: Instances per model on a CPU-only host. Models whose analyzer declares ``gpu`` also get
#: ``configs/gpu.pbtxt`` (Triton's custom model configuration) with KIND_GPU instances; the
#: launcher selects it with ``--model-config-name=gpu`` on a host with a GPU. Their count and
#: preferred batch sizes are the analyzer's (``gpu_instances``, ``preferred_batch``), with
#: its ``gpu_note`` as a comment: conservative until measured on the GPU. An analyzer
#: without ``gpu`` whose ``gpu_host_instances`` is above 1 gets a ``configs/gpu.pbtxt`` too:
#: that many KIND_CPU instances, each handed one clip at a time (its ``analyze_batch`` would
#: run a batch's clips one after another on one instance while the others idle).
CPU_INSTANCES = 1
MAX_BATCH = 8
GPU_COMMENT = "# Conservative until measured on the GPU (docs/DESIGN.md)"
GPU_HOST_CPU_COMMENT = (
    "# On a host with a GPU (and the cores that come with it) this CPU model runs clips "
    "side by side, one a request; the count is its analyzer's gpu_host_instances. One "
    "instance took the clips in flight one after another: at eight on the H100 host the "
    "last waited 15 s on eye_tracking's (bench/results/gpu_h100.md, tenth session)"
)
#: Why the KIND_GPU group names no ``gpus: [...]``: several GPUs run one server each.
GPU_PLACEMENT_COMMENT = (
    "# Several GPUs: one Triton per GPU, each started with CUDA_VISIBLE_DEVICES set to its "
    "card, behind the orchestrator's endpoint pool (--gpus; serving/placement.py), not one "
    "Triton whose instance groups name the cards (gpus: [...]): a server that dies takes only "
    "its card's models down, no tensor crosses cards, and which models share a card is "
    "planned at launch from their measured memory (serving/gpu_memory.toml). So this group "
    "names no card and its count is per card."
)
QUEUE = {
    "max_queue_size": 32,
    # A queued request older than this is rejected rather than left to rot.
    "default_timeout_microseconds": 300_000_000,
}

#: Every model.py is these two statements: the work is in the analyzer, the Triton side in
#: :mod:`tiktok_analyzer.serving.adapter`. The stub imports the package from the venv it
#: runs in (the launcher puts that venv's bin first on PATH).
MODEL_PY = """\
from tiktok_analyzer.serving.adapter import make_model

TritonPythonModel = make_model("{name}")
"""


def _input(tensor: wire.Tensor, ragged: bool, optional: bool = False) -> str:
    extra = " allow_ragged_batch: true" if ragged else ""
    extra += " optional: true" if optional else ""
    dims = ", ".join(str(d) for d in tensor.dims)
    return f'  {{ name: "{tensor.name}" data_type: {tensor.config_type} dims: [ {dims} ]{extra} }}'


def declaration(cls) -> wire.Declaration:
    """What the orchestrator needs to know of ``cls`` without importing it."""
    return wire.Declaration(
        name=cls.name,
        frames=cls.frames,
        audio=cls.audio,
        depends_on=cls.depends_on,
        optional=cls.inputs_optional,
        model_name=cls.model_name,
    )


def render_config(name: str, kind: str = "KIND_CPU", gpu_host: bool = False) -> str:
    """``name``'s config.pbtxt; ``kind`` KIND_GPU: its ``configs/gpu.pbtxt``;
    ``gpu_host``: a CPU model's ``configs/gpu.pbtxt`` (its ``gpu_host_instances``)."""
    cls = load_class(name)
    inputs = [_input(wire.META, False)]
    opt = cls.inputs_optional
    if cls.frames is not None:
        inputs += [_input(t, True, opt) for t in wire.FRAME_TENSORS]
    if cls.audio:
        inputs.append(_input(wire.AUDIO, True, opt))
    # What the model needs from the clip: the orchestrator reads these to decide what to
    # decode and ship (tiktok_analyzer.orchestrator.models), so the model is the one source
    # of truth.
    params = declaration(cls).to_params()
    for f in dataclasses.fields(cls.Params):
        if f.name in wire.DECLARATION_KEYS:
            raise ValueError(f"{name}: parameter {f.name!r} is a declaration key (wire.py)")
        value = f.default
        params[f.name] = str(value).lower() if isinstance(value, bool) else str(value)
    gpu = kind == "KIND_GPU"
    if gpu:
        preferred, count, comments = (
            cls.preferred_batch,
            cls.gpu_instances,
            [
                f"{GPU_COMMENT}: {cls.gpu_note}.",
                GPU_PLACEMENT_COMMENT,
            ],
        )
    elif gpu_host:
        preferred, count, comments = (1,), cls.gpu_host_instances, [GPU_HOST_CPU_COMMENT + "."]
    else:
        preferred, count, comments = (), CPU_INSTANCES, []
    lines = [
        f'name: "{name}"',
        'backend: "python"',
        f"max_batch_size: {MAX_BATCH}",
        "dynamic_batching {",
        *_preferred(preferred),
        "  max_queue_delay_microseconds: 2000",
        "  default_queue_policy {",
        "    timeout_action: REJECT",
        f"    default_timeout_microseconds: {QUEUE['default_timeout_microseconds']}",
        "    allow_timeout_override: true",
        f"    max_queue_size: {QUEUE['max_queue_size']}",
        "  }",
        "}",
        "input [",
        ",\n".join(inputs),
        "]",
        "output [",
        _input(wire.RESULT, False),
        "]",
        *comments,
        f"instance_group [ {{ kind: {kind} count: {count} }} ]",
    ]
    for key, value in params.items():
        lines.append(wire.parameter_line(key, value))
    return "\n".join(lines) + "\n"


def _preferred(sizes: tuple[int, ...]) -> list[str]:
    bad = [n for n in sizes if not 1 <= n <= MAX_BATCH]
    if bad:
        raise ValueError(f"preferred batch sizes must be 1 to {MAX_BATCH}, got {bad}")
    return [f"  preferred_batch_size: [ {', '.join(map(str, sizes))} ]"] if sizes else []


def expected_files() -> dict[Path, str]:
    files: dict[Path, str] = {}
    for name in ANALYZER_NAMES:
        files[HERE / name / "config.pbtxt"] = render_config(name)
        files[HERE / name / "1" / "model.py"] = MODEL_PY.format(name=name)
        cls = load_class(name)
        if cls.gpu:
            files[HERE / name / "configs" / "gpu.pbtxt"] = render_config(name, "KIND_GPU")
        elif cls.gpu_host_instances > 1:
            files[HERE / name / "configs" / "gpu.pbtxt"] = render_config(name, gpu_host=True)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args(argv)
    stale = []
    for path, text in expected_files().items():
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if args.check and stale:
        print("out of date (run python -m tiktok_analyzer.serving.generate):", file=sys.stderr)
        for path in stale:
            print(f"  {path.relative_to(HERE)}", file=sys.stderr)
        return 1
    if not args.check:
        print(f"wrote {len(stale)} file(s) under {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
