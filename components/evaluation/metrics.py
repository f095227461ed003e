"""Pure metric functions behind the Evaluation component (numpy only, no I/O).

Kept apart from the component so tests and other components (validation during
training) can call them on plain arrays. Names follow FATE's metric names.
"""

from __future__ import annotations

import numpy as np

from flow.core.errors import ComponentError

#: most points a stored curve keeps (the first and last are always kept)
CURVE_POINTS = 200


def roc_points(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct threshold (descending), ties grouped."""
    order = np.argsort(-score, kind="mergesort")
    y, score = y[order], score[order]
    distinct = np.r_[np.nonzero(np.diff(score))[0], len(score) - 1]
    tps = np.cumsum(y)[distinct]
    fps = (distinct + 1) - tps
    pos, neg = max(tps[-1], 1), max(fps[-1], 1)
    return np.r_[0.0, fps / neg], np.r_[0.0, tps / pos], np.r_[np.inf, score[distinct]]


def binary_metrics(y: np.ndarray, score: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """AUC, KS and the thresholded accuracy/precision/recall/F1 of a 0/1 label vector."""
    if len(np.unique(y)) < 2:
        raise ComponentError("evaluation needs both classes among the labels")
    fpr, tpr, _ = roc_points(y, score)
    pred = (score >= threshold).astype(int)
    tp = int(((pred == 1) & (y == 1)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "auc": float(np.trapezoid(tpr, fpr)),
        "ks": float(np.max(tpr - fpr)),
        "accuracy": float((pred == y).mean()),
        "precision": precision,
        "recall": recall,
        "f1_score": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
    }


def multi_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Accuracy and macro precision/recall/F1 over the classes seen in labels or predictions
    (an undefined ratio counts 0, as scikit-learn's default does)."""
    classes = np.union1d(y, pred)
    precision, recall, f1 = [], [], []
    for c in classes:
        tp = float(((pred == c) & (y == c)).sum())
        p_den, r_den = float((pred == c).sum()), float((y == c).sum())
        p = tp / p_den if p_den else 0.0
        r = tp / r_den if r_den else 0.0
        precision.append(p)
        recall.append(r)
        f1.append(2 * p * r / (p + r) if p + r else 0.0)
    return {
        "accuracy": float((pred == y).mean()),
        "precision": float(np.mean(precision)),
        "recall": float(np.mean(recall)),
        "f1_score": float(np.mean(f1)),
    }


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """FATE's regression metrics; R² and explained variance are 1 for a perfect fit of a
    constant target and 0 otherwise (scikit-learn's convention), never NaN."""
    err = y - pred
    ss_tot = float(((y - y.mean()) ** 2).sum())
    var_y = float(y.var())

    def ratio_score(num: float, den: float) -> float:
        if den > 0:
            return 1.0 - num / den
        return 1.0 if num == 0 else 0.0

    mse = float((err ** 2).mean())
    return {
        "mean_absolute_error": float(np.abs(err).mean()),
        "mean_squared_error": mse,
        "root_mean_squared_error": float(np.sqrt(mse)),
        "median_absolute_error": float(np.median(np.abs(err))),
        "r2_score": ratio_score(float((err ** 2).sum()), ss_tot),
        "explained_variance": ratio_score(float(err.var()), var_y),
    }


def ks_curve(y: np.ndarray, score: np.ndarray) -> dict[str, list]:
    """TPR and FPR per descending threshold, with where their gap (the KS) is largest."""
    fpr, tpr, thr = roc_points(y, score)
    best = int(np.argmax(tpr - fpr))
    return {**thin({"threshold": _finite(thr), "tpr": tpr.tolist(), "fpr": fpr.tolist()}),
            "ks": float(tpr[best] - fpr[best]), "ks_threshold": _finite(thr[best:best + 1])[0]}


def roc_curve(y: np.ndarray, score: np.ndarray) -> dict[str, list]:
    fpr, tpr, thr = roc_points(y, score)
    return thin({"fpr": fpr.tolist(), "tpr": tpr.tolist(), "threshold": _finite(thr)})


def confusion_curve(y: np.ndarray, score: np.ndarray) -> dict[str, list]:
    """Confusion counts when every score at or above each distinct threshold (descending) is
    called positive: what precision-recall, lift and gain curves are drawn from."""
    fpr, tpr, thr = roc_points(y, score)
    pos = int(np.sum(y == 1))
    neg = len(y) - pos
    tp = np.rint(tpr * pos).astype(int) if pos else np.zeros(len(tpr), dtype=int)
    fp = np.rint(fpr * neg).astype(int) if neg else np.zeros(len(fpr), dtype=int)
    return thin({"threshold": _finite(thr), "tp": tp.tolist(), "fp": fp.tolist(),
                 "fn": (pos - tp).tolist(), "tn": (neg - fp).tolist()})


def confusion_at(y: np.ndarray, score: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Confusion counts at the threshold the thresholded metrics use (score >= threshold is positive)."""
    pred = score >= threshold
    return {"threshold": threshold, "tp": int((pred & (y == 1)).sum()), "fp": int((pred & (y == 0)).sum()),
            "fn": int((~pred & (y == 1)).sum()), "tn": int((~pred & (y == 0)).sum())}


def thin(curve: dict[str, list], points: int = CURVE_POINTS) -> dict[str, list]:
    """Every k-th point of each equally long list, keeping the last, so a stored curve stays small."""
    n = len(next(iter(curve.values())))
    if n <= points:
        return curve
    keep = sorted(set(range(0, n, -(-n // points))) | {n - 1})
    return {k: [v[i] for i in keep] for k, v in curve.items()}


def _finite(values: np.ndarray) -> list:
    return [float(v) if np.isfinite(v) else None for v in values]
