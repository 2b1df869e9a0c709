"""Small clips the decode tests write themselves."""

from __future__ import annotations

import av
import numpy as np


def turned_clip(path: str, matrix_angle: int) -> None:
    """5 frames of 128x64, the left half red and the right blue, with a display matrix of
    ``matrix_angle`` (0: none): a phone's portrait clip stored landscape."""
    with av.open(path, "w") as out:
        s = out.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 128, 64, "yuv420p"
        if matrix_angle:
            s.set_display_rotation(matrix_angle)
        img = np.zeros((64, 128, 3), np.uint8)
        img[:, :64] = (255, 0, 0)
        img[:, 64:] = (0, 0, 255)
        for _ in range(5):
            for p in s.encode(av.VideoFrame.from_ndarray(img, "rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)


def sample_clip(folder) -> tuple[str, dict]:
    """The sample clip's layers at 360x640 (15 s, cuts, colours, speech) and its truth."""
    from tiktok_analyzer.groundtruth import CATALOG, render
    from tiktok_analyzer.groundtruth.clips import scale_spec

    path = folder / "clip.mp4"
    truth = render(scale_spec(CATALOG["sample"], 360, 640), path)
    return str(path), truth
