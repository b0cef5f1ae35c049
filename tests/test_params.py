from tracker_diag.params import regime_table


def test_high_learning_rates_are_found_diverging():
    runs = [("diverging" if i < 9 else "learning", {"lr": str(0.5 + i), "optimizer": "sgd"}) for i in range(10)]
    runs += [("learning", {"lr": str(0.001 * (i + 1)), "optimizer": "adam"}) for i in range(30)]
    table = regime_table(runs)
    top = table["findings"][0]
    assert top["regime"] == "diverging" and top["param"] == "lr"
    assert top["text"].startswith("lr ≥ ") and top["count"] / top["runs"] >= 0.6
    rows = [r for r in table["rows"] if r["param"] == "lr"]
    assert sum(r["runs"] for r in rows) == 40  # every run in exactly one bin
    assert sum(r["by_regime"].get("diverging", 0) for r in rows) == 9
    opt = {r["bin"]: r["by_regime"] for r in table["rows"] if r["param"] == "optimizer"}
    assert opt["optimizer = sgd"] == {"learning": 1, "diverging": 9}


def test_constants_system_params_and_unlabelled_runs_are_left_out():
    runs = [("learning", {"seed": "1", "mlflow.source": "x"}), ("plateau", {"seed": "1"}), (None, {"seed": "2"})]
    assert regime_table(runs) == {"rows": [], "findings": []}


def test_few_distinct_numbers_are_grouped_by_value():
    runs = [("overfitting", {"dropout": "0.0"})] * 4 + [("learning", {"dropout": "0.5"})] * 4
    table = regime_table(runs)
    assert [r["bin"] for r in table["rows"]] == ["dropout = 0", "dropout = 0.5"]
    assert table["findings"][0]["text"] == "dropout = 0: 4 of 4 runs overfitting"
