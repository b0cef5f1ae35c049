"""The HTML report page: one self-contained file that reads on a desktop and on a phone.

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


def fmt(v: float) -> str:
    """Three significant digits; exponent form for the very large and very small (as the tooltips)."""
    a = abs(v)
    if a and (a >= 1e5 or a < 1e-3):
        mantissa, exponent = f"{v:.2e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent):+d}"
    return f"{float(f'{v:.3g}'):g}"


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
    log = lo > 0 and hi / lo > DECADES
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
            f'data-x0="{x0}" data-x1="{x1}" data-what="{"loss" if kind == "loss" else "acc"}" '
            f'aria-label="train and test {what}, step {fmt(x0)} to {fmt(x1)}, {fmt(lo)} to {fmt(hi)}">'
            f'<title>train (solid) and test (dashed) {what}; click for the full curves</title>'
            f'<clipPath id="{clip}"><rect x="{L}" y="{T - 1}" width="{R - L}" height="{B - T + 2}"/></clipPath>'
            f'{axes}<g clip-path="url(#{clip})">{body}</g>{note}</svg>')


def _step(x):
    return int(x) if float(x).is_integer() else float(x)


def _num(v):
    return None if v is None or not math.isfinite(v) else float(f"{v:.4g}")  # the tooltips show 3 digits


def _data(rep: dict, curves: list[dict]) -> str:
    """The curves the script draws, as JSON that cannot close its <script> element."""
    runs = []
    for r, c in zip(rep["runs"], curves):
        runs.append({"id": r["run_id"], "name": r["run_name"] or r["run_id"], "regime": r["regime"] or "failed",
                     "best": r["best_step"], "onset": r["onset_step"], "keys": r["keys"],
                     "curves": {role: [[_step(x) for x in xs], [_num(y) for y in ys]]
                                for role, (xs, ys) in c.items() if role in ROLES}})
    text = json.dumps({"runs": runs}, separators=(",", ":"), allow_nan=False)
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
            f'<style>{_CSS}</style></head><body data-l="{L}" data-r="{R}" data-t="{T}" data-b="{B}"><h1>{escape(title)}</h1>'
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
            f'<script>{_JS}</script></body></html>\n')


_CSS = """
*{box-sizing:border-box}
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em;overflow-wrap:anywhere}h2{font-size:1.1em}.muted{color:#777}
.counts button{margin:0 .3em .3em 0;padding:.3em .7em;border:2px solid #ccc;border-radius:1em;background:#fff;cursor:pointer;font:inherit}
.counts button.on{background:#222;color:#fff}
table{border-collapse:collapse;width:100%}th,td{padding:.35em .5em;border-bottom:1px solid #eee;vertical-align:top;text-align:left}
th{background:#fafafa;position:sticky;top:0;z-index:1;white-space:nowrap}
th button{font:inherit;font-weight:bold;border:0;background:none;padding:0;cursor:pointer;color:inherit}
th[data-key] button::after{content:" \\2195";color:#bbb}
th[aria-sort=ascending] button::after{content:" \\25B2";color:#222}
th[aria-sort=descending] button::after{content:" \\25BC";color:#222}
td.run{overflow-wrap:anywhere;max-width:22em}
.badge{color:#fff;border-radius:.8em;padding:.1em .6em;white-space:nowrap}
.advice{max-width:28em;font-size:.9em;overflow-wrap:anywhere}.todo{font-weight:600;margin-bottom:.2em}
button.more{margin-top:.3em;font:inherit;font-size:.85em;padding:.1em .5em;border:1px solid #aaa;border-radius:.3em;background:#fff;cursor:pointer}
td.plot{min-width:250px}svg.mini{width:300px;max-width:100%;height:auto;border-left:4px solid;background:#fcfcfc;cursor:zoom-in;display:block}
polyline,path.line{fill:none;stroke-width:1.5}path.axis,.grid{fill:none;stroke:#ccc}.grid{stroke:#eee}
.ax{font-size:9px;fill:#666}.dax{font-size:11px;fill:#555}
.tr{stroke:#1565c0}.te{stroke:#ef6c00;stroke-dasharray:4 2}.best{stroke:#2e7d32}.onset{stroke:#c62828;stroke-dasharray:2 2}
.raw{opacity:.3}.cut{fill:#c62828}.cursor{stroke:#999}
tr.hidden{display:none}
#tip{position:fixed;z-index:5;pointer-events:none;background:#222;color:#fff;font-size:12px;padding:.3em .5em;border-radius:.3em;white-space:pre;max-width:90vw;overflow:hidden}
dialog{width:min(980px,96vw);max-height:94vh;border:1px solid #ccc;border-radius:.5em;padding:1em}
dialog .bar{display:flex;justify-content:space-between;gap:1em}dialog h2{margin:0;overflow-wrap:anywhere}
#d-close{font-size:1.2em;border:0;background:none;cursor:pointer}
.controls{display:flex;flex-wrap:wrap;gap:1em;margin:.5em 0}.controls input[type=range]{width:9em;vertical-align:middle}
#d-charts svg{width:100%;height:auto;display:block;margin:.3em 0}#d-why{overflow-wrap:anywhere}
.legend{font-size:12px}
@media (max-width:720px){
 body{margin:.8em}
 #runs,#runs tbody,#runs tr,#runs td{display:block;width:100%;max-width:none}
 #runs thead tr{display:flex;flex-wrap:wrap;gap:.2em .8em;position:static}
 #runs thead th{position:static;background:none;border:0;padding:.2em 0}#runs thead th:not([data-key]){display:none}
 #runs tr{border:1px solid #ddd;border-radius:.5em;margin:.6em 0;padding:.3em}#runs tr.hidden{display:none}
 #runs td{border:0;padding:.15em .3em}
 #runs td[data-label]:not(:empty)::before{content:attr(data-label) ": ";color:#777}
 #runs td[data-label]:empty{display:none}
 .hp{font-size:.9em}
}
"""

_JS = r"""
(function(){
'use strict';
var DATA=JSON.parse(document.getElementById('td-data').textContent).runs;
var NS='http://www.w3.org/2000/svg';
var body=document.querySelector('#runs tbody');
var rows=[].slice.call(body.querySelectorAll('tr'));
var chips=[].slice.call(document.querySelectorAll('.counts button'));
var tip=document.getElementById('tip');
var ROLES=['train_loss','test_loss','train_acc','test_acc'];
var L=+document.body.dataset.l, R=+document.body.dataset.r, T=+document.body.dataset.t, B=+document.body.dataset.b;
function fmt(v){
  if(v===null||v===undefined||!isFinite(v)) return '\u2013';
  var a=Math.abs(v); if(a&&(a>=1e5||a<1e-3)) return v.toExponential(2).replace(/\.?0+e/,'e');
  return String(+v.toPrecision(3));
}
function el(name,attrs,text){
  var e=document.createElementNS(NS,name);
  for(var k in attrs) e.setAttribute(k,attrs[k]);
  if(text!==undefined) e.textContent=text;
  return e;
}
function nearest(xs,x){  // index of the step closest to x (steps sorted)
  var lo=0,hi=xs.length-1;
  while(hi-lo>1){var mid=(lo+hi)>>1; if(xs[mid]<x) lo=mid; else hi=mid;}
  return Math.abs(xs[hi]-x)<Math.abs(xs[lo]-x)?hi:lo;
}
function valueAt(curve,x){var i=nearest(curve[0],x); return {step:curve[0][i],value:curve[1][i],i:i};}
function showTip(ev,lines){
  var host=dialog.open?dialog:document.body; if(tip.parentNode!==host) host.appendChild(tip);  // the dialog is on top
  tip.textContent=lines.join('\n'); tip.hidden=false;
  var x=Math.min(ev.clientX+14,window.innerWidth-tip.offsetWidth-4);
  var y=ev.clientY+14+tip.offsetHeight>window.innerHeight?ev.clientY-tip.offsetHeight-8:ev.clientY+14;
  tip.style.left=Math.max(2,x)+'px'; tip.style.top=Math.max(2,y)+'px';
}
function hideTip(){tip.hidden=true;}
function toView(svg,ev){var p=svg.createSVGPoint(); p.x=ev.clientX; p.y=ev.clientY; return p.matrixTransform(svg.getScreenCTM().inverse());}

// --- filter by regime, from the chips or the URL (#regime=overfitting) --------------------
function show(regime){
  rows.forEach(function(r){r.classList.toggle('hidden',regime!=='all'&&r.dataset.regime!==regime);});
  chips.forEach(function(b){b.classList.toggle('on',b.dataset.regime===regime);});
}
chips.forEach(function(b){b.addEventListener('click',function(){
  history.replaceState(null,'','#regime='+b.dataset.regime); show(b.dataset.regime);});});

// --- sortable columns, the sorted one shows its arrow (aria-sort) --------------------------
var heads=[].slice.call(document.querySelectorAll('#runs th[data-key]'));
heads.forEach(function(th){th.querySelector('button').addEventListener('click',function(){
  var k=th.dataset.key, d=th.getAttribute('aria-sort')==='ascending'?-1:1;
  heads.forEach(function(o){o.removeAttribute('aria-sort');});
  th.setAttribute('aria-sort',d>0?'ascending':'descending');
  rows.sort(function(a,b){
    var x=a.dataset[k], y=b.dataset[k];
    if(x===''&&y==='') return 0; if(x==='') return 1; if(y==='') return -1;  // blanks last either way
    var nx=Number(x), ny=Number(y);
    return d*(!isNaN(nx)&&!isNaN(ny)?nx-ny:x.localeCompare(y));
  });
  rows.forEach(function(r){body.appendChild(r);});
});});

// --- values under the pointer on the small charts -------------------------------------------
function roleName(run,role){return (run.keys&&run.keys[role])||role;}
[].slice.call(document.querySelectorAll('svg.mini')).forEach(function(svg){
  var run=DATA[+svg.dataset.i], x0=+svg.dataset.x0, x1=+svg.dataset.x1;
  var roles=ROLES.filter(function(r){return run.curves[r]&&(svg.dataset.what==='loss'?/loss/:/acc/).test(r);});
  var cursor=el('line',{'class':'cursor',y1:T,y2:B,visibility:'hidden'}); svg.appendChild(cursor);
  svg.addEventListener('pointermove',function(ev){
    var p=toView(svg,ev), x=x0+Math.max(0,Math.min(1,(p.x-L)/(R-L)))*(x1-x0), lines=[];
    roles.forEach(function(r){var v=valueAt(run.curves[r],x); if(!lines.length) lines.push('step '+fmt(v.step));
      lines.push(roleName(run,r)+': '+fmt(v.value));});
    var at=L+(x1>x0?(x-x0)/(x1-x0):0)*(R-L);
    cursor.setAttribute('x1',at); cursor.setAttribute('x2',at); cursor.setAttribute('visibility','visible');
    showTip(ev,lines);
  });
  svg.addEventListener('pointerleave',function(){cursor.setAttribute('visibility','hidden'); hideTip();});
  svg.addEventListener('click',function(){openRun(+svg.dataset.i);});
});
[].slice.call(document.querySelectorAll('button.more')).forEach(function(b){
  b.addEventListener('click',function(){openRun(+b.dataset.i);});});

// --- the detail view: loss and accuracy at full size ---------------------------------------
function ema(ys,w){  // debiased exponential moving average, as TensorBoard's smoothing; gaps stay gaps
  if(!w) return ys; var last=0,n=0;
  return ys.map(function(y){if(y===null) return null; last=last*w+(1-w)*y; n++; return last/(1-Math.pow(w,n));});
}
function ticks(a,b,n){
  var span=b-a||Math.abs(a)||1, step=Math.pow(10,Math.floor(Math.log10(span/n))), e=n*step/span;
  if(e<=0.15) step*=10; else if(e<=0.35) step*=5; else if(e<=0.75) step*=2;
  var out=[]; for(var v=Math.ceil(a/step)*step; v<=b+step*1e-6; v+=step) out.push(+v.toPrecision(12));
  return out;
}
function range(run,roles){
  var lo=Infinity,hi=-Infinity;
  roles.forEach(function(r){run.curves[r][1].forEach(function(y){if(y!==null){lo=Math.min(lo,y);hi=Math.max(hi,y);}});});
  return [lo,hi];
}
function logScale(run,roles){  // auto: log when every value is positive and they span more than two decades
  var r=range(run,roles); if(scale.value==='linear'||!(r[0]>0)) return false;
  return scale.value==='log'||r[1]/r[0]>100;
}
var DW=720,DH=270,DL=62,DR=12,DT=12,DB=40;  // DW, DH follow the dialog's width (text stays legible)
function chart(run,roles,title,log,w){
  var ys=[],xs=[];
  roles.forEach(function(r){var c=run.curves[r]; xs=xs.concat(c[0]); c[1].forEach(function(y){if(y!==null&&(!log||y>0)) ys.push(y);});});
  var f=log?Math.log10:function(v){return v;};
  var x0=Math.min.apply(null,xs), x1=Math.max.apply(null,xs), y0=f(Math.min.apply(null,ys)), y1=f(Math.max.apply(null,ys));
  if(y0===y1){y0-=0.5; y1+=0.5;} if(x0===x1){x0-=0.5; x1+=0.5;}
  var pad=(y1-y0)*0.04; y0-=pad; y1+=pad;  // no curve runs along the frame
  var sx=function(x){return DL+(x-x0)/(x1-x0)*(DW-DL-DR);}, sy=function(y){return DH-DB-(f(y)-y0)/(y1-y0)*(DH-DT-DB);};
  var svg=el('svg',{viewBox:'0 0 '+DW+' '+DH,role:'img','class':'detail','data-roles':roles.join(' ')});
  svg.appendChild(el('title',{},title+(log?' (log scale)':'')));
  var yt=log?ticks(Math.floor(y0),Math.ceil(y1),6).filter(function(t){return t===Math.round(t)&&t>=Math.floor(y0)&&t<=Math.ceil(y1);}).map(function(t){return Math.pow(10,t);}):ticks(y0,y1,5);
  yt.forEach(function(t){var y=sy(t); if(y<DT-1||y>DH-DB+1) return;
    svg.appendChild(el('line',{'class':'grid',x1:DL,x2:DW-DR,y1:y,y2:y}));
    svg.appendChild(el('text',{'class':'dax',x:DL-5,y:y+4,'text-anchor':'end'},fmt(t)));});
  ticks(x0,x1,6).forEach(function(t){if(t<x0||t>x1) return; var x=sx(t);
    svg.appendChild(el('line',{'class':'grid',x1:x,x2:x,y1:DT,y2:DH-DB}));
    svg.appendChild(el('text',{'class':'dax',x:x,y:DH-DB+15,'text-anchor':'middle'},fmt(t)));});
  svg.appendChild(el('path',{'class':'axis',d:'M'+DL+','+DT+'V'+(DH-DB)+'H'+(DW-DR)}));
  svg.appendChild(el('text',{'class':'dax',x:(DL+DW-DR)/2,y:DH-6,'text-anchor':'middle'},'step'));
  svg.appendChild(el('text',{'class':'dax',x:14,y:(DT+DH-DB)/2,'text-anchor':'middle',transform:'rotate(-90 14 '+(DT+DH-DB)/2+')'},title+(log?' (log)':'')));
  function path(xs,ys,cls){
    var d='',pen=false;
    for(var i=0;i<xs.length;i++){var y=ys[i]; if(y===null||(log&&y<=0)){pen=false; continue;}
      d+=(pen?'L':'M')+sx(xs[i]).toFixed(1)+','+sy(y).toFixed(1); pen=true;}
    return el('path',{'class':'line '+cls,d:d});
  }
  var smooth={};
  roles.forEach(function(r){var c=run.curves[r], cls=/^train/.test(r)?'tr':'te';
    smooth[r]=ema(c[1],w);
    if(w){svg.appendChild(path(c[0],c[1],cls+' raw'));}
    svg.appendChild(path(c[0],smooth[r],cls+(w?' smooth':'')));});
  [[run.best,'best'],[run.onset,'onset']].forEach(function(m){if(m[0]!==null&&m[0]>=x0&&m[0]<=x1)
    svg.appendChild(el('line',{'class':m[1],x1:sx(m[0]),x2:sx(m[0]),y1:DT,y2:DH-DB}));});
  var lx=DL+8;
  roles.forEach(function(r){var t=el('text',{'class':'legend',x:lx+26,y:DT+12},roleName(run,r));
    svg.appendChild(el('line',{'class':/^train/.test(r)?'tr':'te',x1:lx,x2:lx+22,y1:DT+8,y2:DT+8,'stroke-width':2}));
    svg.appendChild(t); lx+=34+7*roleName(run,r).length;});
  var cursor=el('line',{'class':'cursor',y1:DT,y2:DH-DB,visibility:'hidden'}); svg.appendChild(cursor);
  svg.addEventListener('pointermove',function(ev){
    var p=toView(svg,ev), x=x0+Math.max(0,Math.min(1,(p.x-DL)/(DW-DL-DR)))*(x1-x0), lines=[];
    roles.forEach(function(r){var v=valueAt(run.curves[r],x); if(!lines.length) lines.push('step '+fmt(v.step));
      lines.push(roleName(run,r)+': '+fmt(v.value)+(w?'  (smoothed '+fmt(smooth[r][v.i])+')':''));});
    cursor.setAttribute('x1',sx(x)); cursor.setAttribute('x2',sx(x)); cursor.setAttribute('visibility','visible');
    showTip(ev,lines);
  });
  svg.addEventListener('pointerleave',function(){cursor.setAttribute('visibility','hidden'); hideTip();});
  return svg;
}
var dialog=document.getElementById('detail'), scale=document.getElementById('d-scale');
var smoothIn=document.getElementById('d-smooth'), smoothOut=document.getElementById('d-smooth-v'), current=null;
function groups(run){
  return [['loss',ROLES.slice(0,2)],['accuracy',ROLES.slice(2)]].map(function(g){
    return [g[0],g[1].filter(function(r){return run.curves[r]&&run.curves[r][1].some(function(y){return y!==null;});})];
  }).filter(function(g){return g[1].length;});
}
function draw(){
  var run=DATA[current], box=document.getElementById('d-charts'); box.textContent='';
  DW=Math.max(320,Math.min(900,box.clientWidth||720)); DH=DW<560?230:280;
  groups(run).forEach(function(g){box.appendChild(chart(run,g[1],g[0],logScale(run,g[1]),+smoothIn.value));});
}
function openRun(i){
  var run=DATA[i]; if(!run) return; current=i;
  document.getElementById('d-name').textContent=run.name;
  var row=body.querySelector('tr[data-i="'+i+'"]');
  document.getElementById('d-meta').textContent=run.regime+' \u00b7 '+run.id+(run.best!==null?' \u00b7 best step '+run.best:'')
    +(run.onset!==null?' \u00b7 overfitting from step '+run.onset:'');
  var why=document.getElementById('d-why'); why.textContent='';
  if(row) why.appendChild(row.querySelector('td.advice').cloneNode(true));
  if(!dialog.open) dialog.showModal();  // open first: the charts take the dialog's width
  draw();
  history.replaceState(null,'','#run='+encodeURIComponent(run.id));
}
scale.addEventListener('change',draw);
smoothIn.addEventListener('input',function(){smoothOut.textContent=smoothIn.value; draw();});
document.getElementById('d-close').addEventListener('click',function(){dialog.close();});
dialog.addEventListener('close',function(){hideTip(); history.replaceState(null,'',location.pathname+location.search);});

// --- the URL chooses the view: #regime=<regime> or #run=<run id> ------------------------------
var hash=new URLSearchParams(location.hash.slice(1));
show(hash.get('regime')||'all');
if(hash.get('run')!==null){
  var at=DATA.findIndex(function(r){return r.id===hash.get('run');});
  if(at>=0&&DATA[at].regime!=='failed') openRun(at);
}
})();
"""
