"""Quantile binning and per-node histograms of (g, h, count), plain and encrypted.

A split candidate of feature f at bin b sends left every sample with ``bin <= b``, i.e.
``x <= split_points[f][b]``: the threshold a party keeps in its model. Candidates are
described by *cumulative* sums (the left child's Σg, Σh, count) so the guest can score a
split without learning anything per bin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from components.crypto.paillier import EncryptedNumber


@dataclass
class Binning:
    """Split points per feature (ascending, the last is the column's maximum) and bin indices."""

    split_points: list[np.ndarray]
    bins: np.ndarray  # (n, features) int32

    @classmethod
    def fit(cls, x: np.ndarray, max_bin: int) -> Binning:
        """Up to ``max_bin`` quantile bins per column; equal quantiles collapse into one."""
        qs = np.arange(1, max_bin + 1) / max_bin
        points, cols = [], []
        for j in range(x.shape[1]):
            col = x[:, j]
            sp = np.unique(np.quantile(col, qs)) if len(col) else np.zeros(0)
            points.append(sp)
            cols.append(np.searchsorted(sp, col, side="left"))
        bins = np.stack(cols, axis=1).astype(np.int32) if cols else np.zeros((len(x), 0), np.int32)
        return cls(points, bins)

    @property
    def n_bins(self) -> list[int]:
        return [len(sp) for sp in self.split_points]

    def threshold(self, feature: int, bin_: int) -> float:
        return float(self.split_points[feature][bin_])


def plain_histogram(bins: np.ndarray, n_bins: Sequence[int], rows: np.ndarray, g: np.ndarray,
                    h: np.ndarray) -> list[np.ndarray]:
    """Per feature, an (n_bins_f, 3) array of (Σg, Σh, count) of ``rows`` per bin."""
    out = []
    sub_g, sub_h = g[rows], h[rows]
    for f, nb in enumerate(n_bins):
        b = bins[rows, f]
        out.append(np.stack([np.bincount(b, sub_g, nb), np.bincount(b, sub_h, nb),
                             np.bincount(b, minlength=nb).astype(np.float64)], axis=1))
    return out


def candidates(hist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A feature's histogram -> (bins b worth trying, cumulative sums up to each).

    Skipped: bins with no rows (same partition as the bin before) and those that leave
    nothing on the right.
    """
    cum = np.cumsum(hist, axis=0)
    total = cum[-1, 2] if len(cum) else 0.0
    keep = np.nonzero((hist[:, 2] > 0) & (cum[:, 2] < total))[0]
    return keep, cum[keep]


def encrypted_candidates(cells: dict[tuple[int, int, int], EncryptedNumber], node: int, bins: np.ndarray,
                         n_bins: Sequence[int], rows: np.ndarray,
                         features: Sequence[int]) -> tuple[list[tuple[int, int]], list[EncryptedNumber]]:
    """Host side, one node: every useful (feature, bin) split and its encrypted left sum,
    from the per-bin sums ``cells[(node, feature, bin)]`` (see ``parallel.node_histograms``)."""
    where: list[tuple[int, int]] = []
    sums: list[EncryptedNumber] = []
    n = len(rows)
    for f in features:
        counts = np.bincount(bins[rows, f], minlength=n_bins[f])
        acc, seen = None, 0
        for b in np.nonzero(counts)[0].tolist():
            s = cells[(node, f, b)]
            acc = s if acc is None else acc + s
            seen += int(counts[b])
            if seen < n:
                where.append((f, b))
                sums.append(acc)
    return where, sums
