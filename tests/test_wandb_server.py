"""The W&B test server, driven by the real wandb SDK (the base of the W&B connector's tests)."""

import json
import urllib.request

import numpy as np
import pytest
from wandb_server import StoredRun, WandbTestServer


@pytest.fixture
def wb(monkeypatch):
    with WandbTestServer(entity="ent") as srv:
        monkeypatch.setenv("WANDB_BASE_URL", srv.url)
        monkeypatch.setenv("WANDB_API_KEY", "a" * 40)  # a dummy 40-character key
        monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")
        monkeypatch.setenv("WANDB_ENTITY", "ent")
        yield srv


def test_real_sdk_lists_runs_one_request_per_page(wb):
    import wandb

    wb.runs[("ent", "proj")] = [StoredRun(f"r{i}", tags=["mine"], summary={"loss": 0.1 * i}, notes="n")
                                for i in range(7)]
    runs = list(wandb.Api(timeout=60).runs("ent/proj", per_page=3, lazy=False))
    assert [r.name for r in runs] == [f"r{i}" for i in range(7)]
    assert runs[3].tags == ["mine"] and runs[3].summary["loss"] == pytest.approx(0.3)
    ops = [q["operation"] for q in wb.requests]
    assert all(not q["errors"] for q in wb.requests), wb.requests
    assert ops.count("Runs") == 3  # 7 runs, 3 per page
    assert ops.count("Viewer") <= 1


def test_every_query_is_validated_against_the_schema(wb):
    body = json.dumps({"query": "query { project(name: \"p\", entityName: \"ent\") { runs { edges { node "
                                "{ name notAField } } } } }"}).encode()
    req = urllib.request.Request(wb.url + "/graphql", data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        answer = json.load(resp)
    assert answer["data"] is None and "notAField" in answer["errors"][0]["message"]
    assert wb.requests[-1]["errors"]


def _curves(kind, n=40):
    x = np.arange(n, dtype=float)
    if kind == "learning":
        return 2 * np.exp(-x / 80) + 0.1, 2 * np.exp(-x / 90) + 0.2
    if kind == "overfitting":
        return 2 * np.exp(-x / 5) + 0.01, 0.6 + 0.001 * (x - 10) ** 2
    return np.full(n, 2.3026), np.full(n, 2.3026)


def test_label_wandb_reads_each_key_in_one_request_per_run(wb, capsys):
    from helpers import run_cli

    kinds = {"a": "learning", "b": "overfitting", "c": "plateau"}
    for name, kind in kinds.items():
        train, test = _curves(kind)
        rows = []
        for i, (t, v) in enumerate(zip(train, test)):  # train and eval in separate log() calls
            rows.append({"_step": 2 * i, "train/loss": float(t), "train/global_step": i})
            rows.append({"_step": 2 * i + 1, "eval/loss": float(v), "train/global_step": i})
        wb.runs.setdefault(("ent", "proj"), []).append(
            StoredRun(name, summary={"train/loss": float(train[-1]), "eval/loss": float(test[-1]),
                                     "train/global_step": 39, "_step": 79}, history=rows, config={"lr": 0.1}))
    wb.runs[("ent", "proj")].append(StoredRun("crashed", state="crashed"))
    code, out, _ = run_cli(["label", "wandb", "ent/proj", "--json", "-"], capsys)
    rep = json.loads(out)
    assert code == 0 and {r["run_id"]: r["regime"] for r in rep["runs"]} == kinds
    assert rep["runs"][0]["keys"] == {"train_loss": "train/loss", "test_loss": "eval/loss"}
    ops = [q["operation"] for q in wb.requests]
    assert ops.count("RunSampledHistory") == len(kinds)  # one history request per run, every key in it
    assert all(not q["errors"] for q in wb.requests), wb.requests


def _log(srv, name, kind, **extra):
    train, test = _curves(kind)
    rows = []
    for i, (t, v) in enumerate(zip(train, test)):
        rows.append({"_step": 2 * i, "train/loss": float(t)})
        rows.append({"_step": 2 * i + 1, "eval/loss": float(v)})
    srv.runs.setdefault(("ent", "proj"), []).append(
        StoredRun(name, summary={"train/loss": float(train[-1]), "eval/loss": float(test[-1]), "user_key": 7},
                  history=rows, **extra))


def test_write_back_keeps_user_data_and_second_pass_costs_nothing(wb, capsys):
    from helpers import run_cli

    _log(wb, "a", "overfitting", tags=["mine", "learning"], notes="my notes")  # "learning" is the user's tag
    _log(wb, "b", "learning", tags=[])
    code, out, _ = run_cli(["label", "wandb", "ent/proj", "--write", "-q"], capsys)
    assert code == 0, out
    a, b = wb.runs[("ent", "proj")]
    assert a.tags == ["mine", "learning", "overfitting"] and b.tags == ["learning"]
    assert a.summary["user_key"] == 7 and a.summary["diag_regime"] == "overfitting"
    assert a.summary["diag_version"] and a.summary["diag_checked"]
    assert a.notes.startswith("my notes\n\n<!-- tracker-diag -->") and "overfitting" in a.notes
    ops = [q["operation"] for q in wb.requests]
    assert ops.count("UpsertBucket") == 2 and ops.count("RunSampledHistory") == 2  # one each per run
    assert all(not q["errors"] for q in wb.requests), wb.requests
    assert all(len(t) <= 64 for r in (a, b) for t in r.tags)

    wb.requests.clear()
    before = [(r.tags, dict(r.summary), r.notes) for r in (a, b)]
    code, out, _ = run_cli(["label", "wandb", "ent/proj", "--write"], capsys)
    ops = [q["operation"] for q in wb.requests]
    assert code == 0 and "2 skipped" in out
    assert "RunSampledHistory" not in ops and "UpsertBucket" not in ops  # decided from the listing alone
    assert [(r.tags, dict(r.summary), r.notes) for r in (a, b)] == before

    # new data turns b into an overfitting run: only the regime tag tracker_diag set is replaced
    train, _ = _curves("overfitting")
    _, test = _curves("overfitting")
    b.history = [{"_step": i, "train/loss": float(t), "eval/loss": float(v)} for i, (t, v) in enumerate(zip(train, test))]
    b.tags = ["learning", "user-tag"]
    code, _, _ = run_cli(["label", "wandb", "ent/proj", "--write", "-q"], capsys)
    assert code == 0 and b.tags == ["user-tag", "overfitting"] and b.summary["diag_regime"] == "overfitting"
    assert a.tags == ["mine", "learning", "overfitting"]  # unchanged run untouched


def test_429_is_survived_without_duplicate_writes_and_a_broken_run_fails_alone(wb, capsys):
    from helpers import run_cli

    for name in ("a", "b", "c"):
        _log(wb, name, "learning")
    wb.broken_runs.add("b")
    wb.throttle["UpsertBucket"] = 1  # the first write is answered 429 with Retry-After: 1
    code, out, err = run_cli(["label", "wandb", "ent/proj", "--write", "--json", "-"], capsys)
    rep = {r["run_id"]: r for r in json.loads(out)["runs"]}
    assert code == 1 and rep["b"]["action"] == "failed" and "b" in err
    assert rep["a"]["action"] == rep["c"]["action"] == "written"
    applied = [q for q in wb.requests if q["operation"] == "UpsertBucket" and q.get("status") != 429]
    assert sum(q.get("status") == 429 for q in wb.requests) == 1
    assert sorted(q["variables"]["id"] for q in applied) == ["run-a", "run-c"]  # retried once, applied once
    a, b, c = wb.runs[("ent", "proj")]
    assert a.tags == c.tags == ["learning"] and b.tags == [] and "diag_regime" not in b.summary


def test_same_regimes_through_the_wandb_api_as_from_a_file(wb, corpus, tmp_path):
    from tracker_diag.batch import label
    from tracker_diag.connectors.wandb import WandbBackend
    from tracker_diag.files import FileBackend
    from tracker_diag.samples import long_frame

    runs = corpus[:8]
    for r in runs:
        rows = {}
        for key, step, value in r.frame[["key", "step", "value"]].itertuples(index=False):
            v = float(value)
            rows.setdefault(int(step), {"_step": int(step)})[key] = v if np.isfinite(v) else str(v).replace(
                "nan", "NaN").replace("inf", "Infinity")
        wb.runs.setdefault(("ent", "proj"), []).append(
            StoredRun(r.run_id, display_name=r.run_name, history=[rows[s] for s in sorted(rows)],
                      summary={k: 0.0 for k in r.frame.key.unique()}))
    csv = tmp_path / "runs.csv"
    long_frame(runs)[["run_id", "run_name", "key", "step", "value"]].to_csv(csv, index=False)
    from_file = {r.ref.run_id: r.diagnosis.regime for r in label(FileBackend([str(csv)])).results}
    from_wandb = {r.ref.run_id: r.diagnosis.regime for r in label(WandbBackend("ent/proj")).results}
    assert from_wandb == from_file and len(set(from_file.values())) >= 5


def test_run_without_history_and_filters_passed_through(wb, capsys):
    from helpers import run_cli

    _log(wb, "a", "learning")
    wb.runs[("ent", "proj")].append(StoredRun("empty"))  # finished, never logged a metric
    code, out, _ = run_cli(["label", "wandb", "ent/proj", "--filter", '{"config.lr": {"$gt": 0.01}}', "--json", "-"],
                           capsys)
    rep = {r["run_id"]: r for r in json.loads(out)["runs"]}
    assert code == 0 and rep["empty"]["regime"] == "insufficient_data" and rep["a"]["regime"] == "learning"
    sent = [q["variables"]["filters"] for q in wb.requests if q["operation"] == "Runs"]
    assert sent and all(json.loads(f) == {"config.lr": {"$gt": 0.01}} for f in sent)
    assert run_cli(["label", "wandb", "ent/proj", "--filter", "{not json"], capsys)[0] == 2
