"""Media files that lie in their headers, made from a real tiny clip by patching bytes
(tests only): an MP4 whose track header, sample entry and H.264 SPS claim a huge frame, one
whose headers and sample table claim a huge duration, and the two kinds of damage the fuzz
run (tests/service/test_fuzz.py) found our probe tripping over."""

from __future__ import annotations

import struct
from pathlib import Path

import av
import numpy as np

_CONTAINERS = {b"moov", b"trak", b"edts", b"mdia", b"minf", b"stbl"}


def tiny_h264(path: Path, width: int = 64, height: int = 64, frames: int = 10) -> Path:
    """A real H.264 MP4 of ``frames`` frames at 10 fps (one second)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(frames):
            picture = np.full((height, width, 3), i * 20, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, "rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _boxes(
    data: bytes | bytearray, start: int = 0, end: int | None = None, parents: tuple[int, ...] = ()
) -> list[tuple[bytes, int, int, tuple[int, ...]]]:
    """(type, offset, size, offsets of enclosing boxes) of every box we may patch."""
    end = len(data) if end is None else end
    found = []
    i = start
    while i + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, i)
        if size < 8:
            break
        found.append((kind, i, size, parents))
        if kind in _CONTAINERS:
            found += _boxes(data, i + 8, i + size, (*parents, i))
        elif kind == b"stsd":  # full box + entry count, then the sample entries
            found += _boxes(data, i + 16, i + size, (*parents, i))
        elif kind == b"avc1":  # the visual sample entry's 78 bytes, then avcC
            found += _boxes(data, i + 86, i + size, (*parents, i))
        i += size
    return found


def _box(data: bytearray, kind: bytes) -> tuple[int, int, tuple[int, ...]]:
    (hit,) = [(off, size, parents) for k, off, size, parents in _boxes(data) if k == kind]
    return hit


class _Bits:
    def __init__(self, data: bytes) -> None:
        self.bits = "".join(f"{b:08b}" for b in data)
        self.pos = 0

    def u(self, n: int) -> int:
        value = int(self.bits[self.pos : self.pos + n], 2)
        self.pos += n
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bits[self.pos] == "0":
            zeros += 1
            self.pos += 1
        return self.u(zeros + 1) - 1


def _ue(value: int) -> str:
    code = f"{value + 1:b}"
    return "0" * (len(code) - 1) + code


def _unescape(nal: bytes) -> bytes:
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


def _escape(rbsp: bytes) -> bytes:
    out = bytearray()
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def _sps_with_size(sps: bytes, width: int, height: int) -> bytes:
    """The SPS NAL unit with its picture size in macroblocks replaced (no cropping)."""
    r = _Bits(_unescape(sps[1:]))
    profile = r.u(8)
    r.u(16)  # constraint flags, level
    r.ue()  # seq_parameter_set_id
    if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        if r.ue() == 3:  # chroma_format_idc
            r.u(1)
        r.ue(), r.ue(), r.u(1)  # bit depths, transform bypass
        if r.u(1):
            raise ValueError("SPS with scaling matrices: not handled")
    r.ue()  # log2_max_frame_num_minus4
    poc = r.ue()
    if poc == 0:
        r.ue()
    elif poc == 1:
        raise ValueError("pic_order_cnt_type 1: not handled")
    r.ue(), r.u(1)  # max_num_ref_frames, gaps allowed
    head = r.bits[: r.pos]
    r.ue(), r.ue()  # the size we replace
    frame_mbs_only = r.u(1)
    if not frame_mbs_only:
        raise ValueError("interlaced SPS: not handled")
    direct = r.u(1)
    if r.u(1):  # cropping: dropped, the new size is whole macroblocks
        r.ue(), r.ue(), r.ue(), r.ue()
    tail = r.bits[r.pos :].rstrip("0")[:-1]  # up to the RBSP stop bit
    bits = (
        head + _ue(width // 16 - 1) + _ue(height // 16 - 1) + "1" + str(direct) + "0" + tail + "1"
    )
    bits += "0" * (-len(bits) % 8)
    rbsp = int(bits, 2).to_bytes(len(bits) // 8, "big")
    return sps[:1] + _escape(rbsp)


def _resize_box(data: bytearray, offset: int, parents: tuple[int, ...], delta: int) -> None:
    for box in (*parents, offset):
        size = struct.unpack_from(">I", data, box)[0]
        struct.pack_into(">I", data, box, size + delta)


def claim_size(src: Path, dst: Path, width: int, height: int) -> Path:
    """``src`` with the track header, the avc1 sample entry and the SPS all saying
    ``width`` x ``height`` (multiples of 16); the coded frames stay small."""
    data = bytearray(src.read_bytes())
    if _box(data, b"moov")[0] < _box(data, b"mdat")[0]:
        raise ValueError("moov before mdat: chunk offsets would move")
    tkhd = _box(data, b"tkhd")[0]
    struct.pack_into(">II", data, tkhd + 84, width << 16, height << 16)
    avc1 = _box(data, b"avc1")[0]
    struct.pack_into(">HH", data, avc1 + 32, width, height)
    avcc, _, parents = _box(data, b"avcC")
    sps_len = struct.unpack_from(">H", data, avcc + 14)[0]
    sps = bytes(data[avcc + 16 : avcc + 16 + sps_len])
    new = _sps_with_size(sps, width, height)
    data[avcc + 14 : avcc + 16 + sps_len] = struct.pack(">H", len(new)) + new
    _resize_box(data, avcc, parents, len(new) - len(sps))
    dst.write_bytes(bytes(data))
    return dst


def claim_duration(src: Path, dst: Path, seconds: float) -> Path:
    """``src`` with the movie, track and media headers, the edit list and the sample table
    all saying ``seconds`` long (the frames stay the same few). FFmpeg believes the sample
    table and the edit list, not the headers: a claim in the headers alone changes nothing
    it reports."""
    data = bytearray(src.read_bytes())
    mvhd = _box(data, b"mvhd")[0]
    movie_scale = struct.unpack_from(">I", data, mvhd + 20)[0]
    struct.pack_into(">I", data, mvhd + 24, int(seconds * movie_scale))
    struct.pack_into(">I", data, _box(data, b"tkhd")[0] + 28, int(seconds * movie_scale))
    elst = _box(data, b"elst")[0]  # the edit list: what part of the media is shown
    struct.pack_into(">I", data, elst + 16, int(seconds * movie_scale))
    mdhd = _box(data, b"mdhd")[0]
    media_scale = struct.unpack_from(">I", data, mdhd + 20)[0]
    struct.pack_into(">I", data, mdhd + 24, int(seconds * media_scale))
    stts = _box(data, b"stts")[0]
    if struct.unpack_from(">I", data, stts + 12)[0] != 1:
        raise ValueError("stts with several entries: not handled")
    count = struct.unpack_from(">I", data, stts + 16)[0]
    struct.pack_into(">I", data, stts + 20, int(seconds * media_scale / count))
    dst.write_bytes(bytes(data))
    return dst


def unknown_codec(src: Path, dst: Path) -> Path:
    """``src`` with its video sample entry renamed to a codec nobody knows."""
    data = bytearray(src.read_bytes())
    entry = _box(data, b"avc1")[0]
    data[entry + 4 : entry + 8] = b"zzzz"
    dst.write_bytes(bytes(data))
    return dst


def broken_tag(src: Path, dst: Path) -> Path:
    """``src`` with its encoder tag ("Lavf...") no longer valid UTF-8."""
    data = bytearray(src.read_bytes())
    at = data.index(b"Lavf")
    data[at : at + 2] = b"\xc3\x28"  # a lead byte without its continuation
    dst.write_bytes(bytes(data))
    return dst


def tiny_mpeg_ps(path: Path) -> Path:
    """A real MPEG program stream (.mpg), a container whose streams appear only while
    FFmpeg probes it."""
    with av.open(str(path), "w", format="mpeg") as out:
        stream = out.add_stream("mpeg1video", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        picture = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), "rgb24")
        for _ in range(10):
            for packet in stream.encode(picture):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
