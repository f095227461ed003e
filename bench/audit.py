"""What the audit trail costs a transfer: federation objects with the audit log off and on,
measured in the same run.

    python bench/audit.py [--objects 300] [--floats 100] [--repeat 3]

Each round sends ``--objects`` numpy arrays of ``--floats`` values from one standalone
endpoint to another and receives them (``remote`` then ``get``, one object at a time, as a
HeteroLR iteration does); "off" runs without a home (nothing is recorded), "on" with one
(one entry per object on each side, written by the background writer). Rounds alternate,
best of ``--repeat``; ratio = on / off. Also printed: what one ``audit_message`` call
costs the caller, beside one synchronous, fsynced ``AuditLog.append``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from federation.api import Party  # noqa: E402
from federation.standalone import StandaloneFederation  # noqa: E402
from flow.governance.audit import AuditLog  # noqa: E402
from flow.governance.trail import audit_message, flush_audit, install  # noqa: E402

GUEST, HOST = Party("guest", "9999"), Party("host", "10000")


def transfer_round(scratch: Path, job: str, objects: list[np.ndarray], home: Path | None) -> float:
    if home is None:
        os.environ.pop("FLOW_HOME", None)
    else:
        os.environ["FLOW_HOME"] = str(home)
    ids = [GUEST.party_id, HOST.party_id]
    sender = StandaloneFederation(job, GUEST, scratch, parties=ids, default_timeout=60)
    receiver = StandaloneFederation(job, HOST, scratch, parties=ids, default_timeout=60)
    start = time.perf_counter()
    for i, obj in enumerate(objects):
        sender.remote(obj, "w", f"iter.{i}", [HOST])
        receiver.get("w", f"iter.{i}", [GUEST])
    elapsed = time.perf_counter() - start
    flush_audit()  # not timed: the background writer does this while training goes on
    sender.close()
    receiver.close()
    return elapsed


def per_call(fn, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - start) / n


def main() -> None:
    install()  # record federation traffic as the runtime does
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=300)
    parser.add_argument("--floats", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    objects = [np.random.default_rng(i).random(args.floats) for i in range(args.objects)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        best = {"off": float("inf"), "on": float("inf")}
        for r in range(args.repeat):
            for mode in ("off", "on"):
                home = root / f"home{r}" if mode == "on" else None
                best[mode] = min(best[mode], transfer_round(root / f"fed_{mode}{r}", f"b{r}{mode}", objects, home))
        entries = len(AuditLog(root / "home0", GUEST.party_id).entries())
        os.environ["FLOW_HOME"] = str(root / "calls")
        queued = per_call(lambda i: audit_message("sent", "j", "w", f"t{i}", "host:1", 800, "a" * 64,
                                                  party="9999"), 2000)
        flush_audit()
        log = AuditLog(root / "sync", "9999")
        synced = per_call(lambda i: log.append("federation.sent", job="j", name="w", tag=f"t{i}", peer="host:1",
                                               bytes=800, sha256="a" * 64), 200)
    n = args.objects
    print(f"{n} objects of {args.floats} floats, remote+get, best of {args.repeat}:")
    print(f"  audit off: {best['off']:.3f} s  ({n / best['off']:.0f} objects/s)")
    print(f"  audit on:  {best['on']:.3f} s  ({n / best['on']:.0f} objects/s, {entries} entries at the sender)")
    print(f"  ratio on/off: {best['on'] / best['off']:.3f}")
    print(f"audit_message per call (queued): {queued * 1e6:.1f} us; "
          f"synchronous fsynced append: {synced * 1e6:.1f} us; ratio {queued / synced:.4f}")


if __name__ == "__main__":
    main()
