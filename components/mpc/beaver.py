"""Two-party products of shared fixed-point matrices, their cross terms made by the two parties
themselves with Paillier (components/mpc/paillier_cross.py) or by oblivious transfer
(components/mpc/ot_triples.py): no third party, no dealer.

A product ``X·Y`` of shares is ``X0·Y0 + X1·Y1`` (local) plus the cross terms ``X0·Y1`` and
``X1·Y0``, one :meth:`Session.cross` each: the holder of the right factor encrypts it under
its own key, the holder of the left computes ``[[A·B + R]]`` with a fresh mask ``R`` 40 bits
wider than ``A·B`` and sends it back; the one decrypts ``A·B + R``, the other keeps ``-R``
(mod ``2^k``). With ``x_owner`` set, ``X`` is one party's private matrix and only
``X·Y_other`` crosses. Beaver triples (:meth:`Session.triple`: shares of ``U, V`` and
``Z = U·V``) come from the same cross products, for callers that want an offline phase; a
product through one would cost the same cross terms plus two openings, so
:meth:`Session.matmul` does without.

The protocol is I/O-free: a :class:`Session` talks through a :class:`Peer` its caller
supplies (a federation channel in a component, queues in tests). Both parties must run
the same sequence of calls; messages are numbered in that order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from components.crypto.paillier import PaillierPrivateKey, PaillierPublicKey
from components.mpc.fixedpoint import FixedPoint
from components.mpc.ot_triples import OTCross
from components.mpc.paillier_cross import PaillierCross
from flow.core.errors import CryptoError


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


#: how a session makes the cross terms of its triples (the conf's ``triple_provider``)
TRIPLE_PROVIDERS = ("paillier", "ot")


class Session:
    """One party's side (``party`` 0 or 1) of a two-party computation on shared values; its
    triples' cross terms by Paillier (both keys needed) or by oblivious transfer (none)."""

    def __init__(self, peer: Peer, party: int, fp: FixedPoint, private_key: PaillierPrivateKey | None = None,
                 peer_key: PaillierPublicKey | None = None, triples: str = "paillier"):  # fmt: skip
        if party not in (0, 1):
            raise CryptoError(f"party must be 0 or 1, got {party!r}")
        if triples not in TRIPLE_PROVIDERS:
            raise CryptoError(f"triple provider must be one of {', '.join(TRIPLE_PROVIDERS)}, got {triples!r}")
        if triples == "paillier" and (private_key is None or peer_key is None):
            raise CryptoError("Paillier triples need this party's private key and the peer's public key")
        self.peer, self.party, self.fp, self.triples = peer, party, fp, triples
        self.private_key, self.peer_key = private_key, peer_key
        self.public_key = private_key.public_key if private_key is not None else None
        self._cross = OTCross() if triples == "ot" else PaillierCross()
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

    def give(self, share) -> None:
        """Send a ring array to the peer (it calls :meth:`take`): a fresh share of a re-sharing."""
        self.peer.send(self._name("give"), self.fp.to_wire(share))

    def take(self, shape: tuple[int, ...]) -> np.ndarray:
        got = self.fp.from_wire(self.peer.recv(self._name("give")))
        if got.shape != tuple(shape):
            raise CryptoError(f"share of shape {got.shape} received, expected {tuple(shape)}")
        return got

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
        return self._cross(self, a_owner, a, b, m, k, p)

    def cross_pair(self, a, b, shapes: tuple) -> tuple[np.ndarray, np.ndarray]:
        """Shares of ``A_0·B_1`` and ``A_1·B_0`` (ring, no truncation): this party's ``a`` is its
        ``A``, its ``b`` the right factor of the other's product; ``shapes[o]`` = (m, k, p) of
        party ``o``'s product, known to both. With Paillier both go in one round trip."""
        for m, k, p in shapes:
            if min(m, k, p) < 1:
                raise CryptoError(f"cross product of empty matrices ({m}x{k} by {k}x{p})")
        pair = getattr(self._cross, "pair", None)
        if pair is not None:
            return pair(self, a, b, tuple(shapes))
        mine = [self.cross(o, a if self.party == o else None, None if self.party == o else b, shapes[o])
                for o in (0, 1)]
        return mine[0], mine[1]

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
        ``X`` is that party's private encoded matrix (``x`` there, None on the other side).

        Direct, no triple: each party multiplies its own shares locally and the cross terms
        (``X0·Y1`` and ``X1·Y0``; with ``x_owner`` only ``X·Y_other``) are one :meth:`cross`
        each. A triple-based product would open ``E = X - U`` and ``F = Y - V`` and still
        need the same cross terms on ``U`` and ``V`` (uniform ``K``-bit exponents under
        Paillier); here a private ``X`` is the exponent itself, small fixed-point numbers,
        and nothing is opened. Each party's result is a share masked by the cross terms'
        fresh uniform masks, so the views are those of the cross products alone."""
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
        owners = (0, 1) if x_owner is None else (x_owner,)
        local = x_owner is None or self.party == x_owner
        out = fp.matmul(x, y) if local else np.zeros((m, p), dtype=object)
        for owner in owners:
            mine = self.party == owner
            out = fp.add(out, self.cross(owner, x if mine else None, None if mine else y, (m, k, p)))
        return fp.truncate(out, self.party) if truncate else out

    def gram(self, z, left=None, rows: int = 0) -> np.ndarray:
        """Shares of ``[L; zᵀ]·z`` (truncated) for a shared column ``z`` (m×1) and party 0's
        private encoded rows ``L`` (``rows``×m, none by default), on one cross term:
        ``zᵀz = z0ᵀz0 + z1ᵀz1 + 2·z0ᵀz1`` and ``L·z = L·z0 + L·z1``."""
        fp = self.fp
        z = np.asarray(z, dtype=object)
        if self.party == 1:
            own = np.vstack([np.zeros((rows, 1), dtype=object), fp.matmul(z.T, z)])
            return fp.truncate(fp.add(own, self.cross(0, b=z, shape=(rows + 1, len(z), 1))), 1)
        a = np.vstack([np.asarray(left, dtype=object).reshape(rows, len(z)), fp.mul(z.T, 2)]) if rows else \
            fp.mul(z.T, 2)
        own = fp.matmul(np.vstack([a[:rows], z.T]), z) if rows else fp.matmul(z.T, z)
        return fp.truncate(fp.add(own, self.cross(0, a=a, shape=(rows + 1, len(z), 1))), 0)
