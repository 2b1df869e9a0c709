"""Which video paths the service reads: only regular files under the allowed roots.

Every check happens on the path before anything opens it. The path is made absolute and
canonical (``realpath`` resolves ``..`` and every symlink), and the canonical path must lie
under a canonical allowed root, so ``root/../etc/passwd`` and ``root/link -> /etc`` both
end outside. ``/proc``, ``/dev`` and ``/sys`` are refused even under a root (a root of
``/`` must not expose ``/proc/self/environ`` or ``/dev/zero``). Then ``stat`` (never
``open``, which blocks on a FIFO) must show a regular file.

Without any allowed root the service reads no path at all: callers upload instead. That
is the safe default for a service another host can reach.

One residual race: a component swapped for a symlink between this check and the
decoder's open. The allowed roots must therefore be writable only by trusted parties;
callers that share no trust with the service upload their clips.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass

from tiktok_analyzer.service.errors import Code, ServiceFailure

__all__ = ["FORBIDDEN", "PathPolicy"]

#: Never read from these, whatever the roots say.
FORBIDDEN = ("/proc", "/dev", "/sys")
MAX_PATH_CHARS = 4096


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


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
        """The canonical path of a readable regular file under a root, or ServiceFailure:
        PATH_NOT_ALLOWED when the policy refuses the path, BAD_INPUT when it is no file
        to analyze. Messages name the path as given, never where a symlink led."""
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
        real = os.path.realpath(raw)
        if any(_under(real, f) for f in FORBIDDEN) or not any(_under(real, r) for r in self.roots):
            raise ServiceFailure(Code.PATH_NOT_ALLOWED, f"{raw}: outside the allowed roots")
        try:
            st = os.stat(real)
        except FileNotFoundError:
            raise ServiceFailure(Code.BAD_INPUT, f"{raw}: no such file") from None
        except PermissionError:
            raise ServiceFailure(Code.BAD_INPUT, f"{raw}: permission denied") from None
        except OSError as exc:
            raise ServiceFailure(Code.BAD_INPUT, f"{raw}: cannot read ({exc.strerror})") from None
        if stat.S_ISDIR(st.st_mode):
            raise ServiceFailure(Code.BAD_INPUT, f"{raw}: is a directory, not a video file")
        if not stat.S_ISREG(st.st_mode):
            kind = (
                "a FIFO"
                if stat.S_ISFIFO(st.st_mode)
                else "a socket"
                if stat.S_ISSOCK(st.st_mode)
                else "a device"
            )
            raise ServiceFailure(Code.BAD_INPUT, f"{raw}: is {kind}, not a regular file")
        return real
