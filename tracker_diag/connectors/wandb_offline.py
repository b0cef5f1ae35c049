"""W&B offline run files (``wandb/offline-run-*/run-*.wandb``), and the step-metric rules
(``define_metric``) the online client shares.

wandb 0.30+ ships no reader for its ``.wandb`` files, so this is one. The format is the
LevelDB log format behind a 7-byte header (``:W&B``, magic 0xBEE1, version 0): 32 KiB
blocks of records, each ``crc32 (4) | length (2) | type (1) | data``, where type is FULL,
FIRST, MIDDLE or LAST and the CRC is zlib's crc32 of the data seeded with the type byte.
A record's data is a protobuf ``Record`` (wandb/proto/wandb_internal.proto); history
records carry JSON values by key. A truncated or corrupt file yields the records before
the damage and a warning, never an exception.
"""

from __future__ import annotations

import fnmatch
import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tracker_diag.errors import InputError, need

HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
BLOCK = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
_REC = struct.Struct("<IHB")
_SEED = {t: zlib.crc32(bytes([t])) for t in (FULL, FIRST, MIDDLE, LAST)}


def _pb():
    return need("wandb.proto.wandb_internal_pb2", "wandb")


def records(path: str | Path, warnings: list[str]) -> Iterator[bytes]:
    """The raw records of a .wandb file; damage ends the stream with a warning."""
    data = Path(path).read_bytes()
    if not data.startswith(HEADER[:4]):
        raise InputError("not a W&B run file (no ':W&B' header)", str(path))
    if data[4:7] != HEADER[4:7]:
        raise InputError(f"unsupported W&B run file version {data[4:7].hex()}", str(path))
    pos, parts = len(HEADER), []
    while pos < len(data):
        left = BLOCK - pos % BLOCK
        if left < _REC.size:  # block trailer: zero padding
            pos += left
            continue
        if pos + _REC.size > len(data):
            warnings.append(f"{path}: truncated record header at byte {pos}; kept what came before")
            return
        crc, length, kind = _REC.unpack_from(data, pos)
        if crc == 0 and length == 0 and kind == 0:  # preallocated zeros at the end of a live file
            return
        body = data[pos + _REC.size: pos + _REC.size + length]
        if len(body) < length or length > left - _REC.size:
            warnings.append(f"{path}: truncated at byte {pos} (record of {length} bytes); kept what came before")
            return
        if kind not in _SEED or zlib.crc32(body, _SEED[kind]) != crc:
            warnings.append(f"{path}: corrupt record at byte {pos} (checksum mismatch); kept what came before")
            return
        pos += _REC.size + length
        if kind == FULL:
            yield body
        elif kind == FIRST:
            parts = [body]
        elif kind == MIDDLE and parts:
            parts.append(body)
        elif kind == LAST and parts:
            parts.append(body)
            yield b"".join(parts)
            parts = []
        else:
            warnings.append(f"{path}: record fragment out of order at byte {pos}; kept what came before")
            return


@dataclass(frozen=True)
class StepAxes:
    """Which step metric each key is plotted against (``define_metric``), by W&B's rules:
    an exact definition first, then a glob (W&B allows ``*`` as a suffix only; where several
    match, the longest wins here); a key without one is on the ``_step`` row counter.
    """

    names: dict = field(default_factory=dict)  # key -> its step metric ("" = none)
    globs: tuple = ()  # (glob, step metric)

    def for_key(self, key: str) -> str | None:
        if key in self.names:
            return self.names[key] or None
        match = max((g for g in self.globs if fnmatch.fnmatchcase(key, g[0])), key=lambda g: len(g[0]), default=None)
        return match[1] if match and match[1] != key else None

    @classmethod
    def from_definitions(cls, defs) -> StepAxes:
        """From (name, glob, step metric) triples, later definitions updating earlier ones."""
        names: dict[str, str] = {}
        globs: dict[str, str] = {}
        for name, glob, step in defs:
            if name:
                names[name] = step or names.get(name, "")
            elif glob and step:
                globs[glob] = step
        return cls(names, tuple(globs.items()))

    @classmethod
    def from_config(cls, m) -> StepAxes:
        """From a run config's ``_wandb.m``: MetricRecords keyed by proto field number
        ("1" name, "2" glob, "4" step metric, "5" 1-based index of the step metric's entry)."""
        if not isinstance(m, list):
            return cls()
        defs = []
        for e in m:
            if not isinstance(e, dict):
                continue
            step, idx = e.get("4") or "", e.get("5")
            if not step and isinstance(idx, int | float) and 1 <= idx <= len(m) and isinstance(m[int(idx) - 1], dict):
                step = m[int(idx) - 1].get("1") or ""
            defs.append((e.get("1") or "", e.get("2") or "", step if isinstance(step, str) else ""))
        return cls.from_definitions(defs)


@dataclass
class OfflineRun:
    run_id: str
    run_name: str
    path: str
    rows: list[tuple[str, float, float]] = field(default_factory=list)  # key, step, value
    config: dict = field(default_factory=dict)
    axes: StepAxes = field(default_factory=StepAxes)


def _on_step_axes(rows: list[tuple[float, dict]], axes: StepAxes) -> list[tuple[str, float, float]]:
    """(key, step, value) with each key on its step metric: the metric's value in the same
    row, else its latest earlier value (W&B's step_sync). A key whose step metric was never
    logged stays on ``_step``."""
    logged = {k for _, values in rows for k in values}
    latest: dict[str, float] = {}
    out = []
    for step, values in rows:
        latest.update(values)
        for key, v in values.items():
            m = axes.for_key(key)
            x = latest.get(m, 0.0) if m is not None and m in logged else step
            out.append((key, float(x), v))
    return out


def _number(raw: str) -> float | None:
    try:
        v = json.loads(raw)
    except ValueError:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None  # images, tables, strings: not a learning curve
    return float(v)


def read_offline_run(path: str | Path, warnings: list[str]) -> OfflineRun:
    """One run from a .wandb file or an offline-run directory."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.wandb"))
        if not files:
            raise InputError("no .wandb file in this directory", str(path))
        path = files[0]
    pb = _pb()
    from google.protobuf.message import DecodeError  # protobuf comes with wandb

    run = OfflineRun(run_id=path.stem.removeprefix("run-"), run_name="", path=str(path))
    rows, defs = [], []  # (_step, {key: value}) as logged; define_metric triples
    for raw in records(path, warnings):
        rec = pb.Record()
        try:
            rec.ParseFromString(raw)
        except DecodeError as exc:
            warnings.append(f"{path}: undecodable record ({type(exc).__name__}); kept what came before")
            break
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            run.run_id = rec.run.run_id or run.run_id
            run.run_name = rec.run.display_name or run.run_name
            for item in rec.run.config.update:
                key = item.key or "/".join(item.nested_key)
                try:
                    run.config[key] = json.loads(item.value_json)
                except ValueError:
                    run.config[key] = item.value_json
        elif kind == "metric":
            defs.append((rec.metric.name, rec.metric.glob_name, rec.metric.step_metric))
        elif kind == "history":
            values = {}
            for item in rec.history.item:
                key = item.key or "/".join(item.nested_key)
                if not key.startswith("_"):
                    v = _number(item.value_json)
                    if v is not None:
                        values[key] = v
            rows.append((float(rec.history.step.num), values))
    run.axes = StepAxes.from_definitions(defs)
    run.rows = _on_step_axes(rows, run.axes)
    run.run_name = run.run_name or run.run_id
    return run


def offline_frame(paths: list[str], warnings: list[str]):
    """Long-format frame (run_id, run_name, key, step, value) of offline runs."""
    import pandas as pd

    frames = []
    for p in paths:
        run = read_offline_run(p, warnings)
        if not run.rows:
            warnings.append(f"{run.path}: no numeric history")
        f = pd.DataFrame(run.rows, columns=["key", "step", "value"])
        f.insert(0, "run_name", run.run_name)
        f.insert(0, "run_id", run.run_id)
        frames.append(f)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["run_id", "run_name", "key", "step", "value"])


__all__ = ["OfflineRun", "StepAxes", "offline_frame", "read_offline_run", "records"]


