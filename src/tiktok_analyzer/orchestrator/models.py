"""What each Triton model needs from a clip, read from its config.pbtxt ``parameters``.

:mod:`tiktok_analyzer.serving.generate` writes each analyzer's declaration (frame set, audio,
dependencies) into its model's config, so the orchestrator learns what to decode and ship
without importing any analyzer code (and their heavy libraries).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tiktok_analyzer.analyzers.base import FrameSpec

__all__ = ["ModelDecl", "read_declarations", "with_dependencies"]

_PARAM = re.compile(r'parameters\s*\{\s*key:\s*"([^"]+)"\s*value\s*\{\s*string_value:\s*"([^"]*)"')


@dataclass(frozen=True)
class ModelDecl:
    name: str
    frames: FrameSpec | None
    audio: bool
    depends_on: tuple[str, ...]
    #: Frames and audio may be missing: send what the clip has rather than skipping it.
    optional: bool = False

    @classmethod
    def from_params(cls, name: str, params: dict[str, str]) -> ModelDecl:
        frames = None
        sel = params.get("input_frames")
        if sel:
            short = int(params.get("input_short_side", "0"))
            if sel == "every_frame":
                frames = FrameSpec(short_side=short, every_frame=True)
            elif sel.startswith("fps="):
                frames = FrameSpec(short_side=short, fps=float(sel[4:]))
            elif sel.startswith("count="):
                frames = FrameSpec(short_side=short, count=int(sel[6:]))
            else:
                raise ValueError(f"{name}: bad input_frames {sel!r}")
        deps = tuple(d for d in params.get("depends_on", "").split(",") if d)
        return cls(
            name=name,
            frames=frames,
            audio=params.get("input_audio") == "true",
            depends_on=deps,
            optional=params.get("input_optional") == "true",
        )


def read_declarations(repository: Path) -> dict[str, ModelDecl]:
    """Every model in the repository, by name, in the contract's order of analyzers."""
    from tiktok_analyzer.analyzers import ANALYZER_NAMES

    decls = {}
    for config in repository.glob("*/config.pbtxt"):
        params = dict(_PARAM.findall(config.read_text()))
        name = params.get("analyzer", config.parent.name)
        decls[name] = ModelDecl.from_params(name, params)
    rank = {name: i for i, name in enumerate(ANALYZER_NAMES)}
    return dict(sorted(decls.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


def with_dependencies(names: Iterable[str], decls: dict[str, ModelDecl]) -> list[str]:
    """``names`` plus everything they depend on, dependencies first."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name not in decls:
            raise KeyError(name)
        if name in visiting:
            raise ValueError(f"dependency cycle through {name}")
        visiting.add(name)
        for dep in decls[name].depends_on:
            visit(dep)
        visiting.discard(name)
        order.append(name)

    for name in names:
        visit(name)
    return order
