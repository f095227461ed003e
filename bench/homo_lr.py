"""HomoLR wall time: seconds per aggregation round with secure-aggregation masks on and off.

    python bench/homo_lr.py [--rows 30000] [--features 100] [--epochs 10] [--skip-synthetic]

Case 1 is examples/homo_lr as shipped (breast split across guest and two hosts, 569 rows
x 30 features, full batch, aggregation after every epoch, arbiter at party 10000), run as
a real standalone job through the `flow` CLI twice in the same run: ``secure_aggregate``
true (the example) and false; the masks-off run is the baseline. Case 2 is a synthetic set
of N rows x F features split evenly over the three parties, ``tol`` 0 so every epoch is a
round. Seconds per round are the median gap between the arbiter's consecutive
"aggregation" log lines (one local epoch on every party, masking, the transfers, the sum
and the reply); with ``--repeat`` the jobs alternate on, off, on, off... and each setting
keeps its fastest job. Beside them, what the masks alone cost per round (three parties masking a
vector of F + 3 words and the arbiter summing and decoding them), timed in this process.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _jobs import ROOT, flow, guest_auc, log_stamps, submit, task_time

sys.path.insert(0, str(ROOT))
CPN = "homo_lr_0"
SHARES = (("guest", "9999"), ("host", "10000"), ("host", "10001"))



def run_job(home: Path, conf: dict, dsl: dict, masks: bool) -> dict:
    conf = copy.deepcopy(conf)
    conf["component_parameters"]["common"][CPN]["secure_aggregate"] = masks
    job, wall = submit(home, conf, dsl)
    _, task_s = task_time(job, CPN, "arbiter")
    stamps = log_stamps(home, job, "arbiter", "10000", CPN, r"aggregation (\d+) \(epoch")
    if len(stamps) < 2:
        sys.exit(f"job {job['job_id']}: fewer than two 'aggregation' lines in the arbiter's {CPN} log")
    auc = guest_auc(home, job)
    return {"wall_s": wall, "task_s": task_s, "rounds": len(stamps),
            "per_round_s": float(np.median([(b - a).total_seconds() for a, b in zip(stamps, stamps[1:])])),
            "auc": auc}


def run_pair(home: Path, conf: dict, dsl: dict, repeat: int) -> tuple[dict, dict]:
    """Masks on and off, alternating ``repeat`` times; each keeps its run with the fastest rounds."""
    runs: dict[bool, list[dict]] = {True: [], False: []}
    for _ in range(repeat):
        for masks in (True, False):
            runs[masks].append(run_job(home, conf, dsl, masks))
    on, off = (min(runs[m], key=lambda r: r["per_round_s"]) for m in (True, False))
    return on, off


def mask_cost_per_round(size: int, repeat: int = 20) -> float:
    """Seconds of mask computation per round: three parties mask, the arbiter sums and decodes."""
    from components.crypto.secure_agg import SecureAggregator, add_words, decode

    names = [f"{r}:{p}" for r, p in SHARES]
    aggs = [SecureAggregator(n, b"bench") for n in names]
    keys = {a.name: a.public_key for a in aggs}
    for a in aggs:
        a.agree(keys)
    values = np.random.default_rng(1).normal(size=size)
    best = float("inf")
    for r in range(repeat):
        t0 = time.perf_counter()
        total = decode(add_words([a.mask(values, r) for a in aggs]))
        best = min(best, time.perf_counter() - t0)
    assert np.allclose(total, 3 * values, atol=1e-6)
    return best


def report(name: str, on: dict, off: dict, mask_s: float, repeat: int) -> None:
    print(f"{name}; best of {repeat} job(s) per setting")
    header = f"  {'':<36} {'masks on':>10} {'masks off':>10} {'on / off':>9}"
    print(header)
    print("  " + "-" * (len(header) - 2))
    for label, key in (("job wall time (submit -> success) s", "wall_s"), ("HomoLR task (arbiter) s", "task_s"),
                       ("seconds per aggregation round", "per_round_s")):
        print(f"  {label:<36} {on[key]:10.3f} {off[key]:10.3f} {on[key] / off[key]:8.2f}x")
    print(f"  {'aggregation rounds':<36} {on['rounds']:10d} {off['rounds']:10d}")
    print(f"  {'AUC (guest rows)':<36} {on['auc']:10.4f} {off['auc']:10.4f}")
    print(f"  masks alone (3 parties mask, arbiter sums; in this process): {mask_s * 1000:.3f} ms per round\n")


def write_synthetic(folder: Path, rows: int, features: int, seed: int = 11) -> list[Path]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features))
    w = rng.normal(size=features) / np.sqrt(features) * 2
    y = (rng.uniform(size=rows) < 1 / (1 + np.exp(-(x @ w)))).astype(int)
    paths = []
    for k, part in enumerate(np.array_split(np.arange(rows), len(SHARES))):
        path = folder / f"syn_homo_{k}.csv"
        with path.open("w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(["id", "y"] + [f"x{j}" for j in range(features)])
            out.writerows([f"r{i}", y[i], *np.round(x[i], 6)] for i in part.tolist())
        paths.append(path)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=30_000, help="rows of the synthetic set (all parties together)")
    ap.add_argument("--features", type=int, default=100, help="features of the synthetic set")
    ap.add_argument("--epochs", type=int, default=10, help="epochs (= aggregation rounds) of the synthetic runs")
    ap.add_argument("--repeat", type=int, default=2, help="jobs per setting (the fastest is kept)")
    ap.add_argument("--skip-synthetic", action="store_true")
    args = ap.parse_args()
    conf = json.loads((ROOT / "examples/homo_lr/conf.json").read_text())
    dsl = json.loads((ROOT / "examples/homo_lr/dsl.json").read_text())
    data = ROOT / "examples" / "data"
    print(f"machine: {os.cpu_count()} cores; Python {sys.version.split()[0]}; "
          f"load average at start {', '.join(f'{v:.2f}' for v in os.getloadavg())}\n")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        for share in ("guest", "host1", "host2"):
            flow(home, "data", "upload", "-f", data / f"breast_homo_{share}.csv", "--namespace", "experiment",
                 "--name", f"breast_homo_{share}", "--label-column", "y")
        on, off = run_pair(home, conf, dsl, args.repeat)
        report("breast_homo: 569 rows x 30 features over guest + 2 hosts, full batch; real standalone jobs "
               "through the flow CLI", on, off, mask_cost_per_round(30 + 3), args.repeat)
        if args.skip_synthetic:
            return
        syn = copy.deepcopy(conf)
        roles = syn["component_parameters"]["role"]
        for k, path in enumerate(write_synthetic(home, args.rows, args.features)):
            flow(home, "data", "upload", "-f", path, "--namespace", "bench", "--name", path.stem,
                 "--label-column", "y")
            roles["guest" if k == 0 else "host"][str(max(0, k - 1))]["reader_0"]["table"] = {
                "namespace": "bench", "name": path.stem}
        lr = syn["component_parameters"]["common"][CPN]
        lr["max_iter"], lr["tol"] = args.epochs, 0.0
        syn["job_parameters"]["common"]["timeout"] = 36000
        on, off = run_pair(home, syn, dsl, args.repeat)
        report(f"synthetic: {args.rows:,} rows x {args.features} features over guest + 2 hosts, full batch, "
               f"{args.epochs} epochs", on, off, mask_cost_per_round(args.features + 3), args.repeat)


if __name__ == "__main__":
    main()
