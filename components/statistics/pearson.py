"""HeteroPearson: Pearson correlations between the guest's and each host's features.

Every party standardises its own selected columns, ``z = (x - mean) / std`` (population
std; a constant column is left out and its correlations are NaN, as in FATE). Its local
correlation matrix is ``Z^T Z / n`` and, with ``calc_local_vif``, each column's variance
inflation factor ``VIF_i = det(R without row/column i) / det(R)`` (pseudo-determinants
over the same eigenvalues when R is singular, as FATE does).

The cross matrix ``Z_g^T Z_h / n`` is computed with Paillier instead of FATE's SPDZ:

  guest  key pair of ``fixpoint_bit_length`` bits; [[z_g]] per row, keyed by id  -> host
  host   [[Z_g^T Z_h]] = per guest column, Π_i [[z_g,i]]^(z_h,i) (re-randomised);
         its anonymous names ``host_<id>_x<i>`` and which columns are constant      -> guest
  guest  decrypts and divides by n

The guest learns the cross correlations (as in FATE) and never a host value; the host
sees only ciphertexts. FATE also reveals the cross matrix to the host; here it stays with
the guest (the correlation filter, its only reader, runs there). The host refuses when
the guest has at least as many columns as there are rows: the cross products would then
determine the host's standardised columns.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from components.base import Component, Context, Inputs, Outputs, Params
from components.crypto.paillier import PaillierPrivateKey, generate_keypair
from components.crypto.params import MIN_KEY_LENGTH, SECURE_KEY_LENGTH
from components.crypto.vector import encrypted_dot
from components.feature.common import gather_matrix, pick_columns
from flow.core.errors import ComponentError

MODEL_NAME = "HeteroPearson"


class PearsonParams(Params):
    """FATE's PearsonParam. ``fixpoint_bit_length`` (FATE: the SPDZ key size) is the Paillier
    key length here; ``allow_short_key`` is fedweave's switch for keys under 1024 bits.
    ``use_mix_rand`` tunes SPDZ's share randomness, which this protocol does not use."""

    inert = frozenset({"use_mix_rand"})

    column_names: list[str] = []
    column_indexes: int | list[int] = []
    cross_parties: bool = True
    use_mix_rand: bool = False
    calc_local_vif: bool = True
    allow_short_key: bool = False
    fixpoint_bit_length: int = Field(SECURE_KEY_LENGTH)

    @model_validator(mode="after")
    def _check(self) -> PearsonParams:
        if isinstance(self.column_indexes, int) and self.column_indexes != -1:
            raise PydanticCustomError("column_indexes", "column_indexes must be -1 (all) or a list of indexes, "
                                      "got {v}", {"v": self.column_indexes})
        if self.column_indexes == -1 and self.column_names:
            raise PydanticCustomError("column_names", "column_names with column_indexes -1 is ambiguous; "
                                      "give one or the other")
        if self.need_run and self.column_indexes == [] and not self.column_names:
            raise PydanticCustomError("column_indexes", "provide at least one column (column_indexes or "
                                      "column_names)")
        if self.cross_parties and not self.need_run:
            raise PydanticCustomError("need_run", "need_run must be true when cross_parties is true")
        bits = self.fixpoint_bit_length
        if bits % 2 or bits < MIN_KEY_LENGTH or (bits < SECURE_KEY_LENGTH and not self.allow_short_key):
            raise PydanticCustomError("fixpoint_bit_length", "fixpoint_bit_length (the Paillier key length) must "
                                      "be even and at least {floor} bits, got {bits}{hint}",
                                      {"bits": bits, "floor": MIN_KEY_LENGTH if self.allow_short_key
                                       else SECURE_KEY_LENGTH,
                                       "hint": "" if self.allow_short_key or bits < MIN_KEY_LENGTH
                                       else "; set allow_short_key: true to use it anyway (tests)"})
        return self

    def notices(self) -> dict[str, str]:
        found = super().notices()
        if self.cross_parties and self.fixpoint_bit_length < SECURE_KEY_LENGTH:
            found["fixpoint_bit_length"] = (f"Paillier key of {self.fixpoint_bit_length} bits is shorter than "
                                            f"{SECURE_KEY_LENGTH} bits and insecure (tests only)")
        return found


# ---------------------------------------------------------------- pure math

def standardize(x: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """(standardised non-constant columns, their positions in ``x``)."""
    mean = x.mean(axis=0)
    std = np.sqrt(np.maximum((x * x).mean(axis=0) - mean * mean, 0.0))
    kept = [j for j, s in enumerate(std) if s > 0]
    return (x[:, kept] - mean[kept]) / std[kept], kept


def vif_from_corr(corr: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """VIF of each column from a correlation matrix: the ratio of the (pseudo-)determinant of
    the matrix without that column to the matrix's, both over all but the ``k`` smallest
    eigenvalues where ``k`` counts the matrix's eigenvalues under ``eps`` (``diag(R^-1)``
    when R is regular)."""
    m = corr.shape[0]
    if m <= 1:
        return np.ones(m)

    def log_pdet(mat: np.ndarray, drop: int) -> float:
        eig = np.sort(np.abs(np.linalg.eigvalsh(mat)))
        return float(np.log(eig[drop:]).sum())

    drop = int((np.abs(np.linalg.eigvalsh(corr)) < eps).sum())
    whole = log_pdet(corr, drop)
    keep = np.arange(m)
    return np.array([np.exp(log_pdet(corr[np.ix_(keep != i, keep != i)], drop) - whole) for i in range(m)])


def embed(values: np.ndarray, rows: list[int], cols: list[int] | None, shape: tuple[int, ...]) -> np.ndarray:
    """``values`` placed at (rows, cols) of a NaN array of ``shape`` (1-D when cols is None)."""
    out = np.full(shape, np.nan)
    if cols is None:
        out[rows] = values
    else:
        out[np.ix_(rows, cols)] = values
    return out


def to_json(arr: np.ndarray) -> list:
    """Nested lists with NaN as None (plain JSON)."""
    return np.where(np.isnan(arr), None, arr).tolist()


def from_json(value: Any) -> np.ndarray:
    return np.array(value if value is not None else [], dtype=float)


# ---------------------------------------------------------------- the component

class HeteroPearson(Component):
    module = MODEL_NAME
    params_model = PearsonParams
    roles = ("guest", "host")
    input_data = ("data", "train_data")
    output_model = True

    def guest(self, ctx: Context, p: PearsonParams, inputs: Inputs) -> Outputs:
        keys, names, z, kept, model = self._local(ctx, p, inputs)
        hosts = ctx.role_parties("host") if p.cross_parties else []
        if hosts:
            priv = self._send_encrypted(ctx, p, keys, z, hosts)
            model["cross"] = []
            for host, (host_names, host_kept, products) in zip(
                    hosts, ctx.federation.get("cross_products", ctx.tag(), hosts)):
                plain = np.array([[priv.decrypt(c) for c in row] for row in products], dtype=float)
                corr = np.clip(plain.reshape(len(kept), len(host_kept)) / len(keys), -1.0, 1.0)
                full = embed(corr, kept, list(host_kept), (len(names), len(host_names)))
                model["cross"].append({"party_id": host.party_id, "names": list(host_names), "corr": to_json(full)})
                ctx.tracker.log_metric("pearson", f"corr_host_{host.party_id}", to_json(full))
        return Outputs(model=model)

    @staticmethod
    def _send_encrypted(ctx: Context, p: PearsonParams, keys: list, z: np.ndarray, hosts: list) -> PaillierPrivateKey:
        """[[z]] row by row, keyed by id, to every host; the private key stays here."""
        pub, priv = generate_keypair(p.fixpoint_bit_length)
        table = ctx.computing.parallelize((k, pub.encrypt_many(row)) for k, row in zip(keys, z))
        ctx.federation.remote(table, "encrypted_z", ctx.tag(), hosts)
        return priv

    def host(self, ctx: Context, p: PearsonParams, inputs: Inputs) -> Outputs:
        keys, names, z, kept, model = self._local(ctx, p, inputs)
        guest = ctx.role_parties("guest")
        if p.cross_parties and guest:
            (received,) = ctx.federation.get("encrypted_z", ctx.tag(), guest)
            rows = dict(received.collect())
            if set(rows) != set(keys):
                raise ComponentError(f"{ctx.component}: the guest's and this host's rows differ ({len(rows)} vs "
                                     f"{len(keys)} ids); run Intersection before HeteroPearson")
            m_guest = len(next(iter(rows.values()))) if rows else 0
            if m_guest >= len(keys):
                raise ComponentError(f"{ctx.component}: refused: the guest has {m_guest} columns for {len(keys)} "
                                     "rows, so the cross products would reveal this host's standardised columns")
            columns = [[rows[k][g] for k in keys] for g in range(m_guest)]
            products = [[] if not z.shape[1] else encrypted_dot(col, z) for col in columns]
            anonymous = [model["anonymous_header"][model["header"].index(n)] for n in names]
            ctx.federation.remote((anonymous, kept, products), "cross_products", ctx.tag(), guest)
        return Outputs(model=model)

    # ---------------------------------------------------------------- local part
    def _local(self, ctx: Context, p: PearsonParams, inputs: Inputs):
        data = inputs.require(ctx.component, *self.input_data)
        header = list(data.meta.feature_columns)
        cols = pick_columns(ctx.component, header, p.column_indexes, p.column_names, "column_indexes",
                            "column_names")
        keys, x, _ = gather_matrix(data.table, cols)
        if not len(keys):
            raise ComponentError(f"{ctx.component}: input table {data.meta.name} is empty")
        missing = [header[c] for j, c in enumerate(cols) if np.isnan(x[:, j]).any()]
        if missing:
            raise ComponentError(f"{ctx.component}: columns {missing} of {data.meta.name} have missing values; "
                                 "impute them first (FeatureImputation)")
        order = sorted(range(len(keys)), key=lambda i: str(keys[i]))  # same row order on every party
        keys, x = [keys[i] for i in order], x[order]
        z, kept = standardize(x)
        names = [header[c] for c in cols]
        local = np.clip(z.T @ z / len(keys), -1.0, 1.0)
        model: dict[str, Any] = {
            "model_name": MODEL_NAME, "role": ctx.role, "party_id": ctx.local.party_id, "header": header,
            "anonymous_header": [f"{ctx.role}_{ctx.local.party_id}_x{i}" for i in range(len(header))],
            "names": names, "num_rows": len(keys),
            "local_corr": to_json(embed(local, kept, kept, (len(names), len(names)))),
            "local_vif": (to_json(embed(vif_from_corr(local), kept, None, (len(names),)))
                          if p.calc_local_vif else None),
        }
        dropped = [names[j] for j in range(len(names)) if j not in set(kept)]
        if dropped:
            ctx.logger.warning("constant columns left out of the correlations: %s", dropped)
        ctx.tracker.log_metric("pearson", "num_local_features", len(names))
        ctx.tracker.log_metric("pearson", "local_corr", model["local_corr"])
        return keys, names, z, kept, model
