"""HeteroNN wall time: seconds per epoch through the real `flow` CLI beside the same network
trained centrally in torch, in the same run.

    python bench/hetero_nn.py [--rows 20000] [--epochs 1] [--batch 256] [--key-length 1024] [--threads 1]

A synthetic set of N rows x (20 guest + 80 host) features (a noisy logistic label) is split
vertically and trained as a standalone job (guest and host in their own processes:
Reader, DataTransform, Intersection, HeteroNN). Network: MLP bottoms (guest 20 -> 16 -> 4,
host 80 -> 32 -> 4, ReLU), interactive layer (4 + 4) -> 4 + ReLU (host weights additively shared,
every cross product under Paillier at ``--key-length``, FATE's default 1024), top 4 -> 1
sigmoid, BCELoss, Adam. Seconds per federated epoch: the median gap between the guest's
consecutive "training"/"epoch" log lines. Central: the same layers, loss, optimizers and
batches on the joined rows in this process (plain torch autograd, ``--threads`` torch
threads, 1 by default: on a busy machine more threads made it 20x slower), median seconds per epoch.
The ratio is federated / central. The encrypted cross products dominate; at the default
size one epoch takes minutes on a small machine (use --rows to shrink it).
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _jobs import ROOT, flow, log_stamps, submit

CPN = "hetero_nn_0"
GUEST_F, HOST_F, OUT = 20, 80, 4


def _mlp(sizes: list[int]) -> dict[str, Any]:
    layers: dict[str, Any] = {}
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers[f"{2 * i}-{2 * i}"] = {"layer": "Linear", "in_features": a, "out_features": b}
        layers[f"{2 * i + 1}-{2 * i + 1}"] = {"layer": "ReLU"}
    return layers


GUEST_BOTTOM, HOST_BOTTOM = [GUEST_F, 16, OUT], [HOST_F, 32, OUT]


def write_synthetic(folder: Path, rows: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, GUEST_F + HOST_F))
    w = rng.normal(size=GUEST_F + HOST_F) / 5
    y = (rng.uniform(size=rows) < 1 / (1 + np.exp(-(x @ w)))).astype(int)
    for name, cols, labelled in (("guest", slice(0, GUEST_F), True), ("host", slice(GUEST_F, None), False)):
        with (folder / f"syn_nn_{name}.csv").open("w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(["id"] + (["y"] if labelled else []) + [f"{name[0]}{j}" for j in range(x[:, cols].shape[1])])
            out.writerows([f"r{i}", *([y[i]] if labelled else []), *np.round(x[i, cols], 6)] for i in range(rows))
    return x, y


def federated(home: Path, args: argparse.Namespace) -> dict[str, Any]:
    conf = copy.deepcopy(json.loads((ROOT / "examples/hetero_nn/conf.json").read_text()))
    dsl = json.loads((ROOT / "examples/hetero_nn/dsl.json").read_text())
    dsl["components"].pop("evaluation_0")
    conf["component_parameters"]["common"].pop("evaluation_0")
    roles = conf["component_parameters"]["role"]
    roles["host"]["0"].pop("evaluation_0", None)
    for role in ("guest", "host"):
        label = ["--label-column", "y"] if role == "guest" else []
        flow(home, "data", "upload", "-f", home / f"syn_nn_{role}.csv", "--namespace", "bench",
             "--name", f"syn_nn_{role}", *label)
        roles[role]["0"]["reader_0"]["table"] = {"namespace": "bench", "name": f"syn_nn_{role}"}
        roles[role]["0"][CPN]["bottom_nn_define"] = _mlp(GUEST_BOTTOM if role == "guest" else HOST_BOTTOM)
    roles["guest"]["0"]["data_transform_0"]["label_name"] = "y"
    nn = conf["component_parameters"]["common"][CPN]
    nn.update(epochs=args.epochs, batch_size=args.batch, device="cpu",
              encrypt_param={"key_length": args.key_length, "allow_short_key": args.key_length < 1024})
    conf["job_parameters"]["common"]["timeout"] = 36000
    job, wall = submit(home, conf, dsl)
    stamps = log_stamps(home, job, "guest", "9999", CPN, r"(training \d+ rows|epoch \d+ of \d+: loss)")
    if len(stamps) < 2:
        sys.exit(f"job {job['job_id']}: no epoch lines in the guest's {CPN} log")
    gaps = [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:])]
    return {"wall_s": wall, "per_epoch_s": statistics.median(gaps), "epochs": len(gaps)}


def central(args: argparse.Namespace, x: np.ndarray, y: np.ndarray) -> float:
    """The same network on the joined rows, median seconds per epoch."""
    import torch

    def mlp(sizes: list[int]) -> torch.nn.Sequential:
        layers: list[torch.nn.Module] = []
        for a, b in zip(sizes, sizes[1:]):
            layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        return torch.nn.Sequential(*layers)

    torch.set_num_threads(args.threads)  # layers this small: more intra-op threads only add contention
    torch.manual_seed(100)
    bg, bh, inter = mlp(GUEST_BOTTOM), mlp(HOST_BOTTOM), torch.nn.Linear(2 * OUT, OUT)
    top = torch.nn.Sequential(torch.nn.Linear(OUT, 1), torch.nn.Sigmoid())
    opt = torch.optim.Adam([*bg.parameters(), *bh.parameters(), *top.parameters()], lr=0.02)
    sgd = torch.optim.SGD(inter.parameters(), lr=0.05)
    tx = torch.as_tensor(x, dtype=torch.float32)
    ty = torch.as_tensor(y, dtype=torch.float32).reshape(-1, 1)
    loss_fn, times = torch.nn.BCELoss(), []
    for epoch in range(-1, args.epochs):  # epoch -1: an untimed warm-up (torch's first-call costs)
        t0 = time.perf_counter()
        order = np.random.default_rng([100, max(epoch, 0)]).permutation(len(x))
        for start in range(0, len(x), args.batch):
            idx = torch.as_tensor(order[start:start + args.batch])
            rows = tx[idx]
            opt.zero_grad()
            sgd.zero_grad()
            z = torch.relu(inter(torch.cat([bg(rows[:, :GUEST_F]), bh(rows[:, GUEST_F:])], dim=1)))
            loss_fn(top(z), ty[idx]).backward()
            opt.step()
            sgd.step()
        if epoch >= 0:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the central run")
    ap.add_argument("--key-length", type=int, default=1024, help="Paillier key bits (FATE's default 1024)")
    args = ap.parse_args()
    import torch

    print(f"machine: {os.cpu_count()} cores; torch {torch.__version__} ({torch.get_num_threads()} threads); "
          f"load average at start {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        x, y = write_synthetic(Path(tmp), args.rows)
        fed = federated(Path(tmp), args)
    cen = central(args, x, y)
    print(f"HeteroNN, {args.rows:,} rows x ({GUEST_F} guest + {HOST_F} host), bottoms {GUEST_BOTTOM} / "
          f"{HOST_BOTTOM}, interactive {2 * OUT} -> {OUT}, top {OUT} -> 1; batch {args.batch}, {args.epochs} epoch(s), "
          f"{args.key_length}-bit Paillier")
    print(f"  federated, guest + host processes: {fed['per_epoch_s']:.2f} s per epoch "
          f"(median of {fed['epochs']}; job wall {fed['wall_s']:.1f} s with intersection and scoring)")
    print(f"  central torch, one process ({args.threads} thread(s)): {cen:.4f} s per epoch")
    print(f"  overhead ratio federated / central: {fed['per_epoch_s'] / cen:.0f}x")


if __name__ == "__main__":
    main()
