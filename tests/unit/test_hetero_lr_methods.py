"""HeteroLR and HeteroLinR run the same protocol under every ``encrypt_param.method`` they
accept: the weights equal the centralised descent on the joined data within the tolerance
of the Paillier runs; the components that encrypt with Paillier only refuse the others."""

from __future__ import annotations

import numpy as np
import pydantic
import pytest

from components.base import Inputs
from components.linear.hetero_linr import HeteroLinR
from components.linear.hetero_lr import HeteroLR
from tests.unit import test_hetero_lr_warm_start as warm
from tests.unit.test_feature_harness import GUEST, HOST, run_parties
from tests.unit.test_hetero_lr_warm_start import ALPHA, ARBITER, DECAY, LR, params, plain_descent

#: the warm-start tests' fixtures: its session and its 30-row vertical split
session, data = warm.session, warm.data

ITERS = 3


def train(tmp_path, session, data, component, method: str, key_length: int) -> dict:
    p = {**params(ITERS), "encrypt_param": {"method": method, "key_length": key_length, "allow_short_key": True}}
    out = run_parties(tmp_path, component, {
        GUEST: (session, p, Inputs(data={"train_data": data[0]})),
        HOST: (session, p, Inputs(data={"train_data": data[1]})),
        ARBITER: (session, p, Inputs())}, name="hetero_lr_0")
    return {party.role: res[0].model for party, res in out.items()}


def squared_descent(xg, xh, y, iters: int):
    """HeteroLinR's descent centrally: squared error, sgd, L2 (not on the intercept), decayed rate."""
    wg, b, wh = np.zeros(xg.shape[1]), 0.0, np.zeros(xh.shape[1])
    for it in range(iters):
        d = xg @ wg + b + xh @ wh - y
        lr = LR / np.sqrt(1 + DECAY * it)
        wg, b, wh = (wg - lr * (xg.T @ d / len(y) + ALPHA * wg), b - lr * d.mean(),
                     wh - lr * (xh.T @ d / len(y) + ALPHA * wh))
    return wg, b, wh


@pytest.mark.parametrize("method, bits", [("paillier", 512), ("ou", 768), ("OU", 1024)])
def test_hetero_lr_weights_equal_the_central_descent(tmp_path, session, data, method, bits):
    models = train(tmp_path, session, data, HeteroLR, method, bits)
    wg, b, wh, losses = plain_descent(data[2], data[3], data[4], ITERS)
    np.testing.assert_allclose(models["guest"]["weights"], wg, atol=1e-6)
    np.testing.assert_allclose(models["guest"]["intercept"], b, atol=1e-6)
    np.testing.assert_allclose(models["host"]["weights"], wh, atol=1e-6)
    np.testing.assert_allclose(models["guest"]["loss_history"], losses, atol=1e-6)
    assert np.abs(wh).min() > 1e-3  # it did train


def test_waiting_parties_draw_their_next_randomness_ahead_and_the_weights_stay_exact(tmp_path, session, data,
                                                                                    monkeypatch):
    """While a party waits for a peer its get draws the factors of its next encryptions
    (Federation.spare_work); the host's [[wx_h]] and the guest's [[D]] then take them."""
    from components.crypto import paillier

    taken = {"ahead": 0, "now": 0}
    factor = paillier._Obfuscator.factor

    def counted(table):
        taken["ahead" if table._reserve else "now"] += 1
        return factor(table)

    monkeypatch.setattr(paillier._Obfuscator, "factor", counted)
    models = train(tmp_path, session, data, HeteroLR, "ou", 768)
    wg, b, wh, _ = plain_descent(data[2], data[3], data[4], ITERS)
    np.testing.assert_allclose(models["host"]["weights"], wh, atol=1e-6)
    np.testing.assert_allclose(models["guest"]["weights"], wg, atol=1e-6)
    assert taken["ahead"] > taken["now"], taken  # most of the randomness came off the critical path


def test_hetero_linr_with_ou_equals_the_central_descent(tmp_path, session, data):
    models = train(tmp_path, session, data, HeteroLinR, "ou", 768)
    wg, b, wh = squared_descent(data[2], data[3], data[4], ITERS)
    np.testing.assert_allclose(np.r_[models["guest"]["weights"], models["host"]["weights"]], np.r_[wg, wh],
                               atol=1e-6)
    assert models["guest"]["intercept"] == pytest.approx(b, abs=1e-6)


@pytest.mark.parametrize("component", [HeteroLR, HeteroLinR])
def test_ckks_weights_equal_the_central_descent_within_the_flooding(tmp_path, session, data, component):
    pytest.importorskip("tenseal")
    models = train(tmp_path, session, data, component, "ckks", 1024)
    if component is HeteroLR:
        wg, b, wh, losses = plain_descent(data[2], data[3], data[4], ITERS)
        # the flooding adds ~2.4e-7 to each averaged gradient (components/crypto/ckks.py)
        np.testing.assert_allclose(models["guest"]["loss_history"], losses, atol=1e-5)
    else:
        wg, b, wh = squared_descent(data[2], data[3], data[4], ITERS)
    np.testing.assert_allclose(models["guest"]["weights"], wg, atol=1e-5)
    np.testing.assert_allclose(models["guest"]["intercept"], b, atol=1e-5)
    np.testing.assert_allclose(models["host"]["weights"], wh, atol=1e-5)
    assert np.abs(wh).min() > 1e-3


@pytest.mark.parametrize("module", ["components.feature.binning:FeatureBinningParams",
                                    "components.nn.hetero_nn:HeteroNNParams",
                                    "components.linear.sshe_params:HeteroSSHELRParams",
                                    "components.linear.hetero_poisson:HeteroPoissonParams"])
@pytest.mark.parametrize("method", ["ou", "ckks"])
def test_paillier_only_components_refuse_other_methods_in_one_line(module, method):
    from flow.core.registry import import_string

    params = import_string(module)
    with pytest.raises(pydantic.ValidationError) as info:
        params.model_validate({"encrypt_param": {"method": method}})
    [err] = info.value.errors(include_url=False)
    assert err["loc"] == ("encrypt_param", "method")
    assert err["msg"].startswith(f"encrypt_param.method '{method}' is not supported by this component, "
                                 "which encrypts with Paillier only")


class _Peers:
    """A federation stand-in for one guest step: the hosts' messages as given, sends kept."""

    def __init__(self, messages: dict):
        self.messages, self.sent = messages, []

    def get(self, name, tag, parties):
        return [self.messages[(name, p.party_id)] for p in parties]

    def remote(self, obj, name, tag, parties):
        self.sent.append(name)


def _guest_ctx(peers: _Peers):
    from types import SimpleNamespace

    roles = {"host": [HOST], "arbiter": [ARBITER], "guest": [GUEST]}
    return SimpleNamespace(component="hetero_lr_0", federation=peers, role_parties=roles.__getitem__)


def test_ckks_guest_refuses_a_host_whose_rows_are_not_its_own_and_sample_weights(session, data):
    pytest.importorskip("tenseal")
    from components.crypto import ckks
    from components.linear.family import LOGISTIC_TAYLOR
    from components.linear.hetero_packed import CKKSKey, PackedCKKS, keys_digest
    from flow.core.errors import ComponentError

    key = CKKSKey()
    guest = PackedCKKS(LOGISTIC_TAYLOR, ("ckks", key.public_bytes()))
    forward = ckks.to_bytes(ckks.encrypt_vector(guest.context, np.zeros(30)))
    other_ids = keys_digest([f"id{i:03d}" for i in range(1, 31)])
    peers = _Peers({("host_forward", HOST.party_id): (other_ids, forward)})
    w = np.zeros(3)
    with pytest.raises(ComponentError, match=f"host {HOST.party_id}'s rows of batch 0 are not the guest's"):
        guest.guest_step(_guest_ctx(peers), "t", 0, data[0].table, w, 30, 0.0, None, False)
    assert peers.sent == []  # nothing went out
    with pytest.raises(ComponentError, match="'ckks' does not weight rows yet"):
        guest.guest_step(_guest_ctx(peers), "t", 0, data[0].table, w, 30, 0.0, None, True)
    peers.messages[("host_forward", HOST.party_id)] = (guest._batch(0, data[0].table)[0], [b"junk"])
    with pytest.raises(ComponentError, match=f"\\[\\[wx_h\\]\\] from host {HOST.party_id}: invalid CKKS vector #0"):
        guest.guest_step(_guest_ctx(peers), "t", 0, data[0].table, w, 30, 0.0, None, False)


def test_ckks_key_holder_checks_what_it_is_asked_to_decrypt():
    pytest.importorskip("tenseal")
    from components.linear.hetero_packed import CKKSKey
    from flow.core.errors import CryptoError

    key = CKKSKey()
    for bad in [None, (0, []), (True, []), ("3", []), (3, "blob")]:
        with pytest.raises(CryptoError, match="a CKKS message must be"):
            key.decrypt_many(bad)
    with pytest.raises(CryptoError, match="one finite factor per vector"):
        key.decrypt((3, [], [1.0], 0.0))
    with pytest.raises(CryptoError, match="one finite factor per vector"):
        key.decrypt((3, [], [], float("nan")))
