"""HeteroNN's interactive layer for the host's part, computed on secret shares (torch-free).

The interactive layer is ``z = a_g·W_g + b + a_h·W_h``. The guest's part (``W_g``, ``b``)
is plain guest state. The host's weights ``W_h`` exist only as two additive shares in the
ring of :mod:`components.mpc.fixedpoint`: ``U_g`` at the guest (party 0), ``U_h`` at the
host (party 1). ``U_g`` starts at zero and ``U_h`` at the host's initial weights, so the
guest never holds ``W_h``; after the first update both shares are uniform ring elements.

Every product between the parties is a :meth:`Session.cross` (the holder of one factor
encrypts it under its own Paillier key, the other multiplies homomorphically and returns
the product plus a 40-bit-wider mask), so what crosses is ciphertext under the sender's
own key or a uniformly masked share:

* forward: shares of ``a_h·U_g`` (cross) plus the host's local ``a_h·U_h``; only the sum
  ``z_h = a_h·W_h`` is revealed, to the guest. The guest never sees ``a_h`` (it does not
  know ``U_h``), as in FATE 1.x where the host keeps an accumulated noise on ``W_h``.
* backward, given ``δ = ∂L/∂z_h`` at the guest: shares of ``G = a_h^T·δ`` (cross; the
  guest encrypts ``δ``) update each share by SGD at ``interactive_layer_lr``
  (``U_g -= lr·G_g``, ``U_h -= lr·G_h``), so nobody learns ``G``; ``∂L/∂a_h =
  δ·U_g^T + δ·U_h^T`` (the second a cross where the host encrypts ``U_h``) is revealed to
  the host only, which needs it to train its bottom model (as in FATE). The host never
  sees ``δ``, the labels or the top model.

Both sides must make the same calls in the same order (the session numbers messages).
"""

from __future__ import annotations

from typing import cast

import numpy as np

from components.mpc import FixedPoint, Session

#: 24 fractional bits (FATE's), 128-bit ring: local truncation of products practically never fails
NN_FIXED_POINT = FixedPoint(precision_bits=24, ring_bits=128)
GUEST, HOST = 0, 1


class _Side:
    def __init__(self, session: Session, lr: float, shape: tuple[int, int]):
        self.s, self.fp, self.lr, self.shape = session, session.fp, float(lr), shape

    def _update(self, share: np.ndarray, grad_share: np.ndarray) -> np.ndarray:
        """This party's share of ``W - lr·G`` from its shares of ``W`` and of ``G`` (2f bits)."""
        g = self.fp.truncate(grad_share, self.s.party)
        return self.fp.sub(share, self.fp.scale(g, self.lr, self.s.party))


class InteractiveGuest(_Side):
    """The guest's share ``U_g`` of the host weights ``W_h`` (``host_dim`` × ``out_dim``)."""

    def __init__(self, session: Session, lr: float, host_dim: int, out_dim: int):
        super().__init__(session, lr, (host_dim, out_dim))
        self.u = np.zeros((host_dim, out_dim), dtype=object)
        self._n = 0

    def forward(self, n: int) -> np.ndarray:
        """``z_h = a_h·W_h`` (n × out_dim) for the host's current batch of ``n`` rows."""
        d, o = self.shape
        share = self.s.cross(HOST, b=self.u, shape=(n, d, o))
        self._n = n
        return cast(np.ndarray, self.s.reveal(self.fp.truncate(share, GUEST), to=GUEST))

    def backward(self, delta: np.ndarray) -> None:
        """Send the host ``∂L/∂a_h`` and step the shares, for ``delta = ∂L/∂z_h`` of the last forward."""
        d, o = self.shape
        e = self.fp.encode(np.asarray(delta, dtype=np.float64).reshape(self._n, o))
        g = self.s.cross(HOST, b=e, shape=(d, self._n, o))
        t = self.fp.add(self.s.cross(GUEST, a=e, shape=(self._n, o, d)), self.fp.matmul(e, self.u.T))
        self.s.reveal(self.fp.truncate(t, GUEST), to=HOST)
        self.u = self._update(self.u, g)


class InteractiveHost(_Side):
    """The host's share ``U_h`` (starts at its initial weights ``w0``, ``host_dim`` × ``out_dim``)."""

    def __init__(self, session: Session, lr: float, w0: np.ndarray):
        w0 = np.asarray(w0, dtype=np.float64)
        super().__init__(session, lr, (int(w0.shape[0]), int(w0.shape[1])))
        self.u = self.fp.encode(w0)
        self._a: np.ndarray | None = None

    def forward(self, a: np.ndarray) -> None:
        """Contribute the bottom output ``a`` (n × host_dim) of this batch; the guest learns ``a·W_h``."""
        d, o = self.shape
        enc = self.fp.encode(np.asarray(a, dtype=np.float64).reshape(-1, d))
        share = self.fp.add(self.s.cross(HOST, a=enc, shape=(enc.shape[0], d, o)), self.fp.matmul(enc, self.u))
        self._a = enc
        self.s.reveal(self.fp.truncate(share, HOST), to=GUEST)

    def backward(self) -> np.ndarray:
        """``∂L/∂a`` (n × host_dim) for the last forward; steps this party's share."""
        if self._a is None:
            raise RuntimeError("backward before forward")
        d, o = self.shape
        n = int(self._a.shape[0])
        g = self.s.cross(HOST, a=self._a.T, shape=(d, n, o))
        t = self.s.cross(GUEST, b=self.u.T, shape=(n, o, d))
        grad = cast(np.ndarray, self.s.reveal(self.fp.truncate(t, HOST), to=HOST))
        self.u = self._update(self.u, g)
        return grad
