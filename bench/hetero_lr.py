"""HeteroLR wall time: seconds per epoch and job total, through the real `flow` CLI.

    python bench/hetero_lr.py [--synthetic-rows 100000] [--synthetic-epochs 2] [--skip-synthetic]

Case 1 is examples/hetero_lr as shipped (breast_hetero, 569 rows, 20 epochs, 1024-bit
keys, standalone: guest, host and arbiter as separate processes). Case 2 is a synthetic
set of N rows x (20 guest + 80 host) features. Baseline measured in the same run: the
same full-batch Taylor gradient descent on the joined plaintext data in numpy (what the
job would cost without federation and encryption). FATE beside it, in the same run:
bench/fate_compare.py (`make bench-fate FATE=DIR`).
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _jobs import ROOT, flow, guest_auc, submit, task_time, upload_breast_hetero


def run_job(home: Path, conf: dict, dsl: dict) -> dict:
    job, wall = submit(home, conf, dsl)
    _, lr_s = task_time(job, "hetero_lr_0", "guest")
    model = flow(home, "tracking", "output-model", "-j", job["job_id"], "-r", "guest", "-p", "9999",
                 "-cpn", "hetero_lr_0")["model"]
    auc = guest_auc(home, job)
    return {"wall_s": wall, "lr_s": lr_s, "iters": model["iters"], "auc": auc}


def plaintext_epoch_s(x: np.ndarray, y: np.ndarray, epochs: int) -> float:
    ys, w, b = 2 * y - 1, np.zeros(x.shape[1]), 0.0
    t0 = time.perf_counter()
    for it in range(epochs):
        wx = x @ w + b
        d = 0.25 * wx - 0.5 * ys
        lr = 0.15 / math.sqrt(1 + it)
        w, b = w - lr * (x.T @ d / len(y) + 0.01 * w), b - lr * d.mean()
    return (time.perf_counter() - t0) / epochs


def load_csv(path: Path) -> tuple[list[str], dict[str, list[float]]]:
    with path.open() as fh:
        rows = list(csv.reader(fh))
    return rows[0], {r[0]: [float(v) for v in r[1:]] for r in rows[1:]}


def write_synthetic(folder: Path, rows: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 100))
    w = rng.normal(size=100) / 10
    y = (rng.uniform(size=rows) < 1 / (1 + np.exp(-(x @ w)))).astype(int)
    with (folder / "syn_guest.csv").open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "y"] + [f"g{i}" for i in range(20)])
        out.writerows([f"r{i}", y[i], *np.round(x[i, :20], 6)] for i in range(rows))
    with (folder / "syn_host.csv").open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["id"] + [f"h{i}" for i in range(80)])
        out.writerows([f"r{i}", *np.round(x[i, 20:], 6)] for i in range(rows))
    return x, y


def report(name: str, res: dict, base_s: float) -> None:
    per_epoch = res["lr_s"] / res["iters"]
    print(f"{name}")
    print(f"  job wall time (submit -> success)   {res['wall_s']:8.2f} s")
    print(f"  HeteroLR task, {res['iters']:3d} epochs          {res['lr_s']:8.2f} s")
    print(f"  seconds per epoch (federated)       {per_epoch:8.3f} s")
    print(f"  seconds per epoch (plaintext numpy) {base_s:8.5f} s   ratio {per_epoch / base_s:,.0f}x")
    if res["auc"] is not None:
        print(f"  AUC                                 {res['auc']:8.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--synthetic-rows", type=int, default=100_000)
    ap.add_argument("--synthetic-epochs", type=int, default=2)
    ap.add_argument("--skip-synthetic", action="store_true")
    args = ap.parse_args()
    conf = json.loads((ROOT / "examples/hetero_lr/conf.json").read_text())
    dsl = json.loads((ROOT / "examples/hetero_lr/dsl.json").read_text())
    data = ROOT / "examples" / "data"
    print(f"machine: {os.cpu_count()} cores; Python {sys.version.split()[0]}\n")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        upload_breast_hetero(home)
        res = run_job(home, conf, dsl)
        _, g = load_csv(data / "breast_hetero_guest.csv")
        _, h = load_csv(data / "breast_hetero_host.csv")
        x = np.array([g[k][1:] + h[k] for k in g])
        y = np.array([g[k][0] for k in g])
        report("breast_hetero: 569 rows x (10 + 20), 1024-bit Paillier", res, plaintext_epoch_s(x, y, 20))
        if args.skip_synthetic:
            return
        x, y = write_synthetic(home, args.synthetic_rows)
        flow(home, "data", "upload", "-f", home / "syn_guest.csv", "--namespace", "bench", "--name", "syn_guest",
             "--label-column", "y")
        flow(home, "data", "upload", "-f", home / "syn_host.csv", "--namespace", "bench", "--name", "syn_host")
        syn = copy.deepcopy(conf)
        roles = syn["component_parameters"]["role"]
        roles["guest"]["0"]["reader_0"]["table"] = {"namespace": "bench", "name": "syn_guest"}
        roles["host"]["0"]["reader_0"]["table"] = {"namespace": "bench", "name": "syn_host"}
        syn["component_parameters"]["common"]["hetero_lr_0"]["max_iter"] = args.synthetic_epochs
        syn["job_parameters"]["common"]["timeout"] = 36000
        res = run_job(home, syn, dsl)
        report(f"synthetic: {args.synthetic_rows:,} rows x (20 + 80), 1024-bit Paillier", res,
               plaintext_epoch_s(x, y, args.synthetic_epochs))


if __name__ == "__main__":
    main()
