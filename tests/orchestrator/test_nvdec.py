"""The GPU decoder's glue (orchestrator/nvdec.py), against the CPU decode of the same clips.

No GPU here: NVIDIA's decoder is stood in for by one that hands out PyAV's full-size RGB
frames as torch tensors, in display order and in batches, as ``PyNvVideoCodec.SimpleDecoder``
does. What is tested is everything of ours around it: frame times from the demuxed packets,
the same selection into the same planned slots, the resizes and turns in torch, the audio,
the fall-back to the CPU, and a decoder that fails. The decoder itself is measured on the GPU
host (bench/gpu/nvdec_probe.py, and the pipeline bench with
``TIKTOK_ANALYZER_VIDEO_DECODER=nvdec``).
"""

from __future__ import annotations

import av
import numpy as np
import pytest

from tests.orchestrator.clips import sample_clip, turned_clip
from tiktok_analyzer.analyzers.base import FrameSpec
from tiktok_analyzer.orchestrator import nvdec
from tiktok_analyzer.orchestrator.decode import decode
from tiktok_analyzer.orchestrator.probe import BadInput, probe
from tiktok_analyzer.orchestrator.region import Region

torch = pytest.importorskip("torch")


class StandIn:
    """What our code uses of ``SimpleDecoder``: ``len()`` and ``get_batch_frames(n)``,
    frames that DLPack reads, the decoder's surfaces reused from batch to batch."""

    def __init__(self, url: str, fail_at: int | None = None) -> None:
        with av.open(url) as c:
            self.frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        self.pos, self.fail_at = 0, fail_at
        self.surfaces: list = []
        self.seeks: list[int] = []

    def __len__(self) -> int:
        return len(self.frames)

    def seek_to_index(self, index: int) -> None:
        self.seeks.append(index)
        self.pos = index

    def get_batch_frames(self, n: int) -> list:
        if self.fail_at is not None and self.pos + n > self.fail_at:
            raise RuntimeError("CUDA_ERROR_INVALID_SOURCE")
        for old in self.surfaces:
            old.zero_()  # a reused surface: frames kept from the last batch would read this
        got = self.frames[self.pos : self.pos + n]
        self.surfaces = [torch.from_numpy(f.copy()) for f in got]
        self.pos += len(got)
        return self.surfaces


@pytest.fixture
def stand_in(monkeypatch):
    made: list[StandIn] = []

    def use(fail_at: int | None = None, segments: int = 1, later: tuple = ()):
        """Decoders on the clip; the first fails at frame ``fail_at``, those opened after it
        (the parts of a clip cut up, then the pass again) at ``later``'s frames in turn."""

        def open_decoder(url, info):
            fails = iter(later)

            def reopen():
                made.append(StandIn(url, next(fails, None)))
                return made[-1]

            made.append(StandIn(url, fail_at))
            return nvdec.GpuDecoder(made[-1], torch, reopen, segments)

        monkeypatch.setattr(nvdec, "open_decoder", open_decoder)
        return made

    return use


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return sample_clip(tmp_path_factory.mktemp("nvdec"))


SPECS = [
    FrameSpec(short_side=64, every_frame=True),
    FrameSpec(short_side=64, fps=2.0),
    FrameSpec(short_side=128, count=8),
    FrameSpec(short_side=0, fps=1.0),
]


def test_the_gpu_path_gives_the_cpu_path_frame_sets(clip, stand_in):
    path, truth = clip
    used = stand_in()
    info = probe(path)
    cpu = decode(path, info, SPECS, audio=True)
    gpu = decode(path, info, SPECS, audio=True, gpu=True)
    assert used and used[0].pos == truth["n_frames"]
    assert (cpu.video_decoder, gpu.video_decoder) == ("cpu", "nvdec")
    assert gpu.n_frames == cpu.n_frames == truth["n_frames"]
    assert gpu.warnings == []
    for spec in SPECS:
        a, b = cpu.frame_sets[spec], gpu.frame_sets[spec]
        np.testing.assert_array_equal(b.frame_indices, a.frame_indices)
        np.testing.assert_allclose(b.timestamps_s, a.timestamps_s, atol=1e-9)
        assert b.frames.shape == a.frames.shape and b.frames.dtype == np.uint8
        # torch's area filter against swscale's: a few levels apart, not another picture
        diff = np.abs(b.frames.astype(int) - a.frames.astype(int))
        assert diff.mean() < 2.5 and np.percentile(diff, 99) < 24, (spec, diff.mean())
    np.testing.assert_array_equal(gpu.audio, cpu.audio)


def test_the_gpu_path_fills_the_region(clip, stand_in):
    path, _ = clip
    stand_in()
    info = probe(path)
    region = Region.create()
    try:
        out = decode(path, info, SPECS[:2], audio=True, region=region, gpu=True)
        assert out.region is region
        for fs in out.frame_sets.values():
            assert region.offset_of(fs.frames) is not None
        assert region.offset_of(out.audio) is not None
    finally:
        region.close()
        region.unlink()


@pytest.mark.parametrize("matrix_angle,top", [(-90, "red"), (90, "blue")])
def test_the_gpu_path_turns_portrait_clips(tmp_path, stand_in, matrix_angle, top):
    path = str(tmp_path / "rot.mp4")
    turned_clip(path, matrix_angle)
    stand_in()
    info = probe(path)
    spec = FrameSpec(short_side=32, every_frame=True)
    frame = decode(path, info, [spec], audio=False, gpu=True).frame_sets[spec].frames[0]
    assert frame.shape == (64, 32, 3)
    upper = frame[: frame.shape[0] // 4].reshape(-1, 3).mean(0)
    assert (upper[0] > 200) == (top == "red") and (upper[2] > 200) == (top == "blue"), upper


def test_without_the_decoder_the_cpu_decodes_and_says_why(clip):
    """This machine has no PyNvVideoCodec (and no GPU): the real open_decoder says so."""
    path, truth = clip
    info = probe(path)
    out = decode(path, info, SPECS[:1], audio=False, gpu=True)
    assert out.video_decoder == "cpu" and out.n_frames == truth["n_frames"]
    assert len(out.warnings) == 1 and out.warnings[0].startswith("video decoded on the CPU: ")


def test_a_decoder_error_midway_keeps_the_frames_before_it(clip, stand_in):
    path, _ = clip
    stand_in(fail_at=nvdec.BATCH * 2)
    info = probe(path)
    spec = SPECS[0]
    out = decode(path, info, [spec], audio=True, gpu=True)
    assert out.n_frames == 2 * nvdec.BATCH  # the third batch failed whole
    assert len(out.frame_sets[spec].frames) == 2 * nvdec.BATCH
    assert out.warnings == [
        f"decoding stopped early at frame {2 * nvdec.BATCH}: CUDA_ERROR_INVALID_SOURCE"
    ]
    assert out.audio is not None


def test_a_decoder_error_at_once_refuses_the_file(clip, stand_in):
    path, _ = clip
    stand_in(fail_at=0)
    with pytest.raises(BadInput, match="no decodable frames on the GPU"):
        decode(path, probe(path), SPECS[:1], audio=False, gpu=True)


@pytest.mark.parametrize("value,gpu", [("cpu", False), ("nvdec", True)])
def test_the_setting(monkeypatch, value, gpu):
    monkeypatch.setattr(nvdec, "VIDEO_DECODER", value)
    assert nvdec.wanted() is gpu


def test_an_unknown_setting_is_named(monkeypatch):
    monkeypatch.setattr(nvdec, "VIDEO_DECODER", "nvenc")
    with pytest.raises(ValueError, match="TIKTOK_ANALYZER_VIDEO_DECODER='nvenc'"):
        nvdec.wanted()


def test_frames_kept_apart_from_the_plan_arrive_too(clip, stand_in, monkeypatch):
    """No plan at all (a clip too long for one): every frame is kept apart and the sets are
    stacked when the pass ends, from the GPU's arrays as from the CPU's."""
    from tiktok_analyzer.orchestrator import decode as decode_mod

    path, _ = clip
    stand_in()
    monkeypatch.setattr(decode_mod, "_plan_budget", lambda limits: 0)
    info = probe(path)
    cpu = decode(path, info, SPECS[:3], audio=False)
    gpu = decode(path, info, SPECS[:3], audio=False, gpu=True)
    for spec in SPECS[:3]:
        a, b = cpu.frame_sets[spec], gpu.frame_sets[spec]
        np.testing.assert_array_equal(b.frame_indices, a.frame_indices)
        diff = np.abs(b.frames.astype(int) - a.frames.astype(int))
        assert b.frames.shape == a.frames.shape and diff.mean() < 2.5, (spec, diff.mean())


@pytest.fixture(scope="module")
def gop_clip(tmp_path_factory):
    """3 s at 30 fps, a key frame every 30 frames (x264's scene cuts off), each frame its
    own shade: a frame from the wrong place shows."""
    path = str(tmp_path_factory.mktemp("gop") / "gop.mp4")
    with av.open(path, "w") as out:
        s = out.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 128, 224, "yuv420p"
        s.options = {"g": "30", "keyint_min": "30", "sc_threshold": "0", "bf": "2"}
        for i in range(90):
            img = np.full((224, 128, 3), (i * 2, 255 - i * 2, (i * 5) % 256), np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, "rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


GOP_SPECS = [FrameSpec(short_side=64, every_frame=True), FrameSpec(short_side=96, count=7)]


def test_a_clip_cut_at_key_frames_decodes_as_in_one_pass(gop_clip, stand_in):
    made = stand_in()
    info = probe(gop_clip)
    one = decode(gop_clip, info, GOP_SPECS, audio=False, gpu=True)
    assert len(made) == 1
    made.clear()
    stand_in(segments=3)
    cut = decode(gop_clip, info, GOP_SPECS, audio=False, gpu=True)
    assert len(made) == 3 and sorted(i for d in made for i in d.seeks) == [30, 60]
    assert cut.n_frames == one.n_frames == 90 and cut.warnings == []
    for spec in GOP_SPECS:
        a, b = one.frame_sets[spec], cut.frame_sets[spec]
        np.testing.assert_array_equal(b.frames, a.frames)
        np.testing.assert_array_equal(b.timestamps_s, a.timestamps_s)
        np.testing.assert_array_equal(b.frame_indices, a.frame_indices)


def test_a_part_that_fails_decodes_the_clip_again_in_one_pass(gop_clip, stand_in, caplog):
    stand_in()
    info = probe(gop_clip)
    one = decode(gop_clip, info, GOP_SPECS, audio=False, gpu=True)
    made = stand_in(segments=3, later=(40, 40))  # the second and third parts fail
    made.clear()
    again = decode(gop_clip, info, GOP_SPECS, audio=False, gpu=True)
    assert "decoding the clip again in one pass" in caplog.text
    assert len(made) == 4  # three parts, then one decoder for the pass again
    assert again.n_frames == 90 and again.warnings == []
    for spec in GOP_SPECS:
        np.testing.assert_array_equal(again.frame_sets[spec].frames, one.frame_sets[spec].frames)
        np.testing.assert_array_equal(
            again.frame_sets[spec].frame_indices, one.frame_sets[spec].frame_indices
        )


@pytest.mark.parametrize(
    "keys,parts,expected",
    [
        ([0, 60, 120, 180, 240], 4, [(0, 60), (60, 120), (120, 240), (240, 300)]),
        ([0, 60, 120, 180, 240], 1, [(0, 300)]),
        ([0], 4, [(0, 300)]),
        ([60, 120], 4, [(0, 300)]),  # the first frame is no key frame: one run
        ([0, 150], 2, [(0, 150), (150, 300)]),
    ],
)
def test_segments(keys, parts, expected):
    times = [i / 30 for i in range(300)]
    assert nvdec.segments(times, [k / 30 for k in keys], parts) == expected


@pytest.mark.parametrize("argv", [["analyze", "nothing.mp4"], ["serve"]])
def test_an_unknown_setting_stops_the_command_before_any_work(monkeypatch, capsys, argv):
    from tiktok_analyzer.cli import main

    monkeypatch.setattr(nvdec, "VIDEO_DECODER", "nvenc")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: TIKTOK_ANALYZER_VIDEO_DECODER='nvenc'") and "\n" not in err


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_an_unknown_number_of_parts_stops_the_command(monkeypatch, capsys, value):
    from tiktok_analyzer.cli import main

    monkeypatch.setattr(nvdec, "SEGMENTS", value)
    assert main(["analyze", "nothing.mp4"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: TIKTOK_ANALYZER_NVDEC_SEGMENTS=") and "\n" not in err
