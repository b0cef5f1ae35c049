"""Read long-format metric files (CSV, parquet, JSON lines: ``run_id, key, step, value``)
and W&B offline runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from tracker_diag.errors import ConnectorError, InputError, MissingExtraError
from tracker_diag.model import RunRef
from tracker_diag.tracker import Fetched
from tracker_diag.writeback import Patch, RunState

REQUIRED = ("key", "step", "value")


def read_long(path: str | Path) -> pd.DataFrame:
    """One file as a frame with ``run_id, run_name, key, step, value``; InputError if malformed."""
    path = Path(path)
    suffix = "".join(path.suffixes[-2:]).lower()
    try:
        if suffix.endswith((".parquet", ".pq")):
            try:
                frame = pd.read_parquet(path)
            except ImportError as exc:
                raise MissingExtraError("pyarrow", "parquet") from exc
        elif suffix.endswith((".jsonl", ".ndjson", ".json", ".json.gz", ".jsonl.gz")):
            frame = pd.read_json(path, lines=not suffix.endswith((".json", ".json.gz")) or _looks_like_lines(path))
        elif suffix.endswith((".csv", ".csv.gz", ".tsv")):
            frame = pd.read_csv(path, sep="\t" if suffix.endswith(".tsv") else ",")
        else:
            raise InputError("unknown file type (expected .csv, .tsv, .parquet, .json or .jsonl)", str(path))
    except FileNotFoundError as exc:
        raise InputError("no such file", str(path)) from exc
    except IsADirectoryError as exc:
        raise InputError("is a directory, expected a metrics file", str(path)) from exc
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, OSError) as exc:
        raise InputError(f"cannot be parsed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                         str(path)) from exc
    return normalise(frame, str(path))


def _looks_like_lines(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(1).lstrip()
    return head == b"{"


def normalise(frame: pd.DataFrame, origin: str = "") -> pd.DataFrame:
    frame = frame.rename(columns={c: str(c).strip().lower() for c in frame.columns})
    missing = [c for c in REQUIRED if c not in frame.columns]
    if "run_id" not in frame.columns and "run_name" not in frame.columns:
        missing.insert(0, "run_id (or run_name)")
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}; found {', '.join(map(str, frame.columns))}",
                         origin or None)
    if "run_id" not in frame.columns:
        frame["run_id"] = frame["run_name"]
    if "run_name" not in frame.columns:
        frame["run_name"] = frame["run_id"]
    blank = _blank(frame["run_id"]) | _blank(frame["key"])
    if blank.any():  # a row with no run id or no key belongs to no curve: skipped, and counted
        frame = frame[~blank]
        if not len(frame):
            raise InputError("every row has an empty run id or key",
                             origin or None)
    out = pd.DataFrame({
        "run_id": frame["run_id"].astype(str),
        "run_name": frame["run_name"].where(~_blank(frame["run_name"]), frame["run_id"]).astype(str),
        "key": frame["key"].astype(str),
        "step": pd.to_numeric(frame["step"], errors="coerce"),
        # "nan", "inf" and blanks become floats; words do not parse and become NaN
        "value": pd.to_numeric(frame["value"], errors="coerce"),
    })
    bad_steps = out["step"].isna() & frame["step"].notna()
    if bad_steps.all() and len(out):
        raise InputError("column 'step' holds no numbers", origin or None)
    out.attrs["blank_rows"] = int(blank.sum())
    return out


def _blank(col: pd.Series) -> pd.Series:
    return col.isna() | (col.astype(str).str.strip() == "")


class FileBackend:
    """Runs from long-format files; read-only. Files are split into runs once, on load."""

    source = "file"

    def __init__(self, paths: list[str]):
        from tracker_diag.frames import split_runs

        if not paths or any(not str(p).strip() for p in paths):
            raise InputError("an empty path was given; name a metrics file or a W&B offline run directory")
        self.paths = paths
        self.warnings: list[str] = []
        frames = [self._read(p) for p in paths]
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["run_id", "run_name"])
        names = frame.drop_duplicates("run_id").set_index("run_id")["run_name"].to_dict()
        self._runs = [(rid, names.get(rid, rid), hist) for rid, hist in split_runs(frame)]
        self._hist = {rid: hist for rid, _, hist in self._runs}

    def _read(self, path: str) -> pd.DataFrame:
        """A long-format file, or a W&B offline run (directory or .wandb file)."""
        p = Path(path)
        if p.is_dir() or p.suffix == ".wandb":
            from tracker_diag.connectors.wandb_offline import offline_frame

            return offline_frame([path], self.warnings)
        frame = read_long(path)
        if frame.attrs.get("blank_rows"):
            self.warnings.append(f"{path}: {frame.attrs['blank_rows']} row(s) with an empty run id or key skipped")
        return frame

    def close(self) -> None:
        """Nothing is held open: the files were read on load."""

    def describe(self) -> str:
        return ", ".join(self.paths)

    def scope(self) -> str:
        return f"the files {self.describe()}"

    def links(self, regime: str) -> list[str]:
        return []

    def write_many(self, items) -> None:
        """Read-only (state and apply say so)."""

    def state(self, run: RunRef) -> RunState:
        raise ConnectorError(f"{run.run_id}: files are read-only; label the runs in their tracker", run.run_id)

    def apply(self, run: RunRef, state: RunState, patch: Patch, plot=None) -> None:
        raise ConnectorError(f"{run.run_id}: files are read-only; label the runs in their tracker", run.run_id)

    def total(self) -> int:
        return len(self._runs)

    def list_runs(self) -> Iterator[RunRef]:
        for rid, name, hist in self._runs:
            yield RunRef(run_id=rid, run_name=str(name), source="file", metric_keys=tuple(hist))

    def fetch(self, runs: list[RunRef], keys: dict[str, list[str]]) -> Iterator[Fetched]:
        for ref in runs:
            hist = self._hist.get(ref.run_id)
            if hist is None:  # a run id of another file (tracker-diag report --source)
                yield ref, ConnectorError(f"run {ref.run_id!r} is not in {', '.join(self.paths)}", ref.run_id)
                continue
            yield ref, {k: hist[k] for k in keys.get(ref.run_id, ()) if k in hist}


__all__ = ["FileBackend", "normalise", "read_long"]
