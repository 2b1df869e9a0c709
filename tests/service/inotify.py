"""Counting opens and reads of a file with the kernel's inotify (through ctypes): the proof
that a test's hostile input made nothing read a file outside the allowed roots."""

from __future__ import annotations

import ctypes
import os
import struct

IN_ACCESS = 0x001
IN_OPEN = 0x020
IN_NONBLOCK = os.O_NONBLOCK
_EVENT = struct.Struct("iIII")

_libc = ctypes.CDLL(None, use_errno=True)


class Watch:
    """Counts IN_OPEN / IN_ACCESS events on the watched paths from creation on."""

    def __init__(self, *paths: str | os.PathLike) -> None:
        self.fd = _libc.inotify_init1(IN_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        for path in paths:
            wd = _libc.inotify_add_watch(self.fd, os.fsencode(path), IN_OPEN | IN_ACCESS)
            if wd < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {path}")
        self.opens = 0
        self.accesses = 0

    def drain(self) -> int:
        """Events so far (opens + reads)."""
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return self.opens + self.accesses
            offset = 0
            while offset < len(data):
                _, mask, _, name_len = _EVENT.unpack_from(data, offset)
                self.opens += bool(mask & IN_OPEN)
                self.accesses += bool(mask & IN_ACCESS)
                offset += _EVENT.size + name_len

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
