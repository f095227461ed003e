"""HeteroSecureBoost's guest and host talking through the real wire codec (in memory, threads),
checked against the same boosting computed centrally in plain numpy on the joined columns
(its own loss derivatives, gain and binning: nothing of components.tree's maths)."""

from __future__ import annotations

import logging
import queue
import sys
import threading
import traceback
from collections import defaultdict

import numpy as np
import pytest

from backends.computing.local import LocalSession
from backends.storage.api import TableMeta
from components.base import Context, Dataset, Inputs, Instance
from components.tree.hetero_secureboost import HeteroSecureBoost
from components.tree.params import HeteroSecureBoostParams
from federation import codec
from federation.api import Federation, Party
from flow.core.errors import ComponentError

GUEST, HOST = Party("guest", "9999"), Party("host", "10000")


class MemoryFederation(Federation):
    """Every object goes through encode/decode, as between real parties."""

    def __init__(self, hub: dict, local: Party, failed: list):
        super().__init__("job", local)
        self.hub, self.failed = hub, failed

    @classmethod
    def from_conf(cls, *args, **kwargs):  # pragma: no cover - not used
        raise NotImplementedError

    def _queue(self, name, tag, src, dst) -> queue.Queue:
        """One queue per (name, tag, sender, receiver); setdefault, as a defaultdict's lookup is
        not atomic: a receiver polling a key while its sender first writes it could each make
        a queue, and the receiver's would replace the one holding the message."""
        return self.hub.setdefault((name, tag, src, dst), queue.Queue())

    def remote(self, obj, name, tag, parties):
        data = codec.encode(obj)
        for p in parties:
            self._queue(name, tag, self.local, p).put(data)

    def get(self, name, tag, parties, timeout=None):
        out = []
        for p in parties:
            for _ in range(600):
                if self.failed:  # a peer failed: stop waiting, as PeerFailed would
                    raise AssertionError(f"{self.local}: a peer failed while waiting for {name}")
                try:
                    out.append(codec.decode(self._queue(name, tag, p, self.local).get(timeout=0.1)))
                    break
                except queue.Empty:
                    continue
            else:
                stacks = "\n".join("".join(traceback.format_stack(f)) for f in sys._current_frames().values())
                raise AssertionError(f"{self.local} waited 60 s for {name}/{tag}; threads:\n{stacks}")
        return out

    def abort(self, reason, parties):
        pass

    def close(self):
        pass

    def cleanup(self):
        pass


class Tracker:
    def __init__(self):
        self.metrics = {}

    def log_metric(self, namespace, name, value):
        self.metrics[(namespace, name)] = value

    def progress(self, done, total, message=""):
        pass


def run_parties(guest_x, host_x, y, params: dict, model: tuple | None = None, validate: tuple | None = None):
    """Run every party's share in threads (``host_x``: one array or a list, one per host);
    returns ({"guest" / "host" / "host1"...: Outputs}, guest tracker)."""
    host_xs = host_x if isinstance(host_x, list) else [host_x]
    hosts = [Party("host", str(10000 + k)) for k in range(len(host_xs))]
    names = ["host"] if len(hosts) == 1 else [f"host{k}" for k in range(len(hosts))]
    hub = defaultdict(queue.Queue)
    sessions = {name: LocalSession(partitions=3, workers=1) for name in ["guest", *names]}
    parties = {"guest": [GUEST], "host": hosts}
    p = HeteroSecureBoostParams.model_validate(params)
    results, errors, trackers = {}, [], {}

    def dataset(name, x, labels):
        ids = [f"id{i:04d}" for i in range(len(x))]
        rows = [(k, Instance(x[i], None if labels is None else float(labels[i]))) for i, k in enumerate(ids)]
        tag = name[0] + (name[4:] if name.startswith("host") else "")  # g, h, h0, h1
        cols = ([] if labels is None else ["y"]) + [f"{tag}_{j}" for j in range(x.shape[1])]
        meta = TableMeta(namespace="t", name=name, columns=cols, label_column=None if labels is None else "y")
        return Dataset(sessions[name].parallelize(rows), meta)

    def one(name, party, x, labels, own_model, valid):
        try:
            port = "test_data" if own_model is not None else "train_data"
            session = sessions[name]
            data = {port: dataset(name, x, labels)}
            if valid is not None:
                data["validate_data"] = dataset(name, *valid)
            inputs = Inputs(data=data, model=[] if own_model is None else [own_model])
            trackers[name] = Tracker()
            ctx = Context("job", "sbt_0", party, parties, session, MemoryFederation(hub, party, errors), None,
                          trackers[name], logging.getLogger("sbt-test"))
            results[name] = HeteroSecureBoost().run(ctx, p, inputs)
        except Exception as exc:  # noqa: BLE001 - re-raised in the test thread
            errors.append(exc)

    models = model or [None] * (1 + len(hosts))
    valid = [None] * (1 + len(hosts))
    if validate is not None:
        vx = validate[1] if isinstance(validate[1], list) else [validate[1]]
        valid = [(validate[0], validate[2])] + [(v, None) for v in vx]
    threads = [threading.Thread(target=one, args=("guest", GUEST, guest_x, y, models[0], valid[0]))]
    threads += [threading.Thread(target=one, args=(name, h, x, None, m, v))
                for name, h, x, m, v in zip(names, hosts, host_xs, models[1:], valid[1:])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for session in sessions.values():
        session.stop()
    if errors:
        raise errors[0]
    return results, trackers["guest"]


def predictions(outputs) -> dict[str, np.ndarray]:
    return {k: inst.features for k, inst in outputs.data[0].table.collect()}


def quantile_bins(col: np.ndarray, n: int) -> np.ndarray:
    """A column's candidate thresholds: its 1/n, 2/n, .., n/n quantiles (duplicates merged)."""
    return np.unique(np.quantile(col, np.arange(1, n + 1) / n))


def central_boost(x: np.ndarray, y: np.ndarray, p: dict, importance: dict | None = None) -> np.ndarray:
    """The same boosting on the joined columns, computed in one place with nothing of
    components.tree: the losses' gradients and hessians, start scores, XGBoost's gain and leaf
    weight and the quantile thresholds are written out below, and every candidate split is
    scored from the rows it sends left (no histograms). At every node the best threshold of all
    columns wins (the first of equal gains: the same partition). Each party cuts its columns at
    their own quantiles: per column, the same thresholds as in the joined table.
    ``importance`` collects column -> [splits, summed gain]."""
    params = HeteroSecureBoostParams.model_validate(p)
    tp = params.tree_param
    # what this reference covers: L2 only, no minimum child weight, one row per leaf at least
    assert len(tp.criterion_param) == 1 and params.min_child_weight is None and tp.min_child_weight == 0
    assert tp.min_leaf_node == 1 and tp.min_sample_split == 2 and params.max_depth is None
    lam = params.l2 if params.l2 is not None else tp.criterion_param[0]
    min_gain, depth_max, lr = tp.min_impurity_split, tp.max_depth, params.learning_rate
    classes = np.unique(y)
    task = params.task if params.task != "classification" else ("binary" if len(classes) == 2 else "multiclass")
    n, k_dim = len(y), (len(classes) if task == "multiclass" else 1)
    if task == "regression":
        yy = y.astype(float)
        start = np.array([yy.mean()])

        def grad_hess(f):  # ½ (f - y)²
            return (f[:, 0] - yy)[:, None], np.ones((n, 1))

        def loss(f):
            return np.mean((f[:, 0] - yy) ** 2)

        def output(f):
            return f[:, 0]
    else:
        idx = np.searchsorted(classes, y)
        onehot = (idx[:, None] == np.arange(len(classes))[None, :]).astype(float)
        if task == "binary":
            rate = idx.mean()
            start = np.array([np.log(rate / (1 - rate))])

            def probs(f):
                q = 1.0 / (1.0 + np.exp(-f[:, 0]))
                return np.stack([1 - q, q], axis=1)

            def grad_hess(f):  # log loss of sigmoid(f)
                q = probs(f)[:, 1]
                return (q - idx)[:, None], (q * (1 - q))[:, None]
        else:
            start = np.log(onehot.mean(axis=0))

            def probs(f):
                e = np.exp(f - f.max(axis=1, keepdims=True))
                return e / e.sum(axis=1, keepdims=True)

            def grad_hess(f):  # multinomial log loss of softmax(f), diagonal hessian
                q = probs(f)
                return q - onehot, q * (1 - q)

        def loss(f):
            return -np.mean(np.log(probs(f)[np.arange(n), idx]))

        output = probs

    def leaf(g_sum, h_sum):
        return -g_sum / (h_sum + lam)

    def gain(gl, hl, gr, hr):
        return gl ** 2 / (hl + lam) + gr ** 2 / (hr + lam) - (gl + gr) ** 2 / (hl + hr + lam)

    thresholds = [quantile_bins(x[:, j], params.bins) for j in range(x.shape[1])]
    scores = np.tile(start, (n, 1))
    losses: list[float] = []
    for _ in range(params.num_trees):
        if params.n_iter_no_change and len(losses) > 1 and abs(losses[-2] - losses[-1]) < params.tol:
            break
        g_all, h_all = grad_hess(scores)
        for k in range(k_dim):
            g, h = g_all[:, k], h_all[:, k]
            frontier, out = [np.arange(n)], np.zeros(n)
            for depth in range(depth_max + 1):
                nxt = []
                for rows in frontier:
                    out[rows] = leaf(g[rows].sum(), h[rows].sum())
                    if depth == depth_max or len(rows) < 2:
                        continue
                    best, where = min_gain, None
                    for f in range(x.shape[1]):
                        for t in thresholds[f]:
                            go = x[rows, f] <= t
                            if go.all() or not go.any():
                                continue
                            gn = gain(g[rows][go].sum(), h[rows][go].sum(), g[rows][~go].sum(), h[rows][~go].sum())
                            if gn > best:
                                best, where = gn, (f, t)
                    if where is not None:
                        if importance is not None:
                            entry = importance.setdefault(where[0], [0, 0.0])
                            entry[0], entry[1] = entry[0] + 1, entry[1] + best
                        go = x[rows, where[0]] <= where[1]
                        nxt += [rows[go], rows[~go]]
                frontier = nxt
            scores[:, k] += lr * out
        losses.append(loss(scores))
    return output(scores)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(160, 7))
    logit = 1.5 * x[:, 0] - 2.0 * x[:, 4] + x[:, 5] * x[:, 1]
    return x, (logit + 0.3 * rng.normal(size=160) > 0).astype(float)


BASE = {"num_trees": 3, "learning_rate": 0.3, "bin_num": 16,
        "encrypt_param": {"key_length": 512, "allow_short_key": True},
        "tree_param": {"max_depth": 3, "criterion_param": [0.1]}}


def test_binary_equals_central_and_predict_mode_reproduces(data):
    x, y = data
    out, tracker = run_parties(x[:, :3], x[:, 3:], y, BASE)
    got = predictions(out["guest"])
    central: dict = {}
    ref = central_boost(x, y, BASE, central)[:, 1]
    score = np.array([got[f"id{i:04d}"][1] for i in range(len(y))])
    np.testing.assert_allclose(score, ref, atol=1e-9)
    guest_model, host_model = out["guest"].model, out["host"].model
    owners = {n["party"] for t in guest_model["trees"] for n in t["nodes"]} - {None}
    assert owners == {"guest", "10000"}  # both parties won splits
    host_thr = {s["threshold"] for s in host_model["splits"]}
    assert host_thr and not host_thr & {s["threshold"] for s in guest_model["splits"]}
    assert all(s["feature"].startswith("h_") for s in host_model["splits"])
    assert all(s["feature"].startswith("g_") for s in guest_model["splits"])
    assert len(tracker.metrics[("train", "loss")]) == 3
    check_importance(out["guest"].model, {"10000": (host_model, 3, 7)}, central, guest_cols=3)
    # predict mode: the stored models, the walk across parties, the same scores
    again, _ = run_parties(x[:, :3], x[:, 3:], y, BASE, model=(guest_model, host_model))
    pred = predictions(again["guest"])
    np.testing.assert_allclose([pred[k][1] for k in sorted(pred)], score, atol=1e-12)


def check_importance(guest_model: dict, hosts: dict[str, tuple[dict, int, int]], central: dict,
                     guest_cols: int) -> None:
    """Feature importance equals the central run's: per guest feature (splits and gain), per
    host as one entry on the guest, and per host feature (splits) on that host."""
    got = {(e["party"], e["feature"]): (e["split"], e["gain"]) for e in guest_model["feature_importance"]}
    want = {("guest", f"g_{c}"): tuple(central[c]) for c in range(guest_cols) if c in central}
    for pid, (model, lo, hi) in hosts.items():
        cols = [c for c in range(lo, hi) if c in central]
        want[(f"host:{pid}", None)] = (sum(central[c][0] for c in cols), sum(central[c][1] for c in cols))
        prefix = model["splits"][0]["feature"].rsplit("_", 1)[0]
        assert {(e["feature"], e["split"]) for e in model["feature_importance"]} == \
            {(f"{prefix}_{c - lo}", central[c][0]) for c in cols}
        assert all(e["party"] == f"host:{pid}" and "gain" not in e for e in model["feature_importance"])
    assert set(got) == set(want)
    for key, (n, gain) in want.items():
        assert got[key][0] == n and got[key][1] == pytest.approx(gain, rel=1e-9), key
    gains = [e["gain"] for e in guest_model["feature_importance"]]
    assert gains == sorted(gains, reverse=True)


def test_multiclass_and_no_compress_equal_central_and_validate(data):
    x, _ = data
    y = np.digitize(x[:, 0] + x[:, 5], [-0.6, 0.6]).astype(float)
    p = {**BASE, "num_trees": 2, "cipher_compress": False, "subsample_feature_rate": 1.0}
    half = slice(0, 80)  # validate on the first half of the training rows: the same scores there
    out, tracker = run_parties(x[:, :3], x[:, 3:], y, p, validate=(x[half, :3], x[half, 3:], y[half]))
    got = predictions(out["guest"])
    prob = np.array([got[f"id{i:04d}"][2:] for i in range(len(y))])
    ref = central_boost(x, y, p)
    np.testing.assert_allclose(prob, ref, atol=1e-9)
    assert tracker.metrics[("validate", "accuracy")] == pytest.approx(float((ref[half].argmax(1) == y[half]).mean()))
    loss = -np.mean(np.log(ref[np.arange(80), y[half].astype(int)]))
    assert tracker.metrics[("validate", "loss")] == pytest.approx(loss, abs=1e-9)
    assert len(out["guest"].model["trees"]) == 6
    assert out["guest"].data[0].meta.columns[-3:] == ["predict_detail_0", "predict_detail_1", "predict_detail_2"]


def test_regression_equals_central(data):
    x, _ = data
    y = 3 * x[:, 4] + x[:, 1] ** 2
    p = {**BASE, "task_type": "regression", "objective_param": {"objective": "lse"}}
    out, _ = run_parties(x[:, :3], x[:, 3:], y, p)
    got = predictions(out["guest"])
    np.testing.assert_allclose([got[f"id{i:04d}"][0] for i in range(len(y))], central_boost(x, y, p), atol=1e-9)


def test_boosting_stops_once_the_loss_barely_moves_as_fates_n_iter_no_change(data):
    """tol between the 2nd and 3rd change of the loss: 4 rounds of 8, on both parties
    (the host is told, it does not wait for a fifth tree), the same as central boosting."""
    x, _ = data
    y = 3 * x[:, 4] + x[:, 1] ** 2
    p = {**BASE, "num_trees": 8, "task_type": "regression", "objective_param": {"objective": "lse"},
         "n_iter_no_change": False}
    full, _ = run_parties(x[:, :3], x[:, 3:], y, p)
    change = np.abs(np.diff(full["guest"].model["loss_history"]))
    assert len(change) == 7 and change[1] > change[2]
    p.update(n_iter_no_change=True, tol=float(change[1] + change[2]) / 2)
    out, tracker = run_parties(x[:, :3], x[:, 3:], y, p)
    assert len(out["guest"].model["trees"]) == 4 and tracker.metrics[("train", "trees")] == 4
    np.testing.assert_allclose(out["guest"].model["loss_history"], full["guest"].model["loss_history"][:4])
    got = predictions(out["guest"])
    np.testing.assert_allclose([got[f"id{i:04d}"][0] for i in range(len(y))], central_boost(x, y, p), atol=1e-9)


def test_two_hosts_equal_central(data):
    x, y = data
    out, _ = run_parties(x[:, :2], [x[:, 2:4], x[:, 4:]], y, BASE)
    got = predictions(out["guest"])
    score = np.array([got[f"id{i:04d}"][1] for i in range(len(y))])
    central: dict = {}
    np.testing.assert_allclose(score, central_boost(x, y, BASE, central)[:, 1], atol=1e-9)
    check_importance(out["guest"].model, {"10000": (out["host0"].model, 2, 4), "10001": (out["host1"].model, 4, 7)},
                     central, guest_cols=2)
    owners = {n["party"] for t in out["guest"].model["trees"] for n in t["nodes"]} - {None}
    assert {"10000", "10001"} <= owners  # each host won splits of its own
    for name, prefix in (("host0", "h0_"), ("host1", "h1_")):
        assert out[name].model["splits"] and all(s["feature"].startswith(prefix) for s in out[name].model["splits"])
    again, _ = run_parties(x[:, :2], [x[:, 2:4], x[:, 4:]], y, BASE,
                           model=(out["guest"].model, out["host0"].model, out["host1"].model))
    pred = predictions(again["guest"])
    np.testing.assert_allclose([pred[k][1] for k in sorted(pred)], score, atol=1e-12)


def test_host_with_other_samples_is_refused_clearly(data):
    x, y = data
    with pytest.raises(ComponentError, match="run Intersection before HeteroSecureBoost"):
        run_parties(x[:, :3], x[:-1, 3:], y, BASE)


def test_ou_equals_central_with_several_sums_to_a_ciphertext(data, monkeypatch):
    """``encrypt_param.method: ou`` (FATE 2's he_param kind): the central run's trees, with the
    split candidates still packed several to a ciphertext in OU's shorter plaintexts (a third
    of the key: 3 slots at 1024 bits where Paillier's 512-bit key holds 4)."""
    from components.tree import packing

    seen: list[tuple[str, int]] = []
    real = packing.GHPacker.slots

    def slots(self, key):
        seen.append((key.scheme, real(self, key)))
        return seen[-1][1]

    monkeypatch.setattr(packing.GHPacker, "slots", slots)
    x, y = data
    p = {**BASE, "encrypt_param": {"method": "ou", "key_length": 1024}}
    out, _ = run_parties(x[:, :3], x[:, 3:], y, p)
    got = predictions(out["guest"])
    score = np.array([got[f"id{i:04d}"][1] for i in range(len(y))])
    np.testing.assert_allclose(score, central_boost(x, y, p)[:, 1], atol=1e-9)
    assert len(seen) == 3 and all(s == ("Okamoto-Uchiyama", 3) for s in seen)
