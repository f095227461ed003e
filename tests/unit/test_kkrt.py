"""The KKRT OPRF and its PSI, both parties in one process: against a plain set intersection."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from components.mpc import kkrt, ot
from flow.core.errors import CryptoError


def session(guest: list[str], host: list[str]) -> tuple[kkrt.KkrtReceiver, kkrt.KkrtSender, np.ndarray]:
    """Both parties up to the matrix U, as the protocol runs them."""
    g, h = kkrt.digests(guest), kkrt.digests(host)
    receiver, sender = kkrt.KkrtReceiver(g, kkrt.place(g)), kkrt.KkrtSender(h)
    points, key = sender.respond(*receiver.start())
    return receiver, sender, receiver.extend(points, key)


def run(guest: list[str], host: list[str]) -> dict[int, int]:
    receiver, sender, u = session(guest, host)
    return receiver.match(sender.values(u))


def id_sets(n_guest: int, n_host: int, shared: int, seed: int = 5) -> tuple[list[str], list[str]]:
    universe = [f"id{i}" for i in random.Random(seed).sample(range(10**7), n_guest + n_host - shared)]
    guest, host = universe[:n_guest], universe[:shared] + universe[n_guest:]
    random.Random(seed + 1).shuffle(host)
    return guest, host


@pytest.mark.parametrize("n_guest, n_host, shared", [(3000, 2000, 1200), (1, 5, 1), (40, 1, 0), (9, 9, 9)])
def test_matches_are_the_set_intersection_with_host_positions(n_guest: int, n_host: int, shared: int):
    guest, host = id_sets(n_guest, n_host, shared)
    found = run(guest, host)
    expected = {i: host.index(x) for i, x in enumerate(guest) if x in set(host)}
    assert len(expected) == shared and found == expected


def test_outputs_equal_the_senders_values_only_for_the_id_in_the_bin():
    guest, host = id_sets(500, 500, 200)
    receiver, sender, u = session(guest, host)
    p, g = receiver.placement, kkrt.digests(guest)
    mine = receiver.outputs(len(host))
    bins = kkrt.positions(g, p.seed, p.bins)[:, 0]
    values = sender.values_for(sender.rows(u), g, bins, 0)  # the sender's PRF of the guest's ids, hash 0
    holds = (p.owner[bins] == np.arange(len(guest))) & (p.which[bins] == 0)
    assert 0 < holds.sum() < len(guest)
    assert ((values == mine[bins]).all(axis=1) == holds).all()


def test_placement_puts_every_id_in_one_of_its_bins():
    ids = kkrt.digests([f"x{i}" for i in range(20_000)])
    p = kkrt.place(ids)
    assert p.bins == math.ceil(1.27 * 20_000) + 256
    filled = np.flatnonzero(p.owner >= 0)
    assert sorted(p.owner[filled]) == list(range(20_000))
    pos = kkrt.positions(ids, p.seed, p.bins)
    assert (pos[p.owner[filled], p.which[filled]] == filled).all()


def test_insertion_gives_up_when_ids_cannot_fit():
    pos = np.array([[0, 1, 2]] * 4)  # four ids, the same three bins
    assert kkrt._insert(pos, 3) is None
    assert kkrt._insert(pos[:3], 3) is not None


@pytest.mark.parametrize("m", [1, 7, 8, 9, 1000, 70_001])
def test_transposes_agree_with_unpacked_bits_and_leave_their_input(m: int):
    rows = np.random.default_rng(m).integers(0, 256, size=(m, 64), dtype=np.uint8)
    nbytes = -(-m // 8)
    cols = ot.untranspose(rows, nbytes)
    bits = np.zeros((512, nbytes * 8), dtype=np.uint8)
    bits[:, :m] = np.unpackbits(rows, axis=1, bitorder="little").T
    assert (cols == np.packbits(bits, axis=1, bitorder="little")).all()
    before = cols.copy()
    assert (ot.transpose(cols, m) == rows).all() and (cols == before).all()


def test_the_matrix_the_sender_sees_hides_the_codes(monkeypatch):
    """The same ids twice give unrelated matrices U (fresh base OTs): with the generators
    forced to zero, U would be the code columns, the same both times."""
    g = kkrt.digests([f"x{i}" for i in range(4000)])
    placement = kkrt.place(g)

    def matrix() -> np.ndarray:
        receiver, sender = kkrt.KkrtReceiver(g, placement), kkrt.KkrtSender(g)
        points, _ = sender.respond(*receiver.start())
        return receiver.extend(points, b"k" * 16)

    def differing(a: np.ndarray, b: np.ndarray) -> float:
        filled = np.flatnonzero(placement.owner >= 0)
        bits = lambda u: np.unpackbits(u, axis=1, bitorder="little")[:, filled]  # noqa: E731
        return float((bits(a) != bits(b)).mean())

    assert abs(differing(matrix(), matrix()) - 0.5) < 0.01
    monkeypatch.setattr(kkrt, "prg", lambda seed, nbytes, block=0: np.zeros(nbytes, dtype=np.uint8))
    assert differing(matrix(), matrix()) == 0.0


def test_output_length_bounds_false_matches():
    for bins, n in ((300, 1), (1_270_256, 1_000_000), (10**8, 10**8)):
        length, needed = kkrt.output_bytes(bins, n), kkrt.STAT + math.log2(3 * bins * n)
        assert 8 * (length - 1) < needed <= 8 * length


def test_malformed_messages_are_refused():
    g = kkrt.digests(["a", "b", "c"])
    receiver, sender = kkrt.KkrtReceiver(g, kkrt.place(g)), kkrt.KkrtSender(g)  # both hold a, b, c
    a_bytes, seed, bins = receiver.start()
    with pytest.raises(CryptoError, match="seed must be 16 bytes"):
        sender.respond(a_bytes, b"short", bins)
    for bad in (True, 0, -5, 2**40, "9"):
        with pytest.raises(CryptoError, match="bad bin count"):
            sender.respond(a_bytes, seed, bad)  # type: ignore[arg-type]
    points, key = sender.respond(a_bytes, seed, bins)
    with pytest.raises(CryptoError, match="code key"):
        receiver.extend(points, b"k")
    u = receiver.extend(points, key)
    with pytest.raises(CryptoError, match=r"malformed OPRF matrix: expected \(512, "):
        sender.rows(u[:, :-1])
    with pytest.raises(CryptoError, match="malformed OPRF matrix"):
        sender.rows(u.astype(np.int16))
    values = sender.values(u)
    with pytest.raises(CryptoError, match="bytes each, expected"):
        receiver.match(values[:, :, :-1])
    with pytest.raises(CryptoError, match=r"expected a \(3, n, L\) byte array"):
        receiver.match(values[:2])
    assert receiver.match(values) == {0: 0, 1: 1, 2: 2}
    with pytest.raises(CryptoError, match="ids must be str or bytes"):
        kkrt.digests([3])
