"""The Paillier-heavy steps of SecureBoost spread over the party's computing session.

Encryption (with its randomness), a host's per-bin sums, the packing of its split
candidates and the guest's decryptions are independent per item or per row block, so
they run as Table operations: on the local backend a process pool (inline in the driver
when the work is small), on Spark the executors. Functions here are module level or
closures of picklable values, as workers need.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from backends.computing.api import Session, Table
from components.crypto.paillier import AdditivePrivateKey, EncryptedNumber
from components.crypto.vector import encrypted_sum
from components.tree.packing import pack_ciphers


def _encrypt(key: AdditivePrivateKey) -> Callable[[int], EncryptedNumber]:
    def f(m: int) -> EncryptedNumber:
        return key.encrypt(m)  # the randomness is the expensive part: do it here
    return f


def encrypt_all(session: Session, key: AdditivePrivateKey, plain: Sequence[int]) -> list[EncryptedNumber]:
    """Exact (exponent 0) encryptions of packed integers under the guest's own key, randomised
    on its workers by the key holder's path (modulo the primes: the same ciphertexts'
    distribution, OU's 2.4x faster)."""
    return session.map_list(list(plain), _encrypt(key))


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


def row_table(session: Session, cipher: Sequence[EncryptedNumber], bins: np.ndarray) -> Table:
    """Row i -> (its ciphertext, its bin per feature): what a host sums per level."""
    return session.parallelize((i, (c, bins[i])) for i, c in enumerate(cipher))


def _node_sums(pos: np.ndarray, active: list[int], features: list[int]):
    """Per partition: Σ ciphertext per (node, feature, bin) over its rows in ``active`` nodes."""
    wanted = np.asarray(active)

    def f(part: list) -> dict[tuple[int, int, int], EncryptedNumber]:
        if not part:
            return {}
        idx = np.fromiter((k for k, _ in part), dtype=np.int64, count=len(part))
        node = pos[idx]
        keep = np.nonzero(np.isin(node, wanted))[0]
        if not len(keep):
            return {}
        cs = [part[j][1][0] for j in keep.tolist()]
        bins = np.stack([part[j][1][1] for j in keep.tolist()])
        node = node[keep]
        out = {}
        for f_ in features:
            key = node * (int(bins[:, f_].max()) + 1) + bins[:, f_]
            order = np.argsort(key, kind="stable")
            cuts = np.r_[0, np.nonzero(np.diff(key[order]))[0] + 1, len(order)].tolist()
            order_l = order.tolist()
            for s, e in zip(cuts[:-1], cuts[1:]):
                j = order_l[s]
                out[(int(node[j]), f_, int(bins[j, f_]))] = encrypted_sum([cs[i] for i in order_l[s:e]])
        return out
    return f


def node_histograms(rows: Table, pos: np.ndarray, active: list[int],
                    features: list[int]) -> dict[tuple[int, int, int], EncryptedNumber]:
    """Σ ciphertext per non-empty (node, feature, bin), partial sums combined in the driver."""
    total: dict[tuple[int, int, int], EncryptedNumber] = {}
    for part in rows.apply_partitions(_node_sums(pos, active, features)):
        for k, v in part.items():
            total[k] = v if k not in total else total[k] + v
    return total
