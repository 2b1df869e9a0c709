"""No byte outside the allowed roots, by construction: a component swapped for a symlink
while the service opens the path, and playlists or file lists naming an outside file,
make nothing open the outside file. inotify (tests/service/inotify.py) counts every open
and read of it; the count must stay 0."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.service.inotify import Watch
from tiktok_analyzer.orchestrator.probe import BadInput, MediaFile, probe
from tiktok_analyzer.service import Code, PathPolicy, ServiceFailure
from tiktok_analyzer.service import paths as paths_module

TRIES = 600
RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)


def _exchange(a: Path, b: Path) -> None:
    if _libc.renameat2(-100, os.fsencode(a), -100, os.fsencode(b), RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@pytest.fixture
def tree(tmp_path, clip_factory):
    """root/d/clip.mp4 a real clip; outside/clip.mp4 another (the secret); root/alt a
    symlink to outside/, exchanged with root/d by the swapper."""
    src, _ = clip_factory("cuts", width=64, height=64)
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "d").mkdir(parents=True)
    outside.mkdir()
    shutil.copy(src, root / "d" / "clip.mp4")
    shutil.copy(src, outside / "clip.mp4")
    (root / "alt").symlink_to(outside)
    try:
        _exchange(root / "d", root / "alt")
        _exchange(root / "d", root / "alt")
    except OSError as exc:
        pytest.skip(f"this filesystem cannot exchange names atomically ({exc})")
    return root, outside


_SWAP_LOOP = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
a, b = (os.fsencode(p) for p in sys.argv[1:3])
print("ready", flush=True)
while libc.renameat2(-100, a, -100, b, 2) == 0:
    pass
"""


class Swapper:
    """Another process (as an attacker would be) exchanging root/d (a real folder) and
    root/alt (a symlink out) as fast as it can, until stopped."""

    def __init__(self, root: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _SWAP_LOOP, str(root / "d"), str(root / "alt")],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout.readline().strip() == "ready"

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def _race(policy: PathPolicy, raw: str, outside_clip: Path) -> tuple[int, int, int]:
    """(reads inside, refusals, events on the outside clip) over TRIES opens of ``raw``
    while a swapper exchanges a folder of it with a symlink out."""
    reads = refusals = 0
    with Watch(outside_clip) as watch:
        swapper = Swapper(Path(raw).parents[1])
        try:
            for i in range(TRIES):
                try:
                    opened = policy.open(raw)
                except ServiceFailure as failure:
                    assert failure.code in (Code.PATH_NOT_ALLOWED, Code.BAD_INPUT)
                    refusals += 1
                    continue
                with opened:
                    assert os.pread(opened.fd, 16, 0)
                    if i % 100 == 0:  # and the decoder reads the same descriptor
                        assert probe(opened).width == 64
                reads += 1
        finally:
            swapper.stop()
        return reads, refusals, watch.drain()


def test_a_folder_swapped_for_a_symlink_never_reads_outside(tree):
    root, outside = tree
    t0 = time.monotonic()
    reads, refusals, outside_events = _race(
        PathPolicy.from_dirs([root]), str(root / "d" / "clip.mp4"), outside / "clip.mp4"
    )
    assert outside_events == 0
    assert reads > 0 and refusals > 0, (reads, refusals)
    assert time.monotonic() - t0 < 20


def test_the_walk_without_openat2_holds_too(tree, monkeypatch):
    monkeypatch.setattr(paths_module, "_openat2_works", False)
    root, outside = tree
    reads, refusals, outside_events = _race(
        PathPolicy.from_dirs([root]), str(root / "d" / "clip.mp4"), outside / "clip.mp4"
    )
    assert outside_events == 0
    assert reads > 0 and refusals > 0, (reads, refusals)


def test_the_swap_race_did_read_outside_when_the_path_was_reopened(tree):
    """The race the policy closes, shown real: the old check (``realpath`` under the root),
    then an open by name (what the decoder did), reads the outside clip."""
    root, outside = tree
    raw = str(root / "d" / "clip.mp4")
    with Watch(outside / "clip.mp4") as watch:
        swapper = Swapper(root)
        deadline = time.monotonic() + 15
        try:
            while not watch.drain() and time.monotonic() < deadline:
                with contextlib.suppress(OSError):  # realpath and open both see the swap
                    if os.path.realpath(raw).startswith(f"{root}/"):
                        with open(raw, "rb") as f:
                            f.read(16)
        finally:
            swapper.stop()
        assert watch.drain() > 0


# -- lists of other files -------------------------------------------------------------------


def _lists(target: Path) -> dict[str, str]:
    return {
        "hls.m3u8": f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{target}\n#EXT-X-ENDLIST\n",
        "hls_no_ext.mp4": f"#EXTM3U\n#EXTINF:10,\nfile://{target}\n#EXT-X-ENDLIST\n",
        "concat.mp4": f"ffconcat version 1.0\nfile '{target}'\n",
        "bare_concat.ts": f"file '{target}'\n",
        "dash.mpd": f'<?xml version="1.0"?><MPD><BaseURL>{target}</BaseURL></MPD>',
        "bom_hls.mp4": f"\ufeff  #EXTM3U\n{target}\n",
        "plain_list.txt": f"{target}\n",
    }


@pytest.fixture
def lists(tmp_path, clip_factory):
    src, _ = clip_factory("cuts", width=64, height=64)
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    secret = outside / "secret.mp4"
    shutil.copy(src, secret)
    for name, text in _lists(secret).items():
        (root / name).write_text(text)
    return root, secret


def test_a_list_naming_an_outside_file_opens_nothing(lists):
    root, secret = lists
    policy = PathPolicy.from_dirs([root])
    with Watch(secret) as watch:
        for name in _lists(secret):
            with policy.open(str(root / name)) as opened, pytest.raises(BadInput) as info:
                probe(opened)
            assert "secret" not in str(info.value), info.value
            with pytest.raises(BadInput):  # the CLI's way in: a path it names
                probe(str(root / name))
        assert watch.drain() == 0


def test_a_list_says_the_same_whether_its_file_exists(lists):
    """No oracle: a list naming a missing file is refused with the message of one naming
    a file that exists."""
    root, secret = lists
    missing = secret.with_name("missing.mp4")
    for name, text in _lists(missing).items():
        (root / f"missing_{name}").write_text(text)
        messages = []
        for path in (root / name, root / f"missing_{name}"):
            with pytest.raises(BadInput) as info:
                probe(str(path))
            messages.append(str(info.value).replace(str(path), "X"))
        assert messages[0] == messages[1]


def test_a_fifo_is_refused_at_once(tmp_path):
    fifo = tmp_path / "stream.ts"
    os.mkfifo(fifo)
    policy = PathPolicy.from_dirs([tmp_path])
    t0 = time.monotonic()
    with pytest.raises(ServiceFailure, match="is a FIFO"):
        policy.open(str(fifo))
    with pytest.raises(BadInput, match="is a FIFO"):
        probe(str(fifo))
    with pytest.raises(BadInput, match="is a FIFO"):
        MediaFile.open(fifo)
    assert time.monotonic() - t0 < 0.5


def test_missing_outside_and_symlinked_out_say_the_same(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "there.mp4").write_bytes(b"x" * 16)
    (root / "to_there.mp4").symlink_to(outside / "there.mp4")
    (root / "to_nowhere.mp4").symlink_to(outside / "nowhere.mp4")
    policy = PathPolicy.from_dirs([root])
    answers = set()
    for raw in (
        outside / "there.mp4",
        outside / "nowhere.mp4",
        root / "to_there.mp4",
        root / "to_nowhere.mp4",
        root / ".." / "outside" / "there.mp4",
        root / ".." / "outside" / "nowhere.mp4",
    ):
        with pytest.raises(ServiceFailure) as info:
            policy.open(str(raw))
        answers.add((info.value.code, info.value.message.replace(str(raw), "X")))
    assert answers == {(Code.PATH_NOT_ALLOWED, "X: outside the allowed roots")}
