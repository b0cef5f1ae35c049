"""list -> skip unchanged -> fetch -> analyze -> write, one page of runs at a time.

A failing run is recorded and the batch goes on; the caller turns the counts into an
exit code. A write cut off by the network is retried from a fresh read of the run (so a
retry never writes twice). When the tracker is gone (the backend raises Unreachable) or
the deadline has passed, no further request is made: the runs not attempted are recorded
as failed with that reason and ``BatchResult.stopped`` says why.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from itertools import islice

from tracker_diag import settings
from tracker_diag.analyze import analyze
from tracker_diag.errors import ConnectorError, Unreachable
from tracker_diag.frames import downsample
from tracker_diag.keys import candidate_keys
from tracker_diag.model import ANALYZER_VERSION, REGIMES, Action, Diagnosis, RunRef, Thresholds
from tracker_diag.tracker import History, Tracker
from tracker_diag.writeback import diagnosis_from_keys, plan


@dataclass
class RunResult:
    ref: RunRef
    diagnosis: Diagnosis | None
    action: Action
    skipped: bool = False
    error: str = ""
    curves: dict = field(default_factory=dict)  # role -> (steps, values), downsampled, for reports


@dataclass
class BatchResult:
    results: list[RunResult] = field(default_factory=list)
    stopped: str = ""  # why the batch stopped early (tracker gone, deadline); "" when it ran to the end

    @property
    def failed(self) -> int:
        return sum(r.action == "failed" for r in self.results)

    @property
    def skipped(self) -> int:
        return sum(r.skipped for r in self.results)

    @property
    def not_attempted(self) -> int:
        return sum(r.error.startswith(NOT_ATTEMPTED) for r in self.results)


NOT_ATTEMPTED = "not attempted: "
WRITE_TRIES = 3  # a write cut off by the network: re-read, re-plan, apply again, at most this often


def label_config(thresholds: Thresholds, keys: dict[str, str] | None) -> str:
    """Short hash of what decides a label besides the data: the thresholds and the key
    mapping. Part of diag_checked, so new thresholds relabel instead of skipping."""
    return thresholds.digest(*(f"key:{r}={k}" for r, k in sorted((keys or {}).items())))


def is_current(ref: RunRef) -> bool:
    """Labelled by this analyzer version from the data the run holds now (a provisional
    label of a run that has since finished is not current)."""
    provisional = "provisional" in ref.tags.get("diag_flags", "").split(",")
    return bool(ref.checked) and ref.tags.get("diag_version") == ANALYZER_VERSION \
        and ref.tags.get("diag_checked") == ref.checked and ref.tags.get("diag_regime") in REGIMES \
        and not (provisional and ref.status != "RUNNING")


def provisional(ref: RunRef, diag: Diagnosis) -> Diagnosis:
    """A run still training gets the flag ``provisional``: its label may change."""
    if ref.status != "RUNNING" or "provisional" in diag.flags:
        return diag
    return replace(diag, flags=tuple(sorted((*diag.flags, "provisional"))))


def triage(page: list[RunRef], *, force: bool, keep_curves: bool) -> tuple[list[RunRef], set[str], list[RunResult]]:
    """Runs to read; the ids among them that are current (read only for their curves, never
    written); and the current runs that need no read at all, as 'unchanged' results. The
    one skip decision of every engine (one process, the sweep, Spark)."""
    todo, current, unchanged = [], set(), []
    for ref in page:
        if force or not is_current(ref):
            todo.append(ref)
        elif keep_curves:  # a report wants the curves: read them, but write nothing
            current.add(ref.run_id)
            todo.append(ref)
        else:
            unchanged.append(RunResult(ref, diagnosis_from_keys(ref.tags), "unchanged", skipped=True))
    return todo, current, unchanged


def _chunks(it: Iterable, size: int) -> Iterator[list]:
    it = iter(it)
    while chunk := list(islice(it, size)):
        yield chunk


@dataclass
class Writer:
    """Writes diagnoses through a tracker: plan from the run's state read just before, apply,
    re-read and re-plan after a cut-off write (so a retry never writes twice). Shared by
    :func:`label` and the Spark engine's partitions. Once the tracker is gone or the deadline
    has passed, no further request is made (``stopped`` says why)."""

    backend: Tracker
    attach_plots: bool = False
    deadline: float | None = None  # time.monotonic() after which no request is made
    stopped: str = ""
    backoff: float = 0.5
    budget: float = field(default_factory=lambda: settings.get("TRACKER_DIAG_RETRY_BUDGET"))  # rate limits, s

    def stop(self, why: str) -> None:
        self.stopped = self.stopped or why

    def check(self) -> None:
        """Unreachable once the batch must make no further request."""
        if not self.stopped and self.deadline is not None and time.monotonic() > self.deadline:
            self.stop("the --deadline passed")
        if self.stopped:
            raise Unreachable(self.stopped)

    def skip(self, ref: RunRef, diag: Diagnosis | None = None) -> RunResult:
        return RunResult(ref, diag, "failed", error=NOT_ATTEMPTED + self.stopped)

    def put(self, item: tuple[RunRef, Diagnosis, dict]) -> RunResult:
        """Plan the write from the run's state and apply it: 'written', 'unchanged' or 'failed'."""
        ref, diag, curves = item
        plot = None
        if self.attach_plots:
            from tracker_diag.plots import plot_png

            def plot():
                return plot_png(ref.run_name or ref.run_id, diag, curves)
        attempt, started = 0, time.monotonic()
        while True:
            attempt += 1
            try:
                self.check()
                state = self.backend.state(ref)  # read just before writing: the plan starts from now
                patch = plan(state, diag, ref.checked)
                if not patch:
                    return RunResult(ref, diag, "unchanged" if attempt == 1 else "written", curves=curves)
                self.backend.apply(ref, state, patch, plot)
                return RunResult(ref, diag, "written", curves=curves)
            except Unreachable as exc:
                self.stop(str(exc))
                return self.skip(ref, diag)
            except ConnectorError as exc:
                # a rate limit is waited out for as long as the budget allows; other network
                # failures get WRITE_TRIES attempts, each planned from a fresh read
                limited = exc.limited and time.monotonic() - started < self.budget
                if not limited and (not exc.transient or attempt >= WRITE_TRIES):
                    return RunResult(ref, diag, "failed", error=str(exc), curves=curves)
                time.sleep(min(self.backoff * 2 ** (attempt - 1), 30.0))

    def put_many(self, items: list[tuple[RunRef, Diagnosis, dict]]) -> list[RunResult] | None:
        """A page written in the tracker's own transactions (``Tracker.write_many``), retried
        from a fresh read while the failure is transient; None if the tracker writes run by run."""
        if self.attach_plots or not items:
            return None  # plots are uploaded run by run, before each write
        for attempt in range(1, WRITE_TRIES + 1):
            try:
                self.check()
                done = self.backend.write_many([(ref, diag) for ref, diag, _ in items])
                if done is None:
                    return None
                return [RunResult(ref, diag, action, error=error, curves=curves)
                        for (ref, diag, curves), (action, error) in zip(items, done)]
            except Unreachable as exc:
                self.stop(str(exc))
                return [self.skip(ref, diag) for ref, diag, _ in items]
            except ConnectorError as exc:
                if not exc.transient or attempt == WRITE_TRIES:
                    return [RunResult(ref, diag, "failed", error=str(exc), curves=curves) for ref, diag, curves in items]
                time.sleep(self.backoff * 2 ** (attempt - 1))
        raise AssertionError("the last attempt returns")  # pragma: no cover - the loop always returns


@dataclass(kw_only=True)
class _Job(Writer):
    """What one label() call does with each page: its settings and where results go."""

    keys: dict[str, str] | None
    thresholds: Thresholds | None
    write: bool
    force: bool
    keep_curves: bool
    record: Callable[[RunResult], None]

    def triage(self, page: list[RunRef]) -> tuple[list[RunRef], set[str]]:
        todo, current, unchanged = triage(page, force=self.force, keep_curves=self.keep_curves)
        for r in unchanged:
            self.record(r)
        return todo, current

    def read(self, todo: list[RunRef]) -> tuple[list[tuple[RunRef, History | ConnectorError]], Exception | None]:
        """A page's histories as far as they could be read, and what stopped the read (if anything)."""
        wanted = {ref.run_id: candidate_keys(ref.metric_keys, self.keys) for ref in todo}
        got: list[tuple[RunRef, History | ConnectorError]] = []
        try:
            self.check()
            got.extend(self.backend.fetch(todo, wanted))  # what came before a failure stays
        except (Unreachable, ConnectorError) as exc:
            return got, exc
        return got, None

    def analyse(self, todo: list[RunRef], current: set[str],
                read: tuple[list, Exception | None] | None = None) -> list[tuple[RunRef, Diagnosis, dict]]:
        """Analyse a page (``read``: its histories, read now if not given); returns what is to
        be written. A run whose history cannot be read fails alone; a failed page read fails
        the runs not yet read."""
        got, failure = read if read is not None else self.read(todo)
        seen, to_write = set(), []
        try:
            for ref, hist in got:
                seen.add(ref.run_id)
                if isinstance(hist, ConnectorError):  # this run alone could not be read
                    self.record(RunResult(ref, None, "failed", error=str(hist)))
                    continue
                diag = provisional(ref, analyze(hist, self.keys, self.thresholds))
                curves = {r: downsample(*hist[k]) for r, k in diag.keys.items() if k in hist} \
                    if self.keep_curves else {}
                if ref.run_id in current:
                    self.record(RunResult(ref, diag, "unchanged", skipped=True, curves=curves))
                elif self.write:
                    to_write.append((ref, diag, curves))
                else:
                    self.record(RunResult(ref, diag, "dry-run", curves=curves))
            if failure is not None:
                raise failure
        except Unreachable as exc:
            self.stop(str(exc))
            for ref in todo:
                if ref.run_id not in seen:
                    self.record(self.skip(ref))
            seen = {ref.run_id for ref in todo}
        except ConnectorError as exc:
            for ref in todo:
                if ref.run_id not in seen:
                    self.record(RunResult(ref, None, "failed", error=str(exc)))
            seen = {ref.run_id for ref in todo}
        for ref in todo:
            if ref.run_id not in seen:
                self.record(RunResult(ref, None, "failed", error="the tracker returned no history for this run"))
        return to_write


def label(backend: Tracker, *, keys: dict[str, str] | None = None, thresholds: Thresholds | None = None,
          write: bool = False, force: bool = False, page_size: int = 200, write_workers: int = 4,
          progress: Callable[[RunResult], None] | None = None, keep_curves: bool = False,
          attach_plots: bool = False, deadline: float | None = None) -> BatchResult:
    """Label every run the backend lists; streams ``page_size`` runs at a time.

    ``keep_curves`` keeps each analysed run's curves, downsampled, for the HTML report;
    ``attach_plots`` uploads a diagnosis plot to each run whose diagnosis changed;
    ``deadline`` (seconds) bounds the whole batch: past it, no further request is made.
    """
    out = BatchResult()
    config = label_config(thresholds or Thresholds(), keys)

    def record(r: RunResult):
        out.results.append(r)
        if progress is not None:
            progress(r)

    job = _Job(backend=backend, keys=keys, thresholds=thresholds, write=write, force=force,
               keep_curves=keep_curves or attach_plots, attach_plots=attach_plots, record=record,
               deadline=None if deadline is None else time.monotonic() + deadline)
    # one write request per run: a few in flight hide the round trips; one pool for the batch.
    # A dry run reads the next page while it analyses this one (the read waits on the database
    # most of its time); a write pass does not overlap reads with its writes (sqlite has one writer).
    with ThreadPoolExecutor(max(1, write_workers)) as pool, ThreadPoolExecutor(1) as reader:
        ahead = None  # (todo, current, future of its read) of the page read in the background

        def finish(todo, current, read):
            items = job.analyse(todo, current, read)
            bulk = job.put_many(items)  # one transaction a page where the tracker has them
            for result in bulk if bulk is not None else pool.map(job.put, items):
                record(result)

        try:
            for page in _chunks(backend.list_runs(), page_size):
                page = [replace(ref, checked=f"{ref.checked};cfg={config}") if ref.checked else ref for ref in page]
                todo, current = job.triage(page)
                if todo and not write:
                    nxt = (todo, current, reader.submit(job.read, todo))
                    if ahead is not None:
                        finish(ahead[0], ahead[1], ahead[2].result())
                    ahead = nxt
                elif todo:
                    finish(todo, current, None)
                job.check()  # gone, or past the deadline: list no further page
            if ahead is not None:
                finish(ahead[0], ahead[1], ahead[2].result())
                ahead = None
        except Unreachable as exc:  # runs not listed yet are not attempted either
            job.stop(str(exc))
            if ahead is not None:  # read already, or stopped: say which
                finish(ahead[0], ahead[1], ahead[2].result())
    out.stopped = job.stopped
    return out
