"""FATE parameters accepted but not acted on are reported only when a conf sets them to
something else than their default."""

from __future__ import annotations

from components.linear.hetero_linr import HeteroLinRParams
from components.linear.homo_lr import HomoLRParams
from components.tree.params import HeteroSecureBoostParams


def test_only_non_default_inert_settings_are_reported():
    assert HeteroLinRParams.model_validate({}).inert_settings() == []
    explicit_defaults = {"validation_freqs": None, "sqn_param": None, "batch_strategy": "full", "max_iter": 3}
    assert HeteroLinRParams.model_validate(explicit_defaults).inert_settings() == []
    changed = {"callback_param": {"callbacks": ["ModelCheckpoint"]}, "batch_strategy": "random",
               "cv_param": {"n_splits": 5}, "validation_freqs": 2, "max_iter": 3}  # validation_freqs, cv_param act
    assert HeteroLinRParams.model_validate(changed).inert_settings() == ["batch_strategy", "callback_param"]


def test_each_model_declares_its_own():
    assert HomoLRParams.model_validate({"early_stopping_rounds": 3}).inert_settings() == ["early_stopping_rounds"]
    assert HomoLRParams.model_validate({"validation_freqs": 1}).inert_settings() == []  # acted on: validate_data
    assert HomoLRParams.model_validate({"re_encrypt_batches": 5}).inert_settings() == ["re_encrypt_batches"]
    assert HeteroSecureBoostParams.model_validate({"binning_error": 0.01, "tol": 0.1}).inert_settings() == [
        "binning_error"]
    assert HomoLRParams.model_validate({"optimizer": "adagrad"}).optimizer == "adagrad"  # the shared optimizers
