"""HeteroLR / HeteroLinR batches under CKKS (``encrypt_param.method: ckks``): 8,192 rows to
a ciphertext (components/crypto/ckks.py).

Each party gathers a batch's rows once, in key order (the same order on every party: the
batch's ids are the guest's), and keeps them as arrays for every iteration. Per batch:

  host    [[wx_h]] packed, and a digest of its keys                    -> guest
  guest   checks the digest; [[D]] = Σ[[wx_h]] + wx_g + k·t             -> hosts
  each    per column Σ_chunks [[D]] ⊙ x, slots masked                   -> arbiter
  arbiter decrypts each column flooded, returns the sum of its slots
  each    removes the sum of its masks

The loss (one host): the host sends [[c2·Σwx_h² + n·penalty_h]] in one slot; the guest
masks it and its [[D]]⊙coef column, and sends the arbiter those two with its own plain
part less the masks: the arbiter's total over rows is the batch's mean loss, and it never
sees a host's term alone. Sample weights are not supported under CKKS yet (weighting
[[D]] would need a second product level): the guest refuses them in one line.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Callable

import numpy as np

from components.base import Context
from components.crypto import ckks
from components.linear.family import QuadraticLoss
from components.linear.hetero_cipher import BatchCipher
from flow.core.errors import ComponentError, CryptoError


class CKKSKey:
    """The arbiter's CKKS key: ``decrypt_many`` for the masked gradient columns, ``decrypt`` for the loss."""

    def __init__(self) -> None:
        self.holder = ckks.KeyHolder()

    def public_bytes(self) -> bytes:
        return self.holder.public_bytes()

    def decrypt_many(self, message: Any) -> list[float]:
        """(rows, [column blobs]) -> each column's flooded slot sum."""
        rows, blobs = _checked(message, 2)
        return self.holder.slot_sums(blobs, rows).tolist()

    def decrypt(self, message: Any) -> float:
        """(rows, [blobs], [factors], offset) -> (Σ factor·slot sum + offset) / rows."""
        rows, blobs, factors, offset = _checked(message, 4)
        if not (isinstance(factors, list) and len(factors) == len(blobs)
                and all(isinstance(f, float) and math.isfinite(f) for f in factors)
                and isinstance(offset, float) and math.isfinite(offset)):
            raise CryptoError("a CKKS loss message needs one finite factor per vector and a finite offset")
        sums = self.holder.slot_sums(blobs, rows)
        return (math.fsum(f * s for f, s in zip(factors, sums)) + offset) / rows


def _checked(message: Any, size: int) -> tuple:
    if not (isinstance(message, (tuple, list)) and len(message) == size and isinstance(message[0], int)
            and not isinstance(message[0], bool) and message[0] > 0 and isinstance(message[1], list)):
        raise CryptoError(f"a CKKS message must be (rows > 0, [vectors]{', ...' if size > 2 else ''})")
    return tuple(message)


def column_task(task: tuple[bytes, list[bytes], np.ndarray]) -> tuple[list[bytes], np.ndarray]:
    """On a worker: (public context, [[D]], a block of columns) -> the block's masked
    column products and their masks' sums."""
    context, fore, X = task
    public = ckks.public_context(context)
    columns, masks = ckks.masked(ckks.column_products(ckks.vectors_from(public, fore), X))
    return ckks.to_bytes(columns), masks


def keys_digest(keys: list) -> str:
    """What guest and hosts compare so that their packed rows line up."""
    return hashlib.sha256("\x1f".join(map(str, keys)).encode()).hexdigest()


class PackedCKKS(BatchCipher):
    """A guest's or host's CKKS side; it keeps each batch's rows as arrays, in key order."""

    def __init__(self, loss: QuadraticLoss, message: Any):
        super().__init__(loss)
        if not (isinstance(message, (tuple, list)) and len(message) == 2 and isinstance(message[1], bytes)):
            raise CryptoError("a CKKS public-key message must be ('ckks', context bytes)")
        self.public: bytes = message[1]
        self.context = ckks.public_context(self.public)
        self._rows: dict[int, tuple[str, np.ndarray, np.ndarray]] = {}
        #: (batch, whose columns) -> (column scales, the columns divided by them): fixed per batch
        self._scaled: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = {}

    def _batch(self, index: int, batch: Any) -> tuple[str, np.ndarray, np.ndarray]:
        """(digest of the keys, features, labels) of a batch, gathered once."""
        if index not in self._rows:
            rows = sorted(batch.collect(), key=lambda kv: kv[0])  # driver-side on the local backend
            X = np.array([inst.features for _, inst in rows], dtype=float).reshape(len(rows), -1)
            labels = np.array([np.nan if inst.label is None else inst.label for _, inst in rows], dtype=float)
            self._rows[index] = (keys_digest([k for k, _ in rows]), X, labels)
        return self._rows[index]

    def _columns(self, index: int, name: str, columns: Callable[[], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(scales, X / scales) of a batch's product columns X = ``columns()``, made once per batch."""
        if (index, name) not in self._scaled:
            X = columns()
            scales = ckks.column_scales(X)
            self._scaled[index, name] = scales, X / scales
        return self._scaled[index, name]

    def _column_sums(self, ctx: Context, fore: list[bytes], index: int, columns: Callable[[], np.ndarray],
                     name: str, tag: str) -> np.ndarray:  # fmt: skip
        """Xᵀ·D through the arbiter: masked columns out (computed on the workers, a block of
        columns each), slot sums back, masks and scales removed."""
        scales, scaled = self._columns(index, name, columns)
        rows, width = scaled.shape
        blocks = np.array_split(np.arange(width), max(1, min(width, ctx.computing.default_partitions)))
        heavy = rows > ckks.SLOTS  # several ciphertexts a column: each block to a worker at once
        done = ctx.computing.map_list([(self.public, fore, scaled[:, block]) for block in blocks], column_task,
                                      rows_each=rows if heavy else 1)  # fmt: skip
        masks = np.concatenate([sums for _, sums in done])
        arbiter = ctx.role_parties("arbiter")
        ctx.federation.remote((rows, [blob for blobs, _ in done for blob in blobs]), name, tag, arbiter)
        (plain,) = ctx.federation.get(f"{name}_plain", tag, arbiter)
        return (np.asarray(plain, dtype=float) - masks) * scales

    def _vectors(self, ctx: Context, blobs: Any, what: str, party: Any) -> list:
        try:
            return ckks.vectors_from(self.context, blobs)
        except CryptoError as exc:
            raise ComponentError(f"{ctx.component}: {what} from {party.role} {party.party_id}: {exc}") from None

    def host_step(self, ctx: Context, tag: str, index: int, batch: Any, w: np.ndarray, n: int,
                  penalty: float) -> np.ndarray:  # fmt: skip
        guest = ctx.role_parties("guest")
        digest, X, _ = self._batch(index, batch)
        wx = X @ w
        ctx.federation.remote((digest, ckks.to_bytes(ckks.encrypt_vector(self.context, wx))), "host_forward", tag,
                              guest)  # fmt: skip
        if len(ctx.role_parties("host")) == 1:
            term = self.loss.c2 * float(wx @ wx) + len(X) * penalty
            ctx.federation.remote(ckks.to_bytes(ckks.encrypt_vector(self.context, np.array([term]))),
                                  "host_loss_terms", tag, guest)  # fmt: skip
        (blobs,) = ctx.federation.get("fore_gradient", tag, guest)
        self._vectors(ctx, blobs, "[[D]]", guest[0])  # checked here: a bad one fails naming the guest
        return self._column_sums(ctx, blobs, index, lambda: X, "host_gradient", tag)

    def guest_step(self, ctx: Context, tag: str, index: int, batch: Any, w: np.ndarray, n: int,
                   penalty: float, positive: float | None, weighted: bool) -> np.ndarray:  # fmt: skip
        hosts, arbiter = ctx.role_parties("host"), ctx.role_parties("arbiter")
        if weighted:
            raise ComponentError(f"{ctx.component}: encrypt_param.method 'ckks' does not weight rows yet; use "
                                 "'paillier' or 'ou' with SampleWeight")
        digest, X, labels = self._batch(index, batch)
        y = labels if positive is None else (labels == positive).astype(float)
        t = 2.0 * y - 1.0 if self.loss.classifier else y
        wx = X @ w[:-1] + w[-1]
        total: list = []
        for host, message in zip(hosts, ctx.federation.get("host_forward", tag, hosts)):
            if not (isinstance(message, (tuple, list)) and len(message) == 2 and isinstance(message[0], str)):
                raise ComponentError(f"{ctx.component}: host {host.party_id} sent no (digest, [[wx_h]]) pair")
            their_digest, blobs = message
            if their_digest != digest:
                raise ComponentError(f"{ctx.component}: host {host.party_id}'s rows of batch {index} are not the "
                                     "guest's (different ids); run the same intersection on both sides")
            vectors = self._vectors(ctx, blobs, "[[wx_h]]", host)
            total = [a + b for a, b in zip(total, vectors)] if total else vectors
        fore = ckks.add_plain(total, wx + self.loss.k * t)
        blobs = ckks.to_bytes(fore)
        ctx.federation.remote(blobs, "fore_gradient", tag, hosts)
        sums = self._column_sums(ctx, blobs, index, lambda: np.column_stack([X, np.ones(len(X))]), "guest_gradient",
                                 tag)  # fmt: skip
        if len(hosts) == 1:
            self._send_loss(ctx, tag, fore, wx, t, penalty, hosts[0], arbiter)
        return sums

    def _send_loss(self, ctx: Context, tag: str, fore: list, wx: np.ndarray, t: np.ndarray, penalty: float,
                   host: Any, arbiter: list) -> None:  # fmt: skip
        """The batch's loss to the arbiter: [[D]]⊙coef and the host's term, each masked, and
        the guest's plain part less the masks (so the parts are hidden and the total is the loss)."""
        (blobs,) = ctx.federation.get("host_loss_terms", tag, [host])
        [term] = self._vectors(ctx, blobs, "the loss term", host)
        coef = self.loss.c1 * t + 2.0 * self.loss.c2 * wx  # QuadraticLoss.coef, row by row
        scale = ckks.column_scales(coef[:, None])
        [product] = ckks.column_products(fore, coef[:, None] / scale)
        (product, term), masks = ckks.masked([product, term])
        own = np.asarray(self.loss.loss(wx, t)) - coef * (wx + self.loss.k * t)  # guest_part, row by row
        offset = math.fsum(own) + len(wx) * penalty - float(masks[0]) * float(scale[0]) - float(masks[1])
        ctx.federation.remote((len(wx), ckks.to_bytes([product, term]), [float(scale[0]), 1.0], offset), "loss",
                              tag, arbiter)  # fmt: skip
