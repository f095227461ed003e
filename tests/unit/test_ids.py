"""Identifiers as they enter: one rule per kind (flow.core.ids), paths that stay under their
root (flow.core.paths), and every operation checking its identifiers before it touches
anything (issue 11: ``role=../../..`` served any *.log file the server could read)."""

from __future__ import annotations

import inspect
import json
import os
import typing
from pathlib import Path
from typing import Any

import pydantic
import pytest

from backends.storage.filetree import is_name
from flow.core.errors import FedweaveError, InvalidIdentifier, ValidationError
from flow.core.ids import (
    KINDS,
    ComponentName,
    JobId,
    ModelId,
    ModelVersion,
    Namespace,
    PartyId,
    Role,
    ScheduleName,
    TableName,
    check_id,
    identifiers,
    is_valid,
)
from flow.core.paths import safe_join
from flow.core.settings import ServiceConf
from flow.ops.api import Ops, operations
from flow.ops.local import LocalOps
from tests.fate_examples import fate_examples

VALID: dict[str, list[Any]] = {
    "job_id": ["202401011200000000000042", "j8", "flow_control", "job-1", "job_1.retry", "x" * 128],
    "role": ["guest", "host", "arbiter"],
    "party_id": ["9999", "10000", "party_a", "org-1.eu", "-1", 9999, "x" * 64],
    "component": ["reader_0", "hetero_lr_0", "data-transform-0", "intersect_0", "x" * 128],
    "namespace": ["experiment", "output_202401011200000000000042", "ns.v2", "_tmp", "x" * 200],
    "table_name": ["breast_hetero_guest", "motor_hetero_host_1", "tag_value_1000_140",
                   "hetero_lr_0.guest.9999.0", "a-b.c", "x" * 200],
    "schedule": ["nightly", "retrain-daily", "v1.2", "_a", "x" * 64],
    "model_id": ["guest-9999#host-10000#arbiter-10000_model", "arbiter-10000#guest-9999#host-10000#model",
                 "guest-10000#host-9999#model", "guest-a.b#model", "x" * 255],
    "model_version": ["20200928174750711017114", "202401011200000000000042", "v1", "x" * 255],
}
#: each is refused by every kind: traversal (also %2e%2e%2f decoded), absolute, NUL,
#: separators, HTML, SQL, shell, empty, a leading '.', not a string
HOSTILE: list[Any] = [
    "../", "..", ".", "../../x", "../../../../../tmp/x", "/etc", "/etc/passwd", "a/b", "a\\b", "..\\x",
    "a\x00b", "\x00", "", " ", "guest ", "a\nb", ".hidden", "<script>alert(1)</script>", "' OR 1=1 --",
    "$(id)", "`id`", "a;b", "a|b", "a&b", "a b", "%2e%2e%2f", "~root", "*", "a*", "?", None, 7.5, ["guest"],
]
OVERLONG = {kind: "x" * (rule.max_len + 1) for kind, rule in KINDS.items()}


@pytest.mark.parametrize("kind", sorted(VALID))
def test_every_kind_accepts_what_the_project_makes_and_accepts(kind: str):
    assert set(VALID) == set(KINDS)
    for value in VALID[kind]:
        assert check_id(kind, value, "f") == (str(value) if kind == "party_id" else value)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("value", HOSTILE + ["OVERLONG"], ids=repr)
def test_every_kind_refuses_paths_and_injections_with_one_line_naming_the_field(kind: str, value: Any):
    value = OVERLONG[kind] if value == "OVERLONG" else value
    with pytest.raises(InvalidIdentifier) as err:
        check_id(kind, value, "my_field")
    exc = err.value
    assert isinstance(exc, ValidationError) and isinstance(exc, FedweaveError) and exc.exit_code == 2
    assert exc.field == "my_field" and len(exc.problems) == 1
    line = str(exc)
    assert "\n" not in line and "\x00" not in line and line.startswith("my_field: ")
    assert len(line) < 300


def test_the_messages_say_what_is_allowed():
    with pytest.raises(InvalidIdentifier) as err:
        check_id("role", "../../x", "role")
    assert str(err.value) == "role: '../../x' is not a role (guest, host or arbiter)"
    with pytest.raises(InvalidIdentifier) as err:
        check_id("party_id", "..", "party_id")
    assert str(err.value) == ("party_id: '..' is not a valid party id (letters, digits, '_', '-', '.'; "
                              "not starting with '.'; at most 64)")


def test_the_ids_the_project_generates_are_valid():
    from federation.api import Party
    from flow.models.store import gen_model_id
    from flow.runtime.job import new_job_id
    from flow.runtime.tracking import output_name, output_namespace

    job_id = new_job_id()
    assert is_valid("job_id", job_id) and is_valid("model_version", job_id)
    assert is_valid("namespace", output_namespace(job_id))
    assert is_valid("table_name", output_name("hetero_secureboost_0", Party("arbiter", "10000"), 3))
    assert is_valid("model_id", gen_model_id({"guest": ["9999"], "host": ["10000", "10001"], "arbiter": ["1"]}))


def _walk(obj: Any, found: dict[str, set[str]]) -> None:
    if isinstance(obj, dict):
        if isinstance(obj.get("namespace"), str) and isinstance(obj.get("name"), str):
            found["namespace"].add(obj["namespace"])
            found["table_name"].add(obj["name"])
        for key, value in obj.items():
            if key == "components" and isinstance(value, dict):
                found["component"].update(value)
            elif key == "role" and isinstance(value, dict) and all(isinstance(v, list) for v in value.values()):
                found["role"].update(value)
                found["party_id"].update(str(p) for ps in value.values() for p in ps)
            elif key in ("model_id", "model_version") and value not in ("", None):
                found[key].add(str(value))
            _walk(value, found)
    elif isinstance(obj, list):
        for item in obj:
            _walk(item, found)


def test_every_name_in_fates_examples_is_valid():
    found: dict[str, set[str]] = {k: set() for k in KINDS}
    for path in sorted(fate_examples().rglob("*.json")):
        try:
            _walk(json.loads(path.read_text()), found)
        except (ValueError, UnicodeDecodeError):
            continue
    assert found["component"] and found["party_id"] and found["table_name"] and found["namespace"]
    bad = {kind: sorted(v for v in values if not is_valid(kind, v)) for kind, values in found.items()}
    assert not any(bad.values()), bad


def test_the_older_rules_agree_with_the_kinds():
    from flow.schedules.rules import Schedule, ScheduleError

    def schedule_takes(name: str) -> bool:
        try:
            Schedule.build(name=name, cron="* * * * *", conf_path="c", dsl_path="d")
        except ScheduleError:
            return False
        return True

    for value in VALID["table_name"] + HOSTILE[:-3] + ["a..b"]:
        assert is_name(value) == is_valid("table_name", value), value
    for value in VALID["schedule"] + HOSTILE[:-3]:
        assert schedule_takes(value) == is_valid("schedule", value), value


@pytest.mark.parametrize("typ, kind", [(JobId, "job_id"), (Role, "role"), (PartyId, "party_id"),
                                       (ComponentName, "component"), (Namespace, "namespace"),
                                       (TableName, "table_name"), (ScheduleName, "schedule"), (ModelId, "model_id"),
                                       (ModelVersion, "model_version")])
def test_the_pydantic_types_hold_the_same_rules(typ: Any, kind: str):
    adapter = pydantic.TypeAdapter(typ)
    for value in VALID[kind]:
        if isinstance(value, str):
            assert adapter.validate_python(value) == value
    for value in ("../", "/etc", "a/b", "a\x00b", "", OVERLONG[kind]):
        with pytest.raises(pydantic.ValidationError):
            adapter.validate_python(value)


# safe_join -------------------------------------------------------------------------
def test_safe_join_builds_the_path_under_its_root(tmp_path: Path):
    assert safe_join(tmp_path, "logs", "j1", "guest.log") == tmp_path / "logs" / "j1" / "guest.log"
    (tmp_path / "real").mkdir()
    (tmp_path / "inside").symlink_to(tmp_path / "real")  # a link that stays under root is fine
    assert safe_join(tmp_path, "inside", "x") == tmp_path / "inside" / "x"


@pytest.mark.parametrize("part", ["..", ".", "", "/etc", "a/b", "a\\b", "a\x00b", "../x", "/"])
def test_safe_join_refuses_a_part_that_is_no_plain_name(tmp_path: Path, part: str):
    with pytest.raises(InvalidIdentifier) as err:
        safe_join(tmp_path, "ok", part, fields=("first", "second"))
    assert str(err.value).startswith("second: ") and "\n" not in str(err.value)


def test_safe_join_refuses_a_link_out_of_its_root(tmp_path: Path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "job").symlink_to(outside)
    with pytest.raises(InvalidIdentifier, match=r"^job_id: 'job' leads outside"):
        safe_join(root, "job", "guest", fields=("job_id", "role"))


def test_logs_never_follow_a_link_out_of_the_logs_folder(tmp_path: Path):
    from flow.runtime.logs import read_logs

    home, outside = tmp_path / "home", tmp_path / "outside"
    (home / "logs" / "j1" / "guest").mkdir(parents=True)
    (outside / "9999").mkdir(parents=True)
    (outside / "9999" / "secret.log").write_text("CANARY\n")
    (home / "logs" / "j1" / "host").symlink_to(outside)
    (home / "logs" / "j1" / "guest" / "9999").mkdir()
    (home / "logs" / "j1" / "guest" / "9999" / "reader_0.log").write_text("fine\n")
    assert list(read_logs(home, "j1")) == ["[guest 9999 reader_0] fine"]
    with pytest.raises(InvalidIdentifier, match="^role: "):
        read_logs(home, "j1", "../../../outside")


# the operations --------------------------------------------------------------------
def test_the_decorator_keeps_the_signature_and_checks_lists(tmp_path: Path):
    @identifiers(job_id="job_id", cpns="component")
    def op(job_id: str, cpns: list[str] | None = None, other: int = 1) -> str:
        return job_id

    assert list(inspect.signature(op).parameters) == ["job_id", "cpns", "other"]
    assert typing.get_type_hints(op)["cpns"] == (list[str] | None)
    assert op("j1") == "j1" and op("j1", ["reader_0"]) == "j1"
    with pytest.raises(InvalidIdentifier, match=r"^cpns: '\.\./x'"):
        op("j1", ["reader_0", "../x"])
    with pytest.raises(KeyError):
        identifiers(job_id="no_such_kind")
    with pytest.raises(TypeError):
        identifiers(nope="job_id")(op)


#: a valid value for each identifier parameter an operation may take, and one to put in its place
_GOOD: dict[str, Any] = {"job_id": "202401011200000000000042", "role": "guest", "party_id": "9999",
                         "component": "reader_0", "namespace": "experiment", "name": "breast_hetero_guest",
                         "model_id": "guest-9999#host-10000#model", "model_version": "202401011200000000000042",
                         "cpn_list": ["reader_0"], "party": "guest:9999", "job": "j1"}
_BAD: dict[str, Any] = {"cpn_list": ["reader_0", "../../x"], "party": "../../x"}
_OTHER: dict[str, Any] = {"cron": "0 * * * *", "conf": {}, "dsl": {}, "engine": "localfs", "address": {}}


def _cases() -> list[tuple[str, str]]:
    """(operation, identifier parameter) for every operation that takes one (user
    accounts are another kind of name, checked by their own operations)."""
    return [(op, p) for op in operations() if not op.startswith("user_")
            for p in inspect.signature(getattr(Ops, op)).parameters if p in _GOOD] + \
        [("privilege_change", p) for p in ("party", "namespace", "name")] + \
        [("iter_csv", p) for p in ("namespace", "name")] + [("schedule_folder", "name")]


@pytest.mark.parametrize("op, param", _cases())
@pytest.mark.parametrize("bad", ["../../../../../tmp/x", "/etc", "a\x00b", "<script>"], ids=repr)
def test_every_operation_refuses_a_bad_identifier_before_it_touches_anything(tmp_path: Path, monkeypatch,
                                                                             op: str, param: str, bad: str):
    monkeypatch.setenv("FLOW_HOME", str(tmp_path / "home"))

    def no_store():
        raise AssertionError("the store was opened before the identifiers were checked")

    ops = LocalOps(ServiceConf(), no_store)
    fn = getattr(ops, op)
    kwargs = {}
    for name, p in inspect.signature(fn).parameters.items():
        if name == param:
            kwargs[name] = _BAD.get(name, bad)
        elif name in _GOOD:
            kwargs[name] = _GOOD[name]
        elif name in _OTHER:
            kwargs[name] = _OTHER[name]
        elif name == "action":
            kwargs[name] = "grant"
        elif p.default is inspect.Parameter.empty:
            kwargs[name] = tmp_path / "file"
    with pytest.raises(InvalidIdentifier) as err:
        fn(**kwargs)
    assert len(err.value.problems) == 1 and "\n" not in str(err.value)
    assert param.replace("_", "") in str(err.value).split(":")[0].replace("-", "").replace("_", "")
    assert not (tmp_path / "home").exists() or not any((tmp_path / "home").rglob("*.log"))
    assert not (tmp_path / "tmp").exists() and os.listdir(tmp_path) in ([], ["home"])
