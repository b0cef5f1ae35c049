"""The HTML report page: one self-contained file that reads on a desktop and on a phone.

Its style and script are package files (``tracker_diag/assets/report.css``, ``report.js``),
inlined into the page. What the page shows is decided here and handed to the script as data:
which roles each chart draws and their key names, each chart's automatic scale, the number
format's inputs (:data:`FORMAT`); the script only draws and reacts.

Server side: the table in severity order and a small chart per run with its axes (drawn
without JavaScript). The script adds the regime filter, sortable columns with their arrow,
values under the pointer, and a detail view per run (loss and accuracy at full size, log
scale when a curve spans decades, raw + EMA smoothing as the trackers' charts have).
Every name, key, tag and reason is user input: escaped in the markup, and set as text (never
markup) by the script.
"""

from __future__ import annotations

import json
import math
from html import escape

from tracker_diag.model import SEVERITY, order_key
from tracker_diag.plots import COLOURS

ROLES = ("train_loss", "test_loss", "train_acc", "test_acc")
# the small chart's geometry (viewBox units): the plot area sits right of the y labels, above the x labels
W, H = 300, 118
L, R, T, B = 54, 296, 6, 98
DECADES = 100.0  # a curve spanning more than this factor (two decades) is drawn on a log scale
# numbers on axes and in tooltips: significant digits, and where the exponent form starts
FORMAT = {"digits": 3, "big": 1e5, "small": 1e-3}
GROUPS = (("loss", ROLES[:2]), ("accuracy", ROLES[2:]))  # the detail view's charts


def fmt(v: float) -> str:
    """Three significant digits; exponent form for the very large and very small (the script's
    fmt follows the same rule with the same FORMAT)."""
    a, digits = abs(v), FORMAT["digits"]
    if a and (a >= FORMAT["big"] or a < FORMAT["small"]):
        mantissa, exponent = f"{v:.{digits - 1}e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent):+d}"
    return f"{float(f'{v:.{digits}g}'):g}"


def log_scale(values) -> tuple[bool, bool]:
    """(all positive, spans more than DECADES): a chart's log scale is possible / chosen by default."""
    finite = [v for v in values if v is not None]
    positive = bool(finite) and min(finite) > 0
    return positive, positive and max(finite) / min(finite) > DECADES


def asset(name: str) -> str:
    """A file of tracker_diag/assets (package data), as text."""
    from importlib.resources import files

    return (files("tracker_diag") / "assets" / name).read_text(encoding="utf-8")


def _finite(curves: dict, roles) -> list[tuple[str, list, list]]:
    return [(r, *curves[r]) for r in roles if r in curves and any(y is not None for y in curves[r][1])]


def _top(pairs) -> tuple[float, str | None]:
    """The top of the small chart's y axis, and the curve cut there. One curve that starts beside
    the other and climbs far above it (100 times the other's span) would flatten it: the axis then stops at twice the
    other's span and the climbing curve leaves the chart there (as the trackers' "ignore
    outliers" does); the tooltip and the detail view keep its real values."""
    lo = min(y for _, _, ys in pairs for y in ys if y is not None)
    hi_of = {role: max(y for y in ys if y is not None) for role, _, ys in pairs}
    hi = max(hi_of.values())
    if len(pairs) != 2:
        return hi, None
    (_, s_hi), (big, b_hi) = sorted(hi_of.items(), key=lambda kv: kv[1])
    span = max(s_hi - lo, 0.01 * abs(s_hi), 1e-12)
    start = next(y for role, _, ys in pairs if role == big for y in ys if y is not None)
    if b_hi - lo > 100 * span and start <= s_hi + span:  # it started beside the other, then climbed away
        return s_hi + span, big
    return hi, None


def mini_svg(curves: dict, best, onset, colour: str, index: int) -> str:
    """The loss curves (accuracy when no loss was logged), min/max and step range on the axes,
    best step and onset marked; a log scale when the values span decades."""
    pairs = _finite(curves, ROLES[:2]) or _finite(curves, ROLES[2:])
    if not pairs:
        return '<span class="muted">no curve</span>'
    pts = [(x, y) for _, xs, ys in pairs for x, y in zip(xs, ys) if y is not None]
    lo = min(p[1] for p in pts)
    hi, cut = _top(pairs)
    log = log_scale((lo, hi))[1]
    f = math.log10 if log else float
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = f(lo), f(hi)
    sx = (R - L) / ((x1 - x0) or 1.0)
    sy = (B - T) / ((y1 - y0) or 1.0)

    def line(xs, ys, cls):
        segs, cur = [], []
        for x, y in zip(xs, ys):
            if y is not None:
                cur.append(f"{L + (x - x0) * sx:.1f},{max(B - (f(y) - y0) * sy, -2 * H):.1f}")
            elif cur:  # a gap (NaN, inf) ends a segment
                segs.append(cur)
                cur = []
        if cur:
            segs.append(cur)
        return "".join(f'<polyline class="{cls}" points="{" ".join(s)}"/>' for s in segs)

    body = "".join(line(xs, ys, "tr" if role.startswith("train") else "te") for role, xs, ys in pairs)
    for step, cls in ((best, "best"), (onset, "onset")):
        if step is not None and x0 <= step <= x1:
            x = L + (step - x0) * sx
            body += f'<line class="{cls}" x1="{x:.1f}" x2="{x:.1f}" y1="{T}" y2="{B}"/>'
    kind = "loss" if pairs[0][0].endswith("loss") else "accuracy"
    what = kind + (", log scale" if log else "")
    note = ""
    if cut is not None:
        top = max(y for role, _, ys in pairs if role == cut for y in ys if y is not None)
        what += f", {cut.split('_')[0]} {kind} leaves the chart (max {fmt(top)})"
        note = f'<text class="ax cut" x="{R - 2}" y="{T + 8}" text-anchor="end">\u2191 max {fmt(top)}</text>'
    axes = (f'<path class="axis" d="M{L},{T}V{B}H{R}"/>'
            f'<text class="ax" x="{L - 3}" y="{T + 7}" text-anchor="end">{fmt(hi)}</text>'
            f'<text class="ax" x="{L - 3}" y="{B}" text-anchor="end">{fmt(lo)}</text>'
            f'<text class="ax" x="{L}" y="{H - 4}">{fmt(x0)}</text>'
            f'<text class="ax" x="{R}" y="{H - 4}" text-anchor="end">{fmt(x1)}</text>'
            f'<text class="ax" x="{(L + R) / 2:.0f}" y="{H - 4}" text-anchor="middle">step{" · log" if log else ""}</text>')
    clip = f"c{index}"
    return (f'<svg class="mini" viewBox="0 0 {W} {H}" role="img" style="border-color:{colour}" data-i="{index}" '
            f'data-x0="{x0}" data-x1="{x1}" data-roles="{" ".join(role for role, _, _ in pairs)}" '
            f'aria-label="train and test {what}, step {fmt(x0)} to {fmt(x1)}, {fmt(lo)} to {fmt(hi)}">'
            f'<title>train (solid) and test (dashed) {what}; click for the full curves</title>'
            f'<clipPath id="{clip}"><rect x="{L}" y="{T - 1}" width="{R - L}" height="{B - T + 2}"/></clipPath>'
            f'{axes}<g clip-path="url(#{clip})">{body}</g>{note}</svg>')


def _step(x):
    return int(x) if float(x).is_integer() else float(x)


def _num(v):
    return None if v is None or not math.isfinite(v) else float(f"{v:.4g}")  # the tooltips show 3 digits


def _data(rep: dict, curves: list[dict]) -> str:
    """What the script draws, as JSON that cannot close its <script> element: per run its
    curves, the name of each role's key, and the detail view's charts (roles with data, the
    automatic scale); the number format's inputs."""
    runs = []
    for r, c in zip(rep["runs"], curves):
        drawn = {role: [[_step(x) for x in xs], [_num(y) for y in ys]] for role, (xs, ys) in c.items() if role in ROLES}
        groups = []
        for title, roles in GROUPS:
            have = [role for role in roles if role in drawn and any(y is not None for y in drawn[role][1])]
            if have:
                positive, log = log_scale([y for role in have for y in drawn[role][1]])
                groups.append({"title": title, "roles": have, "positive": positive, "log": log})
        runs.append({"id": r["run_id"], "name": r["run_name"] or r["run_id"], "regime": r["regime"] or "failed",
                     "best": r["best_step"], "onset": r["onset_step"],
                     "names": {role: r["keys"].get(role, role) for role in drawn}, "curves": drawn, "groups": groups})
    text = json.dumps({"runs": runs, "format": FORMAT}, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _row(i: int, r: dict, c: dict, history_note) -> str:
    regime = r["regime"] or "failed"
    colour = COLOURS.get(regime, "#000")
    name = escape(r["run_name"] or r["run_id"])
    link = f'<a href="{escape(r["url"])}">{name}</a>' if r.get("url") else name
    gap = "" if r["acc_gap"] is None else f'{r["acc_gap"]:.3f}'
    best = "" if r["best_step"] is None else str(r["best_step"])
    plot = mini_svg(c, r["best_step"], r["onset_step"], colour, i) if r["regime"] else ""
    reasons = "<br>".join(escape(x) for x in r["reasons"]) or escape(r.get("error", ""))
    if r.get("rule"):
        reasons += f'<div class="muted">rule: {escape(r["rule"])}</div>'  # the rules table in docs/labels.md
    keys = ", ".join(f"{escape(k)}={escape(v)}" for k, v in r["keys"].items())
    if r.get("history"):
        keys += f'<div class="muted">{escape(history_note(r["history"], list(r["keys"].values())))}</div>'
    conf = r.get("confidence") or ""
    sure = escape(conf) + (f'<div class="muted">close to {escape(r["runner_up"])}</div>' if r.get("runner_up") else "")
    rank, surest, _ = order_key(r["regime"], conf, "")
    more = f'<button class="more" data-i="{i}" type="button">full curves</button>' if plot.startswith("<svg") else ""
    return (f'<tr data-regime="{escape(regime)}" data-name="{name}" data-gap="{gap}" data-best="{best}" '
            f'data-confidence="{surest if conf else ""}" data-rank="{rank}" data-i="{i}">'
            f'<td class="run">{link}<div class="muted">{escape(r["run_id"])}</div><div class="muted">{keys}</div>{more}</td>'
            f'<td data-label="regime"><span class="badge" style="background:{colour}">{escape(regime)}</span></td>'
            f'<td data-label="confidence">{sure}</td>'
            f'<td data-label="acc gap">{gap}</td><td data-label="best step">{best}</td>'
            f'<td data-label="flags">{escape(", ".join(r["flags"]))}</td>'
            f'<td class="advice"><div class="todo">{escape(r["advice"] or "")}</div>{reasons}</td>'
            f'<td class="plot">{plot}</td></tr>')


def _hyperparameters(hp: dict) -> str:
    if not hp["rows"]:
        return ""
    items = ("".join(f"<li>{escape(f['text'])}</li>" for f in hp["findings"][:15])
             or "<li>no bin is dominated by one regime</li>")
    cells = "".join(
        f'<tr><td>{escape(r["bin"])}</td><td>{r["runs"]}</td><td>'
        + ", ".join(f'<span style="color:{COLOURS[k]}">{k} {n}</span>' for k, n in r["by_regime"].items())
        + "</td></tr>" for r in hp["rows"])
    return (f'<h2>What the hyper-parameters say</h2><ul id="findings">{items}</ul>'
            f'<details><summary>every parameter</summary><table class="hp"><thead><tr><th>bin</th>'
            f'<th>runs</th><th>regimes</th></tr></thead><tbody>{cells}</tbody></table></details>')


def render(rep: dict, curves: list[dict], title: str, history_note) -> str:
    """The page for a JSON report and each run's curves (role -> (steps, values)), rows in
    severity order (``SEVERITY``: diverging first), surest first within a regime."""
    runs = rep["runs"]
    order = sorted(range(len(runs)), key=lambda i: order_key(runs[i]["regime"], runs[i].get("confidence"),
                                                            runs[i]["run_name"] or runs[i]["run_id"]))
    counts = rep["summary"]["by_regime"]
    buttons = [f'<button type="button" data-regime="all">all <b>{len(rep["runs"])}</b></button>']
    buttons += [f'<button type="button" data-regime="{k}" style="border-color:{COLOURS[k]}">{k} <b>{counts[k]}</b></button>'
                for k in SEVERITY if counts.get(k)]
    rows = "".join(_row(i, rep["runs"][i], curves[i], history_note) for i in order)
    head = "".join(
        f'<th data-key="{k}"{sort}><button type="button">{label}</button></th>' if k else f"<th>{label}</th>"
        for k, label, sort in (("name", "run", ""), ("rank", "regime", ' aria-sort="ascending"'),
                               ("confidence", "confidence", ""), ("gap", "acc gap", ""), ("best", "best step", ""),
                               ("", "flags", ""), ("", "what to do, and why", ""), ("", "curves", "")))
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{escape(title)}</title>'
            f'<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            f'style-src \'unsafe-inline\'; script-src \'unsafe-inline\'; img-src data:">'
            f'<style>{asset("report.css")}</style></head><body data-l="{L}" data-r="{R}" data-t="{T}" data-b="{B}"><h1>{escape(title)}</h1>'
            f'<p class="muted">{len(rep["runs"])} runs · tracker-diag {escape(rep["tool_version"])} · '
            f'train solid, test dashed; green line best step, red line overfitting onset · '
            f'most severe first</p>'
            f'<div class="counts">{"".join(buttons)}</div>'
            f'<table id="runs"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
            f'{_hyperparameters(rep["hyperparameters"])}'
            f'<dialog id="detail" aria-labelledby="d-name"><div class="bar"><h2 id="d-name"></h2>'
            f'<button type="button" id="d-close" aria-label="close">✕</button></div>'
            f'<div id="d-meta" class="muted"></div><div class="controls">'
            f'<label>scale <select id="d-scale"><option value="auto">auto</option><option value="linear">linear</option>'
            f'<option value="log">log</option></select></label>'
            f'<label>smoothing (EMA) <input type="range" id="d-smooth" min="0" max="0.99" step="0.01" value="0">'
            f' <output id="d-smooth-v">0</output></label></div><div id="d-charts"></div>'
            f'<div id="d-why"></div></dialog><div id="tip" role="status" hidden></div>'
            f'<script type="application/json" id="td-data">{_data(rep, curves)}</script>'
            f'<script>{asset("report.js")}</script></body></html>\n')
