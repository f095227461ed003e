"""HeteroFeatureBinning with a multiclass label: WOE/IV one class against the rest, per class.

For each class k the event count of a bin is its samples of class k and the non-event
count the others (FATE's one-vs-rest). A host's bins are counted as in the binary case,
on a one-hot label:

  guest  sends [[y == k]] for every class k, per sample                  -> host
  host   sums each of the K ciphertexts per (column, bin)                -> guest
  guest  decrypts the K class counts per bin; WOE and IV per class

Each column's result keeps ``multiclass_iv`` (one IV per class, in ``labels`` order),
``multiclass_results`` (the full statistics per class) and, for readers of a binary
model, ``iv`` as their mean. HeteroFeatureSelection merges the per-class IVs as
``mul_class_merge_type`` asks. Optimal binning and the WOE transform are binary only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from components.base import Context, Dataset, Instance
from components.crypto.paillier import PaillierPublicKey, generate_keypair
from components.feature.binning import bin_index, bin_statistics
from flow.core.errors import ComponentError


def _encrypt_one_hot(pub: PaillierPublicKey, classes: list[float]):
    def f(inst: Instance) -> tuple:
        return tuple(pub.encrypt(int(inst.label == k)).obfuscate() for k in classes)
    return f


def one_vs_rest(counts: np.ndarray, adjustment_factor: float) -> dict[str, Any]:
    """Result of one column from its (bins + missing slot) x classes counts."""
    total = counts.sum(1)
    results = [bin_statistics(counts[:, k], total - counts[:, k], adjustment_factor) for k in range(counts.shape[1])]
    ivs = [r["iv"] for r in results]
    return {"multiclass_iv": ivs, "iv": float(np.mean(ivs)), "multiclass_results": results,
            "count_array": results[0]["count_array"], "has_missing_bin": results[0]["has_missing_bin"]}


def multiclass_statistics(ctx: Context, p: Any, data: Dataset, cols: list[int], split_points: list[np.ndarray],
                          x: np.ndarray, y: np.ndarray, model: dict) -> None:
    """The guest's part for a label with more than two classes (fills ``model`` in place)."""
    if p.method == "optimal":
        raise ComponentError(f"{ctx.component}: not supported: method 'optimal' with a multiclass label "
                             f"({len(np.unique(y))} classes)")
    if p.transform_param.transform_type == "woe" and p.transform_param.transform_cols not in (None, []):
        raise ComponentError(f"{ctx.component}: not supported: transform_type 'woe' with a multiclass label")
    header, hosts = model["header"], ctx.role_parties("host")
    classes = np.unique(y).tolist()
    model["labels"] = classes
    ivs: dict[str, list[float]] = {}
    for j, (c, sp) in enumerate(zip(cols, split_points)):
        idx = bin_index(x[:, j], sp)
        counts = np.stack([np.bincount(idx, weights=(y == k).astype(float), minlength=len(sp) + 1)
                           for k in classes], 1)
        model["binning_result"][header[c]].update(one_vs_rest(counts, p.adjustment_factor))
        ivs[header[c]] = model["binning_result"][header[c]]["multiclass_iv"]
    if hosts and not p.local_only:
        pub, priv = generate_keypair(p.encrypt_param.key_length)
        ctx.federation.remote(data.table.map_values(_encrypt_one_hot(pub, classes)), "encrypted_label", ctx.tag(),
                              hosts)
        for host, (names, sums, _) in zip(hosts, ctx.federation.get("encrypted_bin_sum", ctx.tag(), hosts)):
            result = {}
            for name, col in zip(names, sums):
                counts = np.rint(np.array([[priv.decrypt(v) for v in s] if s else [0.0] * len(classes)
                                           for s in col]))
                result[name] = one_vs_rest(counts, p.adjustment_factor)
                ivs[name] = result[name]["multiclass_iv"]
            model["host_results"][host.party_id] = result
    ctx.tracker.log_metric("binning", "multiclass_iv", ivs)
    ctx.tracker.log_metric("binning", "labels", classes)
    ctx.logger.info("one-vs-rest IV of %d features over %d classes", len(ivs), len(classes))
