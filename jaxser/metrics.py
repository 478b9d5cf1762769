"""SER metrics, confidence intervals, significance and rank tests (numpy/scipy only).

Long on purpose: one home for every statistic, so the report and the spec cannot disagree.

The one home for every number a report states: point metrics, the batched count kernels the
report's bootstrap uses, per-utterance paired tests, the study-level comparison of encoders
under two labelled claims (on these corpora: seeds and test utterances are the units; on new
corpora: corpora are, in both roles; see docs/statistics.md), multiplicity control (Holm),
rankings with corpora as units, and the classic rank tests (Friedman, Nemenyi, Wilcoxon-Holm).

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

from jaxser.errors import UserError

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


# ----------------------------------------------------------------------------- errors

class StatisticsError(UserError, ValueError):
    """Predictions that cannot be compared as asked (different utterances or label sets)."""


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


def cell_arrays(g, seeds: list[int]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """y [N] and predictions [S, N] of one cell's predictions table, aligned by utterance id
    across seeds (columns seed, id, true, pred)."""
    seed = g["seed"].to_numpy()
    ids = g["id"].to_numpy().astype(str)
    order = np.lexsort((ids, seed))
    seed, ids = seed[order], ids[order]
    true, pred = g["true"].to_numpy()[order], g["pred"].to_numpy()[order]
    bounds = np.searchsorted(seed, seeds[1:])
    ids_s, preds_s = np.split(ids, bounds), np.split(pred, bounds)
    for s, i in zip(seeds, ids_s):
        if not np.array_equal(i, ids_s[0]):
            raise StatisticsError(f"seed {s} predicted a different set of utterances than seed {seeds[0]}")
    return true[:len(ids_s[0])], np.stack(preds_s), ids_s[0].tolist()


# ----------------------------------------------------------------------------- p-values

def format_p(p: float, *, floor: float = 0.001) -> str:
    """A p-value as a reader should see it: ``"< 0.001"`` below the floor (a resampling p is
    never exactly 0), three decimals otherwise, ``"n/a"`` when undefined."""
    if p is None or not np.isfinite(p):
        return "n/a"
    if p < floor:
        return f"< {floor:g}"
    return f"{min(float(p), 1.0):.3f}"


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979) along the last axis.

    Rejecting every hypothesis whose adjusted p is <= alpha keeps the family-wise error rate
    at alpha under any dependence between the tests. NaN entries are not hypotheses: they
    stay NaN and do not count towards the family size.
    """
    p = np.asarray(pvalues, np.float64)
    if p.ndim == 0:
        return p.copy()
    order = np.argsort(np.where(np.isnan(p), np.inf, p), axis=-1, kind="stable")
    ps = np.take_along_axis(p, order, -1)
    m = (~np.isnan(p)).sum(-1, keepdims=True)
    factor = m - np.arange(p.shape[-1])
    adj = np.minimum(1.0, np.fmax.accumulate(np.where(np.isnan(ps), np.nan, ps * factor), axis=-1))
    adj = np.where(np.isnan(ps), np.nan, adj)
    out = np.empty_like(adj)
    np.put_along_axis(out, order, adj, -1)
    return out


# ----------------------------------------------------------------------------- study-level comparison

_MAX_EXACT_UNITS = 16  # 2**16 sign patterns enumerated exactly; more units use random flips


def _sign_patterns(g: int, n_perm: int, seed: int) -> tuple[np.ndarray, bool]:
    """All 2^g sign vectors [2^g, g] when affordable, else n_perm random ones (identity first)."""
    if g <= _MAX_EXACT_UNITS:
        bits = (np.arange(2 ** g)[:, None] >> np.arange(g)) & 1
        return 1.0 - 2.0 * bits, True
    rng = np.random.default_rng(seed)
    flips = 1.0 - 2.0 * (rng.random((n_perm, g)) < 0.5)
    return np.vstack([np.ones((1, g)), flips]), False


def _cluster_sums(d: np.ndarray, clusters) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster sums of d [..., K] -> ([..., G], sizes [G]); no clusters: each unit alone."""
    k = d.shape[-1]
    if clusters is None:
        return d, np.ones(k)
    codes, uniq = _codes(clusters)
    if codes.size != k:
        raise ValueError(f"clusters has {codes.size} entries for {k} units")
    onehot = (codes[:, None] == np.arange(len(uniq))).astype(np.float64)  # [K, G]
    return d @ onehot, onehot.sum(0)


def _codes(values) -> tuple[np.ndarray, list]:
    uniq = list(dict.fromkeys(np.asarray(values, dtype=object).tolist()))
    index = {u: i for i, u in enumerate(uniq)}
    return np.array([index[v] for v in np.asarray(values, dtype=object).tolist()], np.int64), uniq


def signflip_pvalues(d, *, clusters=None, n_perm: int = 20000, seed: int = 0) -> np.ndarray:
    """Two-sided sign-flip permutation p-values of H0 "the paired differences are symmetric
    about 0", vectorised over leading axes: d [..., K] -> p [...].

    The statistic is the mean difference; under H0 each unit's (or cluster's) sign is a fair
    coin, so every one of the 2^G sign patterns is equally likely. With G <= 16 all patterns
    are enumerated (p is exact and at least 2 / 2^G, the all-flipped pattern ties the
    observed one); beyond that ``n_perm`` random patterns give p = (1 + #extreme) /
    (n_perm + 1). ``clusters`` [K] flips units in the same cluster together (units that share
    a trained model or a test set are not independent).
    """
    d = np.asarray(d, np.float64)
    x, _ = _cluster_sums(d, clusters)
    signs, _ = _sign_patterns(x.shape[-1], n_perm, seed)
    t = np.abs(x.sum(-1))                                               # [...]
    tstar = np.abs(x @ signs.T)                                         # [..., P]
    tol = 1e-9 * (np.abs(x).sum(-1) + 1e-12)
    hits = (tstar >= (t - tol)[..., None]).sum(-1)
    return hits / signs.shape[0]  # random flips: the identity row makes it (1 + #extreme) / (n_perm + 1)


def signflip_min_p(n_units: int, *, n_perm: int = 20000) -> float:
    """The smallest p the sign-flip test can return with this many units (or clusters)."""
    if n_units < 1:
        return 1.0
    if n_units <= _MAX_EXACT_UNITS:
        return min(1.0, 2.0 / 2 ** n_units)
    return 1.0 / (n_perm + 1)


def signflip_test(d, *, clusters=None, alpha: float = 0.05, n_perm: int = 20000, seed: int = 0) -> dict:
    """Sign-flip test of the mean paired difference over units, with the matching interval.

    d [K]: one difference per unit (e.g. per corpus pair, A - B, each averaged over seeds).
    Returns diff (mean), p, p_min (the smallest p this design can give: with 2 units it is
    0.5, so no result can be significant), ci_low/ci_high (the 1 - alpha interval from
    inverting the same test: every shift delta whose test of d - delta gives p > alpha;
    unbounded when p_min > alpha), n_units and exact.
    """
    d = np.asarray(d, np.float64).ravel()
    if d.size == 0 or not np.isfinite(d).all():
        raise StatisticsError(f"signflip_test needs finite differences, got {d.size} values "
                              f"({int((~np.isfinite(d)).sum())} not finite)")
    x, sizes = _cluster_sums(d, clusters)
    g = x.size
    signs, exact = _sign_patterns(g, n_perm, seed)
    k = d.size

    def p_at(delta: float) -> float:
        z = x - delta * sizes
        t = abs(z.sum())
        tol = 1e-9 * (np.abs(z).sum() + 1e-12)
        return float((np.abs(signs @ z) >= t - tol).sum() / signs.shape[0])

    mean = float(d.mean())
    p = p_at(0.0)
    p_min = 2.0 / signs.shape[0] if exact else 1.0 / signs.shape[0]
    p_min = min(1.0, p_min)
    lo, hi = -np.inf, np.inf
    if p_min <= alpha:
        scale = float(np.ptp(d) + np.abs(d).max() + 1e-12)
        bounds = []
        for direction in (-1.0, 1.0):
            inside, step = 0.0, scale
            while p_at(mean + direction * step) > alpha:  # p -> p_min <= alpha far away
                inside, step = step, 2 * step
            outside = step
            for _ in range(60):
                mid = 0.5 * (inside + outside)
                if p_at(mean + direction * mid) > alpha:
                    inside = mid
                else:
                    outside = mid
            bounds.append(mean + direction * inside)
        lo, hi = bounds
    return {"diff": mean, "p": p, "p_min": p_min, "ci_low": float(lo), "ci_high": float(hi),
            "n_units": int(k), "n_clusters": int(g), "exact": bool(exact)}


def corrected_resampled_ttest(d, n_train: int, n_test: int) -> tuple[float, float]:
    """Nadeau & Bengio's (2003) corrected resampled t-test over J resampled splits:
    t = mean(d) / sqrt((1/J + n_test/n_train) * var(d)), J - 1 degrees of freedom.

    For folds or repeated splits of one corpus, whose training sets overlap: the naive
    paired t-test treats their differences as independent and rejects far too often
    (Dietterich 1998; Bouckaert 2003). Returns (t, two-sided p).
    """
    from scipy import stats

    d = np.asarray(d, np.float64).ravel()
    j = d.size
    if j < 2:
        raise StatisticsError(f"the corrected resampled t-test needs at least 2 splits, got {j}")
    var = d.var(ddof=1)
    if var == 0:
        return (0.0, 1.0) if d.mean() == 0 else (float(np.sign(d.mean()) * np.inf), 0.0)
    t = d.mean() / np.sqrt((1.0 / j + n_test / n_train) * var)
    return float(t), float(2 * stats.t.sf(abs(t), j - 1))


# ----------------------------------------------------------------------------- rank tests

def average_ranks(scores, *, higher_is_better: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Ranks within each block (row) of scores [N, k], 1 = best, ties share the mean rank;
    returns (ranks [N, k], average ranks [k])."""
    from scipy.stats import rankdata

    s = np.asarray(scores, np.float64)
    if s.ndim != 2 or s.shape[0] < 1 or s.shape[1] < 2:
        raise StatisticsError(f"ranking needs scores [blocks, systems] with >= 2 systems, got shape {s.shape}")
    if not np.isfinite(s).all():
        raise StatisticsError("ranking needs a score for every system in every block (found NaN)")
    r = rankdata(-s if higher_is_better else s, axis=1)
    return r, r.mean(0)


def friedman_test(scores, *, higher_is_better: bool = True) -> dict:
    """Friedman's test that k systems rank alike over N blocks (Demšar 2006, sec. 3.2.2).

    scores [N, k]; blocks are the units (corpus pairs), systems the encoders. Returns the
    average ranks, chi2 (with the usual tie correction; without ties it is Demšar's
    12N/(k(k+1)) [sum R_j^2 - k(k+1)^2/4]) and its p, and Iman & Davenport's F with its p
    (less conservative; Demšar recommends it). p is ``p_f`` when defined, else ``p_chi2``.
    """
    from scipy import stats

    r, avg = average_ranks(scores, higher_is_better=higher_is_better)
    n, k = r.shape
    chi2 = 12.0 * n / (k * (k + 1)) * (np.sum(avg ** 2) - k * (k + 1) ** 2 / 4.0)
    ties = 0.0
    for row in r:
        _, t = np.unique(row, return_counts=True)
        ties += float(np.sum(t ** 3 - t))
    denom = 1.0 - ties / (n * k * (k * k - 1))
    chi2 = chi2 / denom if denom > 0 else 0.0
    p_chi2 = float(stats.chi2.sf(chi2, k - 1))
    if n > 1 and n * (k - 1) - chi2 > 1e-12:
        f = (n - 1) * chi2 / (n * (k - 1) - chi2)
        p_f = float(stats.f.sf(f, k - 1, (k - 1) * (n - 1)))
    else:  # one block, or every block ranks the systems identically
        f, p_f = float("inf") if n > 1 else float("nan"), float("nan")
    return {"avg_ranks": avg, "n_blocks": n, "k": k, "chi2": float(chi2), "p_chi2": p_chi2,
            "f": float(f), "p_f": p_f, "p": p_f if np.isfinite(p_f) else p_chi2}


def nemenyi_q(k: int, alpha: float = 0.05) -> float:
    """Nemenyi's critical value q_alpha: the studentised range quantile (k systems, infinite
    degrees of freedom) divided by sqrt(2) (Demšar 2006, Table 5a: 2.569 for k=4, alpha=.05)."""
    from scipy.stats import studentized_range

    if k < 2:
        raise StatisticsError(f"Nemenyi's test needs at least 2 systems, got {k}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha} must be in (0, 1)")
    return float(studentized_range.ppf(1 - alpha, k, np.inf) / np.sqrt(2))


def nemenyi_cd(k: int, n_blocks: int, alpha: float = 0.05) -> float:
    """Critical difference of average ranks: q_alpha * sqrt(k(k+1) / (6N)); two systems whose
    average ranks differ by more are different at family-wise level alpha."""
    return nemenyi_q(k, alpha) * float(np.sqrt(k * (k + 1) / (6.0 * n_blocks)))


def nemenyi_pvalues(avg_ranks, n_blocks: int) -> np.ndarray:
    """All-pairs Nemenyi p-values [k, k] (already family-wise: compare them with alpha)."""
    from scipy.stats import studentized_range

    r = np.asarray(avg_ranks, np.float64)
    k = r.size
    z = np.abs(r[:, None] - r[None]) / np.sqrt(k * (k + 1) / (6.0 * n_blocks))
    p = studentized_range.sf(z * np.sqrt(2), k, np.inf)
    np.fill_diagonal(p, 1.0)
    return np.minimum(p, 1.0)


def wilcoxon_holm(scores, names: Sequence[str] | None = None) -> list[dict]:
    """All pairwise Wilcoxon signed-rank tests over blocks, Holm-adjusted (Benavoli et al.
    2016's alternative to Nemenyi: each pair's p depends only on that pair's results).
    scores [N, k]; returns rows a, b, median_diff, p, p_adjusted."""
    from scipy import stats

    s = np.asarray(scores, np.float64)
    if s.ndim != 2 or s.shape[1] < 2:
        raise StatisticsError(f"wilcoxon_holm needs scores [blocks, systems], got shape {s.shape}")
    k = s.shape[1]
    names = list(names) if names is not None else [str(i) for i in range(k)]
    rows = []
    for i in range(k):
        for j in range(i + 1, k):
            d = s[:, i] - s[:, j]
            if np.all(d == 0):
                p = 1.0
            else:
                p = float(stats.wilcoxon(d, zero_method="zsplit", alternative="two-sided").pvalue)
            rows.append({"a": names[i], "b": names[j], "median_diff": float(np.median(d)), "p": p})
    adj = holm([r["p"] for r in rows])
    for r, a in zip(rows, adj):
        r["p_adjusted"] = float(a)
    return rows


def cd_cliques(avg_ranks, cd: float) -> list[list[int]]:
    """Maximal runs of systems (indices, best first) whose average ranks lie within cd of each
    other: the bars of a critical-difference diagram."""
    r = np.asarray(avg_ranks, np.float64)
    order = np.argsort(r, kind="stable")
    out: list[list[int]] = []
    for start in range(len(order)):
        end = start
        while end + 1 < len(order) and r[order[end + 1]] - r[order[start]] <= cd:
            end += 1
        if end > start and not (out and out[-1][-1] == order[end]):
            out.append([int(i) for i in order[start:end + 1]])
    return out


def draw_cd_diagram(ax, avg_ranks, cd: float, names: Sequence[str], *, title: str | None = None,
                    descriptive: bool = False):
    """Demšar's critical-difference diagram on a matplotlib Axes: systems placed on the
    average-rank axis (1 = best, at the left), thick bars joining systems whose ranks differ
    by at most ``cd``, and the CD itself drawn as a scale bar. ``descriptive``: the design
    supports no ranking claim, so no CD and no bars are drawn, and the axes say so. Only
    draws; returns ax."""
    r = np.asarray(avg_ranks, np.float64)
    k = r.size
    if len(names) != k:
        raise ValueError(f"{len(names)} names for {k} average ranks")
    lo, hi = 1, max(k, int(np.ceil(r.max())))
    order = np.argsort(r, kind="stable")
    left, right = order[: (k + 1) // 2], order[(k + 1) // 2:][::-1]
    n_rows = max(len(left), len(right))
    cliques = [] if descriptive else cd_cliques(r, cd)
    ax.set_xlim(lo - 0.6, hi + 0.6)
    ax.set_ylim(-(n_rows + 1.5), 2.2)
    ax.axis("off")
    ax.hlines(0, lo, hi, color="k", lw=1)
    for t in range(lo, hi + 1):
        ax.vlines(t, 0, 0.15, color="k", lw=1)
        ax.text(t, 0.3, str(t), ha="center", va="bottom", fontsize=8)
    if descriptive:
        ax.text((lo + hi) / 2, 1.6, "descriptive: no ranking claim", ha="center", va="bottom", fontsize=8,
                style="italic")
    elif np.isfinite(cd) and cd > 0:
        ax.hlines(1.4, lo, lo + cd, color="k", lw=1.5)
        ax.vlines([lo, lo + cd], 1.3, 1.5, color="k", lw=1.5)
        ax.text(lo + cd / 2, 1.6, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=8)
    for side, idxs in (("left", left), ("right", right)):
        for row, i in enumerate(idxs):
            y = -(row + 1) * 0.8 - 0.4
            x_end = lo - 0.5 if side == "left" else hi + 0.5
            ax.plot([r[i], r[i], x_end], [0, y, y], color="k", lw=0.8)
            ax.text(x_end + (-0.05 if side == "left" else 0.05), y, f"{names[i]} ({r[i]:.2f})",
                    ha="right" if side == "left" else "left", va="center", fontsize=8)
    for n, clique in enumerate(cliques):
        y = -0.25 - 0.18 * n
        ax.hlines(y, r[clique[0]] - 0.03, r[clique[-1]] + 0.03, color="k", lw=3)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


# ----------------------------------------------------------------------------- predictions tables

UNIT_KEYS = ["setting", "head", "layer", "source", "target"]
_UNIT_WORDS = {"cross": "corpus pair (seed mean)", "same": "corpus, folds pooled (seed mean)",
               "loco": "held-out corpus (seed mean)"}


def _label_sets(df, gid: np.ndarray, n_groups: int, cells) -> list[str]:
    """The label set of every group as 'a|b|c': from cells.json entries when given, else
    rebuilt per unit from the (index, name) pairs of the true/pred labels of all its encoders
    and seeds ('?' for a class nobody predicted and no utterance has)."""
    import pandas as pd

    if cells is not None:
        by_name = {c["name"]: "|".join(c["labels"]) for c in cells}
        missing = sorted(set(df["cell"].unique()) - set(by_name))
        if missing:
            raise StatisticsError(f"cells {missing[:3]} are in the predictions but not in the cells list")
        lab = df["cell"].map(by_name).to_numpy()
        per = pd.DataFrame({"g": gid, "lab": lab}).drop_duplicates()
        if per["g"].duplicated().any():
            raise StatisticsError("folds of one result disagree on the label set")
        out = [""] * n_groups
        for g_, l_ in zip(per["g"].to_numpy(), per["lab"].to_numpy()):
            out[g_] = l_
        return out
    if "true_label" not in df or "pred_label" not in df:
        return ["?"] * n_groups
    uid = df.groupby(UNIT_KEYS, sort=True, observed=True).ngroup().to_numpy()
    n_units = int(uid.max()) + 1 if uid.size else 0
    pairs = pd.concat([pd.DataFrame({"u": uid, "i": df["true"].to_numpy(), "n": df["true_label"].to_numpy()}),
                       pd.DataFrame({"u": uid, "i": df["pred"].to_numpy(), "n": df["pred_label"].to_numpy()})]
                      ).drop_duplicates()
    width = np.zeros(n_units, np.int64)
    if "probs" in df:
        np.maximum.at(width, uid, df["probs"].map(len).to_numpy())
    names: list[dict] = [dict() for _ in range(n_units)]
    for u_, i_, n_ in zip(pairs["u"].to_numpy(), pairs["i"].to_numpy(), pairs["n"].to_numpy()):
        if names[u_].setdefault(int(i_), str(n_)) != str(n_):
            raise StatisticsError(f"class index {int(i_)} means both {names[u_][int(i_)]!r} and {str(n_)!r} "
                                  "in one result cell; only runs with one label set can be compared")
    per_unit = ["|".join(d.get(i, "?") for i in range(max(width[u_], max(d) + 1))) for u_, d in enumerate(names)]
    unit_of_group = np.zeros(n_groups, np.int64)
    unit_of_group[gid] = uid
    return [per_unit[u_] for u_ in unit_of_group]


def unit_scores(preds, *, cells=None):
    """Per-model-run scores from a long predictions table: one row per encoder, head, layer,
    setting, source, target and seed, with UAR, accuracy and macro-F1, n_test, the label set
    and a fingerprint of the tested utterances.

    Same-corpus folds are pooled per seed (every utterance is tested once), as in the report.
    ``cells``: the run's cells.json entries (name, labels); without it the label set is rebuilt
    from the true_label/pred_label columns.
    """
    import pandas as pd

    need = ["encoder", "head", "layer", "setting", "source", "target", "seed", "id", "true", "pred"]
    missing = [c for c in need if c not in preds]
    if missing:
        raise StatisticsError(f"predictions table lacks columns {missing}")
    df = preds.assign(layer=preds["layer"].astype(str))
    keys = ["encoder", *UNIT_KEYS, "seed"]
    grouped = df.groupby(keys, sort=True, observed=True)
    gid = grouped.ngroup().to_numpy()
    out = grouped.size().reset_index(name="n_test")
    n_groups = len(out)
    y = df["true"].to_numpy().astype(np.int64)
    p = df["pred"].to_numpy().astype(np.int64)
    if y.size and (y.min() < 0 or p.min() < 0):
        raise StatisticsError("predictions table has negative class indices in true/pred")
    c = int(max(y.max(), p.max())) + 1 if y.size else 1
    cm = np.bincount((gid * c + y) * c + p, minlength=n_groups * c * c).reshape(n_groups, c, c)
    for name, v in metrics_from_confusion(cm).items():
        out[name] = v
    h = pd.util.hash_array(df["id"].astype(str).to_numpy())
    order = np.argsort(gid, kind="stable")
    starts = np.searchsorted(gid[order], np.arange(n_groups))
    out["ids"] = np.bitwise_xor.reduceat(h[order], starts) if n_groups else np.zeros(0, np.uint64)
    out["labels"] = _label_sets(df, gid, n_groups, cells)
    return out


def _check_units(scores) -> None:
    """Encoders compared on one unit must have been tested on the same utterances with the
    same label set, in every seed."""
    per = scores.groupby(UNIT_KEYS, observed=True)
    for col, what in (("labels", "label sets"), ("ids", "test utterances")):
        bad = per[col].nunique()
        bad = bad[bad > 1]
        if len(bad):
            key = dict(zip(UNIT_KEYS, bad.index[0]))
            raise StatisticsError(f"encoders were scored on different {what} in {key['setting']} "
                                  f"{key['source']}->{key['target']} (head {key['head']}, layer "
                                  f"{key['layer']}); only runs of one study can be compared")


# ----------------------------------------------------------------------------- the two claims
# A comparison of two encoders answers one of two questions (docs/statistics.md):
# "these-corpora": would A still beat B on these corpora with other training seeds and other test
#   utterances? Seeds and utterances are the random units; the corpora are fixed.
# "new-corpora": would A beat B on corpora like these but not in the study? Corpora are the units,
#   as sources and as targets.

CLAIMS = ("these-corpora", "new-corpora")
CLAIM_QUESTIONS = {
    "these-corpora": "on these corpora: would A still beat B with other training seeds and other test "
                     "utterances from the same corpora? (the corpora are fixed)",
    "new-corpora": "on new corpora: would A beat B on corpora like these that are not in the study? "
                   "(corpora are the units, as training and as test corpora)",
}
_LINEAR = ("uar", "accuracy")  # metrics that are weighted sums of per-utterance hits


def these_corpora_test(diff, z, u, strata, noise=None, *, alpha: float = 0.05) -> dict:
    """Test of the mean difference T between two encoders on fixed corpora, vectorised over
    leading axes.

    diff [...]: T, the mean over units of the seed-mean difference A - B. z [..., M, S]: per
    trained-model group (an encoder's models on one training set, one per seed; NaN pads
    groups with fewer seeds) and seed, the group's share of T (its units' scores / n_units,
    A's groups positive, B's negative or positive: only their spread matters). u [..., N]:
    per test utterance (target corpus, id), its share of T through the linearised metric
    (seed-mean hits of A minus B, weighted as the metric weighs them). strata [N]: the
    stratum (target corpus and true class) each utterance was sampled in. noise [..., N]: an
    unbiased estimate of the seed-to-seed variance of each u (from the seeds' per-utterance
    hits), which the spread of u over utterances contains but the seed term already counts.

    Var(T) = sum over groups of var_seed / S (another training run of every model, on these
    test utterances) + sum over strata of n var(u) - sum(noise) (another sample of test
    utterances with the same class counts, from the same population); T / sqrt(Var) is
    referred to Student's t with Welch-Satterthwaite degrees of freedom. Groups need >= 2
    seeds, else p is NaN.
    Returns diff, se, df, p, ci_low, ci_high (arrays [...]).
    """
    from scipy import stats

    diff = np.asarray(diff, np.float64)
    z = np.asarray(z, np.float64)
    u = np.asarray(u, np.float64)
    n_seed = np.isfinite(z).sum(-1)                                        # [..., M]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(z, -1, keepdims=True) / n_seed[..., None]
        var = np.nansum((z - mean) ** 2, -1) / (n_seed - 1)                # [..., M]
        part = var / n_seed
        ok = (n_seed >= 2).all(-1)
        part = np.where(n_seed >= 2, part, 0.0)
        v_seed = part.sum(-1)
        dof_seed = (part ** 2 / np.maximum(n_seed - 1, 1)).sum(-1)
        codes, _ = _codes(strata)
        onehot = (codes[:, None] == np.arange(codes.max() + 1 if codes.size else 0)).astype(np.float64)
        n_h = onehot.sum(0)                                                # [H]
        s1, s2 = u @ onehot, (u ** 2) @ onehot                             # [..., H]
        var_h = np.where(n_h > 1, (s2 - s1 ** 2 / np.maximum(n_h, 1)) / np.maximum(n_h - 1, 1), 0.0)
        v_utt = (n_h * np.maximum(var_h, 0.0)).sum(-1)
        if noise is not None:
            v_utt = np.maximum(v_utt - np.asarray(noise, np.float64).sum(-1), 0.0)
        df_utt = max(float(u.shape[-1] - (n_h > 0).sum()), 1.0)
        v = v_seed + v_utt
        se = np.sqrt(v)
        df = np.where(v > 0, v ** 2 / np.maximum(dof_seed + v_utt ** 2 / df_utt, 1e-300), np.inf)
        tstat = np.where(se > 0, np.abs(diff) / np.where(se > 0, se, 1.0), np.where(diff == 0, 0.0, np.inf))
        p = np.where(ok, 2 * stats.t.sf(tstat, df), np.nan)
        half = np.where(ok, stats.t.ppf(1 - alpha / 2, df) * se, np.inf)
    return {"diff": diff, "se": se, "df": df, "p": p, "ci_low": diff - half, "ci_high": diff + half}


def corpus_pseudovalues(d, membership) -> np.ndarray:
    """Jackknife pseudo-values over corpora of the mean of d, vectorised: d [..., K] per unit,
    membership [K, G] (True where unit k involves corpus g: a cross pair its source and its
    target) -> [..., G].

    T_(-g) is the mean over the units that do not involve corpus g in any role, and the
    pseudo-value G T - (G - 1) T_(-g). Their mean is T; a corpus' additive effect (as a source
    or as a target) appears in its own pseudo-value alone, and pair-level noise is spread
    wider than it is (the jackknife overstates variance, Efron & Stein 1981), so tests on them
    treat corpora as the units and are conservative about the rest. NaN where leaving corpus g
    out leaves no unit (two corpora of cross pairs)."""
    d = np.asarray(d, np.float64)
    m = np.asarray(membership, bool)
    k, g = m.shape
    keep = (~m).astype(np.float64)                                         # [K, G]
    n_keep = keep.sum(0)
    t = d.mean(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        t_minus = (d @ keep) / n_keep                                      # [..., G]
    return np.where(n_keep > 0, g * t - (g - 1) * t_minus, np.nan)


def _membership(sources, targets, setting: str) -> tuple[np.ndarray, list]:
    """[K, G] corpus membership of units: a cross pair involves its source and its target; a
    same-corpus or held-out-corpus unit its target alone (a LOCO model is trained on every
    other corpus, so removing a corpus from its training set would remove every unit)."""
    tg = [str(t) for t in targets]
    corpora = list(dict.fromkeys(tg + ([str(s) for s in sources] if setting == "cross" else [])))
    index = {c: i for i, c in enumerate(corpora)}
    m = np.zeros((len(tg), len(corpora)), bool)
    m[np.arange(len(tg)), [index[t] for t in tg]] = True
    if setting == "cross":
        m[np.arange(len(tg)), [index[str(s)] for s in sources]] = True
    return m, corpora


def new_corpora_test(d, membership, *, alpha: float = 0.05, n_perm: int = 20000, seed: int = 0) -> dict:
    """The new-corpora test of the mean of d [K] (one seed-mean difference per unit): the
    sign-flip test of the corpora's jackknife pseudo-values (``corpus_pseudovalues``), so
    every corpus is one unit, in both of its roles. p_min = 2 / 2^G; the interval inverts the
    test (unbounded when p_min > alpha or the design leaves no pseudo-values)."""
    d = np.asarray(d, np.float64).ravel()
    pv = corpus_pseudovalues(d, membership)
    if pv.size < 2 or not np.isfinite(pv).all():
        return {"diff": float(d.mean()) if d.size else np.nan, "p": 1.0, "p_min": 1.0, "ci_low": -np.inf,
                "ci_high": np.inf, "n_units": int(d.size), "n_clusters": int(pv.size), "exact": True}
    t = signflip_test(pv, alpha=alpha, n_perm=n_perm, seed=seed)
    return {**t, "diff": float(d.mean()), "n_units": int(d.size), "n_clusters": int(pv.size)}


def _utterance_hits(preds, metric: str):
    """Per encoder, result unit and test utterance: the seed-mean hit (pred == true), the true
    class and the utterance's weight in the metric (UAR: 1 / (classes present x utterances of
    its class); accuracy: 1 / utterances), so a unit's seed-mean metric is sum(weight x hit);
    and var_s, the variance over seeds of the hit minus its model's mean hit (the per-utterance
    seed noise, without the model's overall shift, which the seed term counts), with n_s seeds."""
    keys = ["encoder", *UNIT_KEYS]
    df = preds[keys + ["seed", "id", "true"]].assign(
        layer=preds["layer"].astype(str), hit=(preds["true"].to_numpy() == preds["pred"].to_numpy()))
    df["centred"] = df["hit"] - df.groupby(keys + ["seed"], sort=False, observed=True)["hit"].transform("mean")
    h = df.groupby(keys + ["id"], sort=False, observed=True).agg(
        hit=("hit", "mean"), cls=("true", "first"), var_s=("centred", "var"), n_s=("seed", "nunique"))
    h = h.reset_index()
    n_cls = h.groupby(keys + ["cls"], observed=True)["id"].transform("size").to_numpy(np.float64)
    if metric == "uar":
        n_present = h.groupby(keys, observed=True)["cls"].transform("nunique").to_numpy(np.float64)
        h["w"] = 1.0 / (n_present * n_cls)
    else:
        h["w"] = 1.0 / h.groupby(keys, observed=True)["id"].transform("size").to_numpy(np.float64)
    return h


def _these_corpora_row(g, utt, a: str, b: str, units, diff: float, *, alpha: float) -> dict:
    """these_corpora_test for encoders a and b on the units (source, target) of one table:
    g = the table's per-seed scores, utt = its per-utterance hits (``_utterance_hits``)."""
    import pandas as pd

    k = len(units)
    unit_set = pd.MultiIndex.from_tuples(list(units), names=["source", "target"])
    zs = []
    for enc, sign in ((a, 1.0), (b, -1.0)):
        s = g[g["encoder"] == enc].set_index(["source", "target"])
        s = s[s.index.isin(unit_set)].reset_index()
        seeds_per_unit = s.groupby(["source", "target"], observed=True)["seed"].agg(frozenset)
        per_source = seeds_per_unit.groupby(level="source", observed=True).nunique()
        if (per_source > 1).any():
            raise StatisticsError(f"encoder {enc}: the units of one training set have different seeds; "
                                  "its models cannot be told apart")
        zz = s.pivot_table(index="source", columns="seed", values="_m", aggfunc="sum", observed=True) * sign / k
        zs.append(zz.to_numpy(np.float64))
    width = max(z.shape[1] for z in zs)
    z = np.vstack([np.pad(z_, ((0, 0), (0, width - z_.shape[1])), constant_values=np.nan) for z_ in zs])
    sub = utt[utt["encoder"].isin([a, b])].set_index(["source", "target"])
    sub = sub[sub.index.isin(unit_set)].reset_index()
    sub = sub.assign(nv=sub["var_s"].fillna(0.0) / sub["n_s"])
    wide = sub.pivot_table(index=["source", "target", "id"], columns="encoder", values=["hit", "nv"],
                           observed=True)
    w = sub.drop_duplicates(["source", "target", "id"]).set_index(["source", "target", "id"])[["w", "cls"]]
    wide = wide.join(pd.concat({"": w}, axis=1).set_axis(["w", "cls"], axis=1).pipe(
        lambda t: t.set_axis(pd.MultiIndex.from_tuples([("w", ""), ("cls", "")]), axis=1)), how="inner").dropna()
    by_utt = ["target", "id"]
    delta = (wide["w"] * (wide[("hit", a)] - wide[("hit", b)]) / k).groupby(level=by_utt, observed=True).sum()
    noise = ((wide["w"] / k) ** 2 * (wide[("nv", a)] + wide[("nv", b)])).groupby(level=by_utt, observed=True).sum()
    cls = wide["cls"].groupby(level=["target", "id"], observed=True).first()
    strata = [f"{t}\x00{c}" for t, c in zip(delta.index.get_level_values("target"), cls.to_numpy())]
    t = these_corpora_test(diff, z, delta.to_numpy(), strata, noise.reindex(delta.index).to_numpy(), alpha=alpha)
    return {k_: float(v) for k_, v in t.items()} | {"n_clusters": int(z.shape[0])}


def significance_rows(preds=None, *, scores=None, cells=None, metric: str = "uar", settings=None,
                      claim=CLAIMS, family="table", alpha: float = 0.05, n_perm: int = 20000,
                      seed: int = 0, by_label_set: bool = False):
    """Every pairwise encoder comparison of a study, one row per claim and pair, Holm-adjusted
    per family and claim.

    ``claim``: "these-corpora", "new-corpora" or both (docs/statistics.md):
    - these-corpora: is A better than B on this study's corpora, over training seeds and test
      utterances? ``these_corpora_test``: a t-test whose variance adds the seed-to-seed spread
      of every trained model and the sampling variance of the shared test utterances (paired:
      both encoders are scored on the same utterances). Needs the predictions table (per
      utterance) and a linear metric (uar, accuracy); every model group needs >= 2 seeds.
    - new-corpora: is A better than B on corpora not in the study? ``new_corpora_test``: the
      sign-flip test of jackknife pseudo-values over corpora (a cross pair involves its source
      and its target), so corpus effects in either role are the noise; p >= 2 / 2^corpora.

    The unit is the result cell (corpus pair, corpus with folds pooled, held-out corpus); an
    encoder's score on it is its metric averaged over seeds. ``family``: "table" (Holm within
    each setting, head and layer, the default), "report" (one family for the whole report),
    or the columns to group by. ``by_label_set`` splits tables by label set.

    Rows: setting, head, layer, claim, encoder_a (the better mean), encoder_b, mean_a, mean_b,
    diff_<metric>, ci_low, ci_high, p, p_adjusted, p_min, significant, test, unit, n_units,
    n_clusters, n_seeds, df, labels, holm_family, question.
    """
    import pandas as pd

    if metric not in REPORTED + DIMENSIONAL_REPORTED:
        raise StatisticsError(f"unknown metric {metric!r}; expected one of {list(REPORTED + DIMENSIONAL_REPORTED)}")
    claims = (claim,) if isinstance(claim, str) else tuple(claim)
    if not claims or set(claims) - set(CLAIMS):
        raise StatisticsError(f"claim={claim!r}; expected one or both of {list(CLAIMS)}")
    fam = _family_columns(family)
    if scores is None:
        if preds is None:
            raise StatisticsError("significance_rows needs a predictions table or unit scores")
        scores = unit_scores(preds, cells=cells)
    if "these-corpora" in claims:
        if preds is None:
            raise StatisticsError("claim 'these-corpora' needs the per-utterance predictions table (preds=)")
        if metric not in _LINEAR:
            raise StatisticsError(f"claim 'these-corpora' needs a metric that is a weighted sum of per-utterance "
                                  f"hits ({', '.join(_LINEAR)}), got {metric!r}")
        utt = _utterance_hits(preds, metric)
    if settings is not None:
        scores = scores[scores["setting"].isin(list(settings))]
    _check_units(scores)
    group_keys = ["setting", "head", "layer"] + (["labels"] if by_label_set else [])
    rows = []
    for key, g in scores.groupby(group_keys, sort=True, observed=True):
        key = dict(zip(group_keys, key))
        g = g.assign(_m=g[metric])
        unit_cols = ["source", "target"]
        per = g.groupby([*unit_cols, "encoder"], observed=True).agg(
            score=(metric, "mean"), n_seeds=("seed", "nunique")).reset_index()
        tab = per.pivot(index=unit_cols, columns="encoder", values="score")
        n_seeds = per.pivot(index=unit_cols, columns="encoder", values="n_seeds")
        label_of = g.groupby(unit_cols, observed=True)["labels"].first()
        encoders = tab.mean().sort_values(ascending=False, kind="stable").index.tolist()
        if "these-corpora" in claims:
            sel = np.ones(len(utt), bool)
            for c in ("setting", "head", "layer"):
                sel &= (utt[c] == key[c]).to_numpy()
            utt_g = utt[sel]
        for i, a in enumerate(encoders):
            for b in encoders[i + 1:]:
                both = tab[[a, b]].dropna()
                if both.empty:
                    continue
                d = (both[a] - both[b]).to_numpy()
                labs = sorted(set(label_of.loc[both.index]))
                seeds_ab = n_seeds.loc[both.index, [a, b]].to_numpy()
                base = {**{k: key[k] for k in ("setting", "head", "layer")}, "encoder_a": a, "encoder_b": b,
                        "mean_a": float(both[a].mean()), "mean_b": float(both[b].mean()),
                        "unit": _UNIT_WORDS.get(key["setting"], "result cell (seed mean)"),
                        "n_units": int(d.size), "n_seeds": int(seeds_ab.min()),
                        "labels": labs[0] if len(labs) == 1 else f"{len(labs)} label sets"}
                for c in claims:
                    if c == "new-corpora":
                        m, _ = _membership(both.index.get_level_values("source"),
                                           both.index.get_level_values("target"), key["setting"])
                        t = new_corpora_test(d, m, alpha=alpha, n_perm=n_perm, seed=seed)
                        test = ("sign-flip permutation of jackknife pseudo-values over corpora, "
                                + ("exact" if t["exact"] else f"{n_perm} random flips"))
                        extra = {"p_min": t["p_min"], "n_clusters": t["n_clusters"], "df": np.nan}
                    else:
                        t = _these_corpora_row(g, utt_g, a, b, both.index, float(d.mean()), alpha=alpha)
                        test = ("t-test, variance over training seeds and test utterances (paired), "
                                "Welch-Satterthwaite df")
                        if not np.isfinite(t["p"]):
                            test += "; not testable: needs >= 2 seeds per model"
                        extra = {"p_min": 0.0, "n_clusters": t["n_clusters"], "df": t["df"]}
                    rows.append({**base, "claim": c, f"diff_{metric}": t["diff"], "ci_low": t["ci_low"],
                                 "ci_high": t["ci_high"], "p": t["p"], "test": test, **extra,
                                 "question": CLAIM_QUESTIONS[c]})
    cols = ["setting", "head", "layer", "claim", "encoder_a", "encoder_b", "mean_a", "mean_b", f"diff_{metric}",
            "ci_low", "ci_high", "p", "p_adjusted", "p_min", "significant", "test", "unit", "n_units",
            "n_clusters", "n_seeds", "df", "labels", "holm_family", "question"]
    out = pd.DataFrame(rows, columns=[c for c in cols if c not in ("p_adjusted", "significant", "holm_family")])
    out["holm_family"] = (out[fam].astype(str).agg("/".join, axis=1) if fam and len(out) else "report")
    if len(out):
        out["p_adjusted"] = out.groupby(["claim", "holm_family"], sort=False, observed=True)["p"].transform(
            lambda s: pd.Series(holm(s.to_numpy()), index=s.index))
    else:
        out["p_adjusted"] = pd.Series(dtype=float)
    out["significant"] = out["p_adjusted"] <= alpha
    return out[cols]


def _family_columns(family) -> list[str]:
    """The columns that define one Holm family: "table" (setting, head, layer), "report" (none:
    one family per claim for the whole report), or explicit columns."""
    if family == "table":
        return ["setting", "head", "layer"]
    if family == "report":
        return []
    if isinstance(family, str):
        raise StatisticsError(f"family={family!r}; expected 'table', 'report' or a list of columns")
    return list(family)


# ----------------------------------------------------------------------------- rankings that hold

def _rank_permutations(k: int, g: int, n_perm: int, seed: int) -> tuple[np.ndarray, bool]:
    """[M, g, k]: the permutation of the k systems each corpus gets in each of M relabellings;
    all (k!)^g when at most n_perm, else the identity and n_perm random ones."""
    import itertools
    from math import factorial

    if factorial(k) ** g <= n_perm:
        perms = np.array(list(itertools.permutations(range(k))), np.int64)
        total = len(perms) ** g
        choice = (np.arange(total)[:, None] // len(perms) ** np.arange(g)) % len(perms)
        return perms[choice], True
    rng = np.random.default_rng(seed)
    rand = np.argsort(rng.random((n_perm, g, k)), axis=-1)
    return np.concatenate([np.broadcast_to(np.arange(k), (1, g, k)), rand]), False


def rank_permutation_test(ranks, membership, *, alpha: float = 0.05, n_perm: int = 2000, seed: int = 0) -> dict:
    """Friedman's question and Nemenyi's critical difference with corpora as the units,
    vectorised over leading axes: ranks [..., K, k] (per unit, 1 = best), membership [K, G].

    The average ranks [..., k] are the mean over units; their jackknife pseudo-values over
    corpora [..., G, k] (``corpus_pseudovalues``) average to them. Under the null that the
    encoders are exchangeable, relabelling the encoders independently within each corpus'
    pseudo-values is as likely as the data: friedman_p is the share of relabellings whose
    sum of squared deviations of the average ranks from (k + 1) / 2 is at least the observed,
    and cd the smallest value that the range (best minus worst average rank) exceeds in at
    most alpha of them, so "some pair differs by more than cd" happens in at most alpha of
    null studies. Where no range can exceed it (no relabelling does, or it is at least k - 1,
    the widest average ranks can be: too few corpora) cd is inf and ``descriptive`` is True.
    p_min: the smallest p the design can give.
    """
    r = np.asarray(ranks, np.float64)
    k = r.shape[-1]
    pv = corpus_pseudovalues(np.moveaxis(r, -1, -2), membership)           # [..., k, G]
    pv = np.moveaxis(pv, -1, -2)                                           # [..., G, k]
    avg = r.mean(-2)
    g = pv.shape[-2]
    centre = (k + 1) / 2.0
    lead = avg.shape[:-1]
    if g < 2 or not np.isfinite(pv).all():
        nan = np.full(lead, np.nan)
        return {"avg_ranks": avg, "p": nan + 0 if lead else np.nan, "cd": np.full(lead, np.inf) if lead else np.inf,
                "p_min": 1.0, "descriptive": np.ones(lead, bool) if lead else True, "n_corpora": g}
    idx, exact = _rank_permutations(k, g, n_perm, seed)                    # [M, G, k]
    m = idx.shape[0]
    gathered = np.take_along_axis(pv[..., None, :, :], np.broadcast_to(idx, lead + idx.shape), -1)
    star = gathered.mean(-2)                                               # [..., M, k]
    f_obs = ((avg - centre) ** 2).sum(-1)
    f_star = ((star - centre) ** 2).sum(-1)
    tol = 1e-9 * (1.0 + np.abs(f_obs))
    p = (f_star >= (f_obs - tol)[..., None]).mean(-1)
    rng_star = np.sort(star.max(-1) - star.min(-1), axis=-1)               # [..., M]
    cut = m - int(np.floor(alpha * m))                                     # 1-based position of cd
    cd = rng_star[..., cut - 1]
    descriptive = (cd >= rng_star[..., -1] - 1e-12) | (cd >= k - 1 - 1e-12)  # ranges never exceed k - 1
    cd = np.where(descriptive, np.inf, cd)
    from math import factorial

    p_min = float(factorial(k) / m) if exact else 1.0 / m                  # relabelling all corpora alike ties
    return {"avg_ranks": avg, "p": p, "cd": cd, "p_min": min(1.0, p_min), "descriptive": descriptive,
            "n_corpora": g}


def friedman_rows(preds=None, *, scores=None, cells=None, metric: str = "uar", settings=("cross",),
                  alpha: float = 0.05, n_perm: int = 20000, seed: int = 0):
    """Rankings per setting, head and layer, with corpora as the units (``rank_permutation_test``):
    one row per encoder with avg_rank (its mean rank over the units, 1 = best), and the
    table's n_blocks (units ranked), n_corpora, friedman_chi2 (Friedman's statistic over the
    units, descriptive), friedman_p (the permutation p over corpora), cd (two encoders differ
    when their average ranks differ by more than cd; inf when the design cannot say so),
    p_min and ranking ("calibrated" or "descriptive"). Units where some encoder has no result
    are left out, so every unit ranks every encoder."""
    import pandas as pd

    if scores is None:
        scores = unit_scores(preds, cells=cells)
    if settings is not None:
        scores = scores[scores["setting"].isin(list(settings))]
    rows = []
    for (setting, head, layer), g in scores.groupby(["setting", "head", "layer"], sort=True, observed=True):
        tab = g.groupby(["source", "target", "encoder"], observed=True)[metric].mean().unstack("encoder").dropna()
        if tab.shape[1] < 2 or tab.shape[0] < 2:
            continue
        fr = friedman_test(tab.to_numpy())
        ranks, _ = average_ranks(tab.to_numpy())
        m, _ = _membership(tab.index.get_level_values("source"), tab.index.get_level_values("target"), setting)
        rt = rank_permutation_test(ranks, m, alpha=alpha, n_perm=n_perm, seed=seed)
        for enc, r in zip(tab.columns, rt["avg_ranks"]):
            rows.append({"setting": setting, "head": head, "layer": layer, "encoder": enc, "avg_rank": float(r),
                         "n_blocks": fr["n_blocks"], "n_corpora": rt["n_corpora"], "friedman_chi2": fr["chi2"],
                         "friedman_p": float(rt["p"]), "cd": float(rt["cd"]), "p_min": rt["p_min"],
                         "ranking": "descriptive" if bool(rt["descriptive"]) else "calibrated"})
    out = pd.DataFrame(rows, columns=["setting", "head", "layer", "encoder", "avg_rank", "n_blocks", "n_corpora",
                                      "friedman_chi2", "friedman_p", "cd", "p_min", "ranking"])
    return out.sort_values(["setting", "head", "layer", "avg_rank"], kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------- before a study runs

def claim_floors(*, n_corpora: int, n_encoders: int, n_seeds: int, n_tables: int, family: str = "table",
                 alpha: float = 0.05, n_perm: int = 20000) -> list[dict]:
    """What each claim of a cross-corpus study can reach, from its design alone: per claim,
    the smallest p, the Holm family size m, the smallest Holm-adjusted p (m x the smallest p:
    the first step of Holm) and whether it can reach alpha; for new-corpora also the fewest
    corpora that could. n_tables: (setting, head, layer) tables in the report."""
    from math import factorial

    pairs = n_encoders * (n_encoders - 1) // 2
    m = pairs * (n_tables if family == "report" else 1)
    out = []
    ok_a = n_seeds >= 2 and pairs > 0
    out.append({"claim": "these-corpora", "p_min": 0.0 if ok_a else 1.0, "family_size": m,
                "p_min_adjusted": 0.0 if ok_a else 1.0, "reachable": ok_a,
                "why": "" if ok_a else ("needs >= 2 seeds" if pairs else "needs >= 2 encoders")})
    g = n_corpora
    p_b = signflip_min_p(g, n_perm=n_perm) if g >= 3 else 1.0
    need = next((n for n in range(3, 64) if m * signflip_min_p(n, n_perm=n_perm) <= alpha), None)
    out.append({"claim": "new-corpora", "p_min": p_b, "family_size": m, "p_min_adjusted": min(1.0, m * p_b),
                "reachable": pairs > 0 and m * p_b <= alpha, "corpora_needed": need,
                "why": "" if m * p_b <= alpha else f"needs >= {need} corpora"})
    if n_encoders >= 2 and g >= 3:
        kf = factorial(n_encoders)
        p_r = max(float(kf) ** (1 - g), 1.0 / (n_perm + 1)) if kf ** g > n_perm else float(kf) ** (1 - g)
    else:
        p_r = 1.0
    out.append({"claim": "ranking", "p_min": p_r, "family_size": 1, "p_min_adjusted": p_r,
                "reachable": p_r <= alpha, "why": "" if p_r <= alpha else "descriptive only"})
    return out


def gap_rows(preds=None, *, scores=None, cells=None, metric: str = "uar"):
    """The same-corpus -> cross-corpus drop per encoder, head, layer and cross pair: the target
    corpus' same-corpus score minus the pair's cross score (seed means). A gap is only formed
    when both cells use the same label set; otherwise it is NaN and ``note`` says why, because
    scores with different chance levels cannot be subtracted."""
    import pandas as pd

    if scores is None:
        scores = unit_scores(preds, cells=cells)
    m = scores.groupby(["encoder", "head", "layer", "setting", "source", "target", "labels"],
                       observed=True)[metric].mean().reset_index()
    same = m[m["setting"] == "same"].set_index(["encoder", "head", "layer", "target"])
    rows = []
    for _, r in m[m["setting"] == "cross"].iterrows():
        k = (r["encoder"], r["head"], r["layer"], r["target"])
        row = {"encoder": r["encoder"], "head": r["head"], "layer": r["layer"], "source": r["source"],
               "target": r["target"], "cross": r[metric], "same": np.nan, "gap": np.nan, "note": ""}
        if k not in same.index:
            row["note"] = "no same-corpus result for the target"
        else:
            s = same.loc[k]
            s = s.iloc[0] if isinstance(s, pd.DataFrame) else s
            row["same"] = s[metric]
            if s["labels"] == r["labels"] and "?" not in r["labels"]:
                row["gap"] = s[metric] - r[metric]
            else:
                row["note"] = f"label sets differ ({s['labels']} vs {r['labels']})"
        rows.append(row)
    return pd.DataFrame(rows, columns=["encoder", "head", "layer", "source", "target", "cross", "same", "gap", "note"])


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


def dimensional_unit_scores(preds):
    """``unit_scores`` for a dimensional study: one row per encoder, head, layer, setting,
    source, target, seed and dimension, with CCC, Pearson r and MAE, n_test, a fingerprint of
    the tested utterances, and ``labels`` = the dimension (so ``significance_rows(...,
    metric="ccc", by_label_set=True)`` compares encoders per dimension). ``preds``: the long
    table (encoder, head, layer, setting, source, target, seed, dimension, id, true, pred);
    same-corpus folds are pooled per seed."""
    import pandas as pd

    need = ["encoder", "head", "layer", "setting", "source", "target", "seed", "dimension", "id", "true", "pred"]
    missing = [c for c in need if c not in preds]
    if missing:
        raise StatisticsError(f"dimensional predictions table lacks columns {missing}")
    df = preds.assign(layer=preds["layer"].astype(str))
    rows = []
    for key, g in df.groupby(["encoder", *UNIT_KEYS, "seed", "dimension"], sort=True, observed=True):
        m = regression_metrics(g["true"].to_numpy(), g["pred"].to_numpy())
        h = pd.util.hash_array(g["id"].astype(str).to_numpy())
        rows.append({**dict(zip(["encoder", *UNIT_KEYS, "seed", "dimension"], key)), "n_test": len(g),
                     **{k: float(v) for k, v in m.items()}, "ids": np.bitwise_xor.reduce(h), "labels": key[-1]})
    return pd.DataFrame(rows, columns=["encoder", *UNIT_KEYS, "seed", "dimension", "n_test",
                                       *DIMENSIONAL_REPORTED, "ids", "labels"])
