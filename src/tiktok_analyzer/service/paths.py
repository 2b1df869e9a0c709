"""Which video paths the service reads: only regular files under the allowed roots, and
nothing outside them, by construction.

The path is made absolute and canonical (``realpath`` resolves ``..`` and every symlink),
and the canonical path must lie under a canonical allowed root, so ``root/../etc/passwd``
and ``root/link -> /etc`` both end outside. ``/proc``, ``/dev`` and ``/sys`` are refused
even under a root (a root of ``/`` must not expose ``/proc/self/environ`` or ``/dev/zero``).

Then the file is opened once, from the root's own descriptor, along the canonical path
with ``openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)``: the kernel refuses any symlink and
any step out of the root, so a component swapped for a symlink after the check makes the
open fail instead of reading outside. Where ``openat2`` is missing (Linux before 5.6, or a
sandbox that filters it), the same walk is done one ``O_NOFOLLOW`` component at a time.
The open never blocks (``O_NONBLOCK``); ``fstat`` on the descriptor then refuses what is
no regular file (a FIFO, a socket, a device). Probe and decode read that descriptor only
(orchestrator/probe.py), never the name again.

Every refusal names the path as given; an outside path is refused with the same message
whether or not it exists, so answers reveal nothing about the host outside the roots.

Hard links are out of reach of any path check: a hard link placed under a root is the file
itself. Who may create files under the allowed roots is the operator's responsibility.

Without any allowed root the service reads no path at all: callers upload instead. That
is the safe default for a service another host can reach.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterable
from dataclasses import dataclass

from tiktok_analyzer.orchestrator.probe import OPEN_FLAGS, BadInput, MediaFile
from tiktok_analyzer.service.errors import Code, ServiceFailure

__all__ = ["FORBIDDEN", "PathPolicy"]

#: Never read from these, whatever the roots say.
FORBIDDEN = ("/proc", "/dev", "/sys")
MAX_PATH_CHARS = 4096

_SYS_OPENAT2 = 437  # the same number on every Linux architecture
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
#: openat2 answers EAGAIN when a rename raced the walk; a few tries, then a refusal.
_RETRIES = 8


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
#: Cleared when the kernel answers ENOSYS (or a filter EPERM) once: the walk is used then.
_openat2_works = True


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def openat2_beneath(dir_fd: int, rel: str, flags: int) -> int:
    """``rel`` opened beneath ``dir_fd`` through no symlink at all; OSError as open's."""
    global _openat2_works
    if _openat2_works:
        how = _OpenHow(
            flags | os.O_CLOEXEC,
            0,
            _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS,
        )
        for _ in range(_RETRIES):
            fd = _libc.syscall(
                _SYS_OPENAT2, dir_fd, os.fsencode(rel), ctypes.byref(how), ctypes.sizeof(how)
            )
            if fd >= 0:
                return fd
            err = ctypes.get_errno()
            if err == errno.EAGAIN:
                continue
            if err in (errno.ENOSYS, errno.EPERM):
                _openat2_works = False
                break
            raise OSError(err, os.strerror(err))
        else:
            raise OSError(errno.ELOOP, "the path changed while it was opened")
    return _walk_beneath(dir_fd, rel, flags)


def _walk_beneath(dir_fd: int, rel: str, flags: int) -> int:
    """openat2's guarantee without it: one component at a time, none followed if a
    symlink, from ``dir_fd`` down (``rel`` is canonical: no ``..``, no ``.``)."""
    parts = [p for p in rel.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise OSError(errno.EXDEV, "not beneath the root")
    current = os.dup(dir_fd)
    try:
        for part in parts[:-1]:
            step = os.open(
                part,
                os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                dir_fd=current,
            )
            os.close(current)
            current = step
        return os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=current)
    finally:
        os.close(current)


@dataclass(frozen=True)
class PathPolicy:
    roots: tuple[str, ...] = ()

    @classmethod
    def from_dirs(cls, dirs: Iterable[str | os.PathLike]) -> PathPolicy:
        """Canonical roots; each must be an existing directory outside FORBIDDEN."""
        roots = []
        for d in dirs:
            real = os.path.realpath(os.fspath(d))
            if not os.path.isdir(real):
                raise ValueError(f"allowed root {d}: not a directory")
            if any(_under(real, f) for f in FORBIDDEN):
                raise ValueError(f"allowed root {d}: under {', '.join(FORBIDDEN)}")
            roots.append(real)
        return cls(tuple(dict.fromkeys(roots)))

    def resolve(self, raw: str) -> str:
        """The canonical path of a readable regular file under a root (opened and closed
        again to prove it), or ServiceFailure as :meth:`open` raises it."""
        real, _ = self._check(raw)
        self.open(raw).close()
        return real

    def open(self, raw: str) -> MediaFile:
        """The file, opened once, beneath a root, through no symlink; or ServiceFailure:
        PATH_NOT_ALLOWED when the policy refuses the path, BAD_INPUT when it is no file
        to analyze. Messages name the path as given, never where a symlink led."""
        real, root = self._check(raw)
        try:
            root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            raise self._outside(raw) from None
        try:
            rel = os.path.relpath(real, root)
            if rel == ".":
                raise ServiceFailure(Code.BAD_INPUT, f"{raw}: is a directory, not a video file")
            fd = openat2_beneath(root_fd, rel, OPEN_FLAGS)
        except OSError as exc:
            raise self._refusal(raw, exc) from None
        finally:
            os.close(root_fd)
        try:
            return MediaFile(fd, raw)
        except BadInput as exc:
            os.close(fd)
            raise ServiceFailure(Code.BAD_INPUT, str(exc)) from None

    def _check(self, raw: str) -> tuple[str, str]:
        """(canonical path, its root), refused before anything is opened."""
        if not raw:
            raise ServiceFailure(Code.BAD_INPUT, "video_path is empty")
        if "\x00" in raw or len(raw) > MAX_PATH_CHARS:
            raise ServiceFailure(Code.BAD_INPUT, "video_path is not a valid path")
        if not os.path.isabs(raw):
            raise ServiceFailure(Code.BAD_INPUT, f"{raw}: video_path must be absolute")
        if not self.roots:
            raise ServiceFailure(
                Code.PATH_NOT_ALLOWED,
                "this service reads no paths (no allowed root is configured); "
                "upload the clip instead",
            )
        try:
            real = os.path.realpath(raw)
        except OSError:  # a component changed kind between its lstat and its readlink
            raise self._outside(raw) from None
        roots = [r for r in self.roots if _under(real, r)]
        if any(_under(real, f) for f in FORBIDDEN) or not roots:
            raise self._outside(raw)
        return real, max(roots, key=len)

    @staticmethod
    def _outside(raw: str) -> ServiceFailure:
        return ServiceFailure(Code.PATH_NOT_ALLOWED, f"{raw}: outside the allowed roots")

    def _refusal(self, raw: str, exc: OSError) -> ServiceFailure:
        if exc.errno in (errno.ELOOP, errno.EXDEV):
            # A symlink or a step out where the check saw none: the path was changed
            # meanwhile. Answered as any path outside.
            return self._outside(raw)
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return ServiceFailure(Code.BAD_INPUT, f"{raw}: no such file")
        if exc.errno in (errno.EACCES, errno.EPERM):
            return ServiceFailure(Code.BAD_INPUT, f"{raw}: permission denied")
        if exc.errno == errno.EISDIR:
            return ServiceFailure(Code.BAD_INPUT, f"{raw}: is a directory, not a video file")
        if exc.errno == errno.ENXIO:  # what opening a Unix socket answers
            return ServiceFailure(Code.BAD_INPUT, f"{raw}: is a socket, not a regular file")
        return ServiceFailure(Code.BAD_INPUT, f"{raw}: cannot read ({exc.strerror})")
