"""SER point metrics and their intervals (numpy; scipy for the t-interval only).

The one home of every number a report states about one system: point metrics, the batched
count kernels the report's bootstrap uses, percentile bootstrap intervals, the mean/std over
seeds, and the dimensional metrics (CCC, Pearson r, MAE). Tests that compare systems live in
``jaxser.significance``, tables over a study's predictions in ``jaxser.study.tables``.

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



def mean_ci(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean of per-unit scores and its Student-t interval (NaN bounds for fewer than 2 finite
    units; non-finite values are dropped): the band a layer profile draws around the mean over
    corpus pairs or folds. It treats the units as independent samples, so it describes spread,
    not a test (comparisons use `significance_rows`)."""
    from scipy import stats

    v = np.asarray(values, np.float64).ravel()
    v = v[np.isfinite(v)]
    if not v.size:
        return np.nan, np.nan, np.nan
    mean, sd = mean_std(v)
    if v.size < 2:
        return mean, np.nan, np.nan
    half = stats.t.ppf(0.5 + confidence / 2, v.size - 1) * sd / np.sqrt(v.size)
    return mean, mean - half, mean + half


# ----------------------------------------------------------------------------- resampling

def _metric_fn(metric: MetricLike):
    if isinstance(metric, str):
        if metric not in _CM_METRICS:
            raise ValueError(f"unknown metric {metric!r}; expected one of {sorted(_CM_METRICS)} or a callable")
        return _CM_METRICS[metric]
    if callable(metric):
        return metric
    raise TypeError(f"metric must be a name or a callable, got {type(metric).__name__}")


def seed_stack(y, yhat) -> tuple[np.ndarray, np.ndarray]:
    """Checked labels y [N] and predictions [S, N] from yhat [N] or [S, N] (several seeds,
    scored separately and averaged): the input of every resampling procedure, the paired tests
    of jaxser.significance included."""
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


def score_stack(metric: MetricLike, y: np.ndarray, yhat: np.ndarray, c: int) -> np.ndarray:
    """Metric for stacks y [B, N] and yhat [B, S, N] -> [B] (mean over S); ``c`` classes."""
    fn = _metric_fn(metric)
    if isinstance(metric, str):
        cm = _batched_confusion(np.broadcast_to(y[:, None, :], yhat.shape), yhat, c)
        return fn(cm).mean(-1)
    return np.array([np.mean([fn(yb, ps) for ps in pb]) for yb, pb in zip(y, yhat)])


def replicate_scores(metric, y, preds: list[np.ndarray], n: int, seed: int, draw) -> list[np.ndarray]:
    """Score ``n`` replicates in blocks; ``draw(rng, k)`` returns (y [k, N], [p [k, S, N] ...])."""
    c = int(max([y.max()] + [p.max() for p in preds])) + 1
    rng = np.random.default_rng(seed)
    out = [[] for _ in preds]
    for start in range(0, n, _BLOCK):
        k = min(_BLOCK, n - start)
        yb, pbs = draw(rng, k)
        for o, pb in zip(out, pbs):
            o.append(score_stack(metric, yb, pb, c))
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
    y, yhat = seed_stack(y, yhat)
    n = y.size
    c = int(max(y.max(), yhat.max())) + 1
    point = float(score_stack(metric, y[None], yhat[None], c)[0])

    def draw(rng, k):
        idx = rng.integers(0, n, size=(k, n))
        return y[idx], [yhat[:, idx].transpose(1, 0, 2)]

    reps = replicate_scores(metric, y, [yhat], n_boot, seed, draw)[0]
    lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    return point, float(lo), float(hi)


# ----------------------------------------------------------------------------- count kernels
# The report's batched metrics: many label/prediction vectors, or many bootstrap resamples of
# one, scored with one bincount or one matrix product instead of a Python loop.

REPORTED = ("uar", "accuracy", "macro_f1")


def _from_counts(tp, n_true, n_pred, acc) -> dict[str, np.ndarray]:
    """The metrics from per-class counts [..., C] (true positives, true and predicted rows)."""
    present = n_true > 0
    recall = np.where(present, tp / np.maximum(n_true, 1), 0.0)
    uar_ = recall.sum(-1) / np.maximum(present.sum(-1), 1)
    union = present | (n_pred > 0)
    f1 = np.where(tp > 0, 2 * tp / np.maximum(n_true + n_pred, 1), 0.0)
    macro_f1_ = f1.sum(-1) / np.maximum(union.sum(-1), 1)
    return {"uar": uar_, "accuracy": acc, "macro_f1": macro_f1_}


def metrics_from_confusion(cm) -> dict[str, np.ndarray]:
    """UAR, accuracy (WA) and macro-F1 of confusion matrices [..., C, C] (rows = truth)."""
    cm = np.asarray(cm)
    tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(np.float64)
    n_true, n_pred = cm.sum(-1), cm.sum(-2)
    return _from_counts(tp, n_true, n_pred, tp.sum(-1) / np.maximum(n_true.sum(-1), 1))


def batched_metrics(y: np.ndarray, p: np.ndarray, n_classes: int) -> dict[str, np.ndarray]:
    """UAR, accuracy and macro-F1 of many label/prediction vectors at once.

    y, p: int arrays [..., N]. Definitions follow scikit-learn: UAR averages recall over the
    classes present in y (balanced_accuracy_score); macro-F1 averages over the union of
    classes in y and p (f1_score(average='macro', zero_division=0)).
    """
    y, p = np.broadcast_arrays(np.asarray(y), np.asarray(p))
    lead, n = y.shape[:-1], y.shape[-1]
    rows = np.arange(int(np.prod(lead, dtype=np.int64)))[:, None] * n_classes  # one bincount for all vectors
    y2, p2 = y.reshape(-1, n).astype(np.int64), p.reshape(-1, n).astype(np.int64)
    size = rows.shape[0] * n_classes

    def count(idx, weights=None):
        return np.bincount((rows + idx).ravel(), weights, minlength=size).reshape(lead + (n_classes,))

    hit = y2 == p2
    return _from_counts(count(y2, hit.ravel()), count(y2), count(p2), hit.mean(-1).reshape(lead))


def resampled_metrics(y: np.ndarray, p: np.ndarray, n_classes: int, idx: np.ndarray) -> dict[str, np.ndarray]:
    """``batched_metrics(y[idx], p[..., idx], n_classes)`` without building the resamples.

    y: [N]; p: [N] or [S, N]; idx: [B, N] bootstrap draws. A resample only changes how often
    each utterance counts, so its confusion counts are one matrix product of the draw counts
    [B, N] with per-utterance class indicators: O(B*N*S*C) multiply-adds in BLAS instead of
    O(B*N*S) gathered rows. Returns arrays [S, B] (or [B]); the counts are exact integers, so
    the result equals the gathered computation.
    """
    y, p = np.asarray(y), np.asarray(p)
    single = p.ndim == 1
    p = p[None] if single else p
    b, n = idx.shape
    w = np.bincount((np.arange(b)[:, None] * n + idx).ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
    classes = np.arange(n_classes)
    ey = (y[:, None] == classes).astype(np.float64)                       # [N, C]
    ep = p[..., None] == classes                                          # [S, N, C]
    s = p.shape[0]

    def per_seed(ind):  # [S, N, C] indicators -> [S, B, C] resampled counts
        return (w @ ind.transpose(1, 0, 2).reshape(n, s * n_classes)).reshape(b, s, n_classes).transpose(1, 0, 2)

    tp = per_seed((ep & (ey > 0)).astype(np.float64))
    acc = (w @ (p == y).T.astype(np.float64)).T / n                       # [S, B]
    out = _from_counts(tp, (w @ ey)[None], per_seed(ep.astype(np.float64)), acc)
    return {k: v[0] for k, v in out.items()} if single else out


# ----------------------------------------------------------------------------- dimensional (regression)
# Arousal, valence and dominance are scored by Lin's concordance correlation coefficient, the
# metric of the dimensional SER literature (AVEC, the Odyssey 2024 challenge), with Pearson r
# and the mean absolute error beside it. All three are vectorised over leading axes and
# computed from weighted moments, so a bootstrap resample is one matrix product of its draw
# counts, as for the confusion-count metrics above.

DIMENSIONAL_REPORTED = ("ccc", "pearson", "mae")


def _regression_pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.broadcast_arrays(np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64))
    if y.shape[-1] == 0:
        raise ValueError("regression metrics need at least one value")
    if not (np.isfinite(y).all() and np.isfinite(p).all()):
        raise ValueError("regression metrics need finite targets and predictions (drop rows without a rating)")
    return y, p


def _moments(y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Weighted means, (biased) variances and covariance over the last axis; ``w`` [..., N]
    non-negative weights (None: all 1). Centred on the unweighted means first, so the
    differences of large sums never lose the variance of values far from 0."""
    cy, cp = y.mean(-1, keepdims=True), p.mean(-1, keepdims=True)
    yc, pc = y - cy, p - cp
    if w is None:
        w = np.ones(y.shape[-1])
    n = w.sum(-1)
    my, mp = (w * yc).sum(-1) / n, (w * pc).sum(-1) / n
    vy = (w * yc * yc).sum(-1) / n - my ** 2
    vp = (w * pc * pc).sum(-1) / n - mp ** 2
    cov = (w * yc * pc).sum(-1) / n - my * mp
    return my + cy[..., 0], mp + cp[..., 0], np.maximum(vy, 0.0), np.maximum(vp, 0.0), cov


def _ccc_from(my, mp, vy, vp, cov) -> np.ndarray:
    den = vy + vp + (my - mp) ** 2
    return np.where(den > 0, 2 * cov / np.where(den > 0, den, 1.0), 1.0)  # den 0: p == y, constant


def _pearson_from(vy, vp, cov) -> np.ndarray:
    den = np.sqrt(vy * vp)
    return np.where(den > 0, cov / np.where(den > 0, den, 1.0), 0.0)  # a constant side: r undefined, 0


def ccc(y_true, y_pred) -> float | np.ndarray:
    """Lin's (1989) concordance correlation coefficient over the last axis:
    2 cov(y, p) / (var(y) + var(p) + (mean(y) - mean(p))^2), with population (biased) moments
    as Lin defines it. It is Pearson's r scaled down by any difference in scale or location,
    so |CCC| <= |r| and CCC = 1 only when the predictions equal the targets. Two equal
    constant vectors score 1; a constant prediction of a varying target scores 0."""
    y, p = _regression_pair(y_true, y_pred)
    out = _ccc_from(*_moments(y, p))
    return float(out) if out.ndim == 0 else out


def pearson(y_true, y_pred) -> float | np.ndarray:
    """Pearson's correlation over the last axis (0 when either side is constant)."""
    y, p = _regression_pair(y_true, y_pred)
    _, _, vy, vp, cov = _moments(y, p)
    out = _pearson_from(vy, vp, cov)
    return float(out) if out.ndim == 0 else out


def mae(y_true, y_pred) -> float | np.ndarray:
    """Mean absolute error over the last axis."""
    y, p = _regression_pair(y_true, y_pred)
    out = np.abs(y - p).mean(-1)
    return float(out) if out.ndim == 0 else out


def regression_metrics(y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """CCC, Pearson r and MAE of many target/prediction vectors at once (y, p [..., N]), with
    optional per-utterance weights ``w`` [..., N] (a bootstrap resample's draw counts)."""
    y, p = _regression_pair(y, p)
    if w is not None:
        w = np.broadcast_to(np.asarray(w, np.float64), y.shape)
    my, mp, vy, vp, cov = _moments(y, p, w)
    err = np.abs(y - p)
    return {"ccc": _ccc_from(my, mp, vy, vp, cov), "pearson": _pearson_from(vy, vp, cov),
            "mae": err.mean(-1) if w is None else (w * err).sum(-1) / w.sum(-1)}


def resampled_regression_metrics(y: np.ndarray, p: np.ndarray, idx: np.ndarray) -> dict[str, np.ndarray]:
    """``regression_metrics(y[idx], p[..., idx])`` without building the resamples: y [N], p [S, N]
    (or [N]), idx [B, N] bootstrap draws -> arrays [S, B] (or [B]). A resample only changes how
    often each utterance counts, so it is the weighted metric with the draw counts as weights."""
    y, p = np.asarray(y, np.float64), np.asarray(p, np.float64)
    single = p.ndim == 1
    p = p[None] if single else p
    b, n = idx.shape
    w = np.bincount((np.arange(b)[:, None] * n + idx).ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
    out = regression_metrics(np.broadcast_to(y, (p.shape[0], b, n)), p[:, None, :], w[None])
    return {k: v[0] for k, v in out.items()} if single else out


def regression_bootstrap_ci(y, p, metric: str = "ccc", n_boot: int = 1000, alpha: float = 0.05,
                            seed: int = 0) -> tuple[float, float, float]:
    """Percentile bootstrap over test utterances of a seed-averaged regression metric:
    (point estimate, low, high). ``p`` [N] or [S, N] (one row per seed); each replicate
    resamples the utterances once for every seed, as ``bootstrap_ci`` does for UAR."""
    if metric not in DIMENSIONAL_REPORTED:
        raise ValueError(f"unknown metric {metric!r}; expected one of {DIMENSIONAL_REPORTED}")
    if not 0 < alpha < 1 or n_boot < 1:
        raise ValueError(f"regression_bootstrap_ci: alpha={alpha} must be in (0, 1), n_boot={n_boot} >= 1")
    y = np.asarray(y, np.float64)
    p = np.atleast_2d(np.asarray(p, np.float64))
    point = float(regression_metrics(y, p)[metric].mean())
    rng = np.random.default_rng(seed)
    reps = np.concatenate([resampled_regression_metrics(y, p, rng.integers(0, y.size, size=(min(_BLOCK, n_boot - s),
                                                                                         y.size)))[metric].mean(0)
                           for s in range(0, n_boot, _BLOCK)])
    lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    return point, float(lo), float(hi)

