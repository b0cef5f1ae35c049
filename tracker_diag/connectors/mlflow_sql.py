"""MLflow's own tables read in SQL: the run listing (the query texts the single-process path
and the Spark engine both run, and how their rows become RunRefs) and the bulk history read.

Read-only, and only when the store's alembic revision is the head of the installed mlflow's
migrations (:func:`schema_head`): a schema tracker-diag does not know is read through the client.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from tracker_diag.errors import ConnectorError, MissingExtraError
from tracker_diag.model import Action, Diagnosis, RunRef
from tracker_diag.writeback import TAG_KEYS, Patch, RunState, plan

try:  # cheap: the mlflow package itself is imported only when the client is needed
    import sqlalchemy as sa
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("mlflow", "mlflow") from exc

DB_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
NO_METRICS = "no-metrics"
# Ended runs, failed and killed ones too (a run that blew up often ends FAILED); RUNNING ones on request.
ENDED = ("FINISHED", "FAILED", "KILLED")
PAGE = 1000  # runs per listing page

# The run listing, one text for every engine. {experiments}: integer ids; {runs}: bind markers
# or a subquery of run ids. Only tracker-diag's own tags are listed (the description is read
# just before a write, never from the listing).
EXPERIMENTS = "SELECT experiment_id, name FROM experiments WHERE lifecycle_stage = 'active' ORDER BY experiment_id"
RUNS = ("SELECT run_uuid, name, status, experiment_id FROM runs "
        "WHERE experiment_id IN ({experiments}) AND lifecycle_stage = 'active'")
LATEST = "SELECT run_uuid, key, step, timestamp, value FROM latest_metrics WHERE run_uuid IN ({runs})"
DIAG_TAGS = "SELECT run_uuid, key, value FROM tags WHERE run_uuid IN ({runs}) AND SUBSTR(key, 1, 5) = 'diag_'"
NOTE_TAG = "mlflow.note.content"
# what a write reads first: every tag it may change
WRITTEN_TAGS = ("SELECT run_uuid, key, value FROM tags WHERE run_uuid IN ({runs}) "
                f"AND (SUBSTR(key, 1, 5) = 'diag_' OR key = '{NOTE_TAG}')")
WRITE_CHUNK = 200  # runs per write transaction (sqlite's write lock is held for a few ms)
CAS_TRIES = 3
PARAMS = "SELECT run_uuid, key, value FROM params WHERE run_uuid IN ({runs})"
# Every point of the runs' own metrics (the Spark engine's read; the single process reads only the keys it needs)
HISTORIES = ("SELECT run_uuid AS run_id, key, step, timestamp, value, is_nan FROM metrics "
             "WHERE run_uuid IN ({runs}) AND SUBSTR(key, 1, 5) <> 'diag_'")


def of_runs(experiment_ids) -> str:
    """The run ids of RUNS as a subquery (for ``{runs}``)."""
    return f"SELECT run_uuid FROM ({RUNS.format(experiments=', '.join(str(int(e)) for e in experiment_ids))}) r"


def refs(runs: Iterable, latest: Iterable, tags: Iterable, params: Iterable, statuses: set[str],
         url: Callable[[str, str], str] = lambda exp, rid: "") -> list[RunRef]:
    """RunRefs from the rows of RUNS, LATEST, DIAG_TAGS and PARAMS (any order within each)."""
    metrics: defaultdict[str, list] = defaultdict(list)
    gaps: dict[str, float] = {}
    for rid, key, step, ts, value in latest:
        metrics[rid].append((key, step, ts))
        if key == "diag_acc_gap":
            gaps[rid] = value
    diag: defaultdict[str, dict[str, str]] = defaultdict(dict)
    for rid, key, value in tags:
        diag[rid][key] = value
    run_params: defaultdict[str, dict[str, str]] = defaultdict(dict)
    for rid, key, value in params:
        run_params[rid][key] = value
    return [RunRef(run_id=rid, run_name=name or "", source="mlflow", experiment=str(exp_id), status=status,
                   tags=diag.get(rid, {}),
                   metric_keys=tuple(k for k, _, _ in metrics.get(rid, ()) if not k.startswith("diag_")),
                   checked=fingerprint(metrics.get(rid, [])), url=url(str(exp_id), rid),
                   params=run_params.get(rid, {}), extra={"diag_acc_gap": gaps.get(rid)})
            for rid, name, status, exp_id in runs if status in statuses]


def fingerprint(latest: list[tuple[str, float, float]]) -> str:
    """What the run's data looks like now: latest step and timestamp of its own metrics.

    tracker_diag's own metric (diag_acc_gap) is left out, or writing it would make the
    run look changed the next night.
    """
    mine = [(s, t) for k, s, t in latest if not k.startswith("diag_")]
    if not mine:
        return NO_METRICS
    return f"step={max(_int(s) for s, _ in mine)};ts={max(_int(t) for _, t in mine)};n={len(mine)}"


def _int(x) -> int:
    """An integer column as sqlite hands it back (numpy ints logged by users arrive as bytes)."""
    if isinstance(x, bytes | bytearray):
        return int.from_bytes(x[:8], "little", signed=True)
    return int(x or 0)


def schema_head() -> str | None:
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


def engine_for(uri: str, where: str):
    """A read-only SQL path when the store is a database the installed MLflow's schema matches,
    else None (the client decides). A database server that cannot be reached at all is a
    ConnectorError here, in one line, not a driver's traceback later."""
    if uri.split(":", 1)[0].split("+", 1)[0] not in DB_SCHEMES:
        return None
    try:
        engine = sa.create_engine(uri)
        con = engine.connect()
    except ImportError as exc:
        raise ConnectorError(f"the database driver for {where} is not installed: "
                             f"pip install {exc.name or 'the driver'}") from exc
    except sa.exc.SQLAlchemyError as exc:
        reason = " ".join(str(getattr(exc, "orig", exc)).split())[:300]
        raise ConnectorError(f"cannot reach the MLflow database {where}: {reason}") from exc
    try:
        with con:
            rev = con.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    except sa.exc.SQLAlchemyError:
        return None  # no MLflow tables yet, or not readable: the client decides
    return engine if rev is not None and rev == schema_head() else None


class SqlReader:
    """The SQL path: keyset-paged listing, counts, experiment names and histories in bulk, and
    (:meth:`write_many`) the diagnoses of a page of runs in conditional transactions."""

    def __init__(self, engine, where: str):
        self.engine, self.where = engine, where
        self._write_engine = None

    def close(self) -> None:
        self.engine.dispose()
        if self._write_engine is not None:
            self._write_engine.dispose()

    def total(self, experiment_ids: list[str], statuses: set[str]) -> int | None:
        """How many runs the listing will yield (one COUNT); None if the query fails."""
        exp = ", ".join(str(int(e)) for e in experiment_ids)
        sts = ", ".join(f":s{i}" for i in range(len(statuses)))
        try:
            with self.engine.connect() as con:
                return int(con.execute(sa.text(f"SELECT COUNT(*) FROM ({RUNS.format(experiments=exp)}) r "
                                               f"WHERE status IN ({sts})"),
                                       {f"s{i}": s for i, s in enumerate(sorted(statuses))}).scalar_one())
        except sa.exc.SQLAlchemyError:
            return None  # a progress bar without its total; the listing reports real errors

    def list_runs(self, experiment_ids: list[str], statuses: set[str], url) -> Iterator[RunRef]:
        """Keyset-paged by run id: one page of RUNS, then its LATEST, DIAG_TAGS and PARAMS."""
        last = ""
        runs = RUNS.format(experiments=", ".join(str(int(e)) for e in experiment_ids))
        while True:
            with self.engine.connect() as con:
                rows = con.execute(sa.text(f"{runs} AND run_uuid > :last ORDER BY run_uuid LIMIT :n"),
                                   {"last": last, "n": PAGE}).fetchall()
                if not rows:
                    return
                ids = [r[0] for r in rows if r[2] in statuses]
                latest, tags, params = [], [], []
                for chunk in chunked(ids, 500):
                    bind = {f"r{i}": r for i, r in enumerate(chunk)}
                    inn = ", ".join(f":r{i}" for i in range(len(chunk)))
                    latest += con.execute(sa.text(LATEST.format(runs=inn)), bind).fetchall()
                    tags += con.execute(sa.text(DIAG_TAGS.format(runs=inn)), bind).fetchall()
                    params += con.execute(sa.text(PARAMS.format(runs=inn)), bind).fetchall()
            yield from refs(rows, latest, tags, params, statuses, url)
            last = rows[-1][0]

    def experiments(self, names: list[str], all_experiments: bool, default: str) -> list[str]:
        with self.engine.connect() as con:
            rows = con.execute(sa.text(EXPERIMENTS)).fetchall()
        by_name = {name: str(eid) for eid, name in rows}
        if all_experiments:
            return [str(eid) for eid, _ in rows]
        if not names:
            names = [default]
        ids = []
        for name in names:
            if name in by_name:
                ids.append(by_name[name])
            elif name in by_name.values():
                ids.append(name)
            else:
                known = ", ".join(repr(n) for _, n in rows[:20])
                raise ConnectorError(f"no experiment named or numbered {name!r} in {self.where}; "
                                     f"experiments there: {known or 'none'}")
        return ids

    def fetch(self, runs: list[RunRef], keys: dict[str, list[str]]) -> dict:
        """One query per 400 runs through the raw DB-API cursor (plain tuples, no Row objects)."""
        wanted = {r.run_id: set(keys.get(r.run_id, ())) for r in runs}
        all_keys = sorted(set().union(*wanted.values())) if wanted else []
        out: dict[str, dict] = defaultdict(dict)
        if not all_keys:
            return out
        mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        # SQLite would pick the (key, ...) primary key and scan every run's history for each
        # page; "+key" makes it search index_metrics_run_uuid_key_step by run instead.
        key_col = "+key" if self.engine.dialect.name == "sqlite" else "key"
        try:
            raw = self.engine.raw_connection()
            try:
                cur = raw.cursor()
                for chunk in chunked(list(wanted), 400):
                    where = (f"WHERE run_uuid IN ({', '.join([mark] * len(chunk))}) "
                             f"AND {key_col} IN ({', '.join([mark] * len(all_keys))}) ")
                    if self.engine.dialect.name == "sqlite" and collect_numeric(out, cur, where, (*chunk, *all_keys),
                                                                                   wanted):
                        continue
                    cur.execute(f"SELECT run_uuid, key, step, value, is_nan FROM metrics {where}"
                                "ORDER BY run_uuid, key, step, timestamp", (*chunk, *all_keys))
                    collect(out, cur.fetchall(), wanted)
                cur.close()
            finally:
                raw.close()
        except (sa.exc.SQLAlchemyError, self.engine.dialect.loaded_dbapi.Error) as exc:
            raise ConnectorError(f"reading metric histories from {self.where} failed: {exc}") from exc
        return out



    # -- writing: what MLflow's store writes for the same calls, in one transaction a chunk ----------

    def write_many(self, items: list[tuple[RunRef, Diagnosis]], note_limit: int) -> list[tuple[Action, str]]:
        """(action, error) per item, in order: each run's state read, its patch planned
        (writeback.plan) and applied in one transaction per chunk of runs. Conditional: a value
        is replaced or deleted only where it is still the one the plan was read from (the
        ``WHERE value = :old`` of each UPDATE and DELETE), a tag is inserted only where none
        is; a chunk that finds a run changed under it rolls back and is planned again from a
        fresh read. On sqlite the transaction holds the write lock from its first read (BEGIN
        IMMEDIATE). A deleted run is never touched. ConnectorError (transient when the database
        was busy or the runs kept changing) if a chunk cannot be written."""
        out: list[tuple[Action, str]] = []
        for chunk in chunked(items, WRITE_CHUNK):
            for attempt in range(1, CAS_TRIES + 1):
                try:
                    out += self._write_chunk(chunk, note_limit)
                    break
                except _Changed:
                    if attempt == CAS_TRIES:
                        raise ConnectorError(f"runs kept changing while they were labelled in {self.where}; "
                                             "read again", transient=True) from None
                except sa.exc.OperationalError as exc:  # locked or busy: worth another pass of the batch
                    raise ConnectorError(f"writing to {self.where} failed: {exc.orig}", transient=True) from exc
                except sa.exc.SQLAlchemyError as exc:
                    raise ConnectorError(f"writing to {self.where} failed: {exc}") from exc
        return out

    def _writer(self):
        """The engine writes go through: on sqlite one whose transactions begin IMMEDIATE (the
        write lock before the first read; pysqlite's own deferred BEGIN off, as SQLAlchemy's
        documentation recommends); elsewhere the reading engine."""
        if self.engine.dialect.name != "sqlite":
            return self.engine
        if self._write_engine is None:
            engine = sa.create_engine(self.engine.url)

            @sa.event.listens_for(engine, "connect")
            def _connect(dbapi_connection, _record):
                dbapi_connection.isolation_level = None

            @sa.event.listens_for(engine, "begin")
            def _begin(conn):
                conn.exec_driver_sql("BEGIN IMMEDIATE")

            self._write_engine = engine
        return self._write_engine

    def _write_chunk(self, chunk: list[tuple[RunRef, Diagnosis]], note_limit: int) -> list[tuple[Action, str]]:
        ids = [ref.run_id for ref, _ in chunk]
        bind = {f"r{i}": r for i, r in enumerate(ids)}
        inn = ", ".join(f":r{i}" for i in range(len(ids)))
        try:
            with self._writer().begin() as con:  # commits at the end, rolls back on any exception
                active = {r: stage for r, stage in con.execute(sa.text(
                    f"SELECT run_uuid, lifecycle_stage FROM runs WHERE run_uuid IN ({inn})"), bind)}
                tags: dict[str, dict[str, str]] = defaultdict(dict)
                for rid, key, value in con.execute(sa.text(WRITTEN_TAGS.format(runs=inn)), bind):
                    tags[rid][key] = value
                gaps = {rid: math.nan if is_nan else value for rid, value, is_nan in con.execute(sa.text(
                    f"SELECT run_uuid, value, is_nan FROM latest_metrics WHERE key = 'diag_acc_gap' "
                    f"AND run_uuid IN ({inn})"), bind)}
                out: list[tuple[Action, str]] = []
                ts = int(time.time() * 1000)
                for ref, diag in chunk:
                    if active.get(ref.run_id) != "active":
                        out.append(("failed", f"run {ref.run_id} is deleted (or gone): nothing was written to it"))
                        continue
                    have = tags.get(ref.run_id, {})
                    state = RunState({k: v for k, v in have.items() if k in TAG_KEYS}, have.get(NOTE_TAG, ""),
                                     note_limit, acc_gap_metric=gaps.get(ref.run_id), has_metric=True)
                    patch = plan(state, diag, ref.checked)
                    if patch:
                        _apply(con, ref.run_id, have, patch, ts)
                    out.append(("written" if patch else "unchanged", ""))
                return out
        except sa.exc.IntegrityError as exc:  # a tag inserted by someone else meanwhile (its primary key)
            raise _Changed(str(exc)) from exc


# typed binds: PostgreSQL cannot infer the type of a bare parameter in a SELECT list
_INSERT_TAG = sa.text("INSERT INTO tags (key, value, run_uuid) SELECT :k, :v, :r WHERE NOT EXISTS "
                      "(SELECT 1 FROM tags WHERE run_uuid = :r AND key = :k)").bindparams(
    sa.bindparam("k", type_=sa.String), sa.bindparam("v", type_=sa.String), sa.bindparam("r", type_=sa.String))


class _Changed(Exception):
    """A value was not the one the plan was read from: the chunk is rolled back and re-planned."""


def _apply(con, rid: str, have: dict[str, str], patch: Patch, ts: int) -> None:
    """One run's patch as MLflow's store writes it: tags upserted, stale ones deleted, the gap
    metric appended to ``metrics`` and ``latest_metrics`` moved if it is more recent (step,
    timestamp, value), NaN as value 0 with is_nan. Every change conditional on what was read."""
    new = dict(patch.set)
    if patch.notes is not None:
        new[NOTE_TAG] = patch.notes
    for key, value in new.items():
        if key in have:
            done = con.execute(sa.text("UPDATE tags SET value = :v WHERE run_uuid = :r AND key = :k AND value = :old"),
                               {"v": value, "r": rid, "k": key, "old": have[key]}).rowcount
        else:  # only where there is none: one inserted meanwhile is a conflict (here, or its primary key)
            done = con.execute(_INSERT_TAG, {"k": key, "v": value, "r": rid}).rowcount
        if done != 1:
            raise _Changed(rid)
    for key in patch.delete:
        if con.execute(sa.text("DELETE FROM tags WHERE run_uuid = :r AND key = :k AND value = :old"),
                       {"r": rid, "k": key, "old": have[key]}).rowcount != 1:
            raise _Changed(rid)
    if patch.acc_gap is not None:
        is_nan = math.isnan(patch.acc_gap)
        gap = 0.0 if is_nan else float(patch.acc_gap)
        row = {"k": "diag_acc_gap", "v": gap, "t": ts, "r": rid, "s": 0, "n": is_nan}
        exists = con.execute(sa.text("SELECT 1 FROM metrics WHERE key = :k AND timestamp = :t AND step = :s "
                                     "AND run_uuid = :r AND value = :v AND is_nan = :n"), row).first()
        if exists is None:  # MLflow drops a point identical to one it has
            con.execute(sa.text("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
                                "VALUES (:k, :v, :t, :r, :s, :n)"), row)
        latest = con.execute(sa.text("SELECT step, timestamp, value FROM latest_metrics WHERE key = :k "
                                     "AND run_uuid = :r"), row).first()
        if latest is None:
            con.execute(sa.text("INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
                                "VALUES (:k, :v, :t, :s, :n, :r)"), row)
        elif (0, ts, gap) > (_int(latest[0]), _int(latest[1]), float(latest[2])):
            con.execute(sa.text("UPDATE latest_metrics SET value = :v, timestamp = :t, step = :s, is_nan = :n "
                                "WHERE key = :k AND run_uuid = :r"), row)


def chunked(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def collect_numeric(out: dict, cur, where: str, params: tuple, wanted: dict[str, set]) -> bool:
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


def collect(out: dict, rows, wanted: dict[str, set]) -> None:
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
