"""An analyzers module by its file path, for the GPU probes (linear_bench.py,
step_profile.py): ``_quant`` and ``_decoding`` need only torch and transformers, which the
GPU host's own ``python3`` has; importing them through the package would need far more
(pydantic first)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ANALYZERS = Path(__file__).resolve().parents[2] / "src/tiktok_analyzer/analyzers"


def analyzer_module(name: str):
    """``src/tiktok_analyzer/analyzers/<name>.py``, loaded once and kept in ``sys.modules``
    under ``name`` (the compiler looks its classes up by module name)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ANALYZERS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
