"""The report on one 1600x900 PNG, for chat and tickets: the clip's facts, its keyframes,
a compact timeline (cuts, scenes, camera, effects, loudness with beats and silences,
pacing), headline numbers, the palette and the analyzers' status counts."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from tiktok_analyzer.render.keyframes import Keyframes
from tiktok_analyzer.render.timeline import (
    DRAWN,
    HOOK_WINDOW_S,
    STATUSES,
    Lane,
    Timeline,
    pack_rows,
    partial_note,
)

__all__ = ["HEIGHT", "KEYFRAME_H", "WIDTH", "draw_summary", "write_png"]

WIDTH, HEIGHT = 1600, 900
KEYFRAME_H = 190
MARGIN = 32
LABEL_W = 190  # the lane names' column
TRACK_X0, TRACK_X1 = MARGIN + LABEL_W, WIDTH - MARGIN

_FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
BG, CARD, INK, MUTED, LINE = "#f6f7f9", "#ffffff", "#1d2330", "#667085", "#e3e6ec"
STATUS_COLORS = {
    "ok": "#2e9d5b",
    "partial": "#2b8a9e",
    "failed": "#d64545",
    "skipped": "#c98a00",
    "unavailable": "#7d8593",
    "missing": "#a0a6b2",
    "error": "#b3409c",
}
MOTION_COLORS = {
    "pan_left": "#3f7fd0",
    "pan_right": "#3f7fd0",
    "tilt_up": "#7a5cc7",
    "tilt_down": "#7a5cc7",
    "zoom_in": "#e08a2e",
    "zoom_out": "#e08a2e",
    "shake": "#d64545",
}
CUT_COLORS = {"fade": "#f39c12", "dissolve": "#8e44ad", "wipe": "#16a085"}
# (lane, height px); the HTML page has all lanes, the summary the ones read at a glance.
_PNG_LANES = (
    ("shots", 36),
    ("scenes", 28),
    ("camera", 28),
    ("effects", 46),
    ("loudness", 56),
    ("pacing", 40),
)
LANE_GAP = 8


@cache
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans where installed (it has the dashes and arrows), else Pillow's own."""
    path = _FONT_DIR / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")
    if path.is_file():
        return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)


def _fit(draw: ImageDraw.ImageDraw, text: str, f, width: float) -> str:
    """``text`` cut with an ellipsis to fit ``width`` px."""
    text = " ".join(text.split())
    if draw.textlength(text, font=f) <= width:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # the longest prefix that fits with its ellipsis
        mid = (lo + hi + 1) // 2
        if draw.textlength(text[:mid] + "\u2026", font=f) <= width:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo] + "\u2026" if lo else ""


def _wrap(draw: ImageDraw.ImageDraw, text: str, f, width: float, lines: int) -> list[str]:
    words, out, cur = " ".join(text.split()).split(" "), [], ""
    for i, w in enumerate(words):
        trial = f"{cur} {w}".strip()
        if draw.textlength(trial, font=f) <= width:
            cur = trial
            continue
        if len(out) == lines - 1:
            return [*out, _fit(draw, " ".join([cur, *words[i:]]), f, width)]
        out.append(cur)
        cur = w
    return [*out, cur] if cur else out


class _Scale:
    def __init__(self, duration: float) -> None:
        self.duration = duration

    def x(self, t: float) -> float:
        t = min(max(t, 0.0), self.duration)
        return TRACK_X0 + t / self.duration * (TRACK_X1 - TRACK_X0)


def _header(d: ImageDraw.ImageDraw, tl: Timeline) -> None:
    d.text((MARGIN, 16), _fit(d, tl.title, font(30, True), 1000), fill=INK, font=font(30, True))
    facts = {f.label: f.value for f in tl.facts}
    line = " \u00b7 ".join(
        v
        for v in (
            facts.get("duration"),
            facts.get("picture"),
            facts.get("codec"),
            f"audio {facts.get('audio', '-')}",
            f"analysed in {facts.get('analysis wall time', '-')}",
            f"realtime factor {facts.get('realtime factor', '-').split(' ')[0]}",
            facts.get("started at"),
        )
        if v
    )
    d.text((MARGIN, 56), _fit(d, line, font(17), WIDTH - 2 * MARGIN), fill=MUTED, font=font(17))


def _keyframes(img: Image.Image, d: ImageDraw.ImageDraw, kf: Keyframes, y: int) -> None:
    avail = WIDTH - 2 * MARGIN
    if not kf.frames:
        d.rounded_rectangle((MARGIN, y, WIDTH - MARGIN, y + KEYFRAME_H), 8, fill="#eceef2")
        d.text(
            (WIDTH / 2, y + KEYFRAME_H / 2),
            _fit(d, f"Keyframes not shown: {kf.note}", font(18), avail - 40),
            fill=MUTED,
            font=font(18),
            anchor="mm",
        )
        return
    gap = 6
    widths = [k.image.width * KEYFRAME_H / max(k.image.height, 1) for k in kf.frames]
    scale = min(1.0, (avail - gap * (len(widths) - 1)) / sum(widths))
    h = int(KEYFRAME_H * scale)
    x = MARGIN
    small = font(12)
    for k, w in zip(kf.frames, widths, strict=True):
        w = max(1, int(w * scale))
        img.paste(k.image.convert("RGB").resize((w, h), Image.Resampling.LANCZOS), (x, y))
        label = _fit(d, f"{k.time_s:.1f} s", small, w - 4)
        if label:
            d.rectangle((x, y + h - 17, x + w - 1, y + h - 1), fill=(20, 24, 32))
            d.text((x + w / 2, y + h - 9), label, fill="white", font=small, anchor="mm")
        x += w + gap


def _lane_status(d: ImageDraw.ImageDraw, lane: Lane, y0: int, h: int) -> None:
    text = lane.status + (f": {lane.note}" if lane.note else "")
    color = STATUS_COLORS.get(lane.status, MUTED)
    d.text(
        (TRACK_X0 + 6, y0 + h / 2),
        _fit(d, text, font(14), TRACK_X1 - TRACK_X0 - 12),
        fill=color,
        font=font(14),
        anchor="lm",
    )


def _legend(d: ImageDraw.ImageDraw, colors: dict[str, str], y: float, bottom: float) -> None:
    """Each variant's colour and name, flowing in the label column while there is room."""
    f, x = font(10), MARGIN
    for variant, color in colors.items():
        name = variant.replace("_", " ")
        w = 10 + d.textlength(name, font=f)
        if x + w > MARGIN + LABEL_W - 8 and x > MARGIN:
            x, y = MARGIN, y + 12
        if y + 10 > bottom:
            return
        d.rectangle((x, y + 2, x + 7, y + 9), fill=color)
        d.text((x + 10, y), _fit(d, name, f, LABEL_W - 24), fill=MUTED, font=f)
        x += w + 8


def _lane_label(d: ImageDraw.ImageDraw, lane: Lane, colors: dict, y0: int, h: int) -> None:
    if colors:  # title on top, the legend of variants below it
        d.text((MARGIN, y0), lane.title, fill=INK, font=font(15, True))
        _legend(d, colors, y0 + 20, y0 + h + LANE_GAP)
    else:
        d.text(
            (MARGIN, y0 + h / 2 - (7 if lane.summary else 0)),
            lane.title,
            fill=INK,
            font=font(15, True),
            anchor="lm",
        )
    if lane.summary and not colors:
        d.text(
            (MARGIN, y0 + h / 2 + 10),
            _fit(d, lane.summary, font(11), LABEL_W - 10),
            fill=MUTED,
            font=font(11),
            anchor="lm",
        )


def _lane_curve(d: ImageDraw.ImageDraw, lane: Lane, sc: _Scale, y0: int, h: int) -> None:
    c = lane.curve
    if c is None or len(c.points) <= 1:
        return
    pts = [
        (sc.x(t), y0 + h - 3 - (min(max(v, c.lo), c.hi) - c.lo) / (c.hi - c.lo) * (h - 8))
        for t, v in c.points
    ]
    color = "#2f6f9f" if c.kind == "loudness" else "#e4572e"
    d.polygon(
        [(pts[0][0], y0 + h), *pts, (pts[-1][0], y0 + h)],
        fill="#e1ebf3" if c.kind == "loudness" else "#fbe3dc",
    )
    d.line(pts, fill=color, width=2, joint="curve")


def _span_fill(it, colors: dict) -> str:
    if it.kind == "shot":
        return "#5c6b84" if it.variant == "even" else "#7d8ba3"
    if it.kind == "scene":
        return "#3b8f8a" if it.variant == "even" else "#5fb0a9"
    if it.kind == "camera":
        return MOTION_COLORS.get(it.variant, "#9aa5b8")
    return colors.get(it.variant, "#c2417f")


def _lane_spans(
    d: ImageDraw.ImageDraw, lane: Lane, colors: dict, sc: _Scale, y0: int, h: int
) -> None:
    spans = [i for i in lane.items if i.end_s is not None and i.kind != "silence"]
    # Rows no thinner than 7 px; more fold onto the last.
    rows = pack_rows(spans, sc.duration, max(1, (h - 4) // 7), lane.by_variant)
    n_rows = max(rows, default=0) + 1
    row_h = (h - 4) / n_rows
    for it, row in zip(spans, rows, strict=True):
        x0, x1 = sc.x(it.start_s), sc.x(it.end_s or it.start_s)
        top = y0 + 2 + row * row_h
        fill = _span_fill(it, colors)
        d.rectangle((x0 + 0.5, top, max(x0 + 1.5, x1 - 0.5), top + row_h - 2), fill=fill)
        size = min(11, int(row_h) - 2)
        label = _fit(d, it.label, font(size), x1 - x0 - 6) if size >= 8 else ""
        if label:
            d.text(
                (x0 + 4, top + (row_h - 2) / 2), label, fill="white", font=font(size), anchor="lm"
            )


def _lane_marks(d: ImageDraw.ImageDraw, lane: Lane, sc: _Scale, y0: int, h: int) -> None:
    for it in lane.items:
        if it.end_s is not None:
            continue
        x = sc.x(it.start_s)
        if it.kind == "cut":
            d.rectangle((x - 1, y0, x + 1, y0 + h), fill=CUT_COLORS.get(it.variant, "#e4572e"))
        elif it.kind == "flash":
            d.rectangle((x - 1, y0, x + 1, y0 + h), fill="#f1c40f")
        elif it.kind == "beat":
            d.line((x, y0 + h - 10, x, y0 + h), fill=(60, 66, 80), width=1)


def _draw_lane(d: ImageDraw.ImageDraw, lane: Lane, sc: _Scale, y0: int, h: int) -> None:
    drawn = lane.status in DRAWN
    colors = lane.variant_colors() if lane.by_variant and drawn else {}
    _lane_label(d, lane, colors, y0, h)
    if not drawn:
        _lane_status(d, lane, y0, h)
        return
    # Drawn back to front: silences, the curve, spans, then instant marks on top.
    for it in lane.items:
        if it.kind == "silence" and it.end_s is not None:
            d.rectangle((sc.x(it.start_s), y0, sc.x(it.end_s), y0 + h), fill="#dde1e8")
    _lane_curve(d, lane, sc, y0, h)
    _lane_spans(d, lane, colors, sc, y0, h)
    _lane_marks(d, lane, sc, y0, h)
    if not lane.items and lane.curve is None:
        d.text((TRACK_X0 + 6, y0 + h / 2), "nothing found", fill=MUTED, font=font(13), anchor="lm")
    elif lane.note:
        small = font(11)
        d.text(
            (TRACK_X1 - 4, y0 + 3),
            _fit(d, lane.note, small, 500),
            fill=MUTED,
            font=small,
            anchor="ra",
        )


def _timeline(img: Image.Image, d: ImageDraw.ImageDraw, tl: Timeline, y: int) -> int:
    sc = _Scale(tl.duration_s)
    lanes = [(tl.lane(name), h) for name, h in _PNG_LANES]
    total = 22 + sum(h + LANE_GAP for _, h in lanes)
    d.rounded_rectangle(
        (MARGIN - 12, y - 6, WIDTH - MARGIN + 12, y + total + 4), 8, fill=CARD, outline=LINE
    )
    # The hook window under everything, as on the page.
    hook_x = sc.x(min(HOOK_WINDOW_S, tl.duration_s))
    d.rectangle((sc.x(0), y, hook_x, y + total), fill="#fff6dc")
    if hook_x - sc.x(0) >= 70:  # named in the axis row when there is room beside "0 s"
        d.text((hook_x - 4, y), "hook", fill="#b8860b", font=font(12), anchor="ra")
    step = next(
        (s for s in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600) if tl.duration_s / s <= 16),
        tl.duration_s / 10,
    )
    small = font(12)
    for i in range(int(tl.duration_s / step + 1e-9) + 1):
        x = sc.x(i * step)
        d.line((x, y + 16, x, y + total), fill=LINE)
        d.text(
            (x, y),
            f"{i * step:g} s",
            fill=MUTED,
            font=small,
            anchor="ra" if x > TRACK_X1 - 30 else "la",
        )
    yy = y + 22
    for lane, h in lanes:
        _draw_lane(d, lane, sc, yy, h)
        yy += h + LANE_GAP
    return y + total


def _metrics(d: ImageDraw.ImageDraw, tl: Timeline, y: int) -> None:
    x, w, h = MARGIN, 166, 78
    for m in tl.metrics:
        d.rounded_rectangle((x, y, x + w, y + h), 8, fill=CARD, outline=LINE)
        d.text(
            (x + 12, y + 10),
            _fit(d, m.value, font(24, True), w - 20),
            fill=MUTED if m.value == "-" else INK,
            font=font(24, True),
        )
        d.text((x + 12, y + 50), m.label, fill=MUTED, font=font(14))
        x += w + 10
    # The palette below the numbers, each colour as wide as its share.
    py, pw = y + h + 14, 6 * (w + 10) - 10
    d.text((MARGIN, py), "palette", fill=MUTED, font=font(13))
    if not tl.palette:
        d.text(
            (MARGIN + 70, py), "no palette (color_analysis did not run)", fill=MUTED, font=font(13)
        )
        return
    total = sum(max(s, 0.0) for _, s in tl.palette) or 1.0
    px = MARGIN + 70
    for i, (color, share) in enumerate(tl.palette):
        seg = (pw - 70) * max(share, 0.0) / total
        end = MARGIN + pw if i == len(tl.palette) - 1 else px + seg
        d.rectangle((px, py - 2, max(px + 3, end), py + 26), fill=color)
        px = end


def _description(d: ImageDraw.ImageDraw, tl: Timeline, y: int) -> None:
    width = 6 * 176 - 10
    text = str(tl.llava.get("description") or "") if tl.llava else ""
    if not text:
        d.text(
            (MARGIN, y),
            _fit(d, tl.llava_note or "no description", font(14), width),
            fill=MUTED,
            font=font(14),
        )
        return
    for i, line in enumerate(_wrap(d, text, font(15), width, 3)):
        d.text((MARGIN, y + i * 20), line, fill=INK, font=font(15))


def _statuses(d: ImageDraw.ImageDraw, tl: Timeline, y: int) -> None:
    x0, x1, y1 = 1116, WIDTH - MARGIN, HEIGHT - 20
    d.rounded_rectangle((x0, y, x1, y1), 8, fill=CARD, outline=LINE)
    counts = tl.status_counts()
    d.text((x0 + 14, y + 10), f"{len(tl.statuses)} analyzers", fill=INK, font=font(18, True))
    x = x0 + 14
    for s in STATUSES:
        if not counts[s]:
            continue
        label = f"{counts[s]} {s}"
        tw = d.textlength(label, font=font(14, True))
        d.rounded_rectangle((x, y + 40, x + tw + 16, y + 62), 11, fill=STATUS_COLORS[s])
        d.text((x + 8, y + 51), label, fill="white", font=font(14, True), anchor="lm")
        x += tw + 24
    # Failures first: they are what a reader of a ticket needs to see; then what the
    # others found, while there is room.
    order = {
        "failed": 0,
        "error": 1,
        "skipped": 2,
        "unavailable": 3,
        "missing": 4,
        "partial": 5,
        "ok": 6,
    }
    rows = sorted(tl.statuses.items(), key=lambda kv: order[kv[1].status])  # stable
    yy, small, bold = y + 74, font(12), font(12, True)
    room = int((y1 - 8 - yy) // 17)
    for i, (name, row) in enumerate(rows):
        if i == room - 1 and len(rows) > room:
            d.text((x0 + 14, yy), f"+{len(rows) - i} more", fill=MUTED, font=small)
            break
        head = f"{name} "
        d.text((x0 + 14, yy), head, fill=STATUS_COLORS[row.status], font=bold)
        hx = x0 + 14 + d.textlength(head, font=bold)
        line = row.text if row.status in DRAWN else f"{row.status}: {row.error}".rstrip(": ")
        if row.unavailable:
            line = f"{line}; {partial_note(row.unavailable)}"
        d.text((hx, yy), _fit(d, line, small, x1 - hx - 10), fill=MUTED, font=small)
        yy += 17


def draw_summary(tl: Timeline, keyframes: Keyframes) -> Image.Image:
    """The summary page as an RGB image of WIDTH x HEIGHT."""
    img = Image.new("RGB", (WIDTH, HEIGHT), BG)
    d = ImageDraw.Draw(img)
    _header(d, tl)
    _keyframes(img, d, keyframes, 92)
    bottom = _timeline(img, d, tl, 92 + KEYFRAME_H + 22)
    _metrics(d, tl, bottom + 18)
    _description(d, tl, bottom + 18 + 78 + 56)
    _statuses(d, tl, bottom + 18)
    return img


def write_png(tl: Timeline, keyframes: Keyframes, out_path: str | Path) -> Path:
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    draw_summary(tl, keyframes).save(out, format="PNG", optimize=True)
    return out
