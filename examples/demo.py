"""`make demo`: upload the example tables, run examples/hetero_lr, print what happened.

Drives the `flow` CLI exactly as a user would, so what it shows is what they get.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
FLOW = [sys.executable, "-m", "flow.cli.main"]


def flow(*args: str, show_progress: bool = False) -> dict:
    proc = subprocess.run([*FLOW, *args], stdout=subprocess.PIPE, stderr=None if show_progress else subprocess.PIPE,
                          text=True)
    out = json.loads(proc.stdout) if proc.stdout.strip() else {"retcode": proc.returncode, "retmsg": proc.stderr}
    if out["retcode"] != 0 and not show_progress:
        sys.exit(f"flow {' '.join(args)} failed: {out['retmsg']}")
    return out


def main() -> None:
    data = ROOT / "data"
    for party, label in (("guest", ["--label-column", "y"]), ("host", [])):
        up = flow("data", "upload", "-f", str(data / f"breast_hetero_{party}.csv"), "--namespace", "experiment",
                  "--name", f"breast_hetero_{party}", "--drop", *label)["data"]  # make demo runs again
        print(f"uploaded experiment/{up['name']}: {up['count']} rows, {len(up['columns'])} columns")
    print("submitting examples/hetero_lr (guest 9999; host and arbiter 10000) ...")
    result = flow("job", "submit", "-c", str(ROOT / "hetero_lr" / "conf.json"),
                  "-d", str(ROOT / "hetero_lr" / "dsl.json"), "--wait", show_progress=True)
    job = result["data"]
    print(f"\njob id: {job['job_id']}   status: {job['status']}")
    for t in job["tasks"]:
        print(f"  {t['component']:<18} {t['role']:<8} {t['party_id']:<6} {t['status']}")
    if job["status"] != "success":
        sys.exit(f"job failed: {job['reason']}")
    metrics = flow("tracking", "metrics", "-j", job["job_id"], "-r", "guest", "-p", "9999",
                   "-cpn", "evaluation_0")["data"]["evaluation"]
    print("\nevaluation_0 (guest 9999): " + ", ".join(
        f"{k}={metrics[k]:.4f}" for k in ("auc", "ks", "accuracy", "precision", "recall", "f1_score")))
    print(f"\nnext: flow job query -j {job['job_id']}  |  flow job logs -j {job['job_id']}  |  "
          f"flow tracking output-model -j {job['job_id']} -r guest -p 9999 -cpn hetero_lr_0")


if __name__ == "__main__":
    main()
