"""encrypt_param (components/crypto/params.py): one model for every encrypting component,
keys below 1024 bits only when asked for, and then a notice; methods other than Paillier
only where the component runs them."""

from __future__ import annotations

import numpy as np
import pydantic
import pytest

from components.crypto.paillier import generate_keypair
from components.crypto.params import MIN_KEY_LENGTH, SECURE_KEY_LENGTH, EncryptParam, LinearEncryptParam
from components.feature.binning import FeatureBinningParams
from components.linear.hetero_linr import HeteroLinRParams
from components.linear.hetero_lr import HeteroLRParams
from components.tree.packing import GHPacker
from components.tree.params import HeteroSecureBoostParams


def _problem(**conf) -> str:
    with pytest.raises(pydantic.ValidationError) as info:
        EncryptParam.model_validate(conf)
    [err] = info.value.errors(include_url=False)
    assert err["loc"] == ("key_length",)
    return err["msg"]


def test_secure_keys_pass_without_notice():
    for bits in (SECURE_KEY_LENGTH, 2048, 3072):
        assert EncryptParam.model_validate({"key_length": bits}).notices() == {}
    assert EncryptParam().key_length == SECURE_KEY_LENGTH


def test_short_key_needs_the_flag_and_is_then_noticed():
    assert "allow_short_key: true" in _problem(key_length=512)
    p = EncryptParam.model_validate({"key_length": 512, "allow_short_key": True})
    assert p.key_length == 512
    assert "insecure" in p.notices()["key_length"] and "1024" in p.notices()["key_length"]


@pytest.mark.parametrize("bits, match", [(1025, "even"), (511, "even"), (100, "at least 256 bits"),
                                         (0, "at least 256 bits"), (-1024, "at least 256 bits"),
                                         (16384, "at most 8192 bits")])
def test_odd_and_tiny_keys_are_refused_even_with_the_flag(bits, match):
    assert match in _problem(key_length=bits, allow_short_key=True)


def test_every_encrypting_component_uses_the_one_model():
    for params in (HeteroLRParams, HeteroLinRParams, HeteroSecureBoostParams, FeatureBinningParams):
        assert issubclass(params.model_fields["encrypt_param"].annotation, EncryptParam)
        with pytest.raises(pydantic.ValidationError, match="allow_short_key"):
            params.model_validate({"encrypt_param": {"key_length": 512}})
    for params in (HeteroLRParams, HeteroLinRParams):
        assert params.model_fields["encrypt_param"].annotation is LinearEncryptParam


def _method_problem(model: type[EncryptParam], **conf) -> str:
    with pytest.raises(pydantic.ValidationError) as info:
        model.model_validate(conf)
    [err] = info.value.errors(include_url=False)
    return err["msg"]


@pytest.mark.parametrize("method", ["Paillier", "paillier", "ou", "OU"])
def test_linear_models_take_paillier_and_ou_in_any_case(method):
    p = HeteroLRParams.model_validate({"encrypt_param": {"method": method}}).encrypt_param
    assert p.method == method and p.scheme == method.lower()


def test_other_methods_are_refused_in_one_line_naming_what_runs_where():
    msg = _method_problem(EncryptParam, method="ou")
    assert msg == ("encrypt_param.method 'ou' is not supported by this component, which encrypts with Paillier "
                   "only; 'ou' runs in HeteroLR, HeteroLinR and HeteroSecureBoost")
    assert "'ckks' runs in HeteroLR and HeteroLinR" in _method_problem(EncryptParam, method="ckks")
    ckks = LinearEncryptParam.model_validate({"method": "CKKS", "key_length": 3})  # key_length: not CKKS's
    assert ckks.scheme == "ckks" and ckks.notices() == {}
    assert "unknown encrypt_param method 'IterativeAffine'; one of Paillier, ou" in _method_problem(
        EncryptParam, method="IterativeAffine")


def test_ou_keys_need_not_be_even_and_say_their_scheme():
    assert LinearEncryptParam.model_validate({"method": "ou", "key_length": 1025}).key_length == 1025
    assert _method_problem(LinearEncryptParam, method="ou", key_length=768).startswith(
        "ou key_length must be at least 1024 bits")
    short = LinearEncryptParam.model_validate({"method": "ou", "key_length": 768, "allow_short_key": True})
    assert short.notices()["key_length"].startswith("ou (Okamoto-Uchiyama) key of 768 bits")


def test_the_floor_key_holds_one_packed_secureboost_slot_of_2_40_samples():
    pub, _ = generate_keypair(MIN_KEY_LENGTH)
    g, h = np.array([-3.0, 2.5]), np.array([0.25, 1.0])
    assert GHPacker.fit(g, h, 2**40).slots(pub) >= 1


@pytest.mark.parametrize("method", ["Paillier", "ou", "OU"])
def test_secureboost_takes_paillier_and_ou_and_refuses_ckks(method):
    p = HeteroSecureBoostParams.model_validate({"encrypt_param": {"method": method}}).encrypt_param
    assert p.scheme == method.lower()
    with pytest.raises(pydantic.ValidationError, match=r"which encrypts with Paillier or ou \(Okamoto-Uchiyama\) "
                                                       "only; 'ckks' runs in HeteroLR and HeteroLinR"):
        HeteroSecureBoostParams.model_validate({"encrypt_param": {"method": "ckks"}})
