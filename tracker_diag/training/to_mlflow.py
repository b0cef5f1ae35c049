"""Log trained runs into an MLflow experiment, as a training script would: the demo's store."""

from __future__ import annotations

import time
from collections.abc import Iterable

from tracker_diag.training import SampleRun

LOG_BATCH = 1000  # MLflow's log_batch takes at most 1,000 metrics per call


def mark_model_training(client, experiment_ids: list[str]) -> None:
    """Tag the demo's own experiments as model training, so MLflow 3's UI opens them on the
    runs table instead of the GenAI overview."""
    from mlflow.exceptions import MlflowException

    from tracker_diag.errors import ConnectorError

    for e in experiment_ids:
        try:
            client.set_experiment_tag(e, "mlflow.experimentKind", "custom_model_development")
        except MlflowException as exc:
            raise ConnectorError(f"tagging experiment {e} failed: {exc.message}") from exc


def log_runs(client, experiment_id: str, runs: Iterable[SampleRun], progress=None) -> int:
    """Create one finished MLflow run per sample run (its curves, params and cause tag) in
    ``experiment_id`` through ``client`` (an ``MlflowClient``); returns how many were logged.
    ``progress(run)`` is called after each one."""
    from mlflow.entities import Metric, Param

    ts0 = int(time.time() * 1000)
    n = 0
    for r in runs:
        run = client.create_run(experiment_id, run_name=r.run_name, tags={"cause": r.cause, "convention": r.convention})
        metrics = [Metric(k, float(v), ts0 + int(s), int(s)) for k, s, v in
                   r.frame[["key", "step", "value"]].itertuples(index=False)]
        for at in range(0, len(metrics), LOG_BATCH):
            client.log_batch(run.info.run_id, metrics=metrics[at:at + LOG_BATCH])
        client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in r.params.items()])
        client.set_terminated(run.info.run_id, "FINISHED")
        n += 1
        if progress is not None:
            progress(r)
    return n
