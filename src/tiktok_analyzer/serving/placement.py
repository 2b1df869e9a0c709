"""Which models each GPU's Triton serves, from memory measured on the GPU (docs/DESIGN.md,
Several GPUs).

The design is one Triton per GPU (``CUDA_VISIBLE_DEVICES`` set to one card, its own ports,
its own watchdog and supervisor) behind the orchestrator's endpoint pool, which already
sends each model's requests only to the servers that serve it. Not one Triton whose
instance groups name the cards (``gpus: [...]``): a server that dies (a stub's CUDA error,
out of memory) takes only its own card's models down while the pool retries on the others;
no tensor crosses cards; and the placement is a plan made at launch from the card count and
size, not a change to every generated config.

The plan, for ``cards`` and the models asked for:

- a model's need on a card is its measured peak per instance (``gpu_memory.toml``, from
  bench/results/gpu_h100.md) times its KIND_GPU instance count (its ``configs/gpu.pbtxt``);
  models without a GPU config need none and go to every card's server;
- when every model fits on the smallest card with ``headroom`` to spare, every card serves
  them all (one full replica per card: the pool spreads clips over them);
- otherwise the models are placed largest first, each on the card with the most room left
  (so the largest do not share a card), falling back to first fit when that leaves one
  over; then each model is copied onto every other card that still has room, largest first;
- a model that fits on no card, or a set that no placement fits, is refused in one line.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "HEADROOM",
    "MEMORY_TABLE",
    "Card",
    "Placement",
    "PlacementError",
    "cards_for",
    "instance_counts",
    "load_memory_table",
    "model_needs",
    "parse_gpus",
    "plan",
    "query_cards",
]

MEMORY_TABLE = Path(__file__).resolve().parent / "gpu_memory.toml"

#: The share of each card left free: a margin for what the per-stub peaks do not hold
#: (Triton's own CUDA context and memory pool, fragmentation), not a measurement. At 5 % an
#: 80 GB H100 (81559 MiB) keeps 77481 MiB, above every model's need together (75518 MiB).
HEADROOM = 0.05


class PlacementError(ValueError):
    """No plan fits; the message is one line saying which model and how much."""


@dataclass(frozen=True)
class Card:
    index: int
    memory_mib: int

    def usable_mib(self, headroom: float = HEADROOM) -> int:
        return int(self.memory_mib * (1.0 - headroom))


@dataclass(frozen=True)
class Placement:
    cards: tuple[Card, ...]
    #: per card (same order as ``cards``): the models its server loads
    models: tuple[tuple[str, ...], ...]
    #: model -> MiB it takes on a card (0: no GPU config)
    needs: Mapping[str, int]
    #: True when every card serves every model
    replicated: bool
    headroom: float = HEADROOM

    def used_mib(self, i: int) -> int:
        return sum(self.needs[m] for m in self.models[i])

    def cards_of(self, model: str) -> list[int]:
        """Indices (into ``cards``) of the cards whose server loads ``model``."""
        return [i for i, models in enumerate(self.models) if model in models]

    def servers(self) -> list[tuple[Card, tuple[str, ...]]]:
        """(card, models) for each card that has anything to serve."""
        return [(c, m) for c, m in zip(self.cards, self.models, strict=True) if m]

    def describe(self) -> list[str]:
        how = "a full replica on every card" if self.replicated else "split by measured memory"
        lines = [f"{len(self.cards)} GPU(s), {how}:"]
        for i, card in enumerate(self.cards):
            gpu = sorted((m for m in self.models[i] if self.needs[m]), key=self.needs.get)
            lines.append(
                f"  GPU {card.index}: {self.used_mib(i)} of {card.usable_mib(self.headroom)} "
                f"usable MiB; on the GPU: {', '.join(reversed(gpu)) or '-'}; "
                f"{len(self.models[i]) - len(gpu)} CPU model(s)"
            )
        return lines


def load_memory_table(path: Path = MEMORY_TABLE) -> dict[str, int]:
    """Model -> measured peak MiB of one instance."""
    with open(path, "rb") as f:
        data = tomllib.load(f)
    return {k: int(v) for k, v in data["peak_mib_per_instance"].items()}


_COUNT = re.compile(r"kind:\s*KIND_GPU\s+count:\s*(\d+)")


def instance_counts(repo: Path, models: Iterable[str]) -> dict[str, int]:
    """Model -> KIND_GPU instances in its ``configs/gpu.pbtxt``; models without one, or
    whose one has only KIND_CPU instances (a CPU model's on a GPU host), are left out (they
    run on the CPU)."""
    counts: dict[str, int] = {}
    for model in models:
        path = repo / model / "configs" / "gpu.pbtxt"
        found = _COUNT.findall(path.read_text()) if path.exists() else []
        if found:
            counts[model] = sum(int(n) for n in found)
    return counts


def model_needs(
    models: Iterable[str], repo: Path, table: Mapping[str, int] | None = None
) -> dict[str, int]:
    """Model -> MiB it takes on one card (0 for CPU models). PlacementError for a GPU model
    with no measured figure: placement is from memory measured, never guessed."""
    models = list(models)
    table = load_memory_table() if table is None else table
    counts = instance_counts(repo, models)
    missing = sorted(m for m in counts if m not in table)
    if missing:
        raise PlacementError(
            f"no measured GPU memory for {', '.join(missing)} in {MEMORY_TABLE.name}; measure "
            "it with bench/gpu_bench.py (bench/gpu/README.md) and add it there"
        )
    return {m: table[m] * counts[m] if m in counts else 0 for m in models}


def plan(
    models: Sequence[str],
    cards: Sequence[Card],
    needs: Mapping[str, int],
    headroom: float = HEADROOM,
) -> Placement:
    """Place ``models`` on ``cards`` (see the module's docstring)."""
    if not cards:
        raise PlacementError("no GPU to place the models on")
    models = list(dict.fromkeys(models))
    needs = {m: int(needs[m]) for m in models}
    usable = [c.usable_mib(headroom) for c in cards]
    total = sum(needs.values())
    if total <= min(usable):
        every = tuple(models)
        return Placement(tuple(cards), tuple(every for _ in cards), needs, True, headroom)
    order = sorted((m for m in models if needs[m]), key=lambda m: (-needs[m], m))
    big = max(usable)
    too_big = [m for m in order if needs[m] > big]
    if too_big:
        m = too_big[0]
        raise PlacementError(
            f"{m} needs {needs[m]} MiB of GPU memory (measured, {MEMORY_TABLE.name}), more than "
            f"any card's usable {big} MiB ({int(headroom * 100)} % kept free); use larger cards"
        )
    chosen = _pack(order, needs, usable, most_room=True) or _pack(
        order, needs, usable, most_room=False
    )
    if chosen is None:
        raise PlacementError(
            f"the GPU models need {total} MiB together and no placement on {len(cards)} card(s) "
            f"of {'/'.join(str(u) for u in usable)} usable MiB fits them; add cards"
        )
    free = [u - sum(needs[m] for m in placed) for u, placed in zip(usable, chosen, strict=True)]
    # Copies where room is left: more servers to spread over and fail over to.
    for m in order:
        for i, placed in enumerate(chosen):
            if m not in placed and needs[m] <= free[i]:
                placed.append(m)
                free[i] -= needs[m]
    # CPU models (no GPU memory) on every card's server.
    rank = {m: k for k, m in enumerate(models)}
    per_card = tuple(
        tuple(sorted(set(placed) | {m for m in models if not needs[m]}, key=rank.get))
        for placed in chosen
    )
    return Placement(tuple(cards), per_card, needs, False, headroom)


def _pack(
    order: list[str], needs: Mapping[str, int], usable: list[int], *, most_room: bool
) -> list[list[str]] | None:
    """Each model of ``order`` (largest first) once: on the card with the most room left, or
    the first with room; None when one finds no card."""
    free = list(usable)
    placed: list[list[str]] = [[] for _ in usable]
    for m in order:
        fits = [i for i, f in enumerate(free) if needs[m] <= f]
        if not fits:
            return None
        i = max(fits, key=lambda k: (free[k], -k)) if most_room else fits[0]
        placed[i].append(m)
        free[i] -= needs[m]
    return placed


def parse_gpus(spec: str) -> list[int] | None:
    """``all`` -> None (every card nvidia-smi lists); ``0,1,3`` -> [0, 1, 3]. ValueError
    for anything else."""
    spec = spec.strip().lower()
    if spec == "all":
        return None
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts or not all(p.isdigit() for p in parts):
        raise ValueError(f"--gpus takes all or GPU indices like 0,1 (got {spec!r})")
    indices = [int(p) for p in parts]
    if len(set(indices)) != len(indices):
        raise ValueError(f"--gpus names a GPU twice ({spec!r})")
    return indices


def query_cards() -> list[Card]:
    """Every card nvidia-smi lists, with its total memory; [] without nvidia-smi."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=index,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    cards = []
    for line in out.stdout.splitlines():
        try:
            index, mem = (int(p.strip()) for p in line.split(","))
        except ValueError:
            continue
        cards.append(Card(index, mem))
    return cards


def cards_for(spec: str, memory_mib: int | None = None) -> list[Card]:
    """The cards ``--gpus spec`` names, each with its memory: nvidia-smi's figure, or
    ``memory_mib`` for every card when given (required where nvidia-smi is absent)."""
    wanted = parse_gpus(spec)
    if memory_mib is not None:
        if wanted is None:
            found = query_cards()
            if not found:
                raise PlacementError("--gpus all: nvidia-smi lists no GPU; name them (0,1,...)")
            wanted = [c.index for c in found]
        return [Card(i, memory_mib) for i in wanted]
    found = {c.index: c for c in query_cards()}
    if not found:
        raise PlacementError(
            "nvidia-smi lists no GPU; give --gpu-memory-mib to plan for cards it cannot see"
        )
    if wanted is None:
        return [found[i] for i in sorted(found)]
    absent = [i for i in wanted if i not in found]
    if absent:
        raise PlacementError(
            f"no GPU {', '.join(map(str, absent))} here (nvidia-smi lists {sorted(found)})"
        )
    return [found[i] for i in wanted]


def main(argv: list[str] | None = None) -> int:
    """Print the plan: ``python -m tiktok_analyzer.serving.placement --gpus 0,1
    --gpu-memory-mib 40960``."""
    import argparse
    import sys

    from tiktok_analyzer.serving.launcher import default_model_repository

    p = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    p.add_argument("--gpus", default="all")
    p.add_argument("--gpu-memory-mib", type=int)
    p.add_argument("--models", help="comma-separated (default: every model in the repository)")
    args = p.parse_args(argv)
    repo = default_model_repository()
    models = (
        [m.strip() for m in args.models.split(",") if m.strip()]
        if args.models
        else sorted(d.name for d in repo.iterdir() if (d / "config.pbtxt").exists())
    )
    try:
        cards = cards_for(args.gpus, args.gpu_memory_mib)
        placement = plan(models, cards, model_needs(models, repo))
    except (PlacementError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(placement.describe()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
