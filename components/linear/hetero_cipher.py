"""One batch of HeteroLR / HeteroLinR under an ``encrypt_param.method``: how the guest and
the hosts exchange [[wx_h]], [[D]], the masked gradient sums and the loss.

The fit loops (hetero_lr.py) own the schedule, the optimiser and convergence; a
:class:`BatchCipher` owns one batch's messages and returns the party's plain gradient sums
(before the loss's scale and the division by the batch's rows). Two kinds:

- :class:`AdditiveRows` (Paillier, OU): one ciphertext per row, in the computing backend's
  tables, each party's dot products spread over its workers.
- ``PackedCKKS`` (components/linear/hetero_packed.py): 8,192 rows to a ciphertext, on the
  party's rows gathered in key order.

The arbiter makes the key from its ``encrypt_param`` (:func:`arbiter_key`) and sends the
public part to guest and hosts, which build their cipher from it (:func:`cipher_for`);
its private part answers ``decrypt_many`` (masked gradient sums) and ``decrypt`` (the loss).
"""

from __future__ import annotations

import secrets
from abc import ABC, abstractmethod
from typing import Any, Callable

import numpy as np

from components.base import Context
from components.crypto import schemes
from components.crypto.params import EncryptParam
from components.linear import hetero_rows as rows_fn
from components.linear.family import QuadraticLoss
from flow.core.errors import ComponentError, CryptoError

#: masks of the gradient sums sent to the arbiter are uniform in +-MASK_SCALE
MASK_SCALE = 2.0 ** 20
#: random factors drawn ahead while waiting: at most this many held, this many a step (~1 ms)
SPARE_FACTORS, SPARE_STEP = 4096, 16


class BatchCipher(ABC):
    """A guest's or host's side of one batch's encrypted gradient."""

    def __init__(self, loss: QuadraticLoss):
        self.loss = loss

    def spare_work(self, rows: int) -> Callable[[], bool] | None:
        """What this party can do ahead while it waits for a peer, for batches of up to
        ``rows`` rows (``Federation.spare_work``); None: nothing."""
        return None

    @abstractmethod
    def host_step(self, ctx: Context, tag: str, index: int, batch: Any, w: np.ndarray, n: int,
                  penalty: float) -> np.ndarray:  # fmt: skip
        """Send [[wx_h]] (and the loss terms with one host), receive [[D]], return Xᵀ·D
        through the arbiter. ``index`` names the batch (it is the same every iteration)."""

    @abstractmethod
    def guest_step(self, ctx: Context, tag: str, index: int, batch: Any, w: np.ndarray, n: int,
                   penalty: float, positive: float | None, weighted: bool) -> np.ndarray:  # fmt: skip
        """Receive the hosts' [[wx_h]], send [[D]], return [Xᵀ·D, ΣD] through the arbiter and,
        with one host, send the arbiter the batch's encrypted mean loss."""


def unmask(ctx: Context, enc: list, name: str, tag: str) -> np.ndarray:
    """Send [[g]] + r to the arbiter and return g (one additive ciphertext per sum)."""
    mask = np.array([(secrets.randbits(53) / 2.0 ** 53 - 0.5) * 2 * MASK_SCALE for _ in enc])
    arbiter = ctx.role_parties("arbiter")
    ctx.federation.remote([c + float(r) for c, r in zip(enc, mask)], name, tag, arbiter)
    (plain,) = ctx.federation.get(f"{name}_plain", tag, arbiter)
    return np.asarray(plain, dtype=float) - mask


class AdditiveRows(BatchCipher):
    """Paillier or OU: a ciphertext per row, tables joined by key on the workers."""

    def __init__(self, loss: QuadraticLoss, message: Any):
        super().__init__(loss)
        self.pub = schemes.public_key_from(message)

    def spare_work(self, rows: int) -> Callable[[], bool] | None:
        """The randomness of the next batch's encryptions (a host's [[wx_h]], the guest's
        [[D]]), drawn while the peer computes: a third of a party's work per iteration on
        small batches. At most SPARE_FACTORS held (a backend that encrypts on its workers
        never takes them: the cap bounds that waste)."""
        pub, up_to = self.pub, min(rows + 2, SPARE_FACTORS)
        return lambda: pub.prepare_obfuscators(SPARE_STEP, up_to)

    def host_step(self, ctx: Context, tag: str, index: int, batch: Any, w: np.ndarray, n: int,
                  penalty: float) -> np.ndarray:  # fmt: skip
        guest = ctx.role_parties("guest")
        wx = batch.map_values(rows_fn.linear(w, 0.0))
        drawn = self.pub.prepared_obfuscators() >= n  # then the driver's encoding randomises, from those
        ctx.federation.remote(wx.map_values(rows_fn.encrypt(self.pub, randomise=not drawn)), "host_forward", tag,
                              guest)  # fmt: skip
        if len(ctx.role_parties("host")) == 1:
            sq = sum(wx.apply_partitions(rows_fn.square_sum))
            ctx.federation.remote([self.pub.encrypt(sq), self.pub.encrypt(penalty)], "host_loss_terms", tag, guest)
        (fore,) = ctx.federation.get("fore_gradient", tag, guest)
        enc = rows_fn.sum_vectors(fore.join(batch, rows_fn.pair_features).apply_partitions(rows_fn.enc_dot))
        return unmask(ctx, enc, "host_gradient", tag)

    def guest_step(self, ctx: Context, tag: str, index: int, batch: Any, w: np.ndarray, n: int,
                   penalty: float, positive: float | None, weighted: bool) -> np.ndarray:  # fmt: skip
        hosts, arbiter = ctx.role_parties("host"), ctx.role_parties("arbiter")
        rows = batch.map_values(rows_fn.guest_row(w[:-1], w[-1], self.loss, positive))
        enc_h = ctx.federation.get("host_forward", tag, hosts)
        enc_sum = enc_h[0]
        for other in enc_h[1:]:
            enc_sum = enc_sum.join(other, rows_fn.add)
        fore = enc_sum.join(rows, rows_fn.fore(self.loss))
        ctx.federation.remote(fore.join(rows, rows_fn.weigh) if weighted else fore, "fore_gradient", tag, hosts)
        enc = rows_fn.sum_vectors(fore.join(rows, rows_fn.guest_columns(self.loss))
                                  .apply_partitions(rows_fn.enc_dot))  # fmt: skip
        sums = unmask(ctx, enc[:-1], "guest_gradient", tag)
        if len(hosts) == 1:
            sq, reg = ctx.federation.get("host_loss_terms", tag, hosts)[0]
            plain = sum(rows.apply_partitions(rows_fn.loss_plain(self.loss)))
            ctx.federation.remote((enc[-1] + sq * self.loss.c2 + plain) * (1.0 / n) + reg + penalty, "loss", tag,
                                  arbiter)  # fmt: skip
        return sums


def _additive_key(param: EncryptParam) -> tuple[Any, Any]:
    pub, priv = schemes.scheme(param.scheme).generate(param.key_length)
    return schemes.public_message(param.scheme, pub), priv


def _packed_key(param: EncryptParam) -> tuple[Any, Any]:
    from components.linear.hetero_packed import CKKSKey

    key = CKKSKey()
    return ("ckks", key.public_bytes()), key


def _packed_cipher(loss: QuadraticLoss, message: Any) -> BatchCipher:
    from components.linear.hetero_packed import PackedCKKS

    return PackedCKKS(loss, message)


#: method -> the arbiter's key maker: (message for guest and hosts, private part)
KEYS: dict[str, Callable[[EncryptParam], tuple[Any, Any]]] = {
    "paillier": _additive_key, "ou": _additive_key, "ckks": _packed_key}
#: the name a public-key message starts with -> the guest's and hosts' cipher
CIPHERS: dict[str, Callable[[QuadraticLoss, Any], BatchCipher]] = {
    "paillier": AdditiveRows, "ou": AdditiveRows, "ckks": _packed_cipher}


def arbiter_key(param: EncryptParam) -> tuple[Any, Any]:
    """The arbiter's key for ``param.method``: (public message, private part)."""
    return KEYS[param.scheme](param)


def cipher_for(ctx: Context, loss: QuadraticLoss, message: Any) -> BatchCipher:
    """The cipher of the arbiter's public-key message; a malformed one fails naming the arbiter."""
    kind = message[0] if isinstance(message, (tuple, list)) and message else None
    make = CIPHERS.get(kind) if isinstance(kind, str) else None
    if make is None:
        raise ComponentError(f"{ctx.component}: the arbiter sent a public key of no known method ({kind!r}); one of "
                             f"{', '.join(CIPHERS)}")
    try:
        return make(loss, message)
    except CryptoError as exc:
        raise ComponentError(f"{ctx.component}: the arbiter's public key is unusable: {exc}") from None
