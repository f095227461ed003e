"""Shared values among a guest (party 0) and several hosts (1..H) from two-party sessions only.

Every shared value lives between the guest and host 1 (the *canonical* pair: the two-party
:class:`Session` between them); a host ``h >= 2`` holds zeros of every shared value. What such a
host brings in, it re-shares at once: it splits the value into a uniform mask and the rest and
gives one to the guest and the other to host 1 (:meth:`Group.fold`), so neither learns it.

* a private matrix of host ``h`` times a shared ``Y``: ``X_h·Y_guest`` on the session (guest, h)
  and ``X_h·Y_host1`` on the session (host 1, h), host ``h``'s shares of both folded back, then
  truncated on the canonical pair (each product alone is a uniform ring element, too large to
  truncate share by share; their sum is small);
* a value of host ``h``'s revealed to it: the guest and host 1 give it their shares;
* everything else runs on the canonical pair, the other hosts idle.

With one host this is that host's :class:`Session` with the guest, message for message. Pairs
are numbered by party: the lower is party 0 of their session. All parties run the same calls.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from components.crypto.paillier import EncryptedNumber
from components.mpc.beaver import Session
from flow.core.errors import CryptoError


class Group:
    """One party's side (``me`` in [0, size)) of a computation among ``size`` parties;
    ``sessions`` maps each party it talks to onto their two-party session."""

    def __init__(self, me: int, size: int, sessions: dict[int, Session]):
        need = set(range(1, size)) if me == 0 else {0} | (set(range(2, size)) if me == 1 else {1})
        if set(sessions) != need:
            raise CryptoError(f"party {me} of {size} needs sessions with {sorted(need)}, got {sorted(sessions)}")
        self.me, self.size, self.sessions = me, size, sessions
        self.fp = next(iter(sessions.values())).fp
        #: the arithmetic role in the canonical pair: 0 adds public values, 1 (any host) does not
        self.role = 0 if me == 0 else 1
        self.canon = sessions[1 if me == 0 else 0] if me < 2 else None

    @classmethod
    def pair(cls, sess: Session) -> Group:
        """The group of one two-party session (guest and one host)."""
        return cls(sess.party, 2, {1 - sess.party: sess})

    def _zeros(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.zeros(shape, dtype=object)

    def fold(self, share: np.ndarray) -> np.ndarray:
        """Move what hosts >= 2 hold of a value onto the canonical pair (theirs become zero)."""
        if self.me >= 2:
            mine, theirs = self.fp.share(share)
            self.sessions[0].give(mine)
            self.sessions[1].give(theirs)
            return self._zeros(np.shape(share))
        for h in range(2, self.size):
            share = self.fp.add(share, self.sessions[h].take(np.shape(share)))
        return share

    def share(self, owner: int, values: Any, shape: tuple[int, ...]) -> np.ndarray:
        """This party's share of ``owner``'s reals ``values`` (given there only, None elsewhere);
        ``shape`` is known to all."""
        if owner < 2:
            return self.canon.share(owner, values, shape) if self.canon is not None else self._zeros(shape)
        if self.me == owner:
            return self.fold(self.fp.encode(values))
        return self.sessions[owner].take(shape) if self.me < 2 else self._zeros(shape)

    def matmul(self, x: Any, y: np.ndarray, x_owner: int | None = None, rows: int | None = None) -> np.ndarray:
        """This party's share of ``X·Y`` (truncated) for a shared ``Y`` (k×p): ``X`` shared, or
        party ``x_owner``'s encoded matrix (``x`` there only); ``rows`` = X's row count."""
        y = np.asarray(y, dtype=object)
        m = np.shape(x)[0] if x is not None else rows
        if m is None:
            raise CryptoError("a product's row count must be given to the parties without X")
        if x_owner is None or x_owner < 2:
            return self.canon.matmul(x, y, x_owner=x_owner) if self.canon is not None else self._zeros((m, y.shape[1]))
        if self.me == x_owner:  # X·Y_guest + X·Y_host1 is small, each alone is not: truncated once folded
            parts = [self.sessions[o].matmul(x, y, x_owner=1, truncate=False) for o in (0, 1)]
            return self.fold(self.fp.add(*parts))
        if self.me >= 2:
            return self._zeros((m, y.shape[1]))
        part = self.sessions[x_owner].matmul(None, y, x_owner=1, truncate=False)
        return self.fp.truncate(self.fp.add(part, self.sessions[x_owner].take(part.shape)), self.role)

    def reveal(self, share: np.ndarray, to: int) -> np.ndarray | None:
        """The real value of a shared value to party ``to`` only (None elsewhere)."""
        share = self.fold(share)
        if to < 2:
            return self.canon.reveal(share, to) if self.canon is not None else None
        if self.me < 2:
            self.sessions[to].give(share)
            return None
        if self.me != to:
            return None
        return self.fp.decode(self.fp.add(*[self.sessions[o].take(np.shape(share)) for o in (0, 1)]))

    def reveal_encrypted(self, share: np.ndarray, to: int) -> np.ndarray | None:
        """A shared value to host ``to`` encrypted under the guest's Paillier key (integer
        ciphertexts of its ring elements, each plus 0 or 2^K): the guest encrypts its share,
        the host adds its own. None elsewhere."""
        share = self.fold(share)
        if to < 1:
            raise CryptoError("only a host's values are revealed encrypted (under the guest's key)")
        if self.me == 0:
            key = self.sessions[to].public_key
            if key is None:
                raise CryptoError("an encrypted reveal needs the guest's Paillier key")
            self.sessions[to].announce(0, [key.encrypt(int(v)).obfuscate() for v in share.flat])
            return None
        if self.me != to:
            if self.me == 1:
                self.sessions[to].give(share)
            return None
        key = self.sessions[0].peer_key
        enc = self.sessions[0].announce(0)
        if key is None or not isinstance(enc, list) or len(enc) != share.size or not all(
                isinstance(c, EncryptedNumber) and c.public_key == key and c.exponent == 0 for c in enc):
            raise CryptoError(f"an encrypted reveal must be {share.size} integer ciphertexts under the guest's key")
        own = share if to == 1 else self.sessions[1].take(np.shape(share))
        out = np.empty(np.shape(share), dtype=object)
        out.flat[:] = [c + int(v) for c, v in zip(enc, own.flat)]
        return out

    def announce(self, value: Any = None) -> Any:
        """The guest's plain value (a decision) to every host."""
        if self.me == 0:
            for sess in self.sessions.values():
                sess.announce(0, value)
            return value
        return self.sessions[0].announce(0)

    def gram(self, z: np.ndarray, left: Any = None, rows: int = 0) -> np.ndarray:
        """Shares of ``[L; zᵀ]·z`` for a shared column ``z`` and the guest's private rows ``L``
        (:meth:`Session.gram`), on the canonical pair."""
        if self.canon is not None:
            return self.canon.gram(z, left, rows)
        return self._zeros((rows + 1, 1))

    def cross_pair(self, a: Any, b: Any, shapes: tuple) -> tuple[np.ndarray, np.ndarray] | None:
        """:meth:`Session.cross_pair` on the canonical pair (guest party 0, host 1 party 1); None
        on the other hosts."""
        return self.canon.cross_pair(a, b, shapes) if self.canon is not None else None
