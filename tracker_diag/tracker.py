"""The one contract between tracker-diag and a tracker: what the CLI, the batch, the sweep, the
report and the Spark engine call, and nothing else.

A connector (``tracker_diag.connectors.<name>``) implements :class:`Tracker` structurally and
is built only by ``connectors.build`` (its registry entry declares its options). Paging, bulk
endpoints, retries and the circuit breaker live inside the connector; what crosses this line
is plain data (:class:`~tracker_diag.model.RunRef`, histories, :class:`~tracker_diag.writeback.RunState`,
:class:`~tracker_diag.writeback.Patch`) and :class:`~tracker_diag.errors.ConnectorError`.

A new tracker is one module with a class that has these methods, and one ``REGISTRY`` entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, TypeAlias

from numpy.typing import ArrayLike

from tracker_diag.errors import ConnectorError
from tracker_diag.model import Action, Diagnosis, RunRef
from tracker_diag.writeback import Patch, RunState

History: TypeAlias = dict[str, tuple[ArrayLike, ArrayLike]]
"""A run's curves: metric key -> (steps, values), in step order (lists or numpy arrays)."""
Fetched: TypeAlias = tuple[RunRef, History | ConnectorError]
"""One run of a fetch: its history, or the error that failed this run alone."""


class Tracker(Protocol):
    """What a tracker connector provides (every method may raise ConnectorError; Unreachable
    when the tracker stopped answering and no further request should be made)."""

    source: str  # "mlflow", "wandb", "file": RunRef.source and the JSON report's "source"

    @property
    def warnings(self) -> list[str]:
        """What the user should know about the input that is not an error (e.g. a truncated file)."""
        ...

    def list_runs(self) -> Iterable[RunRef]:
        """Every run to consider, streamed page by page."""
        ...

    def total(self) -> int | None:
        """How many runs ``list_runs`` will yield if that is cheap to know (a progress bar), else None."""
        ...

    def fetch(self, runs: list[RunRef], keys: dict[str, list[str]]) -> Iterator[Fetched]:
        """Histories of ``keys[run_id]`` for a batch of runs, listed or not (any run id of the
        source). Yields runs in any order; a ConnectorError in place of a history fails that
        run alone, one raised fails the rest of the batch."""
        ...

    def state(self, run: RunRef) -> RunState:
        """What the run holds now of what tracker-diag may change, read just before a write."""
        ...

    def apply(self, run: RunRef, state: RunState, patch: Patch, plot: Callable[[], bytes] | None = None) -> None:
        """Apply a non-empty patch, planned from ``state``, ``diag_checked`` last. ``plot``
        renders the diagnosis PNG; it is attached first, so a failed upload changes nothing."""
        ...

    def write_many(self, items: list[tuple[RunRef, Diagnosis]]) -> list[tuple[Action, str]] | None:
        """Write a page of diagnoses in the tracker's own transactions (state read, plan and
        conditional write together): ``(action, error)`` per item, in order; ``None`` when the
        tracker writes run by run through ``state`` and ``apply``."""
        ...

    def describe(self) -> str:
        """Where the runs come from, for titles and lock names (no secrets)."""
        ...

    def scope(self) -> str:
        """What a listing searched, for "no runs matched"."""
        ...

    def links(self, regime: str) -> list[str]:
        """Lines that show the runs of ``regime`` in the tracker's own UI (may be empty)."""
        ...

    def close(self) -> None:
        """Release connections; the tracker is not used afterwards."""
        ...


__all__ = ["Fetched", "History", "Tracker"]
