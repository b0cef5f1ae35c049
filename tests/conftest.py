import os

import pytest


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch, tmp_path):
    """Hermetic: no tracker settings leak in from the developer's shell or CI."""
    for name in list(os.environ):
        if name.startswith(("MLFLOW_", "WANDB_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/default.db")
    monkeypatch.delenv("CI", raising=False)


@pytest.fixture(scope="session")
def corpus():
    """A small corpus of genuinely trained runs (one per cause, two naming conventions)."""
    from tracker_diag.samples import generate

    return generate(16, seed=11)
