"""HeteroNN (components/nn/hetero_nn.py) by threads over the standalone transport, checked
against the same network (bottom models, interactive layer, top model) trained centrally in
plain PyTorch on the joined features; and the interactive layer's wire checked for leaks."""

from __future__ import annotations

import csv
import queue
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import pytest

torch = pytest.importorskip("torch")

from backends.computing.local import LocalSession  # noqa: E402
from components.base import Inputs  # noqa: E402
from components.crypto.paillier import EncryptedNumber, generate_keypair  # noqa: E402
from components.mpc import Session  # noqa: E402
from components.nn.hetero_nn import HeteroNN, HeteroNNParams  # noqa: E402
from components.nn.interactive import NN_FIXED_POINT, InteractiveGuest, InteractiveHost  # noqa: E402
from federation.api import Party  # noqa: E402
from tests.unit.test_feature_harness import dataset, rows_of, run_parties  # noqa: E402

GUEST, HOST = Party("guest", "9999"), Party("host", "10000")
DATA = Path(__file__).resolve().parents[2] / "examples" / "data"
KEY = {"key_length": 512, "allow_short_key": True}


def _csv(name: str) -> dict[str, list[float]]:
    with open(DATA / name) as f:
        return {row["id"]: [float(v) for k, v in row.items() if k != "id"] for row in csv.DictReader(f)}


def _breast() -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    g, h = _csv("breast_hetero_guest.csv"), _csv("breast_hetero_host.csv")
    ids = sorted(set(g) & set(h))
    return ids, np.array([g[k][1:] for k in ids]), np.array([g[k][0] for k in ids]), np.array([h[k] for k in ids])


def _linear(i: int, o: int) -> dict:
    return {"layer": "Linear", "in_features": i, "out_features": o}


def _params(dg: int, dh: int, out: int, loss: str, epochs: int = 8) -> tuple[dict, dict]:
    common = {"interactive_layer_define": {"layer": "InteractiveLayer", "out_dim": 4, "activation": "ReLU"},
              "top_nn_define": {"0-0": _linear(4, out), **({"1-1": {"layer": "Sigmoid"}} if out == 1 else {})},
              "interactive_layer_lr": 0.05, "loss": {"loss_fn": loss}, "optimizer": {"optimizer": "Adam", "lr": 0.02},
              "epochs": epochs, "batch_size": 128, "torch_seed": 7, "encrypt_param": KEY}
    bottom = {"0-0": _linear(0, 3), "1-1": {"layer": "ReLU"}}
    guest = {**common, "bottom_nn_define": {**bottom, "0-0": _linear(dg, 3)}}
    host = {k: v for k, v in common.items() if k not in ("top_nn_define", "interactive_layer_define")}
    return guest, {**host, "bottom_nn_define": {**bottom, "0-0": _linear(dh, 3)}}


def _run(tmp: Path, ids: list[str], xg: np.ndarray, y: np.ndarray, xh: np.ndarray, guest: dict, host: dict,
         validate: bool = False):
    with LocalSession(partitions=2, workers=1) as s:
        gdata = dataset(s, xg, [f"g{j}" for j in range(xg.shape[1])], y, ids=ids)
        hdata = dataset(s, xh, [f"h{j}" for j in range(xh.shape[1])], None, ids=ids)
        ports = ("train_data", "validate_data") if validate else ("train_data",)
        out = run_parties(tmp, HeteroNN, {GUEST: (s, guest, Inputs(data=dict.fromkeys(ports, gdata))),
                                          HOST: (s, host, Inputs(data=dict.fromkeys(ports, hdata)))}, name="hnn_0")
        got_ids, scored, labels = rows_of(out[GUEST][0].data[0])
        if validate:  # the same rows scored again as validate_data: the same scores
            assert len(out[GUEST][0].data) == 2
            np.testing.assert_allclose(rows_of(out[GUEST][0].data[1])[1], scored, atol=1e-6)
    assert got_ids == ids
    return out, scored, labels


def _central(xg: np.ndarray, y: np.ndarray, xh: np.ndarray, out: int, loss_name: str, epochs: int = 8,
             seed: int = 7, hidden: int = 3) -> np.ndarray:
    """The same network, initialisation and batches in one process (plain torch autograd):
    bottoms Linear(·, hidden)+ReLU, interactive 4 outputs + ReLU, top Linear(4, out) (+Sigmoid),
    Adam at 0.02, SGD at 0.05 on the interactive layer, batches of 128."""
    lr, ilr, size = 0.02, 0.05, 128

    def bottom(d: int) -> Any:
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.ReLU())

    bg, bh = bottom(xg.shape[1]), bottom(xh.shape[1])
    torch.manual_seed(seed)
    top = torch.nn.Sequential(torch.nn.Linear(4, out), *([torch.nn.Sigmoid()] if out == 1 else []))
    rng_g, rng_h, bound = np.random.default_rng([seed, 1]), np.random.default_rng([seed, 2]), 1 / np.sqrt(hidden)
    wg = torch.tensor(rng_g.uniform(-bound, bound, (4, hidden)), dtype=torch.float32, requires_grad=True)
    b = torch.tensor(rng_g.uniform(-bound, bound, 4), dtype=torch.float32, requires_grad=True)
    wh = torch.tensor(rng_h.uniform(-bound, bound, (hidden, 4)), dtype=torch.float32, requires_grad=True)
    opt = torch.optim.Adam([*bg.parameters(), *top.parameters()], lr=lr)
    opt_h = torch.optim.Adam(bh.parameters(), lr=lr)
    sgd = torch.optim.SGD([wg, b, wh], lr=ilr)
    loss_fn = getattr(torch.nn, loss_name)()
    tg, th = torch.tensor(xg, dtype=torch.float32), torch.tensor(xh, dtype=torch.float32)
    ty = torch.tensor(y, dtype=torch.float32).reshape(-1, 1) if out == 1 else torch.tensor(y, dtype=torch.int64)

    def forward(idx: Any) -> Any:
        return top(torch.relu(bg(tg[idx]) @ wg.T + b + bh(th[idx]) @ wh))

    n = len(y)
    for epoch in range(epochs):
        order = np.random.default_rng([seed, epoch]).permutation(n)
        for start in range(0, n, size):
            idx = torch.as_tensor(order[start:start + size])
            for o in (opt, opt_h, sgd):
                o.zero_grad()
            loss_fn(forward(idx), ty[idx]).backward()
            for o in (opt, opt_h, sgd):
                o.step()
    with torch.no_grad():
        return forward(torch.arange(n)).double().numpy()


def _auc(score: np.ndarray, y: np.ndarray) -> float:
    ranks = np.empty(len(score))
    ranks[np.argsort(score, kind="mergesort")] = np.arange(1, len(score) + 1)
    pos = y == 1
    return float((ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum()))


def test_binary_auc_matches_central_training(tmp_path):
    ids, xg, y, xh = _breast()
    guest, host = _params(xg.shape[1], xh.shape[1], 1, "BCELoss")
    out, scored, labels = _run(tmp_path, ids, xg, y, xh, guest, host)
    central = _central(xg, y, xh, 1, "BCELoss")[:, 0]
    fed_auc, central_auc = _auc(scored[:, 1], labels), _auc(central, y)
    assert central_auc > 0.9
    assert abs(fed_auc - central_auc) < 0.02
    # same weights, same batches: the scores themselves agree up to fixed-point rounding
    assert np.abs(scored[:, 1] - central).max() < 1e-3
    assert out[GUEST][1].metrics[("train", "epochs")] == 8


def test_multiclass_matches_central_training(tmp_path):
    rng = np.random.default_rng(3)
    n = 300
    xg, xh = rng.normal(size=(n, 4)), rng.normal(size=(n, 5))
    y = np.argmax(np.c_[xg[:, :2], xh[:, :1]] + 0.3 * rng.normal(size=(n, 3)), axis=1).astype(float)
    ids = [f"r{i:04d}" for i in range(n)]
    guest, host = _params(4, 5, 3, "CrossEntropyLoss", epochs=6)
    _, scored, labels = _run(tmp_path, ids, xg, y, xh, guest, host, validate=True)
    logits = _central(xg, y, xh, 3, "CrossEntropyLoss", epochs=6)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    assert np.abs(scored[:, 2:5] - probs).max() < 1e-3
    assert np.mean(scored[:, 0] == labels) == pytest.approx(np.mean(probs.argmax(axis=1) == y), abs=0.01)


class _Recorder:
    """One side of a two-party channel that keeps what it receives."""

    def __init__(self, inbox: queue.Queue, outbox: queue.Queue):
        self.inbox, self.outbox, self.received = inbox, outbox, []

    def send(self, name: str, obj: Any) -> None:
        self.outbox.put((name, obj))

    def recv(self, name: str) -> Any:
        got, obj = self.inbox.get(timeout=60)
        assert got == name
        self.received.append(obj)
        return obj


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]))


def test_interactive_layer_wire_hides_host_output_and_gradients():
    """What the guest receives tells it nothing of a_h; the host nothing of ∂L/∂z; results exact."""
    to_guest, to_host = queue.Queue(), queue.Queue()
    gpeer, hpeer = _Recorder(to_guest, to_host), _Recorder(to_host, to_guest)
    (gpub, gkey), (hpub, hkey) = generate_keypair(512), generate_keypair(512)
    rng = np.random.default_rng(0)
    n, d, o = 64, 4, 4
    a, w0, delta = rng.normal(size=(n, d)) + 3.0, rng.normal(size=(d, o)), rng.normal(size=(n, o))
    guest = InteractiveGuest(Session(gpeer, 0, NN_FIXED_POINT, gkey, hpub), 0.1, d, o)
    host = InteractiveHost(Session(hpeer, 1, NN_FIXED_POINT, hkey, gpub), 0.1, w0)
    got: dict[str, np.ndarray] = {}

    def run_host() -> None:
        for _ in range(2):
            host.forward(a)
            got["grad"] = host.backward()

    thread = threading.Thread(target=run_host)
    thread.start()
    w = w0.copy()
    for _ in range(2):
        z = guest.forward(n)
        assert np.abs(z - a @ w).max() < 1e-4
        guest.backward(delta)
        grad_expected, w = delta @ w.T, w - 0.1 * a.T @ delta
    thread.join(60)
    assert np.abs(got["grad"] - grad_expected).max() < 1e-4
    assert np.abs(NN_FIXED_POINT.decode(NN_FIXED_POINT.add(guest.u, host.u)) - w).max() < 1e-4

    def check(received: list[Any], own_key: Any, secret: np.ndarray) -> None:
        for obj in received:
            if isinstance(obj, list):  # ciphertexts: of the receiver's own masked products, or the peer's key
                assert all(isinstance(c, EncryptedNumber) for c in obj)
                continue
            arr = NN_FIXED_POINT.decode(NN_FIXED_POINT.from_wire(obj))
            flat = arr.ravel()
            for candidate in (secret, secret.T):
                if candidate.size == flat.size:
                    assert _corr(flat, candidate) < 0.35
            assert not np.isin(np.round(secret, 4), np.round(flat, 4)).any()

    check(gpeer.received, gpub, a)  # the guest never sees a_h (nor a_h·U_g unmasked)
    check(hpeer.received, hpub, delta)  # the host never sees ∂L/∂z_h
    # the ciphertexts the guest gets come under the host's key or are its own masked products
    assert {c.public_key for obj in gpeer.received if isinstance(obj, list) for c in obj} <= {gpub, hpub}


def test_validation_refuses_unsupported_settings():
    guest, _ = _params(3, 3, 1, "BCELoss")
    HeteroNNParams.model_validate(guest)
    for change, text in (({"task_type": "regression"}, "not supported: HeteroNN task_type regression"),
                         ({"loss": {"loss_fn": "MSELoss"}}, "not supported: HeteroNN loss"),
                         ({"bottom_nn_define": None, "bottom_model": {"module": "os", "class": "system"}},
                          "not supported: model class 'os.system'"),
                         ({"interactive_layer_define": {"out_dim": 2, "host_num": 2}}, "not supported: HeteroNN with"),
                         ({"config_type": "keras"}, "not supported: HeteroNN config_type")):
        with pytest.raises(pydantic.ValidationError, match=text):
            HeteroNNParams.model_validate({**guest, **change})


def test_predict_job_scores_as_training_from_stored_parts(tmp_path):
    """Each party's stored part (through the model JSON format), with only a key length as
    params: every row of a subset scores as in training; the host's stored part has no top."""
    from flow.models.format import dump_model, load_model_text

    rng = np.random.default_rng(5)
    n = 160
    xg, xh = rng.normal(size=(n, 3)), rng.normal(size=(n, 4))
    y = ((xg[:, 0] + xh[:, 1] + 0.3 * rng.normal(size=n)) > 0).astype(float)
    ids = [f"r{i:04d}" for i in range(n)]
    guest, host = _params(3, 4, 1, "BCELoss", epochs=3)
    out, trained, _ = _run(tmp_path / "train", ids, xg, y, xh, guest, host)
    models = {party: load_model_text(dump_model(out[party][0].model)) for party in (GUEST, HOST)}
    assert "top" not in models[HOST] and "interactive_guest" not in models[HOST]
    keep = np.arange(0, n, 3)
    sub = [ids[i] for i in keep]
    with LocalSession(partitions=2, workers=1) as s:
        gdata = dataset(s, xg[keep], [f"g{j}" for j in range(3)], y[keep], ids=sub)
        hdata = dataset(s, xh[keep], [f"h{j}" for j in range(4)], None, ids=sub)
        params = {"encrypt_param": KEY}
        res = run_parties(tmp_path / "predict", HeteroNN, {
            GUEST: (s, params, Inputs(data={"test_data": gdata}, model=[models[GUEST]])),
            HOST: (s, params, Inputs(data={"test_data": hdata}, model=[models[HOST]]))}, name="hnn_0")
        got_ids, predicted, _ = rows_of(res[GUEST][0].data[0])
    assert got_ids == sub
    np.testing.assert_allclose(predicted[:, 1], trained[keep, 1], rtol=0, atol=1e-6)
    clear = np.abs(trained[keep, 1] - 0.5) > 1e-5  # the class where the threshold cannot flip it
    np.testing.assert_array_equal(predicted[clear, 0], trained[keep, 0][clear])
