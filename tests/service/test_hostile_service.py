"""Hostile inputs through the running service (Triton down: every refusal here comes
before any analysis): a playlist naming an outside file, by path and as an upload, opens
nothing outside (inotify counts it), and what a caller learns reveals nothing about it."""

from __future__ import annotations

import shutil

import pytest
from tiktok_analyzer_client import BadInputError, Client, RetryPolicy

from tests.service.inotify import Watch

from .conftest import closed_port_url, start_service

NO_RETRY = RetryPolicy(attempts=1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, clip_factory):
    src, _ = clip_factory("cuts", width=64, height=64)
    base = tmp_path_factory.mktemp("hostile")
    root, outside = base / "root", base / "outside"
    root.mkdir()
    outside.mkdir()
    secret = outside / "secret.mp4"
    shutil.copy(src, secret)
    playlist = f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{secret}\n#EXT-X-ENDLIST\n"
    (root / "list.m3u8").write_text(playlist)
    (base / "upload.m3u8").write_text(playlist)
    (base / "upload.mp4").write_text(playlist)
    svc = start_service(closed_port_url(), [root])
    yield svc, root, base, secret
    svc.stop()


def test_a_playlist_opens_nothing_outside(setup):
    svc, root, base, secret = setup
    with Watch(secret) as watch, Client(svc.grpc_target, retry=NO_RETRY) as client:
        with pytest.raises(BadInputError, match="playlist") as info:
            client.analyze(str(root / "list.m3u8"), ["cut_analysis"])
        assert "secret" not in str(info.value)
        for upload in ("upload.m3u8", "upload.mp4"):
            with pytest.raises(BadInputError, match="playlist") as info:
                client.upload_and_analyze(base / upload, ["cut_analysis"])
            assert "secret" not in str(info.value)
        assert watch.drain() == 0
