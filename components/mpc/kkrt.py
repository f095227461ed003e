"""A batched oblivious PRF from OT extension, and the set intersection built on it (pure, no I/O).

Kolesnikov, Kumaresan, Rosulek and Trieu's OPRF (CCS 2016), semi-honest, the way PSI uses it:

* The **receiver** (the party that learns the intersection) puts each of its ids in one bin of
  a cuckoo table of ``m ≈ 1.27 n`` bins, by one of three hash functions of a public seed.
* A **pseudo-random code** ``C(x, k)`` of :data:`WIDTH` bits (AES under a key the sender
  draws) replaces IKNP's repetition code. The receiver is the chooser of an IKNP extension
  of width :data:`WIDTH` whose choice for bin ``j`` is the code of the id it holds there; the
  sender, holding the base-OT choice string ``s``, gets ``q_j = t_j ⊕ (C(x_j, k_j) ∧ s)``.
* The receiver's PRF output of bin ``j`` is ``H(j, t_j)``; the sender can compute
  ``F_j(y, k) = H(j, q_j ⊕ (C(y, k) ∧ s))`` for any ``y``, which equals it when ``y`` is the
  receiver's id there and is pseudo-random to the receiver otherwise (the codes of two inputs
  differ in at least 128 of their 512 bits but with negligible probability, so the receiver
  would have to guess as many bits of ``s``).
* The sender sends ``F_{h_k(y)}(y, k)`` for each of its ids and each ``k`` (in its own id
  order); the receiver looks its outputs up among them.

All the work is AES (the code, the bins, the generators of the extension), a bit-matrix
transpose and SHA-256 (``H``, the OT extension's own row hash) over numpy arrays: no public-key operation but the
:data:`WIDTH` base OTs of :mod:`components.mpc.ot`. Output length: enough bits that a false
match among all ``3 · m · n_sender`` comparisons has probability below 2^-:data:`STAT`.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from components.mpc.ot import BaseReceiver, BaseSender, aes_blocks, pad, prg, transpose, untranspose
from flow.core.errors import CryptoError

WIDTH = 512          # code bits = base OTs
CODE = WIDTH // 8    # code bytes per row
HASHES = 3           # cuckoo hash functions
STAT = 40            # statistical security of the comparison (false-match probability 2^-STAT)
DIGEST = 16          # bytes of an id's digest: what the bins and the code are computed from
_LOAD = 1.27         # bins per receiver id (three hash functions, no stash)
_SLACK = 256         # extra bins, so that small sets place without retries
_ATTEMPTS = 8        # cuckoo seeds tried before giving up
_ROUNDS = 4000       # insertion rounds per seed
_PRF = b"fedweave-kkrt-h"  # tweak of H(j, row) (components.mpc.ot.pad)


def digests(ids: Iterable[str | bytes]) -> np.ndarray:
    """BLAKE2b-128 of each id (UTF-8 for str): (n, 16) uint8."""
    out = []
    for identifier in ids:
        raw = identifier.encode("utf-8") if isinstance(identifier, str) else identifier
        if not isinstance(raw, (bytes, bytearray)):
            raise CryptoError(f"PSI ids must be str or bytes, got {type(identifier).__name__}")
        out.append(hashlib.blake2b(raw, digest_size=DIGEST, person=b"fedweave-kkrt").digest())
    return np.frombuffer(b"".join(out), dtype=np.uint8).reshape(len(out), DIGEST)


def bin_count(n: int) -> int:
    return math.ceil(_LOAD * n) + _SLACK


def output_bytes(bins: int, sender_ids: int) -> int:
    """Bytes of each PRF output: a false match among 3 · bins · sender_ids pairs below 2^-STAT."""
    return min(32, math.ceil((STAT + math.log2(HASHES * bins * max(1, sender_ids))) / 8))


def _tweaks(domain: int, count: int) -> np.ndarray:
    """``count`` distinct 16-byte blocks, XORed into a digest to make different AES inputs."""
    out = np.zeros((count, 16), dtype=np.uint8)
    out[:, :8] = (np.arange(count, dtype="<u8") + (domain << 32))[:, None].view(np.uint8)
    return out


def positions(ids: np.ndarray, seed: bytes, bins: int) -> np.ndarray:
    """(n, 3) bins of each id under the three hash functions of ``seed``."""
    tweak = _tweaks(1, HASHES)
    out = np.empty((len(ids), HASHES), dtype=np.int64)
    for k in range(HASHES):
        block = aes_blocks(seed, ids ^ tweak[k])
        out[:, k] = (block[:, :8].copy().view("<u8")[:, 0] % np.uint64(bins)).astype(np.int64)
    return out


def codes(ids: np.ndarray, which: np.ndarray | int, key: bytes) -> np.ndarray:
    """(n, CODE) pseudo-random code of each (id, hash index)."""
    tweak = _tweaks(2, HASHES * (CODE // 16)).reshape(HASHES, CODE // 16, 16)
    blocks = ids[:, None, :] ^ tweak[np.broadcast_to(np.asarray(which), (len(ids),))]
    return aes_blocks(key, blocks).reshape(len(ids), CODE)


# ---------------------------------------------------------------- cuckoo table


@dataclass(frozen=True)
class Placement:
    """The receiver's cuckoo table: ``owner[j]`` is the id in bin j (-1: empty), ``which[j]`` the
    hash function that put it there."""

    seed: bytes
    bins: int
    owner: np.ndarray
    which: np.ndarray


def _insert(pos: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Cuckoo insertion, all pending ids at once per round: an id takes a free bin of its three
    if it has one, else evicts the occupant of its next choice; None if ids are still pending."""
    owner = np.full(bins, -1, dtype=np.int64)
    which = np.zeros(bins, dtype=np.int8)
    pending = np.arange(len(pos), dtype=np.int64)
    turn = np.zeros(len(pos), dtype=np.int64)
    for _ in range(_ROUNDS):
        if not len(pending):
            return owner, which
        candidates = pos[pending]                                      # (p, 3)
        free = owner[candidates] < 0
        k = np.where(free.any(axis=1), free.argmax(axis=1), turn[pending] % HASHES)
        target = candidates[np.arange(len(pending)), k]
        _, first = np.unique(target, return_index=True)                # one winner per bin
        won = np.zeros(len(pending), dtype=bool)
        won[first] = True
        winners, bins_won = pending[won], target[won]
        evicted = owner[bins_won]
        evicted_k = which[bins_won].astype(np.int64)
        owner[bins_won], which[bins_won] = winners, k[won]
        out = evicted >= 0
        turn[pending[~won]] += 1
        turn[evicted[out]] = evicted_k[out] + 1
        pending = np.concatenate([pending[~won], evicted[out]])
    return None


def place(ids: np.ndarray) -> Placement:
    """Cuckoo-place the receiver's ids (fresh seeds until every id has a bin)."""
    bins = bin_count(len(ids))
    for _ in range(_ATTEMPTS):
        seed = os.urandom(16)
        placed = _insert(positions(ids, seed, bins), bins)
        if placed is not None:
            return Placement(seed, bins, *placed)
    raise CryptoError(f"cuckoo hashing failed for {len(ids)} ids in {bins} bins ({_ATTEMPTS} seeds)")


# ---------------------------------------------------------------- the two parties


class KkrtReceiver:
    """The party that learns the intersection: ``start()`` → (A, seed, bins); ``extend(B, key)``
    → U (WIDTH, ⌈bins/8⌉); ``outputs(n_sender)``; ``match(values)`` → {id index: sender position}."""

    def __init__(self, ids: np.ndarray, placement: Placement):
        self.ids, self.placement = ids, placement
        self._base = BaseSender(WIDTH)
        self._t: np.ndarray | None = None

    def start(self) -> tuple[bytes, bytes, int]:
        return self._base.setup(), self.placement.seed, self.placement.bins

    def extend(self, b_points: np.ndarray, code_key: bytes) -> np.ndarray:
        if not isinstance(code_key, (bytes, bytearray)) or len(code_key) != 16:
            raise CryptoError("malformed OPRF code key: expected 16 bytes")
        k0, k1 = self._base.keys(b_points)
        p = self.placement
        filled = p.owner >= 0
        rows = np.empty((p.bins, CODE), dtype=np.uint8)
        rows[filled] = codes(self.ids[p.owner[filled]], p.which[filled], bytes(code_key))
        rows[~filled] = np.frombuffer(os.urandom(int((~filled).sum()) * CODE), dtype=np.uint8).reshape(-1, CODE)
        nbytes = -(-p.bins // 8)
        t = np.stack([prg(k0[i], nbytes) for i in range(WIDTH)])
        u = t ^ np.stack([prg(k1[i], nbytes) for i in range(WIDTH)]) ^ untranspose(rows, nbytes)
        self._t = transpose(t, p.bins)
        return u

    def outputs(self, sender_ids: int) -> np.ndarray:
        """H(j, t_j) of every bin: (bins, output_bytes)."""
        if self._t is None:
            raise CryptoError("OPRF: extend() has not run")
        return pad(self._t, output_bytes(self.placement.bins, sender_ids), _PRF)

    def match(self, values: np.ndarray, mine: np.ndarray | None = None) -> dict[int, int]:
        """The sender's (3, n, L) values against this side's outputs: id index -> sender position.
        ``mine``: :meth:`outputs` if already computed (e.g. on the workers)."""
        p = self.placement
        if not isinstance(values, np.ndarray) or values.dtype != np.uint8 or values.ndim != 3 \
                or values.shape[0] != HASHES:
            raise CryptoError(f"malformed OPRF values: expected a ({HASHES}, n, L) byte array, "
                              f"got {getattr(values, 'shape', type(values).__name__)}")
        length = output_bytes(p.bins, values.shape[1])
        if values.shape[2] != length:
            raise CryptoError(f"malformed OPRF values: {values.shape[2]} bytes each, expected {length}")
        mine = self.outputs(values.shape[1]) if mine is None else mine
        found: dict[int, int] = {}
        for k in range(HASHES):
            bins = np.flatnonzero((p.owner >= 0) & (p.which == k))
            at, hit = _lookup(values[k], mine[bins])
            found.update(zip(p.owner[bins[hit]].tolist(), at[hit].tolist()))
        return found


def _lookup(theirs: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``wanted``: its position among the rows of ``theirs`` and whether it is
    there. Sorted on the first 8 bytes (a numeric sort), checked on all of them; should two of
    ``theirs`` share those 8 bytes (about n²/2^65), on the whole rows."""
    if not len(theirs):
        return np.zeros(len(wanted), dtype=np.int64), np.zeros(len(wanted), dtype=bool)
    length = theirs.shape[1]
    if length >= 8:
        keys, probe = theirs[:, :8].copy().view("<u8")[:, 0], wanted[:, :8].copy().view("<u8")[:, 0]
        order = np.argsort(keys)
        if len(keys) < 2 or (np.diff(keys[order]) != 0).all():
            at = order[np.minimum(np.searchsorted(keys[order], probe), len(keys) - 1)]
            return at, (theirs[at] == wanted).all(axis=1)
    void = np.dtype((np.void, length))
    keys_v = np.ascontiguousarray(theirs).view(void).ravel()
    order = np.argsort(keys_v, kind="stable")
    probe_v = np.ascontiguousarray(wanted).view(void).ravel()
    at = order[np.minimum(np.searchsorted(keys_v[order], probe_v), len(keys_v) - 1)]
    return at, keys_v[at] == probe_v


class KkrtSender:
    """The other party: ``respond(A, seed, bins)`` → (B, code key); ``values(U)`` → (3, n, L)."""

    def __init__(self, ids: np.ndarray):
        self.ids = ids
        self._s = np.unpackbits(np.frombuffer(os.urandom(CODE), dtype=np.uint8), bitorder="little") == 1
        self._base = BaseReceiver(self._s)
        self._key = os.urandom(16)
        self._seed: bytes | None = None
        self.bins = 0

    def respond(self, a_bytes: bytes, seed: bytes, bins: int) -> tuple[np.ndarray, bytes]:
        if not isinstance(seed, (bytes, bytearray)) or len(seed) != 16:
            raise CryptoError("malformed OPRF setup: the cuckoo seed must be 16 bytes")
        if isinstance(bins, bool) or not isinstance(bins, int) or not 1 <= bins <= 1 << 30:
            raise CryptoError("malformed OPRF setup: bad bin count")
        self._seed, self.bins = bytes(seed), bins
        return self._base.respond(a_bytes), self._key

    def _set_up(self) -> bytes:
        """The receiver's cuckoo seed, once :meth:`respond` has run."""
        if self._seed is None:
            raise CryptoError("OPRF: respond() has not run")
        return self._seed

    def rows(self, u: np.ndarray) -> np.ndarray:
        """q_j of every bin from the receiver's matrix U: (bins, CODE)."""
        self._set_up()
        nbytes = -(-self.bins // 8)
        if not isinstance(u, np.ndarray) or u.dtype != np.uint8 or u.shape != (WIDTH, nbytes):
            raise CryptoError(f"malformed OPRF matrix: expected ({WIDTH}, {nbytes}) bytes, "
                              f"got {getattr(u, 'shape', type(u).__name__)}")
        seeds = self._base.keys()
        q = np.stack([prg(seeds[i], nbytes) for i in range(WIDTH)])
        q ^= u * self._s[:, None].astype(np.uint8)
        return transpose(q, self.bins)

    def values_for(self, q: np.ndarray, ids: np.ndarray, where: np.ndarray, k: int) -> np.ndarray:
        """F_j(y, k) for ids ``ids`` at their bins ``where`` under hash function k, given all rows ``q``."""
        s = np.packbits(self._s, bitorder="little")
        return pad(q[where] ^ (codes(ids, k, self._key) & s), output_bytes(self.bins, len(self.ids)), _PRF, where)

    def values(self, u: np.ndarray) -> np.ndarray:
        """(3, n, L): every id's value under each hash function, in this side's id order."""
        q = self.rows(u)
        where = positions(self.ids, self._set_up(), self.bins)
        return np.stack([self.values_for(q, self.ids, where[:, k], k) for k in range(HASHES)])
