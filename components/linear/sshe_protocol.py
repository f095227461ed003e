"""The training both parties of HeteroSSHELR / HeteroSSHELinR run, step for step (party 0 is
the guest, 1 the host), on secret shares of both weight vectors.

Per mini-batch, with ``X_0 = [x_guest, 1]`` and ``X_1 = x_host`` each private to its party:

  z   = X_0·<w_0> + X_1·<w_1>            two Beaver products, X's owner holds the triple's U
  e   = scale·(z + k·t)                   the loss's derivative in z (components/linear/family.py):
                                          0.25·z + 0.5 - y for the Taylor logistic loss, z - y for squares
  g_o = X_o^T·e / n                       two more Beaver products
  loss = c0 + c0_t2·t² + (c1·t^T z + c2·z^T z)/n + penalty, revealed to the guest only

``reveal_every_iter``: each g_o is revealed to its owner, who steps its own weights with its
optimizer (any penalty) and shares them again. Otherwise the update is plain SGD on the
shares (L2 or no penalty) and the weights are revealed, each to its owner, at the end only.
The guest decides convergence and announces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from components.linear.family import QuadraticLoss
from components.linear.hetero_schedule import Fit
from components.linear.optimizer import Optimizer
from components.linear.sshe_params import HeteroSSHELRParams
from components.mpc import Session


@dataclass
class Rows:
    """One party's batches, in the guest's order: features (the guest's with a ones column when
    fitting an intercept) and, on the guest, the targets ``t`` of the model trained."""

    x: list[np.ndarray]
    t: list[np.ndarray] | None = None


class Trainer:
    def __init__(self, sess: Session, p: HeteroSSHELRParams, loss: QuadraticLoss, dims: tuple[int, int],
                 penalized: tuple[np.ndarray, np.ndarray]):  # fmt: skip
        self.sess, self.fp, self.me, self.p, self.loss = sess, sess.fp, sess.party, p, loss
        self.dims, self.penalized = dims, penalized

    # ------------------------------------------------------------------ pieces
    def _scores(self, x_enc: np.ndarray | None, shares: list[np.ndarray]) -> np.ndarray:
        s, fp = self.sess, self.fp
        z = [s.matmul(x_enc if self.me == o else None, shares[o], x_owner=o) for o in (0, 1)]
        return fp.add(z[0], z[1])

    def _loss(self, z: np.ndarray, t: np.ndarray | None, n: int, shares: list[np.ndarray],
              w_plain: np.ndarray) -> float | None:  # fmt: skip
        """The batch's loss at the current weights, to the guest (None on the host)."""
        s, fp, L = self.sess, self.fp, self.loss
        t_row = fp.encode(t[None, :]) if t is not None else None
        tz = s.matmul(t_row, z, x_owner=0)
        zz = s.matmul(z.reshape(1, -1), z)
        share = fp.add(fp.scale(tz, L.c1 / n, self.me), fp.scale(zz, L.c2 / n, self.me))
        own = 0.0
        if t is not None:
            own += L.c0 + L.c0_t2 * float(np.mean(t * t))
        if self.p.reveal_every_iter:  # each party's own penalty, in the clear on its side
            own += self.optimizer.loss_penalty(w_plain)
        elif self.p.penalty_name == "L2":
            for o in (0, 1):
                wp = fp.mul(shares[o], self.penalized[o].astype(int)[:, None])
                share = fp.add(share, fp.scale(s.matmul(wp.reshape(1, -1), wp), 0.5 * self.p.alpha, self.me))
        value = s.reveal(fp.add(share, fp.encode([[own]])), 0)
        return None if value is None else float(value[0, 0])

    def _gradients(self, xt_enc: np.ndarray | None, z: np.ndarray, t: np.ndarray | None, n: int) -> list:
        s, fp, L = self.sess, self.fp, self.loss
        e = fp.scale(z, L.scale, self.me)
        if t is not None:
            e = fp.add(e, fp.encode(L.scale * L.k * t[:, None]))
        return [fp.scale(s.matmul(xt_enc if self.me == o else None, e, x_owner=o), 1.0 / n, self.me) for o in (0, 1)]

    def _share_weights(self, w: np.ndarray) -> list[np.ndarray]:
        s = self.sess
        return [s.share(o, w[:, None] if self.me == o else None, (self.dims[o], 1)) for o in (0, 1)]

    # ------------------------------------------------------------------ one model
    def fit(self, rows: Rows, w0: np.ndarray, on_iteration: Callable[[int], None] | None = None,
            start: int = 0) -> Fit:  # fmt: skip
        """Train one model from ``w0``; a warm start goes on from iteration ``start`` (its learning
        rate decayed as far) up to ``max_iter`` in all."""
        p, s, fp, me = self.p, self.sess, self.fp, self.me
        self.optimizer = Optimizer(p.optimizer, p.learning_rate, p.alpha, p.penalty_name, p.decay, p.decay_sqrt,
                                   self.penalized[me])
        x_enc = [fp.encode(x) for x in rows.x]
        xt_enc = [fp.encode(x.T) for x in rows.x]
        w = np.asarray(w0, dtype=float)
        shares = self._share_weights(w)
        losses: list[float] = []
        it, converged = start - 1, False
        for it in range(start, p.max_iter):
            w_before, shares_before = w.copy(), shares
            lr = self.optimizer.lr_at(it)
            due = p.compute_loss and (it + 1) % p.reveal_loss_freq == 0
            batch_losses = []
            for b, x in enumerate(x_enc):
                t = rows.t[b] if rows.t is not None else None
                n = len(rows.x[b])
                z = self._scores(x, shares)
                if due:
                    batch_losses.append(self._loss(z, t, n, shares, w))
                grads = self._gradients(xt_enc[b], z, t, n)
                if p.reveal_every_iter:
                    own = [s.reveal(grads[o], o) for o in (0, 1)][me]
                    w = self.optimizer.step(w, own.ravel(), it)
                    shares = self._share_weights(w)
                else:
                    shares = [self._sgd(shares[o], grads[o], o, lr) for o in (0, 1)]
            if due and me == 0:
                losses.append(float(np.mean(batch_losses)))
            converged = self._converged(it, due, losses, w - w_before, shares, shares_before)
            if on_iteration is not None:
                on_iteration(it)
            if converged:
                break
        if not p.reveal_every_iter:  # each party learns its own weights, nothing else
            w = [s.reveal(shares[o], o) for o in (0, 1)][me].ravel()
        return Fit(w, it + 1, converged, losses if me == 0 else None)

    def _sgd(self, share: np.ndarray, grad: np.ndarray, o: int, lr: float) -> np.ndarray:
        fp = self.fp
        if self.p.penalty_name == "L2":
            grad = fp.add(grad, fp.scale(share, self.p.alpha * self.penalized[o][:, None], self.me))
        return fp.sub(share, fp.scale(grad, lr, self.me))

    def _converged(self, it: int, due: bool, losses: list[float], delta: np.ndarray, shares: list,
                   before: list) -> bool:  # fmt: skip
        """The guest's decision, announced to the host."""
        p, s, fp = self.p, self.sess, self.fp
        decision = False
        if p.early_stop == "weight_diff":
            if p.reveal_every_iter:  # each adds its own squared change: only the sum is revealed
                total = s.reveal(fp.encode([[float(delta @ delta)]]), 0)
            else:
                d = np.concatenate([fp.sub(shares[o], before[o]) for o in (0, 1)])
                total = s.reveal(s.matmul(d.reshape(1, -1), d), 0)
            decision = total is not None and float(np.sqrt(max(float(total[0, 0]), 0.0))) < p.tol
        elif due and self.me == 0 and losses:
            decision = losses[-1] < p.tol if p.early_stop == "abs" else (
                len(losses) > 1 and abs(losses[-2] - losses[-1]) < p.tol)
        return bool(s.announce(0, bool(decision) if self.me == 0 else None))
