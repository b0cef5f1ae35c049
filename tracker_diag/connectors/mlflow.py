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

import numpy as np

from tracker_diag.errors import ConnectorError, MissingExtraError
from tracker_diag.model import Diagnosis, RunRef
from tracker_diag.writeback import NOTE_LIMIT, TAG_KEYS, merge_note, note_section, tags_for

try:
    import mlflow
    from mlflow.entities import Metric, RunTag, ViewType
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("mlflow", "mlflow") from exc

NOTE_TAG = "mlflow.note.content"
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
                 workers: int = 4, create: bool = False):
        self.uri = tracking_uri or mlflow.get_tracking_uri()
        self.filter_string = filter_string or ""
        self.statuses = {"FINISHED", "RUNNING"} if include_running else {"FINISHED"}
        self.workers = workers
        try:
            self.client = MlflowClient(tracking_uri=self.uri)
            self.experiment_ids = self._resolve_experiments(experiments or [], all_experiments, create)
        except MlflowException as exc:
            raise ConnectorError(f"cannot open the MLflow store {self._safe_uri()}: {exc.message}") from exc
        except OSError as exc:  # connection refused and the like
            raise ConnectorError(f"cannot reach the MLflow store {self._safe_uri()}: {exc}") from exc
        except ImportError as exc:  # a database URI whose driver is not installed
            raise ConnectorError(f"the database driver for {self._safe_uri()} is not installed: "
                                 f"pip install {exc.name or 'the driver'}") from exc
        self._engine = self._sql_engine()

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

    def _resolve_experiments(self, names: list[str], all_experiments: bool, create: bool) -> list[str]:
        if all_experiments:
            return [e.experiment_id for e in self.client.search_experiments(view_type=ViewType.ACTIVE_ONLY)]
        if not names:
            names = [os.environ.get("MLFLOW_EXPERIMENT_NAME") or os.environ.get("MLFLOW_EXPERIMENT_ID") or "0"]
        ids = []
        for name in names:
            exp = self.client.get_experiment_by_name(name)
            if exp is None and name.isdigit():
                try:
                    exp = self.client.get_experiment(name)
                except MlflowException:
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

    def _sql_engine(self):
        """A read-only SQL path when the store is a database MLflow's installed schema matches."""
        if self.uri.split(":", 1)[0].split("+", 1)[0] not in _DB_SCHEMES:
            return None
        import sqlalchemy as sa
        from mlflow.store.db.utils import _get_latest_schema_revision

        try:
            engine = sa.create_engine(self.uri)
            with engine.connect() as con:
                rev = con.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        except sa.exc.SQLAlchemyError:
            return None
        return engine if rev == _get_latest_schema_revision() else None

    # -- listing ----------------------------------------------------------------------------------

    def count_runs(self) -> int:
        return sum(1 for _ in self._search_pages())

    def _search_pages(self) -> Iterator:
        token, seen = None, set()
        while True:
            try:
                page = self.client.search_runs(self.experiment_ids, self.filter_string,
                                               run_view_type=ViewType.ACTIVE_ONLY, max_results=PAGE,
                                               page_token=token)
            except MlflowException as exc:
                raise ConnectorError(f"search_runs failed on {self._safe_uri()}: {exc.message}") from exc
            yield from page
            token = page.token
            if not token:
                return
            if token in seen or not len(page):
                raise ConnectorError(f"{self._safe_uri()} returned an empty page with a page token; "
                                     "stopping instead of looping forever")
            seen.add(token)

    def list_runs(self) -> Iterator[RunRef]:
        if self._engine is not None and not self.filter_string:
            yield from self._list_sql()
            return
        for run in self._search_pages():
            if run.info.status not in self.statuses:
                continue
            latest = [(m.key, m.step, m.timestamp) for m in getattr(run.data, "_metric_objs", [])]
            yield RunRef(run_id=run.info.run_id, run_name=run.info.run_name or "", source="mlflow",
                         experiment=run.info.experiment_id, status=run.info.status,
                         tags={k: v for k, v in run.data.tags.items() if k in TAG_KEYS},
                         metric_keys=tuple(k for k in run.data.metrics if not k.startswith("diag_")),
                         checked=_fingerprint(latest), url=self._url(run.info.experiment_id, run.info.run_id))

    def _list_sql(self) -> Iterator[RunRef]:
        """Keyset-paged listing straight from the runs, latest_metrics and tags tables."""
        import sqlalchemy as sa

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
                latest, tags = defaultdict(list), defaultdict(dict)
                for chunk in _chunked(ids, 500):
                    bind = {f"r{i}": r for i, r in enumerate(chunk)}
                    inn = ", ".join(f":r{i}" for i in range(len(chunk)))
                    for rid, key, step, ts in con.execute(sa.text(
                            f"SELECT run_uuid, key, step, timestamp FROM latest_metrics WHERE run_uuid IN ({inn})"),
                            bind):
                        latest[rid].append((key, step, ts))
                    for rid, key, value in con.execute(sa.text(
                            f"SELECT run_uuid, key, value FROM tags WHERE run_uuid IN ({inn}) "
                            "AND key LIKE 'diag\\_%' ESCAPE '\\'"), bind):
                        tags[rid][key] = value
            for rid, name, status, exp_id in rows:
                if status not in self.statuses:
                    continue
                yield RunRef(run_id=rid, run_name=name or "", source="mlflow", experiment=str(exp_id),
                             status=status, tags=tags.get(rid, {}),
                             metric_keys=tuple(k for k, _, _ in latest.get(rid, ()) if not k.startswith("diag_")),
                             checked=_fingerprint(latest.get(rid, [])), url=self._url(exp_id, rid))
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
        import sqlalchemy as sa

        wanted = {r.run_id: set(keys.get(r.run_id, ())) for r in runs}
        all_keys = sorted(set().union(*wanted.values())) if wanted else []
        out: dict[str, dict] = defaultdict(dict)
        if not all_keys:
            return out
        try:
            with self._engine.connect() as con:
                for chunk in _chunked(list(wanted), 400):
                    bind = {f"r{i}": r for i, r in enumerate(chunk)}
                    bind.update({f"k{i}": k for i, k in enumerate(all_keys)})
                    rows = con.execute(sa.text(
                        "SELECT run_uuid, key, step, value, is_nan FROM metrics "
                        f"WHERE run_uuid IN ({', '.join(f':r{i}' for i in range(len(chunk)))}) "
                        f"AND key IN ({', '.join(f':k{i}' for i in range(len(all_keys)))}) "
                        "ORDER BY run_uuid, key, timestamp, step"), bind).fetchall()
                    _collect(out, rows, wanted)
        except sa.exc.SQLAlchemyError as exc:
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
            except (MlflowException, OSError) as exc:
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
            try:
                return rid, key, self.client.get_metric_history(rid, key)
            except MlflowException as exc:
                raise ConnectorError(f"reading {key!r} of run {rid} failed: {exc.message}", rid) from exc

        out: dict[str, dict] = defaultdict(dict)
        jobs = [(r.run_id, k) for r in runs for k in keys.get(r.run_id, ())]
        with ThreadPoolExecutor(self.workers) as pool:
            for rid, key, hist in pool.map(get, jobs):
                out[rid][key] = (np.array([m.step for m in hist], float), np.array([m.value for m in hist], float))
        return out

    # -- writing ----------------------------------------------------------------------------------

    def write(self, run: RunRef, diagnosis: Diagnosis) -> str:
        """Re-read the run, then one log_batch with what changed; 'written' or 'unchanged'."""
        try:
            current = self.client.get_run(run.run_id)
            if current.info.lifecycle_stage != "active":
                raise ConnectorError(f"run {run.run_id} was deleted", run.run_id)
            tags = current.data.tags
            new = tags_for(diagnosis, run.checked)
            changed = {k: v for k, v in new.items() if v is not None and tags.get(k) != v}
            stale = [k for k, v in new.items() if v is None and k in tags]
            section = note_section(diagnosis)
            note = merge_note(tags.get(NOTE_TAG), section, NOTE_LIMIT)
            if note is None:  # the user's description leaves no room: shorten, else leave it alone
                note = merge_note(tags.get(NOTE_TAG), note_section(diagnosis, limit=400), NOTE_LIMIT)
            if note is not None and note != tags.get(NOTE_TAG, ""):
                changed[NOTE_TAG] = note
            gap = diagnosis.acc_gap
            metric_stale = gap is not None and current.data.metrics.get("diag_acc_gap") != gap
            if not changed and not stale and not metric_stale:
                return "unchanged"
            ts = int(time.time() * 1000)
            metrics = [Metric("diag_acc_gap", float(gap), ts, 0)] if metric_stale else []
            self.client.log_batch(run.run_id, metrics=metrics, tags=[RunTag(k, v) for k, v in changed.items()])
            for key in stale:
                self.client.delete_tag(run.run_id, key)
            return "written"
        except MlflowException as exc:
            raise ConnectorError(f"writing to run {run.run_id} failed: {exc.message}", run.run_id) from exc


def _chunked(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _collect(out: dict, rows, wanted: dict[str, set]) -> None:
    """Rows (run_id, key, step, value, is_nan) grouped by run and key -> arrays in ``out``.

    NaN is stored as value=0, is_nan=1; ±inf reads back as ±1.797e308 (the analyzer
    treats both as non-finite).
    """
    if not len(rows):
        return
    arr = np.array([(r[2], r[3] if r[3] is not None else math.nan, r[4]) for r in rows], float)
    rids = [r[0] for r in rows]
    keys = [r[1] for r in rows]
    values = np.where(arr[:, 2] == 1, np.nan, arr[:, 1])
    start = 0
    for i in range(1, len(rows) + 1):
        if i == len(rows) or rids[i] != rids[start] or keys[i] != keys[start]:
            rid, key = rids[start], keys[start]
            if key in wanted.get(rid, ()):
                out[rid][key] = (arr[start:i, 0], values[start:i])
            start = i


def log_sample_runs(backend: MlflowBackend, runs) -> None:
    """Log tracker_diag.samples runs into the backend's first experiment (for the demo)."""
    client, exp = backend.client, backend.experiment_ids[0]
    ts0 = int(time.time() * 1000)
    for r in runs:
        run = client.create_run(exp, run_name=r.run_name, tags={"cause": r.cause, "convention": r.convention})
        metrics = [Metric(k, float(v), ts0 + int(s), int(s)) for k, s, v in
                   r.frame[["key", "step", "value"]].itertuples(index=False)]
        for chunk in _chunked(metrics, 1000):  # log_batch takes at most 1,000 metrics
            client.log_batch(run.info.run_id, metrics=chunk)
        client.log_batch(run.info.run_id, params=[mlflow.entities.Param(k, str(v)) for k, v in r.params.items()])
        client.set_terminated(run.info.run_id, "FINISHED")
