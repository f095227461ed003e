"""HomoNN (components/nn) run by threads over the standalone transport (every exchanged value
through the wire codec), checked against plain PyTorch runs written out here: the same
per-party updates averaged centrally, and the same network trained on the pooled rows."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import numpy as np
import pydantic
import pytest

torch = pytest.importorskip("torch")

from backends.computing.local import LocalSession  # noqa: E402
from components.base import Context, Inputs  # noqa: E402
from components.nn.homo_nn import HomoNN  # noqa: E402
from components.nn.params import HomoNNParams  # noqa: E402
from federation.api import Party  # noqa: E402
from flow.core.errors import ComponentError, FedweaveError  # noqa: E402
from tests.unit.test_feature_harness import Tracker, dataset, rows_of, run_parties  # noqa: E402

GUEST, HOST1, HOST2, ARBITER = (Party("guest", "9999"), Party("host", "10000"), Party("host", "10001"),
                                Party("arbiter", "10002"))
DATA_PARTIES = (GUEST, HOST1, HOST2)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FATE_NN = Path("/work/shared/fate-examples/dsl/homo_nn")


def _data(n: int, d: int, seed: int, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    return x, (x @ w + rng.normal(scale=0.7, size=n) > 0).astype(float)


def _run(tmp: Path, params: dict, shares: list[tuple[np.ndarray, np.ndarray]]):
    """HomoNN over the three data parties and an arbiter; {party: (Outputs, Tracker)}."""
    names = [f"x{j}" for j in range(shares[0][0].shape[1])]
    with LocalSession(partitions=2, workers=1) as s:
        jobs = {party: (s, params, Inputs(data={"train_data": dataset(s, x, names, y, ids=[f"{party.party_id}_{i:04d}"
                                                                                          for i in range(len(x))])}))
                for party, (x, y) in zip(DATA_PARTIES, shares)}
        jobs[ARBITER] = (s, params, Inputs())
        out = run_parties(tmp, HomoNN, jobs, name="nn_0")
        scored = {party: rows_of(out[party][0].data[0]) for party in DATA_PARTIES}
    return out, scored


def _net(d: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(d, 6), torch.nn.ReLU(), torch.nn.Linear(6, 1), torch.nn.Sigmoid())


NN_DEFINE = {"0-0": {"layer": "Linear", "in_features": 5, "out_features": 6, "initializer": {}},
             "1-1": {"layer": "ReLU", "initializer": {}},
             "2-2": {"layer": "Linear", "in_features": 6, "out_features": 1, "initializer": {}},
             "3-3": {"layer": "Sigmoid", "initializer": {}}}


def _flat(model: torch.nn.Module) -> np.ndarray:
    return torch.cat([v.detach().reshape(-1) for v in model.state_dict().values()]).numpy()


def test_secure_fedavg_equals_central_average_of_the_same_updates(tmp_path: Path):
    """Adam on batches of 16 in shuffled order, averaged every 2 epochs and after the last:
    a central replay of the same local steps and the same sample-weighted averages."""
    seed, epochs, every, bs = 7, 5, 2, 16
    w = np.random.default_rng(0).normal(size=5)
    shares = [_data(n, 5, i + 1, w) for i, n in enumerate((70, 55, 41))]
    params = {"nn_define": NN_DEFINE, "loss": {"loss_fn": "BCELoss"}, "torch_seed": seed,
              "optimizer": {"optimizer": "Adam", "lr": 0.05, "config_type": "pytorch"},
              "trainer": {"trainer_name": "fedavg_trainer",
                          "param": {"epochs": epochs, "batch_size": bs, "aggregate_every_n_epoch": every}}}
    out, scored = _run(tmp_path, params, shares)

    nets = [copy.deepcopy(_net(5, seed)) for _ in shares]  # every party starts from the guest's weights
    opts = [torch.optim.Adam(m.parameters(), lr=0.05) for m in nets]
    # each party's rows in id order (ids are zero-padded: string order is row order)
    xs = [torch.tensor(x, dtype=torch.float32) for x, _ in shares]
    ys = [torch.tensor(y, dtype=torch.float32).reshape(-1, 1) for _, y in shares]
    for epoch in range(epochs):
        for net, opt, x, y in zip(nets, opts, xs, ys):
            order = torch.as_tensor(np.random.default_rng([seed, epoch]).permutation(len(x)))
            for i in range(0, len(x), bs):
                idx = order[i:i + bs]
                opt.zero_grad()
                torch.nn.functional.binary_cross_entropy(net(x[idx]), y[idx]).backward()
                opt.step()
        if (epoch + 1) % every == 0 or epoch == epochs - 1:
            sizes = [len(x) for x in xs]
            avg = sum(n * _flat(m).astype(np.float64) for n, m in zip(sizes, nets)) / sum(sizes)
            for net in nets:
                state = net.state_dict()
                offset = 0
                for k, v in state.items():
                    state[k] = torch.tensor(avg[offset:offset + v.numel()], dtype=torch.float32).reshape(v.shape)
                    offset += v.numel()
                net.load_state_dict(state)
    expected = _flat(nets[0])
    for party in DATA_PARTIES:
        model = out[party][0].model
        assert np.asarray(model["weights"]).dtype == np.float32
        np.testing.assert_allclose(model["weights"], expected, atol=1e-5)
        assert model["epochs"] == epochs and len(model["loss_history"]) == 3  # epochs 2, 4 and 5
    with torch.no_grad():
        p = nets[0](xs[1]).numpy()[:, 0]
    _, preds, labels = scored[HOST1]
    np.testing.assert_allclose(preds[:, 1], p, atol=1e-5)
    np.testing.assert_array_equal(preds[:, 0], (p >= 0.5).astype(float))
    np.testing.assert_array_equal(labels, shares[1][1])
    assert out[GUEST][1].metrics[("train", "device")] == "cpu"
    assert out[ARBITER][0].model["secure_aggregate"] is True


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    pos, neg = s[y == 1], s[y == 0]
    return float(((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum())
                 / (len(pos) * len(neg)))


def _breast(share: str) -> tuple[np.ndarray, np.ndarray]:
    raw = np.loadtxt(EXAMPLES / "data" / f"breast_homo_{share}.csv", delimiter=",", skiprows=1)
    return raw[:, 2:], raw[:, 1]


def test_auc_within_001_of_the_same_network_trained_on_the_pooled_rows(tmp_path: Path):
    shares = [_breast(s) for s in ("guest", "host1", "host2")]
    params = {"model": {"module": "components.nn.models", "class": "MLP", "params": {"hidden": [8]}},
              "loss": {"loss_fn": "BCELoss"}, "optimizer": {"method": "Adam", "lr": 0.01}, "epochs": 8,
              "batch_size": 32, "torch_seed": 3}
    out, scored = _run(tmp_path, params, shares)
    y = np.concatenate([scored[p][2] for p in DATA_PARTIES])
    fed = _auc(y, np.concatenate([scored[p][1][:, 1] for p in DATA_PARTIES]))

    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Linear(30, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1), torch.nn.Sigmoid())
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    x = torch.tensor(np.vstack([s[0] for s in shares]), dtype=torch.float32)
    t = torch.tensor(np.concatenate([s[1] for s in shares]), dtype=torch.float32).reshape(-1, 1)
    gen = torch.Generator().manual_seed(3)
    for _ in range(8):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 32):
            opt.zero_grad()
            torch.nn.functional.binary_cross_entropy(net(x[order[i:i + 32]]), t[order[i:i + 32]]).backward()
            opt.step()
    with torch.no_grad():
        central = _auc(t.numpy()[:, 0], net(x).numpy()[:, 0])
    assert central > 0.95 and abs(fed - central) < 0.01, (fed, central)


def test_multiclass_and_regression_predictions(tmp_path: Path):
    rng = np.random.default_rng(4)
    centers = rng.normal(scale=3, size=(3, 4))
    shares = []
    for n in (40, 35, 30):
        cls = rng.integers(0, 3, size=n)
        shares.append((centers[cls] + rng.normal(size=(n, 4)), cls.astype(float) + 1))  # classes 1, 2, 3
    params = {"nn_define": [{"layer": "Linear", "in_features": 4, "out_features": 3}, {"layer": "Softmax", "dim": 1}],
              "loss": {"loss_fn": "CrossEntropyLoss"}, "optimizer": {"optimizer": "Adam", "lr": 0.1}, "epochs": 10,
              "batch_size": -1, "dataset": {"dataset_name": "table", "param": {"label_dtype": "long"}}}
    out, scored = _run(tmp_path, params, shares)
    ds = out[GUEST][0].data[0]
    assert ds.meta.feature_columns == ["predict_result", "predict_score", "predict_detail_1", "predict_detail_2",
                                       "predict_detail_3"]
    _, rows, labels = scored[GUEST]
    np.testing.assert_allclose(rows[:, 2:].sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(rows[:, 0], np.array([1.0, 2.0, 3.0])[rows[:, 2:].argmax(axis=1)])
    assert np.mean(rows[:, 0] == labels) > 0.8
    assert out[GUEST][0].model["classes"] == [1.0, 2.0, 3.0]

    shares = [(x, x @ np.array([1.0, -2.0, 0.5, 0.0]) + 3) for x, _ in shares]
    params = {"nn_define": {"0-0": {"layer": "Linear", "in_features": 4, "out_features": 1}},
              "loss": "MSELoss", "optimizer": {"optimizer": "SGD", "lr": 0.01}, "max_iter": 30, "batch_size": 8,
              "secure_aggregate": False}
    out, scored = _run(tmp_path / "r", params, shares)
    _, rows, labels = scored[HOST2]
    np.testing.assert_array_equal(rows[:, 0], rows[:, 1])
    assert np.mean((rows[:, 0] - labels) ** 2) < 0.05 * np.var(labels)
    assert out[ARBITER][0].model["classes"] is None  # no label left a party


def test_predict_job_reproduces_the_trained_scores(tmp_path: Path):
    w = np.random.default_rng(0).normal(size=5)
    shares = [_data(n, 5, i + 9, w) for i, n in enumerate((30, 30, 30))]
    params = {"nn_define": NN_DEFINE, "loss": {"loss_fn": "BCELoss"}, "epochs": 2, "batch_size": 10}
    out, scored = _run(tmp_path, params, shares)
    model = json.loads(json.dumps({k: (v.tolist() if isinstance(v, np.ndarray) else v)
                                   for k, v in out[HOST1][0].model.items()}))
    with LocalSession(partitions=2, workers=1) as s:
        data = dataset(s, shares[1][0], [f"x{j}" for j in range(5)], shares[1][1],
                       ids=[f"10000_{i:04d}" for i in range(30)])
        ctx = Context(job_id="p", component="nn_0", local=HOST1, parties={"host": [HOST1]}, computing=s,
                      federation=None, storage=None, tracker=Tracker(), logger=logging.getLogger("t"))
        res = HomoNN().run(ctx, HomoNNParams.model_validate({"nn_define": NN_DEFINE, "loss": "BCELoss"}),
                           Inputs(data={"test_data": data}, model=[model]))
        _, rows, _ = rows_of(res.data[0])
    np.testing.assert_allclose(rows, scored[HOST1][1], atol=1e-6)


def _fate_conf(tmp: Path, nn: dict) -> tuple[Path, Path]:
    conf = json.loads((FATE_NN / "homo_nn_train_binary_conf.json").read_text())
    conf["component_parameters"]["common"]["nn_0"] = nn
    (tmp / "conf.json").write_text(json.dumps(conf))
    return tmp / "conf.json", FATE_NN / "homo_nn_train_binary_dsl.json"


def test_a_model_class_outside_the_allow_list_is_refused_at_validation(tmp_path: Path):
    if not FATE_NN.is_dir():
        pytest.skip("FATE's homo_nn examples are not here")
    from flow.dsl import load_job

    base = {"loss": {"loss_fn": "BCELoss"}, "optimizer": {"optimizer": "Adam", "lr": 0.01}}
    with pytest.raises(FedweaveError, match=r"not supported: model class 'torch.nn.Transformer'"):
        load_job(*_fate_conf(tmp_path, {**base, "model": {"module": "torch.nn", "class": "Transformer"}}))
    with pytest.raises(FedweaveError, match=r"not supported: model class 'os.system'"):
        load_job(*_fate_conf(tmp_path, {**base, "model": {"module": "os", "class": "system"}}))
    with pytest.raises(FedweaveError, match=r"not supported: model class 'evil.MLP'"):  # a built-in name elsewhere
        load_job(*_fate_conf(tmp_path, {**base, "model": {"module": "evil", "class": "MLP"}}))
    with pytest.raises(FedweaveError, match=r"not supported: nn_define layer 'Transformer'"):
        load_job(*_fate_conf(tmp_path, {**base, "nn_define": {"0-0": {"layer": "Transformer"}}}))
    load_job(*_fate_conf(tmp_path, {**base, "model": {"module": "components.nn.models", "class": "MLP"}}))
    for bad, text in (({"optimizer": {"optimizer": "LBFGS"}}, "not supported: optimizer 'LBFGS'"),
                      ({"loss": {"loss_fn": "CTCLoss"}}, "not supported: loss 'CTCLoss'"),
                      ({"trainer": {"trainer_name": "fedprox"}}, "not supported: trainer 'fedprox'"),
                      ({"epochs": 3, "trainer": {"param": {"epochs": 4}}}, "set it in one place"),
                      ({"device": "tpu"}, "device must be cpu, cuda, cuda:N or auto")):
        with pytest.raises(pydantic.ValidationError, match=text):
            HomoNNParams.model_validate({**base, "nn_define": NN_DEFINE, **bad})


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("asked", [{"device": "cuda"}, {"device": "cuda:1"}, {"trainer": {"param": {"cuda": True}}}])
def test_device_cuda_without_cuda_fails_at_task_start_in_one_line(asked: dict):
    class NoFederation:
        def __getattr__(self, name):
            raise AssertionError(f"the task reached the federation ({name}) before failing")

    params = HomoNNParams.model_validate({"nn_define": NN_DEFINE, "loss": "BCELoss", **asked})
    ctx = Context(job_id="j", component="nn_0", local=GUEST, parties={"guest": [GUEST]}, computing=None,
                  federation=NoFederation(), storage=None, tracker=Tracker(), logger=logging.getLogger("t"))
    with pytest.raises(ComponentError) as err:
        HomoNN().run(ctx, params, Inputs())
    assert "\n" not in str(err.value) and "no CUDA device" in str(err.value) and "nn_0 on guest 9999" in str(err.value)


def test_device_auto_runs_where_it_can():
    from components.nn.device import resolve_device

    assert resolve_device("auto", "t").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu", "t").type == "cpu"
    assert HomoNNParams.model_validate({"nn_define": NN_DEFINE, "loss": "BCELoss"}).settings().device == "cpu"
    p = HomoNNParams.model_validate({"nn_define": NN_DEFINE, "loss": "BCELoss", "trainer": {"param": {"cuda": 1}}})
    assert p.settings().device == "cuda:1"


def test_the_arbiter_sees_each_update_only_masked(tmp_path: Path, monkeypatch):
    """What the arbiter sums: uint64 words that decode to nothing like the party's n·w
    (uniform-looking bits), yet whose sum decodes to the parties' total."""
    import components.nn.homo_nn as homo_nn_module
    from components.crypto.secure_agg import add_words, decode

    received: list[list[np.ndarray]] = []

    def spy(vectors):
        received.append([np.array(v) for v in vectors])
        return add_words(vectors)

    monkeypatch.setattr(homo_nn_module, "add_words", spy)
    w = np.random.default_rng(0).normal(size=5)
    shares = [_data(n, 5, i + 20, w) for i, n in enumerate((40, 30, 20))]
    out, _ = _run(tmp_path, {"nn_define": NN_DEFINE, "loss": "BCELoss", "epochs": 1, "batch_size": -1}, shares)
    ((a, b, c),) = received
    final = np.asarray(out[GUEST][0].model["weights"], dtype=float)
    total = decode(add_words([a, b, c]))
    np.testing.assert_allclose(total[:-2] / total[-1], final, atol=1e-6)
    assert total[-1] == 90
    for words in (a, b, c):
        assert words.dtype == np.uint64
        alone = decode(words)
        assert np.min(np.abs(alone)) > 1e3  # a masked word decodes to noise of magnitude ~2**39
        top_bits = (words >> np.uint64(63)).astype(int)
        assert 0.2 < top_bits.mean() < 0.8


def test_an_entry_point_model_is_allowed_and_built(monkeypatch):
    """A class registered in the fedweave.models group validates under its own module and builds."""
    from importlib.metadata import EntryPoint

    import components.nn.params as nn_params
    from components.nn.build import build_model

    ep = EntryPoint(name="TinyNet", value="tests.unit.test_homo_nn:TinyNet", group="fedweave.models")
    monkeypatch.setattr(nn_params, "entry_points", lambda group: [ep] if group == "fedweave.models" else [])
    monkeypatch.setitem(nn_params.MODELS._loaded, "TinyNet", TinyNet)  # as the entry point would load it
    p = HomoNNParams.model_validate({"model": {"module": "tests.unit.test_homo_nn", "class": "TinyNet"},
                                     "loss": "MSELoss"})
    model = build_model(p, 3, "t")
    assert isinstance(model, TinyNet) and model.linear.in_features == 3
    with pytest.raises(pydantic.ValidationError, match="not supported: model class 'other.TinyNet'"):
        HomoNNParams.model_validate({"model": {"module": "other", "class": "TinyNet"}, "loss": "MSELoss"})


class TinyNet(torch.nn.Module):
    def __init__(self, in_features: int):
        super().__init__()
        self.linear = torch.nn.Linear(in_features, 1)

    def forward(self, x):
        return self.linear(x)
