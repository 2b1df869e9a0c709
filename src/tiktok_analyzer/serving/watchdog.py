"""Ends an embedded tritonserver, its stubs and their shared memory when its owner dies.

The launcher starts this watchdog beside every embedded server, in a session of its own, with
its standard input the read end of a pipe whose write end only the owner holds. However the
owner ends (exit, exception, SIGKILL), the kernel closes that end and the read here returns
end-of-file: the watchdog then kills the server's whole process group (the stubs are in it),
and removes the server's /dev/shm regions, the owner's own regions and the server's work
folder. A clean stop writes ``q`` first, so nothing is touched twice (a process group id can
be reused once the group is gone).

A parent-death signal alone would not do: it reaches only the server, not its stubs, and it
fires when the thread that forked the server ends, not the process.

    python -m tiktok_analyzer.serving.watchdog PGID SHM_GLOB [SHM_GLOB ...] [--workdir DIR]
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import sys

__all__ = ["STOP", "cleanup", "main"]

#: Written by the owner on a clean stop: exit without touching anything.
STOP = b"q"


def cleanup(pgid: int, shm_globs: list[str], workdir: str | None) -> None:
    """Kill the process group, remove the matching /dev/shm entries and the work folder."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    for pattern in shm_globs:
        for path in glob.glob(os.path.join("/dev/shm", pattern)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    if workdir:
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    workdir = None
    if "--workdir" in args:
        i = args.index("--workdir")
        workdir = args[i + 1]
        del args[i : i + 2]
    if len(args) < 2:
        print("usage: watchdog PGID SHM_GLOB [SHM_GLOB ...] [--workdir DIR]", file=sys.stderr)
        return 2
    pgid, shm_globs = int(args[0]), args[1:]
    # A terminal's Ctrl-C reaches the owner; the watchdog must outlive it to clean up after.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    stdin = sys.stdin.buffer
    while True:
        chunk = stdin.read(1)
        if chunk == STOP:
            return 0
        if not chunk:  # end-of-file: the owner is gone, however it ended
            cleanup(pgid, shm_globs, workdir)
            return 0


if __name__ == "__main__":
    sys.exit(main())
