"""Work for the decode worker's child process that misbehaves on purpose (tests only).
Kept apart from the test modules so that a child imports nothing else to run them."""

from __future__ import annotations

import os
import time


def abort(*_args: object) -> None:
    """What a decoder segfault or failed assertion looks like to the parent."""
    os.abort()


def sleep(seconds: float, pid_file: str = "") -> None:
    """A hang; writes the child's pid first when asked to."""
    if pid_file:
        with open(pid_file, "w") as f:
            f.write(str(os.getpid()))
    time.sleep(seconds)


def fail(*_args: object) -> None:
    """An exception probe and decode do not turn into BadInput (a defect of ours)."""
    raise ZeroDivisionError("division by zero")


def limits() -> dict[str, int]:
    """The soft limits the child runs under: which cap holds it."""
    import resource

    return {
        "as": resource.getrlimit(resource.RLIMIT_AS)[0],
        "data": resource.getrlimit(resource.RLIMIT_DATA)[0],
    }
