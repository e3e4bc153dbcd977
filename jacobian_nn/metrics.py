"""Classification metrics (seed 003's ``get_metrics``), from integer labels.

For ``K`` classes and the confusion matrix ``C`` (``C[i, j]`` = number of samples of
true class i predicted as j; rows are truth, columns are predictions)::

    accuracy     = trace(C) / sum(C)
    precision_j  = C[j, j] / sum_i C[i, j]      (0 when class j is never predicted)
    recall_j     = C[j, j] / sum_k C[j, k]      (0 when class j has no samples)
    f1_j         = 2 p_j r_j / (p_j + r_j)      (0 when p_j + r_j = 0)
    support_j    = sum_k C[j, k]

The "weighted" overall values (seed 003 uses sklearn's ``average="weighted"``)
average the per-class values with weights ``support_j / N``. The zero conventions
match scikit-learn's ``zero_division=0``.
"""

from __future__ import annotations

import numpy as np


def _labels(y, name: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of integer labels, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer labels, got dtype {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name}: expected labels >= 0, got {arr.min()}")
    return arr.astype(np.int64)


def _pair(y_true, y_pred):
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_pred: expected shape {t.shape} to match y_true, got {p.shape}")
    if t.size == 0:
        raise ValueError("y_true: expected at least one sample, got none")
    return t, p


def accuracy(y_true, y_pred) -> float:
    """Fraction of positions where ``y_pred == y_true`` (both ``(N,)`` integer labels)."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(t == p))


def confusion_matrix(y_true, y_pred, n_classes: int | None = None) -> np.ndarray:
    """``C`` ``(K, K)`` int64, ``C[i, j]`` = #(true i, predicted j). ``K`` defaults to
    ``max(label) + 1``; a given ``n_classes`` must cover every label."""
    t, p = _pair(y_true, y_pred)
    k = int(max(t.max(), p.max())) + 1
    if n_classes is None:
        n_classes = k
    elif n_classes < k:
        raise ValueError(f"n_classes: expected >= {k} (largest label + 1), got {n_classes}")
    C = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(C, (t, p), 1)
    return C


def precision_recall_f1(y_true, y_pred, n_classes: int | None = None):
    """Per-class ``(precision, recall, f1, support)``, each ``(K,)`` (see the module docstring)."""
    C = confusion_matrix(y_true, y_pred, n_classes)
    tp = np.diag(C).astype(np.float64)
    predicted = C.sum(axis=0)
    support = C.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return precision, recall, f1, support


def classification_report(y_true, y_pred, classes) -> dict:
    """Seed 003's ``get_metrics``: ``{"overall": {...}, "class": {name: {...}}}`` with
    precision, recall, f1 and num_samples; overall values are support-weighted, plus accuracy."""
    classes = list(classes)
    precision, recall, f1, support = precision_recall_f1(y_true, y_pred, len(classes))
    w = support / support.sum()
    report: dict[str, dict] = {
        "overall": {
            "accuracy": accuracy(y_true, y_pred),
            "precision": float(w @ precision),
            "recall": float(w @ recall),
            "f1": float(w @ f1),
            "num_samples": int(support.sum()),
        },
        "class": {},
    }
    for i, c in enumerate(classes):
        report["class"][str(c)] = {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "num_samples": int(support[i]),
        }
    return report
