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

from tracker_diag import settings
from tracker_diag.connectors.guard import Guard, kind_of
from tracker_diag.errors import ConnectorError, MissingExtraError, Unreachable, need
from tracker_diag.model import RunRef
from tracker_diag.text import redact, strip_userinfo
from tracker_diag.tracker import Fetched
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
    except OSError as exc:
        raise ConnectorError(f"{what} failed: {exc}", run_id) from exc


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

def _note_limit() -> int:
    """The longest tag value the installed MLflow accepts: 8000 in 3.x, 5000 in 2.x."""
    return min(NOTE_LIMIT, int(getattr(need("mlflow.utils.validation", "mlflow"), "MAX_TAG_VAL_LENGTH", NOTE_LIMIT)))


DEFAULT_URI = "sqlite:///mlflow.db"
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
        return NO_METRICS
    return fingerprint(max(_int(s) for s, _ in mine), max(_int(t) for _, t in mine), len(mine))


NO_METRICS = "no-metrics"


def fingerprint(step, timestamp, n) -> str:
    """The text of a fingerprint: latest step, latest timestamp, how many keys (the Spark
    engine computes the three in SQL and formats them here too)."""
    return f"step={int(step)};ts={int(timestamp)};n={int(n)}"


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
        # MLflow 3's own default; MLflow 2 would pick ./mlruns, a file store tracker-diag does not read fast
        self.uri = tracking_uri or settings.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
        self.filter_string = filter_string or ""
        # Ended runs, failed and killed ones too (a run that blew up often ends FAILED); RUNNING ones on request.
        self.statuses = {"FINISHED", "FAILED", "KILLED"} | ({"RUNNING"} if include_running else set())
        self.workers = workers
        self._client = None
        self.warnings: list[str] = []
        self.guard = Guard(self._safe_uri())
        if not create:
            self._sqlite_must_exist()
        if self._is_http():
            self._probe()
        self._engine = self._sql_engine()
        try:
            if self._engine is not None and not create:
                self.experiment_ids = self._resolve_experiments_sql(experiments or [], all_experiments)
            else:
                self.experiment_ids = self.guard.call(  # a cut answer is retried: it looks names up first
                    lambda: self._resolve_experiments(experiments or [], all_experiments, create))
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
        """The URI without its userinfo (postgresql://user:secret@host/db -> postgresql://***@host/db)."""
        return redact(self.uri)

    def _sqlite_must_exist(self) -> None:
        """A missing sqlite file is an error, never a new empty store (MLflow would create one,
        and a dry run must create nothing); the hint covers the slash one too few."""
        if not self.uri.startswith("sqlite:///"):
            return
        raw = self.uri[len("sqlite:///"):].split("?", 1)[0]
        if not raw or raw == ":memory:" or os.path.exists(raw):
            return
        here = os.path.abspath(raw)
        hint = (f"; did you mean sqlite:////{raw}? (that file exists: four slashes for an absolute path)"
                if not raw.startswith("/") and os.path.exists("/" + raw) else
                "; sqlite:///x.db is relative to the working directory, sqlite:////abs/path/x.db absolute")
        raise ConnectorError(f"no MLflow store at {here} (from {self._safe_uri()}){hint}")

    def _is_http(self) -> bool:
        return self.uri.startswith(("http://", "https://"))

    def _probe(self) -> None:
        """One quick request before any real one: a server that is not there is exit 2 in
        seconds, with the URI it tried (any HTTP answer, even 401 or 404, means reachable)."""
        import requests  # mlflow's own dependency

        timeout = settings.get("TRACKER_DIAG_PROBE_TIMEOUT")
        for attempt in range(3):
            try:
                requests.get(self.uri.rstrip("/") + "/health", timeout=timeout)
                return
            except requests.RequestException as exc:
                if kind_of(exc) != "down":  # an answer, even one cut off: someone is there
                    return
                if attempt == 2:
                    raise Unreachable(f"cannot reach the MLflow server {self._safe_uri()}: {type(exc).__name__}; "
                                      "is it running, and is --tracking-uri right?") from exc
                time.sleep(0.5 * (attempt + 1))

    def _call(self, what: str, fn, run_id: str | None = None, *, read: bool = True):
        """``fn()`` under the circuit breaker: a cut-off read is retried, errors translated;
        a network failure is marked transient (the batch re-plans and retries a write)."""
        try:
            with _translated(what, run_id):
                return self.guard.call(fn, retry_cut=read)
        except Unreachable:
            raise
        except ConnectorError as exc:
            if exc.__cause__ is not None and kind_of(exc.__cause__):
                exc.transient = True
            raise

    def describe(self) -> str:
        return f"{self._safe_uri()} · experiment(s) {', '.join(self.experiment_ids)}"

    def links(self, regime: str) -> list[str]:
        """Where to look after a write: the runs table of each experiment filtered by ``regime``
        (a server URI: its own UI; a database URI: the `mlflow ui` line that serves it)."""
        from urllib.parse import quote

        flt = quote(f"tags.diag_regime = '{regime}'", safe="")
        if self._is_http():
            base, lines = strip_userinfo(self.uri).rstrip("/"), []
        else:
            base, lines = "http://127.0.0.1:5000", [f"mlflow ui --backend-store-uri {self._safe_uri()}   then open:"]
        return lines + [f"{base}/#/experiments/{e}/runs?searchFilter={flt}" for e in self.experiment_ids[:5]]

    def mark_model_training(self) -> None:
        """Tag the (demo's own) experiments as model training, so MLflow 3's UI opens them on
        the runs table instead of the GenAI overview."""
        for e in self.experiment_ids:
            self._call(f"tagging experiment {e}", lambda e=e: self.client.set_experiment_tag(
                e, "mlflow.experimentKind", "custom_model_development"))

    def scope(self) -> str:
        """What a listing searched, for "no runs matched" (experiments, filter, statuses)."""
        return (f"experiment(s) {', '.join(self.experiment_ids)} of {self._safe_uri()}, statuses "
                f"{', '.join(sorted(self.statuses))}" + (f", filter {self.filter_string!r}" if self.filter_string else ""))

    def total(self) -> int | None:
        """How many runs the listing will yield, when one cheap query says so (the SQL fast path);
        None through the REST API, which has no count."""
        if self._engine is None or self.filter_string:
            return None
        exp = ", ".join(f":e{i}" for i in range(len(self.experiment_ids)))
        sts = ", ".join(f":s{i}" for i in range(len(self.statuses)))
        bind = {**{f"e{i}": int(e) for i, e in enumerate(self.experiment_ids)},
                **{f"s{i}": s for i, s in enumerate(sorted(self.statuses))}}
        try:
            with self._engine.connect() as con:
                return int(con.execute(sa.text(
                    f"SELECT COUNT(*) FROM runs WHERE experiment_id IN ({exp}) AND lifecycle_stage = 'active' "
                    f"AND status IN ({sts})"), bind).scalar_one())
        except sa.exc.SQLAlchemyError:
            return None  # a progress bar without its total; the listing reports real errors

    def close(self) -> None:
        """Release the database connections of the SQL fast path."""
        if self._engine is not None:
            self._engine.dispose()

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

    def _resolve_experiments_sql(self, names: list[str], all_experiments: bool) -> list[str]:
        with self._engine.connect() as con:
            rows = con.execute(sa.text("SELECT experiment_id, name FROM experiments "
                                       "WHERE lifecycle_stage = 'active' ORDER BY experiment_id")).fetchall()
        by_name = {name: str(eid) for eid, name in rows}
        if all_experiments:
            return [str(eid) for eid, _ in rows]
        if not names:
            names = [_default_experiment()]
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
        if self._is_http():
            return f"{strip_userinfo(self.uri).rstrip('/')}/#/experiments/{exp_id}/runs/{run_id}"
        return ""

    # -- reading ----------------------------------------------------------------------------------

    def fetch(self, runs: list[RunRef], keys: dict[str, list[str]]) -> Iterator[Fetched]:
        if self._engine is not None:
            reader = self._fetch_sql
        elif self._is_http():
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
                    where = (f"WHERE run_uuid IN ({', '.join([mark] * len(chunk))}) "
                             f"AND {key_col} IN ({', '.join([mark] * len(all_keys))}) ")
                    if self._engine.dialect.name == "sqlite" and _collect_numeric(out, cur, where, (*chunk, *all_keys),
                                                                                   wanted):
                        continue
                    cur.execute(f"SELECT run_uuid, key, step, value, is_nan FROM metrics {where}"
                                "ORDER BY run_uuid, key, step, timestamp", (*chunk, *all_keys))
                    _collect(out, cur.fetchall(), wanted)
                cur.close()
            finally:
                raw.close()
        except (sa.exc.SQLAlchemyError, self._engine.dialect.loaded_dbapi.Error) as exc:
            raise ConnectorError(f"reading metric histories from {self._safe_uri()} failed: {exc}") from exc
        return out

    def _fetch_bulk(self, runs, keys) -> dict:
        """get-history-bulk, one key and up to 100 runs per request, 8 in flight. A request
        that fails is split until only the runs that truly fail are reported (their entry is
        a ConnectorError); a run with more points of a key than one answer holds is paged
        through get-history instead."""
        from mlflow.utils.credentials import get_default_host_creds
        from mlflow.utils.rest_utils import http_request

        creds = get_default_host_creds(self.uri)
        by_key: dict[str, list[str]] = defaultdict(list)
        for r in runs:
            for k in keys.get(r.run_id, ()):
                by_key[k].append(r.run_id)
        jobs = [(k, chunk) for k, ids in by_key.items() for chunk in _chunked(ids, BULK_RUNS)]

        def request(key: str, ids: list[str]) -> list[dict]:
            params = [("run_id", i) for i in ids] + [("metric_key", key), ("max_results", BULK_ROWS)]

            def once():
                resp = http_request(creds, "/ajax-api/2.0/mlflow/metrics/get-history-bulk", "GET", params=params,
                                    timeout=120)
                if resp.status_code != 200:
                    raise ConnectorError(f"get-history-bulk answered HTTP {resp.status_code} on {self._safe_uri()}")
                return resp.json().get("metrics", [])
            return self._call(f"get-history-bulk of {key!r} on {self._safe_uri()}", once)

        def halves(key: str, ids: list[str]) -> tuple[list[tuple], dict[str, ConnectorError]]:
            half = len(ids) // 2
            (a, ea), (b, eb) = get(key, ids[:half]), get(key, ids[half:])
            return a + b, {**ea, **eb}

        def get(key: str, ids: list[str]) -> tuple[list[tuple], dict[str, ConnectorError]]:
            try:
                metrics = request(key, ids)
            except Unreachable:
                raise
            except ConnectorError as exc:
                if len(ids) == 1:
                    return [], {ids[0]: ConnectorError(str(exc), ids[0])}
                return halves(key, ids)  # only the runs that truly fail are reported
            if len(metrics) >= BULK_ROWS:  # cut by the server: split, and page through one run's history
                if len(ids) > 1:
                    return halves(key, ids)
                try:
                    hist = self._call(f"reading {key!r} of run {ids[0]}",
                                      lambda: self.client.get_metric_history(ids[0], key), ids[0])
                except Unreachable:
                    raise
                except ConnectorError as exc:
                    return [], {ids[0]: exc}
                return [(ids[0], key, m.step, m.value, 0) for m in hist], {}
            return [(m["run_id"], key, m.get("step", 0), m.get("value"), 0) for m in metrics], {}

        out: dict[str, dict] = defaultdict(dict)
        wanted = {r.run_id: set(keys.get(r.run_id, ())) for r in runs}
        failed: dict[str, ConnectorError] = {}
        with ThreadPoolExecutor(self.workers) as pool:
            for rows, errors in pool.map(lambda job: get(*job), jobs):
                rows.sort(key=lambda r: r[0])  # the server answers one key: group by run, keep order
                _collect(out, rows, wanted)
                failed.update(errors)
        for rid, exc in failed.items():
            out[rid] = exc  # type: ignore[assignment]  # this run alone failed
        return out

    def _fetch_client(self, runs, keys) -> dict:
        """One get_metric_history per run and key (pages through long histories itself); a run
        whose read fails gets a ConnectorError as its entry and the others go on."""
        def get(rid_key):
            rid, key = rid_key
            try:
                return rid, key, self._call(f"reading {key!r} of run {rid}",
                                            lambda: self.client.get_metric_history(rid, key), rid)
            except Unreachable:
                raise
            except ConnectorError as exc:
                return rid, key, exc

        out: dict[str, dict] = defaultdict(dict)
        failed: dict[str, ConnectorError] = {}
        jobs = [(r.run_id, k) for r in runs for k in keys.get(r.run_id, ())]
        with ThreadPoolExecutor(self.workers) as pool:
            for rid, key, hist in pool.map(get, jobs):
                if isinstance(hist, ConnectorError):
                    failed[rid] = hist
                    continue
                out[rid][key] = (np.array([m.step for m in hist], float), np.array([m.value for m in hist], float))
        for rid, exc in failed.items():
            out[rid] = exc  # type: ignore[assignment]
        return out

    # -- writing ----------------------------------------------------------------------------------

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


def _default_experiment() -> str:
    return settings.get("MLFLOW_EXPERIMENT_NAME") or settings.get("MLFLOW_EXPERIMENT_ID") or "0"


def _chunked(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _collect_numeric(out: dict, cur, where: str, params: tuple, wanted: dict[str, set]) -> bool:
    """The histories of a chunk as two reads in one sqlite read transaction (one snapshot):
    the (run, key) groups with their sizes, then only the numbers (step, value, is_nan) in
    the same order. Four numbers a row instead of two strings and three numbers, in the
    index's order (no sort in SQL), one numpy conversion. False (nothing added) if the numbers are not
    plain (numpy ints logged as blobs): the caller reads the chunk the general way."""
    cur.execute("BEGIN")
    try:
        cur.execute(f"SELECT run_uuid, key, COUNT(*) FROM metrics {where}GROUP BY run_uuid, key "
                    "ORDER BY run_uuid, key", params)
        groups = cur.fetchall()
        # the index's own order (no sort): points of one step are put in timestamp order below
        cur.execute(f"SELECT step, value, is_nan, timestamp FROM metrics {where}ORDER BY run_uuid, key, step", params)
        rows = cur.fetchall()
    finally:
        cur.execute("COMMIT")
    try:
        table = np.array(rows, dtype=float).reshape(-1, 4)
    except (TypeError, ValueError):
        return False
    sizes = np.array([n for _, _, n in groups], dtype=np.int64)
    if int(sizes.sum()) != len(table):  # cannot happen in one snapshot; never misalign
        return False
    group = np.repeat(np.arange(len(sizes)), sizes)
    table = table[np.lexsort((table[:, 3], table[:, 0], group))]  # by group, step, timestamp (stable)
    steps, values = table[:, 0], table[:, 1]
    values[table[:, 2] != 0] = math.nan  # NaN is stored as value=0, is_nan=1
    at = 0
    for rid, key, n in groups:
        if key in wanted.get(rid, ()):
            out[rid][key] = (steps[at:at + n], values[at:at + n])
        at += n
    return True


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
