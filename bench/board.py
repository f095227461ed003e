"""What the board's server spends on its pages, beside the same question put straight to
the store in the same run.

    python bench/board.py [--jobs 10000] [--components 50] [--log-mb 100] [--repeat 20]

A scratch home gets ``--jobs`` finished jobs (two parties, three tasks each) and one job
of ``--components`` chained components; the flow server's app answers in this process
(a flow server on loopback in this process). Printed, as the median of ``--repeat`` requests:
- the first page (50 lines) of the jobs table, beside ``jobs_page`` on the store alone and
  beside a request that reads nothing (the session: what every request costs);
- the job page of the ``--components`` job, beside its job, tasks and DSL read from the store;
- the time to the first line of a followed log of ``--log-mb`` MB and of 1 MB (a follow
  streams from the start, so the first line should not wait for the rest).
Target: the list page under 100 ms, the log's first line independent of its size.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import httpx  # noqa: E402

from flow.core.settings import ServiceConf  # noqa: E402
from flow.store import Store  # noqa: E402
from flow.store.job_pages import jobs_page  # noqa: E402
from flow.store.models import Job, PartyRun, Task  # noqa: E402
from tests.served import Served  # noqa: E402

TOKEN = "bench-board-token"
PARTIES = (("guest", "9999"), ("host", "10000"))
CONF = {"dsl_version": 2, "initiator": {"role": "guest", "party_id": 9999},
        "role": {"guest": [9999], "host": [10000]}}


def chain(n: int) -> dict:
    """A DSL of ``n`` components, each fed by the one before."""
    return {"components": {f"c{i}": {"module": "DataTransform", **({"input": {"data": {"data": [f"c{i - 1}.data"]}}}
                                                                   if i else {})} for i in range(n)}}


def fill(store: Store, jobs: int, components: int) -> str:
    """``jobs`` finished jobs and one of ``components`` chained components; that one's id."""
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    dsl3 = chain(3)
    with store.session() as s:
        for n in range(jobs):
            job_id = f"2026010100{n:08d}"
            created = t0 + timedelta(seconds=n)
            s.add(Job(job_id=job_id, status="success", initiator_role="guest", initiator_party="9999", conf=CONF,
                      dsl=dsl3, created=created, started=created, ended=created + timedelta(seconds=n % 97 + 1)))
            for role, pid in PARTIES:
                s.add(PartyRun(job_id=job_id, role=role, party_id=pid, status="success"))
                s.add_all(Task(job_id=job_id, component=f"c{i}", module="DataTransform", role=role, party_id=pid,
                               status="success", progress=100, started=created, ended=created) for i in range(3))
    big, day2 = "2026010200000001", t0 + timedelta(days=2)
    with store.session() as s:
        s.add(Job(job_id=big, status="success", initiator_role="guest", initiator_party="9999", conf=CONF,
                  dsl=chain(components), created=day2, started=day2, ended=day2 + timedelta(hours=1)))
        for role, pid in PARTIES:
            s.add(PartyRun(job_id=big, role=role, party_id=pid, status="success"))
            s.add_all(Task(job_id=big, component=f"c{i}", module="DataTransform", role=role, party_id=pid,
                           status="success", progress=100) for i in range(components))
    return big


def write_log(home: Path, job_id: str, component: str, megabytes: int) -> None:
    path = home / "logs" / job_id / "guest" / "9999" / f"{component}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    line = ("2026-01-01 00:00:00,000 INFO iteration 12 of 100: loss 0.693147 gradient norm 0.0123 " * 2)[:159] + "\n"
    block = line * (1024 * 1024 // len(line))
    with path.open("w") as fh:
        for _ in range(megabytes):
            fh.write(block)


def median_ms(repeat: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        work()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def first_line_ms(client: httpx.Client, job_id: str, component: str) -> float:
    t = time.perf_counter()
    with client.stream("GET", f"/board/api/jobs/{job_id}/logs", params={
            "role": "guest", "party_id": "9999", "component": component, "follow": "true"}) as res:
        for text in res.iter_text():
            if "event: line" in text:
                return (time.perf_counter() - t) * 1000
    raise SystemExit("the log stream ended without a line")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--components", type=int, default=50)
    ap.add_argument("--log-mb", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_board_") as tmp:
        home = Path(tmp)
        os.environ["FLOW_HOME"] = str(home)
        os.environ.pop("FEDWEAVE_SERVICE_CONF", None)
        store = Store.for_home(home)
        t = time.perf_counter()
        big = fill(store, args.jobs, args.components)
        small = "2026010100" + f"{0:08d}"
        write_log(home, big, "c0", args.log_mb)
        write_log(home, small, "c0", 1)
        print(f"scratch home: {args.jobs} jobs, a {args.components}-component job, logs of {args.log_mb} MB "
              f"and 1 MB ({time.perf_counter() - t:.1f} s to write)")
        served = Served(ServiceConf(), TOKEN)
        with httpx.Client(base_url=f"http://127.0.0.1:{served.port}", timeout=600) as client:
            assert client.post("/board/login", json={"token": TOKEN}).status_code == 200
            client.get("/board/api/jobs")  # warm: imports, first connection
            page = median_ms(args.repeat, lambda: client.get("/board/api/jobs", params={"limit": 50})
                             .raise_for_status())
            direct = median_ms(args.repeat, lambda: jobs_page(store, 0, 50))
            floor = median_ms(args.repeat, lambda: client.get("/board/api/session").raise_for_status())
            print(f"a request that reads nothing (/board/api/session): {floor:.1f} ms")
            print(f"jobs list, first page of 50 of {args.jobs}: {page:.1f} ms (store alone: {direct:.1f} ms) "
                  f"target < 100 ms: {'met' if page < 100 else 'NOT met'}")
            job = median_ms(args.repeat, lambda: client.get(f"/board/api/jobs/{big}").raise_for_status())
            raw = median_ms(args.repeat, lambda: (store.job(big), store.tasks(big), store.party_runs(big)))
            print(f"job page, {args.components} components x {len(PARTIES)} parties: {job:.1f} ms "
                  f"(store alone: {raw:.1f} ms)")
            rounds = max(3, args.repeat // 4)
            large = statistics.median(first_line_ms(client, big, "c0") for _ in range(rounds))
            one = statistics.median(first_line_ms(client, small, "c0") for _ in range(rounds))
            print(f"followed log, first line: {large:.1f} ms for {args.log_mb} MB, {one:.1f} ms for 1 MB "
                  f"(ratio {large / one:.2f})")
        served.stop()
        store.close()


if __name__ == "__main__":
    main()
