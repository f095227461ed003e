"""FATE's own example suites at FATE's own sizes: per suite, tasks validated, succeeded,
refused ("not supported") and failed, and the wall time.

    python bench/fate_examples.py [--examples ../shared/fate-examples] [SUITE ...]

Runs ``flow suite run`` (what ``fate_test suite`` is to FATE) on a fresh home, every task with
the iterations, trees and key sizes its conf ships with; ``make test`` runs the same walk
with them shrunk (tests/e2e/test_fate_suites.py). Default: the nine suites whose modules
fedweave has (HeteroSSHELR and HomoNN suites are named explicitly when wanted).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITES = ("data_transform", "feature_scale", "hetero_feature_binning", "hetero_feature_selection",
          "hetero_logistic_regression", "hetero_secureboost", "homo_logistic_regression", "intersect", "union")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suites", nargs="*", default=list(SUITES))
    parser.add_argument("--examples", type=Path, default=Path(os.environ.get(
        "FEDWEAVE_FATE_EXAMPLES", ROOT.parent / "shared" / "fate-examples")))
    args = parser.parse_args()
    if not (args.examples / "dsl").is_dir():
        sys.exit(f"{args.examples}: no FATE example suites there (--examples or $FEDWEAVE_FATE_EXAMPLES)")
    home = Path(tempfile.mkdtemp(prefix="fate_examples_"))
    cmd = [sys.executable, "-m", "flow.cli.main", "suite", "run"]
    for suite in args.suites:
        cmd += ["-i", str(args.examples / "dsl" / suite)]
    # the per-task lines and the table go to stderr as they come; the JSON to stdout
    proc = subprocess.run(cmd, env=dict(os.environ, FLOW_HOME=str(home)), stdout=subprocess.PIPE, text=True,
                          cwd=ROOT)
    data = json.loads(proc.stdout)["data"] or {}
    rows = data.get("suites", [])
    done = sum(r.get("success", 0) for r in rows)
    total = sum(r["tasks"] for r in rows)
    refused = sum(r.get("refused", 0) for r in rows)
    print(f"\n{done} of {total} tasks succeeded ({100 * done / max(total, 1):.0f}%), {refused} refused as "
          f"not supported, in {sum(r['seconds'] for r in rows):.0f} s; home {home}")
    for r in rows:
        for t in r["results"]:
            if t["status"] != "success":
                first = t["reason"].splitlines()[0] if t["reason"] else ""
                print(f"  {r['suite']}/{t['task']}: {t['status']}: {first}")
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
