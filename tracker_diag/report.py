"""The JSON report (schema_version 1) and the terminal table."""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from pathlib import Path

from tracker_diag import __version__
from tracker_diag.batch import BatchResult
from tracker_diag.model import REGIMES

SCHEMA_VERSION = 1


def build(batch: BatchResult) -> dict:
    runs = []
    for r in batch.results:
        d = r.diagnosis.to_dict() if r.diagnosis is not None else {}
        runs.append({
            "run_id": r.ref.run_id, "run_name": r.ref.run_name, "source": r.ref.source,
            "regime": d.get("regime"), "acc_gap": d.get("acc_gap"), "best_step": d.get("best_step"),
            "onset_step": d.get("onset_step"), "flags": d.get("flags", []), "keys": d.get("keys", {}),
            "reasons": d.get("reasons", []), "advice": d.get("advice"), "action": r.action,
            **({"error": r.error} if r.error else {}), **({"url": r.ref.url} if r.ref.url else {}),
            **({"experiment": r.ref.experiment} if r.ref.experiment else {}),
        })
    by_regime = Counter(x["regime"] for x in runs if x["regime"])
    return {
        "schema_version": SCHEMA_VERSION, "tool_version": __version__, "runs": runs,
        "summary": {"runs": len(runs), "by_regime": {k: by_regime[k] for k in REGIMES if by_regime[k]},
                    "failed": batch.failed, "skipped": batch.skipped,
                    "actions": dict(Counter(x["action"] for x in runs))},
    }


def write_json(report: dict, path: str) -> None:
    """Atomically: a reader never sees half a report (temp file + os.replace)."""
    text = json.dumps(report, indent=2, allow_nan=False, default=str) + "\n"
    if path == "-":
        print(text, end="")
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
