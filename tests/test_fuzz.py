"""Fuzzing (hypothesis), 10,000 generated cases in all: the description merge, the terminal
text filter, the file readers and the .wandb reader. Marked slow; CI runs it."""

import json
import unicodedata

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tracker_diag.errors import InputError, MissingExtraError
from tracker_diag.model import Diagnosis
from tracker_diag.text import printable
from tracker_diag.writeback import BEGIN, END, merge_note, note_section, our_section

pytestmark = pytest.mark.slow
QUICK = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large]
CASES = {"merge": 4000, "terminal": 3000, "files": 2000, "wandb": 1000}  # 10,000 in all

# -- the description merge: the user's text survives byte for byte ----------------------------------

FRAGMENTS = [BEGIN, END, "<!--", "-->", "<!-- tracker-diag", "/tracker-diag -->", "**tracker-diag: learning**",
             "**tracker-diag: ", "\nAdvice: ", "\n", "\n\n", "Advice:", " ", "x", "é", "\r\n", "<!-- tracker-diag tag: "]
user_text = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=12)), max_size=25).map("".join)
D1 = Diagnosis("overfitting", reasons=("Test left its minimum.",), confidence="high")
D2 = Diagnosis("plateau", reasons=("Flat.",), confidence="medium")


@settings(max_examples=CASES["merge"], deadline=None, suppress_health_check=QUICK)
@given(user=user_text, tag=st.sampled_from([None, "", "overfitting"]))
def test_user_text_with_any_marker_fragments_survives_every_write(user, tag):
    assume(our_section(user) is None)  # text shaped exactly like our own section would be taken for it
    once = merge_note(user, note_section(D1, tag=tag), limit=1_000_000)
    assert once.startswith(user) and our_section(once) is not None
    twice = merge_note(once, note_section(D2, tag=tag), limit=1_000_000)
    assert twice.startswith(user) and twice == merge_note(user, note_section(D2, tag=tag), limit=1_000_000)
    assert twice[len(user):].count("tracker-diag: overfitting") == 0


# -- the terminal filter: no control character survives -----------------------------------------------

def _bad(c: str, newlines: bool) -> bool:
    if newlines and c in "\n\t":
        return False
    return unicodedata.category(c) == "Cc" or c in "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


@settings(max_examples=CASES["terminal"], deadline=None, suppress_health_check=QUICK)
@given(text=st.text(alphabet=st.characters(codec="utf-8"), max_size=60)
       | st.lists(st.sampled_from(["\x1b[2J", "\x1b]0;t\x07", "\x1b]8;;http://x\x07", "\x9b", "\r", "\b", "a",
                                   "\u202e", "[link=x]", "[/]"]), max_size=12).map("".join),
       newlines=st.booleans())
def test_no_control_character_survives_the_terminal_filter(text, newlines):
    out = printable(text, newlines=newlines)
    assert not any(_bad(c, newlines) for c in out)


# -- the file readers: a frame or a clear InputError, nothing else ---------------------------------------

HEADERS = ["run_id,key,step,value", "run_name,key,step,value", "RUN_ID, Key ,STEP,value", "key,step,value",
           "run_id\tkey\tstep\tvalue", ""]
cells = st.one_of(st.sampled_from(["r1", "loss", "val_loss", "1", "0.5", "nan", "inf", "-inf", "", "abc", "1e999",
                                   '"a,b"', "'", '"', "NaN", "None", "null", "\x00", "é"]), st.text(max_size=5))


@st.composite
def metric_files(draw):
    kind = draw(st.sampled_from(["csv", "tsv", "jsonl", "json", "csv-bytes"]))
    if kind in ("csv", "tsv"):
        sep = "," if kind == "csv" else "\t"
        rows = [draw(st.sampled_from(HEADERS))] + [sep.join(draw(st.lists(cells, min_size=0, max_size=5)))
                                                   for _ in range(draw(st.integers(0, 8)))]
        nl = draw(st.sampled_from(["\n", "\r\n", "\r"]))
        text = nl.join(rows)
        bom = draw(st.booleans())
        return kind, (("\ufeff" if bom else "") + text).encode("utf-8", "surrogatepass")
    if kind in ("jsonl", "json"):
        records = draw(st.lists(st.dictionaries(st.sampled_from(["run_id", "key", "step", "value", "x"]),
                                                cells | st.integers() | st.floats() | st.none(), max_size=5),
                                max_size=6))
        if kind == "json" or draw(st.booleans()):  # a JSON array in a .jsonl too
            return kind, json.dumps(records).encode()
        return kind, "\n".join(json.dumps(r) for r in records).encode()
    return "csv", draw(st.binary(max_size=200))


@settings(max_examples=CASES["files"], deadline=None, suppress_health_check=QUICK)
@given(f=metric_files())
def test_any_metric_file_reads_or_says_why(f, tmp_path):
    from tracker_diag.batch import label
    from tracker_diag.connectors.files import FileBackend

    kind, data = f
    path = tmp_path / f"m.{kind}"
    path.write_bytes(data)
    try:
        backend = FileBackend([str(path)])
    except (InputError, MissingExtraError) as exc:
        assert str(exc)
        return
    batch = label(backend)  # every run gets a label or a failure, the batch never raises
    assert all(r.diagnosis is not None or r.action == "failed" for r in batch.results)


# -- the .wandb reader: truncated and flipped bytes --------------------------------------------------------

@pytest.fixture(scope="module")
def wandb_file(tmp_path_factory):
    pytest.importorskip("wandb")
    from test_wandb_offline import write_offline

    tmp = tmp_path_factory.mktemp("fuzzwb")
    rows = {str(s): {"loss": 2.0 / (s + 1), "val_loss": 2.1 / (s + 1) + 0.1} for s in range(30)}
    run_dir = write_offline(tmp, [{"name": "fuzz", "lr": 0.1, "rows": rows}])[0]
    return next(run_dir.glob("*.wandb")).read_bytes()


@settings(max_examples=CASES["wandb"], deadline=None, suppress_health_check=QUICK)
@given(cut=st.integers(0, 10_000), flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), max_size=6),
       junk=st.binary(max_size=40))
def test_a_damaged_wandb_file_gives_what_came_before_or_a_clear_error(wandb_file, tmp_path, cut, flips, junk):
    from tracker_diag.connectors.wandb_offline import read_offline_run

    data = bytearray(wandb_file[: max(1, len(wandb_file) * cut // 10_000)])
    for at, bits in flips:
        data[at % len(data)] ^= bits
    path = tmp_path / "run-fuzz.wandb"
    path.write_bytes(bytes(data) + junk)
    warnings: list[str] = []
    try:
        read_offline_run(path, warnings)
    except InputError as exc:
        assert str(exc)
