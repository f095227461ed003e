"""Two-party products of shared fixed-point matrices through Beaver triples, the triples
made by the two parties themselves with Paillier (no third party, no dealer).

A triple is shares of ``U, V`` and ``Z = U·V`` with ``U, V`` uniform. To multiply shared
``X·Y`` each party opens ``E = X - U`` and ``F = Y - V`` (uniform, so they tell nothing)
and ``X·Y = E·F + E·V + U·F + Z`` is linear in the shares. ``Z``'s cross terms
(``U0·V1``, ``U1·V0``) are one :meth:`Session.cross` each: the holder of the right factor
encrypts it under its own key, the holder of the left computes ``[[A·B + R]]`` with a mask
``R`` 40 bits wider than ``A·B`` and sends it back; the one decrypts ``A·B + R``, the other
keeps ``-R`` (mod ``2^k``). With ``x_owner`` set, ``X`` is one party's private matrix (its
share of ``X`` is ``X``, the other's 0): ``U`` is then that party's alone and only the
small factor is encrypted.

The protocol is I/O-free: a :class:`Session` talks through a :class:`Peer` its caller
supplies (a federation channel in a component, queues in tests). Both parties must run
the same sequence of calls; messages are numbered in that order.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from components.crypto.paillier import EncryptedNumber, PaillierPrivateKey, PaillierPublicKey
from components.crypto.vector import encrypted_dot
from components.mpc.fixedpoint import FixedPoint
from flow.core.errors import CryptoError

#: statistical security of the masks of the cross terms (bits)
MASK_SLACK = 40


class Peer(Protocol):
    """The other party: ``send`` an object under a name, ``recv`` the one it sent under that name."""

    def send(self, name: str, obj: Any) -> None: ...

    def recv(self, name: str) -> Any: ...


@dataclass
class Triple:
    """This party's shares of ``U`` (m×k), ``V`` (k×p) and ``Z = U·V``."""

    u: np.ndarray
    v: np.ndarray
    z: np.ndarray


class Session:
    """One party's side (``party`` 0 or 1) of a two-party computation on shared values."""

    def __init__(self, peer: Peer, party: int, fp: FixedPoint, private_key: PaillierPrivateKey,
                 peer_key: PaillierPublicKey):  # fmt: skip
        if party not in (0, 1):
            raise CryptoError(f"party must be 0 or 1, got {party!r}")
        self.peer, self.party, self.fp = peer, party, fp
        self.private_key, self.public_key, self.peer_key = private_key, private_key.public_key, peer_key
        self._seq = 0

    def _name(self, what: str) -> str:
        self._seq += 1
        return f"{what}.{self._seq}"

    # ------------------------------------------------------------------ sharing and opening
    def share(self, owner: int, values=None, shape: tuple[int, ...] | None = None) -> np.ndarray:
        """This party's share of ``owner``'s reals ``values`` (given only there; ``shape`` elsewhere)."""
        name = self._name("share")
        if self.party == owner:
            mine, theirs = self.fp.share(self.fp.encode(values))
            self.peer.send(name, self.fp.to_wire(theirs))
            return mine
        got = self.fp.from_wire(self.peer.recv(name))
        if shape is not None and got.shape != tuple(shape):
            raise CryptoError(f"share of shape {got.shape} received, expected {tuple(shape)}")
        return got

    def open(self, share) -> np.ndarray:
        """The ring value both parties hold shares of, to both."""
        name = self._name("open")
        self.peer.send(name, self.fp.to_wire(share))
        theirs = self.fp.from_wire(self.peer.recv(name))
        if theirs.shape != np.shape(share):
            raise CryptoError(f"opened share of shape {theirs.shape}, expected {np.shape(share)}")
        return self.fp.add(share, theirs)

    def reveal(self, share, to: int) -> np.ndarray | None:
        """The real value of ``share`` to party ``to`` only (None on the other)."""
        name = self._name("reveal")
        if self.party != to:
            self.peer.send(name, self.fp.to_wire(share))
            return None
        theirs = self.fp.from_wire(self.peer.recv(name))
        if theirs.shape != np.shape(share):
            raise CryptoError(f"revealed share of shape {theirs.shape}, expected {np.shape(share)}")
        return self.fp.decode(self.fp.add(share, theirs))

    def announce(self, owner: int, value: Any = None) -> Any:
        """A plain value of party ``owner`` (a decision, a size) to both parties."""
        name = self._name("announce")
        if self.party == owner:
            self.peer.send(name, value)
            return value
        return self.peer.recv(name)

    # ------------------------------------------------------------------ products
    def cross(self, a_owner: int, a=None, b=None, shape: tuple[int, int, int] | None = None) -> np.ndarray:
        """Shares of ``A·B`` (ring, no truncation) where party ``a_owner`` holds ``A`` (m×k) and
        the other ``B`` (k×p); ``shape`` = (m, k, p) is known to both."""
        m, k, p = shape if shape is not None else (*np.shape(a), np.shape(b)[1])
        if min(m, k, p) < 1:
            raise CryptoError(f"cross product of empty matrices ({m}x{k} by {k}x{p})")
        name, back = self._name("cross_b"), self._name("cross_ab")
        bound = 2 * self.fp.ring_bits + max(1, k).bit_length() + MASK_SLACK + 2
        if self.party != a_owner:  # holds B: encrypts it under its own key, decrypts A·B + R
            if bound >= self.public_key.max_int.bit_length():
                raise CryptoError(f"a {self.public_key.n.bit_length()}-bit Paillier key is too short for "
                                  f"{self.fp.ring_bits}-bit shares (needs about {bound + 2} bits)")
            b = np.asarray(b, dtype=object).reshape(k, p)
            self.peer.send(name, [self.public_key.encrypt(int(x)) for x in b.T.flat])
            enc = self.peer.recv(back)
            if not isinstance(enc, list) or len(enc) != m * p:
                raise CryptoError(f"cross product: expected {m * p} ciphertexts")
            raw = [self.private_key.raw_decrypt(self._mine(c).ciphertext) for c in enc]
            return np.array(raw, dtype=object).reshape(p, m).T % self.fp.modulus
        if bound >= self.peer_key.max_int.bit_length():
            raise CryptoError(f"the peer's {self.peer_key.n.bit_length()}-bit Paillier key is too short for "
                              f"{self.fp.ring_bits}-bit shares")
        enc_b = self.peer.recv(name)
        if not isinstance(enc_b, list) or len(enc_b) != k * p:
            raise CryptoError(f"cross product: expected {k * p} ciphertexts")
        enc_b = [self._theirs(c) for c in enc_b]
        a_t = np.asarray(a, dtype=object).reshape(m, k).T
        mask = np.empty((m, p), dtype=object)
        mask.flat[:] = [secrets.randbits(bound - 2) for _ in range(m * p)]
        out = []
        for j in range(p):
            col = encrypted_dot(enc_b[j * k:(j + 1) * k], a_t)
            out += [(c + int(r)).obfuscate() for c, r in zip(col, mask[:, j])]
        self.peer.send(back, out)
        return (-mask) % self.fp.modulus

    def _mine(self, c: Any) -> EncryptedNumber:
        if not isinstance(c, EncryptedNumber) or c.public_key != self.public_key or c.exponent != 0:
            raise CryptoError("cross product: a reply is not a ciphertext under this party's key")
        return c

    def _theirs(self, c: Any) -> EncryptedNumber:
        if not isinstance(c, EncryptedNumber) or c.public_key != self.peer_key or c.exponent != 0:
            raise CryptoError("cross product: an operand is not an integer ciphertext under the peer's key")
        return c

    def triple(self, m: int, k: int, p: int, u_owner: int | None = None) -> Triple:
        """A fresh triple for an (m×k)·(k×p) product; with ``u_owner`` the whole ``U`` is that party's."""
        fp = self.fp
        v = fp.random((k, p))
        if u_owner is None:
            u = fp.random((m, k))
            z = fp.matmul(u, v)
            for owner in (0, 1):  # U_owner · V_other
                mine = self.party == owner
                z = fp.add(z, self.cross(owner, u if mine else None, None if mine else v, (m, k, p)))
            return Triple(u, v, z)
        if self.party == u_owner:
            u = fp.random((m, k))
            return Triple(u, v, fp.add(fp.matmul(u, v), self.cross(u_owner, a=u, shape=(m, k, p))))
        return Triple(np.zeros((m, k), dtype=object), v, self.cross(u_owner, b=v, shape=(m, k, p)))

    def matmul(self, x, y, x_owner: int | None = None, truncate: bool = True) -> np.ndarray:
        """This party's share of ``X·Y`` for shares ``x`` (m×k) and ``y`` (k×p). With ``x_owner``,
        ``X`` is that party's private encoded matrix (``x`` there, None on the other side)."""
        fp = self.fp
        y = np.asarray(y, dtype=object)
        k, p = y.shape
        if x_owner is None or self.party == x_owner:
            m = np.shape(x)[0]
            if x_owner is not None:
                self.peer.send(self._name("shape"), m)
        else:
            m = self.peer.recv(self._name("shape"))
            if not isinstance(m, int) or m < 1:
                raise CryptoError(f"a product's row count must be a positive integer, got {m!r}")
        t = self.triple(m, k, p, x_owner)
        f = self.open(fp.sub(y, t.v))
        if x_owner is None:
            e = self.open(fp.sub(x, t.u))
        else:
            name = self._name("open_x")
            if self.party == x_owner:
                e = fp.sub(x, t.u)
                self.peer.send(name, fp.to_wire(e))
            else:
                e = fp.from_wire(self.peer.recv(name))
                if e.shape != (m, k):
                    raise CryptoError(f"masked matrix of shape {e.shape}, expected {(m, k)}")
        out = fp.add(fp.add(fp.matmul(e, t.v), fp.matmul(t.u, f)), t.z)
        if self.party == 0:
            out = fp.add(out, fp.matmul(e, f))
        return fp.truncate(out, self.party) if truncate else out
