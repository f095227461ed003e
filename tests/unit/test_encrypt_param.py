"""encrypt_param (components/crypto/params.py): one model for every Paillier component,
keys below 1024 bits only when asked for, and then a notice."""

from __future__ import annotations

import numpy as np
import pydantic
import pytest

from components.crypto.paillier import generate_keypair
from components.crypto.params import MIN_KEY_LENGTH, SECURE_KEY_LENGTH, EncryptParam
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
                                         (0, "at least 256 bits"), (-1024, "at least 256 bits")])
def test_odd_and_tiny_keys_are_refused_even_with_the_flag(bits, match):
    assert match in _problem(key_length=bits, allow_short_key=True)


def test_every_paillier_component_uses_the_one_model():
    for params in (HeteroLRParams, HeteroLinRParams, HeteroSecureBoostParams, FeatureBinningParams):
        assert params.model_fields["encrypt_param"].annotation is EncryptParam
        with pytest.raises(pydantic.ValidationError, match="allow_short_key"):
            params.model_validate({"encrypt_param": {"key_length": 512}})


def test_the_floor_key_holds_one_packed_secureboost_slot_of_2_40_samples():
    pub, _ = generate_keypair(MIN_KEY_LENGTH)
    g, h = np.array([-3.0, 2.5]), np.array([0.25, 1.0])
    assert GHPacker.fit(g, h, 2**40).slots(pub) >= 1
