"""The JSON report (schema_version 1) and the terminal table."""

from __future__ import annotations

import json
from collections import Counter

from tracker_diag import __version__
from tracker_diag.atomic import atomic_write
from tracker_diag.batch import BatchResult
from tracker_diag.model import CONFIDENCES, REGIMES
from tracker_diag.params import regime_table

SCHEMA_VERSION = 1


def build(batch: BatchResult) -> dict:
    runs = []
    for r in batch.results:
        d = r.diagnosis.to_dict() if r.diagnosis is not None else {}
        runs.append({
            "run_id": r.ref.run_id, "run_name": r.ref.run_name, "source": r.ref.source,
            "regime": d.get("regime"), "acc_gap": d.get("acc_gap"), "best_step": d.get("best_step"),
            "onset_step": d.get("onset_step"), "flags": d.get("flags", []), "confidence": d.get("confidence"),
            "runner_up": d.get("runner_up"), "rule": d.get("rule"), "keys": d.get("keys", {}),
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


def with_curves(batch: BatchResult, backend) -> list[str]:
    """Put each run's curves, read again from ``backend`` (any run id), into ``batch`` for the
    HTML page of a saved JSON report; returns one line per run that could not be read (it is
    drawn without curves)."""
    from tracker_diag.batch import RunResult
    from tracker_diag.errors import ConnectorError
    from tracker_diag.frames import downsample

    keys = {r.ref.run_id: list(r.diagnosis.keys.values()) for r in batch.results if r.diagnosis}
    hist: dict[str, dict] = {}
    problems = []
    for ref, h in backend.fetch([r.ref for r in batch.results if r.ref.run_id in keys], keys):
        if isinstance(h, ConnectorError):
            problems.append(f"{ref.run_name or ref.run_id}: {h}")
        else:
            hist[ref.run_id] = h
    batch.results[:] = [
        RunResult(r.ref, r.diagnosis, r.action, r.skipped, r.error,
                  {role: downsample(*hist[r.ref.run_id][k]) for role, k in r.diagnosis.keys.items()
                   if k in hist.get(r.ref.run_id, {})} if r.diagnosis else {})
        for r in batch.results]
    return problems


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


# --- HTML (the page itself: page.py) --------------------------------------------------------------


def render_html(batch: BatchResult, title: str = "tracker-diag report", rep: dict | None = None) -> str:
    """One self-contained page (no network): counts, a filterable, sortable table in severity
    order, a chart per run with its axes and values under the pointer, a detail view per run."""
    from tracker_diag.page import render

    return render(rep or build(batch), [r.curves for r in batch.results], title, history_note)


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
