"""Diagnosis -> what is written on a run: tags, summary keys, the marked note section.

Pure formatting. The keys are the DESIGN.md contract users filter on; nothing else on a
run is ever touched.
"""

from __future__ import annotations

from tracker_diag.model import ANALYZER_VERSION, Diagnosis

TAG_KEYS = ("diag_regime", "diag_acc_gap", "diag_best_step", "diag_flags", "diag_confidence", "diag_version",
            "diag_checked")
BEGIN, END = "<!-- tracker-diag -->", "<!-- /tracker-diag -->"
# MLflow silently truncates tag values (and so descriptions) past 8,000 characters.
NOTE_LIMIT = 8000


def _num(x) -> str:
    if x is None:
        return ""
    return str(int(x)) if float(x).is_integer() else f"{x:.6g}"


def tags_for(d: Diagnosis, checked: str) -> dict[str, str]:
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
