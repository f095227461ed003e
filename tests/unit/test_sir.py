"""SecureInformationRetrieval: exact host values for the guest's ids, missing for the others,
and a host view that does not depend on which ids were asked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from backends.computing.local import LocalSession
from components.base import Inputs
from components.mpc import ot
from components.psi import _oprf
from components.psi.sir import HeteroSecureInformationRetrieval, SecureInformationRetrieval, SirParams
from flow.core.errors import ComponentError
from tests.unit.test_feature_harness import GUEST, HOST, dataset, run_parties

RNG = np.random.default_rng(11)
HOST_IDS = [f"u{i:04d}" for i in RNG.permutation(60)]
HOST_X = RNG.normal(size=(60, 3)).round(6)
HOST_Y = RNG.integers(0, 2, 60).astype(float)


def run(tmp_path: Path, guest_ids: list[str], host_label: bool = False, component=SecureInformationRetrieval,
        **params) -> tuple[dict[str, np.ndarray], list[str], dict]:
    """(guest's output rows by id, its columns, the guest tracker's metrics)."""
    with LocalSession(partitions=2, workers=1) as s:
        g = dataset(s, np.zeros((len(guest_ids), 1)), ["g0"], np.zeros(len(guest_ids)), ids=guest_ids, name="g")
        h = dataset(s, HOST_X, ["x0", "x1", "x2"], HOST_Y if host_label else None, ids=HOST_IDS, name="h")
        out = run_parties(tmp_path, component, {GUEST: (s, params, Inputs(data={"data": g})),
                                                HOST: (s, params, Inputs(data={"data": h}))})
        (guest_out, tracker), (host_out, _) = out[GUEST], out[HOST]
        assert host_out.data == [] and host_out.model is None  # nothing on the host
        ds = guest_out.data[0]
        return {k: inst.features for k, inst in ds.table.collect()}, ds.meta.columns, tracker.metrics


def _plain(guest_ids: list[str], cols: list[int]) -> dict[str, np.ndarray]:
    """The central answer: the host's row for a shared id, NaN for the others."""
    where = {k: j for j, k in enumerate(HOST_IDS)}
    return {k: HOST_X[where[k], cols] if k in where else np.full(len(cols), np.nan) for k in guest_ids}


GUEST_IDS = HOST_IDS[:25] + [f"v{i:04d}" for i in range(15)]


@pytest.mark.parametrize("raw, transfer", [(False, "OT_Hauck"), (False, "OPRF"), (True, "OT_Hauck")])
def test_guest_gets_exactly_the_host_values_of_its_ids(tmp_path, raw, transfer):
    got, columns, metrics = run(tmp_path, GUEST_IDS, target_cols=["x2", "x0"], raw_retrieval=raw,
                                oblivious_transfer_protocol=transfer)
    assert columns == ["x2", "x0"]
    want = _plain(GUEST_IDS, [2, 0])
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])  # exact: bytes, not an approximation
    assert sum(not np.isnan(v).all() for v in got.values()) == 25


def test_without_target_cols_the_label_is_retrieved_and_both_names_work(tmp_path):
    got, columns, _ = run(tmp_path, GUEST_IDS, host_label=True, component=HeteroSecureInformationRetrieval,
                          target_cols="x1")
    assert columns == ["x1"]
    got, columns, _ = run(tmp_path, GUEST_IDS, host_label=True)
    assert columns == ["y"]
    where = {k: j for j, k in enumerate(HOST_IDS)}
    for k in GUEST_IDS:
        assert (got[k][0] == HOST_Y[where[k]]) if k in where else np.isnan(got[k][0])


def test_target_cols_naming_an_absent_column_is_one_clear_error(tmp_path):
    with pytest.raises(ComponentError, match=r"target_cols names 'nope'.*columns: x0, x1, x2"):
        run(tmp_path, GUEST_IDS, target_cols=["x0", "nope"])


@pytest.mark.parametrize("transfer", ["OT_Hauck", "OPRF"])
def test_host_view_does_not_depend_on_the_ids_asked(tmp_path, monkeypatch, transfer):
    seen: list[np.ndarray] = []
    matrices: list[np.ndarray] = []
    evaluate, absorb = _oprf.OprfServer.evaluate, ot.ExtensionSender.absorb

    def record(self, blinded):
        seen.append(np.array(blinded))
        return evaluate(self, blinded)

    def record_u(self, u):
        matrices.append(np.unpackbits(u, axis=1, bitorder="little")[:, :self.count])
        return absorb(self, u)

    monkeypatch.setattr(_oprf.OprfServer, "evaluate", record)
    monkeypatch.setattr(ot.ExtensionSender, "absorb", record_u)
    shared = HOST_IDS[:40]  # every id on the host
    other = [f"w{i:04d}" for i in range(40)]  # none on the host
    for ids in (shared, other, shared):
        run(tmp_path, ids, target_cols=["x0"], oblivious_transfer_protocol=transfer)
    a, b, a_again = seen
    if transfer == "OT_Hauck":  # the extension matrix: balanced bits (5 sigma), same size, whatever was asked
        assert len(matrices) == 3 and matrices[0].shape == matrices[1].shape
        for u in matrices:
            assert abs(u.mean() - 0.5) < 5 * 0.5 / np.sqrt(u.size)
    assert a.shape == b.shape == (40, 32) and a.dtype == b.dtype == np.uint8
    for view in (a, b):  # uniform bits (5 sigma) whether or not the ids are the host's
        bits = np.unpackbits(view[:, :31])
        assert abs(bits.mean() - 0.5) < 5 * 0.5 / np.sqrt(bits.size)
    # the same query looks new every time: the host cannot link it to an earlier one
    assert not set(map(bytes, a)) & set(map(bytes, a_again))
    # control: unblinded points of the same ids would repeat
    assert [_oprf.hash_to_curve(i) for i in shared] == [_oprf.hash_to_curve(i) for i in shared]


def test_oprf_guest_learns_the_prf_of_its_own_ids_only():
    client, server = _oprf.OprfClient(), _oprf.OprfServer()
    asked = ["a", "b", "c"]
    values = client.finalize(server.evaluate(client.blind(asked)), 3)
    assert values == server.value(asked)
    assert not set(values) & set(server.value(["d", "e"]))


def test_protocol_settings_are_checked_as_fate_does():
    assert SirParams(oblivious_transfer_protocol="ot_hauck").oblivious_transfer_protocol == "OT_Hauck"
    assert SirParams(oblivious_transfer_protocol="oprf").oblivious_transfer_protocol == "OPRF"
    with pytest.raises(ValidationError, match="not supported: oblivious_transfer_protocol 'OT_Naor'"):
        SirParams(oblivious_transfer_protocol="OT_Naor")
    with pytest.raises(ValidationError, match="not supported: non_committing_encryption"):
        SirParams(non_committing_encryption="des")
    with pytest.raises(ValidationError):
        SirParams(security_level=1.5)
    assert SirParams(security_level=0.2).notices() == {"security_level": "accepted for FATE compatibility, "
                                                                          "not acted on"}


def test_a_retrieval_too_large_for_ot_names_the_cheaper_protocol(tmp_path, monkeypatch):
    from components.psi import sir

    monkeypatch.setattr(sir, "MAX_OT_CELLS", 100)
    with pytest.raises(ComponentError, match="40 ids by 60 host rows .* set oblivious_transfer_protocol 'OPRF'"):
        run(tmp_path, GUEST_IDS, target_cols=["x0"])
    got, _, _ = run(tmp_path, GUEST_IDS, target_cols=["x0"], oblivious_transfer_protocol="OPRF")
    assert sum(not np.isnan(v).all() for v in got.values()) == 25
