"""The Paillier-heavy steps of SecureBoost spread over the party's computing session.

Encryption (with its randomness), a host's per-bin sums, the packing of its split
candidates and the guest's decryptions are independent per item or per row block, so
they run as Table operations: on the local backend a process pool (inline in the driver
when the work is small), on Spark the executors. Functions here are module level or
closures of picklable values, as workers need.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from gmpy2 import mpz

from backends.computing.api import Session
from components.crypto import paillier_wire
from components.crypto.paillier import AdditivePrivateKey, AdditivePublicKey, EncryptedNumber, _new, _rescale
from components.tree.packing import pack_ciphers
from flow.core.errors import CryptoError


def _encrypt(key: AdditivePrivateKey) -> Callable[[list[list[int]]], list[tuple[bytes, bytes]]]:
    def f(chunks: list[list[int]]) -> list[tuple[bytes, bytes]]:
        # the randomness is the expensive part: do it here; a chunk returns as the wire's two blocks
        return [paillier_wire.encode_vector([key.encrypt(m) for m in chunk])[2:] for chunk in chunks]
    return f


def encrypt_all(session: Session, key: AdditivePrivateKey, plain: Sequence[int]) -> list[EncryptedNumber]:
    """Exact (exponent 0) encryptions of packed integers under the guest's own key, randomised
    on its workers by the key holder's path (modulo the primes: the same ciphertexts'
    distribution, OU's 2.4x faster). Each worker returns its chunk as the wire's ciphertext
    vector (one buffer), not a pickled object per ciphertext."""
    plain = list(plain)
    if not plain:
        return []
    pub = key.public_key
    width = paillier_wire.width_of(pub)
    chunks = [list(c) for c in np.array_split(np.asarray(plain, dtype=object),
                                              min(session.default_partitions, len(plain)))]
    out: list[EncryptedNumber] = []
    for chunk, (block, exps) in zip(chunks, session.map_batches(chunks, _encrypt(key),
                                                                  rows_each=max(map(len, chunks)))):
        out += paillier_wire.decode_vector(pub, width, len(chunk), memoryview(block), memoryview(exps))
    return out


def _raw_decrypt(key: AdditivePrivateKey) -> Callable[[EncryptedNumber], int]:
    def f(c: EncryptedNumber) -> int:
        return key.raw_decrypt(c.ciphertext)
    return f


def decrypt_all(session: Session, key: AdditivePrivateKey, cipher: Sequence[EncryptedNumber]) -> list[int]:
    """Plaintext integers in ``[0, n)`` (the guest's own key stays on its own workers)."""
    return session.map_list(list(cipher), _raw_decrypt(key))


def _pack(slot_bits: int) -> Callable[[list[EncryptedNumber]], EncryptedNumber]:
    def f(group: list[EncryptedNumber]) -> EncryptedNumber:
        packed = pack_ciphers(group, slot_bits, len(group))[0]
        if packed is group[0]:  # a one-item group: randomise a copy, never the caller's object
            packed = packed.multiply(1)
        return packed.obfuscate()
    return f


def pack_groups(session: Session, groups: Sequence[list[EncryptedNumber]],
                slot_bits: int) -> list[EncryptedNumber]:
    """Host side: each group packed into one ciphertext (:func:`pack_ciphers`) on the workers,
    and randomised there."""
    return session.map_list(groups, _pack(slot_bits))


@dataclass(frozen=True)
class RowBlock:
    """A slice of a host's rows in three buffers: their indices, the guest's ciphertexts as
    one block of the wire's fixed width (:func:`paillier_wire.pack_raw`), and their bins. Per
    level the host ships its rows to the workers again; as a tuple, a ciphertext object and an
    array per row, pickling them cost the host's driver ~15 µs a row (its largest serial cost at
    100,000 rows), as buffers ~0."""

    rows: np.ndarray
    cipher: bytes
    width: int
    bins: np.ndarray

    def ciphertexts(self, keep: np.ndarray) -> list[mpz]:
        """The ciphertexts of the block's rows at positions ``keep``."""
        rows = np.frombuffer(self.cipher, dtype=np.uint8).reshape(-1, self.width)[keep]
        return paillier_wire.unpack_raw(rows.tobytes(), self.width, len(keep))


@dataclass(frozen=True)
class RowBlocks:
    """A host's histogram input for one tree: the blocks, and the key and exponent every
    ciphertext in them shares."""

    blocks: list[RowBlock]
    key: AdditivePublicKey
    exponent: int


def row_blocks(session: Session, cipher: Sequence[EncryptedNumber], bins: np.ndarray) -> RowBlocks:
    """The guest's ciphertexts (one per row, one key) and the host's bins cut into one block
    per partition of the session, at one exponent (the guest's are all exact: exponent 0)."""
    key = cipher[0].public_key
    exponent, n2 = max(c.exponent for c in cipher), key._n2
    width = paillier_wire.width_of(key)
    small = bins.astype(np.uint8 if bins.size == 0 or bins.max() < 256 else np.int32)
    blocks = []
    for rows in np.array_split(np.arange(len(cipher)), max(1, min(session.default_partitions, len(cipher)))):
        raw = [_rescale(cipher[i]._c, exponent - cipher[i].exponent, n2) for i in rows.tolist()]
        if not all(0 < c < n2 for c in raw):  # the wire refuses those; a caller's own may still be wrong
            raise CryptoError("a ciphertext does not fit its public key's modulus")
        blocks.append(RowBlock(rows, paillier_wire.pack_raw(raw, width), width, small[rows]))
    return RowBlocks(blocks, key, exponent)


def _block_sums(pos: np.ndarray, active: list[int], features: list[int], n2: mpz):
    """Per block: the product modulo ``n2`` (a ciphertext sum) of its rows' ciphertexts per
    (node, feature, bin), over its rows in ``active`` nodes."""
    wanted = np.asarray(active)

    def one(block: RowBlock) -> dict[tuple[int, int, int], mpz]:
        node = pos[block.rows]
        keep = np.nonzero(np.isin(node, wanted))[0]
        if not len(keep):
            return {}
        cs = block.ciphertexts(keep)  # only the rows of active nodes are decoded
        bins = block.bins[keep].astype(np.int64)
        nodes, dense = np.unique(node[keep], return_inverse=True)
        out: dict[tuple[int, int, int], mpz] = {}
        for f_ in features:
            # one pass in row order into a small table of running sums: the ciphertexts are read
            # in the order they lie in memory (sorting rows by bin first read them scattered: 35% slower)
            width = int(bins[:, f_].max()) + 1
            acc: list[mpz | None] = [None] * (len(nodes) * width)
            for k, c in zip((dense * width + bins[:, f_]).tolist(), cs):
                a = acc[k]
                acc[k] = c if a is None else a * c % n2
            for k, a in enumerate(acc):
                if a is not None:
                    out[(int(nodes[k // width]), f_, k % width)] = a
        return out

    def f(blocks: list[RowBlock]) -> list[dict[tuple[int, int, int], mpz]]:
        return [one(b) for b in blocks]
    return f


def node_histograms(session: Session, rows: RowBlocks, pos: np.ndarray, active: list[int],
                    features: list[int]) -> dict[tuple[int, int, int], EncryptedNumber]:
    """Σ ciphertext per non-empty (node, feature, bin), each block's sums combined in the driver."""
    key, n2 = rows.key, rows.key._n2
    total: dict[tuple[int, int, int], mpz] = {}
    per_block = max(1, max((len(b.rows) for b in rows.blocks), default=1))
    for part in session.map_batches(rows.blocks, _block_sums(pos, active, features, n2), rows_each=per_block):
        for k, v in part.items():
            total[k] = v if k not in total else total[k] * v % n2
    return {k: _new(key, c, rows.exponent) for k, c in total.items()}
