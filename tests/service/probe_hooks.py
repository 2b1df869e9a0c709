"""Work for the decode worker's child that is slow on purpose (tests only). Kept apart
from the test modules so that a child imports nothing else to run it."""

from __future__ import annotations

import time

from tiktok_analyzer.orchestrator.probe import probe

#: How long a slow probe takes: the tester's slow probes took seconds each.
SLOW_S = 2.0


def slow_probe(*args: object):
    """A probe that takes SLOW_S before it does the real one."""
    time.sleep(SLOW_S)
    return probe(*args)
