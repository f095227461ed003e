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
from components.psi import _oprf
from federation.api import Party
from flow.core.errors import ComponentError, CryptoError

#: FATE 1.x's only choice for each protocol setting (compared lower-cased, as FATE does)
_ONLY = {"oblivious_transfer_protocol": "OT_Hauck",
         "commutative_encryption": "CommutativeEncryptionPohligHellman",
         "non_committing_encryption": "aes"}
_TAG = 16


class SirParams(Params):
    #: every query is fully hidden here (see the module docstring)
    inert = frozenset({"security_level", "key_size", "dh_params"})

    security_level: float = Field(0.5, ge=0, le=1)
    oblivious_transfer_protocol: str = _ONLY["oblivious_transfer_protocol"]
    commutative_encryption: str = _ONLY["commutative_encryption"]
    non_committing_encryption: str = _ONLY["non_committing_encryption"]
    key_size: int = Field(1024, ge=1024)
    dh_params: dict[str, Any] | None = None
    raw_retrieval: bool = False
    target_cols: list[str] | str | None = None

    @field_validator("oblivious_transfer_protocol", "commutative_encryption", "non_committing_encryption")
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
        else:
            values, found = self._guest_oblivious(ctx, host, ids, len(columns))
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
        else:
            asked = self._host_oblivious(ctx, guest, ids, values)
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

    def _host_oblivious(self, ctx: Context, guest: list[Party], ids: list[str], values: np.ndarray) -> int:
        server = _oprf.OprfServer()
        (blinded,) = ctx.federation.get("sir_blinded", ctx.tag(), guest)
        try:
            evaluated = server.evaluate(blinded)
        except CryptoError as exc:
            raise ComponentError(f"{ctx.component}: guest: {exc}") from None
        order = list(range(len(ids)))
        secrets.SystemRandom().shuffle(order)  # the row order must not tell the guest anything
        width = 8 * values.shape[1]
        tags = np.zeros((len(ids), _TAG), dtype=np.uint8)
        masked = np.zeros((len(ids), width), dtype=np.uint8)
        for out, (j, f) in enumerate(zip(order, server.value(ids[j] for j in order))):
            tags[out] = np.frombuffer(_oprf.tag(f), dtype=np.uint8)
            masked[out] = np.frombuffer(values[j].tobytes(), dtype=np.uint8) ^ np.frombuffer(
                _oprf.keystream(f, width), dtype=np.uint8)
        ctx.federation.remote((evaluated, tags, masked), "sir_rows", ctx.tag(), guest)
        return len(evaluated)


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
