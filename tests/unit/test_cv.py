"""Cross-validation (cv_param.need_cv, components/cv.py): the folds, and the k-fold driver
around HomoLR and HeteroLR run by threads over the real wire codec, checked against plain
numpy gradient descent on the same folds and metrics computed here (not components' own)."""

from __future__ import annotations

import logging
import queue
import threading
from collections import defaultdict

import numpy as np
import pydantic
import pytest

from backends.computing.local import LocalSession
from backends.storage.api import TableMeta
from components.base import Context, CVParam, Dataset, Inputs, Instance
from components.cv import agree_folds, assign_folds, fold_digests
from components.linear.hetero_lr import HeteroLR, HeteroLRParams
from components.linear.homo_lr import HomoLR, HomoLRParams
from federation import codec
from federation.api import Federation, Party
from flow.core.errors import ComponentError

GUEST, HOST, ARBITER = Party("guest", "9999"), Party("host", "10000"), Party("arbiter", "10001")
PARTIES = {"guest": [GUEST], "host": [HOST], "arbiter": [ARBITER]}


# ---------------------------------------------------------------- the folds
@pytest.mark.parametrize("n,k", [(10, 3), (569, 3), (846, 5), (7, 7), (100, 4)])
@pytest.mark.parametrize("shuffle", [False, True])
def test_folds_partition_the_ids_in_balanced_sizes(n: int, k: int, shuffle: bool):
    ids = [str(i) for i in range(n)]
    folds = assign_folds(ids, k, shuffle, 103)
    assert sorted(folds) == sorted(ids) and set(folds.values()) == set(range(k))
    sizes = [sum(1 for f in folds.values() if f == i) for i in range(k)]
    assert sum(sizes) == n and max(sizes) - min(sizes) <= 1
    assert sizes == sorted(sizes, reverse=True)  # the first n % k folds hold one more, as KFold


def test_folds_are_the_same_on_every_party_and_follow_the_seed():
    ids = [f"u{i}" for i in range(50)] + [str(i) for i in range(50)]
    rng = np.random.default_rng(0)
    other = list(rng.permutation(ids))  # another party reads its rows in another order
    for shuffle in (False, True):
        assert assign_folds(ids, 4, shuffle, 7) == assign_folds(other, 4, shuffle, 7)
    assert assign_folds(ids, 4, True, 7) != assign_folds(ids, 4, True, 8)
    plain = assign_folds([str(i) for i in range(12)], 3, False, 7)  # no shuffle: natural order, contiguous
    assert [plain[str(i)] for i in range(12)] == [0] * 4 + [1] * 4 + [2] * 4
    assert assign_folds(ids, 4, False, 1) == assign_folds(ids, 4, False, 2)  # the seed only shuffles
    with pytest.raises(ComponentError, match="only 2 samples"):
        assign_folds(["a", "b"], 3, True, 1)


class CannedFederation:
    def __init__(self, answers: dict | None = None):
        self.answers, self.sent = answers or {}, []

    def get(self, name, tag, parties, timeout=None):
        return [codec.decode(codec.encode(self.answers[name]))]

    def remote(self, obj, name, tag, parties):
        self.sent.append((name, codec.decode(codec.encode(obj)), list(parties)))


def _ctx(local: Party, federation, tracker=None, session=None) -> Context:
    return Context(job_id="j", component="cpn_0", local=local, parties=PARTIES, computing=session,
                   federation=federation, storage=None, tracker=tracker, logger=logging.getLogger("cv-test"))


def test_hosts_take_the_guests_seed_and_refuse_other_ids():
    cv = CVParam(need_cv=True, n_splits=3, shuffle=True, random_seed=None)
    ids = [str(i) for i in range(30)]
    guest_fed = CannedFederation()
    guest_folds = agree_folds(_ctx(GUEST, guest_fed), cv, ids, horizontal=False)
    ((name, plan, to),) = guest_fed.sent
    assert name == "cv_folds" and to == [HOST] and set(plan) == {"n_splits", "shuffle", "seed", "digests"}
    assert plan["digests"] == fold_digests(guest_folds, 3)
    host_folds = agree_folds(_ctx(HOST, CannedFederation({"cv_folds": plan})), cv, list(reversed(ids)), False)
    assert host_folds == guest_folds  # the guest's drawn seed, not one of its own
    with pytest.raises(ComponentError, match="differ from the guest's.*Intersection"):
        agree_folds(_ctx(HOST, CannedFederation({"cv_folds": plan})), cv, ids + ["30"], False)
    with pytest.raises(ComponentError, match="n_splits/shuffle"):
        agree_folds(_ctx(HOST, CannedFederation({"cv_folds": plan})), cv.model_copy(update={"n_splits": 4}),
                    ids, False)


def test_cv_param_has_fates_fields():
    p = HeteroLRParams.model_validate({"cv_param": {"n_splits": 3, "shuffle": False, "random_seed": 103,
                                                    "need_cv": True}})
    assert p.cv_param.need_cv and p.cv_param.n_splits == 3 and p.cv_param.output_fold_history
    assert p.inert_settings() == [] and p.notices() == {}
    assert CVParam(history_with_value=True).value_type == "instance"
    told = HomoLRParams.model_validate({"cv_param": {"need_cv": True, "evaluate_param": {"eval_type": "binary"}}})
    assert list(told.notices()) == ["cv_param.evaluate_param"]
    for bad in ({"need_cv": True, "n_splits": 1}, {"n_splits": "3"}, {"data_split_param": {}},
                {"history_value_type": "value"}):
        with pytest.raises(pydantic.ValidationError):
            HeteroLRParams.model_validate({"cv_param": bad})


# ---------------------------------------------------------------- the driver, federated
class MemoryFederation(Federation):
    def __init__(self, hub: dict, local: Party, failed: list, session):
        super().__init__("job", local)
        self.hub, self.failed, self.session = hub, failed, session

    def _queue(self, name, tag, src, dst) -> queue.Queue:
        """One queue per (name, tag, sender, receiver); setdefault, as a defaultdict's lookup is
        not atomic: a receiver polling a key while its sender first writes it could each make
        a queue, and the receiver's would replace the one holding the message."""
        return self.hub.setdefault((name, tag, src, dst), queue.Queue())

    @classmethod
    def from_conf(cls, *args, **kwargs):  # pragma: no cover - not used
        raise NotImplementedError

    def remote(self, obj, name, tag, parties):
        for p in parties:
            self._queue(name, tag, self.local, p).put(codec.encode(obj))

    def get(self, name, tag, parties, timeout=None):
        out = []
        for p in parties:
            for _ in range(1200):
                if self.failed:
                    raise AssertionError(f"{self.local}: a peer failed while waiting for {name}")
                try:
                    out.append(codec.decode(self._queue(name, tag, p, self.local).get(timeout=0.1), self.session))
                    break
                except queue.Empty:
                    continue
            else:
                raise AssertionError(f"{self.local} waited 120 s for {name}/{tag}")
        return out

    def abort(self, reason, parties):
        pass

    def close(self):
        pass

    def cleanup(self):
        pass


class Tracker:
    def __init__(self):
        self.metrics: dict[tuple[str, str], object] = {}

    def log_metric(self, namespace, name, value):
        self.metrics[(namespace, name)] = value

    def progress(self, done, total, message=""):
        assert 0 <= done <= total


def run_parties(component, params, data: dict[str, tuple], same_columns: bool = False):
    """Every party of PARTIES in a thread; ``data``: role -> (ids, x, y or None); returns
    ({role: Outputs}, {role: Tracker})."""
    hub, errors, results, trackers = defaultdict(queue.Queue), [], {}, {}
    sessions = {role: LocalSession(partitions=2, workers=1) for role in PARTIES}

    def one(role: str, party: Party):
        try:
            inputs = Inputs()
            if role in data:
                ids, x, y = data[role]
                rows = [(k, Instance(x[i], None if y is None else float(y[i]))) for i, k in enumerate(ids)]
                prefix = "x" if same_columns else role
                cols = ([] if y is None else ["y"]) + [f"{prefix}_{j}" for j in range(x.shape[1])]
                meta = TableMeta(namespace="t", name=role, columns=cols, label_column=None if y is None else "y",
                                 extra={"kind": "instances"})
                inputs = Inputs(data={"train_data": Dataset(sessions[role].parallelize(rows), meta)})
            trackers[role] = Tracker()
            ctx = _ctx(party, MemoryFederation(hub, party, errors, sessions[role]), trackers[role], sessions[role])
            results[role] = component.run(ctx, params, inputs)
        except Exception as exc:  # noqa: BLE001 - re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(role, ps[0])) for role, ps in PARTIES.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    for s in sessions.values():
        s.stop()
    if errors:
        raise errors[0]
    return results, trackers


def auc(y: np.ndarray, s: np.ndarray) -> float:
    """Probability that a positive scores above a negative (ties count half)."""
    pos, neg = s[y == 1], s[y == 0]
    return float(((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum())
                 / (len(pos) * len(neg)))


def ks(y: np.ndarray, s: np.ndarray) -> float:
    return max(float(np.mean(s[y == 1] >= t) - np.mean(s[y == 0] >= t)) for t in np.unique(s))


def _data(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = (x @ rng.normal(size=d) + rng.normal(scale=0.8, size=n) > 0).astype(float)
    return x, y


def _check_summary(tracker: Tracker, k: int, names: list[str]) -> None:
    for kind in ("train", "validate"):
        for name in names:
            per_fold = [tracker.metrics[(f"{kind}_fold_{i}", name)] for i in range(k)]
            assert tracker.metrics[(f"{kind}_mean", name)] == pytest.approx(np.mean(per_fold), abs=1e-12)
    assert not any(ns == f"validate_fold_{k}" for ns, _ in tracker.metrics)  # exactly k folds


LINEAR = {"optimizer": "sgd", "learning_rate": 0.5, "decay": 0.0, "penalty": "none", "max_iter": 4, "tol": 0.0,
          "batch_size": -1, "init_param": {"init_method": "zeros"}}


def test_homo_lr_cv_matches_plain_gradient_descent_on_the_same_folds():
    """HomoLR with full batches and plain SGD is gradient descent on the pooled rows: per fold,
    the pooled other folds of both parties train it; each party's held-out fold scores it."""
    k = 3
    params = HomoLRParams.model_validate({**LINEAR, "cv_param": {"need_cv": True, "n_splits": k, "shuffle": True,
                                                                   "random_seed": 5}})
    xg, yg = _data(45, 3, 1)
    xh, yh = _data(39, 3, 2)
    ids = {"guest": [f"g{i}" for i in range(45)], "host": [f"h{i}" for i in range(39)]}
    data = {"guest": (ids["guest"], xg, yg), "host": (ids["host"], xh, yh)}
    results, trackers = run_parties(HomoLR(), params, data, same_columns=True)
    folds = {role: assign_folds(ids[role], k, True, 5) for role in data}
    for i in range(k):
        masks = {role: np.array([folds[role][key] == i for key in ids[role]]) for role in data}
        x = np.vstack([np.c_[data[r][1], np.ones(len(ids[r]))][~masks[r]] for r in data])
        y = np.concatenate([data[r][2][~masks[r]] for r in data])
        w = np.zeros(4)
        for _ in range(LINEAR["max_iter"]):
            w = w - 0.5 * x.T @ (1 / (1 + np.exp(-x @ w)) - y) / len(y)
        for role in data:
            xr, yr = np.c_[data[role][1], np.ones(len(ids[role]))], data[role][2]
            score = 1 / (1 + np.exp(-xr @ w))
            m = trackers[role].metrics
            for kind, sel in (("train", ~masks[role]), ("validate", masks[role])):
                assert m[(f"{kind}_fold_{i}", "auc")] == pytest.approx(auc(yr[sel], score[sel]), abs=1e-9)
                assert m[(f"{kind}_fold_{i}", "ks")] == pytest.approx(ks(yr[sel], score[sel]), abs=1e-9)
    for role in data:  # horizontally every party evaluates its own folds
        _check_summary(trackers[role], k, ["auc", "ks"])
        assert results[role].model is None
        (history,) = results[role].data
        keys = {key for key, _ in history.table.collect()}
        assert keys == {f"{key}#fold{f}#{kind}" for key in ids[role] for f in range(k)
                        for kind in ("train", "validate") if (folds[role][key] == f) == (kind == "validate")}
    assert results["arbiter"].model is None and ("fold_2.train", "loss") in trackers["arbiter"].metrics


def test_hetero_lr_cv_matches_plain_taylor_descent_on_the_same_folds():
    """HeteroLR descends the second-order Taylor loss: gradient X^T(s/4 - t/2)/n, t = 2y - 1,
    over the guest's and the host's columns joined; the folds are the same on both parties."""
    k, n = 3, 48
    params = HeteroLRParams.model_validate({
        **LINEAR, "max_iter": 2, "encrypt_param": {"key_length": 512, "allow_short_key": True},
        "cv_param": {"need_cv": True, "n_splits": k, "shuffle": False}, "metrics": ["auc", "accuracy"]})
    x, y = _data(n, 4, 3)
    ids = [str(i) for i in range(n)]
    results, trackers = run_parties(HeteroLR(), params, {"guest": (ids, x[:, :2], y), "host": (ids, x[:, 2:], None)})
    folds = assign_folds(ids, k, False, None)
    xa = np.c_[x, np.ones(n)]
    m = trackers["guest"].metrics
    for i in range(k):
        held = np.array([folds[key] == i for key in ids])
        assert held.sum() == n // k and np.flatnonzero(held).tolist() == list(range(16 * i, 16 * i + 16))
        w = np.zeros(5)
        for _ in range(2):
            xt, t = xa[~held], 2 * y[~held] - 1
            w = w - 0.5 * xt.T @ (0.25 * (xt @ w) - 0.5 * t) / len(t)
        score = 1 / (1 + np.exp(-xa @ w))
        for kind, sel in (("train", ~held), ("validate", held)):
            assert m[(f"{kind}_fold_{i}", "auc")] == pytest.approx(auc(y[sel], score[sel]), abs=1e-9)
            assert m[(f"{kind}_fold_{i}", "accuracy")] == pytest.approx(np.mean((score[sel] >= 0.5) == y[sel]))
    _check_summary(trackers["guest"], k, ["auc", "accuracy"])
    assert not any(ns.endswith("_fold_0") for ns, _ in trackers["host"].metrics)  # hosts hold no labels
    host_history = dict(results["host"].data[0].table.collect())
    assert {key: inst.features[0] for key, inst in host_history.items()} == {
        f"{key}#fold{f}#{kind}": float(f) for key in ids for f in range(k) for kind in ("train", "validate")
        if (folds[key] == f) == (kind == "validate")}
    assert all(r.model is None for r in results.values())
