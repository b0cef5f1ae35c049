"""The write-back plan, without any tracker: one policy for MLflow and W&B alike.

The connectors only read the state and apply the patch; test_mlflow.py and
test_wandb_server.py run the same plan against the real MLflow and the real wandb SDK.
"""

from dataclasses import replace

from tracker_diag.model import Diagnosis
from tracker_diag.writeback import BEGIN, END, NOTE_LIMIT, Patch, RunState, diagnosis_from_keys, plan, tags_for

OVER = Diagnosis("overfitting", acc_gap=0.231, best_step=16, onset_step=18, flags=("oscillating",),
                 reasons=("Test left its minimum.",), confidence="high")


def applied(state: RunState, patch: Patch) -> RunState:
    """What a tracker holds after applying the patch (what both connectors do)."""
    keys = {k: v for k, v in state.keys.items() if k not in patch.delete} | patch.set
    return replace(state, keys=keys, notes=state.notes if patch.notes is None else patch.notes,
                   labels=state.labels if patch.labels is None else patch.labels,
                   acc_gap_metric=state.acc_gap_metric if patch.acc_gap is None else patch.acc_gap)


def test_a_new_run_gets_every_key_the_section_after_the_users_text_and_the_metric():
    state = RunState({}, "My notes.", has_metric=True)
    patch = plan(state, OVER, "ts=5")
    assert patch.set == {k: v for k, v in tags_for(OVER, "ts=5").items() if v is not None}
    assert patch.set["diag_confidence"] == "high" and patch.set["diag_checked"] == "ts=5"
    assert patch.notes.startswith("My notes.\n\n" + BEGIN) and patch.notes.endswith(END)
    assert patch.acc_gap == 0.231 and patch.labels is None and patch.delete == ()


def test_the_same_diagnosis_again_changes_nothing():
    state = RunState({"team": "x"}, "notes", labels=("mine",), has_metric=True)
    once = applied(state, plan(state, OVER, "ts=5"))
    assert not plan(once, OVER, "ts=5")
    assert plan(once, OVER, "ts=6").set == {"diag_checked": "ts=6"}  # new data: only the fingerprint


def test_only_a_regime_tag_tracker_diag_added_is_replaced():
    # the user tagged the run "learning" themselves; tracker-diag never set diag_regime
    state = RunState({}, "", labels=("mine", "learning"))
    first = applied(state, plan(state, OVER, "c"))
    assert first.labels == ("mine", "learning", "overfitting")
    later = applied(first, plan(first, replace(OVER, regime="plateau"), "c"))
    assert later.labels == ("mine", "learning", "plateau")  # ours replaced, the user's kept
    assert later.keys["diag_regime"] == "plateau"


def test_a_gap_that_became_unknown_is_removed_and_the_metric_left():
    state = RunState({"diag_acc_gap": "0.231", "diag_regime": "overfitting"}, "", has_metric=True, acc_gap_metric=0.231)
    patch = plan(state, replace(OVER, acc_gap=None), "c")
    assert "diag_acc_gap" in patch.delete and patch.acc_gap is None


def test_a_full_description_gets_a_short_section_or_is_left_alone():
    room = NOTE_LIMIT - 600
    patch = plan(RunState({}, "x" * room), OVER, "c")
    assert patch.notes is not None and len(patch.notes) <= NOTE_LIMIT and patch.notes.startswith("x" * room)
    assert "Advice:" in patch.notes
    full = plan(RunState({}, "x" * NOTE_LIMIT), OVER, "c")
    assert full.notes is None and full.set  # the keys are still written, the user's text untouched


def test_a_stored_label_reads_back_with_its_figures():
    d = diagnosis_from_keys({k: v for k, v in tags_for(OVER, "c").items() if v is not None})
    assert (d.regime, d.acc_gap, d.best_step, d.flags, d.confidence) == ("overfitting", 0.231, 16, ("oscillating",),
                                                                         "high")
    old = diagnosis_from_keys({"diag_regime": "plateau", "diag_acc_gap": "n/a", "diag_confidence": "sure"})
    assert old.acc_gap is None and old.confidence == "low"
