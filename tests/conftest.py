import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

# The tests' models are tiny: a BLAS thread pool per worker only oversubscribes the cores
# xdist already fills (the suite took 215 s of CPU for 120 s of wall time with it).
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")


@pytest.fixture(scope="session", autouse=True)
def _one_blas_thread():
    """numpy may have loaded its BLAS before this file set the variables above."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch, tmp_path):
    """Hermetic: no tracker settings leak in from the developer's shell or CI."""
    for name in list(os.environ):
        if name.startswith(("MLFLOW_", "WANDB_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/default.db")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # --write locks, not in the developer's home
    monkeypatch.delenv("CI", raising=False)


@pytest.fixture
def wb(monkeypatch):
    """The W&B test server (tests/wandb_server.py), with the real SDK pointed at it."""
    from wandb_server import WandbTestServer

    with WandbTestServer(entity="ent") as srv:
        monkeypatch.setenv("WANDB_BASE_URL", srv.url)
        monkeypatch.setenv("WANDB_API_KEY", "a" * 40)  # a dummy 40-character key
        monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")
        monkeypatch.setenv("WANDB_ENTITY", "ent")
        yield srv


@pytest.fixture(scope="session")
def _mlflow_template(tmp_path_factory):
    """An empty MLflow sqlite store with every migration applied, made once per session."""
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()  # creates the schema
    return path


@pytest.fixture
def new_store(tmp_path, _mlflow_template):
    """``new_store("x.db")`` -> the URI of a fresh, migrated sqlite store in tmp_path: a copy of
    the session's template, so a test pays milliseconds instead of MLflow's migrations."""
    import shutil

    def make(name: str = "mlflow.db") -> str:
        target = tmp_path / name
        shutil.copyfile(_mlflow_template, target)
        return f"sqlite:///{target}"
    return make


@pytest.fixture(scope="session")
def corpus():
    """A small corpus of genuinely trained runs (one per cause, two naming conventions)."""
    from tracker_diag.training.numpy_mlp import generate

    return generate(16, seed=11)


@pytest.fixture(scope="session")
def server(tmp_path_factory, _mlflow_template):
    import shutil

    db = tmp_path_factory.mktemp("server") / "mlflow.db"
    shutil.copyfile(_mlflow_template, db)  # migrated already: the server starts 2 s sooner
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{db}",
                             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.time() > deadline or proc.poll() is not None:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("mlflow server did not start")
        time.sleep(0.3)
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL (Debian's package, tests/pg_server.py) for this test session;
    ``postgres("name")`` -> the URI of a fresh database with MLflow's schema (a copy of a
    template migrated once)."""
    pytest.importorskip("sqlalchemy")
    from pg_server import PostgresServer, bin_dir

    if bin_dir() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is required here (apt install postgresql)")
        pytest.skip("no PostgreSQL server installed (apt install postgresql)")
    from mlflow.tracking import MlflowClient

    with PostgresServer(durable=False) as pg:
        MlflowClient(pg.create("mlflow_template")).search_experiments()  # MLflow's migrations, once
        made = []

        def make(name: str, template: str = "mlflow_template") -> str:
            """A new database copied from ``template`` (a database name of this server)."""
            made.append(name)
            return pg.create(f"t_{name}_{len(made)}", template)

        yield make
