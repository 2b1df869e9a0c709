"""The HTML page's stylesheet and script, inlined into every page (the page must load
nothing: it is mailed, attached to tickets and opened offline).

They live in Python strings rather than files beside the code so that an installed wheel
needs no package data to find them.
"""

from __future__ import annotations

import base64
import hashlib

__all__ = ["CSP", "PAGE_CSS", "PAGE_JS"]

PAGE_CSS = """
:root {
  --head-w: 210px; --row-h: 20px;
  --ink: #1d2330; --muted: #667085; --line: #e3e6ec; --bg: #f6f7f9; --card: #fff;
  --ok: #2e9d5b; --partial: #2b8a9e; --failed: #d64545; --skipped: #c98a00;
  --unavailable: #7d8593;
  --missing: #a0a6b2; --error: #b3409c;
}
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 48px; background: var(--bg); color: var(--ink);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; }
h1 { margin: 0; font-size: 26px; word-break: break-all; }
h2 { margin: 28px 0 10px; font-size: 18px; }
section, header { max-width: 1500px; }
.path { margin: 2px 0 0; color: var(--muted); font-size: 12px; word-break: break-all; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 14px 16px; }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(210px, 1fr));
  gap: 6px 18px; margin: 0; }
.facts div { display: flex; flex-direction: column; }
.facts dt { color: var(--muted); font-size: 12px; }
.facts dd { margin: 0; font-weight: 600; }
.metrics { display: flex; flex-wrap: wrap; gap: 10px; margin-top: 14px; }
.metric { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 8px 14px; min-width: 130px; }
.metric .v { font-size: 20px; font-weight: 700; }
.metric .l { color: var(--muted); font-size: 12px; }
.metric.none .v { color: var(--missing); }
.palette { display: flex; gap: 0; margin-top: 12px; height: 28px; border-radius: 6px;
  overflow: hidden; max-width: 640px; border: 1px solid var(--line); }
.swatch { height: 100%; min-width: 6px; }
.warnings { color: var(--skipped); margin: 10px 0 0; padding-left: 18px; }
.note { color: var(--muted); font-style: italic; }
.strip { display: flex; gap: 8px; overflow-x: auto; padding-bottom: 6px; }
.keyframe { margin: 0; flex: none; text-align: center; }
.keyframe img { display: block; height: 160px; border-radius: 4px; background: #000; }
.keyframe figcaption { font-size: 11px; color: var(--muted); }
.tl { position: relative; background: var(--card); border: 1px solid var(--line);
  border-radius: 8px; padding: 6px 0; }
.lane, .tl-axis { display: flex; border-bottom: 1px solid var(--line); }
.lane:last-of-type { border-bottom: 0; }
.lane-head { flex: none; width: var(--head-w); padding: 4px 10px 4px 14px;
  display: flex; flex-direction: column; justify-content: center; }
.lane-title { font-weight: 600; }
.lane-summary, .lane-source { color: var(--muted); font-size: 11px; line-height: 1.3; }
.track { position: relative; flex: 1; min-height: 28px; margin-right: 14px; }
.tl-axis .track { height: 22px; min-height: 0; }
.tick { position: absolute; top: 0; height: 100%; border-left: 1px solid var(--line);
  font-size: 11px; color: var(--muted); padding-left: 3px; white-space: nowrap; }
.tick.last { border-left: 0; border-right: 1px solid var(--line); padding: 0 3px 0 0;
  transform: translateX(-100%); }
.item { position: absolute; }
.span { height: calc(var(--row-h) - 3px); border-radius: 3px; overflow: hidden; white-space: nowrap; text-overflow: ellipsis;
  font-size: 11px; line-height: calc(var(--row-h) - 3px); padding: 0 4px; color: #fff;
  background: #5b7bd5; min-width: 2px; cursor: default; }
.span:hover, .mark:hover { outline: 2px solid var(--ink); z-index: 5; }
.mark { top: 0; bottom: 0; width: 3px; margin-left: -1px; background: var(--ink);
  cursor: default; }
.band { top: 0; bottom: 0; }
.kind-shot.v-even { background: #5c6b84; } .kind-shot.v-odd { background: #7d8ba3; }
.kind-scene.v-even { background: #3b8f8a; } .kind-scene.v-odd { background: #5fb0a9; }
.cut-marker { background: #e4572e; width: 3px; z-index: 3; }
.cut-marker.v-fade { background: #f39c12; } .cut-marker.v-dissolve { background: #8e44ad; }
.cut-marker.v-wipe { background: #16a085; }
.kind-flash { background: #f1c40f; width: 4px; }
.kind-camera { background: #9aa5b8; }
.kind-camera.v-pan_left, .kind-camera.v-pan_right { background: #3f7fd0; }
.kind-camera.v-tilt_up, .kind-camera.v-tilt_down { background: #7a5cc7; }
.kind-camera.v-zoom_in, .kind-camera.v-zoom_out { background: #e08a2e; }
.kind-camera.v-shake { background: #d64545; }
.kind-effect { background: #c2417f; } .kind-framing { background: #4d9a52; }
.kind-text { background: #2f6f9f; } .kind-object { background: #8c6d31; }
.kind-word, .kind-segment { background: #4a5a8c; } .kind-emotion { background: #b0578d; }
.kind-sound { background: #c0632d; }
.kind-silence { background: rgba(120, 130, 150, .22); color: var(--muted); z-index: 1;
  font-size: 11px; padding: 0 4px; overflow: hidden; white-space: nowrap; }
.kind-beat { background: rgba(29, 35, 48, .5); width: 1px; margin-left: 0; top: auto;
  height: 10px; z-index: 2; }
.kind-gaze { background: #7d8593; width: 7px; height: 7px; margin-left: -3px; border-radius: 50%;
  top: 10px; bottom: auto; }
.kind-gaze.v-contact { background: #2e9d5b; }
.kind-blink { background: #1d2330; width: 2px; }
.kind-hook-window { background: rgba(255, 196, 0, .35); color: var(--ink); }
.kind-hook-event { background: #b8860b; top: auto; bottom: 1px; width: 7px; height: 7px;
  margin-left: -3px; transform: rotate(45deg); }
.curve { position: absolute; left: 0; top: 0; width: 100%; height: 100%; overflow: visible; }
.curve polyline { fill: none; stroke-width: 1.8; vector-effect: non-scaling-stroke; }
.curve polygon { stroke: none; }
.curve-loudness polyline { stroke: #2f6f9f; } .curve-loudness polygon { fill: rgba(47,111,159,.12); }
.curve-pacing polyline { stroke: #e4572e; } .curve-pacing polygon { fill: rgba(228,87,46,.12); }
.lane-status { margin: 4px 0; padding: 2px 8px; border-radius: 4px; font-size: 12px;
  display: inline-block; border: 1px solid currentColor; max-width: 100%;
  overflow-wrap: anywhere; }
.lane-empty { color: var(--muted); font-size: 12px; padding: 6px 0; }
.lane-note { color: var(--muted); font-size: 11px; }
.status-ok { color: var(--ok); } .status-partial { color: var(--partial); }
.status-failed { color: var(--failed); }
.status-skipped { color: var(--skipped); } .status-unavailable { color: var(--unavailable); }
.status-missing { color: var(--missing); } .status-error { color: var(--error); }
.lane[data-status="failed"] .track { background: repeating-linear-gradient(135deg,
  rgba(214,69,69,.06) 0 8px, transparent 8px 16px); }
.tl-overlay { position: absolute; top: 0; bottom: 0; left: var(--head-w); right: 14px;
  pointer-events: none; }
.hook-shade { position: absolute; top: 0; bottom: 0; background: rgba(255, 196, 0, .08);
  border-right: 1px dashed rgba(184, 134, 11, .6); }
.cut-guide { position: absolute; top: 0; bottom: 0; border-left: 1px dotted rgba(228,87,46,.35); }
.cursor { position: absolute; top: 0; bottom: 0; border-left: 1px solid var(--ink);
  display: none; }
.cursor span { position: absolute; top: -2px; left: 3px; font-size: 11px; background: var(--ink);
  color: #fff; padding: 0 4px; border-radius: 3px; white-space: nowrap; }
.card > h2:first-child { margin-top: 0; }
section.llava.card { margin-top: 28px; }
.llava p { margin: 0 0 8px; white-space: pre-wrap; }
.llava ol { margin: 4px 0 0; padding-left: 20px; }
table.analyzers { border-collapse: collapse; width: 100%; background: var(--card);
  border: 1px solid var(--line); font-size: 13px; }
.analyzers th, .analyzers td { text-align: left; padding: 5px 10px;
  border-bottom: 1px solid var(--line); vertical-align: top; }
.analyzers th { background: #eef0f4; font-weight: 600; }
.analyzers td.num { text-align: right; font-variant-numeric: tabular-nums; }
.analyzers td.what { overflow-wrap: anywhere; }
.analyzers td.nowrap { white-space: nowrap; }
.badge { display: inline-block; padding: 0 8px; border-radius: 10px; font-size: 12px;
  font-weight: 600; color: #fff; }
.badge.status-ok { background: var(--ok); } .badge.status-failed { background: var(--failed); }
.badge.status-partial { background: var(--partial); }
.badge.status-skipped { background: var(--skipped); }
.badge.status-unavailable { background: var(--unavailable); }
.badge.status-missing { background: var(--missing); } .badge.status-error { background: var(--error); }
tr.row-failed td.what { color: var(--failed); font-weight: 600; }
tr.row-skipped td.what { color: #8a6100; } tr.row-unavailable td.what { color: var(--muted); }
.unavailable-fields { margin: 4px 0 0; padding-left: 18px; color: var(--muted); font-size: 12px; }
.unavailable-field code { color: var(--unavailable); text-decoration: line-through; }
.unavailable-field .fix { color: var(--ink); font-family: ui-monospace, monospace; }
.counts span { margin-right: 12px; font-weight: 600; }
#tip { position: fixed; z-index: 100; max-width: 420px; background: var(--ink); color: #fff;
  padding: 5px 8px; border-radius: 4px; font-size: 12px; pointer-events: none;
  white-space: pre-wrap; overflow-wrap: anywhere; box-shadow: 0 2px 8px rgba(0,0,0,.25); }
"""

# Hover: a tooltip from each element's title (taken over so the browser's own, slower one
# does not show too), and a cursor line across the lanes with the time and the curves'
# values there. The page is complete without it.
PAGE_JS = """
(function () {
  'use strict';
  var tip = document.getElementById('tip');
  function place(e) {
    var pad = 14, r = tip.getBoundingClientRect();
    var x = e.clientX + pad, y = e.clientY + pad;
    if (x + r.width > window.innerWidth) x = e.clientX - r.width - pad;
    if (y + r.height > window.innerHeight) y = e.clientY - r.height - pad;
    tip.style.left = Math.max(0, x) + 'px'; tip.style.top = Math.max(0, y) + 'px';
  }
  function show(e, text) { tip.textContent = text; tip.hidden = false; place(e); }
  document.addEventListener('mouseover', function (e) {
    var el = e.target.closest ? e.target.closest('[title],[data-tip]') : null;
    if (!el || el.classList.contains('curve')) { tip.hidden = true; return; }
    if (el.hasAttribute('title')) {
      el.setAttribute('data-tip', el.getAttribute('title')); el.removeAttribute('title');
    }
    show(e, el.getAttribute('data-tip'));
  });
  var tl = document.querySelector('.tl'), overlay = document.querySelector('.tl-overlay');
  if (!tl || !overlay) return;
  var cursor = overlay.querySelector('.cursor'), label = cursor.querySelector('span');
  var duration = parseFloat(tl.getAttribute('data-duration')) || 1;
  var curves = Array.prototype.map.call(tl.querySelectorAll('svg.curve'), function (svg) {
    var pts = (svg.getAttribute('data-points') || '').split(' ').filter(Boolean)
      .map(function (p) { var a = p.split(','); return [parseFloat(a[0]), parseFloat(a[1])]; });
    return { svg: svg, pts: pts, unit: svg.getAttribute('data-unit') || '',
             name: svg.getAttribute('data-name') || '' };
  });
  function nearest(pts, t) {
    var best = null, d = Infinity;
    for (var i = 0; i < pts.length; i++) {
      var dd = Math.abs(pts[i][0] - t); if (dd < d) { d = dd; best = pts[i]; }
    }
    return best;
  }
  tl.addEventListener('mousemove', function (e) {
    var r = overlay.getBoundingClientRect();
    if (e.clientX < r.left || e.clientX > r.right) { cursor.style.display = 'none'; return; }
    var t = (e.clientX - r.left) / r.width * duration;
    cursor.style.display = 'block';
    cursor.style.left = (e.clientX - r.left) + 'px';
    label.textContent = t.toFixed(2) + ' s';
    var over = e.target.closest ? e.target.closest('svg.curve') : null;
    if (over) {
      var c = curves.filter(function (c) { return c.svg === over; })[0];
      var p = c && nearest(c.pts, t);
      if (p) show(e, c.name + ' at ' + p[0].toFixed(2) + ' s: ' + p[1].toFixed(2) + ' ' + c.unit);
    }
  });
  tl.addEventListener('mouseleave', function () { cursor.style.display = 'none'; tip.hidden = true; });
})();
"""


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


#: The browser refuses any load but inline styles and data: images, and runs only the
#: page's own script (by its hash: no injected <script> or onerror= handler would run),
#: so a page that somehow held an injected URL or script still fetches and runs nothing.
CSP = (
    f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    f"script-src {_sha256(PAGE_JS)}; base-uri 'none'; form-action 'none'"
)
