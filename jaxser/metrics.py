"""SER metrics, confidence intervals and paired significance tests (numpy only).

Point metrics follow scikit-learn's definitions exactly (tests compare against it), so numbers
in reports mean what readers expect:
- ``uar``: balanced accuracy = mean recall over the classes present in ``y_true``;
- ``accuracy`` (weighted accuracy, WA);
- ``macro_f1``: ``f1_score(average="macro", zero_division=0)`` over the union of true and
  predicted labels unless ``labels`` is given.

Every metric is computed from a confusion matrix, so bootstrap and permutation replicates are
evaluated in bulk on a stack of confusion matrices (``[B, C, C]``) instead of B Python calls.
A metric may be named ("uar", "accuracy", "macro_f1") or be any callable ``f(y, yhat)``; a
callable falls back to one call per replicate.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

MetricLike = str | Callable[[np.ndarray, np.ndarray], float]
_BLOCK = 256  # replicates per vectorised block (bounds memory at B * N indices)


# ----------------------------------------------------------------------------- basics

def _labels_1d(y, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{what}: expected a 1-D array of integer labels, got shape {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{what}: expected integer labels, got dtype {y.dtype}")
    if y.size and y.min() < 0:
        raise ValueError(f"{what}: labels must be >= 0, got {y.min()}")
    return y.astype(np.int64)


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y = _labels_1d(y_true, "y_true")
    p = _labels_1d(y_pred, "y_pred")
    if y.shape != p.shape:
        raise ValueError(f"y_true has {y.size} labels but y_pred has {p.size}")
    if y.size == 0:
        raise ValueError("metrics of an empty set are undefined (0 utterances)")
    return y, p


def _n_classes(*arrays, n_classes: int | None = None) -> int:
    top = max(int(a.max()) for a in arrays) + 1
    if n_classes is None:
        return top
    if top > n_classes:
        raise ValueError(f"label {top - 1} is out of range for n_classes={n_classes}")
    return int(n_classes)


def confusion(y_true, y_pred, n_classes: int | None = None) -> np.ndarray:
    """Counts [C, C]: rows are true classes, columns predicted classes (sklearn's layout)."""
    y, p = _pair(y_true, y_pred)
    c = _n_classes(y, p, n_classes=n_classes)
    return np.bincount(y * c + p, minlength=c * c).reshape(c, c)


def _batched_confusion(y: np.ndarray, p: np.ndarray, c: int) -> np.ndarray:
    """y, p: [..., N] -> [..., C, C] counts, one bincount for the whole stack."""
    lead = y.shape[:-1]
    k = int(np.prod(lead)) if lead else 1
    flat = (np.arange(k).reshape(lead + (1,)) * (c * c) + y * c + p).ravel()
    return np.bincount(flat, minlength=k * c * c).reshape(lead + (c, c))


# metrics from confusion matrices [..., C, C] ---------------------------------------------

def _uar_cm(cm: np.ndarray) -> np.ndarray:
    support = cm.sum(-1)
    present = support > 0
    recall = np.diagonal(cm, axis1=-2, axis2=-1) / np.maximum(support, 1)
    return np.where(present, recall, 0.0).sum(-1) / np.maximum(present.sum(-1), 1)


def _accuracy_cm(cm: np.ndarray) -> np.ndarray:
    return np.diagonal(cm, axis1=-2, axis2=-1).sum(-1) / cm.sum((-2, -1))


def _macro_f1_cm(cm: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(np.float64)
    fn = cm.sum(-1) - tp
    fp = cm.sum(-2) - tp
    denom = 2 * tp + fp + fn
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)  # zero_division=0
    if labels is None:
        used = (cm.sum(-1) + cm.sum(-2)) > 0  # union of true and predicted labels
    else:
        used = np.zeros(cm.shape[-1], bool)
        used[labels] = True
        used = np.broadcast_to(used, f1.shape)
    return np.where(used, f1, 0.0).sum(-1) / np.maximum(used.sum(-1), 1)


_CM_METRICS = {"uar": _uar_cm, "accuracy": _accuracy_cm, "macro_f1": _macro_f1_cm}


def uar(y_true, y_pred) -> float:
    """Unweighted average recall (sklearn ``balanced_accuracy_score``): the mean recall over
    the classes that occur in y_true; predicted-only classes do not count."""
    return float(_uar_cm(confusion(y_true, y_pred)))


def accuracy(y_true, y_pred) -> float:
    """Weighted accuracy (WA): the fraction of utterances classified correctly."""
    y, p = _pair(y_true, y_pred)
    return float(np.mean(y == p))


def macro_f1(y_true, y_pred, labels: Sequence[int] | None = None) -> float:
    """Macro F1 as ``sklearn.metrics.f1_score(average="macro", zero_division=0)``: over
    ``labels`` when given, else over the union of true and predicted labels."""
    y, p = _pair(y_true, y_pred)
    if labels is None:
        return float(_macro_f1_cm(confusion(y, p)))
    labels = np.asarray(labels, np.int64)
    if labels.size == 0:
        raise ValueError("macro_f1: labels is empty")
    if labels.min() < 0:
        raise ValueError(f"macro_f1: labels must be >= 0, got {labels.min()}")
    c = max(int(labels.max()) + 1, int(max(y.max(), p.max())) + 1)
    return float(_macro_f1_cm(confusion(y, p, c), labels))


def per_class_recall(y_true, y_pred, n_classes: int | None = None) -> np.ndarray:
    """Recall of every class 0..C-1; NaN for classes absent from y_true (undefined)."""
    cm = confusion(y_true, y_pred, n_classes)
    support = cm.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / support, np.nan)


def chance_uar(n_classes: int) -> float:
    """UAR of any constant or label-independent random predictor: 1 / C."""
    if n_classes < 1:
        raise ValueError(f"chance_uar: n_classes={n_classes} must be >= 1")
    return 1.0 / n_classes


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0.0 for a single value) over seeds."""
    v = np.asarray(values, np.float64).ravel()
    if v.size == 0:
        raise ValueError("mean_std: no values")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


# ----------------------------------------------------------------------------- resampling

def _metric_fn(metric: MetricLike):
    if isinstance(metric, str):
        if metric not in _CM_METRICS:
            raise ValueError(f"unknown metric {metric!r}; expected one of {sorted(_CM_METRICS)} or a callable")
        return _CM_METRICS[metric]
    if callable(metric):
        return metric
    raise TypeError(f"metric must be a name or a callable, got {type(metric).__name__}")


def _stacked(y, yhat) -> tuple[np.ndarray, np.ndarray]:
    """y [N], yhat [N] or [S, N] (several seeds, scored separately and averaged)."""
    y = _labels_1d(y, "y")
    yhat = np.asarray(yhat)
    if yhat.ndim == 1:
        yhat = yhat[None]
    if yhat.ndim != 2 or yhat.shape[1] != y.size:
        raise ValueError(f"predictions must be [N] or [S, N] with N={y.size}, got shape {yhat.shape}")
    if not np.issubdtype(yhat.dtype, np.integer) or (yhat.size and yhat.min() < 0):
        raise ValueError("predictions must be non-negative integer labels")
    if y.size == 0:
        raise ValueError("resampling needs at least one utterance")
    return y, yhat.astype(np.int64)


def _score(metric: MetricLike, y: np.ndarray, yhat: np.ndarray, c: int) -> np.ndarray:
    """Metric for stacks y [B, N] and yhat [B, S, N] -> [B] (mean over S)."""
    fn = _metric_fn(metric)
    if isinstance(metric, str):
        cm = _batched_confusion(np.broadcast_to(y[:, None, :], yhat.shape), yhat, c)
        return fn(cm).mean(-1)
    return np.array([np.mean([fn(yb, ps) for ps in pb]) for yb, pb in zip(y, yhat)])


def _replicates(metric, y, preds: list[np.ndarray], n: int, seed: int, draw) -> list[np.ndarray]:
    """Score ``n`` replicates in blocks; ``draw(rng, k)`` returns (y [k, N], [p [k, S, N] ...])."""
    c = int(max([y.max()] + [p.max() for p in preds])) + 1
    rng = np.random.default_rng(seed)
    out = [[] for _ in preds]
    for start in range(0, n, _BLOCK):
        k = min(_BLOCK, n - start)
        yb, pbs = draw(rng, k)
        for o, pb in zip(out, pbs):
            o.append(_score(metric, yb, pb, c))
    return [np.concatenate(o) for o in out]


def bootstrap_ci(y, yhat, metric: MetricLike = "uar", n_boot: int = 1000, alpha: float = 0.05,
                 seed: int = 0) -> tuple[float, float, float]:
    """Percentile bootstrap over test utterances: (point estimate, low, high).

    ``yhat`` may be [S, N] (one row per training seed): each replicate resamples utterances
    once and averages the metric over seeds, so the interval reflects test-set sampling of
    the seed-averaged score.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"bootstrap_ci: alpha={alpha} must be in (0, 1)")
    if n_boot < 1:
        raise ValueError(f"bootstrap_ci: n_boot={n_boot} must be >= 1")
    y, yhat = _stacked(y, yhat)
    n = y.size
    c = int(max(y.max(), yhat.max())) + 1
    point = float(_score(metric, y[None], yhat[None], c)[0])

    def draw(rng, k):
        idx = rng.integers(0, n, size=(k, n))
        return y[idx], [yhat[:, idx].transpose(1, 0, 2)]

    reps = _replicates(metric, y, [yhat], n_boot, seed, draw)[0]
    lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    return point, float(lo), float(hi)


def paired_bootstrap_test(y, yhat_a, yhat_b, metric: MetricLike = "uar", n_boot: int = 1000,
                          seed: int = 0) -> float:
    """Two-sided paired bootstrap p-value for H0: metric(A) == metric(B) on this population.

    Both systems are scored on the same resampled utterances; with observed difference d and
    replicate differences d*, p = (1 + #{|d* - d| >= |d|}) / (n_boot + 1), i.e. how often the
    null-centred bootstrap distribution is at least as extreme as what was observed
    (Efron & Tibshirani 1993, sec. 16.4). Identical systems give p = 1.
    """
    y, a = _stacked(y, yhat_a)
    _, b = _stacked(y, yhat_b)
    n = y.size
    c = int(max(y.max(), a.max(), b.max())) + 1
    d = float(_score(metric, y[None], a[None], c)[0] - _score(metric, y[None], b[None], c)[0])

    def draw(rng, k):
        idx = rng.integers(0, n, size=(k, n))
        return y[idx], [a[:, idx].transpose(1, 0, 2), b[:, idx].transpose(1, 0, 2)]

    ra, rb = _replicates(metric, y, [a, b], n_boot, seed, draw)
    extreme = np.abs((ra - rb) - d) >= abs(d) - 1e-12
    return float((1 + extreme.sum()) / (n_boot + 1))


def paired_permutation_test(y, yhat_a, yhat_b, metric: MetricLike = "uar", n_perm: int = 1000,
                            seed: int = 0) -> float:
    """Two-sided paired approximate-randomisation test: under H0 the two systems are
    exchangeable per utterance, so their predictions are swapped at random (the same swap for
    every seed row); p = (1 + #{|d_perm| >= |d|}) / (n_perm + 1). Identical systems give 1."""
    y, a = _stacked(y, yhat_a)
    _, b = _stacked(y, yhat_b)
    if a.shape != b.shape:
        raise ValueError(f"paired test: prediction shapes differ, {a.shape} vs {b.shape}")
    n = y.size
    c = int(max(y.max(), a.max(), b.max())) + 1
    d = float(_score(metric, y[None], a[None], c)[0] - _score(metric, y[None], b[None], c)[0])

    def draw(rng, k):
        swap = rng.random((k, 1, n)) < 0.5
        return np.broadcast_to(y, (k, n)), [np.where(swap, b[None], a[None]), np.where(swap, a[None], b[None])]

    ra, rb = _replicates(metric, y, [a, b], n_perm, seed, draw)
    extreme = np.abs(ra - rb) >= abs(d) - 1e-12
    return float((1 + extreme.sum()) / (n_perm + 1))
