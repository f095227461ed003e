"""fedweave beside FATE 2.2 on the same data, in the same run: whole-job seconds, AUC, ratio.

    python bench/fate_compare.py [--only breast_lr,psi_200k,...] [--skip-large]
    FEDWEAVE_BENCH_FATE=DIR python bench/fate_compare.py     # DIR: ../shared/peers/fate/setup.sh DIR

Each case runs one FATE pipeline (``../shared/peers/fate/run_fate.py``: its ``fit_wall_s``, a
whole job) and the fedweave job with the same model settings through the real ``flow`` CLI
(``flow job submit --wait``: submit to success), on the very same CSV files: the breast split
of examples/data (z-scored, as fedweave's examples use it), and synthetic sets written here
(a noisy logistic label over 20 guest + 80 host columns; PSI sets share 60 % of their ids).
Uploads are not timed on either side. Without FEDWEAVE_BENCH_FATE only fedweave's figures
are printed and no ratio: a ratio means something only when both ran in the same run (the
same FATE job has taken 76 s and 159 s on two days on the same machine kind).

Settings of both sides (FATE's from run_fate.py): LR full batch, SGD, learning rate 0.15, L2
0.001, zeros, Paillier 1024, standard scaling, diff early stop at 1e-4; SecureBoost depth 3,
32 bins, learning rate 0.3, Paillier 1024; SSHE-LR full batch, learning rate 0.15; PSI ECDH.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from _jobs import ROOT, flow, guest_auc, party_peaks, submit, training_seconds

PEER = Path(os.environ.get("FEDWEAVE_FATE_PEER", ROOT.parent / "shared" / "peers" / "fate"))
RESULT = re.compile(r"^RESULT job=\S+ n=\d+ data=\S+ fit_wall_s=([0-9.]+) auc=(\S+)$", re.M)
EXAMPLE = {"lr": ("hetero_lr", "hetero_lr_0"), "sbt": ("hetero_secureboost", "hetero_secureboost_0"),
           "sshe": ("hetero_sshe_lr", "hetero_sshe_lr_0")}


@dataclass(frozen=True)
class Case:
    key: str
    title: str
    data: str   # data set name: files bench/<data>_{guest,host}.csv in the work folder
    job: str    # lr | sbt | sshe | psi (run_fate.py's names)
    n: int      # epochs or trees
    large: bool = False
    method: str = ""  # fedweave's encrypt_param.method or intersect_method ("": the example's, as FATE's side)


CASES = [
    Case("breast_lr", "breast LR 20 epochs (Paillier 1024)", "breast", "lr", 20),
    Case("breast_sbt", "breast SecureBoost 5 trees depth 3", "breast", "sbt", 5),
    Case("breast_sshe", "breast SSHE-LR 20 epochs", "breast", "sshe", 20),
    Case("psi_200k", "PSI 200,000 x 200,000 ids (ECDH, 120,000 shared)", "psi200k", "psi", 0),
    Case("syn20k_lr", "20,000 x (20 + 80) LR 2 epochs", "syn20k", "lr", 2, large=True),
    Case("syn20k_sbt", "20,000 x (20 + 80) SecureBoost 3 trees depth 3", "syn20k", "sbt", 3, large=True),
    Case("breast_lr_ckks", "breast LR 20 epochs (fedweave CKKS)", "breast", "lr", 20, method="ckks"),
    Case("breast_lr_ou", "breast LR 20 epochs (fedweave OU 1024)", "breast", "lr", 20, method="ou"),
    Case("breast_sbt_ou", "breast SecureBoost 5 trees depth 3 (fedweave OU 1024)", "breast", "sbt", 5, method="ou"),
    Case("syn20k_lr_ckks", "20,000 x (20 + 80) LR 2 epochs (fedweave CKKS)", "syn20k", "lr", 2, large=True,
         method="ckks"),
    Case("syn100k_lr", "100,000 x (20 + 80) LR 1 epoch", "syn100k", "lr", 1, large=True),
    Case("syn100k_lr_ckks", "100,000 x (20 + 80) LR 1 epoch (fedweave CKKS)", "syn100k", "lr", 1, large=True,
         method="ckks"),
    Case("syn100k_sshe", "100,000 x (20 + 80) SSHE-LR 1 epoch", "syn100k", "sshe", 1, large=True),
    Case("syn100k_sbt", "100,000 x (10 + 50) SecureBoost 3 trees depth 3", "syn100k60", "sbt", 3, large=True),
    Case("syn100k_sbt_ou", "100,000 x (10 + 50) SecureBoost 3 trees depth 3 (fedweave OU 1024)", "syn100k60", "sbt",
         3, large=True, method="ou"),
    Case("psi_1m", "PSI 1,000,000 x 1,000,000 ids (ECDH, 600,000 shared)", "psi1m", "psi", 0, large=True),
    Case("psi_200k_kkrt", "PSI 200,000 x 200,000 ids (fedweave OT-based)", "psi200k", "psi", 0, method="kkrt"),
    Case("psi_1m_kkrt", "PSI 1,000,000 x 1,000,000 ids (fedweave OT-based)", "psi1m", "psi", 0, large=True,
         method="kkrt"),
]


# ------------------------------------------------------------------ data

def _write(path: Path, header: list[str], rows: list[list[object]]) -> None:
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(header)
        out.writerows(rows)


def write_vertical(folder: Path, name: str, rows: int, guest_cols: int = 20, host_cols: int = 80,
                   seed: int = 3) -> None:
    """N rows x (guest_cols + host_cols) columns, a noisy logistic label on the guest."""
    rng = np.random.default_rng(seed)
    width = guest_cols + host_cols
    x = np.round(rng.normal(size=(rows, width)), 6)
    y = (rng.uniform(size=rows) < 1 / (1 + np.exp(-(x @ (rng.normal(size=width) / 10))))).astype(int)
    ids = [f"r{i}" for i in range(rows)]
    _write(folder / f"{name}_guest.csv", ["id", "y"] + [f"g{i}" for i in range(guest_cols)],
           [[ids[i], y[i], *x[i, :guest_cols]] for i in range(rows)])
    _write(folder / f"{name}_host.csv", ["id"] + [f"h{i}" for i in range(host_cols)],
           [[ids[i], *x[i, guest_cols:]] for i in range(rows)])


def write_psi(folder: Path, name: str, rows: int, shared: float = 0.6, seed: int = 4) -> None:
    """Two id sets of ``rows`` ids each, ``shared`` of them common, one feature per side."""
    rng = np.random.default_rng(seed)
    common = int(rows * shared)
    guest = [f"u{i}" for i in range(rows)]
    host = guest[:common] + [f"v{i}" for i in range(rows - common)]
    _write(folder / f"{name}_guest.csv", ["id", "y", "g0"],
           [[k, int(rng.integers(2)), round(float(v), 6)] for k, v in zip(guest, rng.normal(size=rows))])
    _write(folder / f"{name}_host.csv", ["id", "h0"],
           [[k, round(float(v), 6)] for k, v in zip(host, rng.normal(size=rows))])


WRITERS: dict[str, Callable[[Path, str], None]] = {
    "psi200k": lambda folder, name: write_psi(folder, name, 200_000),
    "psi1m": lambda folder, name: write_psi(folder, name, 1_000_000),
    "syn100k60": lambda folder, name: write_vertical(folder, name, 100_000, 10, 50),
    "syn20k": lambda folder, name: write_vertical(folder, name, 20_000),
    "syn100k": lambda folder, name: write_vertical(folder, name, 100_000),
}


def data_files(folder: Path, name: str) -> tuple[Path, Path]:
    if name == "breast":
        data = ROOT / "examples" / "data"
        return data / "breast_hetero_guest.csv", data / "breast_hetero_host.csv"
    guest, host = folder / f"{name}_guest.csv", folder / f"{name}_host.csv"
    if not guest.is_file():
        WRITERS[name](folder, name)
    return guest, host


# ------------------------------------------------------------------ fedweave

def fedweave_job(case: Case) -> tuple[dict, dict]:
    """The shipped example of the case's model, its settings aligned with run_fate.py's."""
    example, cpn = EXAMPLE.get(case.job, EXAMPLE["lr"])
    conf = json.loads((ROOT / "examples" / example / "conf.json").read_text())
    dsl = json.loads((ROOT / "examples" / example / "dsl.json").read_text())
    conf["job_parameters"]["common"]["timeout"] = 36000
    for role, table in (("guest", f"{case.data}_guest"), ("host", f"{case.data}_host")):
        conf["component_parameters"]["role"][role]["0"]["reader_0"]["table"] = {"namespace": "bench", "name": table}
    common = conf["component_parameters"]["common"]
    if case.job == "psi":  # Reader -> DataTransform -> Intersection, as FATE's Reader -> PSI
        keep = ("reader_0", "data_transform_0", "intersection_0")
        dsl = {"components": {k: v for k, v in dsl["components"].items() if k in keep}}
        conf["role"].pop("arbiter", None)
        for key in list(common):
            if key not in keep:
                common.pop(key)
        conf["component_parameters"]["role"]["host"]["0"].pop("evaluation_0", None)
        if case.method:
            common["intersection_0"] = {**common.get("intersection_0", {}), "intersect_method": case.method}
    elif case.job == "lr":
        common[cpn].update(max_iter=case.n, alpha=0.001)
        common[cpn]["encrypt_param"] = {**common[cpn].get("encrypt_param", {}), "method": case.method or "paillier"}
    elif case.job == "sshe":
        common[cpn].update(max_iter=case.n)
    else:
        common[cpn].update(num_trees=case.n)
        if case.method:
            common[cpn]["encrypt_param"] = {**common[cpn].get("encrypt_param", {}), "method": case.method}
    return conf, dsl


def upload_fedweave(home: Path, name: str, guest: Path, host: Path) -> None:
    flow(home, "data", "upload", "-f", guest, "--namespace", "bench", "--name", f"{name}_guest",
         "--label-column", "y")
    flow(home, "data", "upload", "-f", host, "--namespace", "bench", "--name", f"{name}_host")


def run_fedweave(home: Path, case: Case) -> tuple[float, float | None]:
    conf, dsl = fedweave_job(case)
    job, wall = submit(home, conf, dsl)
    if case.job == "psi":  # the issue asks for PSI's memory beside its time
        peaks = party_peaks(home, job)
        print("    peak memory per party: " + (", ".join(f"{p} {m}" for p, m in peaks.items()) or "not logged"))
    if case.job == "lr" and (epoch := training_seconds(home, job, EXAMPLE["lr"][1])) is not None:
        print(f"    fedweave {case.method or 'paillier'}: {epoch:.2f} s per epoch (the guest's training loop)")
    return wall, (guest_auc(home, job) if case.job != "psi" else None)


# ------------------------------------------------------------------ FATE

class Fate:
    """FATE 2.2 installed by ../shared/peers/fate/setup.sh in ``folder``; uploads each set once."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.python = folder / "venv-fate" / "bin" / "python"
        if not self.python.is_file():
            sys.exit(f"FEDWEAVE_BENCH_FATE={folder}: no {self.python} (run {PEER}/setup.sh {folder} first)")

    def upload(self, name: str, guest: Path, host: Path) -> None:
        mark = self.folder / f"fedweave_uploaded_{name}"
        stamp = f"{guest.stat().st_size} {host.stat().st_size}"
        if mark.is_file() and mark.read_text() == stamp:
            return
        proc = subprocess.run(["bash", str(PEER / "upload.sh"), str(self.folder), str(guest), str(host),
                               f"fw_{name}"], capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"FATE upload of {name} failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-2000:]}")
        time.sleep(10)  # FATE's uploads run as jobs: let them end before a pipeline reads
        mark.write_text(stamp)

    def run(self, case: Case) -> tuple[float, float | None]:
        cmd = [str(self.python), str(PEER / "run_fate.py"), case.job, str(case.n or 1), f"fw_{case.data}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        found = RESULT.search(proc.stdout)
        if proc.returncode != 0 or found is None:
            sys.exit(f"FATE's {' '.join(cmd[1:])} gave no RESULT line (exit {proc.returncode}):\n"
                     f"{(proc.stdout + proc.stderr)[-2000:]}")
        auc = None if found.group(2) == "None" else float(found.group(2))
        return float(found.group(1)), auc


# ------------------------------------------------------------------ table

def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated case keys: " + ", ".join(c.key for c in CASES))
    ap.add_argument("--skip-large", action="store_true", help="leave out the cases of 20,000 rows and more")
    ap.add_argument("--work", default="", help="folder for the synthetic CSVs (default: a temporary one)")
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    chosen = [c for c in CASES if (not only or c.key in only) and not (args.skip_large and c.large)]
    if not chosen:
        sys.exit(f"--only {args.only!r} names no case; cases: {', '.join(c.key for c in CASES)}")
    fate_dir = os.environ.get("FEDWEAVE_BENCH_FATE")
    fate = Fate(Path(fate_dir).resolve()) if fate_dir else None
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"Python {sys.version.split()[0]}; FATE: {fate.folder if fate else 'not run (set FEDWEAVE_BENCH_FATE=DIR)'}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        home = Path(tmp) / "home"
        home.mkdir()
        uploaded: set[str] = set()
        fate_runs: dict[tuple, tuple[float, float | None]] = {}  # one FATE run per job, data and size
        for case in chosen:
            guest, host = data_files(work, case.data)
            if case.data not in uploaded:
                upload_fedweave(home, case.data, guest, host)
                if fate:
                    fate.upload(case.data, guest, host)
                uploaded.add(case.data)
            fw_s, fw_auc = run_fedweave(home, case)
            key = (case.job, case.n, case.data)
            if fate and key not in fate_runs:
                fate_runs[key] = fate.run(case)
            fate_s, fate_auc = fate_runs.get(key, (None, None))
            ratio = f"{fate_s / fw_s:.1f}x" if fate_s else "-"
            rows.append((case.title, fate_s, fate_auc, fw_s, fw_auc, ratio))
            print(f"  {case.title}: FATE {_fmt(fate_s, '.1f')} s (AUC {_fmt(fate_auc, '.4f')}), "
                  f"fedweave {fw_s:.1f} s (AUC {_fmt(fw_auc, '.4f')}), ratio {ratio}", flush=True)
    print()
    print("| job | FATE 2.2 | fedweave | FATE / fedweave |\n|---|---|---|---|")
    for title, fate_s, fate_auc, fw_s, fw_auc, ratio in rows:
        fate_cell = "not run" if fate_s is None else f"{fate_s:.1f} s" + (f", AUC {fate_auc:.4f}" if fate_auc else "")
        print(f"| {title} | {fate_cell} | {fw_s:.1f} s" + (f", AUC {fw_auc:.4f}" if fw_auc else "") + f" | {ratio} |")


if __name__ == "__main__":
    main()
