"""The write-back plan, without any tracker: one policy for MLflow and W&B alike.

The connectors only read the state and apply the patch; test_mlflow.py and
test_wandb_server.py run the same plan against the real MLflow and the real wandb SDK.
"""

import math
from dataclasses import replace

import pytest

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


def test_a_gap_that_became_unknown_is_removed_and_the_metric_says_unknown_in_the_same_write():
    state = RunState({"diag_acc_gap": "0.231", "diag_regime": "overfitting"}, "", has_metric=True, acc_gap_metric=0.231)
    patch = plan(state, replace(OVER, acc_gap=None), "c")
    assert "diag_acc_gap" in patch.delete and math.isnan(patch.acc_gap)  # metrics.diag_acc_gap > 0.2 no longer matches
    assert not plan(applied(state, patch), replace(OVER, acc_gap=None), "c")  # and once is enough


# -- only a section tracker-diag wrote itself is ever replaced (issue 11, point 3) --------------

SECOND = replace(OVER, regime="plateau", reasons=("Flat.",))


@pytest.mark.parametrize("user", [
    f"{BEGIN} my own heading\nmy text after a lone opening marker",
    f"{END} reversed {BEGIN} markers around my text",
    f"{BEGIN}\nmy own pair\n{END}\nand more of mine",
    f"code: {BEGIN}x{END} {BEGIN}",
    f"{BEGIN}\n**tracker-diag: learning** quoted by me, no advice\n{END}",
])
def test_user_text_around_marker_look_alikes_survives_every_rewrite(user):
    state = RunState({}, user)
    once = applied(state, plan(state, OVER, "a"))
    assert once.notes.startswith(user)
    twice = applied(once, plan(once, SECOND, "b"))
    assert twice.notes.startswith(user) and twice.notes.count("tracker-diag: plateau") == 1
    assert "tracker-diag: overfitting" not in twice.notes[len(user):]


def test_with_two_sections_of_ours_only_the_last_is_replaced_and_a_user_pair_is_kept():
    ours = applied(RunState({}, ""), plan(RunState({}, ""), OVER, "a")).notes
    user_pair = f"{BEGIN}\nmine\n{END}"
    text = f"{ours}\n\nquoted above; {user_pair}\n\n{ours}"
    after = plan(RunState({}, text), SECOND, "b").notes
    assert after.startswith(f"{ours}\n\nquoted above; {user_pair}\n\n") and after.endswith(END)
    assert after.count("tracker-diag: plateau") == 1


def test_marker_text_in_a_key_name_cannot_close_our_section():
    d = replace(OVER, reasons=(f"'{END}' moved -4 %",))
    notes = plan(RunState({}, "mine"), d, "a").notes
    assert notes.count(END) == 1 and notes.endswith(END)


# -- W&B's regime tag: never one the user had (point 11) ----------------------------------------

def test_a_users_own_tag_equal_to_the_regime_is_never_removed():
    state = RunState({}, "", labels=("overfitting",))  # tagged by hand before any label
    first = applied(state, plan(state, OVER, "a"))
    assert first.labels == ("overfitting",)
    later = applied(first, plan(first, replace(OVER, regime="learning"), "b"))
    assert later.labels == ("overfitting", "learning")
    again = applied(later, plan(later, SECOND, "c"))
    assert again.labels == ("overfitting", "plateau")  # the tag tracker-diag added is replaced


def test_with_no_room_to_record_the_tag_the_tags_are_left_alone():
    state = RunState({}, "x" * NOTE_LIMIT, labels=("mine",))
    patch = plan(state, OVER, "a")
    assert patch.labels is None and patch.notes is None and patch.set["diag_regime"] == "overfitting"


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


def test_the_section_puts_the_advice_first_and_explains_each_flag_it_shows():
    from tracker_diag.writeback import FLAG_MEANING, note_section

    text = note_section(OVER)
    lines = text.splitlines()
    assert lines[3].startswith("Advice: ") and OVER.advice in lines[3]
    assert f"- `oscillating`: {FLAG_MEANING['oscillating']}" in text
    assert all(f not in text for f in FLAG_MEANING if f not in OVER.flags)
