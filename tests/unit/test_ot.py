"""Oblivious transfer: the chooser gets exactly its messages; the sender's view ignores the choices."""

from __future__ import annotations

import numpy as np
import pytest

from components.mpc import ot
from flow.core.errors import CryptoError

RNG = np.random.default_rng(7)


def _extension(choices: np.ndarray, x0: np.ndarray, x1: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run both sides in process: (what the chooser gets, base replies B and matrix U the sender sees)."""
    receiver, sender = ot.ExtensionReceiver(choices), ot.ExtensionSender(len(choices))
    b = sender.respond(receiver.start())
    u = receiver.extend(b)
    return receiver.receive(sender.transfer(u, x0, x1)), b, u


def test_base_ot_keys_match_the_choice_only():
    choices = RNG.integers(0, 2, 40)
    sender, receiver = ot.BaseSender(40), ot.BaseReceiver(choices)
    k0, k1 = sender.keys(receiver.respond(sender.setup()))
    got = receiver.keys()
    assert (got == np.where(choices[:, None] == 1, k1, k0)).all()
    assert not (got == np.where(choices[:, None] == 1, k0, k1)).all(axis=1).any()


def test_base_ot_refuses_malformed_points():
    sender = ot.BaseSender(2)
    with pytest.raises(CryptoError, match="malformed"):
        sender.keys(np.zeros((3, 32), dtype=np.uint8))
    bad = np.full((2, 32), 0xFF, dtype=np.uint8)  # y >= p
    with pytest.raises(CryptoError, match="malformed curve point"):
        sender.keys(bad)
    with pytest.raises(CryptoError, match="malformed"):
        ot.BaseReceiver([0, 1]).respond(bytes(31))


def test_extension_100k_ots_deliver_exactly_the_chosen_messages():
    m = 100_000
    choices = RNG.integers(0, 2, m).astype(bool)
    x0 = RNG.integers(0, 256, (m, 16), dtype=np.uint8)
    x1 = RNG.integers(0, 256, (m, 16), dtype=np.uint8)
    got, _, _ = _extension(choices, x0, x1)
    assert (got == np.where(choices[:, None], x1, x0)).all()
    # and nothing of the other message: an unchosen row matches only by chance
    assert (got == np.where(choices[:, None], x0, x1)).all(axis=1).sum() <= 1


def test_extension_long_messages_and_odd_count():
    m = 13
    choices = RNG.integers(0, 2, m).astype(bool)
    x0 = RNG.integers(0, 256, (m, 70), dtype=np.uint8)
    x1 = RNG.integers(0, 256, (m, 70), dtype=np.uint8)
    got, _, _ = _extension(choices, x0, x1)
    assert (got == np.where(choices[:, None], x1, x0)).all()


@pytest.mark.parametrize("n", [2, 3, 8, 11])
def test_one_of_n_delivers_exactly_the_chosen_message(n):
    count = 200
    messages = RNG.integers(0, 256, (count, n, 24), dtype=np.uint8)
    choices = RNG.integers(0, n, count)
    sender, receiver = ot.OneOfNSender(messages), ot.OneOfNReceiver(choices, n)
    u = receiver.extend(sender.respond(receiver.start()))
    y, masked = sender.transfer(u)
    got = receiver.receive(y, masked)
    assert (got == messages[np.arange(count), choices]).all()
    # every other message stays masked: none of them equals its plaintext
    others = [(masked[t, i] == messages[t, i]).all() for t in range(count) for i in range(n) if i != choices[t]]
    assert not any(others)


def test_one_of_n_refuses_choices_out_of_range():
    with pytest.raises(CryptoError, match=r"\[0, 4\)"):
        ot.OneOfNReceiver([0, 4], 4)


def _max_correlation(u: np.ndarray, choices: np.ndarray) -> float:
    """Largest |Pearson correlation| between a row of the sender's matrix and the choice bits."""
    bits = np.unpackbits(u, axis=1, bitorder="little")[:, :len(choices)].astype(float)
    c = choices.astype(float)
    bits -= bits.mean(axis=1, keepdims=True)
    c -= c.mean()
    return float(np.max(np.abs(bits @ c) / (np.linalg.norm(bits, axis=1) * np.linalg.norm(c))))


def test_sender_transcript_is_independent_of_the_choices():
    m = 16_384
    zeros, ones = np.zeros((m, 1), np.uint8), np.ones((m, 1), np.uint8)
    views = {}
    for name, choices in {"all0": np.zeros(m, bool), "all1": np.ones(m, bool),
                          "random": RNG.integers(0, 2, m).astype(bool)}.items():
        _, b, u = _extension(choices, zeros, ones)
        views[name] = (b, u, choices)
    for b, u, _ in views.values():  # uniform bits whatever the choices (5 sigma)
        ubits = np.unpackbits(u, bitorder="little")
        assert abs(ubits.mean() - 0.5) < 5 * 0.5 / np.sqrt(ubits.size)
        bbits = np.unpackbits(b[:, :31])
        assert abs(bbits.mean() - 0.5) < 5 * 0.5 / np.sqrt(bbits.size)
    b, u, choices = views["random"]
    assert _max_correlation(u, choices) < 0.05
    # control: a matrix that carried the choices unmasked fails the same test
    leaked = np.tile(np.packbits(choices, bitorder="little"), (ot.KAPPA, 1))
    assert _max_correlation(leaked, choices) > 0.99
