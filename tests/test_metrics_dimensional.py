"""Dimensional metrics: Lin's CCC, Pearson r and MAE against an independent implementation
(scipy's Pearson r and numpy moments), their invariants, bootstrap intervals, and the
calibration of the sign-flip comparison of encoders on CCC by simulated null studies."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from jaxser import metrics, significance
from jaxser.study import tables


def reference_ccc(y, p):
    """Lin's CCC written from Pearson's r: 2 r s_y s_p / (s_y^2 + s_p^2 + (m_y - m_p)^2),
    population standard deviations (Lin 1989)."""
    r = stats.pearsonr(y, p).statistic
    sy, sp = np.std(y), np.std(p)
    return 2 * r * sy * sp / (sy ** 2 + sp ** 2 + (np.mean(y) - np.mean(p)) ** 2)


def test_ccc_pearson_mae_match_independent_implementations():
    rng = np.random.default_rng(0)
    for n in (5, 40, 500):
        y = rng.uniform(1, 7, n)
        p = 0.6 * y + rng.normal(0.5, 0.8, n)
        assert metrics.ccc(y, p) == pytest.approx(reference_ccc(y, p), abs=1e-12)
        assert metrics.pearson(y, p) == pytest.approx(stats.pearsonr(y, p).statistic, abs=1e-12)
        assert metrics.mae(y, p) == pytest.approx(np.mean(np.abs(y - p)), abs=1e-12)


def test_ccc_by_hand_and_edge_cases():
    # y = [1, 2, 3], p = [2, 3, 4]: var 2/3 each, cov 2/3, mean shift 1 -> 2(2/3) / (4/3 + 1) = 4/7
    assert metrics.ccc([1, 2, 3], [2, 3, 4]) == pytest.approx(4 / 7)
    assert metrics.ccc([1, 2, 3], [1, 2, 3]) == 1.0
    assert metrics.ccc([2, 2, 2], [2, 2, 2]) == 1.0
    assert metrics.ccc([1, 2, 3], [2, 2, 2]) == 0.0
    assert metrics.pearson([1, 2, 3], [2, 2, 2]) == 0.0
    with pytest.raises(ValueError, match="finite"):
        metrics.ccc([1.0, np.nan], [1.0, 2.0])


def test_batched_and_resampled_match_one_by_one():
    rng = np.random.default_rng(1)
    y = rng.uniform(0, 1, 30)
    p = y + rng.normal(0, 0.3, (4, 30))
    batch = metrics.regression_metrics(y, p)
    for s in range(4):
        assert batch["ccc"][s] == pytest.approx(metrics.ccc(y, p[s]))
        assert batch["mae"][s] == pytest.approx(metrics.mae(y, p[s]))
    idx = rng.integers(0, 30, (7, 30))
    res = metrics.resampled_regression_metrics(y, p, idx)
    for s in range(4):
        for b in range(7):
            assert res["ccc"][s, b] == pytest.approx(metrics.ccc(y[idx[b]], p[s, idx[b]]), abs=1e-10)
            assert res["pearson"][s, b] == pytest.approx(metrics.pearson(y[idx[b]], p[s, idx[b]]), abs=1e-10)
            assert res["mae"][s, b] == pytest.approx(metrics.mae(y[idx[b]], p[s, idx[b]]), abs=1e-12)


def test_bootstrap_interval_brackets_the_point_and_shrinks_with_n():
    rng = np.random.default_rng(2)

    def width(n):
        y = rng.uniform(0, 1, n)
        p = y + rng.normal(0, 0.3, (3, n))
        point, lo, hi = metrics.regression_bootstrap_ci(y, p, n_boot=400, seed=0)
        assert lo <= point <= hi
        assert point == pytest.approx(np.mean([metrics.ccc(y, q) for q in p]))
        return hi - lo
    assert width(400) < width(25)


finite = st.floats(-100, 100, allow_nan=False, width=64)


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 30).flatmap(lambda n: st.tuples(arrays(np.float64, n, elements=finite),
                                                      arrays(np.float64, n, elements=finite))))
def test_ccc_invariants(yp):
    y, p = yp
    c, r = metrics.ccc(y, p), metrics.pearson(y, p)
    assert -1 - 1e-9 <= c <= 1 + 1e-9
    if np.ptp(y) > 1e-6 and np.ptp(p) > 1e-6:
        assert abs(c) <= abs(r) + 1e-9
    if np.array_equal(y, p):
        assert c == pytest.approx(1.0)
    elif c >= 1 - 1e-12:  # CCC = 1 only when the predictions equal the targets
        np.testing.assert_allclose(p, y, atol=1e-5 * (1 + np.abs(y).max()))
    # symmetric, and invariant to one affine map of both sides
    assert metrics.ccc(p, y) == pytest.approx(c, abs=1e-9)
    if np.ptp(np.concatenate([y, p])) > 1e-3:
        assert metrics.ccc(3 * y + 1, 3 * p + 1) == pytest.approx(c, abs=1e-7)


def simulate_ccc(rng, n_studies, *, n_enc=3, n_corpora=8, n_seeds=3, n_utt=40, planted=None):
    """CCC of whole dimensional studies [R, E, K, S] for all K ordered corpus pairs, and the
    pairs' corpus membership [K, G]: one model per (encoder, source, seed) tested on every
    target, as the runner trains them. Predictions are the target scaled by a transfer quality
    -- a per-cell part shared by the encoders, random encoder x source and encoder x target
    effects, a seed offset per model -- plus utterance noise; ``planted`` adds per-encoder
    quality. planted=None: the encoders are exchangeable over corpora, so any 'significant'
    difference on new corpora is a false positive."""
    src = np.array([a for a in range(n_corpora) for b in range(n_corpora) if a != b])
    tgt = np.array([b for a in range(n_corpora) for b in range(n_corpora) if a != b])
    k = len(src)
    y = rng.uniform(0, 1, (n_studies, 1, k, 1, n_utt))
    quality = (rng.uniform(0.2, 0.8, (n_studies, 1, k, 1, 1))
               + rng.normal(0, 0.1, (n_studies, n_enc, n_corpora, 1, 1))[:, :, src]
               + rng.normal(0, 0.1, (n_studies, n_enc, n_corpora, 1, 1))[:, :, tgt]
               + rng.normal(0, 0.05, (n_studies, n_enc, n_corpora, n_seeds, 1))[:, :, src])
    if planted is not None:
        quality = quality + np.asarray(planted, float).reshape(1, n_enc, 1, 1, 1)
    pred = quality * (y - 0.5) + 0.5 + rng.normal(0, 0.15, (n_studies, n_enc, k, n_seeds, n_utt))
    member = np.zeros((k, n_corpora), bool)
    member[np.arange(k), src] = member[np.arange(k), tgt] = True
    return metrics.regression_metrics(np.broadcast_to(y, pred.shape), pred)["ccc"], member, src


def new_corpora_p(ccc, member, a, b):
    """The new-corpora claim's p for encoders a and b in every study: the sign-flip test of the
    corpora's jackknife pseudo-values of the per-pair seed-mean CCC differences."""
    cell = ccc.mean(-1)
    return significance.signflip_pvalues(significance.corpus_pseudovalues(cell[:, a] - cell[:, b], member), n_perm=2000)


def test_null_ccc_studies_new_corpora_false_positive_rate_is_at_most_alpha():
    """400 null studies, 8 corpora = 56 pairs sharing models by source, encoder x source and
    x target effects: the new-corpora claim on CCC, Holm over the 3 encoder pairs, rejects some
    comparison in at most ~5 % of them; sign flips by source alone (target role left free)
    reject far more often, which is why corpora count in both roles."""
    ccc, member, src = simulate_ccc(np.random.default_rng(11), 400)
    pairs = [(0, 1), (0, 2), (1, 2)]
    adj = significance.holm(np.stack([new_corpora_p(ccc, member, a, b) for a, b in pairs], -1))
    fwer = float((adj <= 0.05).any(-1).mean())
    cell = ccc.mean(-1)
    by_source = significance.holm(np.stack([significance.signflip_pvalues(cell[:, a] - cell[:, b], clusters=src,
                                                                          n_perm=2000)
                                            for a, b in pairs], -1))
    fwer_source = float((by_source <= 0.05).any(-1).mean())
    print(f"\nCCC, new-corpora: family-wise false-positive rate {fwer:.3f}; sign flips by source alone "
          f"{fwer_source:.3f} (400 null studies)")
    assert fwer <= 0.07
    assert fwer_source > 0.07
    planted, member, _ = simulate_ccc(np.random.default_rng(12), 100, planted=[0.25, 0.0, 0.0])
    p = new_corpora_p(planted, member, 0, 1)
    assert (p <= 0.05).mean() >= 0.8  # a planted difference is found


def test_significance_rows_on_ccc_per_dimension():
    ccc, member, _ = simulate_ccc(np.random.default_rng(5), 1, n_enc=2, n_corpora=4, n_seeds=2, n_utt=20,
                                  planted=[0.3, 0.0])
    pairs = [(a, b) for a in range(4) for b in range(4) if a != b]
    rows = [{"encoder": f"e{e}", "setting": "cross", "head": "fcn", "layer": "last", "source": f"c{pairs[k][0]}",
             "target": f"c{pairs[k][1]}", "seed": s, "dimension": "arousal", "ccc": ccc[0, e, k, s],
             "ids": 0, "labels": "arousal"} for e in range(2) for k in range(12) for s in range(2)]
    sig = tables.significance_rows(scores=pd.DataFrame(rows), metric="ccc", claim="new-corpora")
    assert len(sig) == 1 and sig["encoder_a"].iloc[0] == "e0"
    d = ccc[0].mean(-1)
    assert sig["diff_ccc"].iloc[0] == pytest.approx((d[0] - d[1]).mean())
    pv = significance.corpus_pseudovalues(d[0] - d[1], member)
    assert sig["p"].iloc[0] == pytest.approx(significance.signflip_pvalues(pv))
    with pytest.raises(significance.StatisticsError, match="these-corpora"):  # CCC is not a sum over utterances
        tables.significance_rows(pd.DataFrame(rows), scores=pd.DataFrame(rows), metric="ccc")
