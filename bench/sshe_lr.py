"""HeteroSSHELR wall time beside HeteroLR (and FATE's SSHE-LR when installed), through the
real `flow` CLI, in the same run.

    python bench/sshe_lr.py [--epochs 20]
    FEDWEAVE_BENCH_FATE=DIR python bench/sshe_lr.py     # also FATE 2.2's SSHE-LR (../shared/peers/fate)

Both fedweave jobs are the shipped examples on breast_hetero (569 rows x (10 + 20), 1024-bit
Paillier, full batch): examples/hetero_sshe_lr (guest and host, weights on secret shares)
and examples/hetero_lr (guest, host, arbiter), each run for exactly --epochs epochs (tol 0,
so the loss never stops them early). Figures: the whole job's wall time (submit -> success)
and the guest's model task time per epoch (its key generation and setup included). With
FEDWEAVE_BENCH_FATE=DIR set, FATE's SSHE-LR runs the same epochs on the same split
(`run_fate.py sshe N`: PSI -> FeatureScale -> SSHE-LR -> Evaluation, timed as a whole job)
and the ratio of the two job times is printed; without it, fedweave's figures only, and no
ratio (never a remembered FATE figure).

Before the jobs, the four private-matrix products of one full-batch epoch (breast_hetero's
shapes: 569x11 and 569x20 by a shared weight vector, their transposes by a shared error) run
in process with both providers of the cross terms, Paillier (1024-bit keys) and oblivious
transfer, two threads talking through the wire codec: CPU seconds of both threads together,
wall seconds, and the ratio (``--no-triples`` skips).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from _jobs import ROOT, flow, guest_auc, submit, task_time, upload_breast_hetero

sys.path.insert(0, str(ROOT))
from components.crypto.paillier import generate_keypair  # noqa: E402
from components.linear.sshe_lr import SSHE_FIXED_POINT  # noqa: E402
from components.mpc import Session  # noqa: E402
from federation import codec  # noqa: E402

FATE_SCRIPT = Path("/work/shared/peers/fate/run_fate.py")
RESULT = re.compile(r"^(RESULT job=\S+ .*?fit_wall_s=([0-9.]+).*)$", re.M)


def example(name: str, component: str, epochs: int) -> tuple[dict, dict]:
    conf = json.loads((ROOT / "examples" / name / "conf.json").read_text())
    dsl = json.loads((ROOT / "examples" / name / "dsl.json").read_text())
    conf = copy.deepcopy(conf)
    conf["component_parameters"]["common"][component].update(max_iter=epochs, tol=0.0)
    return conf, dsl


def run_job(home: Path, name: str, component: str, epochs: int) -> dict:
    conf, dsl = example(name, component, epochs)
    job, wall = submit(home, conf, dsl)
    _, task_s = task_time(job, component, "guest")
    model = flow(home, "tracking", "output-model", "-j", job["job_id"], "-r", "guest", "-p", "9999",
                 "-cpn", component)["model"]
    return {"wall_s": wall, "task_s": task_s, "iters": model["iters"], "auc": guest_auc(home, job)}


class _QueuePeer:
    def __init__(self, inbox: queue.Queue, outbox: queue.Queue):
        self.inbox, self.outbox = inbox, outbox

    def send(self, name: str, obj: object) -> None:
        self.outbox.put(codec.encode(obj))

    def recv(self, name: str) -> object:
        return codec.decode(self.inbox.get(timeout=600))


def product_seconds(provider: str, keys: list) -> tuple[float, float]:
    """(CPU, wall) seconds of one epoch's private-matrix products (both parties, two threads;
    base OTs included). The features are standard normal, as after scaling."""
    shapes = [(569, 11, 0), (569, 20, 1), (11, 569, 0), (20, 569, 1)]
    rng = np.random.default_rng(0)
    a, b = queue.Queue(), queue.Queue()
    (pub0, priv0), (pub1, priv1) = keys
    sessions = [Session(_QueuePeer(a, b), 0, SSHE_FIXED_POINT, priv0, pub1, provider),
                Session(_QueuePeer(b, a), 1, SSHE_FIXED_POINT, priv1, pub0, provider)]
    xs = [SSHE_FIXED_POINT.encode(rng.normal(size=(m, k))) for m, k, _ in shapes]

    def run(s: Session) -> None:
        for (_, k, owner), x in zip(shapes, xs):
            s.matmul(x if s.party == owner else None, SSHE_FIXED_POINT.random((k, 1)), x_owner=owner)

    threads = [threading.Thread(target=run, args=(s,)) for s in sessions]
    t0, c0 = time.perf_counter(), time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.process_time() - c0, time.perf_counter() - t0


def report_triples() -> None:
    keys = [generate_keypair(1024), generate_keypair(1024)]
    secs = {p: product_seconds(p, keys) for p in ("paillier", "ot")}
    print("The 4 private-matrix products of one full-batch epoch, both parties in process")
    for p, (cpu, wall) in secs.items():
        print(f"  {p:<10} CPU {cpu:6.2f} s, wall        {wall:8.2f} s")
    print(f"  Paillier / OT (CPU)                 {secs['paillier'][0] / secs['ot'][0]:8.2f}x\n")


def run_fate(folder: str, epochs: int) -> float:
    """FATE's SSHE-LR job wall seconds, from its RESULT line; exit if it does not print one."""
    python = Path(folder) / "venv-fate" / "bin" / "python"
    if not python.is_file():
        sys.exit(f"FEDWEAVE_BENCH_FATE={folder}: no {python} (install FATE with ../shared/peers/fate/setup.sh DIR)")
    proc = subprocess.run([str(python), str(FATE_SCRIPT), "sshe", str(epochs)], capture_output=True, text=True)
    found = RESULT.search(proc.stdout)
    if proc.returncode != 0 or found is None:
        sys.exit(f"FATE's run_fate.py sshe {epochs} (FEDWEAVE_BENCH_FATE={folder}) gave no RESULT line "
                 f"(exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-2000:]}")
    print(f"  FATE: {found.group(1)}")
    return float(found.group(2))


def report(name: str, model: str, res: dict) -> None:
    print(name)
    print(f"  job wall time (submit -> success)   {res['wall_s']:8.2f} s")
    label = f"{model} task, {res['iters']} epochs"
    print(f"  {label:<36}{res['task_s']:8.2f} s")
    print(f"  seconds per epoch                   {res['task_s'] / res['iters']:8.3f} s")
    if res["auc"] is not None:
        print(f"  AUC                                 {res['auc']:8.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--no-triples", action="store_true", help="skip the in-process triple timing")
    args = ap.parse_args()
    fate_dir = os.environ.get("FEDWEAVE_BENCH_FATE")
    print(f"machine: {os.cpu_count()} cores; Python {sys.version.split()[0]}; breast_hetero 569 rows x (10 + 20), "
          f"1024-bit Paillier, {args.epochs} epochs\n")
    if not args.no_triples:
        report_triples()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        upload_breast_hetero(home)
        sshe = run_job(home, "hetero_sshe_lr", "hetero_sshe_lr_0", args.epochs)
        report("fedweave HeteroSSHELR (guest + host, secret shares)", "HeteroSSHELR", sshe)
        lr = run_job(home, "hetero_lr", "hetero_lr_0", args.epochs)
        report("fedweave HeteroLR (guest + host + arbiter)", "HeteroLR", lr)
    print(f"\nHeteroSSHELR / HeteroLR job wall time: {sshe['wall_s'] / lr['wall_s']:.2f}x")
    if not fate_dir:
        print("FATE not run (set FEDWEAVE_BENCH_FATE=DIR to measure its SSHE-LR in this run): no ratio")
        return
    print(f"\nFATE 2.2 SSHE-LR, {args.epochs} epochs, same split ({FATE_SCRIPT} sshe {args.epochs})")
    fate_s = run_fate(fate_dir, args.epochs)
    print(f"  job wall time                       {fate_s:8.2f} s")
    print(f"  seconds per epoch (whole job / N)   {fate_s / args.epochs:8.3f} s")
    print(f"\nFATE SSHE-LR / fedweave HeteroSSHELR job wall time: {fate_s / sshe['wall_s']:.1f}x")


if __name__ == "__main__":
    main()
