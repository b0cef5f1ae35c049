"""Find the four metric roles among the keys a run logged, across frameworks' names.

A key is split into lower-case tokens (``epoch/val_loss`` -> ``epoch val loss``). It is
a candidate for a role when it names a learning metric (loss-like or accuracy-like) and
a split (train or test; a bare ``loss`` is Keras' train loss). Among candidates the one
with a real curve wins, then the epoch-level series over the per-step one, then the main
metric (``loss`` before ``rmse`` before ``error``). A user mapping always wins.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

ROLES = ("train_loss", "test_loss", "train_acc", "test_acc")

_TOKEN = re.compile(r"[a-z0-9]+")
# Lower is better; rank = preference within the role (lower first).
_LOSS = {"loss": 0, "los": 0, "logloss": 1, "mlogloss": 1, "nll": 1, "crossentropy": 1, "ce": 2,
         "rmse": 3, "mse": 4, "mae": 5, "l2": 6, "l1": 6, "merror": 7, "error": 7, "err": 7,
         "wer": 8, "cer": 8}
# Higher is better. Ultralytics YOLO's mAP50-95 before mAP50 (tokens "map50", "95").
_ACC = {"accuracy": 0, "acc": 0, "top1": 1, "map50": 2, "auc": 2, "f1": 3, "top5": 4}
_TRAIN = {"train", "training", "learn", "trn"}
# (with the misspellings real logs carry: "vaild", "validaton", "valdation")
_TEST = {"test", "val", "valid", "validation", "eval", "evaluation", "dev", "holdout", "testing", "vaild", "validaton",
         "valdation", "vali"}
# Keys that carry a metric word but are no learning curve.
_NOT_A_CURVE = {"lr", "grad", "norm", "runtime", "second", "per",
                "flos", "best", "stopped", "min", "max", "diag", "time", "duration", "std",
                "weight", "momentum", "scale"}
_POSITIONAL = re.compile(r"^(validation|valid)_(\d+)$")


def _tokens(key: str) -> list[str]:
    # "sparse_categorical_accuracy" -> accuracy; "multi_logloss" -> logloss; camelCase split
    key = re.sub(r"([a-z])([A-Z])", r"\1_\2", key.replace("mAP", "map")).lower()
    key = key.replace("cross_entropy", "crossentropy").replace("learning_rate", "lr")
    return _TOKEN.findall(key)


def _classify(key: str, positional: Mapping[str, str], bare: str = "train") -> tuple[str, int, int] | None:
    """(role, metric rank, granularity rank) or None; granularity 0 epoch, 1 plain, 2 step.

    ``bare`` is the split of a key that names none: train in Keras (``loss``,
    ``accuracy``), test where the train curve is named explicitly (Hugging Face model
    cards: ``Training Loss``, ``Validation Loss``, ``Accuracy``).
    """
    lead = re.split(r"[-/]", key, maxsplit=1)[0].lower()
    tokens = _tokens(key)
    if not tokens or _NOT_A_CURVE.intersection(tokens):
        return None
    metric = [t for t in tokens if t in _LOSS or t in _ACC]
    if not metric:
        return None
    kind = "acc" if metric[-1] in _ACC else "loss"
    rank = (_ACC if kind == "acc" else _LOSS)[metric[-1]]
    if metric[-1] == "map50" and "95" in tokens:
        rank = 1  # mAP50-95, YOLO's headline metric
    if lead in positional:
        split = positional[lead]
    elif _TEST.intersection(tokens):
        split = "test"
    elif _TRAIN.intersection(tokens):
        split = "train"
    elif metric[-1] == "map50":
        split = "test"  # mAP is only ever computed on the validation set (YOLO's metrics/)
    else:
        split = bare
    if "epoch" in tokens:
        gran = 0
    elif "step" in tokens:
        gran = 2
    else:
        gran = 1
    return f"{split}_{kind}", rank, gran


def _positional_splits(keys: Iterable[str]) -> dict[str, str]:
    """XGBoost/LightGBM scikit-learn API name eval sets by position.

    Users usually pass ``eval_set=[(X_train, y), (X_val, y)]``, so with two sets and no
    explicit train set the first one is the training curve.
    """
    leads = {}
    for k in keys:
        lead = re.split(r"[-/]", k, maxsplit=1)[0].lower()
        m = _POSITIONAL.match(lead)
        if m and lead != k.lower():
            leads[lead] = int(m.group(2))
    explicit_train = any(re.split(r"[-/]", k, maxsplit=1)[0].lower() in ("training", "train", "learn")
                         for k in keys)
    if len(leads) >= 2 and not explicit_train:
        first = min(leads, key=lambda lead: leads[lead])
        return {lead: ("train" if lead == first else "test") for lead in leads}
    return {lead: "test" for lead in leads}


def _bare_split(counts: Mapping[str, int], positional: Mapping[str, str]) -> str:
    """Test when a real train curve (3+ points) is named with a train token; else train.
    Hugging Face's one-point final ``train_loss`` does not count."""
    for key, n in counts.items():
        if n >= 3 and _TRAIN.intersection(_tokens(key)) and _classify(key, positional) is not None:
            return "test"
    return "train"


def resolve_roles(counts: Mapping[str, int], overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Map roles to keys, given each logged key and its number of points."""
    overrides = dict(overrides or {})
    positional = _positional_splits(counts)
    bare = _bare_split(counts, positional)
    best: dict[str, tuple] = {}
    for key, n in counts.items():
        found = _classify(key, positional, bare)
        if found is None:
            continue
        role, rank, gran = found
        # A real curve beats a single summary point (HF's final `train_loss`, Keras
        # autolog's `validation_*` at step 0); then epoch-level, then the main metric.
        score = (n < 3, gran, rank, -n, key)
        if role not in best or score < best[role][0]:
            best[role] = (score, key)
    roles = {role: key for role, (_, key) in best.items()}
    for role, key in overrides.items():
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        roles[role] = key
    return {r: roles[r] for r in ROLES if r in roles}


def parse_mapping(text: str | None) -> dict[str, str]:
    """``train_loss=loss,test_loss=val_loss`` -> dict; raises ValueError with the bad part."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        role, sep, key = part.partition("=")
        role, key = role.strip(), key.strip()
        if not sep or not key:
            raise ValueError(f"expected ROLE=KEY, got {part!r}")
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        out[role] = key
    return out


def candidate_keys(keys: Iterable[str], overrides: Mapping[str, str] | None = None) -> list[str]:
    """Every key that could fill a role: what a connector fetches (never grad_norm & co.).

    Point counts are not known before the histories are read, so all candidates of a role
    are fetched and :func:`resolve_roles` picks among them with the real counts.
    """
    keys = list(keys)
    positional = _positional_splits(keys)
    out = [k for k in keys if _classify(k, positional) is not None]  # the split does not matter here
    for key in (overrides or {}).values():
        if key not in out:
            out.append(key)
    return out
