"""What each Triton model needs from a clip, read from its config.pbtxt ``parameters``.

:mod:`tiktok_analyzer.serving.generate` writes each analyzer's declaration (frame set, audio, dependencies,
model name) into its model's config in the form :mod:`tiktok_analyzer.wire` defines, so the
orchestrator learns what to decode and ship without importing any analyzer code (and their
heavy libraries).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tiktok_analyzer.wire import K_ANALYZER, BadDeclaration, Declaration, parse_config_params

__all__ = ["BadDeclaration", "ModelDecl", "read_declarations", "with_dependencies"]

#: One model's declaration; the name the orchestrator has always used for it.
ModelDecl = Declaration


def read_declarations(repository: Path) -> dict[str, ModelDecl]:
    """Every model in the repository, by name, in the contract's order of analyzers.
    :class:`BadDeclaration` (one line, naming the file) for a config that cannot be read."""
    from tiktok_analyzer.analyzers import ANALYZER_NAMES

    decls = {}
    for config in repository.glob("*/config.pbtxt"):
        params = parse_config_params(config.read_text())
        name = params.get(K_ANALYZER, config.parent.name)
        try:
            decls[name] = ModelDecl.from_params(name, params)
        except BadDeclaration as exc:
            raise BadDeclaration(f"{config}: {exc}") from None
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
