"""Diagnosis -> what is written on a run: tags, summary keys, the marked note section.

Pure: :func:`plan` turns what a run holds now (:class:`RunState`) and a diagnosis into a
:class:`Patch`, the one write-back policy for every tracker (stale keys removed, the note
section replaced or appended, shortened when the description is full, only a regime tag
tracker-diag set itself replaced). A backend reads the state and applies the patch. The keys
are the contract users filter on (docs/contracts.md); nothing else on a run is touched.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from tracker_diag.model import ANALYZER_VERSION, CONFIDENCES, REGIMES, Diagnosis, Regime

TAG_KEYS = ("diag_regime", "diag_acc_gap", "diag_best_step", "diag_flags", "diag_confidence", "diag_version",
            "diag_checked")
BEGIN, END = "<!-- tracker-diag -->", "<!-- /tracker-diag -->"
# MLflow silently truncates tag values (and so descriptions) past 8,000 characters.
NOTE_LIMIT = 8000


def _num(x) -> str:
    if x is None:
        return ""
    return str(int(x)) if float(x).is_integer() else f"{x:.6g}"


def tags_for(d: Diagnosis, checked: str) -> dict[str, str | None]:
    """The diag_* values; a key whose value is unknown maps to None (to be removed)."""
    return {
        "diag_regime": d.regime,
        "diag_acc_gap": f"{d.acc_gap:.3f}" if d.acc_gap is not None else None,
        "diag_best_step": _num(d.best_step) or None,
        "diag_flags": ",".join(d.flags),
        "diag_confidence": d.confidence,
        "diag_version": ANALYZER_VERSION,
        "diag_checked": checked,
    }


def note_section(d: Diagnosis, limit: int = 2000) -> str:
    """The marked Markdown section: regime, evidence, advice; shortened to ``limit``."""
    sure = f"confidence {d.confidence}" + (f", close to {d.runner_up}" if d.runner_up else "")
    lines = [BEGIN, f"**tracker-diag: {d.regime}** ({sure})" + (f" — {', '.join(d.flags)}" if d.flags else ""), ""]
    facts = []
    if d.acc_gap is not None:
        facts.append(f"train−test accuracy gap {d.acc_gap:.3f}")
    if d.best_step is not None:
        facts.append(f"best step {_num(d.best_step)}")
    if d.onset_step is not None:
        facts.append(f"overfitting from step {_num(d.onset_step)}")
    if facts:
        lines += ["; ".join(facts), ""]
    lines += [f"- {r}" for r in d.reasons]
    lines += ["", f"Advice: {d.advice}", END]
    text = "\n".join(lines)
    if len(text) > limit:
        head = f"{BEGIN}\n**tracker-diag: {d.regime}**\n\nAdvice: {d.advice}"
        text = head[: max(0, limit - len(END) - 1)] + "\n" + END
    return text


def merge_note(existing: str | None, section: str, limit: int = NOTE_LIMIT) -> str | None:
    """The description with our section replaced or appended; the user's text is kept
    byte for byte. None when it would not fit under ``limit`` even with a short section.
    """
    existing = existing or ""
    start = existing.find(BEGIN)
    end = existing.find(END, start + len(BEGIN)) if start >= 0 else -1
    if start >= 0 and end >= 0:
        before, after = existing[:start], existing[end + len(END):]
    else:
        sep = "" if not existing or existing.endswith("\n\n") else ("\n" if existing.endswith("\n") else "\n\n")
        before, after = existing + sep, ""
    room = limit - len(before) - len(after)
    if len(section) > room:
        return None
    return before + section + after


@dataclass(frozen=True)
class RunState:
    """What a run holds now, in the part tracker-diag may change, read just before writing."""

    keys: Mapping[str, str]  # diag_* tags (MLflow) or diag_* summary values as text (W&B)
    notes: str = ""  # the description (MLflow) or the run notes (W&B)
    note_limit: int = NOTE_LIMIT
    labels: tuple[str, ...] | None = None  # W&B's tag list; None where the regime is a key only
    acc_gap_metric: float | None = None  # the diag_acc_gap metric where the tracker has one
    has_metric: bool = False  # whether the gap is also kept as a metric (MLflow)
    handle: Any = field(default=None, compare=False, repr=False)  # the backend's own, e.g. the run read


@dataclass(frozen=True)
class Patch:
    """What to change on one run; empty when the run already says it all."""

    set: dict[str, str] = field(default_factory=dict)
    delete: tuple[str, ...] = ()
    notes: str | None = None  # the whole new text; None leaves it
    labels: tuple[str, ...] | None = None  # the whole new tag list; None leaves it
    acc_gap: float | None = None  # a new value of the diag_acc_gap metric; None leaves it

    def __bool__(self) -> bool:
        return bool(self.set or self.delete) or any(x is not None for x in (self.notes, self.labels, self.acc_gap))


def plan(state: RunState, d: Diagnosis, checked: str) -> Patch:
    """The one write-back policy. ``diag_checked`` is part of ``set`` and trackers write a
    patch in one request, so it becomes true together with everything else."""
    values = tags_for(d, checked)
    new = {k: v for k, v in values.items() if v is not None and state.keys.get(k) != v}
    stale = tuple(k for k, v in values.items() if v is None and k in state.keys)
    notes = merge_note(state.notes, note_section(d), state.note_limit)
    if notes is None:  # the user's text leaves little room: a short section, else leave it alone
        notes = merge_note(state.notes, note_section(d, limit=400), state.note_limit)
    labels = None
    if state.labels is not None:
        mine = state.keys.get("diag_regime")  # the regime tag tracker-diag itself added before
        kept = [t for t in state.labels if not (t == mine and mine in REGIMES and t != d.regime)]
        wanted = tuple(kept + ([d.regime] if d.regime not in kept else []))
        labels = wanted if wanted != tuple(state.labels) else None
    gap = d.acc_gap if state.has_metric and d.acc_gap is not None and state.acc_gap_metric != d.acc_gap else None
    return Patch(new, stale, notes if notes is not None and notes != state.notes else None, labels, gap)


def diagnosis_from_keys(keys: Mapping[str, str]) -> Diagnosis:
    """A run's stored label back as a Diagnosis (for runs skipped as unchanged; batch.is_current
    has checked that the stored regime is one of REGIMES): regime,
    confidence, flags, gap and best step as the run's own diag_* keys hold them."""

    def number(key):
        try:
            x = float(keys.get(key, ""))
        except ValueError:
            return None
        return x if math.isfinite(x) else None

    confidence = keys.get("diag_confidence", "")
    return Diagnosis(cast(Regime, keys["diag_regime"]), acc_gap=number("diag_acc_gap"), best_step=number("diag_best_step"),
                     flags=tuple(f for f in keys.get("diag_flags", "").split(",") if f),
                     confidence=confidence if confidence in CONFIDENCES else "low")
