"""W&B online: the public API through the real SDK (listing, sampled histories, writes).

Offline ``.wandb`` files are read by :mod:`tracker_diag.connectors.wandb_offline`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from tracker_diag import settings
from tracker_diag.connectors.guard import Guard, bounded, kind_of
from tracker_diag.connectors.wandb_offline import StepAxes
from tracker_diag.errors import ConnectorError, Unreachable, need
from tracker_diag.model import RunRef
from tracker_diag.text import redact
from tracker_diag.tracker import Fetched
from tracker_diag.writeback import TAG_KEYS, Patch, RunState

_HISTORY = """
query RunSampledHistory($project: String!, $entity: String!, $name: String!, $specs: [JSONString!]!) {
    project(name: $project, entityName: $entity) {
        run(name: $name) { sampledHistory(specs: $specs) }
    }
}
"""
SAMPLES = 1000  # points per key and run; W&B samples longer histories down
_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _value(v) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str) and v in _SPECIAL:
        return _SPECIAL[v]
    return None


class WandbBackend:
    """Runs of one W&B project: listing through ``Api().runs`` (one request per page), every
    key's history of a run in one ``sampledHistory`` request with one spec per key.

    A multi-key spec returns only rows holding every key, so train and eval metrics logged
    in separate ``log()`` calls would come back empty together: each key is its own spec,
    and a key that returns nothing is missing, never healthy.
    """

    source = "wandb"

    def __init__(self, path: str, *, filters: dict | None = None, include_running: bool = False,
                 per_page: int = 200, timeout: int = 60, workers: int = 4):
        wandb = need("wandb", "wandb")
        if path.count("/") != 1:
            raise ConnectorError(f"expected ENTITY/PROJECT, got {path!r}")
        self.path = path
        self.entity, self.project = path.split("/")
        self.filters = filters or {}
        # Ended runs, crashed and failed ones too (a run that blew up often ends so); running ones on request.
        self.states = {"finished", "failed", "crashed", "killed"} | ({"running"} if include_running else set())
        self.per_page = per_page
        self.warnings: list[str] = []
        self.workers = max(1, workers)
        self.base_url = settings.get("WANDB_BASE_URL")
        _check_reachable(self.base_url)
        # every SDK call under one circuit breaker and a deadline: the SDK's own retry loop
        # would wait a minute per call on a server that is gone
        self.guard = Guard(f"the W&B server {redact(self.base_url)}", budget=settings.get("TRACKER_DIAG_RETRY_BUDGET"))
        self.call_timeout = settings.get("TRACKER_DIAG_CALL_TIMEOUT")
        try:  # the SDK's retries stop at the Api timeout; a generous one lets them honour Retry-After
            self.api = self._guarded(lambda: wandb.Api(timeout=timeout))
        except (ValueError, *wandb_errors()) as exc:  # no API key, rejected key, unknown entity
            raise ConnectorError(f"W&B: {exc}") from exc
        self._runs: dict[str, Any] = {}
        self._axes: dict[str, StepAxes] = {}
        self._counts: dict[str, dict[str, int]] = {}  # run -> numeric rows per history key, when W&B says
        self._requests: Any = None  # a Run whose client sends our own queries (they name their run)

    def describe(self) -> str:
        return self.path

    def write_many(self, items) -> None:
        """W&B has no transaction over runs: written run by run (state, apply)."""

    def _guarded(self, fn, read: bool = True):
        """``fn()`` (SDK calls) under the deadline and the breaker: Unreachable once the server is gone."""
        return self.guard.call(lambda: bounded(fn, self.call_timeout, lambda: _answers(self.base_url),
                                               self.guard.budget), retry_cut=read)

    def _call(self, what: str, fn, run_id: str | None = None, *, read: bool = True):
        """One SDK call, guarded; the SDK's errors become a ConnectorError saying what failed
        (transient when the network failed, so the batch re-plans a write)."""
        try:
            return self._guarded(fn, read)
        except Unreachable:
            raise
        except (ValueError, TimeoutError, *wandb_errors()) as exc:
            kind = kind_of(exc)
            raise ConnectorError(f"{what} failed: {exc}", run_id, transient=kind is not None,
                                 limited=kind == "limited") from exc

    def links(self, regime: str) -> list[str]:
        """The W&B UI filters by tag in the runs table; its URL keeps no filter: say what to click."""
        return [f"In the W&B UI: the runs table of {self.path}, filter Tags = {regime}"]

    def scope(self) -> str:
        """What a listing searched, for "no runs matched" (project, states, filter)."""
        return (f"project {self.path}, states {', '.join(sorted(self.states))}"
                + (f", filter {json.dumps(self.filters)}" if self.filters else ""))

    def close(self) -> None:
        """Drop the listed runs kept for their history requests."""
        self._runs.clear()

    def total(self) -> None:
        """Unknown before the listing (a count would cost a query per filter); the bar counts up."""

    def list_runs(self) -> Iterator:
        runs = self._call(f"listing {self.path}", lambda: self.api.runs(self.path, filters=self.filters,
                                                                         per_page=self.per_page, lazy=False))
        pages = iter(runs)
        metric_defs: dict = {}

        def next_run():
            at = runs.index  # the paginator counts a run before it loads the page: a retry must not skip one
            try:
                return next(pages, None)
            except BaseException:
                runs.index = at
                raise

        while (run := self._call(f"listing {self.path}", next_run)) is not None:
            with _translated(f"listing {self.path}"):
                if run.id not in metric_defs:  # a new page came in
                    metric_defs = _metric_definitions(runs.last_response)
                if 0 <= runs.index < len(runs.objects):
                    runs.objects[runs.index] = None  # the paginator keeps every run: stream, keep memory flat
                if run.state not in self.states:
                    continue
                summary = dict(run.summary)
                self._runs[run.id] = run
                self._requests = self._requests or run
                self._axes[run.id] = StepAxes.from_config(
                    metric_defs.get(run.id) or (run.rawconfig.get("_wandb") or {}).get("m"))
                history_keys = _history_keys(run._attrs)
                counts = _history_counts(history_keys)
                self._counts[run.id] = counts
                keys = tuple(dict.fromkeys(k for k in [*_numeric_keys(summary), *counts]
                                           if not k.startswith(("_", "diag_"))))
                # the fingerprint: history rows and last step. Not heartbeatAt: a write may move it, and
                # every run would be relabelled every night for the label's own sake.
                ref = RunRef(run_id=run.id, run_name=run.name or run.id, source="wandb", experiment=self.path,
                             status=str(run.state).upper(),
                             tags={k: _as_text(k, summary[k]) for k in TAG_KEYS if k in summary}, metric_keys=keys,
                             checked=f"rows={run._attrs.get('historyLineCount')};last={history_keys.get('lastStep')}",
                             params={k: str(v) for k, v in run.config.items() if not k.startswith("_")},
                             url=getattr(run, "url", ""))
            yield ref

    def fetch(self, runs: list[RunRef], keys: dict[str, list[str]]) -> Iterator[Fetched]:
        """Histories of a page of runs, ``workers`` requests in flight, in listing order."""
        try:
            with ThreadPoolExecutor(self.workers) as pool:
                yield from pool.map(lambda ref: self._history(ref, keys.get(ref.run_id, [])), runs)
        finally:  # the listing is paused at a page boundary: what was listed and not read was skipped
            self._runs.clear()
            self._axes.clear()
            self._counts.clear()

    def _history(self, ref, wanted: list[str]) -> tuple:
        """Every key of one run in ONE request: a spec per key on ``_step`` and one per step
        metric (define_metric) its keys are plotted against; a key's rows are then put on
        that metric (its value in the same row, interpolated between rows without it)."""

        if not wanted:
            return ref, {}
        try:
            run, axes, counts = self._listed(ref.run_id)
            plan = [(k, axes.for_key(k)) for k in wanted]
            metrics = sorted({m for _, m in plan if m})
            specs = [json.dumps({"keys": ["_step", k], "samples": SAMPLES}) for k in [*wanted, *metrics]]
            answer = self._call(f"reading the history of {ref.run_id}", lambda: _query(run, _HISTORY, specs=specs),
                                ref.run_id)
        except Unreachable:
            raise  # the batch stops: no further request
        except ConnectorError as exc:
            return ref, exc
        lists = (((answer or {}).get("project") or {}).get("run") or {}).get("sampledHistory") or []
        lists = [x if isinstance(x, list) else [] for x in lists] + [[]] * (len(specs) - len(lists))
        series = dict(zip([*wanted, *metrics], (_series(rows, k) for rows, k in zip(lists, [*wanted, *metrics]))))
        hist: dict[str, tuple] = {}
        info: dict[str, Any] = {"x_axis": {}, "points": {}, "sampled": []}
        for (k, m), rows in zip(plan, lists):
            steps, values = series[k]
            axis = "_step"
            if m and any(math.isfinite(x) for x in series[m][1]):
                steps, axis = _on_axis(steps, series[m]), m
            total = counts.get(k)
            if (total or 0) > len(rows) or len(rows) >= SAMPLES:
                info["sampled"].append(k)  # W&B sent SAMPLES evenly spaced rows of a longer history
                if total:
                    info.setdefault("rows", {})[k] = total
            if steps:
                hist[k] = (steps, values)
                info["x_axis"][k], info["points"][k] = axis, len(steps)
        return replace(ref, extra={**ref.extra, "history": info}), hist

    def _listed(self, run_id: str) -> tuple[Any, StepAxes, dict[str, int]]:
        """The run as the listing kept it (its step axes and history counts), else read now:
        ``fetch`` serves any run id of the project, listed or not (``tracker-diag report``)."""
        if run_id in self._runs:
            return (self._runs.pop(run_id), self._axes.pop(run_id, StepAxes()), self._counts.pop(run_id, {}))
        run = self._run(run_id, f"reading run {run_id}")
        axes = StepAxes.from_config((run.rawconfig.get("_wandb") or {}).get("m"))
        return run, axes, _history_counts(_history_keys(run._attrs))

    def _run(self, run_id: str, what: str):
        """The SDK's Run object (its uploads; a client for our queries). ``Api.run`` keeps every
        run it returned and hands the same object back: never read state from it."""
        run = self._call(what, lambda: self.api.run(f"{self.path}/{run_id}"), run_id)
        self._requests = self._requests or run
        return run

    def state(self, run) -> RunState:
        """Re-read just before writing, from the server (one query): W&B replaces whole values
        (the tag list, the summary, the notes), so a user's edit since the listing must not be
        lost. Not through ``Api.run``: it hands back the run it returned before, and even
        ``load(force=True)`` keeps the summary it had."""
        client = self._requests or self._run(run.run_id, f"re-reading run {run.run_id}")  # one request, not two
        answer = self._call(f"re-reading run {run.run_id}", lambda: _query(
            client, _STATE, project=self.project, entity=self.entity, name=run.run_id), run.run_id)
        node = (((answer or {}).get("project") or {}).get("run")) or {}
        if not node:
            raise ConnectorError(f"run {run.run_id} is no longer in {self.path}", run.run_id)
        try:
            raw = node.get("summaryMetrics") or "{}"
            summary = json.loads(raw) if isinstance(raw, str | bytes) else dict(raw)
        except ValueError as exc:
            raise ConnectorError(f"run {run.run_id}: its summary is not JSON ({exc})", run.run_id) from exc
        keys = {k: _as_text(k, summary[k]) for k in TAG_KEYS if k in summary}
        if not node.get("id"):
            raise ConnectorError(f"run {run.run_id}: W&B answered without its id", run.run_id)
        return RunState(keys, node.get("notes") or "", NOTES_LIMIT, labels=tuple(node.get("tags") or ()),
                        handle=(client, node["id"], summary))

    def apply(self, run, state: RunState, patch: Patch, plot=None) -> None:
        """One UpsertBucket with the tags, notes and summary the patch changes."""
        client, storage_id, summary = state.handle
        tags = list(patch.labels if patch.labels is not None else state.labels or ())
        too_long = [t for t in tags if len(t) > TAG_LIMIT]
        if too_long:  # W&B would reject the whole list; dropping the tag would lose the user's data
            raise ConnectorError(f"run {run.run_id} has a tag longer than {TAG_LIMIT} characters "
                                 f"({too_long[0][:20]!r}...), which W&B rejects in a tag update; nothing was "
                                 "written to this run", run.run_id)
        new_summary = {k: v for k, v in summary.items() if k not in patch.delete}
        new_summary.update({k: (float(v) if k == "diag_acc_gap" else v) for k, v in patch.set.items()})
        if plot is not None:  # first: a failed upload leaves the run as it was
            self._attach(self._run(run.run_id, f"reading run {run.run_id}"), run.run_id, plot())
        notes = patch.notes if patch.notes is not None else state.notes
        self._call(f"writing to run {run.run_id}", lambda: _query(
            client, _UPSERT, id=storage_id, tags=tags, notes=notes,
            summaryMetrics=json.dumps(new_summary, allow_nan=True)), run.run_id, read=False)

    def _attach(self, fresh, run_id: str, png: bytes) -> None:
        """The diagnosis plot as the run file tracker_diag/diagnosis.png (replaced on relabel)."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix="tracker-diag-") as tmp:
            path = Path(tmp, PLOT_FILE)
            path.parent.mkdir(parents=True)
            path.write_bytes(png)
            try:
                self._call(f"uploading the plot of run {run_id}", lambda: fresh.upload_file(str(path), root=tmp),
                           run_id, read=False)
            except OSError as exc:
                raise ConnectorError(f"uploading the plot of run {run_id} failed: {exc}", run_id) from exc


PLOT_FILE = "tracker_diag/diagnosis.png"
_STATE = """
query RunState($project: String!, $entity: String!, $name: String!) {
    project(name: $project, entityName: $entity) {
        run(name: $name) { id tags notes summaryMetrics }
    }
}
"""
_UPSERT = """
mutation UpsertBucket($id: String!, $tags: [String!], $notes: String, $summaryMetrics: JSONString) {
    upsertBucket(input: {id: $id, tags: $tags, notes: $notes, summaryMetrics: $summaryMetrics}) {
        bucket { id }
    }
}
"""
TAG_LIMIT = 64  # W&B rejects longer tags
NOTES_LIMIT = 100_000


def _answers(base_url: str, timeout: float = 5.0) -> bool:
    """Whether anything accepts a connection at the W&B address (any HTTP answer counts: a
    busy or rate-limiting server is there). Through the environment's proxy, as the SDK goes."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(base_url.rstrip("/") + "/healthz", timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True  # an answer
    except (OSError, ValueError):
        return False


def _check_reachable(base_url: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not after the SDK's minute of retries, when nothing listens at the
    W&B address (skipped behind a proxy, which the SDK would use and a bare socket would not)."""
    import socket
    from urllib.parse import urlsplit

    if settings.behind_proxy():
        return
    url = urlsplit(base_url)
    if not url.hostname:
        raise ConnectorError(f"WANDB_BASE_URL is not a URL: {base_url!r}")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as exc:
        raise ConnectorError(f"cannot reach the W&B server at {url.scheme}://{url.hostname}:{port} ({exc}); "
                             "check WANDB_BASE_URL and the network") from exc


def _numeric_keys(summary: dict, prefix: str = "") -> list[str]:
    """Keys of numeric summary values; nested dicts as W&B names their history keys
    ("eval.loss"); media and histograms (dicts with a "_type") are not curves."""
    out = []
    for k, v in summary.items():
        if isinstance(v, dict):
            if "_type" not in v:
                out += _numeric_keys(v, f"{prefix}{k}.")
        elif _value(v) is not None:
            out.append(f"{prefix}{k}")
    return out


def _query(run, query: str, **variables) -> dict:
    """One GraphQL query about ``run``: wandb >= 0.24 takes the text (through its service),
    older SDKs a parsed document (through their own client)."""
    if hasattr(run, "_service_api"):
        return run._exec(query, **variables)
    from wandb_gql import gql

    try:
        return run._exec(gql(query), **variables)
    except Exception as exc:  # their vendored gql client raises a bare Exception for a GraphQL error
        if isinstance(exc, wandb_errors()):
            raise
        raise ValueError(str(exc)) from exc


def _history_keys(attrs: dict) -> dict:
    """The listing's ``historyKeys``: ``{"keys": {key: {"typeCounts": [{"type": "number",
    "count": n}]}}, "lastStep": n}``; empty when the server does not say."""
    keys = attrs.get("historyKeys")
    try:
        keys = json.loads(keys) if isinstance(keys, str | bytes) else keys
    except ValueError:
        return {}
    return keys if isinstance(keys, dict) else {}


def _history_counts(history_keys: dict) -> dict[str, int]:
    """Numeric rows per history key."""
    keys = history_keys.get("keys")
    out = {}
    for name, info in keys.items() if isinstance(keys, dict) else ():
        counts = info.get("typeCounts") if isinstance(info, dict) else None
        if isinstance(counts, list):
            n = sum(c.get("count", 0) for c in counts if isinstance(c, dict) and c.get("type") == "number"
                    and isinstance(c.get("count", 0), int))
            if n:
                out[str(name)] = n
    return out


def _metric_definitions(response) -> dict:
    """Run name -> its ``_wandb.m`` (define_metric) from a raw ``Runs`` page.

    wandb 0.31's Run parses its config twice when built from a listing and loses the
    internal ``_wandb`` key on the second pass (``run.rawconfig`` comes back without it),
    so the definitions are read from the page as the server sent it.
    """
    out: dict[str, Any] = {}
    try:
        edges = response["project"]["runs"]["edges"]
    except (KeyError, TypeError):
        return out
    for edge in edges:
        node = (edge or {}).get("node") or {}
        config = node.get("config")
        try:
            config = json.loads(config) if isinstance(config, str | bytes) else config
        except ValueError:
            continue
        internal = (config or {}).get("_wandb") if isinstance(config, dict) else None
        if isinstance(internal, dict) and isinstance(internal.get("value"), dict):
            internal = internal["value"]
        if node.get("name"):  # every run of the page, so that one without definitions is known too
            out[node["name"]] = internal.get("m") if isinstance(internal, dict) else None
    return out


def _series(rows: list, key: str) -> tuple[list, list]:
    """(_step values, key values) of one ``sampledHistory`` list; non-numbers dropped."""
    steps, values = [], []
    for r in rows:
        if not isinstance(r, dict):
            continue
        s, v = r.get("_step"), _value(r.get(key))
        if isinstance(s, int | float) and not isinstance(s, bool) and v is not None:
            steps.append(float(s))
            values.append(v)
    return steps, values


def _on_axis(rows_steps: list, metric: tuple[list, list]) -> list:
    """``_step`` row numbers mapped onto a step metric logged at (some of) the rows: its
    value in the same row, else interpolated between the nearest rows that hold it."""
    import numpy as np

    on_m = {s: x for s, x in zip(*metric) if math.isfinite(x)}
    if not on_m:
        return rows_steps
    xs = np.array(sorted(on_m))
    ys = np.array([on_m[x] for x in xs])
    return [on_m[s] if s in on_m else float(np.interp(s, xs, ys)) for s in rows_steps]


def _as_text(key: str, value) -> str:
    """A summary value as the text tags_for writes (the gap is stored as a number)."""
    if key == "diag_acc_gap" and isinstance(value, int | float):
        return f"{value:.3f}"
    return str(value)


@contextmanager
def _translated(what: str, run_id: str | None = None):
    """The SDK's errors at this boundary become one ConnectorError saying what failed."""
    try:
        yield
    except (ValueError, *wandb_errors()) as exc:
        raise ConnectorError(f"{what} failed: {exc}", run_id) from exc


def wandb_errors() -> tuple:
    """What the SDK raises for a failed request (evaluated only once something was raised)."""
    from wandb.errors import Error

    errors: tuple = (Error,)
    try:  # what Api() raises when wandb-core reports a failed GraphQL request (wandb 0.31)
        from wandb.sdk.lib.service.service_connection import WandbApiFailedError

        errors += (WandbApiFailedError,)
    except ImportError:
        pass
    return errors
