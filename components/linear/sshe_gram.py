"""HeteroSSHELR's epochs on the Gram matrix: a quadratic loss's gradient and value depend on the
data only through ``H = X^T X`` and ``b = X^T t``, fixed for a fit; so, between a guest and
one host, both are secret-shared once and each epoch works on ``d``-sized values only.

With ``X = [X_0, X_1]`` (the guest's features and intercept, the host's), ``w`` the weights:

  g    = scale·(H·w + k·b)/n                              = X^T·e/n of components/linear/sshe_protocol.py
  loss = c0 + c0_t2·t² + (c1·bᵀw + c2·wᵀH·w)/n + penalty    tᵀz = bᵀw, zᵀz = wᵀHw

``H``'s diagonal blocks are each party's own ``X_o^T X_o``; the off-diagonal one is one cross
product at the start (the party with fewer features encrypts its ``X``, the other multiplies by
its own ``X^T``); ``b``'s host part is shared the same way (sshe_protocol.py). Nothing is
opened: every value is a share or a cross product's masked result, as on the per-row path, and
the guest still sees only the loss. An epoch is then one round trip for ``H·w`` (both cross
terms at once) and one for the loss, at ``d²`` exponentiations instead of ``n·d``: worth it when
the fit runs enough epochs to repay encrypting ``n·min(d_0, d_1)`` features once
(:func:`worth_it`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from components.mpc import Session


def worth_it(size: int, dims: tuple[int, ...], epochs: int) -> bool:
    """Two parties only (hosts 2.. share no session with each other), and about two epochs' rows
    of encryptions on the per-row path for each feature encrypted here."""
    return size == 2 and 2 * epochs >= min(dims)


def gram_shares(sess: Session, x: np.ndarray, dims: tuple[int, ...]) -> np.ndarray:
    """This party's share of ``X^T X`` ((d_0 + d_1) square) from its own rows ``x`` (reals)."""
    fp, me, (d0, d1) = sess.fp, sess.party, dims
    b_owner = 0 if d0 <= d1 else 1  # its X goes encrypted: the fewer columns
    a_owner = 1 - b_owner
    shape = (dims[a_owner], len(x), dims[b_owner])
    part = sess.cross(a_owner, a=fp.encode(x.T), shape=shape) if me == a_owner else \
        sess.cross(a_owner, b=fp.encode(x), shape=shape)
    part = fp.truncate(part, me)  # X_a^T X_b
    c = part if a_owner == 0 else part.T  # X_0^T X_1
    h = np.zeros((d0 + d1, d0 + d1), dtype=object)
    h[:d0, d0:], h[d0:, :d0] = c, c.T
    own = slice(0, d0) if me == 0 else slice(d0, d0 + d1)
    h[own, own] = fp.encode(x.T @ x)
    return h


class GramEpoch:
    """One batch's shares of ``H`` and ``b`` and the epoch's steps on them (party ``sess.party``)."""

    def __init__(self, sess: Session, h: np.ndarray, b: np.ndarray, n: int, loss: Any):
        self.sess, self.fp, self.h, self.b, self.n, self.loss = sess, sess.fp, h, b, n, loss

    def products(self, w: np.ndarray) -> np.ndarray:
        """Shares of ``H·w`` for shares ``w`` (d×1), not yet truncated: both cross terms in one
        round trip."""
        fp, d = self.fp, len(w)
        p0, p1 = self.sess.cross_pair(self.h, w, ((d, d, 1), (d, d, 1)))
        return fp.add(fp.add(fp.matmul(self.h, w), p0), p1)

    def gradient(self, hw: np.ndarray) -> np.ndarray:
        """Shares of ``scale·(H·w + k·b)/n`` (all parties' weights, stacked) from :meth:`products`.
        ``b``'s guest part is the guest's alone (the host holds 0 of it), so it is added before
        truncating: truncation is exact only on shares masked uniformly, as the products' are."""
        fp, L, me = self.fp, self.loss, self.sess.party
        total = fp.truncate(fp.add(hw, fp.mul(self.b, fp.encode(L.k))), me)
        return fp.scale(fp.scale(total, L.scale, me), 1.0 / self.n, me)

    def quadratic(self, w: np.ndarray, hw: np.ndarray, extra: np.ndarray | None) -> np.ndarray:
        """Shares of ``(c1·bᵀw + c2·wᵀHw)/n`` (plus ``wᵀ·extra``: the penalty's), one round trip."""
        fp, L, me, d = self.fp, self.loss, self.sess.party, len(w)
        hw = fp.truncate(hw, me)
        v = fp.truncate(fp.add(fp.mul(hw, fp.encode(L.c2 / self.n)), fp.mul(self.b, fp.encode(L.c1 / self.n))), me)
        if extra is not None:
            v = fp.add(v, extra)
        p0, p1 = self.sess.cross_pair(w.T, v, ((1, d, 1), (1, d, 1)))
        return fp.truncate(fp.add(fp.add(fp.matmul(w.T, v), p0), p1), me)
