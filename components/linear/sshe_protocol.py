"""The training every party of HeteroSSHELR / HeteroSSHELinR runs, step for step (party 0 is
the guest, 1..H the hosts), on secret shares of all weight vectors (components/mpc/group.py:
shared between the guest and host 1, the other hosts' products re-shared onto that pair).

Per mini-batch, with ``X_0 = [x_guest, 1]`` and ``X_o = x_host_o`` each private to its party:

  z   = Σ_o X_o·<w_o>                     each X_o times its owner's share locally, times the
                                          other's by one cross product (components/mpc/beaver.py)
  e   = scale·(z + k·t)                   the loss's derivative in z (components/linear/family.py):
                                          0.25·z + 0.5 - y for the Taylor logistic loss, z - y for squares
  g_o = scale·(X_o^T·z + k·X_o^T·t)/n     = X_o^T·e/n; X_o^T·t is fixed for the fit (the guest's
                                          own, each host's shared once at the start)
  loss = c0 + c0_t2·t² + (c1·t^T z + c2·z^T z)/n + penalty, revealed to the guest only

Round trips: the guest's and host 1's cross products go both ways at once
(:meth:`Session.cross_pair`), so an epoch's batch costs two for z and the gradients, each
party's share of z encrypted once for both its gradient and the loss's ``tᵀz, zᵀz`` (rows
stacked onto the guest's ``X_0^T``), plus the penalty's inner product and the reveals. With
Paillier the products' exponents are the features themselves (components/mpc/paillier_cross.py).
Between a guest and one host, when the fit runs enough epochs to repay it, the epochs run on
shares of ``X^T X`` and ``X^T t`` made once instead (components/linear/sshe_gram.py): the same
descent, on ``d``-sized values.

``reveal_every_iter``: each g_o is revealed to its owner, who steps its own weights with its
optimizer (any penalty) and shares them again. Otherwise the update is plain SGD on the
shares (L2 or no penalty) and the weights are revealed, each to its owner, at the end only
(``encrypted_reveal_in_host``: a host's encrypted under the guest's Paillier key instead).
The guest decides convergence and announces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from components.linear.family import QuadraticLoss
from components.linear.hetero_schedule import Fit
from components.linear.optimizer import Optimizer
from components.linear.sshe_gram import GramEpoch, gram_shares, worth_it
from components.linear.sshe_params import HeteroSSHELRParams
from components.mpc import Session
from components.mpc.group import Group


@dataclass
class Rows:
    """One party's batches, in the guest's order: features (the guest's with a ones column when
    fitting an intercept) and, on the guest, the targets ``t`` of the model trained."""

    x: list[np.ndarray]
    t: list[np.ndarray] | None = None


class Trainer:
    """One party's side; ``dims`` and ``penalized`` (1 where the penalty applies) per party."""

    def __init__(self, sess: Group | Session, p: HeteroSSHELRParams, loss: QuadraticLoss, dims: tuple[int, ...],
                 penalized: tuple[np.ndarray, ...]):  # fmt: skip
        group = sess if isinstance(sess, Group) else Group.pair(sess)
        self.sess, self.fp, self.me, self.role, self.p, self.loss = group, group.fp, group.me, group.role, p, loss
        self.dims, self.penalized, self.parties = dims, penalized, range(group.size)

    # ------------------------------------------------------------------ pieces
    def _scores(self, x_enc: np.ndarray | None, shares: list[np.ndarray], n: int) -> np.ndarray:
        """Shares of ``z``: the guest's and host 1's products with their cross terms in one round
        trip (each its own X times the other's share), then each further host's."""
        g, fp, me = self.sess, self.fp, self.me
        pair = g.cross_pair(x_enc, shares[1 - me] if me < 2 else None, ((n, self.dims[0], 1), (n, self.dims[1], 1)))
        if pair is None:
            z = np.zeros((n, 1), dtype=object)
        else:
            z = fp.truncate(fp.add(fp.add(fp.matmul(x_enc, shares[me]), pair[0]), pair[1]), self.role)
        for o in self.parties[2:]:
            z = fp.add(z, g.matmul(x_enc if me == o else None, shares[o], x_owner=o, rows=n))
        return z

    def _targets_products(self, rows: Rows, xt_enc: list) -> list[list]:
        """Per batch and party, ``X_o^T·t`` (fixed for the whole fit): the guest's in the clear
        (reals), each host's as shares (one product with the guest's targets, once)."""
        g, fp, me = self.sess, self.fp, self.me
        out = []
        for b, x in enumerate(rows.x):
            t = rows.t[b][:, None] if rows.t is not None else None
            share = fp.encode(t) if t is not None else np.zeros((len(x), 1), dtype=object)
            hosts = [g.matmul(xt_enc[b] if me == o else None, share, x_owner=o, rows=self.dims[o])
                     for o in self.parties[1:]]
            out.append([x.T @ t if t is not None else None, *hosts])
        return out

    def _loss(self, terms: np.ndarray, t: np.ndarray | None, n: int, shares: list[np.ndarray],
              w_plain: np.ndarray) -> float | None:  # fmt: skip
        """The batch's loss at the current weights from shares of ``[tᵀz; zᵀz]``, to the guest
        (None on the hosts)."""
        s, fp, L = self.sess, self.fp, self.loss
        share = fp.add(fp.scale(terms[:1], L.c1 / n, self.role), fp.scale(terms[1:], L.c2 / n, self.role))
        if self._penalty_on_shares():  # every party's penalised weights in one inner product
            wp = np.concatenate([fp.mul(shares[o], self.penalized[o].astype(int)[:, None]) for o in self.parties])
            share = fp.add(share, fp.scale(s.gram(wp), 0.5 * self.p.alpha, self.role))
        return self._reveal_loss(share, t, w_plain)

    def _penalty_on_shares(self) -> bool:
        return not self.p.reveal_every_iter and self.p.penalty_name == "L2"

    def _reveal_loss(self, share: np.ndarray, t: np.ndarray | None, w_plain: np.ndarray) -> float | None:
        """The loss from shares of its data and shared-penalty terms, plus what each party adds
        in the clear (the guest's constants; each party's own penalty when it sees its weights)."""
        fp, L = self.fp, self.loss
        own = 0.0
        if t is not None:
            own += L.c0 + L.c0_t2 * float(np.mean(t * t))
        if self.p.reveal_every_iter:  # each party's own penalty, in the clear on its side
            own += self.optimizer.loss_penalty(w_plain)
        value = self.sess.reveal(fp.add(share, fp.encode([[own]])), 0)
        return None if value is None else float(value[0, 0])

    def _gram(self, rows: Rows, xt_t: list, epochs: int) -> list[GramEpoch] | None:
        """Shares of each batch's ``X^T X`` and ``X^T t`` when the fit trains on them (sshe_gram.py)."""
        if self.sess.canon is None or not worth_it(self.sess.size, self.dims, epochs):
            return None
        fp, d0 = self.fp, self.dims[0]
        out = []
        for b, x in enumerate(rows.x):
            own = fp.encode(xt_t[b][0]) if self.me == 0 else np.zeros((d0, 1), dtype=object)
            out.append(GramEpoch(self.sess.canon, gram_shares(self.sess.canon, x, self.dims),
                                 np.vstack([own, xt_t[b][1]]), len(x), self.loss))
        return out

    def _gram_step(self, g: GramEpoch, shares: list, due: bool) -> tuple[list, np.ndarray | None]:
        """Gradient shares per party, and the loss's shared part when due, from ``H`` and ``b``."""
        fp, d0 = self.fp, self.dims[0]
        w = np.vstack(shares)
        hw = g.products(w)
        grad = g.gradient(hw)
        quad = None
        if due:
            extra = None
            if self._penalty_on_shares():
                pen = np.concatenate(self.penalized).astype(int)[:, None]
                extra = fp.scale(fp.mul(w, pen), 0.5 * self.p.alpha, self.role)
            quad = g.quadratic(w, hw, extra)
        return [grad[:d0], grad[d0:]], quad

    def _gradients(self, xt_enc: np.ndarray | None, z: np.ndarray, t: np.ndarray | None, n: int,
                   xt_t: list, due: bool) -> tuple[list, np.ndarray | None]:  # fmt: skip
        """Shares of each ``g_o = scale·(X_o^T·z + k·X_o^T·t)/n`` and, when the loss is due, of
        ``[tᵀz; zᵀz]``: the guest's and host 1's products on one round trip, each party's share
        of z encrypted once (the guest's rows ``[X_0^T; t; 2·z_0^T]`` times host 1's share)."""
        g, fp, L, me = self.sess, self.fp, self.loss, self.me
        k0, extra = self.dims[0], 2 if due else 0
        t_row = fp.encode(t[None, :]) if t is not None else None
        a = xt_enc
        if t_row is not None and xt_enc is not None and due:
            a = np.vstack([xt_enc, t_row, fp.mul(z.T, 2)])
        pair = g.cross_pair(a, z if me < 2 else None, ((k0 + extra, n, 1), (self.dims[1], n, 1)))
        xz = [np.zeros((d, 1), dtype=object) for d in self.dims[:2]]
        terms = np.zeros((2, 1), dtype=object) if due else None
        if pair is not None:
            xz = [pair[0][:k0], pair[1]]
            xz[me] = fp.add(xz[me], fp.matmul(xt_enc, z))
            xz = [fp.truncate(v, self.role) for v in xz]
            if due:
                own = fp.matmul(np.vstack([t_row, z.T]), z) if t_row is not None else \
                    np.vstack([np.zeros((1, 1), dtype=object), fp.matmul(z.T, z)])
                terms = fp.truncate(fp.add(own, pair[0][k0:]), self.role)
        xz += [g.matmul(xt_enc if me == o else None, z, x_owner=o, rows=self.dims[o]) for o in self.parties[2:]]
        grads = []
        for o in self.parties:
            v = fp.scale(xt_t[o], L.k, self.role) if o else None
            if o == 0 and me == 0:  # the guest's X_0^T·t is its own, in the clear
                v = fp.encode(L.k * xt_t[0])
            total = xz[o] if v is None else fp.add(xz[o], v)
            grads.append(fp.scale(fp.scale(total, L.scale, self.role), 1.0 / n, self.role))
        return grads, terms

    def _share_weights(self, w: np.ndarray) -> list[np.ndarray]:
        s = self.sess
        return [s.share(o, w[:, None] if self.me == o else None, (self.dims[o], 1)) for o in self.parties]

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
        xt_t = self._targets_products(rows, xt_enc)
        gram = self._gram(rows, xt_t, p.max_iter - start)
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
                if gram is not None:
                    grads, quad = self._gram_step(gram[b], shares, due)
                    if quad is not None:
                        batch_losses.append(self._reveal_loss(quad, t, w))
                else:
                    z = self._scores(x, shares, n)
                    grads, terms = self._gradients(xt_enc[b], z, t, n, xt_t[b], due)
                    if terms is not None:
                        batch_losses.append(self._loss(terms, t, n, shares, w))
                if p.reveal_every_iter:
                    own = [s.reveal(grads[o], o) for o in self.parties][me]
                    w = self.optimizer.step(w, own.ravel(), it)
                    shares = self._share_weights(w)
                else:
                    shares = [self._sgd(shares[o], grads[o], o, lr) for o in self.parties]
            if due and me == 0:
                losses.append(float(np.mean(batch_losses)))
            converged = self._converged(it, due, losses, w - w_before, shares, shares_before)
            if on_iteration is not None:
                on_iteration(it)
            if converged:
                break
        if not p.reveal_every_iter:  # each party learns its own weights (a host's encrypted if asked), nothing else
            hidden = p.reveal_strategy == "encrypted_reveal_in_host"
            w = [s.reveal_encrypted(shares[o], o) if hidden and o else s.reveal(shares[o], o)
                 for o in self.parties][me].ravel()
        return Fit(w, it + 1, converged, losses if me == 0 else None)

    def _sgd(self, share: np.ndarray, grad: np.ndarray, o: int, lr: float) -> np.ndarray:
        fp = self.fp
        if self.p.penalty_name == "L2":
            grad = fp.add(grad, fp.scale(share, self.p.alpha * self.penalized[o][:, None], self.role))
        return fp.sub(share, fp.scale(grad, lr, self.role))

    def _converged(self, it: int, due: bool, losses: list[float], delta: np.ndarray, shares: list,
                   before: list) -> bool:  # fmt: skip
        """The guest's decision, announced to the host."""
        p, s, fp = self.p, self.sess, self.fp
        decision = False
        if p.early_stop == "weight_diff":
            if p.reveal_every_iter:  # each adds its own squared change: only the sum is revealed
                total = s.reveal(fp.encode([[float(delta @ delta)]]), 0)
            else:
                d = np.concatenate([fp.sub(shares[o], before[o]) for o in self.parties])
                total = s.reveal(s.gram(d), 0)
            decision = total is not None and float(np.sqrt(max(float(total[0, 0]), 0.0))) < p.tol
        elif due and self.me == 0 and losses:
            decision = losses[-1] < p.tol if p.early_stop == "abs" else (
                len(losses) > 1 and abs(losses[-2] - losses[-1]) < p.tol)
        return bool(s.announce(bool(decision) if self.me == 0 else None))
