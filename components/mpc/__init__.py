"""Additive secret sharing (pure, no I/O): fixed point in Z_2^k and Beaver-triple products
whose triples each pair of parties makes itself, with Paillier or by oblivious transfer;
several parties through two-party sessions (group.py)."""

from components.mpc.beaver import Peer, Session, Triple
from components.mpc.fixedpoint import DEFAULT_PRECISION, DEFAULT_RING_BITS, FixedPoint

__all__ = ["DEFAULT_PRECISION", "DEFAULT_RING_BITS", "FixedPoint", "Peer", "Session", "Triple"]
