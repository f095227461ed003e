"""HomoNN: horizontal federated averaging of a PyTorch network under secure aggregation.

Guest and hosts hold the same feature columns of different rows. Each builds the declared
network (:mod:`components.nn.params`), starts from the guest's initial weights (relayed by
the arbiter, so every party starts alike whatever its torch build), and trains on its own
rows (:mod:`components.nn.local`). After every ``aggregate_every_n_epoch`` epochs, and after
the last, each sends ``[n·w, n·loss, n]`` (``w`` the float32 state vector, ``n`` its row
count, or 1 without ``weighted_aggregation``) under HomoLR's pairwise X25519 masks
(:mod:`components.crypto.secure_agg`): the arbiter learns only the sums, i.e. the
sample-weighted average model and loss, checks ``early_stop`` on that loss and sends the
average back as float32. Optimizer state stays with each party, as in FATE's
fedavg_trainer.

The arbiter also learns each party's feature names and, for classification, its set of
labels (to agree on the classes, as HomoLR); for regression no label leaves a party.
Output data: each party's predictions of its own rows (``predict_result``,
``predict_score``, ``predict_detail_<class>`` for multiclass) for Evaluation, then the
``validate_data`` and ``test_data`` predictions of the final model. A predict job takes
the model on ``input.model``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from components.base import Component, Context, Dataset, Inputs, Instance, Outputs, detail_columns, instances_meta
from components.crypto.secure_agg import add_words, decode
from components.masking import contributor, join_masks, relay_mask_keys
from components.nn.params import HomoNNParams, Settings
from federation.api import Party
from flow.core.errors import ComponentError


def aggregation_epochs(epochs: int, every: int) -> list[int]:
    return [e for e in range(epochs) if (e + 1) % every == 0 or e == epochs - 1]


def read_rows(data: Dataset, labelled: bool, where: str) -> tuple[list[Any], np.ndarray, np.ndarray | None]:
    """(ids in string order, X float32, y) of an Instance table."""
    rows = sorted(data.table.collect(), key=lambda kv: str(kv[0]))
    if not rows:
        raise ComponentError(f"{where}: table {data.meta.name} is empty")
    x = np.stack([inst.features for _, inst in rows]).astype(np.float32)
    if not labelled:
        return [k for k, _ in rows], x, None
    if data.meta.label_column is None or any(inst.label is None for _, inst in rows):
        raise ComponentError(f"{where}: HomoNN needs labelled rows on every party, but table {data.meta.name} "
                             "has no label (set with_label in DataTransform)")
    return [k for k, _ in rows], x, np.array([inst.label for _, inst in rows], dtype=np.float64)


def predictions(out: np.ndarray, task: str, classes: list[float] | None, loss: str, threshold: float) -> np.ndarray:
    """Network outputs -> rows of [predict_result, predict_score, (one probability per class)]."""
    if task == "regression":
        return np.c_[out[:, 0], out[:, 0]]
    if out.shape[1] == 1:
        p = 1.0 / (1.0 + np.exp(-out[:, 0])) if loss == "BCEWithLogitsLoss" else out[:, 0]
        return np.c_[(p >= threshold).astype(float), p]
    probs = out
    if loss == "NLLLoss" or np.any(out < 0) or not np.allclose(out.sum(axis=1), 1.0, atol=1e-4):
        z = out - out.max(axis=1, keepdims=True)  # logits or log-probabilities -> probabilities
        probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    probs = probs[:, :len(classes or [])]
    if task == "binary":
        return np.c_[(probs[:, 1] >= threshold).astype(float), probs[:, 1]]
    best = probs.argmax(axis=1)
    return np.c_[np.asarray(classes)[best], probs[np.arange(len(best)), best], probs]


class HomoNN(Component):
    module = "HomoNN"
    params_model = HomoNNParams
    roles = ("guest", "host", "arbiter")
    input_data = ("train_data", "validate_data", "data", "test_data")
    accepts_model = True
    output_model = True

    # ------------------------------------------------------------ guest / host
    def _party(self, ctx: Context, p: HomoNNParams, inputs: Inputs) -> Outputs:
        from components.nn.device import select_device

        where = f"{ctx.component} on {ctx.role} {ctx.local.party_id}"
        s = p.settings()
        device = select_device(ctx, s.device)  # first: a missing GPU stops the task before any exchange
        if inputs.model and "train_data" not in inputs.data:
            return self._predict_only(ctx, p, inputs, device, where)
        if inputs.model:
            raise ComponentError(f"{where}: not supported: warm start (input.model with train_data) for HomoNN")
        from components.nn.local import LocalTrainer, module_summary

        data = inputs.require(ctx.component, "train_data", "data")
        header = list(data.meta.feature_columns)
        for port in ("validate_data", "test_data"):
            if port in inputs.data and list(inputs.data[port].meta.feature_columns) != header:
                raise ComponentError(f"{where}: the {port} features differ from the train_data features")
        ids, x, y = read_rows(data, True, where)
        y = np.zeros(0) if y is None else y  # read_rows refuses unlabelled rows
        task = p.task_type()
        labels = [] if task == "regression" else sorted({float(v) for v in y})
        if task == "binary" and not set(labels) <= {0.0, 1.0}:
            raise ComponentError(f"{where}: binary HomoNN needs labels 0/1, got {labels[:10]} (a multiclass loss "
                                 "such as CrossEntropyLoss trains several classes)")
        arbiter = ctx.role_parties("arbiter")
        trainer = LocalTrainer(p, s, x, None, task, None, device, where)
        init = trainer.weights() if ctx.role == "guest" else None
        ctx.federation.remote({"header": header, "labels": labels, "size": int(trainer.weights().size), "init": init},
                              "nn_header", ctx.tag(), arbiter)
        (start,) = ctx.federation.get("nn_init", ctx.tag(), arbiter)
        classes = None if start["classes"] is None else [float(c) for c in start["classes"]]
        trainer.set_targets(y, task, classes)
        trainer.load(np.asarray(start["init"]))
        ctx.logger.info("%s: %d rows, %d features, task %s, network %s, %d values", where, len(ids), x.shape[1],
                        task, module_summary(trainer.model), trainer.weights().size)
        masker = join_masks(ctx) if s.secure_aggregate else None
        rounds = aggregation_epochs(s.epochs, s.aggregate_every)
        weight = float(trainer.n) if s.weighted else 1.0
        losses, local_losses, converged, epoch = [], [], False, 0
        for epoch in range(s.epochs):
            local_losses.append(trainer.epoch(epoch))
            ctx.tracker.progress(epoch + 1, s.epochs)
            if epoch not in rounds:
                continue
            r = rounds.index(epoch)
            update = np.r_[weight * trainer.weights().astype(np.float64), weight * local_losses[-1], weight]
            sent = masker.mask(update, r) if masker is not None else update.astype(np.float32)
            ctx.federation.remote(sent, "nn_update", ctx.tag(f"agg.{r}"), arbiter)
            (reply,) = ctx.federation.get("nn_model", ctx.tag(f"agg.{r}"), arbiter)
            trainer.load(np.asarray(reply["model"]))
            losses.append(float(reply["loss"]))
            if converged := bool(reply["converged"]):
                break
        ctx.logger.info("%s: trained %d epochs, %d aggregations, loss %s, converged=%s", where, epoch + 1,
                        len(losses), losses[-1] if losses else None, converged)
        for name, value in (("epochs", epoch + 1), ("loss", losses), ("local_loss", local_losses),
                            ("converged", converged), ("aggregations", len(losses))):
            ctx.tracker.log_metric("train", name, value)
        model = self._model(p, header, task, classes, trainer, losses, converged, epoch + 1)
        out = [self._scored(p, ctx, data, ids, trainer.outputs(), task, classes, "train")]
        out[0].meta.extra["loss_history"] = list(losses)
        for port, kind in (("validate_data", "validate"), ("test_data", "test")):
            if port in inputs.data:
                vids, vx, _ = read_rows(inputs.data[port], False, where)
                out.append(self._scored(p, ctx, inputs.data[port], vids, trainer.outputs(vx), task, classes, kind))
        return Outputs(data=out, model=model)

    guest = host = _party

    @staticmethod
    def _model(p: HomoNNParams, header: list[str], task: str, classes: list[float] | None, trainer: Any,
               losses: list[float], converged: bool, epochs: int) -> dict[str, Any]:
        from components.nn.build import layout

        spec = {"nn_define": p.nn_define} if p.nn_define is not None else \
            {"model": p.model.model_dump(by_alias=True) if p.model else None}
        return {"header": header, **spec, "loss": p.loss, "task_type": task, "classes": classes,
                "torch_seed": p.torch_seed, "weights": trainer.weights(), "layout": layout(trainer.model),
                "epochs": epochs, "loss_history": losses, "converged": converged}

    @staticmethod
    def _scored(p: HomoNNParams, ctx: Context, data: Dataset, ids: list[Any], out: np.ndarray, task: str,
                classes: list[float] | None, kind: str) -> Dataset:
        rows = predictions(out, task, classes, p.loss_name(), p.predict_param.threshold)
        labels = {k: inst.label for k, inst in data.table.collect()}
        table = ctx.computing.parallelize(((k, Instance(r, labels.get(k))) for k, r in zip(ids, rows)),
                                          data.table.partitions)
        columns = ["predict_result", "predict_score"] + (detail_columns(classes) if task == "multi" and classes
                                                          else [])
        return Dataset(table, instances_meta(data.meta, columns, "label", type=kind))

    def _predict_only(self, ctx: Context, p: HomoNNParams, inputs: Inputs, device: Any, where: str) -> Outputs:
        from components.nn.local import LocalTrainer

        stored = inputs.model[0]
        data = inputs.require(ctx.component, "test_data", "data")
        if list(data.meta.feature_columns) != list(stored["header"]):
            raise ComponentError(f"{where}: the data's features {list(data.meta.feature_columns)[:8]} differ from "
                                 f"the model's {list(stored['header'])[:8]}")
        spec = {k: stored[k] for k in ("nn_define", "model") if stored.get(k) is not None}
        mp = HomoNNParams.model_validate({**spec, "loss": stored["loss"], "torch_seed": stored["torch_seed"],
                                          "trainer": {"param": {"task_type": stored["task_type"]}}})
        ids, x, _ = read_rows(data, False, where)
        trainer = LocalTrainer(mp, mp.settings(), x, None, stored["task_type"], stored["classes"], device, where)
        trainer.load(np.asarray(stored["weights"]))
        scored = self._scored(p.model_copy(update={"loss": stored["loss"]}), ctx, data, ids, trainer.outputs(),
                              stored["task_type"], stored["classes"], "predict")
        return Outputs(data=[scored], model=stored)

    # ---------------------------------------------------------------- arbiter
    def arbiter(self, ctx: Context, p: HomoNNParams, inputs: Inputs) -> Outputs:
        if inputs.model:  # a predict job: the parties score their own rows
            return Outputs(model={k: v for k, v in inputs.model[0].items() if k != "weights"})
        s = p.settings()
        parties = ctx.role_parties("guest") + ctx.role_parties("host")
        if len(parties) < 2:
            raise ComponentError(f"{ctx.component}: HomoNN needs at least two parties with data (guest and host)")
        size, init, classes = self._agree(ctx, p, parties)
        ctx.federation.remote({"init": init, "classes": classes}, "nn_init", ctx.tag(), parties)
        if s.secure_aggregate:
            relay_mask_keys(ctx, parties)
        losses, converged = self._aggregate(ctx, s, parties, init.astype(np.float64), size)
        ctx.tracker.log_metric("train", "loss", losses)
        ctx.tracker.log_metric("train", "converged", converged)
        return Outputs(model={"aggregations": len(losses), "loss_history": losses, "converged": converged,
                              "secure_aggregate": s.secure_aggregate, "classes": classes})

    @staticmethod
    def _agree(ctx: Context, p: HomoNNParams, parties: list[Party]) -> tuple[int, np.ndarray, list[float] | None]:
        """The common state size, the guest's initial weights, and the classes."""
        messages = ctx.federation.get("nn_header", ctx.tag(), parties)
        first = messages[0]
        for party, m in zip(parties, messages):
            if list(m["header"]) != list(first["header"]):
                raise ComponentError(f"{ctx.component}: {contributor(party)} has features "
                                     f"{list(m['header'])[:8]}, {contributor(parties[0])} has "
                                     f"{list(first['header'])[:8]}; HomoNN needs the same columns in the same order")
            if m["size"] != first["size"]:
                raise ComponentError(f"{ctx.component}: {contributor(party)}'s network has {m['size']} values, "
                                     f"{contributor(parties[0])}'s {first['size']}")
        init = next((np.asarray(m["init"]) for q, m in zip(parties, messages) if q.role == "guest"), None)
        if init is None or init.dtype != np.float32 or init.shape != (first["size"],):
            raise ComponentError(f"{ctx.component}: the guest sent no float32 initial state of {first['size']} values")
        task = p.task_type()
        if task == "regression":
            return first["size"], init, None
        classes = sorted({float(v) for m in messages for v in m["labels"]})
        if task == "binary" and len(classes) > 2:
            raise ComponentError(f"{ctx.component}: binary HomoNN, but the parties hold {len(classes)} labels")
        return first["size"], init, [0.0, 1.0] if task == "binary" else classes

    def _aggregate(self, ctx: Context, s: Settings, parties: list[Party], w: np.ndarray,
                   size: int) -> tuple[list[float], bool]:
        losses: list[float] = []
        converged = False
        rounds = aggregation_epochs(s.epochs, s.aggregate_every)
        for r, epoch in enumerate(rounds):
            tag = ctx.tag(f"agg.{r}")
            updates = ctx.federation.get("nn_update", tag, parties)
            want = np.uint64 if s.secure_aggregate else np.float32
            for party, u in zip(parties, updates):
                arr = np.asarray(u)
                if arr.shape != (size + 2,) or arr.dtype != want:
                    raise ComponentError(f"{ctx.component}: update of {contributor(party)} is {arr.dtype} "
                                         f"{arr.shape}, expected {np.dtype(want)} ({size + 2},)")
            total = decode(add_words(updates)) if s.secure_aggregate else \
                np.sum([np.asarray(u, dtype=np.float64) for u in updates], axis=0)
            w_new, loss = total[:size] / total[-1], float(total[size] / total[-1])
            losses.append(loss)
            converged = self._converged(s, losses, w_new - w)
            w = w_new
            ctx.logger.info("aggregation %d (epoch %d): loss %.6f", r, epoch, loss)
            ctx.federation.remote({"model": w.astype(np.float32), "loss": loss, "converged": converged}, "nn_model",
                                  tag, parties)
            ctx.tracker.progress(r + 1, len(rounds))
            if converged:
                break
        return losses, converged

    @staticmethod
    def _converged(s: Settings, losses: list[float], delta: np.ndarray) -> bool:
        if s.early_stop == "weight_diff":
            return float(np.sqrt(delta @ delta)) < s.tol
        if s.early_stop == "abs":
            return losses[-1] < s.tol
        if s.early_stop == "diff":
            return len(losses) > 1 and abs(losses[-2] - losses[-1]) < s.tol
        return False
