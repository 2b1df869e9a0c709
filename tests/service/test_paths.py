"""PathPolicy on its own: which paths the service agrees to read, decided before any open."""

from __future__ import annotations

import os
import socket
import time

import pytest

from tiktok_analyzer.service import Code, PathPolicy, ServiceFailure


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """root/ (allowed) holding every kind of thing, and outside/ beside it."""
    base = tmp_path_factory.mktemp("paths")
    root, outside = base / "root", base / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "clip.mp4").write_bytes(b"x" * 16)
    (root / "sub").mkdir()
    (root / "sub" / "deep.mp4").write_bytes(b"x" * 16)
    (outside / "secret.mp4").write_bytes(b"x" * 16)
    (root / "inside_link.mp4").symlink_to(root / "clip.mp4")
    (root / "escape_link.mp4").symlink_to(outside / "secret.mp4")
    (root / "etc_link").symlink_to("/etc")
    (root / "dangling.mp4").symlink_to(outside / "missing.mp4")
    os.mkfifo(root / "fifo.mp4")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock.mp4"))
    yield base
    sock.close()


CASES = [
    # (name, path relative to the tree's base or absolute, expected code or None for accepted)
    ("plain file", "root/clip.mp4", None),
    ("file in a subfolder", "root/sub/deep.mp4", None),
    ("dot-dot that stays inside", "root/sub/../clip.mp4", None),
    ("symlink inside the root", "root/inside_link.mp4", None),
    ("dot-dot escape", "root/../outside/secret.mp4", Code.PATH_NOT_ALLOWED),
    ("deep dot-dot escape", "root/sub/../../../../../../etc/passwd", Code.PATH_NOT_ALLOWED),
    ("symlink escape", "root/escape_link.mp4", Code.PATH_NOT_ALLOWED),
    ("symlinked folder escape", "root/etc_link/passwd", Code.PATH_NOT_ALLOWED),
    ("dangling symlink out", "root/dangling.mp4", Code.PATH_NOT_ALLOWED),
    ("outside the root", "outside/secret.mp4", Code.PATH_NOT_ALLOWED),
    ("root's sibling with a common prefix", "rootx/clip.mp4", Code.PATH_NOT_ALLOWED),
    ("/dev/zero", "/dev/zero", Code.PATH_NOT_ALLOWED),
    ("/proc/self/environ", "/proc/self/environ", Code.PATH_NOT_ALLOWED),
    ("FIFO", "root/fifo.mp4", Code.BAD_INPUT),
    ("socket", "root/sock.mp4", Code.BAD_INPUT),
    ("directory", "root/sub", Code.BAD_INPUT),
    ("the root itself", "root", Code.BAD_INPUT),
    ("missing file", "root/missing.mp4", Code.BAD_INPUT),
    ("relative path", "clip.mp4", Code.BAD_INPUT),
    ("empty path", "", Code.BAD_INPUT),
    ("NUL byte", "root/clip.mp4\x00.txt", Code.BAD_INPUT),
]


def _path(tree, rel: str) -> str:
    if not rel or rel.startswith("/") or "/" not in rel:
        return rel
    return str(tree / rel)


@pytest.mark.parametrize("name, rel, expected", CASES, ids=[c[0] for c in CASES])
def test_policy(tree, name, rel, expected):
    policy = PathPolicy.from_dirs([tree / "root"])
    raw = _path(tree, rel)
    t0 = time.monotonic()
    if expected is None:
        assert policy.resolve(raw) == os.path.realpath(raw)
    else:
        with pytest.raises(ServiceFailure) as info:
            policy.resolve(raw)
        assert info.value.code is expected, info.value.message
        # the reason names the path as given, never where a symlink led
        assert "secret" not in info.value.message or "secret" in rel
    assert time.monotonic() - t0 < 0.5  # a FIFO must not block


def test_without_roots_nothing_is_read(tree):
    with pytest.raises(ServiceFailure) as info:
        PathPolicy.from_dirs([]).resolve(str(tree / "root" / "clip.mp4"))
    assert info.value.code is Code.PATH_NOT_ALLOWED and "upload" in info.value.message


def test_root_of_slash_still_refuses_proc_and_dev():
    policy = PathPolicy.from_dirs(["/"])
    for path in ("/proc/self/environ", "/dev/zero", "/sys/kernel/notes"):
        with pytest.raises(ServiceFailure) as info:
            policy.resolve(path)
        assert info.value.code is Code.PATH_NOT_ALLOWED


@pytest.mark.parametrize("root", ["/proc", "/dev/shm", "/nonexistent-root"])
def test_bad_roots_are_refused_at_start(root):
    with pytest.raises(ValueError):
        PathPolicy.from_dirs([root])
