"""Diagnosis -> what is written on a run: tags, summary keys, the marked note section.

Pure: :func:`plan` turns what a run holds now (:class:`RunState`) and a diagnosis into a
:class:`Patch`, the one write-back policy for every tracker (stale keys removed, the note
section replaced or appended, shortened when the description is full, only a regime tag
tracker-diag set itself replaced). A backend reads the state and applies the patch. The keys
are the contract users filter on (docs/contracts.md); nothing else on a run is touched.
"""

from __future__ import annotations

import math
import re
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


def _inert(text: str) -> str:
    """User data (key names in reasons) never forms a marker inside our section."""
    return text.replace("<!--", "<!\u2060--").replace("-->", "--\u2060>")


# What each flag means for the run it is on (the description section explains the ones it shows)
FLAG_MEANING = {
    "nonfinite": "some logged loss values are NaN or infinite",
    "early_stopped": "the last point repeats the best one (a restored checkpoint, e.g. Keras restore_best_weights); "
                     "it is left out of the trends",
    "spikes": "a few points sit far off the curve; they are ignored for the regime",
    "oscillating": "the curve jitters by over 5 % of its level from point to point; the trend is read through it",
    "converged": "it improved, then flattened: training has done what it can at this setting",
    "stalled": "it never clearly improved: the model did not learn at this setting",
    "provisional": "the run is still running; the label is redone when it ends",
}


def note_section(d: Diagnosis, limit: int = 2000, tag: str | None = None) -> str:
    """The marked Markdown section: regime, evidence, advice; shortened to ``limit``.

    ``tag`` (W&B) records which regime tag tracker-diag added to the run ("" for none: the
    user had it already), so that a relabel replaces only that one.
    """
    sure = f"confidence {d.confidence}" + (f", close to {d.runner_up}" if d.runner_up else "")
    lines = [BEGIN, f"**tracker-diag: {d.regime}** ({sure})" + (f" — {', '.join(d.flags)}" if d.flags else ""),
             "", f"Advice: {d.advice}", ""]  # near the top: the UI shows a description's first lines uncollapsed
    facts = []
    if d.acc_gap is not None:
        facts.append(f"train−test accuracy gap {d.acc_gap:.3f}")
    if d.best_step is not None:
        facts.append(f"best step {_num(d.best_step)}")
    if d.onset_step is not None:
        facts.append(f"overfitting from step {_num(d.onset_step)}")
    if facts:
        lines += ["; ".join(facts), ""]
    lines += [f"- {_inert(r)}" for r in d.reasons]
    meanings = [f"- `{f}`: {FLAG_MEANING[f]}" for f in d.flags if f in FLAG_MEANING]
    if meanings:
        lines += ["", "Flags:", *meanings]
    tail = [f"{TAG_RECORD}{tag} -->"] if tag is not None else []
    lines += [*tail, END]
    text = "\n".join(lines)
    if len(text) > limit:
        head = "\n".join([BEGIN, f"**tracker-diag: {d.regime}**", "", f"Advice: {d.advice}"])
        keep = limit - len(END) - 2 - sum(len(t) + 1 for t in tail)
        text = "\n".join([head[: max(keep, len(BEGIN) + 40)], *tail, END])
    return text


TAG_RECORD = "<!-- tracker-diag tag: "
_HEADER = re.compile(r"\n\*\*tracker-diag: (" + "|".join(REGIMES) + r")\*\*")


def our_section(text: str) -> tuple[int, int] | None:
    """Where the section tracker-diag wrote itself sits in ``text`` (start, end), or None.

    Ours is a begin marker, our header line, the advice and an end marker, with no other
    marker inside; a lone marker, markers in the wrong order or a pair around the user's own
    text are the user's. If several qualify, the last (tracker-diag appends) is ours.
    """
    found = None
    start = text.find(BEGIN)
    while start >= 0:
        body_at = start + len(BEGIN)
        end = text.find(END, body_at)
        if end < 0:
            break
        body = text[body_at:end]
        if BEGIN not in body and _HEADER.match(body) and "\nAdvice: " in body and body.endswith("\n"):
            found = (start, end + len(END))
        start = text.find(BEGIN, body_at)
    return found


def recorded_tag(notes: str) -> str | None:
    """The regime tag our section says tracker-diag added ("" none), None without a record."""
    span = our_section(notes)
    if span is None:
        return None
    at = notes.find(TAG_RECORD, span[0], span[1])
    if at < 0:
        return None
    tag = notes[at + len(TAG_RECORD): notes.find(" -->", at)].strip()
    return tag if tag in REGIMES else ""


def merge_note(existing: str | None, section: str, limit: int = NOTE_LIMIT) -> str | None:
    """The description with our section replaced or appended; the user's text is kept
    byte for byte. None when it would not fit under ``limit`` even with a short section.
    """
    existing = existing or ""
    span = our_section(existing)
    if span is not None:
        before, after = existing[:span[0]], existing[span[1]:]
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
    acc_gap: float | None = None  # a new value of the diag_acc_gap metric (NaN: unknown now); None leaves it

    def __bool__(self) -> bool:
        return bool(self.set or self.delete) or any(x is not None for x in (self.notes, self.labels, self.acc_gap))


def _labels(state: RunState, d: Diagnosis) -> tuple[tuple[str, ...], str]:
    """The tag list with the regime tag, and which regime tag is ours afterwards ("" none).

    Only the tag our section records as added by tracker-diag is ever removed; a section
    written before that record existed (analyzer 2 up to this change) always added its tag.
    """
    labels = tuple(state.labels or ())
    ours = recorded_tag(state.notes)
    if ours is None and our_section(state.notes) is not None:  # a section from before the record
        old = state.keys.get("diag_regime", "")
        ours = old if old in REGIMES else ""
    kept = [t for t in labels if not (ours and t == ours and t != d.regime)]
    if d.regime in kept:
        return tuple(kept), d.regime if ours == d.regime else ""
    return (*kept, d.regime), d.regime


def _notes(state: RunState, d: Diagnosis, tag: str | None) -> str | None:
    notes = merge_note(state.notes, note_section(d, tag=tag), state.note_limit)
    if notes is None:  # the user's text leaves little room: a short section, else leave it alone
        notes = merge_note(state.notes, note_section(d, limit=400, tag=tag), state.note_limit)
    return notes


def plan(state: RunState, d: Diagnosis, checked: str) -> Patch:
    """The one write-back policy: from what the run holds now (read just before writing) to
    the few changes that make it say ``d``. Backends make ``diag_checked`` the last thing
    that becomes true (see the connectors' ``apply``)."""
    values = tags_for(d, checked)
    new = {k: v for k, v in values.items() if v is not None and state.keys.get(k) != v}
    stale = tuple(k for k, v in values.items() if v is None and k in state.keys)
    labels, tag = None, None
    if state.labels is not None:
        wanted, tag = _labels(state, d)
        labels = wanted if wanted != tuple(state.labels) else None
    notes = _notes(state, d, tag)
    if notes is None:  # no room to record which tag is ours: leave the tags as they are
        labels = None
    gap = None
    if state.has_metric:
        if d.acc_gap is not None and state.acc_gap_metric != d.acc_gap:
            gap = d.acc_gap
        elif d.acc_gap is None and state.acc_gap_metric is not None and not math.isnan(state.acc_gap_metric):
            gap = math.nan  # the gap became unknown: the metric says so too (a NaN matches no filter)
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
