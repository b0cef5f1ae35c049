"""MLflow: list runs, read histories in bulk, write diagnoses back. The only mlflow importer.

Reads take the fastest path the URI allows:
- database URIs (sqlite, postgresql, mysql, ...): read-only SQL against MLflow's own
  schema, when the store's alembic revision is the one the installed mlflow knows;
- http(s) tracking servers: ``/ajax-api/2.0/mlflow/metrics/get-history-bulk`` (100 run
  ids, one key, at most 25,000 rows per call, silently cut: a full answer is split and
  asked again), a few calls in parallel;
- anything else (file store, unknown schema): the client, one history per run and key.
Writes always go through MlflowClient: one ``log_batch`` per run.
"""

from __future__ import annotations

import math
import os
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np

from tracker_diag.errors import ConnectorError, MissingExtraError, need
from tracker_diag.model import RunRef
from tracker_diag.writeback import NOTE_LIMIT, TAG_KEYS, Patch, RunState

try:  # cheap: the mlflow package itself is imported only when the client is needed
    import sqlalchemy as sa
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("mlflow", "mlflow") from exc


def _mlflow():
    """Import mlflow on first use (~2 s): SQL-path dry runs and skips never pay it."""
    for sub in ("entities", "exceptions", "tracking"):
        need(f"mlflow.{sub}", "mlflow")
    return need("mlflow", "mlflow")


def _mlflow_error():
    return _mlflow().exceptions.MlflowException


@contextmanager
def _translated(what: str, run_id: str | None = None):
    """MLflow's errors at this boundary become one ConnectorError saying what failed."""
    try:
        yield
    except _mlflow_error() as exc:  # evaluated only when something was raised
        raise ConnectorError(f"{what} failed: {exc.message}", run_id) from exc


def _schema_head() -> str | None:
    """The alembic head revision of the installed mlflow, read from its migration files
    (importing mlflow.store.db.utils would pull alembic and ~1 s of imports).
    """
    import importlib.util
    import re
    from pathlib import Path

    spec = importlib.util.find_spec("mlflow")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(spec.submodule_search_locations[0]) / "store" / "db_migrations" / "versions"
    revs, downs = set(), set()
    for f in folder.glob("*.py"):
        text = f.read_text(encoding="utf-8", errors="replace")
        m = re.search(r"^revision\s*=\s*['\"]([0-9a-f]+)['\"]", text, re.MULTILINE)
        if m:
            revs.add(m.group(1))
        d = re.search(r"^down_revision\s*=\s*(.+)$", text, re.MULTILINE)
        if d:
            downs.update(re.findall(r"['\"]([0-9a-f]+)['\"]", d.group(1)))
    heads = revs - downs
    return heads.pop() if len(heads) == 1 else None

NOTE_TAG = "mlflow.note.content"
PLOT_DIR = "tracker_diag"  # the run's artifact tracker_diag/diagnosis.png
PAGE = 1000  # search_runs' own maximum page size
BULK_RUNS, BULK_ROWS = 100, 25_000  # get-history-bulk limits (mlflow/server/handlers.py)
_DB_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


def _fingerprint(latest: list[tuple[str, float, float]]) -> str:
    """What the run's data looks like now: latest step and timestamp of its own metrics.

    tracker_diag's own metric (diag_acc_gap) is left out, or writing it would make the
    run look changed the next night.
    """
    mine = [(s, t) for k, s, t in latest if not k.startswith("diag_")]
    if not mine:
        return "no-metrics"
    return f"step={max(_int(s) for s, _ in mine)};ts={max(_int(t) for _, t in mine)};n={len(mine)}"


def _int(x) -> int:
    """An integer column as sqlite hands it back (numpy ints logged by users arrive as bytes)."""
    if isinstance(x, bytes | bytearray):
        return int.from_bytes(x[:8], "little", signed=True)
    return int(x or 0)


class MlflowBackend:
    source = "mlflow"

    def __init__(self, tracking_uri: str | None = None, *, experiments: list[str] | None = None,
                 all_experiments: bool = False, filter_string: str | None = None, include_running: bool = False,
                 workers: int = 8, create: bool = False):
        self.uri = tracking_uri or _mlflow().get_tracking_uri()
        self.filter_string = filter_string or ""
        # Ended runs, failed and killed ones too (a run that blew up often ends FAILED); RUNNING ones on request.
        self.statuses = {"FINISHED", "FAILED", "KILLED"} | ({"RUNNING"} if include_running else set())
        self.workers = workers
        self._client = None
        self._engine = self._sql_engine()
        try:
            if self._engine is not None and not create:
                self.experiment_ids = self._resolve_experiments_sql(experiments or [], all_experiments)
            else:
                self.experiment_ids = self._resolve_experiments(experiments or [], all_experiments, create)
        except ImportError as exc:  # a database URI whose driver is not installed
            raise ConnectorError(f"the database driver for {self._safe_uri()} is not installed: "
                                 f"pip install {exc.name or 'the driver'}") from exc
        except OSError as exc:  # connection refused and the like
            raise ConnectorError(f"cannot reach the MLflow store {self._safe_uri()}: {exc}") from exc
        except _mlflow_error() as exc:  # evaluated only when something was raised
            raise ConnectorError(f"cannot open the MLflow store {self._safe_uri()}: {exc.message}") from exc

    @property
    def client(self):
        if self._client is None:
            self._client = _mlflow().tracking.MlflowClient(tracking_uri=self.uri)
        return self._client

    # -- set-up ---------------------------------------------------------------------------------

    def _safe_uri(self) -> str:
        """The URI without a password (postgresql://user:secret@host/db)."""
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(self.uri)
        if not parts.password:
            return self.uri
        host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))

    def describe(self) -> str:
        return f"{self._safe_uri()} · experiment(s) {', '.join(self.experiment_ids)}"

    def close(self) -> None:
        """Release the database connections of the SQL fast path."""
        if self._engine is not None:
            self._engine.dispose()

    def _resolve_experiments(self, names: list[str], all_experiments: bool, create: bool) -> list[str]:
        if all_experiments:
            view = _mlflow().entities.ViewType.ACTIVE_ONLY
            return [e.experiment_id for e in self.client.search_experiments(view_type=view)]
        if not names:
            names = [os.environ.get("MLFLOW_EXPERIMENT_NAME") or os.environ.get("MLFLOW_EXPERIMENT_ID") or "0"]
        ids = []
        for name in names:
            exp = self.client.get_experiment_by_name(name)
            if exp is None and name.isdigit():
                try:
                    exp = self.client.get_experiment(name)
                except _mlflow_error():
                    exp = None
            if exp is None and create:
                ids.append(self.client.create_experiment(name))
                continue
            if exp is None:
                known = ", ".join(f"{e.name!r}" for e in self.client.search_experiments(max_results=20))
                raise ConnectorError(f"no experiment named or numbered {name!r} in {self._safe_uri()}; "
                                     f"experiments there: {known or 'none'}")
            ids.append(exp.experiment_id)
        return ids

    def _resolve_experiments_sql(self, names: list[str], all_experiments: bool) -> list[str]:
        with self._engine.connect() as con:
            rows = con.execute(sa.text("SELECT experiment_id, name FROM experiments "
                                       "WHERE lifecycle_stage = 'active' ORDER BY experiment_id")).fetchall()
        by_name = {name: str(eid) for eid, name in rows}
        if all_experiments:
            return [str(eid) for eid, _ in rows]
        if not names:
            names = [os.environ.get("MLFLOW_EXPERIMENT_NAME") or os.environ.get("MLFLOW_EXPERIMENT_ID") or "0"]
        ids = []
        for name in names:
            if name in by_name:
                ids.append(by_name[name])
            elif name in by_name.values():
                ids.append(name)
            else:
                known = ", ".join(repr(n) for _, n in rows[:20])
                raise ConnectorError(f"no experiment named or numbered {name!r} in {self._safe_uri()}; "
                                     f"experiments there: {known or 'none'}")
        return ids

    def _sql_engine(self):
        """A read-only SQL path when the store is a database MLflow's installed schema matches."""
        if self.uri.split(":", 1)[0].split("+", 1)[0] not in _DB_SCHEMES:
            return None
        try:
            engine = sa.create_engine(self.uri)
            with engine.connect() as con:
                rev = con.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        except ImportError as exc:
            raise ConnectorError(f"the database driver for {self._safe_uri()} is not installed: "
                                 f"pip install {exc.name or 'the driver'}") from exc
        except sa.exc.SQLAlchemyError:
            return None  # no MLflow tables yet, or not readable: the client decides
        return engine if rev is not None and rev == _schema_head() else None

    # -- listing ----------------------------------------------------------------------------------

    def count_runs(self) -> int:
        return sum(1 for _ in self._search_pages())

    def _search_pages(self) -> Iterator:
        view = _mlflow().entities.ViewType.ACTIVE_ONLY
        token, seen = None, set()
        while True:
            with _translated(f"search_runs on {self._safe_uri()}"):
                page = self.client.search_runs(self.experiment_ids, self.filter_string, run_view_type=view,
                                               max_results=PAGE, page_token=token)
            yield from page
            token = page.token
            if not token:
                return
            if token in seen or not len(page):
                raise ConnectorError(f"{self._safe_uri()} returned an empty page with a page token; "
                                     "stopping instead of looping forever")
            seen.add(token)

    def list_runs(self) -> Iterator[RunRef]:
        """Active runs of the experiments, with a snapshot of what tracker_diag may change."""
        if self._engine is not None and not self.filter_string:
            yield from self._list_sql()
            return
        for run in self._search_pages():
            if run.info.status not in self.statuses:
                continue
            latest = [(m.key, m.step, m.timestamp) for m in getattr(run.data, "_metric_objs", [])]
            yield RunRef(run_id=run.info.run_id, run_name=run.info.run_name or "", source="mlflow",
                         experiment=run.info.experiment_id, status=run.info.status,
                         tags={k: v for k, v in run.data.tags.items() if k in TAG_KEYS or k == NOTE_TAG},
                         metric_keys=tuple(k for k in run.data.metrics if not k.startswith("diag_")),
                         checked=_fingerprint(latest), url=self._url(run.info.experiment_id, run.info.run_id),
                         params=dict(run.data.params), extra={"diag_acc_gap": run.data.metrics.get("diag_acc_gap")})

    def _list_sql(self) -> Iterator[RunRef]:
        """Keyset-paged listing straight from the runs, latest_metrics and tags tables."""
        last = ""
        exp = ", ".join(f":e{i}" for i in range(len(self.experiment_ids)))
        params = {f"e{i}": int(e) for i, e in enumerate(self.experiment_ids)}
        while True:
            with self._engine.connect() as con:
                rows = con.execute(sa.text(
                    f"SELECT run_uuid, name, status, experiment_id FROM runs WHERE experiment_id IN ({exp}) "
                    "AND lifecycle_stage = 'active' AND run_uuid > :last ORDER BY run_uuid LIMIT :n"),
                    {**params, "last": last, "n": PAGE}).fetchall()
                if not rows:
                    return
                ids = [r[0] for r in rows if r[2] in self.statuses]
                latest: defaultdict[str, list] = defaultdict(list)
                tags: defaultdict[str, dict[str, str]] = defaultdict(dict)
                run_params: defaultdict[str, dict[str, str]] = defaultdict(dict)
                gaps: dict[str, float] = {}
                for chunk in _chunked(ids, 500):
                    bind = {f"r{i}": r for i, r in enumerate(chunk)}
                    inn = ", ".join(f":r{i}" for i in range(len(chunk)))
                    for rid, key, step, ts, value in con.execute(sa.text(
                            "SELECT run_uuid, key, step, timestamp, value FROM latest_metrics "
                            f"WHERE run_uuid IN ({inn})"), bind):
                        latest[rid].append((key, step, ts))
                        if key == "diag_acc_gap":
                            gaps[rid] = value
                    for rid, key, value in con.execute(sa.text(
                            f"SELECT run_uuid, key, value FROM tags WHERE run_uuid IN ({inn}) "
                            "AND (key LIKE 'diag\\_%' ESCAPE '\\' OR key = :note)"), {**bind, "note": NOTE_TAG}):
                        tags[rid][key] = value
                    for rid, key, value in con.execute(sa.text(
                            f"SELECT run_uuid, key, value FROM params WHERE run_uuid IN ({inn})"), bind):
                        run_params[rid][key] = value
            for rid, name, status, exp_id in rows:
                if status not in self.statuses:
                    continue
                yield RunRef(run_id=rid, run_name=name or "", source="mlflow", experiment=str(exp_id),
                             status=status, tags=tags.get(rid, {}),
                             metric_keys=tuple(k for k, _, _ in latest.get(rid, ()) if not k.startswith("diag_")),
                             checked=_fingerprint(latest.get(rid, [])), url=self._url(exp_id, rid),
                             params=run_params.get(rid, {}), extra={"diag_acc_gap": gaps.get(rid)})
            last = rows[-1][0]

    def _url(self, exp_id, run_id) -> str:
        if self.uri.startswith(("http://", "https://")):
            return f"{self.uri.rstrip('/')}/#/experiments/{exp_id}/runs/{run_id}"
        return ""

    # -- reading ----------------------------------------------------------------------------------

    def fetch(self, runs: list[RunRef], keys: dict[str, list[str]]) -> Iterator[tuple[RunRef, dict]]:
        if self._engine is not None:
            reader = self._fetch_sql
        elif self.uri.startswith(("http://", "https://")):
            reader = self._fetch_bulk
        else:
            reader = self._fetch_client
        by_id = {r.run_id: r for r in runs}
        hist = reader(runs, keys)
        for rid, ref in by_id.items():
            yield ref, hist.get(rid, {})

    def _fetch_sql(self, runs, keys) -> dict:
        """One query per 400 runs through the raw DB-API cursor (plain tuples, no Row objects)."""
        wanted = {r.run_id: set(keys.get(r.run_id, ())) for r in runs}
        all_keys = sorted(set().union(*wanted.values())) if wanted else []
        out: dict[str, dict] = defaultdict(dict)
        if not all_keys:
            return out
        mark = "?" if self._engine.dialect.paramstyle == "qmark" else "%s"
        # SQLite would pick the (key, ...) primary key and scan every run's history for each
        # page; "+key" makes it search index_metrics_run_uuid_key_step by run instead.
        key_col = "+key" if self._engine.dialect.name == "sqlite" else "key"
        try:
            raw = self._engine.raw_connection()
            try:
                cur = raw.cursor()
                for chunk in _chunked(list(wanted), 400):
                    cur.execute(
                        "SELECT run_uuid, key, step, value, is_nan FROM metrics "
                        f"WHERE run_uuid IN ({', '.join([mark] * len(chunk))}) "
                        f"AND {key_col} IN ({', '.join([mark] * len(all_keys))}) "
                        "ORDER BY run_uuid, key, step, timestamp", (*chunk, *all_keys))
                    _collect(out, cur.fetchall(), wanted)
                cur.close()
            finally:
                raw.close()
        except (sa.exc.SQLAlchemyError, self._engine.dialect.loaded_dbapi.Error) as exc:
            raise ConnectorError(f"reading metric histories from {self._safe_uri()} failed: {exc}") from exc
        return out

    def _fetch_bulk(self, runs, keys) -> dict:
        from mlflow.utils.credentials import get_default_host_creds
        from mlflow.utils.rest_utils import http_request

        creds = get_default_host_creds(self.uri)
        by_key: dict[str, list[str]] = defaultdict(list)
        for r in runs:
            for k in keys.get(r.run_id, ()):
                by_key[k].append(r.run_id)
        jobs = [(k, chunk) for k, ids in by_key.items() for chunk in _chunked(ids, BULK_RUNS)]

        def get(key: str, ids: list[str]) -> list[tuple]:
            params = [("run_id", i) for i in ids] + [("metric_key", key), ("max_results", BULK_ROWS)]
            try:
                resp = http_request(creds, "/ajax-api/2.0/mlflow/metrics/get-history-bulk", "GET", params=params,
                                    max_retries=5, backoff_factor=1, timeout=120)
            except (_mlflow_error(), OSError) as exc:
                raise ConnectorError(f"get-history-bulk failed on {self._safe_uri()}: {exc}") from exc
            if resp.status_code != 200:
                raise ConnectorError(f"get-history-bulk answered HTTP {resp.status_code} on {self._safe_uri()}")
            metrics = resp.json().get("metrics", [])
            if len(metrics) >= BULK_ROWS:  # silently cut by the server: split and ask again
                if len(ids) == 1:
                    raise ConnectorError(f"run {ids[0]} has over {BULK_ROWS} points of {key!r}", ids[0])
                half = len(ids) // 2
                return get(key, ids[:half]) + get(key, ids[half:])
            return [(m["run_id"], key, m.get("step", 0), m.get("value"), 0) for m in metrics]

        out: dict[str, dict] = defaultdict(dict)
        wanted = {r.run_id: set(keys.get(r.run_id, ())) for r in runs}
        with ThreadPoolExecutor(self.workers) as pool:
            for rows in pool.map(lambda job: get(*job), jobs):
                rows.sort(key=lambda r: r[0])  # the server answers one key: group by run, keep order
                _collect(out, rows, wanted)
        return out

    def _fetch_client(self, runs, keys) -> dict:
        def get(rid_key):
            rid, key = rid_key
            with _translated(f"reading {key!r} of run {rid}", rid):
                return rid, key, self.client.get_metric_history(rid, key)

        out: dict[str, dict] = defaultdict(dict)
        jobs = [(r.run_id, k) for r in runs for k in keys.get(r.run_id, ())]
        with ThreadPoolExecutor(self.workers) as pool:
            for rid, key, hist in pool.map(get, jobs):
                out[rid][key] = (np.array([m.step for m in hist], float), np.array([m.value for m in hist], float))
        return out

    # -- writing ----------------------------------------------------------------------------------

    def state(self, run: RunRef) -> RunState:
        """From the listing's snapshot: MLflow sets tags key by key, so only the description
        (a whole value) can race with a user's edit (issue 11 re-reads it)."""
        tags = {k: v for k, v in run.tags.items() if k != NOTE_TAG}
        return RunState(tags, run.tags.get(NOTE_TAG, ""), NOTE_LIMIT, acc_gap_metric=run.extra.get("diag_acc_gap"),
                        has_metric=True)

    def apply(self, run: RunRef, state: RunState, patch: Patch, plot=None) -> None:
        """One log_batch with the tags, the description and the metric; then stale tags go."""
        entities = _mlflow().entities
        tags = dict(patch.set)
        if patch.notes is not None:
            tags[NOTE_TAG] = patch.notes
        ts = int(time.time() * 1000)
        metrics = [entities.Metric("diag_acc_gap", float(patch.acc_gap), ts, 0)] if patch.acc_gap is not None else []
        with _translated(f"writing to run {run.run_id}", run.run_id):
            if plot is not None:  # first: a failed upload leaves the run as it was
                self._attach(run.run_id, plot())
            self.client.log_batch(run.run_id, metrics=metrics, tags=[entities.RunTag(k, v) for k, v in tags.items()])
            for key in patch.delete:
                self.client.delete_tag(run.run_id, key)


    def _attach(self, run_id: str, png: bytes) -> None:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="tracker-diag-") as tmp:
            path = os.path.join(tmp, "diagnosis.png")
            with open(path, "wb") as fh:
                fh.write(png)
            try:
                self.client.log_artifact(run_id, path, artifact_path=PLOT_DIR)
            except OSError as exc:
                raise ConnectorError(f"uploading the plot of run {run_id} failed: {exc}", run_id) from exc


def _chunked(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _collect(out: dict, rows, wanted: dict[str, set]) -> None:
    """Rows (run_id, key, step, value, is_nan), grouped by run and key, -> arrays in ``out``.

    NaN is stored as value=0, is_nan=1; ±inf reads back as ±1.797e308 (the analyzer
    treats both as non-finite).
    """
    if not len(rows):
        return
    rids, keys, raw_steps, raw_values, is_nan = zip(*rows)
    try:
        steps = np.array(raw_steps, dtype=float)
    except (TypeError, ValueError):  # numpy ints stored as 8-byte blobs by sqlite
        steps = np.array([_int(x) for x in raw_steps], dtype=float)
    try:
        values = np.array(raw_values, dtype=float)
    except (TypeError, ValueError):
        values = np.array([math.nan if v is None else v for v in raw_values], dtype=float)
    values[np.asarray(is_nan, dtype=bool)] = math.nan
    r, k = np.array(rids, dtype=object), np.array(keys, dtype=object)
    cuts = (np.flatnonzero((r[1:] != r[:-1]) | (k[1:] != k[:-1])) + 1).tolist()
    for a, b in zip([0, *cuts], [*cuts, len(rids)]):
        rid, key = rids[a], keys[a]
        if key in wanted.get(rid, ()):
            out[rid][key] = (steps[a:b], values[a:b])
