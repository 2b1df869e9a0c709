"""The report as one self-contained HTML page: facts, keyframes, a lane per analyzer family
on a shared time axis, the LLM's description, and every analyzer's status.

The page loads nothing (styles, script and images are inline, and its Content-Security-
Policy forbids any fetch), so it can be mailed or opened offline. Every string from the
report is escaped: reports are untrusted input. Tests and scripts can read the page's
structure from stable hooks: ``data-lane`` and ``data-status`` on each lane, ``data-kind``
on each item, ``class="cut-marker"`` with ``data-time`` on each cut.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tiktok_analyzer.render.assets import CSP, PAGE_CSS, PAGE_JS
from tiktok_analyzer.render.keyframes import Keyframes, to_data_uri
from tiktok_analyzer.render.timeline import (
    DRAWN,
    STATUSES,
    Curve,
    Item,
    Lane,
    Timeline,
    pack_rows,
)

__all__ = ["build_html"]

ROW_H = 20  # px, as --row-h in the stylesheet
CURVE_H = 64
MAX_ROWS = 8  # overlapping spans beyond this share rows rather than grow the lane
# Kinds drawn as a band over the lane's full height rather than on a row.
_BANDS = {"silence"}


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _cls(value: str) -> str:
    """A report string made safe as part of a CSS class name."""
    return re.sub(r"[^a-z0-9_-]", "", value.lower())[:40]


def _pct(t: float, duration: float) -> float:
    return min(100.0, max(0.0, t / duration * 100.0))


def _tick_step(duration: float) -> float:
    for step in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600):
        if duration / step <= 16:
            return step
    return duration / 10


def _axis(duration: float) -> str:
    step = _tick_step(duration)
    ticks = []
    n = int(duration / step + 1e-9) + 1
    for i in range(n):
        t = i * step
        # The last label would run past the lane's end: it hangs left of its tick.
        last = " last" if _pct(t, duration) > 97 else ""
        ticks.append(f'<div class="tick{last}" style="left:{_pct(t, duration):.3f}%">{t:g} s</div>')
    return (
        '<div class="tl-axis"><div class="lane-head"></div>'
        f'<div class="track">{"".join(ticks)}</div></div>'
    )


def _item(it: Item, duration: float, row: int, color: str | None = None) -> str:
    classes = ["item", f"kind-{_cls(it.kind)}"]
    if it.variant:
        classes.append(f"v-{_cls(it.variant)}")
    left = _pct(it.start_s, duration)
    attrs = f'data-kind="{esc(it.kind)}" title="{esc(it.detail)}"'
    if it.end_s is None:
        classes.append("mark")
        if it.kind == "cut":
            classes.append("cut-marker")
        return (
            f'<div class="{" ".join(classes)}" {attrs} data-time="{it.start_s:.3f}" '
            f'style="left:{left:.3f}%"></div>'
        )
    width = max(_pct(it.end_s, duration) - left, 0.15)
    if it.kind in _BANDS:
        classes.append("band")
        style = f"left:{left:.3f}%;width:{width:.3f}%"
    else:
        classes.append("span")
        style = f"left:{left:.3f}%;width:{width:.3f}%;top:{row * ROW_H + 3}px"
        if color:
            style += f";background:{color}"
    return (
        f'<div class="{" ".join(classes)}" {attrs} data-start="{it.start_s:.3f}" '
        f'data-end="{it.end_s:.3f}" style="{style}">{esc(it.label)}</div>'
    )


def _curve(curve: Curve, duration: float) -> str:
    span = curve.hi - curve.lo
    pts = []
    for t, v in curve.points:
        y = 100.0 - (min(max(v, curve.lo), curve.hi) - curve.lo) / span * 92.0 - 4.0
        pts.append(f"{_pct(t, duration) * 10:.1f},{y:.2f}")
    area = f"{pts[0].split(',')[0]},100 {' '.join(pts)} {pts[-1].split(',')[0]},100" if pts else ""
    raw = " ".join(f"{t:.3f},{v:.3f}" for t, v in curve.points)
    return (
        f'<svg class="curve curve-{_cls(curve.kind)}" data-kind="{esc(curve.kind)}-curve" '
        f'data-name="{esc(curve.kind)}" data-unit="{esc(curve.unit)}" data-points="{raw}" '
        f'data-tip="{esc(curve.detail)}" viewBox="0 0 1000 100" preserveAspectRatio="none" '
        f'aria-label="{esc(curve.detail)}"><polygon points="{area}"/>'
        f'<polyline points="{" ".join(pts)}"/></svg>'
    )


def _lane(lane: Lane, duration: float) -> str:
    head = (
        f'<div class="lane-head"><span class="lane-title">{esc(lane.title)}</span>'
        + (f'<span class="lane-summary">{esc(lane.summary)}</span>' if lane.summary else "")
        + f'<span class="lane-source">{esc(lane.source)}</span></div>'
    )
    body: list[str] = []
    height = ROW_H + 8
    if lane.status not in DRAWN and not lane.items:
        text = lane.status + (f": {lane.note}" if lane.note else "")
        body.append(f'<div class="lane-status status-{lane.status}">{esc(text)}</div>')
    else:
        rows = pack_rows(lane.items, duration, MAX_ROWS, lane.by_variant)
        spans = [
            r
            for r, it in zip(rows, lane.items, strict=True)
            if it.end_s is not None and it.kind not in _BANDS
        ]
        height = max(height, (max(spans, default=0) + 1) * ROW_H + 6)
        if lane.curve is not None and lane.curve.points:
            height = max(height, CURVE_H)
            body.append(_curve(lane.curve, duration))
        colors = lane.variant_colors() if lane.by_variant else {}
        body += [
            _item(it, duration, row, colors.get(it.variant))
            for it, row in zip(lane.items, rows, strict=True)
        ]
        if not lane.items and lane.curve is None:
            body.append('<div class="lane-empty">nothing found</div>')
        if lane.status != "ok" or lane.note:
            cls = f"lane-status status-{lane.status}" if lane.status != "ok" else "lane-note"
            text = (f"{lane.status}: " if lane.status != "ok" else "") + lane.note
            style = f' style="position:absolute;right:0;top:{height - 18}px;margin:0"'
            body.append(f'<div class="{cls}"{style}>{esc(text)}</div>')
    return (
        f'<div class="lane" data-lane="{esc(lane.name)}" data-status="{lane.status}" '
        f'data-source="{esc(lane.source)}">{head}'
        f'<div class="track" style="height:{height}px">{"".join(body)}</div></div>'
    )


def _timeline(tl: Timeline) -> str:
    d = tl.duration_s
    hook = tl.lane("hook").items[0]
    guides = "".join(
        f'<div class="cut-guide" style="left:{_pct(i.start_s, d):.3f}%"></div>'
        for i in tl.lane("shots").items
        if i.kind == "cut"
    )
    overlay = (
        f'<div class="tl-overlay"><div class="hook-shade" style="left:0;'
        f'width:{_pct(hook.end_s or 0.0, d):.3f}%"></div>{guides}'
        '<div class="cursor"><span></span></div></div>'
    )
    lanes = "".join(_lane(lane, d) for lane in tl.lanes)
    return (
        f'<section id="timeline"><h2>Timeline</h2><div class="tl" data-duration="{d:.3f}">'
        f"{_axis(d)}{lanes}{overlay}</div></section>"
    )


def _facts(tl: Timeline) -> str:
    facts = "".join(f"<div><dt>{esc(f.label)}</dt><dd>{esc(f.value)}</dd></div>" for f in tl.facts)
    metrics = "".join(
        f'<div class="metric{" none" if m.value == "-" else ""}" title="from {esc(m.source)}">'
        f'<div class="v">{esc(m.value)}</div><div class="l">{esc(m.label)}</div></div>'
        for m in tl.metrics
    )
    palette = ""
    if tl.palette:
        total = sum(max(s, 0.0) for _, s in tl.palette) or 1.0
        palette = (
            '<div class="palette" title="colour palette (color_analysis)">'
            + "".join(
                f'<div class="swatch" data-kind="swatch" style="background:{hexc};'
                f'flex:{max(s, 0.0) / total:.4f}" title="{hexc} {s:.0%}"></div>'
                for hexc, s in tl.palette
            )
            + "</div>"
        )
    warnings = ""
    if tl.warnings:
        warnings = (
            '<ul class="warnings">' + "".join(f"<li>{esc(w)}</li>" for w in tl.warnings) + "</ul>"
        )
    return (
        f'<section id="facts" class="card"><dl class="facts">{facts}</dl>'
        f'<div class="metrics">{metrics}</div>{palette}{warnings}</section>'
    )


def _keyframes(kf: Keyframes) -> str:
    if not kf.frames:
        note = kf.note or "no keyframes"
        return (
            '<section id="keyframes"><h2>Keyframes</h2>'
            f'<p class="note keyframes-missing">Keyframes not shown: {esc(note)}</p></section>'
        )
    figs = []
    for i, k in enumerate(kf.frames):
        what = f"shot {i + 1}" if kf.per_shot else f"{k.time_s:.1f} s"
        figs.append(
            f'<figure class="keyframe" data-kind="keyframe" data-time="{k.time_s:.3f}" '
            f'title="{esc(what)}: {k.start_s:.2f}\u2013{k.end_s:.2f} s, frame at {k.time_s:.2f} s">'
            f'<img alt="{esc(what)}" src="{to_data_uri(k.image)}" width="{k.image.width}" '
            f'height="{k.image.height}"><figcaption>{esc(what)} \u00b7 {k.start_s:.1f}\u2013'
            f"{k.end_s:.1f} s</figcaption></figure>"
        )
    title = "one per shot" if kf.per_shot else "evenly spaced (no shots in the report)"
    note = f'<p class="note">{esc(kf.note)}</p>' if kf.note else ""
    return (
        f'<section id="keyframes"><h2>Keyframes <small class="note">{title}</small></h2>'
        f'<div class="strip">{"".join(figs)}</div>{note}</section>'
    )


def _llava(tl: Timeline) -> str:
    r = tl.llava
    if r is None:
        return (
            '<section id="description" class="llava"><h2>Description</h2>'
            f'<p class="note">{esc(tl.llava_note)}</p></section>'
        )
    parts = []
    for key, label in (
        ("description", ""),
        ("hook", "Hook: "),
        ("call_to_action", "Call to action: "),
    ):
        if r.get(key):
            parts.append(f"<p>{esc(label)}{esc(r[key])}</p>")
    scenes = r.get("scenes") if isinstance(r.get("scenes"), list) else []
    items = []
    for sc in scenes:
        if isinstance(sc, Mapping):
            s, e = sc.get("start_s"), sc.get("end_s")
            when = (
                f"{s:.1f}\u2013{e:.1f} s: "
                if isinstance(s, (int, float))
                and isinstance(e, (int, float))
                and math.isfinite(s)
                and math.isfinite(e)
                else ""
            )
            items.append(f"<li>{esc(when)}{esc(sc.get('description', ''))}</li>")
    if items:
        parts.append(f"<ol>{''.join(items)}</ol>")
    body = "".join(parts) or '<p class="note">video_llava gave no description</p>'
    return f'<section id="description" class="llava card"><h2>Description</h2>{body}</section>'


def _analyzers(tl: Timeline) -> str:
    counts = tl.status_counts()
    count_line = "".join(
        f'<span class="status-{s}">{counts[s]} {s}</span>' for s in STATUSES if counts[s]
    )
    rows = []
    for name, row in tl.statuses.items():
        # partial: what was measured, then each field only the model makes, marked
        # unavailable with why and the fix.
        missing = "".join(
            f'<li class="unavailable-field" data-field="{esc(f.field)}">'
            f"<code>{esc(f.field)}</code> unavailable: {esc(f.reason)}; "
            f'<span class="fix">{esc(f.fix)}</span></li>'
            for f in row.unavailable
        )
        missing = f'<ul class="unavailable-fields">{missing}</ul>' if missing else ""
        rows.append(
            f'<tr class="row-{row.status}" data-analyzer="{esc(name)}" '
            f'data-status="{row.status}"><td class="nowrap">{esc(name)}</td>'
            f'<td><span class="badge status-{row.status}">{row.status}</span></td>'
            f'<td class="num">{esc(row.seconds)}</td><td class="nowrap">{esc(row.model)}</td>'
            f'<td class="nowrap">{esc(row.weights)}</td>'
            f'<td class="what">{esc(row.text)}{missing}</td></tr>'
        )
    return (
        '<section id="analyzers"><h2>Analyzers</h2>'
        f'<p class="counts">{len(tl.statuses)} analyzers: {count_line}</p>'
        '<table class="analyzers"><thead><tr><th>analyzer</th><th>status</th>'
        "<th>seconds</th><th>model</th><th>weights</th><th>result or reason</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def build_html(tl: Timeline, keyframes: Keyframes) -> str:
    """The whole page as a string."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{esc(tl.title)} \u2013 tiktok-analyzer report</title>"
        f"<style>{PAGE_CSS}</style></head><body>"
        f'<header><h1>{esc(tl.title)}</h1><p class="path">{esc(tl.video_path)}</p></header>'
        f"{_facts(tl)}{_keyframes(keyframes)}{_timeline(tl)}{_llava(tl)}{_analyzers(tl)}"
        f'<div id="tip" role="tooltip" hidden></div><script>{PAGE_JS}</script>'
        "</body></html>\n"
    )


def write_html(tl: Timeline, keyframes: Keyframes, out_path: str | Path) -> Path:
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(build_html(tl, keyframes), encoding="utf-8")
    return out
