"""A wider corpus of genuinely trained runs, each labelled by the cause that induced it.

Beyond the numpy MLP of :mod:`tracker_diag.training.numpy_mlp`: scikit-learn's ``MLPClassifier`` and
``MLPRegressor`` trained with ``partial_fit`` (one epoch, or one minibatch, per call),
``SGDClassifier``, ``GradientBoostingClassifier`` and
``HistGradientBoostingRegressor`` read stage by stage; with learning-rate schedules
(warmup, cosine, step decay), input-noise injection (the augmentation that lifts a train
loss above its validation loss), fine-tuning from a pre-trained start, early stopping,
regression losses and per-step train logs. The expected regime is the cause's, never the
analyzer's. Curves are written under the keys real integrations use.

    from tracker_diag.training.sklearn_models import generate
    runs = generate(200, seed=5)        # tracker_diag.training.SampleRun objects

Needs scikit-learn (``pip install 'tracker-diag[demo]'``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator

import numpy as np

from tracker_diag.training import SampleRun

# cause -> (expected regime, what induces it)
CAUSES: dict[str, tuple[str, str]] = {
    "mlp_learning": ("learning", "MLPClassifier, small learning rate, stopped early"),
    "mlp_learning_long": ("learning", "MLPClassifier, small rate, run long enough to decelerate, stopped while improving"),
    "mlp_learning_gap": ("learning", "MLPClassifier, wide, train pulls ahead of a still-improving validation"),
    "mlp_learning_noise": ("learning", "MLPClassifier with input-noise augmentation, stopped early"),
    "mlp_finetune": ("learning", "MLPClassifier pre-trained on half the classes, fine-tuned at a low rate"),
    "mlp_overfit": ("overfitting", "MLPClassifier, wide, no regularisation, tiny training subset"),
    "mlp_overfit_es": ("overfitting", "as mlp_overfit, stopped by early stopping (patience) after the best"),
    "mlp_converged": ("plateau", "MLPClassifier, weight decay, cosine schedule to zero, run to convergence"),
    "mlp_stalled": ("plateau", "MLPClassifier, learning rate 1e-7"),
    "mlp_diverging": ("diverging", "MLPClassifier with plain SGD, learning rate far too large"),
    "mlp_label_noise": ("data_issue", "MLPClassifier on digits, 75-85 % of training labels redrawn, test labels clean"),
    "reg_learning": ("learning", "MLPRegressor, warmup then small rate, stopped early (MSE)"),
    "reg_overfit": ("overfitting", "MLPRegressor, wide, tiny noisy training subset (MSE)"),
    "reg_converged": ("plateau", "MLPRegressor, step-decay schedule, run to convergence (MSE)"),
    "reg_diverging": ("diverging", "MLPRegressor, plain SGD, a warmup that ramps the rate far too high (MSE)"),
    "sgd_learning": ("learning", "SGDClassifier log-loss, tiny constant rate, few epochs"),
    "sgd_converged": ("plateau", "SGDClassifier log-loss, 'optimal' (1/t) schedule, weight decay, many epochs"),
    "gb_learning": ("learning", "GradientBoostingClassifier, learning rate 0.02, few stages"),
    "gb_overfit": ("overfitting", "GradientBoostingClassifier, deep trees, rate 0.5, small noisy data"),
    "hgb_learning": ("learning", "HistGradientBoostingRegressor, rate 0.03, few stages (RMSE)"),
    "hgb_overfit": ("overfitting", "HistGradientBoostingRegressor, 255 leaves, small noisy data (RMSE)"),
}
# partial_fit is called on chunks of 4 minibatches of 32 (its own batch_size): one logged
# "step" averages 4 updates, as HF's logging_steps or Lightning's log_every_n_steps do.
_CHUNK = 128
CLASS_STYLES = ("keras", "wandb_keras", "hf", "lightning", "tensorboard", "plain", "wandb_hf", "sklearn")
REG_STYLES = ("keras", "lightning", "tensorboard", "plain_rmse", "xgboost_rmse", "wandb_hf")


def _data(name: str, rng: np.random.Generator):
    from sklearn import datasets

    if name == "digits":
        d = datasets.load_digits()
        return d.data / 16.0, d.target
    if name == "breast_cancer":
        d = datasets.load_breast_cancer()
        return d.data, d.target
    if name == "wine":
        d = datasets.load_wine()
        return d.data, d.target
    if name == "diabetes":
        d = datasets.load_diabetes()
        return d.data, d.target
    if name == "friedman":
        x, y = datasets.make_friedman1(n_samples=1200, noise=1.0, random_state=int(rng.integers(1 << 30)))
        return x, y
    x, y = datasets.make_classification(n_samples=1500, n_features=20, n_informative=10, n_classes=int(rng.integers(2, 5)),
                                        class_sep=1.2, random_state=int(rng.integers(1 << 30)))
    return x, y


def _split(x, y, rng, n_train=None, test_frac=0.3):
    perm = rng.permutation(len(x))
    n_test = max(int(len(x) * test_frac), 40)
    te, tr = perm[:n_test], perm[n_test:]
    if n_train is not None:
        tr = tr[:n_train]
    mu, sd = x[tr].mean(0), x[tr].std(0)
    sd[sd < 1e-3] = 1.0
    return (x[tr] - mu) / sd, y[tr].copy(), (x[te] - mu) / sd, y[te].copy()


def _schedule(kind: str, epoch: int, epochs: int, base: float) -> float:
    """Warmup, cosine and step-decay schedules as the frameworks define them."""
    if kind == "cosine":  # SGDR / torch CosineAnnealingLR to zero
        return base * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
    if kind == "step":  # torch StepLR(step_size=epochs // 3, gamma=0.1)
        return base * 0.1 ** (epoch // max(epochs // 3, 1))
    if kind == "warmup":  # linear warmup over the first 10 % then constant
        return base * min(1.0, (epoch + 1) / max(epochs // 10, 1))
    return base


def _set_rate(model, rate: float) -> None:
    """partial_fit builds its optimizer once: a schedule changes the optimizer's rate."""
    opt = getattr(model, "_optimizer", None)
    if opt is None:
        model.set_params(learning_rate_init=rate)
    else:
        opt.learning_rate_init = opt.learning_rate = rate  # Adam recomputes from _init


def _class_metrics(model, x, y, classes):
    """Cross-entropy and accuracy; NaN weights give a NaN loss, as a framework logs it."""
    with np.errstate(all="ignore"):
        p = model.predict_proba(x)
        picked = p[np.arange(len(y)), np.searchsorted(classes, y)]
        loss = float(-np.mean(np.log(np.clip(picked, 1e-15, 1.0)))) if np.isfinite(p).all() else math.nan
    return loss, float((classes[p.argmax(1)] == y).mean())


def _mlp_setting(cause: str, rng: np.random.Generator, n_classes: int) -> dict:
    """The MLP's hyper-parameters that cause ``cause`` (random draws in a fixed order: the
    corpora of a seed stay the same)."""
    st = {"hidden": int(rng.choice([32, 64])), "lr": float(rng.uniform(1e-3, 3e-3)), "epochs": 80, "alpha": 1e-4,
          "n_train": None, "solver": "adam", "sched": "const", "noise": 0.0, "patience": None, "pretrain": False}
    if cause in ("mlp_learning", "mlp_learning_noise"):
        st.update(lr=float(rng.uniform(5e-5, 2e-4)), epochs=int(rng.integers(15, 40)))
        st["noise"] = float(rng.uniform(0.4, 0.8)) if cause == "mlp_learning_noise" else 0.0
    elif cause == "mlp_learning_long":
        st.update(lr=float(rng.uniform(1e-4, 2e-4)), epochs=int(rng.integers(60, 90)))
    elif cause == "mlp_learning_gap":
        st["n_train"] = int(rng.integers(500, 800))
        st.update(hidden=256, alpha=1e-4, lr=float(rng.uniform(1e-4, 2e-4)), epochs=int(rng.integers(30, 50)))
    elif cause == "mlp_finetune":
        st.update(pretrain=True, lr=float(rng.uniform(3e-4, 6e-4)), epochs=int(rng.integers(12, 25)))
    elif cause in ("mlp_overfit", "mlp_overfit_es"):
        st["n_train"] = int(rng.integers(4 * n_classes, 10 * n_classes)) + 10
        st.update(hidden=int(rng.choice([256, 512])), alpha=0.0, lr=float(rng.uniform(3e-3, 1e-2)),
                  epochs=int(rng.integers(120, 250)))
        st["patience"] = int(rng.integers(10, 20)) if cause == "mlp_overfit_es" else None
    elif cause == "mlp_converged":
        st.update(alpha=float(rng.uniform(0.5, 2.0)), sched="cosine", epochs=int(rng.integers(80, 120)))
        st["lr"] = float(rng.uniform(5e-3, 1e-2))
    elif cause == "mlp_stalled":
        st.update(lr=float(10 ** rng.uniform(-8, -7)), epochs=int(rng.integers(30, 80)))
    elif cause == "mlp_diverging":
        st.update(solver="sgd", lr=float(10 ** rng.uniform(0.7, 1.5)), epochs=int(rng.integers(30, 60)))
    return st


def _mlp_classifier(cause, rng, out):
    from sklearn.neural_network import MLPClassifier

    name = "digits" if cause == "mlp_label_noise" else str(rng.choice(["digits", "synthetic", "wine", "breast_cancer"]))
    x, y = _data(name, rng)
    classes = np.unique(y)
    st = _mlp_setting(cause, rng, len(classes))
    hidden, lr, epochs, alpha, n_train = st["hidden"], st["lr"], st["epochs"], st["alpha"], st["n_train"]
    solver, sched, noise, patience, pretrain = st["solver"], st["sched"], st["noise"], st["patience"], st["pretrain"]
    x_tr, y_tr, x_te, y_te = _split(x, y, rng, n_train)
    if cause == "mlp_label_noise":  # most training labels redrawn: what is left to learn is the clean rest
        flip = rng.random(len(y_tr)) < float(rng.uniform(0.75, 0.85))
        y_tr[flip] = rng.choice(classes, int(flip.sum()))
        hidden, alpha, lr, epochs = int(rng.choice([8, 16])), 1.0, float(rng.uniform(3e-4, 1e-3)), int(rng.integers(40, 80))
    m = MLPClassifier(hidden_layer_sizes=(hidden,), solver=solver, alpha=alpha, learning_rate_init=lr,
                      batch_size=32, random_state=int(rng.integers(1 << 30)), momentum=0.0)
    if pretrain:  # pre-trained on a fifth of the data at a normal rate, then fine-tuned on all at a low one
        _set_rate(m, 3e-3)
        part = rng.permutation(len(x_tr))[: max(len(x_tr) // 5, 40)]
        for _ in range(int(rng.integers(2, 4))):
            m.partial_fit(x_tr[part], y_tr[part], classes=classes)
    log = {"train_loss": [], "test_loss": [], "train_acc": [], "test_acc": [], "step_loss": []}
    best, best_ep = math.inf, 0
    batch = _CHUNK
    for ep in range(epochs):
        _set_rate(m, max(_schedule(sched, ep, epochs, lr), 1e-9))
        order = rng.permutation(len(x_tr))
        try:
            for s in range(0, len(order), batch):
                idx = order[s:s + batch]
                xb = x_tr[idx] + (noise * rng.standard_normal(x_tr[idx].shape) if noise else 0.0)
                m.partial_fit(xb, y_tr[idx], classes=classes)
                log["step_loss"].append(float(m.loss_))
        except ValueError:  # sklearn refuses non-finite weights: the run crashed, its last log is NaN
            for k in ("train_loss", "test_loss", "step_loss"):
                log[k].append(math.nan)
            log["train_acc"].append(1.0 / len(classes))
            log["test_acc"].append(1.0 / len(classes))
            break
        # Keras and Lightning log the train metrics of the augmented batches: noisy inputs here
        x_seen = x_tr + noise * rng.standard_normal(x_tr.shape) if noise else x_tr
        for split, (xs, ys) in (("train", (x_seen, y_tr)), ("test", (x_te, y_te))):
            loss, acc = _class_metrics(m, xs, ys, classes)
            log[f"{split}_loss"].append(loss)
            log[f"{split}_acc"].append(acc)
        if patience is not None:
            if log["test_loss"][-1] < best:
                best, best_ep = log["test_loss"][-1], ep
            elif ep - best_ep >= patience:
                break
    out["spe"] = math.ceil(len(x_tr) / batch)
    out["params"] = {"dataset": name, "hidden": hidden, "lr": lr, "alpha": alpha, "schedule": sched, "noise": noise}
    return log


def _mlp_regressor(cause, rng, out):
    from sklearn.neural_network import MLPRegressor

    name = str(rng.choice(["diabetes", "friedman"]))
    x, y = _data(name, rng)
    y = (y - y.mean()) / y.std()
    hidden, lr, epochs, alpha, n_train, sched = 64, 1e-3, 60, 1e-4, None, "const"
    if cause == "reg_learning":
        lr, epochs, sched = float(rng.uniform(3e-5, 1e-4)), int(rng.integers(20, 40)), "warmup"
    elif cause == "reg_overfit":
        n_train, hidden, alpha = int(rng.integers(25, 50)), 512, 0.0
        lr, epochs = float(rng.uniform(1e-3, 3e-3)), int(rng.integers(200, 300))
    elif cause == "reg_converged":
        alpha, sched, epochs, lr = float(rng.uniform(1.0, 3.0)), "step", int(rng.integers(80, 120)), 5e-3
    elif cause == "reg_diverging":  # a warmup that never stops: the rate grows 30-60 % an epoch
        sched, epochs, lr = "ramp", 60, float(rng.uniform(1e-3, 3e-3))
    x_tr, y_tr, x_te, y_te = _split(x, y, rng, n_train)
    if cause == "reg_overfit":
        y_tr = y_tr + 0.5 * rng.standard_normal(len(y_tr))
    m = MLPRegressor(hidden_layer_sizes=(hidden,), alpha=alpha, learning_rate_init=lr, batch_size=32,
                     solver="sgd" if sched == "ramp" else "adam", momentum=0.9, learning_rate="constant",
                     random_state=int(rng.integers(1 << 30)))
    log = {"train_loss": [], "test_loss": [], "step_loss": []}
    growth = float(rng.uniform(1.3, 1.6))
    for ep in range(epochs):
        rate = lr * growth ** ep if sched == "ramp" else _schedule(sched, ep, epochs, lr)
        _set_rate(m, max(rate, 1e-9))
        order = rng.permutation(len(x_tr))
        try:
            for s in range(0, len(order), _CHUNK):
                idx = order[s:s + _CHUNK]
                m.partial_fit(x_tr[idx], y_tr[idx])
                log["step_loss"].append(2 * float(m.loss_))  # sklearn's squared_error loss is MSE / 2
        except ValueError:  # non-finite weights: the run crashed with a NaN last log
            for k in ("train_loss", "test_loss", "step_loss"):
                log[k].append(math.nan)
            break
        log["train_loss"].append(float(np.mean((m.predict(x_tr) - y_tr) ** 2)))
        log["test_loss"].append(float(np.mean((m.predict(x_te) - y_te) ** 2)))
    out["spe"] = math.ceil(len(x_tr) / _CHUNK)
    out["params"] = {"dataset": name, "hidden": hidden, "lr": lr, "alpha": alpha, "schedule": sched}
    return log


def _sgd(cause, rng, out):
    from sklearn.linear_model import SGDClassifier

    log = {"train_loss": [], "test_loss": []}
    # digits keeps creeping down 2-3 % per 40 epochs under any SGD schedule: not converged
    x, y = _data(str(rng.choice(["digits", "synthetic"] if cause == "sgd_learning" else ["breast_cancer", "synthetic"])), rng)
    classes = np.unique(y)
    x_tr, y_tr, x_te, y_te = _split(x, y, rng)
    if cause == "sgd_learning":
        m = SGDClassifier(loss="log_loss", learning_rate="constant", eta0=float(10 ** rng.uniform(-4.3, -3.8)),
                          alpha=1e-4, random_state=int(rng.integers(1 << 30)))
        epochs = int(rng.integers(15, 40))
    else:
        m = SGDClassifier(loss="log_loss", learning_rate="optimal", alpha=1e-2,
                          random_state=int(rng.integers(1 << 30)))
        epochs = int(rng.integers(80, 150))
    log.update(train_acc=[], test_acc=[])
    for _ in range(epochs):
        m.partial_fit(x_tr, y_tr, classes=classes)
        for split, (xs, ys) in (("train", (x_tr, y_tr)), ("test", (x_te, y_te))):
            loss, acc = _class_metrics(m, xs, ys, classes)
            log[f"{split}_loss"].append(loss)
            log[f"{split}_acc"].append(acc)
    out["params"] = {"model": "SGDClassifier", "eta0": m.eta0, "schedule": m.learning_rate}
    return log


def _boosting(cause, rng, out):
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.metrics import log_loss

    if cause.startswith("gb_"):
        x, y = _data(str(rng.choice(["breast_cancer", "synthetic"])), rng)
        learning = cause == "gb_learning"
        x_tr, y_tr, x_te, y_te = _split(x, y, rng, None if learning else int(rng.integers(80, 150)))
        if not learning:
            flip = rng.random(len(y_tr)) < 0.2
            y_tr[flip] = rng.choice(np.unique(y), flip.sum())
        m = GradientBoostingClassifier(n_estimators=int(rng.integers(40, 80)) if learning else 150,
                                       learning_rate=0.02 if learning else 0.5, max_depth=2 if learning else 6,
                                       random_state=int(rng.integers(1 << 30)))
        m.fit(x_tr, y_tr)
        classes = m.classes_
        log = {"train_loss": [], "test_loss": [], "train_acc": [], "test_acc": []}
        for split, (xs, ys) in (("train", (x_tr, y_tr)), ("test", (x_te, y_te))):
            for p in m.staged_predict_proba(xs):
                log[f"{split}_loss"].append(float(log_loss(ys, np.clip(p, 1e-15, 1), labels=classes)))
                log[f"{split}_acc"].append(float((classes[p.argmax(1)] == ys).mean()))
        out["params"] = {"model": "GradientBoostingClassifier", "lr": m.learning_rate, "depth": m.max_depth}
        return log
    x, y = _data("friedman", rng)
    learning = cause == "hgb_learning"
    x_tr, y_tr, x_te, y_te = _split(x, y, rng, None if learning else int(rng.integers(100, 200)))
    if not learning:
        y_tr = y_tr + 2.0 * rng.standard_normal(len(y_tr))
    m = HistGradientBoostingRegressor(max_iter=int(rng.integers(30, 60)) if learning else 300,
                                      learning_rate=0.03 if learning else 0.3, max_leaf_nodes=7 if learning else 255,
                                      min_samples_leaf=20 if learning else 1, early_stopping=False,
                                      random_state=int(rng.integers(1 << 30)))
    m.fit(x_tr, y_tr)
    log = {"train_loss": [], "test_loss": []}
    for split, (xs, ys) in (("train", (x_tr, y_tr)), ("test", (x_te, y_te))):
        for p in m.staged_predict(xs):
            log[f"{split}_loss"].append(float(np.sqrt(np.mean((p - ys) ** 2))))
    out["params"] = {"model": "HistGradientBoostingRegressor", "lr": m.learning_rate, "leaves": m.max_leaf_nodes}
    return log


def _train(cause: str, rng: np.random.Generator) -> tuple[dict, dict]:
    out: dict = {}
    if cause.startswith("mlp_"):
        log = _mlp_classifier(cause, rng, out)
    elif cause.startswith("reg_"):
        log = _mlp_regressor(cause, rng, out)
    elif cause.startswith("sgd_"):
        log = _sgd(cause, rng, out)
    else:
        log = _boosting(cause, rng, out)
    return {k: np.asarray(v, float) for k, v in log.items()}, out


def _rows(style: str, log: dict, spe: int) -> list[tuple[str, float, float]]:
    """The curves under the keys and axes the named integration writes."""
    n = len(log["train_loss"])
    ep = np.arange(n, dtype=float)
    rows: list[tuple[str, float, float]] = []
    acc = "train_acc" in log

    def put(key, steps, values):
        rows.extend(zip([key] * len(values), np.asarray(steps, float), np.asarray(values, float)))

    sl = log.get("step_loss")
    if style in ("keras", "wandb_keras"):
        pre = "epoch/" if style == "wandb_keras" else ""
        put(pre + "loss", ep, log["train_loss"])
        put(pre + "val_loss", ep, log["test_loss"])
        if acc:
            put(pre + "accuracy", ep, log["train_acc"])
            put(pre + "val_accuracy", ep, log["test_acc"])
    elif style in ("hf", "wandb_hf") and sl is not None and len(sl) >= 2 * n:
        names = ("train/", "eval/") if style == "wandb_hf" else ("", "eval_")
        gs = (ep + 1) * spe
        k = max(spe // 2, 1)
        m = len(sl) // k
        avg = np.where(np.isfinite(a := sl[: m * k].reshape(m, k).mean(1)), a, 0.0)  # HF's NaN filter logs 0.0
        put(names[0] + "loss", (np.arange(m) + 1) * k, avg)
        put(names[1] + "loss", gs, log["test_loss"])
        if acc:
            put(names[1] + "accuracy", gs, log["test_acc"])
        put(names[0] + "learning_rate", (np.arange(m) + 1) * k, np.full(m, 1e-4))
    elif style == "lightning" and sl is not None:
        put("train_loss_step", np.arange(len(sl)), sl)
        put("train_loss_epoch", (ep + 1) * spe - 1, log["train_loss"])
        put("val_loss", (ep + 1) * spe - 1, log["test_loss"])
        if acc:
            put("val_acc", (ep + 1) * spe - 1, log["test_acc"])
    elif style == "tensorboard":
        put("Loss/train", ep, log["train_loss"])
        put("Loss/test", ep, log["test_loss"])
        if acc:
            put("Accuracy/train", ep, log["train_acc"])
            put("Accuracy/test", ep, log["test_acc"])
    elif style == "plain_rmse":
        put("train_rmse", ep, np.sqrt(log["train_loss"]))
        put("valid_rmse", ep, np.sqrt(log["test_loss"]))
    elif style == "xgboost_rmse":
        put("validation_0-rmse", ep, np.sqrt(log["train_loss"]))
        put("validation_1-rmse", ep, np.sqrt(log["test_loss"]))
    elif style == "sklearn":
        put("training_loss", ep + 1, log["train_loss"])
        put("validation_loss", ep + 1, log["test_loss"])
        if acc:
            put("train_acc", ep + 1, log["train_acc"])
            put("valid_acc", ep + 1, log["test_acc"])
    else:  # plain (and any style whose step log is missing)
        put("train_loss", ep, log["train_loss"])
        put("test_loss", ep, log["test_loss"])
        if acc:
            put("train_acc", ep, log["train_acc"])
            put("test_acc", ep, log["test_acc"])
    return rows


def generate(n_runs: int = 210, seed: int = 5, causes=None) -> list[SampleRun]:
    """``n_runs`` runs, causes in round-robin, logging styles rotating; seeded."""
    return list(iterate(n_runs, seed, causes))


def iterate(n_runs: int = 210, seed: int = 5, causes=None) -> Iterator[SampleRun]:
    """The runs of :func:`generate`, trained one at a time as they are asked for: the ``i``-th
    run is the same, and costs only the ``i`` before it."""
    causes = list(causes or CAUSES)
    rng = np.random.default_rng(seed)
    for i in range(n_runs):
        cause = causes[i % len(causes)]
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")  # ConvergenceWarning and overflow of the induced failures
            log, out = _train(cause, rng)
        styles = CLASS_STYLES if "train_acc" in log else REG_STYLES
        style = styles[(i // len(causes)) % len(styles)]
        run_id = f"c{seed}-{i:04d}"
        yield SampleRun.from_rows(run_id, f"{cause}-{i}", cause, CAUSES[cause][0], style, out.get("params", {}),
                                  _rows(style, log, out.get("spe", 1)))
