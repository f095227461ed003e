"""Per-party parameters: FATE's role/party overrides merged over the common block.

Precedence, lowest first: ``common`` < ``role.<r>.all`` < multi-party keys such as
``"0|1"`` (in file order) < the party's own index ``"0"``. Nested objects merge key by
key; anything else replaces. Each merged value remembers the file path it came from,
so a bad value is reported where the user wrote it.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Mapping

import pydantic
from pydantic import TypeAdapter

from components.base import Component, Params
from federation.api import Party
from flow.core.registry import did_you_mean
from flow.dsl.models import ComponentParametersConf, DslComponent, JobParametersConf, ResolvedJobParameters
from flow.dsl.problems import Path, Problems, add_pydantic

#: params a module needs on every party that runs it, whatever its params model says
REQUIRED_AFTER_MERGE: dict[str, tuple[str, ...]] = {"Reader": ("table",)}

_PARTY_KEY = re.compile(r"^\d+(\|\d+)*$")
_BOOL = TypeAdapter(bool)


def parse_party_key(key: str, role: str, count: int) -> tuple[list[int] | None, str | None]:
    """``"all"``/``"0"``/``"0|1"`` -> party indexes of ``role``; or an error message."""
    if key == "all":
        return list(range(count)), None
    compact = key.replace(" ", "")
    if not _PARTY_KEY.match(compact):
        return None, f"malformed party key '{key}': expected 'all', an index like '0', or indexes like '0|1'"
    indexes = [int(part) for part in compact.split("|")]
    for i in indexes:
        if i >= count:
            noun = "party" if count == 1 else "parties"
            return None, (f"party index {i} out of range: role '{role}' has {count} {noun} "
                          f"(valid indexes 0..{count - 1})")
    return indexes, None


def parse_role_keys(blocks: Mapping[str, Mapping[str, Any]], parties: Mapping[str, list[Party]],
                    base: Path, file: str, problems: Problems) -> dict[str, dict[str, list[int]]]:
    """Check the roles and party keys of a ``role`` section; return the usable ones."""
    parsed: dict[str, dict[str, list[int]]] = {}
    for role, by_key in blocks.items():
        if role not in parties:
            problems.add(file, base + (role,), f"role '{role}' is not a role of this job "
                         f"(conf role lists: {', '.join(parties) or 'none'}){did_you_mean(role, parties)}")
            continue
        for key in by_key:
            indexes, err = parse_party_key(key, role, len(parties[role]))
            if err:
                problems.add(file, base + (role, key), err)
            else:
                parsed.setdefault(role, {})[key] = indexes
    return parsed


def keys_for(parsed_role: Mapping[str, list[int]], index: int) -> list[str]:
    """The party keys that address party ``index``, lowest precedence first."""
    everyone = [k for k in parsed_role if k == "all"]
    several = [k for k, ix in parsed_role.items() if k != "all" and len(ix) > 1 and index in ix]
    own = [k for k, ix in parsed_role.items() if k != "all" and ix == [index]]
    return everyone + several + own


def merge_layers(layers: list[tuple[Mapping[str, Any], Path]]) -> tuple[dict[str, Any], dict[Path, Path]]:
    """Deep-merge ``(values, file path)`` layers; return the result and, per merged path,
    the file path its value came from."""
    merged: dict[str, Any] = {}
    origins: dict[Path, Path] = {}
    for values, src in layers:
        _merge_into(merged, values, (), src, origins)
    return merged, origins


def _merge_into(dst: dict, values: Mapping[str, Any], at: Path, src: Path, origins: dict[Path, Path]) -> None:
    for key, value in values.items():
        here = at + (key,)
        if isinstance(value, Mapping) and isinstance(dst.get(key), dict):
            _merge_into(dst[key], value, here, src + (key,), origins)
            continue
        dst[key] = copy.deepcopy(value)
        for stale in [p for p in origins if p[:len(here)] == here]:
            del origins[stale]
        origins[here] = src + (key,)


def _skipped(merged: Mapping[str, Any]) -> bool:
    """need_run explicitly false (in any form pydantic reads as false)."""
    try:
        return _BOOL.validate_python(merged.get("need_run", True)) is False
    except pydantic.ValidationError:
        return False


def resolve_component_params(
    cp: ComponentParametersConf, parties: Mapping[str, list[Party]],
    components: Mapping[str, DslComponent], modules: Mapping[str, type[Component]],
    file: str, problems: Problems,
) -> dict[tuple[str, Party], Params | None]:
    """Validated params per (component, party); None where that party does not run it."""
    base: Path = ("component_parameters", "role")
    parsed = parse_role_keys(cp.role, parties, base, file, problems)
    out: dict[tuple[str, Party], Params | None] = {}
    for name in components:
        cls = modules.get(name)
        if cls is None:
            continue
        for role, plist in parties.items():
            for index, party in enumerate(plist):
                if role not in cls.roles:
                    out[(name, party)] = None
                    continue
                layers: list[tuple[Mapping[str, Any], Path]] = []
                if name in cp.common:
                    layers.append((cp.common[name], ("component_parameters", "common", name)))
                for key in keys_for(parsed.get(role, {}), index):
                    block = cp.role[role][key]
                    if name in block:
                        layers.append((block[name], base + (role, key, name)))
                out[(name, party)] = _party_params(cls, name, layers, role, index, party, file, problems)
    return out


def _party_params(cls: type[Component], name: str, layers: list[tuple[Mapping[str, Any], Path]],
                  role: str, index: int, party: Party, file: str, problems: Problems) -> Params | None:
    merged, origins = merge_layers(layers)
    own: Path = ("component_parameters", "role", role, str(index), name)
    unset = f"required parameter not set for {role} party {index} (party id {party.party_id})"
    skipped = _skipped(merged)
    if not skipped:
        for key in REQUIRED_AFTER_MERGE.get(cls.module, ()):
            if merged.get(key) is None:
                problems.add(file, own + (key,), unset)
    try:
        params = cls.params_model.model_validate(merged)
    except pydantic.ValidationError as exc:
        add_pydantic(problems, file, exc, merged, base=own, model=cls.params_model, label="parameter",
                     origins=origins, missing=unset, ignore_missing=skipped)
        return None
    if skipped or getattr(params, "need_run", True) is False:
        return None
    return params


def resolve_job_params(jp: JobParametersConf, parties: Mapping[str, list[Party]],
                       file: str, problems: Problems) -> dict[Party, ResolvedJobParameters]:
    """Job parameters per party, defaults filled (each block was validated on its own)."""
    parsed = parse_role_keys(jp.role, parties, ("job_parameters", "role"), file, problems)
    out: dict[Party, ResolvedJobParameters] = {}
    for role, plist in parties.items():
        for index, party in enumerate(plist):
            layers: list[tuple[Mapping[str, Any], Path]] = [
                (jp.common.model_dump(exclude_none=True), ("job_parameters", "common"))]
            for key in keys_for(parsed.get(role, {}), index):
                layers.append((jp.role[role][key].model_dump(exclude_none=True),
                               ("job_parameters", "role", role, key)))
            merged, origins = merge_layers(layers)
            try:
                out[party] = ResolvedJobParameters.model_validate(merged)
            except pydantic.ValidationError as exc:
                add_pydantic(problems, file, exc, merged, base=("job_parameters",),
                             model=ResolvedJobParameters, label="job parameter", origins=origins)
    return out
