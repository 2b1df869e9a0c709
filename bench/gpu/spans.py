"""Which chain of stages sets a clip's wall time, from when each analyzer started and ended.

The orchestrator sends an analyzer its request once every analyzer it depends on has
answered (orchestrator/pipeline.py), and the ones without dependencies once the clip is
decoded. So walking back from the analyzer that ended last, each step goes to the
dependency that ended last, and a step without dependencies goes to probe + decode.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

DECODE = "probe+decode"


@dataclass
class SpanRecorder:
    """The pipeline's progress hook: each analyzer's (start, end) in seconds from ``t0``
    (the start of the clip's analysis, probe included)."""

    t0: float = field(default_factory=time.perf_counter)
    starts: dict[str, float] = field(default_factory=dict)
    ends: dict[str, float] = field(default_factory=dict)

    def __call__(self, name: str, event: str, entry: object) -> None:
        now = time.perf_counter() - self.t0
        (self.starts if event == "start" else self.ends)[name] = now

    def spans(self) -> dict[str, tuple[float, float]]:
        return {n: (self.starts[n], self.ends[n]) for n in self.ends if n in self.starts}


def critical_path(
    spans: Mapping[str, tuple[float, float]], depends_on: Mapping[str, Sequence[str]]
) -> list[tuple[str, float, float]]:
    """The stages, first to last, as (name, start, end); the first is probe + decode, which
    ends when the first analyzer without dependencies started."""
    if not spans:
        return []
    roots = [spans[n][0] for n in spans if not [d for d in depends_on.get(n, ()) if d in spans]]
    decode_end = min(roots) if roots else min(s for s, _ in spans.values())
    chain: list[tuple[str, float, float]] = []
    current: str | None = max(spans, key=lambda n: (spans[n][1], n))
    while current is not None:
        chain.append((current, *spans[current]))
        deps = [d for d in depends_on.get(current, ()) if d in spans]
        current = max(deps, key=lambda d: (spans[d][1], d)) if deps else None
    chain.append((DECODE, 0.0, decode_end))
    return chain[::-1]


def describe(chain: Sequence[tuple[str, float, float]], wall_s: float | None = None) -> str:
    """``probe+decode 0.00-1.20 s -> scene_segmentation 1.20-1.31 s -> ...``"""
    text = " -> ".join(f"{name} {a:.2f}-{b:.2f} s" for name, a, b in chain)
    if wall_s is not None and chain:
        text += f" (report at {wall_s:.2f} s)"
    return text
