"""The seven ways analyzer v2 got curves from unseen repositories wrong (issue 19), each on
curves of the kind those repositories log: a per-step train loss next to a per-epoch
validation, short Keras runs with jitter, regression losses spanning decades with spikes,
chance-level runs, a clipped log loss next to an all-NaN validation, misspelt keys.
Each test fails on analyzer v2 (ANALYZER_VERSION 2)."""

import math
import re

import numpy as np
import pytest

from tracker_diag.analyze import analyze


def _epochs(n: int) -> np.ndarray:
    return np.arange(1, n + 1, dtype=float)


def _run(train, test, *, train_steps=None, test_steps=None, train_key="loss", test_key="val_loss", extra=None):
    h = {train_key: (train_steps if train_steps is not None else _epochs(len(train)), np.asarray(train, float)),
         test_key: (test_steps if test_steps is not None else _epochs(len(test)), np.asarray(test, float))}
    h.update(extra or {})
    return h


def _decay(n, start, end, rate=3.0):
    t = np.linspace(0, 1, n)
    return end + (start - end) * np.exp(-rate * t)


# 1. A large late move called flat ------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_late_fall_of_a_noisy_step_level_train_loss_is_not_flat(seed):
    """A per-step train loss (40 steps an epoch, minibatch noise 25 % of its level) next to a
    per-epoch validation loss, both still falling by about a third over the late part."""
    rng = np.random.default_rng(seed)
    epochs, per = 30, 40
    level = np.repeat(np.linspace(1.0, 0.45, epochs), per)
    train = level * (1 + 0.25 * rng.standard_normal(level.size))
    val = np.linspace(1.1, 0.55, epochs) * (1 + 0.08 * rng.standard_normal(epochs))
    d = analyze(_run(train, val, train_steps=np.arange(level.size, dtype=float),
                     test_steps=np.arange(1, epochs + 1, dtype=float) * per - 1))
    assert d.regime == "learning", d.reasons
    assert "(flat)" not in d.reasons[-1]


def test_a_short_keras_run_with_jitter_still_falling_19_percent_is_learning():
    rng = np.random.default_rng(4)
    n = 12
    train = np.linspace(1.2, 0.6, n) * (1 + 0.06 * rng.standard_normal(n))
    val = np.linspace(1.3, 0.8, n) * (1 + 0.06 * rng.standard_normal(n))
    d = analyze(_run(train, val))
    assert d.regime == "learning", d.reasons


# 2. Spikes set the level ------------------------------------------------------------------------

def _spiky_regression(rng, n, base):
    """A regression loss that fell two decades early, then sits at ``base`` with jitter and
    isolated spikes 5-10x the level."""
    v = base * np.exp(4.6 * np.exp(-np.linspace(0, 1, n) * 12)) * (1 + 0.08 * rng.standard_normal(n))
    for i in rng.choice(np.arange(8, n), size=n // 12, replace=False):
        v[i] *= rng.uniform(5, 10)
    return v


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spikes_on_a_flat_regression_loss_set_neither_the_level_nor_the_best(seed):
    rng = np.random.default_rng(seed)
    n = 80
    train, val = _spiky_regression(rng, n, 0.02), _spiky_regression(rng, n, 0.03)
    late = n - math.ceil(0.4 * n)
    val[late:late + 2] *= 10  # the late window starts on a spike (two evaluations long)
    val[-7:-5] *= 8  # and one after the minimum
    d = analyze(_run(train, val, train_key="train_mse", test_key="val_mse"))
    assert d.regime == "plateau", d.reasons


# 3. Numbers people can read ----------------------------------------------------------------------

def test_changes_are_said_relative_to_where_they_started_with_both_values():
    n = 40
    train = _decay(n, 9.0, 0.2, 4.0)
    val = np.concatenate([_decay(24, 9.5, 3.0, 3.0), np.linspace(3.0, 0.9, 16)])
    d = analyze(_run(train, val))
    text = " ".join(d.reasons)
    percents = [abs(float(x)) for x in re.findall(r"(?:moved|fell|rose) ([+-]?[\d.]+) %", text)]
    assert percents and all(p <= 100 for p in percents), text  # a loss cannot fall by more than itself
    assert re.search(r"'val_loss' fell [\d.]+ % \([\d.]+ → [\d.]+\)", text), text  # with the values at both ends


# 4. The whole run, not only its end --------------------------------------------------------------

def test_train_halving_while_validation_never_beats_its_first_values_is_overfitting():
    rng = np.random.default_rng(3)
    n = 30
    train = np.concatenate([_decay(18, 1.0, 0.42, 4.0), np.full(12, 0.42)]) * (1 + 0.004 * rng.standard_normal(n))
    val = 0.80 + 0.03 * np.abs(rng.standard_normal(n)) + 0.02 * np.linspace(0, 1, n)
    val[0] = 0.80
    d = analyze(_run(train, val))
    assert d.regime == "overfitting", d.reasons
    assert d.rule == "never_generalised"


def test_validation_at_its_minimum_on_the_last_epoch_still_falling_more_slowly_than_train_is_learning():
    n = 40
    train = _decay(n, 2.0, 0.05, 1.5)  # still falling fast
    val = _decay(n, 2.1, 0.72, 4.0) - np.linspace(0, 0.05, n)  # at its best, still falling a few per cent
    d = analyze(_run(train, val))
    assert d.regime == "learning", d.reasons


# 5. Stuck at chance is a plateau at any length ---------------------------------------------------

def test_five_epochs_at_chance_level_are_a_stalled_plateau():
    # as a Keras console prints them: four decimals, so the last epoch equals the best one
    loss, val = [0.6932, 0.6931, 0.6931, 0.6931, 0.6931], [0.6931, 0.6932, 0.6931, 0.6932, 0.6931]
    acc = {"accuracy": (_epochs(5), np.array([0.4990, 0.5010, 0.5000, 0.4995, 0.5005])),
           "val_accuracy": (_epochs(5), np.full(5, 0.5))}
    d = analyze(_run(loss, val, extra=acc))
    assert d.regime == "plateau" and "stalled" in d.flags, d.reasons


def test_five_epochs_near_chance_improving_every_epoch_are_learning_with_low_confidence():
    ln2 = math.log(2)
    train = ln2 - np.array([0.001, 0.004, 0.008, 0.012, 0.017])
    val = ln2 - np.array([0.002, 0.005, 0.009, 0.013, 0.018])
    acc = {"accuracy": (_epochs(5), np.array([0.50, 0.51, 0.52, 0.53, 0.55])),
           "val_accuracy": (_epochs(5), np.array([0.50, 0.52, 0.53, 0.54, 0.56]))}
    d = analyze(_run(train, val, extra=acc))
    assert d.regime == "learning" and d.confidence == "low", d.reasons


# 6. A validation series with no finite value is a fact --------------------------------------------

@pytest.mark.parametrize("val_key", ["Val_los", "valid_loss", "Validation Loss", "val loss"])
def test_an_all_nan_validation_next_to_a_saturated_train_loss_is_diverging(val_key):
    n = 10
    train = np.full(n, 46.0517)  # -log(1e-20): a clipped log loss, the model predicts the wrong class surely
    d = analyze(_run(train, np.full(n, np.nan), test_key=val_key))
    assert d.regime == "diverging", d.reasons
    assert d.keys.get("test_loss") == val_key  # the report says which keys it used


# 7. Label noise and short runs ---------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1])
def test_train_flat_while_validation_still_improves_a_few_percent_is_a_data_issue(seed):
    """80 % label noise: the train loss sits near chance from the first epoch on while the
    validation loss (clean labels) creeps down a few per cent."""
    rng = np.random.default_rng(seed)
    n = 30
    train = np.linspace(2.27, 2.30, n) + 0.004 * rng.standard_normal(n)  # flat, if anything rising
    val = np.linspace(2.0, 1.86, n) * (1 + 0.002 * rng.standard_normal(n))
    d = analyze(_run(train, val))
    assert d.regime == "data_issue" and d.confidence in ("medium", "low"), d.reasons


def test_a_validation_curve_falling_27_percent_late_is_never_plateau():
    rng = np.random.default_rng(7)
    n = 25
    train = np.concatenate([_decay(10, 1.0, 0.6, 3.0), 0.6 + 0.02 * rng.standard_normal(15)])
    val = np.concatenate([np.full(15, 0.9), np.linspace(0.9, 0.62, 10)]) * (1 + 0.08 * rng.standard_normal(n))
    d = analyze(_run(train, val))
    assert d.regime != "plateau", d.reasons


@pytest.mark.parametrize("values", [[1.0, 0.8, 0.62, 0.5], [1.0, 0.75, 0.6], [2.0, 1.6, 1.3, 1.05]])
def test_three_or_four_monotone_epochs_falling_20_to_50_percent_are_learning_with_low_confidence(values):
    v = np.asarray(values)
    d = analyze(_run(v * 1.05, v))
    assert d.regime == "learning" and d.confidence == "low", d.reasons
