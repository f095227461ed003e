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

    #: (n, features) bool: the values that go down a split's learned direction (use_missing), or None
    missing: np.ndarray | None = None

    @classmethod
    def fit(cls, x: np.ndarray, max_bin: int, missing: np.ndarray | None = None) -> Binning:
        """Up to ``max_bin`` quantile bins per column; equal quantiles collapse into one. With a
        ``missing`` mask the quantiles are of the other values and a missing value's bin is the
        one past the column's last (``n_bins[f]``)."""
        qs = np.arange(1, max_bin + 1) / max_bin
        points, cols = [], []
        for j in range(x.shape[1]):
            col = x[:, j] if missing is None else x[~missing[:, j], j]
            sp = np.unique(np.quantile(col, qs)) if len(col) else np.zeros(0)
            points.append(sp)
            idx = np.searchsorted(sp, x[:, j], side="left")
            cols.append(idx if missing is None else np.where(missing[:, j], len(sp), idx))
        bins = np.stack(cols, axis=1).astype(np.int32) if cols else np.zeros((len(x), 0), np.int32)
        return cls(points, bins, missing)

    @property
    def n_bins(self) -> list[int]:
        return [len(sp) for sp in self.split_points]

    def threshold(self, feature: int, bin_: int) -> float:
        return float(self.split_points[feature][bin_])

    @property
    def widths(self) -> list[int]:
        """Histogram length per feature: its bins, plus the missing bin with use_missing."""
        extra = 0 if self.missing is None else 1
        return [len(sp) + extra for sp in self.split_points]

    def goes_left(self, rows: np.ndarray, feature: int, bin_: int, missing_left: bool = False) -> np.ndarray:
        """Which of ``rows`` a split at (feature, bin) sends left (missing values: as told)."""
        b = self.bins[rows, feature]
        go = b <= bin_
        return go | (b == len(self.split_points[feature])) if missing_left and self.missing is not None else go


def missing_mask(x: np.ndarray, zero_as_missing: bool) -> np.ndarray:
    """FATE's missing values: NaN, and 0 with zero_as_missing."""
    return np.isnan(x) | (x == 0) if zero_as_missing else np.isnan(x)


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


def candidates_missing(hist: np.ndarray) -> tuple[list[tuple[int, bool]], np.ndarray]:
    """A feature's histogram whose last row is its missing bin -> ((bin, missing_left) worth
    trying, their left sums). First every bin with the missing values sent right, then, where
    the node has missing values, every bin with them sent left: as FATE, both directions are
    scored and the better gain wins (right on a tie, and where none are missing)."""
    real, miss = hist[:-1], hist[-1]
    cum = np.cumsum(real, axis=0) if len(real) else np.zeros((0, 3))
    seen = cum[-1, 2] if len(cum) else 0.0
    right = np.nonzero((real[:, 2] > 0) & (cum[:, 2] < seen + miss[2]))[0]
    where = [(int(b), False) for b in right]
    sums = [cum[right]]
    if miss[2] > 0:
        left = np.nonzero((real[:, 2] > 0) & (cum[:, 2] < seen))[0]
        where += [(int(b), True) for b in left]
        sums.append(cum[left] + miss[None, :])
    return where, np.concatenate(sums) if sums else np.zeros((0, 3))


def encrypted_candidates_missing(cells: dict[tuple[int, int, int], EncryptedNumber], node: int,
                                 bins: np.ndarray, n_bins: Sequence[int], rows: np.ndarray, features: Sequence[int]
                                 ) -> tuple[list[tuple[int, int, bool]], list[EncryptedNumber]]:
    """:func:`encrypted_candidates` with a missing bin (index ``n_bins[f]``): the same
    (feature, bin, missing_left) candidates as :func:`candidates_missing`, encrypted."""
    where: list[tuple[int, int, bool]] = []
    sums: list[EncryptedNumber] = []
    n = len(rows)
    for f in features:
        counts = np.bincount(bins[rows, f], minlength=n_bins[f] + 1)
        n_miss = int(counts[n_bins[f]])
        miss = cells.get((node, f, n_bins[f])) if n_miss else None
        acc, seen, lefts = None, 0, []
        for b in np.nonzero(counts[:n_bins[f]])[0].tolist():
            s = cells[(node, f, b)]
            acc = s if acc is None else acc + s
            seen += int(counts[b])
            if seen < n:
                where.append((f, b, False))
                sums.append(acc)
            if miss is not None and seen < n - n_miss:
                lefts.append((b, acc + miss))
        where += [(f, b, True) for b, _ in lefts]
        sums += [c for _, c in lefts]
    return where, sums


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
