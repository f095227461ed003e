"""The hash-chained audit log: chaining, concurrent writers, tamper detection, filters."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from flow.core.errors import FedweaveError
from flow.core.settings import ServiceConf
from flow.governance.audit import (
    GENESIS_HASH,
    AuditError,
    AuditLog,
    audit_rejection,
    audit_transfer,
    entry_hash,
    rejection_hook,
)
from flow.governance.trail import (
    LOCAL_PARTY,
    audit_event,
    audit_message,
    flush_audit,
    home_logs,
    object_digest,
    party_log,
    record,
)
from flow.governance.trail import install as install_audit_trail


class Clock:
    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw) -> None:
        self.now += timedelta(**kw)


T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    return AuditLog(tmp_path, "9999", clock=Clock(T0), fsync=False)


def fill(log: AuditLog, n: int = 5) -> None:
    for i in range(n):
        log.append("data.read", actor="guest:9999", job=f"job{i % 2}", table=f"ns.t{i}")


def lines(log: AuditLog) -> list[str]:
    return log.path.read_text().splitlines(keepends=True)


def rewrite(log: AuditLog, new_lines: list[str]) -> None:
    log.path.write_text("".join(new_lines))


def test_entries_chain_each_to_the_previous(log: AuditLog):
    fill(log, 4)
    entries = log.entries()
    assert [e["seq"] for e in entries] == [1, 2, 3, 4]
    assert entries[0]["prev_hash"] == GENESIS_HASH
    for prev, cur in zip(entries, entries[1:]):
        assert cur["prev_hash"] == prev["hash"]
    for e in entries:
        assert e["hash"] == entry_hash(e)
        assert e["party"] == "9999" and e["time"].endswith("Z")
    assert log.path == log.dir / "9999.log" and log.dir.name == "audit"
    assert log.verify().ok and log.verify().count == 4


def test_a_new_instance_continues_the_chain(tmp_path: Path):
    AuditLog(tmp_path, "10000").append("login", actor="alice")  # default: fsync each append
    second = AuditLog(tmp_path, "10000", fsync=False).append("login", actor="bob")
    assert second["seq"] == 2
    assert AuditLog(tmp_path, "10000").verify().count == 2


def test_tail_found_across_large_entries(log: AuditLog):
    """An entry bigger than the tail read chunk must not hide the previous seq."""
    log.append("data.upload", note="x" * 200_000)
    log.append("data.upload", note="y" * 70_000)
    assert log.append("data.read")["seq"] == 3
    assert log.verify().ok


def test_federation_entries_record_digest_never_payload(log: AuditLog):
    payload = b"secret gradient bytes" * 10
    entry = audit_transfer(log, "sent", job="j1", name="host_forward", tag="iter.3",
                           peer="host:10000", payload=payload)
    assert entry["kind"] == "federation.sent"
    assert entry["details"] == {"name": "host_forward", "tag": "iter.3", "peer": "host:10000",
                                "bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}
    assert b"secret gradient" not in log.path.read_bytes()
    received = audit_transfer(log, "received", job="j1", name="g", tag="iter.3", peer="host:10000",
                              size=12, sha256="ab" * 32)
    assert received["actor"] == "host:10000" and received["details"]["bytes"] == 12


def test_rejections_are_audited(log: AuditLog):
    from federation.envelope import Rejection

    rej = Rejection(job_id="j7", name="w", tag="iter.1", src="host:10000", reason="bad signature",
                    message_id="m-1", channel="q.guest.9999")
    entry = audit_rejection(log, rej)
    rejection_hook(log)(rej)
    assert entry["kind"] == "federation.rejected" and entry["job"] == "j7"
    assert entry["details"]["reason"] == "bad signature" and entry["details"]["peer"] == "host:10000"
    assert len(log.entries(kind="federation.rejected")) == 2


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"kind": "Data Read"}, "kind"),
        ({"kind": "data.read", "blob": b"raw"}, "blob"),
        ({"kind": "data.read", "obj": object()}, "obj"),
    ],
)
def test_bad_appends_are_refused(log: AuditLog, kwargs, word):
    with pytest.raises(AuditError, match=word):
        log.append(**kwargs)
    assert not log.path.exists() or log.entries() == []


def test_bad_party_id_refused(tmp_path: Path):
    with pytest.raises(FedweaveError, match="party_id"):
        AuditLog(tmp_path, "../etc")


def test_filters(log: AuditLog):
    clock: Clock = log._clock  # type: ignore[assignment]
    log.append("job.submit", job="a")
    clock.advance(minutes=5)
    log.append("federation.sent", job="a", name="x", tag="t", peer="p")
    clock.advance(minutes=5)
    log.append("federation.received", job="b")
    log.append("federation_other.sent", job="b")
    assert [e["seq"] for e in log.entries(job="a")] == [1, 2]
    assert [e["seq"] for e in log.entries(kind="federation")] == [2, 3]
    assert [e["seq"] for e in log.entries(kind="federation.sent")] == [2]
    assert [e["seq"] for e in log.entries(since=T0 + timedelta(minutes=5))] == [2, 3, 4]
    assert [e["seq"] for e in log.entries(since="2024-05-01T12:06:00Z", job="b")] == [3, 4]
    assert log.entries(job="zzz") == []


# -- tampering --------------------------------------------------------------------------


def edit_detail(ls: list[str], i: int, rehash: bool) -> list[str]:
    entry = json.loads(ls[i])
    entry["details"]["table"] = "ns.other"
    if rehash:
        entry["hash"] = entry_hash(entry)
    ls[i] = json.dumps(entry) + "\n"
    return ls


TAMPERING = {
    "edited": (lambda ls: edit_detail(ls, 2, rehash=False), 3, "edited"),
    "edited_and_rehashed": (lambda ls: edit_detail(ls, 2, rehash=True), 4, "prev_hash"),
    "removed_middle": (lambda ls: ls[:2] + ls[3:], 3, "seq 4 where seq 3"),
    "removed_first": (lambda ls: ls[1:], 1, "seq 2 where seq 1"),
    "removed_last": (lambda ls: ls[:-1], 5, "removed from the end"),
    "reordered": (lambda ls: [ls[0], ls[2], ls[1], *ls[3:]], 2, "seq 3 where seq 2"),
    "inserted_garbage": (lambda ls: ls[:2] + ["hello\n"] + ls[2:], 3, "not an audit entry"),
    "inserted_copy": (lambda ls: ls[:3] + [ls[1]] + ls[3:], 4, "seq 2 where seq 4"),
}


@pytest.mark.parametrize("name", sorted(TAMPERING))
def test_verify_detects_tampering(log: AuditLog, name: str):
    fill(log, 5)
    assert log.verify().ok
    change, bad_seq, reason = TAMPERING[name]
    rewrite(log, change(lines(log)))
    result = log.verify()
    assert not result.ok
    assert result.first_bad_seq == bad_seq
    assert reason in result.reason
    assert result.count == bad_seq - 1


def test_verify_detects_a_forged_entry_that_links(log: AuditLog):
    """Replacing the last entry by a forged one that links and hashes correctly: only the head
    file, which recorded the real entry's hash, can tell."""
    fill(log, 3)
    ls = lines(log)
    e2 = json.loads(ls[1])
    forged = {**e2, "seq": 3, "prev_hash": e2["hash"], "details": {"table": "forged"}}
    forged["hash"] = entry_hash(forged)
    rewrite(log, ls[:2] + [json.dumps(forged) + "\n"])
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 3 and "head" in result.reason


def test_verify_detects_a_log_of_another_party(tmp_path: Path):
    other = AuditLog(tmp_path, "10000", fsync=False)
    fill(other, 2)
    mine = AuditLog(tmp_path, "9999", fsync=False)
    mine.path.write_bytes(other.path.read_bytes())
    mine.head_path.write_bytes(other.head_path.read_bytes())
    result = mine.verify()
    assert not result.ok and result.first_bad_seq == 1 and "party '10000'" in result.reason


def test_verify_detects_a_missing_head(log: AuditLog):
    fill(log, 2)
    log.head_path.unlink()
    result = log.verify()
    assert not result.ok and "missing" in result.reason


def test_torn_line_is_reported_and_appends_continue(log: AuditLog):
    fill(log, 2)
    with open(log.path, "ab") as f:
        f.write(b'{"seq": 3, "time": "2024')  # a crash mid-write
    entry = log.append("data.read")
    assert entry["seq"] == 3 and entry["prev_hash"] == log.entries()[1]["hash"]
    assert len(lines(log)) == 4  # the torn fragment kept its own line
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 3 and "torn" in result.reason


def test_empty_log_verifies(tmp_path: Path):
    result = AuditLog(tmp_path, "1").verify()
    assert result.ok and result.count == 0


# -- several processes ------------------------------------------------------------------


def _writer(home: str, worker: int, n: int, start) -> None:
    start.wait()
    log = AuditLog(home, "9999", fsync=False)
    for i in range(n):
        log.append("data.read", actor=f"w{worker}", i=i)


def test_concurrent_appends_from_several_processes(tmp_path: Path):
    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    workers, n = 4, 30
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, n, start)) for w in range(workers)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    log = AuditLog(tmp_path, "9999")
    result = log.verify()
    assert result.ok, result.reason
    assert result.count == workers * n
    entries = log.entries()
    assert [e["seq"] for e in entries] == list(range(1, workers * n + 1))
    written = sorted((e["actor"], e["details"]["i"]) for e in entries)
    assert written == sorted((f"w{w}", i) for w in range(workers) for i in range(n))


# -- a home's logs, and what the runtime and the transports call ---------------------------------


def test_party_log_follows_flow_home_and_is_off_without_one(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("FLOW_HOME", raising=False)
    monkeypatch.delenv("FEDWEAVE_PARTY_ID", raising=False)
    assert party_log("9999") is None
    audit_message("sent", "j1", "w", "iter.0", "host:10000", 10, "a" * 64, party="9999")  # no home: a no-op
    monkeypatch.setenv("FLOW_HOME", str(tmp_path))
    assert party_log("9999") is party_log("9999")  # one instance per (home, party)
    assert party_log().party_id == LOCAL_PARTY
    monkeypatch.setenv("FEDWEAVE_PARTY_ID", "10000")
    assert party_log().path == tmp_path / "audit" / "10000.log"


def test_audit_message_records_size_and_digest_once_per_object(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("FLOW_HOME", str(tmp_path))
    chunks = [b"first chunk", b"second", b"third"]
    digests = [hashlib.sha256(c).hexdigest() for c in chunks]
    digest = object_digest(digests)
    assert digest == hashlib.sha256("".join(digests).encode()).hexdigest()
    assert object_digest(digests[::-1]) != digest  # the order of the chunks counts
    size = sum(map(len, chunks))
    audit_message("sent", "j1", "gradient", "iter.3", "arbiter:10000", size, digest, party="9999")
    audit_message("received", "j1", "gradient", "iter.3", "guest:9999", size, digest, party="10000")
    flush_audit()  # entries are written by a background writer; exit and flush_audit write them at once
    (sent,) = AuditLog(tmp_path, "9999").entries()
    (received,) = AuditLog(tmp_path, "10000").entries()
    assert (sent["kind"], sent["job"], sent["actor"]) == ("federation.sent", "j1", "9999")
    assert (received["kind"], received["actor"]) == ("federation.received", "guest:9999")
    assert sent["details"] == {"name": "gradient", "tag": "iter.3", "peer": "arbiter:10000", "bytes": size,
                               "sha256": digest}
    assert [log.party_id for log in home_logs(tmp_path)] == ["10000", "9999"]
    assert all(log.verify().ok for log in home_logs(tmp_path))


def test_audit_message_never_raises_into_a_transfer(tmp_path: Path, monkeypatch, caplog):
    (tmp_path / "audit").write_text("a file where the folder should be")
    monkeypatch.setenv("FLOW_HOME", str(tmp_path))
    audit_message("sent", "j1", "w", "t", "host:1", 1, "a" * 64, party="77")
    audit_message("upward", "j1", "w", "t", "host:1", 1, "a" * 64, party="77")
    flush_audit()
    audit_event("data.read", party="77", job="j1", name="t")
    assert "could not record 1 entries" in caplog.text and "could not record data.read" in caplog.text
    assert "direction 'upward'" in caplog.text


def test_batched_entries_keep_their_order_and_chain(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("FLOW_HOME", str(tmp_path))
    threads = [threading.Thread(target=lambda k=k: [
        audit_message("sent", "j1", f"w{k}", f"iter.{i}", "host:1", i, "b" * 64, party="5") for i in range(50)])
        for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flush_audit()
    log = AuditLog(tmp_path, "5")
    entries = log.entries()
    assert log.verify().ok and len(entries) == 200
    for k in range(4):  # each sender's entries in the order it sent them
        assert [e["details"]["tag"] for e in entries if e["details"]["name"] == f"w{k}"] == [
            f"iter.{i}" for i in range(50)]


def test_record_and_audit_event(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("FLOW_HOME", str(tmp_path / "elsewhere"))
    monkeypatch.delenv("FEDWEAVE_PARTY_ID", raising=False)
    standalone = ServiceConf(home=str(tmp_path))
    monkeypatch.delenv("FLOW_HOME")  # the conf's home, not $FLOW_HOME, decides
    entry = record(standalone, "job.submit", job="j9", conf="c.json")
    assert entry["actor"].startswith("user:") and entry["party"] == LOCAL_PARTY
    assert AuditLog(tmp_path, LOCAL_PARTY).entries(job="j9")[0]["details"] == {"conf": "c.json"}
    server = ServiceConf(home=str(tmp_path), server={"party_id": "10000"})
    assert record(server, "data.upload", actor="user:ops", name="t")["party"] == "10000"
    monkeypatch.setenv("FLOW_HOME", str(tmp_path / "elsewhere"))
    audit_event("data.read", party="9999", job="j9", namespace="ns", name="t", count=3)
    (read,) = AuditLog(tmp_path / "elsewhere", "9999").entries()
    assert read["actor"] == "9999" and read["details"]["count"] == 3


def test_objects_crossing_a_transport_are_audited_once_each_on_both_sides(tmp_path: Path, monkeypatch):
    import numpy as np

    from federation.api import Party
    from federation.envelope import plan_pieces
    from federation.standalone import StandaloneFederation

    install_audit_trail()  # what the runtime does before it opens a transport
    guest, host, arbiter = Party("guest", "9999"), Party("host", "10000"), Party("arbiter", "10000")
    ids = ["9999", "10000"]

    def endpoint(p: Party) -> StandaloneFederation:
        return StandaloneFederation("j1", p, tmp_path / "fed", parties=ids, default_timeout=30,
                                    max_message_size=64 * 1024)

    sender, receivers = endpoint(guest), [endpoint(host), endpoint(arbiter)]
    big = np.arange(40_000, dtype=np.float64)  # several chunks
    monkeypatch.delenv("FLOW_HOME", raising=False)
    sender.remote({"n": 1}, "off", "0", [host])  # no home: nothing is recorded
    assert receivers[0].get("off", "0", [guest]) == [{"n": 1}]
    monkeypatch.setenv("FLOW_HOME", str(tmp_path / "home"))
    sender.remote(big, "w", "iter.0", [host, arbiter])
    got = [r.get("w", "iter.0", [guest])[0] for r in receivers]
    assert all(np.array_equal(g, big) for g in got)
    flush_audit()
    sent = AuditLog(tmp_path / "home", "9999").entries()
    received = AuditLog(tmp_path / "home", "10000").entries()
    assert [(e["kind"], e["details"]["peer"]) for e in sent] == [("federation.sent", "host:10000"),
                                                               ("federation.sent", "arbiter:10000")]
    assert sorted(e["kind"] for e in received) == ["federation.received"] * 2  # host and arbiter share the id
    pieces = list(plan_pieces(big, 64 * 1024 - 2048))
    assert len(pieces) > 1
    for e in sent + received:  # once per object, not per chunk; the same size and digest on both sides
        assert e["details"]["bytes"] == sent[0]["details"]["bytes"] >= big.nbytes
        assert e["details"]["sha256"] == sent[0]["details"]["sha256"]
        assert set(e["details"]) == {"name", "tag", "peer", "bytes", "sha256"} and e["job"] == "j1"
    for fed in (sender, *receivers):
        fed.close()
