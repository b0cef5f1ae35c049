"""The JSON report (schema_version 1) and the terminal table."""

from __future__ import annotations

import json
from collections import Counter

from tracker_diag import __version__
from tracker_diag.atomic import atomic_write
from tracker_diag.batch import BatchResult
from tracker_diag.model import CONFIDENCES, REGIMES
from tracker_diag.params import regime_table
from tracker_diag.plots import COLOURS

SCHEMA_VERSION = 1


def build(batch: BatchResult) -> dict:
    runs = []
    for r in batch.results:
        d = r.diagnosis.to_dict() if r.diagnosis is not None else {}
        runs.append({
            "run_id": r.ref.run_id, "run_name": r.ref.run_name, "source": r.ref.source,
            "regime": d.get("regime"), "acc_gap": d.get("acc_gap"), "best_step": d.get("best_step"),
            "onset_step": d.get("onset_step"), "flags": d.get("flags", []), "confidence": d.get("confidence"),
            "runner_up": d.get("runner_up"), "keys": d.get("keys", {}),
            "reasons": d.get("reasons", []), "advice": d.get("advice"), "action": r.action,
            **({"error": r.error} if r.error else {}), **({"url": r.ref.url} if r.ref.url else {}),
            **({"experiment": r.ref.experiment} if r.ref.experiment else {}),
            **({"history": r.ref.extra["history"]} if r.ref.extra.get("history") else {}),
        })
    by_regime = Counter(x["regime"] for x in runs if x["regime"])
    return {
        "schema_version": SCHEMA_VERSION, "tool_version": __version__, "runs": runs,
        "summary": {"runs": len(runs), "by_regime": {k: by_regime[k] for k in REGIMES if by_regime[k]},
                    "failed": batch.failed, "skipped": batch.skipped,
                    "actions": dict(Counter(x["action"] for x in runs))},
        "hyperparameters": hyperparameters(batch),
    }


def history_note(history: dict, keys: list[str]) -> str:
    """How the tracker served a run's history: the x-axis and whether it was sampled."""
    axes = sorted({history.get("x_axis", {}).get(k, "_step") for k in keys if k in history.get("x_axis", {})})
    points = history.get("points", {})
    sampled = [k for k in keys if k in history.get("sampled", [])]
    parts = [f"x: {', '.join(axes)}"] if axes else []
    if sampled:
        rows = history.get("rows", {})
        parts.append("sampled: " + ", ".join(
            f"{k} ({points.get(k, '?')} of {rows[k]} rows)" if k in rows else f"{k} ({points.get(k, '?')} rows)"
            for k in sampled))
    elif points:
        parts.append("full history")
    return " · ".join(parts)


def hyperparameters(batch: BatchResult) -> dict:
    """Regimes against each logged hyper-parameter (see params.py)."""
    return regime_table((r.diagnosis.regime if r.diagnosis else None, r.ref.params) for r in batch.results)


def to_json(report: dict) -> str:
    return json.dumps(report, indent=2, allow_nan=False, default=str) + "\n"


def write_json(report: dict, path: str) -> None:
    """Atomically: a reader never sees half a report (temp file + os.replace)."""
    atomic_write(path, to_json(report))


# --- HTML ---------------------------------------------------------------------------------------

_W, _H, _PAD = 260, 90, 4


def _svg(curves: dict, d, colour: str) -> str:
    """A small inline SVG of the loss (or accuracy) curves, best step and onset marked."""
    pairs = [(r, curves[r]) for r in ("train_loss", "test_loss") if r in curves] or \
            [(r, curves[r]) for r in ("train_acc", "test_acc") if r in curves]
    pts = [(x, y) for _, (xs, ys) in pairs for x, y in zip(xs, ys) if y is not None]
    if not pts:
        return '<span class="muted">no curve</span>'
    ys_all = [p[1] for p in pts]
    log = min(ys_all) > 0 and max(ys_all) / min(ys_all) > 100  # an explosion would flatten the rest
    if log:
        import math

        pairs = [(r, (xs, [None if y is None else math.log10(y) for y in ys])) for r, (xs, ys) in pairs]
        pts = [(x, math.log10(y)) for x, y in pts]
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
    sx = (_W - 2 * _PAD) / ((x1 - x0) or 1.0)
    sy = (_H - 2 * _PAD) / ((y1 - y0) or 1.0)

    def line(xs, ys, cls):
        segs, cur = [], []
        for x, y in zip(xs, ys):
            if y is None:
                if cur:
                    segs.append(cur)
                cur = []
                continue
            cur.append(f"{_PAD + (x - x0) * sx:.1f},{_H - _PAD - (y - y0) * sy:.1f}")
        if cur:
            segs.append(cur)
        return "".join(f'<polyline class="{cls}" points="{" ".join(seg)}"/>' for seg in segs)

    body = "".join(line(xs, ys, "tr" if role.startswith("train") else "te") for role, (xs, ys) in pairs)
    for step, cls in ((d.best_step, "best"), (d.onset_step, "onset")):
        if step is not None and x0 <= step <= x1:
            x = _PAD + (step - x0) * sx
            body += f'<line class="{cls}" x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{_H}"/>'
    what = ("loss" if pairs[0][0].endswith("loss") else "accuracy") + (", log scale" if log else "")
    return (f'<svg viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" role="img" style="border-color:{colour}" '
            f'aria-label="train and test {what}"><title>train (solid) and test (dashed) {what}</title>{body}</svg>')


_CSS = """
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em}.muted{color:#888}
.counts button{margin:0 .3em .3em 0;padding:.3em .7em;border:2px solid #ccc;border-radius:1em;background:#fff;cursor:pointer}
.counts button.on{background:#222;color:#fff}
table{border-collapse:collapse;width:100%}th,td{padding:.35em .5em;border-bottom:1px solid #eee;vertical-align:top;text-align:left}
th{cursor:pointer;user-select:none;background:#fafafa;position:sticky;top:0}
.badge{color:#fff;border-radius:.8em;padding:.1em .6em;white-space:nowrap}
svg{border-left:4px solid;background:#fcfcfc}polyline{fill:none;stroke-width:1.5}
.tr{stroke:#1565c0}.te{stroke:#ef6c00;stroke-dasharray:4 2}.best{stroke:#2e7d32}.onset{stroke:#c62828;stroke-dasharray:2 2}
tr.hidden{display:none}.advice{max-width:28em;font-size:.9em}
"""

_JS = """
(function(){
  var rows=[].slice.call(document.querySelectorAll('#runs tbody tr'));
  var buttons=[].slice.call(document.querySelectorAll('.counts button'));
  function show(regime){
    rows.forEach(function(r){r.classList.toggle('hidden', regime!=='all' && r.dataset.regime!==regime);});
    buttons.forEach(function(b){b.classList.toggle('on', b.dataset.regime===regime);});
  }
  buttons.forEach(function(b){b.addEventListener('click',function(){
    history.replaceState(null,'','#regime='+b.dataset.regime); show(b.dataset.regime);});});
  var m=/regime=([a-z_]+)/.exec(location.hash); show(m?m[1]:'all');
  var dir={};
  [].slice.call(document.querySelectorAll('#runs th[data-key]')).forEach(function(th){
    th.addEventListener('click',function(){
      var k=th.dataset.key, d=dir[k]=-(dir[k]||-1), body=document.querySelector('#runs tbody');
      rows.sort(function(a,b){
        var x=a.dataset[k], y=b.dataset[k], nx=parseFloat(x), ny=parseFloat(y);
        if(!isNaN(nx)&&!isNaN(ny)) return d*(nx-ny);
        if(x===''||x===undefined) return 1; if(y===''||y===undefined) return -1;
        return d*x.localeCompare(y);
      });
      rows.forEach(function(r){body.appendChild(r);});
    });
  });
})();
"""


_CONF_ORDER = {"high": "0", "medium": "1", "low": "2"}  # sorts high first


def render_html(batch: BatchResult, title: str = "tracker-diag report", rep: dict | None = None) -> str:
    """One self-contained page (no network): counts, a filterable, sortable table, a plot per run.

    Every name, key, tag and reason is user input and is escaped.
    """
    from html import escape

    rep = rep or build(batch)
    counts = rep["summary"]["by_regime"]
    buttons = [f'<button data-regime="all">all <b>{len(rep["runs"])}</b></button>']
    buttons += [f'<button data-regime="{k}" style="border-color:{COLOURS[k]}">{k} <b>{n}</b></button>'
                for k, n in counts.items()]
    rows = []
    for r, res in zip(rep["runs"], batch.results):
        regime = r["regime"] or "failed"
        colour = COLOURS.get(regime, "#000")
        name = escape(r["run_name"] or r["run_id"])
        link = f'<a href="{escape(r["url"])}">{name}</a>' if r.get("url") else name
        gap = "" if r["acc_gap"] is None else f'{r["acc_gap"]:.3f}'
        best = "" if r["best_step"] is None else str(r["best_step"])
        plot = _svg(res.curves, res.diagnosis, colour) if res.diagnosis is not None else ""
        reasons = "<br>".join(escape(x) for x in r["reasons"]) or escape(r.get("error", ""))
        keys = ", ".join(f"{escape(k)}={escape(v)}" for k, v in r["keys"].items())
        if r.get("history"):
            keys += f'<div class="muted">{escape(history_note(r["history"], list(r["keys"].values())))}</div>'
        conf = r.get("confidence") or ""
        sure = escape(conf) + (f'<div class="muted">close to {escape(r["runner_up"])}</div>' if r.get("runner_up") else "")
        rows.append(
            f'<tr data-regime="{escape(regime)}" data-name="{name}" data-gap="{gap}" data-best="{best}" '
            f'data-confidence="{_CONF_ORDER.get(conf, "")}">'
            f'<td>{link}<div class="muted">{escape(r["run_id"])}</div><div class="muted">{keys}</div></td>'
            f'<td><span class="badge" style="background:{colour}">{escape(regime)}</span></td><td>{sure}</td>'
            f'<td>{gap}</td><td>{best}</td><td>{escape(", ".join(r["flags"]))}</td>'
            f'<td class="advice">{reasons}<div class="muted">{escape(r["advice"] or "")}</div></td>'
            f'<td>{plot}</td></tr>')
    hp = rep["hyperparameters"]
    section = ""
    if hp["rows"]:
        items = ("".join(f"<li>{escape(f['text'])}</li>" for f in hp["findings"][:15])
                 or "<li>no bin is dominated by one regime</li>")
        cells = "".join(
            f'<tr><td>{escape(r["bin"])}</td><td>{r["runs"]}</td><td>'
            + ", ".join(f'<span style="color:{COLOURS[k]}">{k} {n}</span>' for k, n in r["by_regime"].items())
            + "</td></tr>" for r in hp["rows"])
        section = (f'<h2>What the hyper-parameters say</h2><ul id="findings">{items}</ul>'
                   f'<details><summary>every parameter</summary><table class="hp"><thead><tr><th>bin</th>'
                   f'<th>runs</th><th>regimes</th></tr></thead><tbody>{cells}</tbody></table></details>')
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            f'style-src \'unsafe-inline\'; script-src \'unsafe-inline\'; img-src data:">'
            f'<style>{_CSS}</style></head><body><h1>{escape(title)}</h1>'
            f'<p class="muted">{len(rep["runs"])} runs · tracker-diag {escape(rep["tool_version"])} · '
            f'train solid, test dashed; green line best step, red line overfitting onset</p>'
            f'{section}<div class="counts">{"".join(buttons)}</div>'
            f'<table id="runs"><thead><tr><th data-key="name">run</th><th data-key="regime">regime</th>'
            f'<th data-key="confidence">confidence</th>'
            f'<th data-key="gap">acc gap</th><th data-key="best">best step</th><th>flags</th>'
            f'<th>why, and what to do</th><th>curves</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
            f'<script>{_JS}</script></body></html>\n')


def write_html(batch: BatchResult, path: str, title: str = "tracker-diag report", rep: dict | None = None) -> None:
    atomic_write(path, render_html(batch, title, rep))


def from_json(rep: dict) -> BatchResult:
    """A saved JSON report back into results (curves are fetched again from the source)."""
    from tracker_diag.batch import RunResult
    from tracker_diag.model import Diagnosis, RunRef

    if rep.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"schema_version {rep.get('schema_version')!r} is not {SCHEMA_VERSION}")
    out = BatchResult()
    for r in rep["runs"]:
        ref = RunRef(run_id=r["run_id"], run_name=r.get("run_name") or "", source=r.get("source", "file"),
                     experiment=r.get("experiment", ""), url=r.get("url", ""),
                     extra={"history": r["history"]} if isinstance(r.get("history"), dict) else {})
        diag = None
        if r.get("regime") in REGIMES:
            diag = Diagnosis(r["regime"], acc_gap=r.get("acc_gap"), best_step=r.get("best_step"),
                             onset_step=r.get("onset_step"), flags=tuple(r.get("flags", ())),
                             reasons=tuple(r.get("reasons", ())), keys=dict(r.get("keys", {})),
                             confidence=r.get("confidence") if r.get("confidence") in CONFIDENCES else "low",
                             runner_up=r.get("runner_up") if r.get("runner_up") in REGIMES else None)
        out.results.append(RunResult(ref, diag, r.get("action", "dry-run"), error=r.get("error", "")))
    return out
