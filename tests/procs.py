"""Processes as /proc shows them, for the tests that check who a command started and
what it left behind (tests only)."""

from __future__ import annotations

import os


def children(pid: int) -> dict[int, str]:
    """pid -> state letter of each child of ``pid``."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                # pid (comm) state ppid ...: comm may hold spaces, so split after its ")"
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found[int(entry)] = fields[0]
    return found
