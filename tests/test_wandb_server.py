"""The W&B test server, driven by the real wandb SDK (the base of the W&B connector's tests)."""

import json
import urllib.request

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
    assert sum(op.startswith("#graphql query Runs") for op in ops) == 3  # 7 runs, 3 per page
    assert ops.count("Viewer") <= 1


def test_every_query_is_validated_against_the_schema(wb):
    body = json.dumps({"query": "query { project(name: \"p\", entityName: \"ent\") { runs { edges { node "
                                "{ name notAField } } } } }"}).encode()
    req = urllib.request.Request(wb.url + "/graphql", data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        answer = json.load(resp)
    assert answer["data"] is None and "notAField" in answer["errors"][0]["message"]
    assert wb.requests[-1]["errors"]
