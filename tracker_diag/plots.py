"""A run's diagnosis plot as PNG bytes (for --attach-plots). Needs matplotlib."""

from __future__ import annotations

import io

from tracker_diag.errors import need
from tracker_diag.model import Diagnosis

COLOURS = {"learning": "#2e7d32", "overfitting": "#e65100", "data_issue": "#8e24aa", "plateau": "#0277bd",
           "diverging": "#c62828", "insufficient_data": "#757575"}


def plot_png(name: str, diagnosis: Diagnosis, curves: dict) -> bytes:
    """Train (solid) and test (dashed) loss, accuracy on a second axis; best step and onset marked."""
    need("matplotlib", "mlflow").use("Agg", force=False)
    Figure = need("matplotlib.figure", "mlflow").Figure
    fig = Figure(figsize=(6, 3), dpi=90)
    ax = fig.add_subplot()
    colour = COLOURS[diagnosis.regime]
    for role, style in (("train_loss", "-"), ("test_loss", "--")):
        if role in curves:
            xs, ys = curves[role]
            ax.plot(xs, [float("nan") if y is None else y for y in ys], style, color="#1565c0" if "train" in role
                    else "#ef6c00", label=f"{role.replace('_', ' ')} ({diagnosis.keys.get(role, '')})")
    if any(r in curves for r in ("train_acc", "test_acc")):
        ax2 = ax.twinx() if any(r in curves for r in ("train_loss", "test_loss")) else ax
        for role, style in (("train_acc", "-"), ("test_acc", "--")):
            if role in curves:
                xs, ys = curves[role]
                ax2.plot(xs, [float("nan") if y is None else y for y in ys], style, color="#9e9e9e", lw=1,
                         label=role.replace("_", " "))
    for step, c, what in ((diagnosis.best_step, "#2e7d32", "best step"), (diagnosis.onset_step, "#c62828", "onset")):
        if step is not None:
            ax.axvline(step, color=c, lw=1, ls=":", label=f"{what} {step:g}")
    ax.set_title(f"{name}: {diagnosis.regime}" + (f" ({', '.join(diagnosis.flags)})" if diagnosis.flags else ""),
                 color=colour, fontsize=10)
    ax.legend(fontsize=7, loc="best")
    ax.set_xlabel("step", fontsize=8)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
