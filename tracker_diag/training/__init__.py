"""Genuinely trained runs, each labelled by the cause that induced it: the demo's training
and the analyzer's test corpora.

- :mod:`.numpy_mlp`: a one-hidden-layer numpy MLP on scikit-learn's datasets, one cause per
  regime (``tracker-diag demo`` trains these);
- :mod:`.sklearn_models`: scikit-learn's own models (MLP, SGD, gradient boosting) under 21
  causes and the logging styles of the integrations (``scripts/evaluate_analyzer.py``);
- :mod:`.to_mlflow`: logs such runs into an MLflow experiment, as a training script would.

A run's expected regime comes from its cause, never from the analyzer. Needs scikit-learn
(``pip install 'tracker-diag[demo]'``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass
class SampleRun:
    """One trained run: its curves as a long frame (``run_id, key, step, value``) and its cause."""

    run_id: str
    run_name: str
    cause: str
    expected: str
    convention: str
    params: dict
    frame: pd.DataFrame = field(repr=False)

    @classmethod
    def from_rows(cls, run_id: str, run_name: str, cause: str, expected: str, convention: str, params: dict,
                  rows: list[tuple[str, float, float]]) -> SampleRun:
        """A run from its logged ``(key, step, value)`` rows."""
        frame = pd.DataFrame(rows, columns=["key", "step", "value"])
        frame.insert(0, "run_id", run_id)
        return cls(run_id, run_name, cause, expected, convention, params, frame)


def long_frame(runs: list[SampleRun]) -> pd.DataFrame:
    """All runs as one long-format frame with a ``run_name`` column."""
    return pd.concat([r.frame.assign(run_name=r.run_name) for r in runs], ignore_index=True)
