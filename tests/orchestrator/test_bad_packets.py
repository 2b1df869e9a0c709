"""One bad packet doesn't sink a file: a packet that fails to decode is skipped and counted
in the warnings, the rest decodes; a file is refused only when nothing decodes. The clips
are real encodes (MPEG-4 part 2 video, as XviD writes it, with AC3, AAC, MP3, Opus or PCM
sound) whose first audio packet is zeroed, as in a film whose first AC3 packet failed."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tiktok_analyzer.analyzers.base import AUDIO_RATE, FrameSpec
from tiktok_analyzer.orchestrator.decode import decode
from tiktok_analyzer.orchestrator.probe import BadInput, probe

FRAMES, FPS, RATE, SECONDS = 20, 10, 48000, 2.0
SPECS = [FrameSpec(short_side=32, fps=5.0)]


def _zeroed(packet: av.Packet, stream) -> av.Packet:
    bad = av.Packet(bytes(packet.size))
    bad.pts, bad.dts, bad.time_base, bad.stream = packet.pts, packet.dts, packet.time_base, stream
    return bad


def _audio_packets(stream) -> list[av.Packet]:
    size = stream.codec_context.frame_size or 1024
    packets, t = [], 0
    while t < SECONDS * RATE:
        tone = (np.sin(2 * np.pi * 440 * (np.arange(size) + t) / RATE) * 0.3).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = RATE, t, Fraction(1, RATE)
        packets += stream.encode(frame)
        t += size
    return packets + list(stream.encode())


def make_clip(path: Path, codec: str, fmt: str, *, video=True, zero_audio=1) -> Path:
    """FRAMES frames of video (when asked) and SECONDS of a 440 Hz tone in ``codec``, the
    first ``zero_audio`` audio packets zeroed."""
    with av.open(str(path), "w", format=fmt) as out:
        packets = []
        if video:
            v = out.add_stream("mpeg4", rate=FPS)
            v.width, v.height, v.pix_fmt = 64, 64, "yuv420p"
            for i in range(FRAMES):
                picture = np.full((64, 64, 3), i * 10, np.uint8)
                packets += v.encode(av.VideoFrame.from_ndarray(picture, "rgb24"))
            packets += v.encode()
        a = out.add_stream(codec, rate=RATE, layout="stereo")
        audio = _audio_packets(a)
        packets += [_zeroed(p, a) for p in audio[:zero_audio]] + audio[zero_audio:]
        for packet in packets:
            out.mux(packet)
    return path


@pytest.mark.parametrize(
    "codec, fmt, fails",
    [
        ("ac3", "avi", True),  # the film's case
        ("aac", "matroska", True),
        # these decoders take a zeroed packet as silence: nothing to skip, nothing lost
        ("mp3", "avi", False),
        ("libopus", "matroska", False),
        ("pcm_s16le", "avi", False),
    ],
)
def test_a_bad_first_audio_packet_is_skipped_and_counted(tmp_path, codec, fmt, fails):
    path = str(make_clip(tmp_path / f"clip.{fmt}", codec, fmt))
    info = probe(path)
    decoded = decode(path, info, SPECS, audio=True)
    assert decoded.n_frames == FRAMES
    assert len(decoded.frame_sets[SPECS[0]].frames) == int(SECONDS * 5)
    # all the sound but the bad packet (a frame of at most 2048 samples at 48 kHz)
    assert decoded.audio is not None
    assert abs(len(decoded.audio) - SECONDS * AUDIO_RATE) < 0.05 * AUDIO_RATE
    skipped = [w for w in decoded.warnings if "undecodable audio packet" in w]
    assert skipped == (
        ["skipped 1 undecodable audio packet (Invalid data found when processing input)"]
        if fails
        else []
    )
    # the tone is there: its loudness after the skipped packet is the encoded one
    rms = float(np.sqrt(np.mean(decoded.audio[AUDIO_RATE // 2 :] ** 2)))
    assert 0.25 < rms < 0.35  # 0.3 amplitude per channel, downmixed to mono: 0.3 RMS


def test_many_bad_packets_are_counted_once(tmp_path):
    # Matroska keeps each AAC packet as written (AVI's AC3 parser would merge the zeros).
    path = str(make_clip(tmp_path / "clip.mkv", "aac", "matroska", zero_audio=5))
    decoded = decode(path, probe(path), SPECS, audio=True)
    assert [w for w in decoded.warnings if "undecodable" in w] == [
        "skipped 5 undecodable audio packets (Invalid data found when processing input)"
    ]
    assert decoded.n_frames == FRAMES


def test_nothing_decodable_is_refused(tmp_path):
    path = str(make_clip(tmp_path / "sound.avi", "ac3", "avi", video=False, zero_audio=10**6))
    info = probe(path)
    with pytest.raises(BadInput, match="no decodable data"):
        decode(path, info, [], audio=True)


def _tone_file(rate: int, layout: str, hz: float, codec: str, fmt: str) -> bytes:
    """One second of a ``hz`` tone as a raw ``fmt`` stream (no container header to clash)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        size = stream.codec_context.frame_size or 1152
        channels = 2 if layout == "stereo" else 1
        for t in range(0, rate, size):
            tone = (np.sin(2 * np.pi * hz * (np.arange(size) + t) / rate) * 0.3).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(np.stack([tone] * channels), "fltp", layout)
            frame.sample_rate, frame.pts, frame.time_base = rate, t, Fraction(1, rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buffer.getvalue()


def _peak_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * AUDIO_RATE / len(samples))


@pytest.mark.parametrize("codec, fmt", [("mp3", "mp3"), ("aac", "adts")])
def test_a_stream_that_changes_rate_and_layout_midway_decodes_whole(tmp_path, codec, fmt):
    # Two files joined byte to byte: a 44.1 kHz mono 440 Hz second, then a 22.05 kHz stereo
    # 880 Hz one. Every frame header carries its own rate, so the decoder's frames change
    # setup midway; a resampler built for the first refuses the second (found by fuzzing).
    path = tmp_path / f"joined.{fmt}"
    path.write_bytes(
        _tone_file(44100, "mono", 440, codec, fmt) + _tone_file(22050, "stereo", 880, codec, fmt)
    )
    decoded = decode(str(path), probe(str(path)), [], audio=True)
    assert decoded.audio is not None
    # both seconds, each resampled at its own rate (encoder padding adds up to ~0.1 s each)
    assert 1.9 * AUDIO_RATE < len(decoded.audio) < 2.3 * AUDIO_RATE
    first, second = decoded.audio[2000:14000], decoded.audio[-14000:-2000]
    assert abs(_peak_hz(first) - 440) < 5
    assert abs(_peak_hz(second) - 880) < 5


def test_an_audio_frame_the_resampler_cannot_take_is_skipped(tmp_path):
    # Found by tests/service/test_fuzz.py (a mutant of its AAC seed): a damaged AAC header
    # decodes to one frame of 48 channels, which the resampler cannot convert. The frame is
    # counted with the undecodable packets; the audio before and after it is kept.
    path = str(
        Path(__file__).parents[1] / "service" / "fuzz_found" / "aac_frame_of_48_channels.mp4"
    )
    decoded = decode(path, probe(path), SPECS, audio=True)
    assert decoded.n_frames == 3  # the mutant's other damage: 6 of 10 video packets
    assert decoded.audio is not None and len(decoded.audio) >= 4 * 1024
    assert any("undecodable audio packets" in w for w in decoded.warnings)
