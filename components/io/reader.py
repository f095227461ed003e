"""Reader: hands a party's own stored table to the pipeline."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from components.base import Component, Context, Dataset, Inputs, Outputs, Params
from flow.core import audit_hook
from flow.core.errors import ComponentError


class TableRef(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # as Params: no silent type conversion

    name: str
    namespace: str


class ReaderParams(Params):
    table: TableRef | None = None


class Reader(Component):
    module = "Reader"
    params_model = ReaderParams
    roles = ("guest", "host")
    input_data = ()

    def _read(self, ctx: Context, params: ReaderParams, inputs: Inputs) -> Outputs:
        if params.table is None:  # the DSL validator insists on it for every party
            raise ComponentError(f"Reader of {ctx.local}: no table given")
        meta = ctx.storage.meta(params.table.namespace, params.table.name)
        ctx.logger.info("reading %s/%s (%s rows, engine %s)", meta.namespace, meta.name, meta.count, meta.engine)
        audit_hook.current().event("data.read", party=ctx.local.party_id, job=ctx.job_id, role=ctx.local.role,
                                   namespace=meta.namespace, name=meta.name, count=meta.count, sha256=meta.sha256)
        ctx.tracker.log_metric("reader", "table", {"namespace": meta.namespace, "name": meta.name,
                                                   "count": meta.count, "engine": meta.engine})
        return Outputs(data=[Dataset(ctx.storage.read(meta, ctx.computing), meta)])

    guest = host = _read
