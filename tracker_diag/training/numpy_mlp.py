"""Learning curves from genuinely trained small models, labelled by their cause.

Each run trains a one-hidden-layer numpy MLP (softmax, cross-entropy, mini-batch SGD)
on a dataset that ships with scikit-learn, under a setting known to induce one
training regime (tiny training set + big network, learning rate far too small or
too large, label noise on the training set only, ...). The expected regime comes
from the cause, never from the analyzer. Curves are written under the metric names
that real integrations use, so key recognition is exercised too.

Used by ``tracker-diag demo`` (through :mod:`tracker_diag.training.to_mlflow`), the test-suite,
``scripts/make_corpus.py`` and ``scripts/evaluate_analyzer.py`` (the "numpy" set).
Needs scikit-learn (``pip install 'tracker-diag[demo]'``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from tracker_diag.training import SampleRun

CAUSES = {
    "overfitting": "tiny training subset, wide network, no regularisation",
    "stalled": "learning rate far too small",
    "converged": "sound settings with weight decay, run to convergence",
    "diverging": "learning rate far too large",
    "data_issue": "heavy label noise on the training set only",
    "learning": "sound settings, stopped early",
    "crashed": "run crashed after a couple of epochs",
    "no_validation": "no validation metrics logged",
}
EXPECTED = {
    "overfitting": "overfitting",
    "stalled": "plateau",
    "converged": "plateau",
    "diverging": "diverging",
    "data_issue": "data_issue",
    "learning": "learning",
    "crashed": "insufficient_data",
    "no_validation": "insufficient_data",
}
CONVENTIONS = ("keras", "wandb_keras", "hf", "lightning", "xgboost", "tensorboard", "plain")


def _datasets():
    from sklearn import datasets

    digits = datasets.load_digits()
    cancer = datasets.load_breast_cancer()
    wine = datasets.load_wine()
    return {
        "digits": (digits.data / 16.0, digits.target),
        "breast_cancer": (cancer.data, cancer.target),
        "wine": (wine.data, wine.target),
    }


def _standardize(x_tr, x_te):
    mu, sd = x_tr.mean(0), x_tr.std(0)
    sd[sd < 1e-3] = 1.0  # features constant on a tiny subset must not blow up the test set
    return (x_tr - mu) / sd, (x_te - mu) / sd


def _loss_acc(w1, b1, w2, b2, x, y):
    with np.errstate(all="ignore"):
        h = np.maximum(x @ w1 + b1, 0)
        z = h @ w2 + b2
        z = z - z.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        loss = -logp[np.arange(len(y)), y].mean()
        acc = (z.argmax(1) == y).mean()
    return float(loss), float(acc)


def train_mlp(x_tr, y_tr, x_te, y_te, *, hidden, lr, epochs, batch, l2, seed, lr_decay=0.0,
              stop_after=None, patience=None):
    """Mini-batch SGD; returns per-epoch and per-step curves (floats, may hold NaN/inf)."""
    rng = np.random.default_rng(seed)
    n_cls = int(max(y_tr.max(), y_te.max()) + 1)
    d = x_tr.shape[1]
    w1 = rng.normal(0, np.sqrt(2.0 / d), (d, hidden))
    b1 = np.zeros(hidden)
    w2 = rng.normal(0, 0.1 / np.sqrt(hidden), (hidden, n_cls))  # small last layer: starts at ln(classes)
    b2 = np.zeros(n_cls)
    onehot = np.eye(n_cls)[y_tr]
    ep = {"train_loss": [], "test_loss": [], "train_acc": [], "test_acc": []}
    step_loss = []
    best, best_epoch, best_weights = np.inf, 0, None
    n_epochs = epochs if stop_after is None else min(epochs, stop_after)
    for epoch in range(n_epochs):
        rate = lr / (1.0 + lr_decay * epoch)
        order = rng.permutation(len(x_tr))
        with np.errstate(all="ignore"):
            for start in range(0, len(order), batch):
                idx = order[start:start + batch]
                x, t = x_tr[idx], onehot[idx]
                a = x @ w1 + b1
                h = np.maximum(a, 0)
                z = h @ w2 + b2
                z = z - z.max(1, keepdims=True)
                p = np.exp(z)
                p /= p.sum(1, keepdims=True)
                step_loss.append(float(-np.log(np.clip((p * t).sum(1), 1e-300, None)).mean()))
                g = (p - t) / len(idx)
                gw2 = h.T @ g + l2 * w2
                gh = (g @ w2.T) * (a > 0)
                gw1 = x.T @ gh + l2 * w1
                w2 -= rate * gw2
                b2 -= rate * g.sum(0)
                w1 -= rate * gw1
                b1 -= rate * gh.sum(0)
        for split, (x, y) in (("train", (x_tr, y_tr)), ("test", (x_te, y_te))):
            loss, acc = _loss_acc(w1, b1, w2, b2, x, y)
            ep[f"{split}_loss"].append(loss)
            ep[f"{split}_acc"].append(acc)
        if patience is not None:
            if ep["test_loss"][-1] < best:
                best, best_epoch = ep["test_loss"][-1], epoch
                best_weights = (w1.copy(), b1.copy(), w2.copy(), b2.copy())
            elif epoch - best_epoch >= patience:
                break
    out = {k: np.asarray(v) for k, v in ep.items()}
    out["step_loss"] = np.asarray(step_loss)
    out["steps_per_epoch"] = int(np.ceil(len(x_tr) / batch))
    if patience is not None and best_weights is not None and best_epoch < len(out["test_loss"]) - 1:
        # Keras' EarlyStopping(restore_best_weights=True) + autolog: one extra point with
        # the restored weights, one step past the last epoch.
        restored = {"train": _loss_acc(*best_weights, x_tr, y_tr), "test": _loss_acc(*best_weights, x_te, y_te)}
        out["restored"] = {f"{s}_{m}": restored[s][i] for s in restored for i, m in enumerate(("loss", "acc"))}
    return out


def _settings(cause: str, rng: np.random.Generator, data: dict):
    """Pick dataset, subset and hyper-parameters that induce ``cause``."""
    name = str(rng.choice(["digits", "digits", "breast_cancer", "wine", "synthetic"]))
    if name == "synthetic":
        from sklearn.datasets import make_classification

        x, y = make_classification(n_samples=1200, n_features=20, n_informative=8,
                                   n_classes=int(rng.integers(2, 5)), class_sep=1.0,
                                   random_state=int(rng.integers(1 << 30)))
    else:
        x, y = data[name]
    n_cls = int(y.max() + 1)
    perm = rng.permutation(len(x))
    n_test = max(len(x) // 4, 40)
    te, tr = perm[:n_test], perm[n_test:]
    p: dict[str, Any] = {"dataset": name, "hidden": int(rng.choice([32, 64])), "lr": float(rng.uniform(0.05, 0.2)),
             "epochs": int(rng.integers(60, 120)), "batch": 32, "l2": 0.0, "lr_decay": 0.0,
             "label_noise": 0.0, "stop_after": None, "patience": None}
    if cause == "overfitting":
        tr = tr[: int(rng.integers(max(3 * n_cls, 15), max(6 * n_cls, 40)))]
        p.update(hidden=int(rng.choice([256, 512])), lr=float(rng.uniform(0.05, 0.15)), batch=8,
                 epochs=int(rng.integers(80, 200)))
        if rng.random() < 0.25:
            p["patience"] = int(rng.integers(8, 15))
    elif cause == "stalled":
        p.update(lr=float(10 ** rng.uniform(-7, -6)), epochs=int(rng.integers(30, 100)))
    elif cause == "converged":
        # enough optimizer steps to really converge, whatever the dataset's size
        steps_per_epoch = int(np.ceil(len(tr) / 32))
        p.update(l2=float(rng.uniform(0.01, 0.03)), lr=float(rng.uniform(0.05, 0.1)),
                 epochs=max(150, int(rng.integers(6000, 9000)) // steps_per_epoch), lr_decay=0.01)
    elif cause == "diverging":
        p.update(lr=float(10 ** rng.uniform(0.3, 1.5)), epochs=int(rng.integers(30, 80)))
    elif cause == "data_issue":
        p.update(label_noise=float(rng.uniform(0.7, 0.85)), hidden=int(rng.choice([8, 16])),
                 lr=float(rng.uniform(0.01, 0.03)), l2=0.01, epochs=int(rng.integers(40, 100)))
        if name != "digits":  # ten classes: label noise leaves a signal to learn
            p["dataset"] = "digits"
            x, y = data["digits"]
            n_cls = 10
            perm = rng.permutation(len(x))
            te, tr = perm[:450], perm[450:]
    elif cause == "learning":
        p.update(lr=float(rng.uniform(0.002, 0.01)), epochs=int(rng.integers(12, 40)),
                 hidden=int(rng.choice([16, 32])))
    elif cause == "crashed":
        p.update(stop_after=int(rng.integers(1, 4)))
    x_tr, x_te = _standardize(x[tr].astype(float), x[te].astype(float))
    y_tr, y_te = y[tr].copy(), y[te]
    if p["label_noise"]:
        flip = rng.random(len(y_tr)) < p["label_noise"]
        y_tr[flip] = rng.integers(0, n_cls, flip.sum())
    p["n_train"] = len(tr)
    return x_tr, y_tr, x_te, y_te, p


def _log(convention: str, curves: dict, rng) -> list[tuple[str, float, float]]:
    """Write the curves as the named integration would (keys, axes, quirks)."""
    n = len(curves["train_loss"])
    epochs = np.arange(n, dtype=float)
    spe = curves["steps_per_epoch"]
    rows: list[tuple[str, float, float]] = []

    def put(key, steps, values):
        rows.extend(zip([key] * len(values), np.asarray(steps, float), np.asarray(values, float)))

    has_val = convention != "no_validation"
    restored = curves.get("restored")
    if convention == "keras" or convention == "wandb_keras":
        prefix = "epoch/" if convention == "wandb_keras" else ""
        names = {"train_loss": "loss", "test_loss": "val_loss", "train_acc": "accuracy",
                 "test_acc": "val_accuracy"}
        for role, name in names.items():
            vals = curves[role]
            steps = epochs
            if restored is not None and convention == "keras":
                vals, steps = np.append(vals, restored[role]), np.append(epochs, n)
            put(prefix + name, steps, vals)
        if convention == "keras":  # autolog's validation_* keys, all at step 0
            put("validation_loss", [0.0], [curves["test_loss"][-1]])
        else:
            put("epoch/epoch", epochs, epochs)
    elif convention == "hf":
        gs = (epochs + 1) * spe
        k = max(spe // 2, 1)
        sl = curves["step_loss"]
        m = len(sl) // k
        avg = sl[: m * k].reshape(m, k).mean(1)
        avg = np.where(np.isfinite(avg), avg, 0.0)  # HF Trainer's NaN filter logs 0.0
        put("loss", (np.arange(m) + 1) * k, avg)
        put("eval_loss", gs, curves["test_loss"])
        put("eval_accuracy", gs, curves["test_acc"])
        put("learning_rate", (np.arange(m) + 1) * k, np.full(m, 5e-5))
        put("grad_norm", (np.arange(m) + 1) * k, rng.uniform(0.5, 2.0, m))
        put("train_loss", [gs[-1]], [float(np.nanmean(sl))])
        put("epoch", gs, epochs + 1)
    elif convention == "lightning":
        sl = curves["step_loss"]
        put("train_loss_step", np.arange(len(sl)), sl)
        put("train_loss_epoch", (epochs + 1) * spe - 1, curves["train_loss"])
        put("val_loss", (epochs + 1) * spe - 1, curves["test_loss"])
        put("val_acc", (epochs + 1) * spe - 1, curves["test_acc"])
        put("epoch", (epochs + 1) * spe - 1, epochs)
    elif convention == "xgboost":
        # scikit-learn API with eval_set=[(train), (valid)]: named by position
        put("validation_0-mlogloss", epochs, curves["train_loss"])
        put("validation_1-mlogloss", epochs, curves["test_loss"])
        put("validation_0-merror", epochs, 1 - curves["train_acc"])
        put("validation_1-merror", epochs, 1 - curves["test_acc"])
    elif convention == "tensorboard":
        for role, name in (("train_loss", "Loss/train"), ("test_loss", "Loss/test"),
                           ("train_acc", "Accuracy/train"), ("test_acc", "Accuracy/test")):
            put(name, epochs, curves[role])
    else:  # plain, no_validation
        put("train_loss", epochs, curves["train_loss"])
        put("train_acc", epochs, curves["train_acc"])
        if has_val:
            put("test_loss", epochs, curves["test_loss"])
            put("test_acc", epochs, curves["test_acc"])
    return rows


def generate(n_runs: int = 120, seed: int = 0, causes=None) -> list[SampleRun]:
    """``n_runs`` runs, causes in round-robin, seeded and deterministic."""
    return list(iterate(n_runs, seed, causes))


def iterate(n_runs: int = 120, seed: int = 0, causes=None) -> Iterator[SampleRun]:
    """The runs of :func:`generate`, trained one at a time as they are asked for (the demo
    logs each as soon as it is trained, under a progress bar)."""
    causes = list(causes or CAUSES)
    data = _datasets()
    rng = np.random.default_rng(seed)
    for i in range(n_runs):
        cause = causes[i % len(causes)]
        x_tr, y_tr, x_te, y_te, p = _settings(cause, rng, data)
        curves = train_mlp(x_tr, y_tr, x_te, y_te, hidden=p["hidden"], lr=p["lr"], epochs=p["epochs"],
                           batch=p["batch"], l2=p["l2"], seed=int(rng.integers(1 << 30)),
                           lr_decay=p["lr_decay"], stop_after=p["stop_after"], patience=p["patience"])
        convention = "no_validation" if cause == "no_validation" else CONVENTIONS[(i // len(causes)) % len(CONVENTIONS)]
        run_id = f"s{seed}-{i:04d}"
        yield SampleRun.from_rows(run_id, f"{cause}-{p['dataset']}-{i}", cause, EXPECTED[cause], convention, p,
                                  _log(convention, curves, rng))
