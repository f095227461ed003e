"""FATE's own testsuites (../shared/fate-examples/dsl/<suite>/*_testsuite.json), walked as
``flow suite run`` walks them: every table uploaded with its own upload conf, every task
validated as shipped, every task that validates run and asserted to succeed, and each task
fedweave does not support refused with its one "not supported: …" line (listed below, in one
place, with the reason).

Each suite runs once per pytest session (``suite_run``, tests/fate_examples.py), and to keep
``make test`` in its budget each conf is shrunk before it runs: ``max_iter`` and ``num_trees``
to at most 2, cross-validation to 2 folds and Paillier keys (``encrypt_param``) to 512 bits;
the 30,000-row default_credit tables are uploaded one id in ten (``SAMPLED`` there).
``bench/fate_examples.py`` runs the same suites at FATE's own sizes. That the algorithms' results agree with a
centralised computation is checked on the jobs of the same run by the tests of each module
(test_fate_intersect.py, test_fate_binning.py, ...) and by test_homo_lr_ports.py.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e

#: the nine suites issue 13 covers (HeteroSSHELR and HomoNN follow their modules' issues)
SUITES = ("data_transform", "feature_scale", "hetero_feature_binning", "hetero_feature_selection",
          "hetero_logistic_regression", "hetero_secureboost", "homo_logistic_regression", "intersect", "union")

#: (suite, task) -> the "not supported: …" text its validation must print, and why
REFUSED: dict[tuple[str, str], str] = {
}


@pytest.mark.parametrize("suite", SUITES)
def test_every_task_of_a_fate_suite_succeeds_or_is_refused_as_not_supported(suite_run, suite: str):
    run = suite_run(suite)
    path, report = run.path, run.report
    assert report.tasks, path
    wrong = []
    for result in report.tasks:
        expected = REFUSED.get((suite, result.task))
        if expected is not None:
            ok = result.status == "refused" and expected in result.reason
        else:
            ok = result.status == "success"
        if not ok:
            want = f"refused: {expected}" if expected else "success"
            wrong.append(f"{result.task}: {result.status} (expected {want}) job {result.job_id}: "
                         f"{result.reason[:600]}")
    assert not wrong, "\n".join(wrong)
