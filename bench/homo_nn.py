"""HomoNN wall time: seconds per epoch of federated averaging beside the same network
trained centrally, in the same run.

    python bench/homo_nn.py [--rows 100000] [--features 100] [--epochs 5] [--batch 256]
                            [--hidden 64] [--device cpu|cuda|auto] [--no-masks]

A synthetic set of N rows x F features (a noisy logistic label) is split evenly over guest
9999 and hosts 10000, 10001 (arbiter 10000) and trained as a real standalone job through
the ``flow`` CLI: examples/homo_nn's pipeline with an MLP (F -> hidden -> 1, sigmoid),
BCELoss, Adam, aggregation after every epoch under secure-aggregation masks. Seconds per
federated epoch: the median gap between the arbiter's consecutive "aggregation" log lines
(one local epoch on every party, running at once in their own processes, then masking,
transfers, the sum and the reply). Central: the same network, loss, optimizer and batch
size trained on all N rows in this process by the same training code
(components/nn/local.py), median seconds per epoch. The ratio is federated / central.
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

import numpy as np
from _jobs import ROOT, flow, log_stamps, submit

sys.path.insert(0, str(ROOT))
CPN = "homo_nn_0"
SHARES = (("guest", "9999"), ("host", "10000"), ("host", "10001"))


def synthetic(rows: int, features: int, seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features))
    w = rng.normal(size=features) / np.sqrt(features) * 2
    return x, (rng.uniform(size=rows) < 1 / (1 + np.exp(-(x @ w)))).astype(float)


def write_shares(folder: Path, x: np.ndarray, y: np.ndarray) -> list[Path]:
    paths = []
    for k, part in enumerate(np.array_split(np.arange(len(x)), len(SHARES))):
        path = folder / f"syn_nn_{k}.csv"
        with path.open("w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(["id", "y"] + [f"x{j}" for j in range(x.shape[1])])
            out.writerows([f"r{i}", int(y[i]), *np.round(x[i], 6)] for i in part.tolist())
        paths.append(path)
    return paths


def nn_params(args: argparse.Namespace) -> dict:
    return {"model": {"module": "components.nn.models", "class": "MLP",
                      "params": {"hidden": [args.hidden], "output": "sigmoid"}},
            "loss": {"loss_fn": "BCELoss"}, "optimizer": {"optimizer": "Adam", "lr": 0.001},
            "trainer": {"trainer_name": "fedavg_trainer",
                        "param": {"epochs": args.epochs, "batch_size": args.batch, "aggregate_every_n_epoch": 1,
                                  "secure_aggregate": not args.no_masks}},
            "torch_seed": 100, "device": args.device}


def federated(home: Path, args: argparse.Namespace, paths: list[Path]) -> dict:
    conf = json.loads((ROOT / "examples/homo_nn/conf.json").read_text())
    dsl = json.loads((ROOT / "examples/homo_nn/dsl.json").read_text())
    dsl["components"].pop("evaluation_0")
    conf["component_parameters"]["common"].pop("evaluation_0")
    conf = copy.deepcopy(conf)
    roles = conf["component_parameters"]["role"]
    for k, path in enumerate(paths):
        flow(home, "data", "upload", "-f", path, "--namespace", "bench", "--name", path.stem, "--label-column", "y")
        roles["guest" if k == 0 else "host"][str(max(0, k - 1))]["reader_0"]["table"] = {"namespace": "bench",
                                                                                          "name": path.stem}
    conf["component_parameters"]["common"][CPN] = nn_params(args)
    conf["job_parameters"]["common"]["timeout"] = 36000
    job, wall = submit(home, conf, dsl)
    stamps = log_stamps(home, job, "arbiter", "10000", CPN, r"aggregation (\d+) \(epoch")
    if len(stamps) < 2:
        sys.exit(f"job {job['job_id']}: fewer than two 'aggregation' lines in the arbiter's {CPN} log")
    device = flow(home, "tracking", "metrics", "-j", job["job_id"], "-r", "guest", "-p", "9999",
                  "-cpn", CPN)["train"]["device"]
    return {"wall_s": wall, "per_epoch_s": statistics.median((b - a).total_seconds()
                                                            for a, b in zip(stamps, stamps[1:])),
            "device": device, "rounds": len(stamps)}


def central(args: argparse.Namespace, x: np.ndarray, y: np.ndarray) -> dict:
    from components.nn.device import describe, resolve_device
    from components.nn.local import LocalTrainer
    from components.nn.params import HomoNNParams

    p = HomoNNParams.model_validate(nn_params(args))
    device = resolve_device(p.settings().device, "central")
    trainer = LocalTrainer(p, p.settings(), x.astype(np.float32), y, "binary", [0.0, 1.0], device, "central")
    times = []
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        trainer.epoch(epoch)
        if device.type == "cuda":
            import torch

            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return {"per_epoch_s": statistics.median(times), "device": describe(device)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--features", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=5, help="epochs (= aggregation rounds); at least 3")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--hidden", type=int, default=64, help="width of the MLP's hidden layer")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto (both runs)")
    ap.add_argument("--no-masks", action="store_true", help="secure_aggregate false")
    args = ap.parse_args()
    import torch

    print(f"machine: {os.cpu_count()} cores; torch {torch.__version__} ({torch.get_num_threads()} threads); "
          f"CUDA: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}; load average at start "
          f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    x, y = synthetic(args.rows, args.features)
    with tempfile.TemporaryDirectory() as tmp:
        fed = federated(Path(tmp), args, write_shares(Path(tmp), x, y))
    cen = central(args, x, y)
    size = args.features * args.hidden + 2 * args.hidden + 1
    print(f"MLP {args.features} -> {args.hidden} -> 1 ({size} weights), batch {args.batch}, {args.epochs} epochs, "
          f"{args.rows:,} rows x {args.features}; masks {'off' if args.no_masks else 'on'}")
    print(f"  federated, 3 parties ({fed['device']}): {fed['per_epoch_s']:.3f} s per epoch "
          f"(median of {fed['rounds'] - 1} gaps; job wall {fed['wall_s']:.1f} s)")
    print(f"  central, one process ({cen['device']}):  {cen['per_epoch_s']:.3f} s per epoch")
    print(f"  overhead ratio federated / central: {fed['per_epoch_s'] / cen['per_epoch_s']:.2f}x")


if __name__ == "__main__":
    main()
