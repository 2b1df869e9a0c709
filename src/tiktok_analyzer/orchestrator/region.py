"""One clip's frames and audio in one POSIX shared-memory region, ``/dev/shm/tta_<pid>_<id>``.

:func:`.decode.decode` writes every frame set and the audio straight into the region; the
Triton servers on this host map the same pages (``pipeline._Transport`` registers the region
with them), and a decode worker process writes into a region its parent created and hands
back only where the arrays lie. ``<pid>`` is the process that owns the name: the one that
unlinks it, and the one whose leftovers the Triton launcher's watchdog removes.

The life of a region: :meth:`Region.create` makes the empty file (the name is taken before
anything else happens, so whoever created it can always remove it); :meth:`Region.allocate`
sizes and maps it once the size is known, in the process that writes; :meth:`Region.map`
maps what another process wrote; :meth:`Region.unlink` removes the name. The mapping stays
as long as an array views it, so unlinking never pulls memory from under a frame.

Not ``multiprocessing.shared_memory``: on Python 3.11 it registers every region with the
resource tracker (which then warns about, or unlinks, regions another process owns), its
``close`` refuses while numpy views exist, and it sizes a region with ``ftruncate`` alone: a
write to a page that a full ``/dev/shm`` cannot back kills the process with SIGBUS. Here the
pages are reserved with ``posix_fallocate`` (all at once, or range by range before each
write): no room is an ``OSError`` (ENOSPC) that the caller acts on.
tritonclient's ``shared_memory`` module unmaps and unlinks in one call, under live views.
"""

from __future__ import annotations

import errno
import mmap
import os
import uuid

import numpy as np

__all__ = ["ALIGN", "SHM_DIR", "Region", "layout", "nbytes", "new_name", "view"]

#: Where glibc's shm_open puts a region (the name Triton opens is ``/<name>``).
SHM_DIR = "/dev/shm"
#: Every array laid out in a region (or a block like one) starts on a multiple of this.
ALIGN = 64


def nbytes(shape: tuple[int, ...], dtype: np.dtype | str) -> int:
    """Bytes of an array of ``shape`` and ``dtype``."""
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


def view(buffer: np.ndarray, offset: int, shape: tuple[int, ...], dtype) -> np.ndarray:
    """An array of ``shape`` and ``dtype`` over the bytes of ``buffer`` (uint8) from
    ``offset``."""
    return buffer[offset : offset + nbytes(shape, dtype)].view(dtype).reshape(shape)


def layout(sizes: list[int]) -> tuple[list[int], int]:
    """Where blocks of these byte ``sizes`` start, laid one after another, each on an
    :data:`ALIGN` boundary; and the bytes they take in all."""
    offsets, total = [], 0
    for size in sizes:
        offsets.append(total)
        total += -(-size // ALIGN) * ALIGN
    return offsets, total


def new_name() -> str:
    """A fresh region name owned by this process."""
    return f"tta_{os.getpid()}_{uuid.uuid4().hex[:12]}"


class Region:
    """A named shared-memory file, and once sized, its mapping as bytes (:attr:`buffer`)."""

    def __init__(self, fd: int, name: str) -> None:
        self._fd = fd
        self.name = name
        self.size = 0
        #: uint8 (size,) over the whole mapping; every array of the region is a view of it.
        self.buffer: np.ndarray | None = None

    @classmethod
    def create(cls, name: str | None = None) -> Region:
        """Take a new name (``O_EXCL``): the file exists, empty, from here on."""
        name = name or new_name()
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
        return cls(os.open(os.path.join(SHM_DIR, name), flags, 0o600), name)

    @property
    def key(self) -> str:
        """The name as shm_open (and Triton's registration) takes it."""
        return f"/{self.name}"

    @property
    def mapped(self) -> bool:
        return self.buffer is not None

    def allocate(self, size: int, reserve: bool = True) -> None:
        """Size the region to ``size`` bytes, map it, and reserve its pages. Raises
        MemoryError where the address-space cap refuses the mapping (a decode worker's
        RLIMIT_AS counts it), OSError ENOSPC where ``/dev/shm`` has no room.

        ``reserve`` False: no page is reserved yet; the writer reserves each range with
        :meth:`reserve` before it writes there, then closes the region's descriptor
        (:meth:`close`), which stays open for that till then."""
        if self.mapped or size <= 0:
            raise ValueError(f"region {self.name}: cannot allocate {size} bytes")
        os.ftruncate(self._fd, size)
        try:
            mm = self._mmap(size)
        except BaseException:
            os.ftruncate(self._fd, 0)
            raise
        try:
            # Mapped first: the cap refuses before any page is taken. Reserved before the
            # first write: a page tmpfs cannot back would be a SIGBUS on touch.
            if reserve:
                os.posix_fallocate(self._fd, 0, size)
        except OSError:
            mm.close()
            os.ftruncate(self._fd, 0)
            raise
        self._adopt(mm, size, keep_open=not reserve)

    def reserve(self, offset: int, length: int) -> None:
        """Reserve the pages of ``length`` bytes from ``offset`` (of a region allocated
        without reserving), so that writing there cannot fault; OSError ENOSPC where
        ``/dev/shm`` has no room. Reserving a range twice costs a system call, no memory."""
        if self._fd < 0 or not self.mapped or offset < 0 or offset + length > self.size:
            raise ValueError(f"region {self.name}: cannot reserve {length} bytes at {offset}")
        os.posix_fallocate(self._fd, offset, length)

    def map(self, size: int) -> None:
        """Map a region another process allocated (to ``size`` bytes) and wrote."""
        actual = os.fstat(self._fd).st_size
        if self.mapped or actual != size or size <= 0:
            raise ValueError(f"region {self.name}: {actual} bytes, expected {size}")
        self._adopt(self._mmap(size), size)

    def _mmap(self, size: int) -> mmap.mmap:
        try:
            return mmap.mmap(self._fd, size)
        except OSError as exc:
            if exc.errno == errno.ENOMEM:
                raise MemoryError(f"cannot map {size} bytes of shared memory") from None
            raise

    def _adopt(self, mm: mmap.mmap, size: int, keep_open: bool = False) -> None:
        self.buffer = np.frombuffer(mm, np.uint8)  # keeps the mapping alive
        self.size = size
        if not keep_open:
            self.close()  # the mapping holds the file; the name reopens it for Triton

    def array(self, offset: int, shape: tuple[int, ...], dtype: np.dtype | str) -> np.ndarray:
        """A view of the region: ``shape`` of ``dtype`` from byte ``offset``."""
        if self.buffer is None:
            raise ValueError(f"region {self.name} is not mapped")
        size = nbytes(shape, dtype)
        if offset < 0 or offset + size > self.size:
            raise ValueError(f"region {self.name}: {size} bytes at {offset} lie outside it")
        return view(self.buffer, offset, shape, dtype)

    def offset_of(self, arr: np.ndarray) -> int | None:
        """Where ``arr`` starts in the region, if it is one contiguous block inside it."""
        if self.buffer is None or not arr.flags.c_contiguous:
            return None
        start = arr.__array_interface__["data"][0] - self.buffer.__array_interface__["data"][0]
        return start if 0 <= start and start + arr.nbytes <= self.size else None

    def unlink(self) -> None:
        """Remove the name (again: no harm). Memory goes once nothing maps the file."""
        unlink(self.name)

    def close(self) -> None:
        """Close the descriptor (the name and any mapping stay)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()

    def __reduce__(self):
        # Into a worker process, before it is sized: the descriptor travels (multiprocessing
        # passes it over a Unix socket), so the worker writes into this very file and never
        # creates a name of its own.
        if self._fd < 0 or self.mapped:
            raise TypeError(f"region {self.name}: only an unmapped region travels")
        from multiprocessing import reduction

        return _rebuild, (reduction.DupFd(self._fd), self.name)

    def __repr__(self) -> str:
        return f"Region({self.name!r}, size={self.size})"


def _rebuild(dup, name: str) -> Region:
    return Region(dup.detach(), name)


def unlink(name: str) -> None:
    try:
        os.unlink(os.path.join(SHM_DIR, name))
    except FileNotFoundError:
        pass
