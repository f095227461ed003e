"""FederatedSample: down- or up-sample rows at random or per label (FATE's FederatedSample).

Sizes follow FATE: ``mode`` random draws ``max(1, int(f·n))`` rows without replacement
(``downsample``, 0 <= f <= 1) or ``int(f·n)`` rows with replacement (``upsample``, f > 0);
``stratified`` does the same per label with ``fractions`` like ``[[0, 0.5], [1, 2.0]]``
(``max(1, int(f_c·n_c))`` rows of each label present; every label in the data needs a
fraction). ``random_state`` seeds the draw.

Downsampling keeps the original ids. Upsampling repeats rows, so, as in FATE, every row of
the result gets a new id: its position ``0 .. m-1`` in the (shuffled) sample, written as a
string. In a vertical job (``task_type`` hetero) the guest draws and sends the drawn
original ids, in order, to the hosts, which build the same rows under the same ids; with
``homo`` every party samples its own rows. Weights from SampleWeight are kept.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import field_validator, model_validator
from pydantic_core import PydanticCustomError

from components.base import Component, Context, Dataset, Inputs, Outputs, Params, keys_in
from flow.core.errors import ComponentError


class FederatedSampleParams(Params):
    mode: Literal["random", "stratified", "exact_by_weight"] = "random"
    method: Literal["downsample", "upsample"] = "downsample"
    #: random: one fraction; stratified: [label, fraction] pairs
    fractions: float | list[list[float]] | None = None
    random_state: int | None = None
    task_type: Literal["hetero", "homo"] = "hetero"

    @field_validator("mode", "method", "task_type", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value  # FATE lower-cases these

    @model_validator(mode="after")
    def _check(self) -> FederatedSampleParams:
        if self.mode == "exact_by_weight":
            raise PydanticCustomError("not_supported", "not supported: FederatedSample mode 'exact_by_weight' "
                                      "(random or stratified)")
        if self.fractions is None:
            raise PydanticCustomError("fractions", "fractions is required: a number for mode random, "
                                      "[label, fraction] pairs for mode stratified")
        if self.mode == "random" and not isinstance(self.fractions, float):
            raise PydanticCustomError("fractions", "mode random takes one number as fractions, got {f}",
                                      {"f": self.fractions})
        if self.mode == "stratified":
            if not isinstance(self.fractions, list) or any(len(pair) != 2 for pair in self.fractions):
                raise PydanticCustomError("fractions", "mode stratified takes [label, fraction] pairs as "
                                          "fractions, got {f}", {"f": self.fractions})
            labels = [pair[0] for pair in self.fractions]
            if len(set(labels)) != len(labels):
                raise PydanticCustomError("fractions", "fractions names a label twice: {f}", {"f": self.fractions})
        for f in self.rates().values():
            if self.method == "downsample" and not 0 <= f <= 1:
                raise PydanticCustomError("fractions", "downsample fractions must lie in [0, 1], got {f}", {"f": f})
            if self.method == "upsample" and f <= 0:
                raise PydanticCustomError("fractions", "upsample fractions must be above 0, got {f}", {"f": f})
        return self

    def rates(self) -> dict[float | None, float]:
        """Fraction per label (None: every row, mode random)."""
        if isinstance(self.fractions, float):
            return {None: self.fractions}
        return {float(label): float(f) for label, f in self.fractions or []}


def _id_labels(part: list) -> list:
    return [(k, inst.label) for k, inst in part]


def draw(ids: list, labels: list, p: FederatedSampleParams, where: str) -> tuple[list, dict[str, Any]]:
    """The drawn original ids (an id twice where upsampling repeats it), shuffled, and counts
    per label before and after (FATE's ``original_count`` / ``sample_count``)."""
    order = sorted(range(len(ids)), key=lambda i: str(ids[i]))  # independent of the partitioning
    rng = np.random.default_rng(p.random_state)
    replace = p.method == "upsample"
    rates = p.rates()
    if None in rates:
        groups = {None: order}
    else:
        unknown = sorted({labels[i] for i in order} - set(rates), key=str)
        if unknown:
            raise ComponentError(f"{where}: labels {unknown} have no fraction in fractions {p.fractions}")
        groups = {label: [i for i in order if labels[i] == label] for label in rates}
    picked: list[int] = []
    original, sampled = {}, {}
    for label, members in groups.items():
        f, n = rates[label], len(members)
        size = int(f * n) if label is None and replace else max(1, int(f * n)) if n else 0
        chosen = rng.choice(np.asarray(members, dtype=np.int64), size=size, replace=replace) if size else []
        picked.extend(int(i) for i in chosen)
        name = "count" if label is None else str(int(label) if float(label).is_integer() else label)
        original[name], sampled[name] = n, size
    picked = [picked[i] for i in rng.permutation(len(picked))]
    return [ids[i] for i in picked], {"original_count": original, "sample_count": sampled}


class FederatedSample(Component):
    module = "FederatedSample"
    params_model = FederatedSampleParams
    roles = ("guest", "host")
    input_data = ("data",)
    #: rows are kept as they are, weights included
    uses_sample_weight = True

    def guest(self, ctx: Context, p: FederatedSampleParams, inputs: Inputs) -> Outputs:
        data = inputs.require(ctx.component)
        drawn = self._draw(ctx, p, data)
        hosts = ctx.role_parties("host")
        if p.task_type == "hetero" and hosts:
            ctx.federation.remote(drawn, "sample_ids", ctx.tag(), hosts)
        return self._outputs(ctx, p, data, drawn)

    def host(self, ctx: Context, p: FederatedSampleParams, inputs: Inputs) -> Outputs:
        data = inputs.require(ctx.component)
        if p.task_type == "homo":
            return self._outputs(ctx, p, data, self._draw(ctx, p, data))
        (drawn,) = ctx.federation.get("sample_ids", ctx.tag(), ctx.role_parties("guest"))
        mine = {k for part in data.table.apply_partitions(_id_labels) for k, _ in part}
        missing = set(drawn) - mine
        if missing:
            raise ComponentError(f"{ctx.component} on host {ctx.local.party_id}: {len(missing)} of the ids the guest "
                                 "sampled are not in this party's data; intersect first (Intersection), or set "
                                 "task_type homo for horizontal data")
        return self._outputs(ctx, p, data, list(drawn))

    def _draw(self, ctx: Context, p: FederatedSampleParams, data: Dataset) -> list:
        where = f"{ctx.component} on {ctx.role} {ctx.local.party_id}"
        pairs = [kv for part in data.table.apply_partitions(_id_labels) for kv in part]
        labels = [y for _, y in pairs]
        if p.mode == "stratified" and (data.meta.label_column is None or any(y is None for y in labels)):
            raise ComponentError(f"{where}: mode stratified needs labels, but the input has none "
                                 "(set with_label in DataTransform)")
        drawn, counts = draw([k for k, _ in pairs], [None if y is None else float(y) for y in labels], p, where)
        for name, value in counts.items():
            ctx.tracker.log_metric(p.mode, name, value)
        ctx.logger.info("%s %s: %s -> %s", p.mode, p.method, counts["original_count"], counts["sample_count"])
        return drawn

    @staticmethod
    def _outputs(ctx: Context, p: FederatedSampleParams, data: Dataset, drawn: list) -> Outputs:
        if p.method == "downsample":
            table = data.table.filter(keys_in(frozenset(drawn)))
        else:  # new ids 0..m-1, as FATE: rows are repeated, so the original ids cannot stay
            rows = dict(data.table.filter(keys_in(frozenset(drawn))).collect())
            table = ctx.computing.parallelize(((str(i), rows[k]) for i, k in enumerate(drawn)),
                                              partitions=data.table.partitions)
        meta = data.meta.model_copy(update={"count": len(drawn)})
        ctx.tracker.log_metric("sample", "count", len(drawn))
        return Outputs(data=[Dataset(table, meta)])
