import pytest

from tracker_diag.keys import candidate_keys, parse_mapping, resolve_roles


def roles(*keys, n=50, **counts):
    c = {k: n for k in keys}
    c.update(counts)
    return resolve_roles(c)


@pytest.mark.parametrize("keys, expected", [
    # Keras / MLflow keras autolog (validation_* keys are single points at step 0)
    (("loss", "val_loss", "accuracy", "val_accuracy", "epoch"),
     {"train_loss": "loss", "test_loss": "val_loss", "train_acc": "accuracy", "test_acc": "val_accuracy"}),
    (("loss", "val_loss", "sparse_categorical_accuracy", "val_sparse_categorical_accuracy"),
     {"train_loss": "loss", "test_loss": "val_loss", "train_acc": "sparse_categorical_accuracy",
          "test_acc": "val_sparse_categorical_accuracy"}),
    # W&B Keras logger
    (("epoch/loss", "epoch/val_loss", "epoch/accuracy", "epoch/val_accuracy", "epoch/epoch", "epoch/learning_rate"),
     {"train_loss": "epoch/loss", "test_loss": "epoch/val_loss", "train_acc": "epoch/accuracy",
          "test_acc": "epoch/val_accuracy"}),
    # HF Trainer to W&B
    (("train/loss", "eval/loss", "eval/accuracy", "train/grad_norm", "train/learning_rate", "train/epoch",
      "eval/runtime", "eval/samples_per_second", "train/global_step"),
     {"train_loss": "train/loss", "test_loss": "eval/loss", "test_acc": "eval/accuracy"}),
    # Lightning
    (("train_loss_step", "train_loss_epoch", "val_loss", "val_acc", "epoch"),
     {"train_loss": "train_loss_epoch", "test_loss": "val_loss", "test_acc": "val_acc"}),
    # XGBoost native and scikit-learn API (train set passed first)
    (("train-logloss", "validation_0-logloss"), {"train_loss": "train-logloss", "test_loss": "validation_0-logloss"}),
    (("validation_0-logloss", "validation_1-logloss", "validation_0-error", "validation_1-error"),
     {"train_loss": "validation_0-logloss", "test_loss": "validation_1-logloss"}),
    # LightGBM
    (("training-multi_logloss", "valid_1-multi_logloss"),
     {"train_loss": "training-multi_logloss", "test_loss": "valid_1-multi_logloss"}),
    (("valid_0-multi_logloss",), {"test_loss": "valid_0-multi_logloss"}),
    # TensorBoard-style, CatBoost
    (("Loss/train", "Loss/test", "Accuracy/train", "Accuracy/test"),
     {"train_loss": "Loss/train", "test_loss": "Loss/test", "train_acc": "Accuracy/train", "test_acc": "Accuracy/test"}),
    (("learn-Logloss", "validation-Logloss"), {"train_loss": "learn-Logloss", "test_loss": "validation-Logloss"}),
    # plain and unusual spellings
    (("training_loss", "validation_loss", "train_acc", "valid_acc"),
     {"train_loss": "training_loss", "test_loss": "validation_loss", "train_acc": "train_acc", "test_acc": "valid_acc"}),
    (("loss/train", "loss/val"), {"train_loss": "loss/train", "test_loss": "loss/val"}),
    (("train_rmse", "val_rmse", "train_mae"), {"train_loss": "train_rmse", "test_loss": "val_rmse"}),
    (("train_auc", "test_auc"), {"train_acc": "train_auc", "test_acc": "test_auc"}),
])
def test_recognises_framework_names(keys, expected):
    assert roles(*keys) == expected


def test_hf_mlflow_prefers_the_curve_over_the_final_average():
    # HF Trainer to MLflow: `loss` per logging step, `train_loss` one final average
    got = resolve_roles({"loss": 120, "train_loss": 1, "eval_loss": 10, "eval_accuracy": 10, "epoch": 130,
                         "grad_norm": 120, "learning_rate": 120})
    assert got == {"train_loss": "loss", "test_loss": "eval_loss", "test_acc": "eval_accuracy"}


def test_keras_autolog_validation_point_does_not_win():
    got = resolve_roles({"loss": 30, "val_loss": 30, "validation_loss": 1})
    assert got["test_loss"] == "val_loss"


@pytest.mark.parametrize("key", ["epoch", "learning_rate", "lr", "grad_norm", "train_runtime", "eval_runtime",
                                 "train_samples_per_second", "total_flos", "_step", "diag_acc_gap",
                                 "best_iteration", "stopped_iteration", "trainer/global_step"])
def test_non_curves_never_take_a_role(key):
    assert resolve_roles({key: 100}) == {}
    assert candidate_keys([key]) == []


def test_user_mapping_wins_and_is_validated():
    got = resolve_roles({"loss": 10, "val_loss": 10, "my_holdout": 10}, {"test_loss": "my_holdout"})
    assert got["test_loss"] == "my_holdout" and got["train_loss"] == "loss"
    assert parse_mapping("train_loss=a, test_loss = b") == {"train_loss": "a", "test_loss": "b"}
    with pytest.raises(ValueError, match="unknown role"):
        parse_mapping("val_loss=x")
    with pytest.raises(ValueError, match="ROLE=KEY"):
        parse_mapping("train_loss")


def test_candidates_are_only_curve_keys_plus_overrides():
    keys = ["loss", "eval_loss", "grad_norm", "learning_rate", "epoch", "custom"]
    assert candidate_keys(keys, {"test_acc": "custom"}) == ["loss", "eval_loss", "custom"]
