"""CPU seconds by process under one process, from /proc: who used the host's cores.

The benches start the server (and the server its model stubs) as their own children, so
one walk from the bench's own pid reaches every process of the pipeline; decode children
that already ended count in their parent's reaped-children fields.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(root: int) -> dict[str, float]:
    """CPU seconds (user + system, children reaped included) of ``root`` and every process
    under it, from /proc, by who they are (:func:`label`): the stubs are the server's
    children, not ours."""
    children: dict[int, list[int]] = {}
    used: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
        used[int(entry)] = sum(int(f) for f in fields[11:15]) / _TICK
    by: dict[str, float] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        name = "this process (decode, client)" if pid == root else label(pid)
        by[name] = by.get(name, 0.0) + used.get(pid, 0.0)
        todo += children.get(pid, [])
    return by


def label(pid: int) -> str:
    """``tritonserver``, ``stub <model>`` for a Python backend stub (its model.py's
    folder), ``decode children (forkserver)`` for multiprocessing's forkserver (the decode
    children are its children), a Python module run with ``-m`` by its name, else the
    program's name."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return "gone"
    program = Path(argv[0]).name
    if "stub" in program:
        for arg in argv[1:]:
            if arg.endswith("model.py"):
                return f"stub {Path(arg).parent.parent.name}"
    if program.startswith("python"):
        rest = " ".join(argv[1:])
        if "multiprocessing.forkserver" in rest:
            return "decode children (forkserver)"
        if "multiprocessing.resource_tracker" in rest:
            return "resource tracker"
        if len(argv) > 2 and argv[1] == "-m":
            return argv[2]
    return program or "?"


def diff(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items()}
