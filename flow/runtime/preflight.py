"""What ``flow job validate`` and ``submit`` check against this party's own storage.

The DSL checks (:mod:`flow.dsl`) see only the two files; this looks at the tables a job
names for the parties this home can see: in standalone mode every party's tables are local,
in cluster mode only those of ``server.party_id``. For each such party it checks that each
Reader's table exists in the party's storage engine and that each DataTransform reading it
with ``with_label`` finds its ``label_name`` among the table's columns. Problems are one line
each, ``<file>: <field>: <what>``; the parties whose tables could not be checked are named.
"""

from __future__ import annotations

from typing import Any

from backends.storage import engine_from_conf
from backends.storage.api import StorageEngine
from backends.storage.lines_import import LINE_COLUMN
from federation.api import Party
from flow.core.errors import ValidationError
from flow.core.registry import did_you_mean
from flow.core.settings import ServiceConf
from flow.dsl import JobPlan


def checkable_parties(conf: ServiceConf, plan: JobPlan) -> tuple[list[Party], list[str]]:
    """The parties whose tables this home holds, and a line for each one it does not."""
    if conf.mode == "standalone":
        return plan.all_parties(), []
    me = str(conf.server.party_id)
    mine = [p for p in plan.all_parties() if p.party_id == me]
    others = [f"{p}: tables not checked (not this party; this home is party {me or '(server.party_id unset)'})"
              for p in plan.all_parties() if p.party_id != me and plan.party_components(p)]
    return mine, others


def _field(plan: JobPlan, component: str, party: Party, name: str) -> str:
    """Where ``component``'s ``name`` is set for ``party`` in the conf (its role block, else common)."""
    roles = ((plan.raw_conf.get("component_parameters") or {}).get("role") or {}).get(party.role) or {}
    index = str(plan.party_index(party))
    for key, block in roles.items():
        keys = str(key).split("|")
        if (index in keys or "all" in keys) and isinstance(block, dict) and component in block:
            return f"component_parameters.role.{party.role}.{key}.{component}.{name}"
    return f"component_parameters.common.{component}.{name}"


def table_problems(conf: ServiceConf, plan: JobPlan, conf_file: str = "conf.json") -> tuple[list[str], list[str]]:
    """(problems, unchecked): one line per missing table or label column of the parties this
    home can see, and one line per party whose tables it could not check."""
    parties, unchecked = checkable_parties(conf, plan)
    problems: list[str] = []
    engines: dict[str, StorageEngine] = {}
    for party in parties:
        engine = plan.resolved_job_parameters(party).engines(conf.default_engines).storage
        try:
            storage = engines.get(engine) or engines.setdefault(engine, engine_from_conf(conf, engine))
        except Exception as exc:  # noqa: BLE001 - an engine this home cannot open is reported, not fatal
            unchecked.append(f"{party}: tables not checked (storage engine {engine}: {exc})")
            continue
        try:
            problems += _party_problems(plan, party, storage, conf_file)
        except Exception as exc:  # noqa: BLE001 - e.g. an unreachable HDFS: say so, check the rest
            unchecked.append(f"{party}: tables not checked (storage engine {engine}: {type(exc).__name__}: {exc})")
    return list(dict.fromkeys(problems)), unchecked


def _party_problems(plan: JobPlan, party: Party, storage: StorageEngine, conf_file: str) -> list[str]:
    problems: list[str] = []
    columns: dict[str, list[str] | None] = {}  # Reader component -> its table's columns (None: no table)
    for cpn in plan.party_components(party):
        module = plan.module(cpn).module
        params: Any = plan.component_params(cpn, party)
        if module == "Reader" and params is not None and params.table is not None:
            ns, name = params.table.namespace, params.table.name
            if "{latest}" in name:  # resolved when a schedule fires
                continue
            if not storage.exists(ns, name):
                known = _names(storage, ns)
                problems.append(f"{conf_file}: {_field(plan, cpn, party, 'table')}: table {ns}/{name} does not "
                                f"exist on {party} (storage {storage.engine}){did_you_mean(name, known)}")
                columns[cpn] = None
            else:
                meta = storage.meta(ns, name)
                columns[cpn] = [meta.id_column, *meta.columns]
        elif module == "DataTransform" and params is not None and params.with_label and (
                getattr(params, "input_format", "dense") == "dense"):  # other formats: the label is a line's token
            refs = plan.dag.inputs(cpn)
            if refs.model or refs.external_model:  # predict: the model says which columns
                continue
            for up, _ in (refs.data.get("data") or []):
                cols = columns.get(up)
                if cols is not None and cols[1:] != [LINE_COLUMN] and params.label_name not in cols:
                    problems.append(f"{conf_file}: {_field(plan, cpn, party, 'label_name')}: label column "
                                    f"'{params.label_name}' is not a column of {up}'s table on {party} "
                                    f"(columns: {', '.join(cols[1:])}){did_you_mean(params.label_name, cols)}")
        if module == "DataTransform":  # dense: its columns are its table's (SIR's target_cols name them)
            ups = [columns.get(up) for up, _ in (plan.dag.inputs(cpn).data.get("data") or [])]
            columns[cpn] = ups[0] if len(ups) == 1 and ups[0] is not None and ups[0][1:] != [LINE_COLUMN] else None
        elif module in ("SecureInformationRetrieval", "HeteroSecureInformationRetrieval") and party.role == "host":
            wanted = getattr(params, "target_cols", None)
            for up, _ in (plan.dag.inputs(cpn).data.get("data") or []):
                cols = columns.get(up)
                for col in ([wanted] if isinstance(wanted, str) else wanted or []):
                    if cols is not None and col not in cols[1:]:
                        problems.append(f"{conf_file}: {_field(plan, cpn, party, 'target_cols')}: '{col}' is not a "
                                        f"column of {up}'s data on {party} (columns: {', '.join(cols[1:])})"
                                        f"{did_you_mean(col, cols[1:])}")
    return problems


def _names(storage: StorageEngine, namespace: str) -> list[str]:
    try:
        return [t.name for t in storage.list(namespace)]
    except Exception:  # noqa: BLE001 - only a suggestion
        return []


def check_tables(conf: ServiceConf, plan: JobPlan, conf_file: str = "conf.json") -> list[str]:
    """ValidationError (exit 2) with every table problem; else the lines naming the parties
    whose tables could not be checked."""
    problems, unchecked = table_problems(conf, plan, conf_file)
    if problems:
        raise ValidationError(problems)
    return unchecked
