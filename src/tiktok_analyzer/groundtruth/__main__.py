"""Render catalog clips: ``python -m tiktok_analyzer.groundtruth OUTDIR [--names a,b]``.

Each clip goes to ``OUTDIR/<name>.mp4`` (``.m4a`` when it has no picture) with its truth
in ``OUTDIR/<name>.truth.json``; one line per clip is printed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tiktok_analyzer.groundtruth.clips import CATALOG, render


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tiktok_analyzer.groundtruth")
    parser.add_argument("outdir", nargs="?", type=Path, help="where the clips go")
    parser.add_argument("--names", help="comma-separated catalog names (default: all)")
    parser.add_argument("--list", action="store_true", help="list the catalog and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, spec in CATALOG.items():
            seconds = sum(s.duration_s for s in spec.shots) or spec.duration_s
            print(f"{name}\t{spec.width}x{spec.height}\t{spec.fps:g} fps\t{seconds:g} s")
        return 0
    if args.outdir is None:
        parser.error("OUTDIR is required unless --list")
    names = args.names.split(",") if args.names else list(CATALOG)
    unknown = [n for n in names if n not in CATALOG]
    if unknown:
        parser.error(f"unknown clip(s) {', '.join(unknown)}; see --list")
    for name in names:
        spec = CATALOG[name]
        path = args.outdir / f"{name}{'.mp4' if spec.shots else '.m4a'}"
        start = time.perf_counter()
        info = render(spec, path)
        print(
            f"{path}\t{info['duration_s']:.2f} s\t{info['n_frames']} frames\t"
            f"{len(info['cuts'])} cuts\t{len(info['beats_s'])} beats\t"
            f"{time.perf_counter() - start:.1f} s to render",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
