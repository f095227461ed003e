"""SecureInformationRetrieval (FATE 1.x; also registered as HeteroSecureInformationRetrieval).

The guest retrieves the host's ``target_cols`` for its own ids; the host does not learn which
ids were asked, and the guest learns nothing of the host's other rows:

guest                                          host (key k)
  r·H(x) for each of its ids       ───────▶
                                   ◀───────    k·r·H(x) (same order);
                                               for every host row, shuffled: tag(F(y)), row ⊕ pad(F(y))
  F(x) = s·k·r·H(x) (s·r ≡ 1); a row whose tag is tag(F(x)) is x's: unmask it; none: missing

``F(y) = k·H(y)`` is an oblivious PRF (:mod:`components.psi._oprf`): the guest can compute it
only for ids it asked the host to evaluate, one by one, so it can find and open only its own
ids' rows; the blinded points the host sees are uniform whatever the ids. The host learns the
number of ids asked, the guest the number of host rows (as in FATE).

``oblivious_transfer_protocol`` picks how the guest then gets the rows:

* ``OT_Hauck`` (FATE's name, the default): the host sends only the tags; the guest finds the
  position of each of its ids among them (a random one for an id the host lacks) and takes
  that row by a 1-out-of-n oblivious transfer (components/mpc/ot.py: IKNP extension of base
  OTs on Curve25519), so the host does not learn which rows were taken. Its cost grows with
  (guest ids × host rows); above :data:`MAX_OT_CELLS` the task asks for ``OPRF``.
* ``OPRF``: every host row comes one-time-padded under the PRF of its id, as drawn above
  (cost linear in the rows).

FATE's own scheme (Pohlig-Hellman commutative encryption, AES and its "Hauck" OT, with
``security_level`` setting how much of the host's data masks the query) gives the same
output; ``security_level``, ``key_size`` and ``dh_params`` are accepted as FATE checks them
and reported as not acted on, since every query here is hidden completely (as at level 1).
``raw_retrieval`` sends the ids in the clear, as FATE does.

Output on the guest: its ids with the retrieved columns (NaN where the host lacks the id).
The host outputs nothing; it logs and reports how many rows it offered.
"""

from __future__ import annotations

import secrets
from typing import Any

import numpy as np
from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from components.base import Component, Context, Dataset, Inputs, Instance, Outputs, Params, instances_meta
from components.mpc.ot import OneOfNReceiver, OneOfNSender
from components.psi import _oprf
from federation.api import Party
from flow.core.errors import ComponentError, CryptoError

#: FATE 1.x's only choice for these protocol settings (compared lower-cased, as FATE does)
_ONLY = {"commutative_encryption": "CommutativeEncryptionPohligHellman",
         "non_committing_encryption": "aes"}
#: the retrievals ``oblivious_transfer_protocol`` picks (see the module docstring)
TRANSFERS = ("OT_Hauck", "OPRF")
#: guest ids × host rows beyond which a 1-out-of-n retrieval is refused (its messages grow so)
MAX_OT_CELLS = 20_000_000
_TAG = 16


class SirParams(Params):
    #: every query is fully hidden here (see the module docstring)
    inert = frozenset({"security_level", "key_size", "dh_params"})

    security_level: float = Field(0.5, ge=0, le=1)
    oblivious_transfer_protocol: str = TRANSFERS[0]
    commutative_encryption: str = _ONLY["commutative_encryption"]
    non_committing_encryption: str = _ONLY["non_committing_encryption"]
    key_size: int = Field(1024, ge=1024)
    dh_params: dict[str, Any] | None = None
    raw_retrieval: bool = False
    target_cols: list[str] | str | None = None

    @field_validator("oblivious_transfer_protocol")
    @classmethod
    def _transfer(cls, value: str) -> str:
        for name in TRANSFERS:
            if value.lower() == name.lower():
                return name
        raise PydanticCustomError("not_supported", "not supported: oblivious_transfer_protocol '{value}' (one of "
                                  "{names})", {"value": value, "names": ", ".join(map(repr, TRANSFERS))})

    @field_validator("commutative_encryption", "non_committing_encryption")
    @classmethod
    def _only(cls, value: str, info: Any) -> str:
        if value.lower() != _ONLY[info.field_name].lower():
            raise PydanticCustomError("not_supported", "not supported: {field} '{value}' (FATE has only '{only}')",
                                      {"field": info.field_name, "value": value, "only": _ONLY[info.field_name]})
        return value

    def columns(self) -> list[str] | None:
        return [self.target_cols] if isinstance(self.target_cols, str) else self.target_cols


def _instances(ctx: Context, inputs: Inputs) -> Dataset:
    source = inputs.require(ctx.component)
    if source.meta.extra.get("kind") != "instances":
        raise ComponentError(f"{ctx.component}: {ctx.local}: input data must be DataTransform's output "
                             f"(an instance table), got raw table {source.meta.name}")
    return source


def _one(ctx: Context, role: str) -> Party:
    parties = ctx.role_parties(role)
    if len(parties) != 1:
        raise ComponentError(f"{ctx.component}: SecureInformationRetrieval runs between one guest and one host, "
                             f"the job has {len(parties)} {role}s")
    return parties[0]


class SecureInformationRetrieval(Component):
    module = "SecureInformationRetrieval"
    params_model = SirParams
    roles = ("guest", "host")

    # ------------------------------------------------------------------ guest

    def guest(self, ctx: Context, p: SirParams, inputs: Inputs) -> Outputs:
        source = _instances(ctx, inputs)
        host = _one(ctx, "host")
        ids = [k for part in source.table.apply_partitions(_keys) for k in part]
        (answer,) = ctx.federation.get("sir_columns", ctx.tag(), [host])
        if not isinstance(answer, dict) or answer.get("error"):
            why = answer.get("error") if isinstance(answer, dict) else f"host {host.party_id} sent a malformed answer"
            raise ComponentError(f"{ctx.component}: {why}")
        columns = answer.get("columns")
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise ComponentError(f"{ctx.component}: host {host.party_id} sent malformed column names")
        if p.raw_retrieval:
            values, found = self._guest_raw(ctx, host, ids, len(columns))
        elif p.oblivious_transfer_protocol == "OPRF":
            values, found = self._guest_oblivious(ctx, host, ids, len(columns))
        else:
            values, found = self._guest_ot(ctx, host, ids, len(columns))
        rows = [(k, Instance(values[i])) for i, k in enumerate(ids)]
        meta = instances_meta(source.meta, columns, None, sir_host=host.party_id)
        meta = meta.model_copy(update={"count": len(ids)})
        hit = int(found.sum())
        ctx.tracker.log_metric("retrieval", "retrieved_count", hit)
        ctx.tracker.log_metric("retrieval", "missing_count", len(ids) - hit)
        ctx.logger.info("secure information retrieval: %d of %d ids found on %s (%s)", hit, len(ids), host,
                        ", ".join(columns))
        return Outputs(data=[Dataset(ctx.computing.parallelize(rows), meta)])

    def _guest_raw(self, ctx: Context, host: Party, ids: list, k: int) -> tuple[np.ndarray, np.ndarray]:
        ctx.federation.remote([str(i) for i in ids], "sir_ids", ctx.tag(), [host])
        values, found = ctx.federation.get("sir_raw", ctx.tag(), [host])[0]
        values, found = np.asarray(values), np.asarray(found)
        if values.shape != (len(ids), k) or found.shape != (len(ids),) or found.dtype != bool:
            raise ComponentError(f"{ctx.component}: host {host.party_id} sent a malformed retrieval")
        return np.where(found[:, None], values, np.nan).astype(float), found

    def _guest_oblivious(self, ctx: Context, host: Party, ids: list, k: int) -> tuple[np.ndarray, np.ndarray]:
        client = _oprf.OprfClient()
        ctx.federation.remote(client.blind(str(i) for i in ids), "sir_blinded", ctx.tag(), [host])
        evaluated, tags, masked = ctx.federation.get("sir_rows", ctx.tag(), [host])[0]
        width = 8 * k
        if (not all(isinstance(a, np.ndarray) and a.dtype == np.uint8 for a in (tags, masked))
                or tags.ndim != 2 or tags.shape[1] != _TAG or masked.shape != (len(tags), width)):
            raise ComponentError(f"{ctx.component}: host {host.party_id} sent malformed rows")
        try:
            secrets_ = client.finalize(evaluated, len(ids))
        except CryptoError as exc:
            raise ComponentError(f"{ctx.component}: host {host.party_id}: {exc}") from None
        where = {t.tobytes(): j for j, t in enumerate(tags)}
        values = np.full((len(ids), k), np.nan)
        found = np.zeros(len(ids), dtype=bool)
        for i, f in enumerate(secrets_):
            j = where.get(_oprf.tag(f))
            if j is not None:
                plain = bytes(a ^ b for a, b in zip(masked[j].tobytes(), _oprf.keystream(f, width)))
                values[i] = np.frombuffer(plain, dtype="<f8")
                found[i] = True
        return values, found

    def _guest_ot(self, ctx: Context, host: Party, ids: list, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Find each id's row by its tag, then take the rows by 1-out-of-n OT (module docstring)."""
        client = _oprf.OprfClient()
        ctx.federation.remote(client.blind(str(i) for i in ids), "sir_blinded", ctx.tag(), [host])
        evaluated, tags = ctx.federation.get("sir_tags", ctx.tag(), [host])[0]
        if not isinstance(tags, np.ndarray) or tags.dtype != np.uint8 or tags.ndim != 2 or tags.shape[1] != _TAG \
                or len(tags) < 2:
            raise ComponentError(f"{ctx.component}: host {host.party_id} sent malformed tags")
        _check_ot_size(ctx, len(ids), len(tags))
        try:
            secrets_ = client.finalize(evaluated, len(ids))
        except CryptoError as exc:
            raise ComponentError(f"{ctx.component}: host {host.party_id}: {exc}") from None
        where = {t.tobytes(): j for j, t in enumerate(tags)}
        hits = [where.get(_oprf.tag(f)) for f in secrets_]
        found = np.array([j is not None for j in hits], dtype=bool)
        values = np.full((len(ids), k), np.nan)
        if not ids:
            return values, found
        # an id the host lacks takes a random row: the host cannot tell the two apart
        receiver = OneOfNReceiver([secrets.randbelow(len(tags)) if j is None else j for j in hits], len(tags))
        try:
            ctx.federation.remote(receiver.start(), "sir_ot_a", ctx.tag(), [host])
            (b_points,) = ctx.federation.get("sir_ot_b", ctx.tag(), [host])
            ctx.federation.remote(receiver.extend(b_points), "sir_ot_u", ctx.tag(), [host])
            ((y, c),) = ctx.federation.get("sir_ot_y", ctx.tag(), [host])
            rows = receiver.receive(y, c)
        except (CryptoError, TypeError, ValueError) as exc:
            raise ComponentError(f"{ctx.component}: host {host.party_id}: malformed oblivious transfer ({exc})") \
                from None
        if rows.shape != (len(ids), 8 * k):
            raise ComponentError(f"{ctx.component}: host {host.party_id} sent rows of the wrong width")
        got = np.ascontiguousarray(rows).view("<f8").reshape(len(ids), k)
        return np.where(found[:, None], got, np.nan), found

    # ------------------------------------------------------------------ host

    def host(self, ctx: Context, p: SirParams, inputs: Inputs) -> Outputs:
        guest = [_one(ctx, "guest")]
        try:
            source = _instances(ctx, inputs)
            columns, pick = self._targets(ctx, p, source)
        except ComponentError as exc:  # tell the guest why, then fail here too
            ctx.federation.remote({"error": str(exc).split(": ", 1)[-1], "columns": []}, "sir_columns",
                                  ctx.tag(), guest)
            raise
        ctx.federation.remote({"error": "", "columns": columns}, "sir_columns", ctx.tag(), guest)
        rows: list[tuple[Any, Instance]] = list(source.table.collect())
        ids = [str(k) for k, _ in rows]
        values = np.array([pick(inst) for _, inst in rows], dtype="<f8").reshape(len(rows), len(columns))
        if p.raw_retrieval:
            asked = self._host_raw(ctx, guest, ids, values)
        elif p.oblivious_transfer_protocol == "OPRF":
            asked = self._host_oblivious(ctx, guest, ids, values)
        else:
            asked = self._host_ot(ctx, guest, ids, values)
        ctx.tracker.log_metric("retrieval", "rows_offered", len(ids))
        ctx.logger.info("secure information retrieval: answered %d %s queries over %d rows (%s)%s", asked,
                        "plain" if p.raw_retrieval else "oblivious", len(ids), ", ".join(columns),
                        "" if p.raw_retrieval else "; which ids were asked is hidden from this party")
        return Outputs()

    @staticmethod
    def _targets(ctx: Context, p: SirParams, source: Dataset) -> tuple[list[str], Any]:
        """The retrieved columns and a function of an Instance giving their values."""
        meta = source.meta
        wanted = p.columns()
        if wanted is None:  # FATE: without target_cols, the label
            if not meta.label_column:
                raise ComponentError(f"{ctx.component}: {ctx.local}: target_cols is not set and the host's data "
                                     f"has no label to retrieve")
            return [meta.label_column], _Label()
        features = meta.feature_columns
        absent = [c for c in wanted if c not in features and c != meta.label_column]
        if absent:
            raise ComponentError(f"{ctx.component}: {ctx.local}: target_cols names {', '.join(map(repr, absent))}, "
                                 f"not a column of its data (columns: {', '.join(meta.columns)})")
        return list(wanted), _Pick([-1 if c == meta.label_column else features.index(c) for c in wanted])

    def _host_raw(self, ctx: Context, guest: list[Party], ids: list[str], values: np.ndarray) -> int:
        (asked,) = ctx.federation.get("sir_ids", ctx.tag(), guest)
        if not isinstance(asked, list):
            raise ComponentError(f"{ctx.component}: guest sent malformed ids")
        index = {k: j for j, k in enumerate(ids)}
        pos = np.array([index.get(str(a), -1) for a in asked], dtype=np.int64)
        found = pos >= 0
        out = np.where(found[:, None], values[np.maximum(pos, 0)] if len(ids) else 0.0, 0.0)
        ctx.federation.remote((out.reshape(len(asked), values.shape[1]), found), "sir_raw", ctx.tag(), guest)
        return len(asked)

    @staticmethod
    def _evaluate(ctx: Context, guest: list[Party], server: _oprf.OprfServer, ids: list[str]) -> tuple[Any, list]:
        """The guest's blinded ids evaluated, and the host's rows in a random order with their PRFs."""
        (blinded,) = ctx.federation.get("sir_blinded", ctx.tag(), guest)
        try:
            evaluated = server.evaluate(blinded)
        except CryptoError as exc:
            raise ComponentError(f"{ctx.component}: guest: {exc}") from None
        order = list(range(len(ids)))
        secrets.SystemRandom().shuffle(order)  # the row order must not tell the guest anything
        return evaluated, list(zip(order, server.value(ids[j] for j in order)))

    def _host_oblivious(self, ctx: Context, guest: list[Party], ids: list[str], values: np.ndarray) -> int:
        evaluated, rows = self._evaluate(ctx, guest, _oprf.OprfServer(), ids)
        width = 8 * values.shape[1]
        tags = np.zeros((len(ids), _TAG), dtype=np.uint8)
        masked = np.zeros((len(ids), width), dtype=np.uint8)
        for out, (j, f) in enumerate(rows):
            tags[out] = np.frombuffer(_oprf.tag(f), dtype=np.uint8)
            masked[out] = np.frombuffer(values[j].tobytes(), dtype=np.uint8) ^ np.frombuffer(
                _oprf.keystream(f, width), dtype=np.uint8)
        ctx.federation.remote((evaluated, tags, masked), "sir_rows", ctx.tag(), guest)
        return len(evaluated)

    def _host_ot(self, ctx: Context, guest: list[Party], ids: list[str], values: np.ndarray) -> int:
        """Tags of the rows in a random order (random tags pad them to two), then every guest id's
        1-out-of-n transfer over all the rows."""
        evaluated, rows = self._evaluate(ctx, guest, _oprf.OprfServer(), ids)
        n = max(len(rows), 2)
        tags = np.frombuffer(secrets.token_bytes(n * _TAG), dtype=np.uint8).reshape(n, _TAG).copy()
        table = np.zeros((n, 8 * values.shape[1]), dtype=np.uint8)
        for out, (j, f) in enumerate(rows):
            tags[out] = np.frombuffer(_oprf.tag(f), dtype=np.uint8)
            table[out] = np.frombuffer(values[j].astype("<f8").tobytes(), dtype=np.uint8)
        ctx.federation.remote((evaluated, tags), "sir_tags", ctx.tag(), guest)
        _check_ot_size(ctx, len(evaluated), n)
        if not len(evaluated):
            return 0
        sender = OneOfNSender(np.broadcast_to(table[None], (len(evaluated), *table.shape)))
        try:
            (a_point,) = ctx.federation.get("sir_ot_a", ctx.tag(), guest)
            ctx.federation.remote(sender.respond(a_point), "sir_ot_b", ctx.tag(), guest)
            (u,) = ctx.federation.get("sir_ot_u", ctx.tag(), guest)
            ctx.federation.remote(sender.transfer(u), "sir_ot_y", ctx.tag(), guest)
        except CryptoError as exc:
            raise ComponentError(f"{ctx.component}: guest: malformed oblivious transfer ({exc})") from None
        return len(evaluated)


def _check_ot_size(ctx: Context, asked: int, rows: int) -> None:
    if asked * rows > MAX_OT_CELLS:
        raise ComponentError(f"{ctx.component}: {asked} ids by {rows} host rows is too large for 1-out-of-n "
                             f"transfers (at most {MAX_OT_CELLS:,} pairs); set oblivious_transfer_protocol 'OPRF'")


def _keys(rows: Any) -> list:
    return [k for k, _ in rows]


class _Label:
    def __call__(self, inst: Instance) -> list[float]:
        return [np.nan if inst.label is None else float(inst.label)]


class _Pick:
    def __init__(self, index: list[int]):
        self.index = index

    def __call__(self, inst: Instance) -> list[float]:
        return [(np.nan if inst.label is None else float(inst.label)) if i < 0 else float(inst.features[i])
                for i in self.index]


class HeteroSecureInformationRetrieval(SecureInformationRetrieval):
    """The same module under the name fedweave's issue tracker gave it."""

    module = "HeteroSecureInformationRetrieval"
