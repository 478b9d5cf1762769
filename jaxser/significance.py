"""Statistical tests and rankings on arrays of scores (numpy/scipy): is a difference or a
ranking more than noise?

Per-utterance paired tests (bootstrap, approximate randomisation), multiplicity control
(Holm), sign-flip permutation tests over units or clusters, Nadeau & Bengio's corrected
resampled t-test, the study-level tests of the two comparison claims (on these corpora: seeds
and test utterances are the units; on new corpora: corpora are, in both roles; see
docs/statistics.md), rankings with corpora as units, and the classic rank tests (Friedman,
Nemenyi, Wilcoxon-Holm). Everything here takes arrays; ``jaxser.study.tables`` feeds it a
study's predictions.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from jaxser.errors import UserError
from jaxser.metrics import MetricLike, replicate_scores, score_stack, seed_stack


# ----------------------------------------------------------------------------- errors

class StatisticsError(UserError, ValueError):
    """Predictions that cannot be compared as asked (different utterances or label sets)."""


# ----------------------------------------------------------------------------- paired tests

def paired_bootstrap_test(y, yhat_a, yhat_b, metric: MetricLike = "uar", n_boot: int = 1000,
                          seed: int = 0) -> float:
    """Two-sided paired bootstrap p-value for H0: metric(A) == metric(B) on this population.

    Both systems are scored on the same resampled utterances; with observed difference d and
    replicate differences d*, p = (1 + #{|d* - d| >= |d|}) / (n_boot + 1), i.e. how often the
    null-centred bootstrap distribution is at least as extreme as what was observed
    (Efron & Tibshirani 1993, sec. 16.4). Identical systems give p = 1.
    """
    y, a = seed_stack(y, yhat_a)
    _, b = seed_stack(y, yhat_b)
    n = y.size
    c = int(max(y.max(), a.max(), b.max())) + 1
    d = float(score_stack(metric, y[None], a[None], c)[0] - score_stack(metric, y[None], b[None], c)[0])

    def draw(rng, k):
        idx = rng.integers(0, n, size=(k, n))
        return y[idx], [a[:, idx].transpose(1, 0, 2), b[:, idx].transpose(1, 0, 2)]

    ra, rb = replicate_scores(metric, y, [a, b], n_boot, seed, draw)
    extreme = np.abs((ra - rb) - d) >= abs(d) - 1e-12
    return float((1 + extreme.sum()) / (n_boot + 1))


def paired_permutation_test(y, yhat_a, yhat_b, metric: MetricLike = "uar", n_perm: int = 1000,
                            seed: int = 0) -> float:
    """Two-sided paired approximate-randomisation test: under H0 the two systems are
    exchangeable per utterance, so their predictions are swapped at random (the same swap for
    every seed row); p = (1 + #{|d_perm| >= |d|}) / (n_perm + 1). Identical systems give 1."""
    y, a = seed_stack(y, yhat_a)
    _, b = seed_stack(y, yhat_b)
    if a.shape != b.shape:
        raise ValueError(f"paired test: prediction shapes differ, {a.shape} vs {b.shape}")
    n = y.size
    c = int(max(y.max(), a.max(), b.max())) + 1
    d = float(score_stack(metric, y[None], a[None], c)[0] - score_stack(metric, y[None], b[None], c)[0])

    def draw(rng, k):
        swap = rng.random((k, 1, n)) < 0.5
        return np.broadcast_to(y, (k, n)), [np.where(swap, b[None], a[None]), np.where(swap, a[None], b[None])]

    ra, rb = replicate_scores(metric, y, [a, b], n_perm, seed, draw)
    extreme = np.abs(ra - rb) >= abs(d) - 1e-12
    return float((1 + extreme.sum()) / (n_perm + 1))


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


# ----------------------------------------------------------------------------- the two claims' tests
# A comparison of two encoders answers one of two questions (docs/statistics.md); these are their tests.

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


def corpus_membership(sources, targets, setting: str) -> tuple[np.ndarray, list]:
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

