"""The six ways analyzer v1 got real curves wrong (issue 9), each on genuinely trained runs
(scikit-learn models via tracker_diag.training.sklearn_models, a few seconds in all) or on curves of the
kind real logs hold (a Keras console log of NaNs, a Lightning per-step train loss).
"""

import functools
import math
import warnings

import numpy as np
import pytest

from tracker_diag.analyze import analyze, analyze_frame
from tracker_diag.frames import split_runs
from tracker_diag.training.sklearn_models import generate, iterate

pytest.importorskip("sklearn")
pytestmark = pytest.mark.slow  # genuinely trained runs


@functools.cache
def trained(cause: str, n: int = 3, seed: int = 21):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return generate(n, seed=seed, causes=[cause])


def styled(cause: str, seed: int, style: str):
    """The first run of ``generate(…, seed, [cause])`` logged in ``style``, training no run after it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return next(r for r in iterate(8, seed=seed, causes=[cause]) if r.convention == style)


def hist_of(run) -> dict:
    return next(split_runs(run.frame))[1]


def _mlp_epochs(epochs: int, lr: float, seed: int = 0, chunk: int = 128):
    """Train sklearn's MLPClassifier on digits for a few epochs; return logged curves."""
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(x))
    tr, te = idx[:1200], idx[1200:]
    m = MLPClassifier(hidden_layer_sizes=(32,), learning_rate_init=lr, batch_size=min(32, chunk), random_state=seed)
    classes = np.unique(y)
    out = {"train_loss": [], "val_loss": [], "step": []}
    for _ in range(epochs):
        order = rng.permutation(tr)
        for s in range(0, len(order), chunk):
            m.partial_fit(x[order[s:s + chunk]], y[order[s:s + chunk]], classes=classes)
            out["step"].append(float(m.loss_))
        for key, rows in (("train_loss", tr), ("val_loss", te)):
            p = m.predict_proba(x[rows])
            out[key].append(float(-np.mean(np.log(np.clip(p[np.arange(len(rows)), y[rows]], 1e-15, 1)))))
    return out


# 1. Still-learning runs read as flat -------------------------------------------------------
# (cause, seed, logging style): v1 called each of these plateau

@pytest.mark.parametrize("seed, style", [(23, "keras"), (27, "hf"), (30, "hf")])
def test_decelerating_curves_that_still_fall_are_learning(seed, style):
    run = styled("mlp_learning_long", seed, style)
    d = analyze_frame(run.frame)
    assert d["regime"] == "learning", d["reasons"]


# 2. Test falling more slowly than train is not overfitting --------------------------------

@pytest.mark.parametrize("seed", [26, 29])
def test_validation_improving_more_slowly_than_train_is_learning(seed):
    run = styled("mlp_learning_long", seed, "wandb_keras")
    h = hist_of(run)
    d = analyze(h)
    tr, te = (h[d.keys[k]][1] for k in ("train_loss", "test_loss"))
    late = len(tr) * 6 // 10
    assert (tr[late] - tr[-1]) / tr[late] > (te[late] - te[-1]) / te[late] > 0.05  # the premise
    assert d.regime == "learning", d.reasons


# 3. Augmentation, dropout and epoch averaging are not data problems ------------------------

@pytest.mark.parametrize("seed, style", [(25, "wandb_keras"), (35, "hf"), (40, "keras")])
def test_noise_augmented_runs_with_train_above_validation_are_learning(seed, style):
    run = styled("mlp_learning_noise", seed, style)
    h = hist_of(run)
    d = analyze(h)
    tr, te = (h[d.keys[k]][1] for k in ("train_loss", "test_loss"))
    assert tr[-1] > te[-1]  # the premise: the augmented train loss sits above validation
    assert d.regime == "learning", d.reasons


# 4. NaN everywhere is divergence ------------------------------------------------------------

def test_loss_nan_at_every_logged_epoch_is_diverging():
    # Keras prints `loss: nan - val_loss: nan` every epoch once the weights overflow
    epochs = np.arange(1, 9, dtype=float)
    d = analyze({"loss": (epochs, np.full(8, np.nan)), "val_loss": (epochs, np.full(8, np.nan)),
                 "accuracy": (epochs, np.full(8, 0.1)), "val_accuracy": (epochs, np.full(8, 0.1))})
    assert d.regime == "diverging" and d.confidence == "high" and "nonfinite" in d.flags


def test_nan_from_the_second_epoch_on_is_diverging():
    epochs = np.arange(1, 8, dtype=float)
    d = analyze({"loss": (epochs, [0.62] + [math.nan] * 6), "val_loss": (epochs, [0.53] + [math.nan] * 6)})
    assert d.regime == "diverging"


def test_a_classifier_whose_loss_sat_far_above_chance_from_the_start_is_diverging():
    for run in trained("mlp_diverging", n=4, seed=2):
        d = analyze_frame(run.frame)
        assert d["regime"] == "diverging", (run.convention, d["reasons"])


# 5. Short runs still say something --------------------------------------------------------

def test_four_monotone_epochs_are_learning_with_low_confidence():
    c = _mlp_epochs(4, lr=1e-3)
    assert all(np.diff(c["val_loss"]) < 0)  # the premise: monotone
    e = np.arange(4.0)
    d = analyze({"loss": (e, c["train_loss"]), "val_loss": (e, c["val_loss"])})
    assert d.regime == "learning" and d.confidence == "low", d.reasons


# 6. Noise is not a trend ---------------------------------------------------------------------

def test_noisy_per_step_train_loss_under_a_tiny_rate_is_no_divergence():
    c = _mlp_epochs(5, lr=1e-7, seed=5, chunk=16)  # v1: "ends above where it started"
    steps = np.arange(len(c["step"]), dtype=float)
    per_epoch = len(c["step"]) // 5
    d = analyze({"train_loss_step": (steps, c["step"]),
                 "val_loss": ((np.arange(5) + 1) * per_epoch - 1.0, c["val_loss"])})
    assert d.regime == "plateau" and "stalled" in d.flags, d.reasons


def _with_test_outlier(seed: int, index: int, factor: float):
    """A genuinely trained learning run with one test point multiplied by ``factor``."""
    h = dict(hist_of(trained("mlp_learning", n=1, seed=seed)[0]))
    key = analyze(h).keys["test_loss"]
    steps, values = h[key]
    values = values.copy()
    values[index] *= factor
    h[key] = (steps, values)
    return analyze(h), steps


def test_one_huge_first_validation_point_sets_neither_range_nor_best_step():
    d, steps = _with_test_outlier(8, 0, 50)  # a first evaluation before the statistics settled
    assert d.regime == "learning" and d.best_step != steps[0], d.reasons


def test_one_late_outlier_is_a_spike_not_overfitting():
    d, _ = _with_test_outlier(9, -3, 3)
    assert d.regime == "learning" and "spikes" in d.flags, d.reasons


def test_wider_corpus_one_run_per_cause_gets_its_cause_regime():
    """A seeded few of tracker_diag.training.sklearn_models: every cause once (scripts/evaluate_analyzer.py runs 210)."""
    from tracker_diag.training.sklearn_models import CAUSES

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = generate(len(CAUSES), seed=3)
    got = [(r.cause, r.expected, analyze_frame(r.frame)["regime"]) for r in runs]
    wrong = [g for g in got if g[1] != g[2]]
    assert {e for _, e, _ in got} == {"learning", "overfitting", "data_issue", "plateau", "diverging"}
    assert wrong == []
