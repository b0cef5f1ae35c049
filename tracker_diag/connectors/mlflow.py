"""MLflow: list runs, read histories in bulk, write diagnoses back. The only mlflow importer.

Reads take the fastest path the URI allows:
- database URIs (sqlite, postgresql, mysql, ...): read-only SQL against MLflow's own
  schema, when the store's alembic revision is the one the installed mlflow knows;
- http(s) tracking servers: ``/ajax-api/2.0/mlflow/metrics/get-history-bulk`` (100 run
  ids, one key, at most 25,000 rows per call, silently cut: a full answer is split and
  asked again), a few calls in parallel;
- anything else (file store, unknown schema): the client, one history per run and key.
Writes: on the SQL path, a page of runs per conditional transaction (mlflow_sql); elsewhere
through MlflowClient, one ``log_batch`` per run.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np

from tracker_diag import settings
from tracker_diag.connectors.guard import Guard, kind_of
from tracker_diag.connectors.mlflow_sql import ENDED, SqlReader, chunked, collect, engine_for, fingerprint
from tracker_diag.errors import ConnectorError, Unreachable, need
from tracker_diag.model import Action, Diagnosis, RunRef
from tracker_diag.text import redact, strip_userinfo
from tracker_diag.tracker import Fetched
from tracker_diag.writeback import NOTE_LIMIT, TAG_KEYS, Patch, RunState


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
    except OSError as exc:
        raise ConnectorError(f"{what} failed: {exc}", run_id) from exc


def _note_limit() -> int:
    """The longest tag value the installed MLflow accepts: 8000 in 3.x, 5000 in 2.x."""
    return min(NOTE_LIMIT, int(getattr(need("mlflow.utils.validation", "mlflow"), "MAX_TAG_VAL_LENGTH", NOTE_LIMIT)))


DEFAULT_URI = "sqlite:///mlflow.db"
NOTE_TAG = "mlflow.note.content"
PLOT_DIR = "tracker_diag"  # the run's artifact tracker_diag/diagnosis.png
PAGE = 1000  # search_runs' own maximum page size
BULK_RUNS, BULK_ROWS = 100, 25_000  # get-history-bulk limits (mlflow/server/handlers.py)


class MlflowBackend:
    """The runs of MLflow experiments: listed and read by the reader the URI's scheme chooses
    (:func:`_reader`), written through the client. Build it with :meth:`open` (it checks the
    store and resolves the experiments); the constructor does no I/O."""

    source = "mlflow"

    def __init__(self, uri: str, experiment_ids: list[str], *, filter_string: str = "",
                 statuses: set[str] | None = None, workers: int = 8, sql: SqlReader | None = None):
        self.uri = uri
        self.experiment_ids = experiment_ids
        self.filter_string = filter_string
        self.statuses = statuses or set(ENDED)
        self.workers = workers
        self.warnings: list[str] = []
        self.guard = Guard(redact(uri), budget=settings.get("TRACKER_DIAG_RETRY_BUDGET"))
        self._client = None
        self._sql = sql
        self.reader = _reader(self)

    @classmethod
    def for_writes(cls, tracking_uri: str) -> MlflowBackend:
        """A backend that only writes (a Spark partition's): the SQL path on a database of a
        known schema, else the client; no experiment is resolved, nothing is probed."""
        engine = engine_for(tracking_uri, redact(tracking_uri))
        return cls(tracking_uri, [], sql=SqlReader(engine, redact(tracking_uri)) if engine is not None else None)

    @classmethod
    def open(cls, tracking_uri: str | None = None, *, experiments: list[str] | None = None,
             all_experiments: bool = False, filter_string: str | None = None, include_running: bool = False,
             workers: int = 8, create: bool = False) -> MlflowBackend:
        """Check the store (a missing sqlite file, a server that is not there: ConnectorError in
        seconds), choose its reader and resolve the experiments (``create``: make missing ones)."""
        # MLflow 3's own default; MLflow 2 would pick ./mlruns, a file store tracker-diag does not read fast
        uri = tracking_uri or settings.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
        where = redact(uri)
        if not create:
            _sqlite_must_exist(uri)
        if _is_http(uri):
            _probe(uri)
        statuses = set(ENDED) | ({"RUNNING"} if include_running else set())
        engine = engine_for(uri, where)
        sql = SqlReader(engine, where) if engine is not None else None
        backend = cls(uri, [], filter_string=filter_string or "", statuses=statuses, workers=workers, sql=sql)
        try:
            if sql is not None and not create:
                backend.experiment_ids = sql.experiments(experiments or [], all_experiments, _default_experiment())
            else:
                backend.experiment_ids = backend.guard.call(  # a cut answer is retried: it looks names up first
                    lambda: backend._resolve_experiments(experiments or [], all_experiments, create))
        except ImportError as exc:  # a database URI whose driver is not installed
            raise ConnectorError(f"the database driver for {where} is not installed: "
                                 f"pip install {exc.name or 'the driver'}") from exc
        except OSError as exc:  # connection refused and the like
            raise ConnectorError(f"cannot reach the MLflow store {where}: {exc}") from exc
        except _mlflow_error() as exc:  # evaluated only when something was raised
            raise ConnectorError(f"cannot open the MLflow store {where}: {exc.message}") from exc
        return backend

    @property
    def client(self):
        if self._client is None:
            self._client = _mlflow().tracking.MlflowClient(tracking_uri=self.uri)
        return self._client

    # -- set-up ---------------------------------------------------------------------------------

    def _safe_uri(self) -> str:
        """The URI without its userinfo (postgresql://user:secret@host/db -> postgresql://***@host/db)."""
        return redact(self.uri)

    def _call(self, what: str, fn, run_id: str | None = None, *, read: bool = True):
        """``fn()`` under the circuit breaker: a cut-off read is retried, errors translated;
        a network failure is marked transient (the batch re-plans and retries a write)."""
        try:
            with _translated(what, run_id):
                return self.guard.call(fn, retry_cut=read)
        except Unreachable:
            raise
        except ConnectorError as exc:
            kind = kind_of(exc.__cause__) if exc.__cause__ is not None else None
            exc.transient = exc.transient or kind is not None
            exc.limited = kind == "limited"
            raise

    def describe(self) -> str:
        return f"{self._safe_uri()} · experiment(s) {', '.join(self.experiment_ids)}"

    def links(self, regime: str) -> list[str]:
        """Where to look after a write: the runs table of each experiment filtered by ``regime``
        (a server URI: its own UI; a database URI: the `mlflow ui` line that serves it)."""
        from urllib.parse import quote

        flt = quote(f"tags.diag_regime = '{regime}'", safe="")
        if _is_http(self.uri):
            base, lines = strip_userinfo(self.uri).rstrip("/"), []
        else:
            base, lines = "http://127.0.0.1:5000", [f"mlflow ui --backend-store-uri {self._safe_uri()}   then open:"]
        return lines + [f"{base}/#/experiments/{e}/runs?searchFilter={flt}" for e in self.experiment_ids[:5]]

    def scope(self) -> str:
        """What a listing searched, for "no runs matched" (experiments, filter, statuses)."""
        return (f"experiment(s) {', '.join(self.experiment_ids)} of {self._safe_uri()}, statuses "
                f"{', '.join(sorted(self.statuses))}" + (f", filter {self.filter_string!r}" if self.filter_string else ""))

    def total(self) -> int | None:
        """How many runs the listing will yield, when one cheap query says so (the SQL path);
        None through the REST API, which has no count."""
        if self._sql is None or self.filter_string:
            return None
        return self._sql.total(self.experiment_ids, self.statuses)

    def close(self) -> None:
        """Release the database connections of the SQL path."""
        if self._sql is not None:
            self._sql.close()

    def _resolve_experiments(self, names: list[str], all_experiments: bool, create: bool) -> list[str]:
        if all_experiments:
            view = _mlflow().entities.ViewType.ACTIVE_ONLY
            return [e.experiment_id for e in self.client.search_experiments(view_type=view)]
        if not names:
            names = [_default_experiment()]
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

    # -- listing ----------------------------------------------------------------------------------

    def _search_pages(self) -> Iterator:
        view = _mlflow().entities.ViewType.ACTIVE_ONLY
        token, seen = None, set()
        while True:
            page = self._call(f"search_runs on {self._safe_uri()}", lambda t=token: self.client.search_runs(
                self.experiment_ids, self.filter_string, run_view_type=view, max_results=PAGE, page_token=t))
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
        if self._sql is not None and not self.filter_string:
            yield from self._sql.list_runs(self.experiment_ids, self.statuses, self._url)
            return
        for run in self._search_pages():
            if run.info.status not in self.statuses:
                continue
            latest = [(m.key, m.step, m.timestamp) for m in getattr(run.data, "_metric_objs", [])]
            yield RunRef(run_id=run.info.run_id, run_name=run.info.run_name or "", source="mlflow",
                         experiment=run.info.experiment_id, status=run.info.status,
                         tags={k: v for k, v in run.data.tags.items() if k in TAG_KEYS},
                         metric_keys=tuple(k for k in run.data.metrics if not k.startswith("diag_")),
                         checked=fingerprint(latest), url=self._url(run.info.experiment_id, run.info.run_id),
                         params=dict(run.data.params), extra={"diag_acc_gap": run.data.metrics.get("diag_acc_gap")})

    def _url(self, exp_id, run_id) -> str:
        if _is_http(self.uri):
            return f"{strip_userinfo(self.uri).rstrip('/')}/#/experiments/{exp_id}/runs/{run_id}"
        return ""

    # -- reading ----------------------------------------------------------------------------------

    def fetch(self, runs: list[RunRef], keys: dict[str, list[str]]) -> Iterator[Fetched]:
        """Histories of any runs of the store (listed or not), read by the URI's reader."""
        hist = self.reader.fetch(runs, keys)
        for ref in {r.run_id: r for r in runs}.values():
            yield ref, hist.get(ref.run_id, {})

    # -- writing ----------------------------------------------------------------------------------

    def write_many(self, items: list[tuple[RunRef, Diagnosis]]) -> list[tuple[Action, str]] | None:
        """On a database URI of a known schema: a page of diagnoses in SQL transactions with
        conditional writes (mlflow_sql.SqlReader.write_many); elsewhere None (the client, run by run)."""
        if self._sql is None:
            return None
        return self._sql.write_many(items, _note_limit())

    def state(self, run: RunRef) -> RunState:
        """Re-read just before writing (one get_run): a user's edit of the description since
        the listing is kept, and a run another tracker-diag wrote meanwhile plans to nothing."""
        fresh = self._call(f"re-reading run {run.run_id}", lambda: self.client.get_run(run.run_id), run.run_id)
        tags = {k: v for k, v in fresh.data.tags.items() if k in TAG_KEYS}
        return RunState(tags, fresh.data.tags.get(NOTE_TAG, ""), _note_limit(),
                        acc_gap_metric=fresh.data.metrics.get("diag_acc_gap"), has_metric=True)

    def apply(self, run: RunRef, state: RunState, patch: Patch, plot=None) -> None:
        """Make the run say the patch, ``diag_checked`` last.

        One log_batch when nothing is to be deleted (atomic in MLflow's stores); else the tags
        with ``diag_checked`` set to ``pending``, the deletes, then ``diag_checked``, so that a
        write cut off half-way leaves a run that is not current and the next pass finishes it.
        A new description is written only if the one read is still there one round trip
        before (else a transient error, and the batch re-plans from a fresh read)."""
        entities = _mlflow().entities
        tags = dict(patch.set)
        if patch.notes is not None:
            tags[NOTE_TAG] = patch.notes
        ts = int(time.time() * 1000)
        metrics = [entities.Metric("diag_acc_gap", float(patch.acc_gap), ts, 0)] if patch.acc_gap is not None else []
        checked = tags.pop("diag_checked", None) if patch.delete else None
        if patch.delete:
            tags["diag_checked"] = "pending"
        what, rid = f"writing to run {run.run_id}", run.run_id
        if plot is not None:  # first: a failed upload leaves the run as it was
            png = plot()
            self._call(what, lambda: self._attach(rid, png), rid, read=False)
        if patch.notes is not None:  # MLflow has no conditional write: check right before it
            now = self._call(f"re-reading run {rid}", lambda: self.client.get_run(rid), rid).data.tags.get(NOTE_TAG, "")
            if now != state.notes:
                raise ConnectorError(f"the description of run {rid} changed while it was being labelled; "
                                     "read again", rid, transient=True)
        self._call(what, lambda: self.client.log_batch(rid, metrics=metrics, tags=[entities.RunTag(k, v)
                                                                                    for k, v in tags.items()]),
                   rid, read=False)
        for key in patch.delete:
            self._call(what, lambda k=key: self.client.delete_tag(rid, k), rid, read=False)
        if patch.delete:
            self._call(what, lambda: self.client.set_tag(rid, "diag_checked", checked or state.keys.get("diag_checked",
                                                                                                        "")), rid,
                       read=False)

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


def _sqlite_must_exist(uri: str) -> None:
    """A missing sqlite file is an error, never a new empty store (MLflow would create one,
    and a dry run must create nothing); the hint covers the slash one too few."""
    if not uri.startswith("sqlite:///"):
        return
    raw = uri[len("sqlite:///"):].split("?", 1)[0]
    if not raw or raw == ":memory:" or os.path.exists(raw):
        return
    here = os.path.abspath(raw)
    hint = (f"; did you mean sqlite:////{raw}? (that file exists: four slashes for an absolute path)"
            if not raw.startswith("/") and os.path.exists("/" + raw) else
            "; sqlite:///x.db is relative to the working directory, sqlite:////abs/path/x.db absolute")
    raise ConnectorError(f"no MLflow store at {here} (from {redact(uri)}){hint}")



def _is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def _probe(uri: str) -> None:
    """One quick request before any real one: a server that is not there is exit 2 in
    seconds, with the URI it tried (any HTTP answer, even 401 or 404, means reachable)."""
    import requests  # mlflow's own dependency

    timeout = settings.get("TRACKER_DIAG_PROBE_TIMEOUT")
    for attempt in range(3):
        try:
            requests.get(uri.rstrip("/") + "/health", timeout=timeout)
            return
        except requests.RequestException as exc:
            if kind_of(exc) != "down":  # an answer, even one cut off: someone is there
                return
            if attempt == 2:
                raise Unreachable(f"cannot reach the MLflow server {redact(uri)}: {type(exc).__name__}; "
                                  "is it running, and is --tracking-uri right?") from exc
            time.sleep(0.5 * (attempt + 1))



def _default_experiment() -> str:
    return settings.get("MLFLOW_EXPERIMENT_NAME") or settings.get("MLFLOW_EXPERIMENT_ID") or "0"


def _reader(backend: MlflowBackend):
    """The one place a store's read path is chosen by its URI: SQL for a database whose schema
    the installed MLflow knows, the bulk endpoint of a tracking server, else the client."""
    if backend._sql is not None:
        return backend._sql
    if _is_http(backend.uri):
        return _BulkReader(backend)
    return _ClientReader(backend)


class _ClientReader:
    """One get_metric_history per run and key (it pages through long histories itself); a run
    whose read fails gets a ConnectorError as its entry and the others go on."""

    def __init__(self, backend: MlflowBackend):
        self.backend = backend

    def history(self, rid: str, key: str):
        """One run's whole history of ``key`` through the client (under the backend's breaker)."""
        b = self.backend
        return b._call(f"reading {key!r} of run {rid}", lambda: b.client.get_metric_history(rid, key), rid)

    def fetch(self, runs: list[RunRef], keys: dict[str, list[str]]) -> dict:
        def get(rid_key):
            rid, key = rid_key
            try:
                return rid, key, self.history(rid, key)
            except Unreachable:
                raise
            except ConnectorError as exc:
                return rid, key, exc

        out: dict[str, dict] = defaultdict(dict)
        failed: dict[str, ConnectorError] = {}
        jobs = [(r.run_id, k) for r in runs for k in keys.get(r.run_id, ())]
        with ThreadPoolExecutor(self.backend.workers) as pool:
            for rid, key, hist in pool.map(get, jobs):
                if isinstance(hist, ConnectorError):
                    failed[rid] = hist
                    continue
                out[rid][key] = (np.array([m.step for m in hist], float), np.array([m.value for m in hist], float))
        for rid, exc in failed.items():
            out[rid] = exc  # type: ignore[assignment]
        return out


class _BulkReader(_ClientReader):
    """get-history-bulk, one key and up to 100 runs per request, ``workers`` in flight. A
    request that fails is split until only the runs that truly fail are reported (their entry
    is a ConnectorError); a run with more points of a key than one answer holds is paged
    through get-history instead."""

    def fetch(self, runs: list[RunRef], keys: dict[str, list[str]]) -> dict:
        by_key: dict[str, list[str]] = defaultdict(list)
        for r in runs:
            for k in keys.get(r.run_id, ()):
                by_key[k].append(r.run_id)
        jobs = [(k, chunk) for k, ids in by_key.items() for chunk in chunked(ids, BULK_RUNS)]
        out: dict[str, dict] = defaultdict(dict)
        wanted = {r.run_id: set(keys.get(r.run_id, ())) for r in runs}
        failed: dict[str, ConnectorError] = {}
        with ThreadPoolExecutor(self.backend.workers) as pool:
            for rows, errors in pool.map(lambda job: self._get(*job), jobs):
                rows.sort(key=lambda r: r[0])  # the server answers one key: group by run, keep order
                collect(out, rows, wanted)
                failed.update(errors)
        for rid, exc in failed.items():
            out[rid] = exc  # type: ignore[assignment]  # this run alone failed
        return out

    def _request(self, key: str, ids: list[str]) -> list[dict]:
        from mlflow.utils.credentials import get_default_host_creds
        from mlflow.utils.rest_utils import http_request

        b = self.backend
        where = redact(b.uri)
        params = [("run_id", i) for i in ids] + [("metric_key", key), ("max_results", BULK_ROWS)]

        def once():
            resp = http_request(get_default_host_creds(b.uri), "/ajax-api/2.0/mlflow/metrics/get-history-bulk", "GET",
                                params=params, timeout=120)
            if resp.status_code != 200:
                raise ConnectorError(f"get-history-bulk answered HTTP {resp.status_code} on {where}")
            return resp.json().get("metrics", [])
        return b._call(f"get-history-bulk of {key!r} on {where}", once)

    def _halves(self, key: str, ids: list[str]) -> tuple[list[tuple], dict[str, ConnectorError]]:
        half = len(ids) // 2
        (a, ea), (b, eb) = self._get(key, ids[:half]), self._get(key, ids[half:])
        return a + b, {**ea, **eb}

    def _get(self, key: str, ids: list[str]) -> tuple[list[tuple], dict[str, ConnectorError]]:
        try:
            metrics = self._request(key, ids)
        except Unreachable:
            raise
        except ConnectorError as exc:
            if len(ids) == 1:
                return [], {ids[0]: ConnectorError(str(exc), ids[0])}
            return self._halves(key, ids)  # only the runs that truly fail are reported
        if len(metrics) < BULK_ROWS:
            return [(m["run_id"], key, m.get("step", 0), m.get("value"), 0) for m in metrics], {}
        if len(ids) > 1:  # cut by the server: split, and page through one run's history
            return self._halves(key, ids)
        try:
            hist = self.history(ids[0], key)
        except Unreachable:
            raise
        except ConnectorError as exc:
            return [], {ids[0]: exc}
        return [(ids[0], key, m.step, m.value, 0) for m in hist], {}


