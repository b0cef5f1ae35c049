"""Log runs with known curves into a real MLflow store (shared by the MLflow and sweep tests)."""

import numpy as np
from mlflow.entities import Metric


def curves(kind, n=40):
    x = np.arange(n, dtype=float)
    if kind == "learning":
        return {"loss": 2 * np.exp(-x / 80) + 0.1, "val_loss": 2 * np.exp(-x / 90) + 0.2}
    if kind == "overfitting":
        return {"train_loss": 2 * np.exp(-x / 5) + 0.01, "test_loss": 0.6 + 0.001 * (x - 10) ** 2}
    if kind == "plateau":
        return {"epoch/loss": np.full(n, 2.3026), "epoch/val_loss": np.full(n, 2.3026)}
    if kind == "diverging":
        v = 2 * np.exp(-x / 10) + 0.5
        v[30:] = np.nan
        return {"loss": v, "val_loss": 2 * np.exp(-x / 10) + 0.6}
    raise ValueError(kind)


def log_run(client, exp_id, kind, *, name=None, tags=None, description=None, finish=True):
    run = client.create_run(exp_id, run_name=name or kind, tags=tags or {})
    ms = [Metric(k, float(v), 1000 + i, i) for k, vals in curves(kind).items() for i, v in enumerate(vals)]
    client.log_batch(run.info.run_id, metrics=ms)
    if description is not None:
        client.set_tag(run.info.run_id, "mlflow.note.content", description)
    if finish:
        client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id
