"""HeteroSecureBoost wall time: seconds per tree with the packing of host histograms on and off.

    python bench/secureboost.py [--rows 100000] [--trees 3] [--depth 3] [--repeat 2] [--skip-breast]
                                [--skip-synthetic]

Case 1 is examples/hetero_secureboost as shipped (breast_hetero, 569 rows x (10 + 20),
5 trees of depth 3, 32 bins, 1024-bit Paillier), run as a real standalone job through the
`flow` CLI twice in the same run: ``cipher_compress`` true (the example) and false.
Seconds per tree come from the guest's log: from the task's start to its last
"round ... loss" line, divided by the trees (key generation and binning included, the
final prediction walk not). Case 2 is a synthetic set of N rows x (10 guest + 50 host)
features; guest and host run as two processes over the standalone transport with the
computing a standalone job would give them (upload, DataTransform and Intersection of
N rows are left out), alternating packing on and off ``--repeat`` times; each setting
keeps its fastest run. The ratio off / on is what packing buys; the ciphertexts the
guest decrypts and the seconds it and the host spend on them show where.
A second baseline in the same run: scikit-learn's HistGradientBoostingClassifier with the
same trees, depth, bins and learning rate on the joined plaintext columns (what the
boosting costs without federation or encryption). FATE beside it, in the same run:
bench/fate_compare.py (`make bench-fate FATE=DIR`).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _jobs import ROOT, guest_auc, log_stamps, submit, task_time, upload_breast_hetero

sys.path.insert(0, str(ROOT))
CPN = "hetero_secureboost_0"
GUEST_FEATURES, HOST_FEATURES = 10, 50


# ------------------------------------------------------------------ case 1: real jobs through the CLI


def run_breast_job(home: Path, conf: dict, dsl: dict, compress: bool) -> dict:
    conf = copy.deepcopy(conf)
    conf["component_parameters"]["common"][CPN]["cipher_compress"] = compress
    job, wall = submit(home, conf, dsl)
    started, task_s = task_time(job, CPN, "guest")
    rounds = log_stamps(home, job, "guest", "9999", CPN, r"round (\d+): loss")
    if not rounds:
        sys.exit(f"job {job['job_id']}: no 'round N: loss' lines in the guest's {CPN} log")
    if started.tzinfo is not None:  # log stamps are local time without a zone
        started = started.astimezone().replace(tzinfo=None)
    auc = guest_auc(home, job)
    return {"wall_s": wall, "task_s": task_s, "trees": len(rounds),
            "per_tree_s": (rounds[-1] - started).total_seconds() / len(rounds), "auc": auc}


def breast_case(args: argparse.Namespace) -> None:
    conf = json.loads((ROOT / "examples/hetero_secureboost/conf.json").read_text())
    dsl = json.loads((ROOT / "examples/hetero_secureboost/dsl.json").read_text())
    sbt = conf["component_parameters"]["common"][CPN]
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        upload_breast_hetero(home)
        on = run_breast_job(home, conf, dsl, True)
        off = run_breast_job(home, conf, dsl, False)
    depth, bits = sbt["tree_param"]["max_depth"], sbt["encrypt_param"]["key_length"]
    print(f"breast_hetero: 569 rows x (10 + 20), {sbt['num_trees']} trees of depth {depth}, "
          f"{sbt['bin_num']} bins, {bits}-bit Paillier; real standalone jobs through the flow CLI")
    header = f"  {'':<34} {'packing on':>11} {'packing off':>12} {'off / on':>9}"
    print(header)
    print("  " + "-" * (len(header) - 2))
    for label, key, fmt in (("job wall time (submit -> success) s", "wall_s", "{:11.2f}"),
                            ("HeteroSecureBoost task s", "task_s", "{:11.2f}"),
                            ("seconds per tree", "per_tree_s", "{:11.2f}")):
        print(f"  {label:<34} {fmt.format(on[key])} {fmt.format(off[key]):>12} {off[key] / on[key]:8.2f}x")
    print(f"  {'AUC':<34} {on['auc']:11.4f} {off['auc']:12.4f}")
    print()


# ------------------------------------------------------------------ case 2: two party processes

def synthetic(rows: int, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Joined columns (guest's first) and labels that depend on both parties' features."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, GUEST_FEATURES + HOST_FEATURES))
    logit = 1.2 * x[:, 0] - x[:, 3] + 0.8 * x[:, GUEST_FEATURES] * x[:, GUEST_FEATURES + 1] - 1.5 * x[:, -1]
    return x, (logit + 0.5 * rng.normal(size=rows) > 0).astype(float)


class _Tracker:
    """Keeps the time of each progress call (the guest calls it after every tree)."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def log_metric(self, namespace: str, name: str, value: object) -> None:
        pass

    def progress(self, done: int, total: int, message: str = "") -> None:
        self.stamps.append(time.perf_counter())


def _instrument(role: str) -> dict:
    """Count and time, in this party's process only, the steps packing changes: the guest's
    decryption of what the host sends and the host's packing of its candidates."""
    import components.tree.guest as guest_mod
    import components.tree.host as host_mod

    module, name = (guest_mod, "decrypt_all") if role == "guest" else (host_mod, "pack_groups")
    real = getattr(module, name)
    stats = {"step_s": 0.0, "ciphertexts": 0}

    def wrapped(session, key_or_groups, items):
        t0 = time.perf_counter()
        result = real(session, key_or_groups, items)
        stats["step_s"] += time.perf_counter() - t0
        stats["ciphertexts"] += len(result)
        return result
    setattr(module, name, wrapped)
    return stats


def _party(role: str, home: str, rows: int, params: dict, workers: int, out: mp.Queue) -> None:
    """One party's share of the component in its own process, as a standalone job runs it."""
    os.environ["FLOW_HOME"] = home
    from backends.computing.local import LocalSession
    from backends.storage.api import TableMeta
    from components.base import Context, Dataset, Inputs, Instance
    from components.tree.hetero_secureboost import HeteroSecureBoost
    from components.tree.params import HeteroSecureBoostParams
    from federation.api import Party
    from flow.core.settings import load_service_conf
    from flow.runtime.transport import make_federation

    guest, host = Party("guest", "9999"), Party("host", "10000")
    me = guest if role == "guest" else host
    timed = _instrument(role)
    x, y = synthetic(rows)
    x = x[:, :GUEST_FEATURES] if role == "guest" else x[:, GUEST_FEATURES:]
    session = LocalSession(partitions=4, workers=workers)
    fed = make_federation("standalone", load_service_conf(), params["job_id"], me, session,
                          {"guest": [guest], "host": [host]}, timeout=36000)
    try:
        ids = [f"r{i:07d}" for i in range(rows)]
        table = session.parallelize([(k, Instance(x[i], float(y[i]) if role == "guest" else None))
                                     for i, k in enumerate(ids)])
        cols = (["y"] if role == "guest" else []) + [f"{role[0]}{j}" for j in range(x.shape[1])]
        meta = TableMeta(namespace="bench", name=role, columns=cols,
                         label_column="y" if role == "guest" else None)
        tracker = _Tracker()
        ctx = Context(params["job_id"], CPN, me, {"guest": [guest], "host": [host]}, session, fed, None, tracker,
                      logging.getLogger("bench.secureboost"))
        p = HeteroSecureBoostParams.model_validate(params["sbt"])
        t0 = time.perf_counter()
        res = HeteroSecureBoost().run(ctx, p, Inputs(data={"train_data": Dataset(table, meta)}))
        total = time.perf_counter() - t0
        auc = None
        if role == "guest":
            from sklearn.metrics import roc_auc_score
            scored = dict(res.data[0].table.collect())
            auc = float(roc_auc_score(y, [scored[k].features[1] for k in ids]))
        out.put((role, {"total_s": total, "trees_s": tracker.stamps[-1] - t0, "trees": len(tracker.stamps),
                        "auc": auc, **timed}))
    except Exception as exc:  # noqa: BLE001 - reported by the parent
        out.put((role, {"error": f"{type(exc).__name__}: {exc}"}))
    finally:
        fed.close()
        session.stop()


def run_synthetic(rows: int, sbt: dict, compress: bool, tag: str) -> dict:
    from federation.auth import standalone_route_table

    with tempfile.TemporaryDirectory() as home:
        standalone_route_table(home, ["9999", "10000"])  # both parties' keys, before either starts
        params = {"job_id": f"bench_sbt_{tag}", "sbt": {**sbt, "cipher_compress": compress}}
        workers = max(1, (os.cpu_count() or 1) // 2)  # what a standalone job gives each of two parties
        spawn = mp.get_context("spawn")
        out = spawn.Queue()
        procs = [spawn.Process(target=_party, args=(role, home, rows, params, workers, out))
                 for role in ("guest", "host")]
        for proc in procs:
            proc.start()
        results: dict[str, dict] = {}
        while len(results) < len(procs):
            role, res = out.get()
            if "error" in res:  # the other party would wait for its peer until the timeout
                for proc in procs:
                    proc.terminate()
                sys.exit(f"synthetic {tag}: the {role} failed: {res['error']}")
            results[role] = res
        for proc in procs:
            proc.join()
    g, h = results["guest"], results["host"]
    trees = g["trees"]
    return {**g, "per_tree_s": g["trees_s"] / trees, "cipher": g["ciphertexts"] / trees,
            "decrypt_s": g["step_s"] / trees, "pack_s": h["step_s"] / trees}


def plaintext_per_tree(x: np.ndarray, y: np.ndarray, sbt: dict) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier

    trees = sbt["num_trees"]
    model = HistGradientBoostingClassifier(max_iter=trees, max_depth=sbt["tree_param"]["max_depth"],
                                           max_bins=sbt["bin_num"], learning_rate=sbt["learning_rate"],
                                           l2_regularization=sbt["tree_param"]["criterion_param"][0],
                                           early_stopping=False, min_samples_leaf=1)
    model.fit(x[:1000], y[:1000])  # warm-up: imports and thread pools outside the timing
    t0 = time.perf_counter()
    model.fit(x, y)
    return (time.perf_counter() - t0) / trees


def synthetic_case(args: argparse.Namespace) -> None:
    conf = json.loads((ROOT / "examples/hetero_secureboost/conf.json").read_text())
    sbt = copy.deepcopy(conf["component_parameters"]["common"][CPN])
    sbt["num_trees"], sbt["tree_param"]["max_depth"] = args.trees, args.depth
    bits = sbt["encrypt_param"]["key_length"]
    runs: dict[bool, list[dict]] = {True: [], False: []}
    for r in range(args.repeat):  # alternate, so a change in the machine's load hits both settings
        for compress in (True, False):
            res = run_synthetic(args.rows, sbt, compress, f"{'on' if compress else 'off'}{r}")
            runs[compress].append({**res, "load": os.getloadavg()[0]})
    on, off = (min(runs[c], key=lambda x: x["per_tree_s"]) for c in (True, False))
    x, y = synthetic(args.rows)
    base = plaintext_per_tree(x, y, sbt)
    print(f"synthetic: {args.rows:,} rows x ({GUEST_FEATURES} + {HOST_FEATURES}), {args.trees} trees of depth "
          f"{args.depth}, {sbt['bin_num']} bins, {bits}-bit Paillier; guest and host processes over the "
          f"standalone transport; fastest of {args.repeat} run(s) per setting")
    header = f"  {'':<38} {'packing on':>11} {'packing off':>12} {'off / on':>9}"
    print(header)
    print("  " + "-" * (len(header) - 2))
    for label, key, fmt in (("component (guest) s", "total_s", "{:.1f}"), ("seconds per tree", "per_tree_s", "{:.1f}"),
                            ("ciphertexts host -> guest per tree", "cipher", "{:,.0f}"),
                            ("guest decryption s per tree", "decrypt_s", "{:.2f}"),
                            ("host packing, re-randomising s/tree", "pack_s", "{:.2f}")):
        ratio = f"{off[key] / on[key]:8.2f}x" if on[key] else f"{'-':>9}"
        print(f"  {label:<38} {fmt.format(on[key]):>11} {fmt.format(off[key]):>12} {ratio}")
    print(f"  {'AUC (training rows)':<38} {on['auc']:11.4f} {off['auc']:12.4f}")
    for c in (True, False):
        print(f"  every run, packing {'on ' if c else 'off'}: " + ", ".join(
            f"{r['per_tree_s']:.1f} s/tree (1-min load {r['load']:.1f} after)" for r in runs[c]))
    print(f"  plaintext baseline (scikit-learn HistGradientBoosting, same run): {base:.3f} s per tree; "
          f"federated with packing {on['per_tree_s'] / base:,.0f}x that\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000, help="rows of the synthetic set")
    ap.add_argument("--trees", type=int, default=3, help="trees of the synthetic runs")
    ap.add_argument("--depth", type=int, default=3, help="depth of the synthetic trees")
    ap.add_argument("--repeat", type=int, default=2, help="synthetic runs per setting, alternating (fastest kept)")
    ap.add_argument("--skip-breast", action="store_true")
    ap.add_argument("--skip-synthetic", action="store_true")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores; Python {sys.version.split()[0]}; "
          f"load average at start {', '.join(f'{v:.2f}' for v in os.getloadavg())}\n")
    if not args.skip_breast:
        breast_case(args)
    if not args.skip_synthetic:
        synthetic_case(args)


if __name__ == "__main__":
    main()
