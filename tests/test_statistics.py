"""The study-level statistics: calibration of the encoder comparison by simulating whole null
studies, its power against a planted difference, and the rank tests against published examples."""
import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxser import metrics, significance
from jaxser.study import figures, tables
from jaxser.errors import UserError

LABELS = ("angry", "happy", "neutral", "sad")
PAIRS = [(0, 1), (0, 2), (1, 2)]


def simulate(rng, n_studies, *, n_enc=3, n_corpora=4, n_seeds=3, n_utt=50, planted=None, shared_models=False):
    """Per-utterance predictions of whole studies: [R, E, K, S, N] for K = all ordered corpus
    pairs. Each cell has its own difficulty (shared by the encoders), each encoder a random
    cell-specific transfer effect, each training seed its own offset, each utterance its own
    difficulty; ``planted`` adds a per-encoder shift (logit scale). With planted=None the
    encoders are exchangeable in every cell: any 'significant' difference is a false positive.

    ``shared_models``: as in the runner, one model per (encoder, source, seed) is tested on
    every target, so its seed offset, and an encoder x source transfer effect, are shared by
    all pairs with that source."""
    k = n_corpora * (n_corpora - 1)
    src = np.array([a for a in range(n_corpora) for b in range(n_corpora) if a != b])
    shape = (n_studies, n_enc, k, n_seeds, n_utt)
    y = rng.integers(0, len(LABELS), (n_studies, 1, k, 1, n_utt))
    logit = (-0.3 + rng.normal(0, 0.5, (n_studies, 1, k, 1, 1))        # cell difficulty
             + rng.normal(0, 0.25, (n_studies, n_enc, k, 1, 1))        # encoder x cell transfer
             + rng.normal(0, 1.0, (n_studies, 1, k, 1, n_utt)))        # utterance difficulty
    if shared_models:
        logit = (logit + rng.normal(0, 0.25, (n_studies, n_enc, n_corpora, 1, 1))[:, :, src]
                 + rng.normal(0, 0.25, (n_studies, n_enc, n_corpora, n_seeds, 1))[:, :, src])
    else:
        logit = logit + rng.normal(0, 0.25, (n_studies, n_enc, k, n_seeds, 1))  # training seed
    if planted is not None:
        logit = logit + np.asarray(planted, float).reshape(1, n_enc, 1, 1, 1)
    correct = rng.random(shape) < 1 / (1 + np.exp(-logit))
    pred = np.where(correct, y, (y + rng.integers(1, len(LABELS), shape)) % len(LABELS))
    uar = metrics.batched_metrics(np.broadcast_to(y, shape), pred, len(LABELS))["uar"]  # [R, E, K, S]
    return y, pred, uar, src


def family_pvalues(uar, clusters=None, n_perm=2000):
    """Holm-adjusted sign-flip p of every encoder pair, per study: [R, 3]."""
    cell = uar.mean(-1)  # seed mean per unit
    d = np.stack([cell[:, a] - cell[:, b] for a, b in PAIRS], 1)
    return significance.holm(significance.signflip_pvalues(d, clusters=clusters, n_perm=n_perm)), d


def test_null_studies_family_wise_error_rate_is_nominal():
    """600 null studies (3 exchangeable encoders, 4 corpora = 12 independent cross pairs,
    3 seeds): Holm over the 3 pairwise comparisons must reject at least one in about 5%."""
    *_, uar, _ = simulate(np.random.default_rng(2024), 600)
    adj, _ = family_pvalues(uar)
    fwer = float((adj <= 0.05).any(-1).mean())
    print(f"\nindependent pairs, pair units: family-wise false-positive rate {fwer:.3f} (600 null studies)")
    assert 0.02 <= fwer <= 0.07


def test_null_studies_with_shared_models_need_source_clusters():
    """500 null studies where each source's model is tested on all targets (8 corpora = 56
    pairs, 8 sources): flipping pairs by source keeps the family-wise rate nominal; treating
    the 56 pairs as independent does not (why significance_rows clusters by source)."""
    *_, uar, src = simulate(np.random.default_rng(99), 500, n_corpora=8, n_utt=30, shared_models=True)
    adj, _ = family_pvalues(uar, clusters=src)
    fwer = float((adj <= 0.05).any(-1).mean())
    naive, _ = family_pvalues(uar)
    fwer_naive = float((naive <= 0.05).any(-1).mean())
    print(f"\nshared models, source clusters: family-wise false-positive rate {fwer:.3f}; "
          f"pairs as independent units: {fwer_naive:.3f} (500 null studies)")
    assert 0.02 <= fwer <= 0.07
    assert fwer_naive > 0.07


def test_planted_difference_is_detected_in_the_right_direction():
    """Encoder 0 truly better by a planted shift (shared-model design, source clusters):
    measure how often it is declared better than encoder 1 after Holm (power), and check no
    study declares it worse."""
    *_, uar, src = simulate(np.random.default_rng(7), 400, n_corpora=8, n_utt=30, shared_models=True,
                            planted=[0.5, 0.0, 0.0])
    adj, d = family_pvalues(uar, clusters=src)
    hit = adj[:, 0] <= 0.05
    power = float(hit.mean())
    print(f"\nplanted +{100 * d[:, 0].mean():.1f} UAR points: power {power:.3f} (400 studies, 8 corpora)")
    assert power >= 0.5
    assert np.all(d[hit, 0].mean(-1) > 0)
    assert float((adj[:, 2] <= 0.05).mean()) <= 0.07  # encoders 1 and 2 stay exchangeable


# ----------------------------------------------------------------------------- sign-flip test

def test_signflip_exact_distribution_by_hand():
    # two units: the 4 patterns give sums 3, 1, -1, -3: only the observed and its mirror reach 3
    assert significance.signflip_pvalues([1.0, 2.0]) == pytest.approx(0.5)
    assert significance.signflip_min_p(2) == 0.5
    # three units, all positive: 2 of 8 patterns as extreme
    assert significance.signflip_pvalues([1.0, 2.0, 3.0]) == pytest.approx(0.25)
    # mixed signs: count the patterns by brute force
    d = np.array([3.0, -1.0, -1.0])
    sums = [abs(np.dot(s, d)) for s in itertools.product([1, -1], repeat=3)]
    assert significance.signflip_pvalues(d) == pytest.approx(np.mean(np.array(sums) >= abs(d.sum())))
    assert significance.signflip_pvalues(np.zeros(5)) == 1.0
    # vectorised over leading axes
    batch = np.array([[1.0, 2.0, 3.0], [3.0, -1.0, -1.0]])
    np.testing.assert_allclose(significance.signflip_pvalues(batch),
                               [significance.signflip_pvalues(b) for b in batch])


def test_signflip_clusters_flip_together():
    d = np.array([1.0, 1.0, 2.0, 2.0])
    # two clusters of two units: only 4 patterns, so p >= 0.5
    assert significance.signflip_pvalues(d, clusters=["a", "a", "b", "b"]) == pytest.approx(0.5)
    assert significance.signflip_pvalues(d) == pytest.approx(2 / 16)
    t = significance.signflip_test(d, clusters=["a", "a", "b", "b"])
    assert t["n_units"] == 4 and t["n_clusters"] == 2 and t["p_min"] == 0.5


def test_signflip_random_flips_for_many_units():
    rng = np.random.default_rng(0)
    d = rng.normal(0.5, 1.0, 30)
    t = significance.signflip_test(d, n_perm=4000, seed=1)
    assert not t["exact"] and t["p_min"] == pytest.approx(1 / 4001)
    assert t["p"] >= t["p_min"]
    # the sign-flip p of a clear shift is close to a one-sample t-test's
    from scipy import stats
    assert t["p"] == pytest.approx(stats.ttest_1samp(d, 0).pvalue, abs=0.02)


def test_signflip_interval_inverts_the_test():
    d = np.array([0.05, 0.02, 0.08, -0.01, 0.04, 0.06, 0.03, 0.07])
    t = significance.signflip_test(d, alpha=0.05)
    assert t["ci_low"] < t["diff"] < t["ci_high"]
    assert (t["p"] <= 0.05) == (t["ci_low"] > 0)
    for edge, inward in ((t["ci_low"], 1), (t["ci_high"], -1)):
        assert significance.signflip_pvalues(d - edge - inward * 1e-6) > 0.05   # just inside
        assert significance.signflip_pvalues(d - edge + inward * 1e-6) <= 0.05  # just outside
    # two units cannot reach p <= 0.05: the interval is honestly unbounded
    two = significance.signflip_test([0.1, 0.2])
    assert two["p"] == two["p_min"] == 0.5
    assert two["ci_low"] == -np.inf and two["ci_high"] == np.inf
    with pytest.raises(UserError, match="finite"):
        significance.signflip_test([0.1, np.nan])


# ----------------------------------------------------------------------------- multiplicity, formatting

def test_holm_known_example():
    # Holm (1979) step-down on p = .01, .04, .03, .005 (m = 4): sorted .005*4, .01*3, .03*2, .04*1
    np.testing.assert_allclose(significance.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(significance.holm([0.5, 0.9]), [1.0, 1.0])
    got = significance.holm([0.01, np.nan, 0.02])  # NaN is not a hypothesis: m = 2
    np.testing.assert_allclose(got, [0.02, np.nan, 0.02])
    rows = np.array([[0.01, 0.04, 0.03, 0.005], [0.2, 0.001, 0.04, 0.03]])
    np.testing.assert_allclose(significance.holm(rows), [significance.holm(r) for r in rows])


def test_format_p():
    assert significance.format_p(0.0004) == "< 0.001"
    assert significance.format_p(0.008) == "0.008"
    assert significance.format_p(1.0) == "1.000"
    assert significance.format_p(float("nan")) == "n/a"
    assert significance.format_p(0.00005, floor=1e-4) == "< 0.0001"


def test_corrected_resampled_ttest_by_hand():
    # d = 1, 2, 3: mean 2, var 1; t = 2 / sqrt((1/3 + 10/90) * 1) = 3 on 2 df
    from scipy import stats
    t, p = significance.corrected_resampled_ttest([1.0, 2.0, 3.0], n_train=90, n_test=10)
    assert t == pytest.approx(3.0)
    assert p == pytest.approx(2 * stats.t.sf(3.0, 2))
    with pytest.raises(UserError):
        significance.corrected_resampled_ttest([1.0], 90, 10)


# ----------------------------------------------------------------------------- rank tests (Demšar 2006)

# Demšar (2006), Table 6: AUC of C4.5, C4.5+m, C4.5+cf and C4.5+m+cf on 14 UCI data sets
DEMSAR_NAMES = ["C4.5", "C4.5+m", "C4.5+cf", "C4.5+m+cf"]
DEMSAR_AUC = np.array([
    [0.763, 0.768, 0.771, 0.798], [0.599, 0.591, 0.590, 0.569], [0.954, 0.971, 0.968, 0.967],
    [0.628, 0.661, 0.654, 0.657], [0.882, 0.888, 0.886, 0.898], [0.936, 0.931, 0.916, 0.931],
    [0.661, 0.668, 0.609, 0.685], [0.583, 0.583, 0.563, 0.625], [0.775, 0.838, 0.866, 0.875],
    [1.000, 1.000, 1.000, 1.000], [0.940, 0.962, 0.965, 0.962], [0.619, 0.666, 0.614, 0.669],
    [0.972, 0.981, 0.975, 0.975], [0.957, 0.978, 0.946, 0.970]])


def test_friedman_on_demsar_example():
    r, avg = significance.average_ranks(DEMSAR_AUC)
    # ranks worked by hand from the table (rank 1 = highest AUC, ties share the mean rank)
    assert r[5].tolist() == [1.0, 2.5, 4.0, 2.5] and r[9].tolist() == [2.5] * 4
    np.testing.assert_allclose(avg, np.array([44.0, 28.0, 41.0, 27.0]) / 14)
    fr = significance.friedman_test(DEMSAR_AUC)
    from scipy import stats
    ref = stats.friedmanchisquare(*(-DEMSAR_AUC).T)  # scipy applies the same tie correction
    assert fr["chi2"] == pytest.approx(ref.statistic) and fr["p_chi2"] == pytest.approx(ref.pvalue)
    n, k = DEMSAR_AUC.shape
    assert fr["f"] == pytest.approx((n - 1) * fr["chi2"] / (n * (k - 1) - fr["chi2"]))
    assert fr["p"] == fr["p_f"] < 0.05  # the F version rejects "all alike", as in the paper


def test_friedman_without_ties_is_demsars_formula():
    scores = np.array([[3.0, 2.0, 1.0], [3.0, 1.0, 2.0], [2.0, 3.0, 1.0], [3.0, 2.0, 1.0], [1.0, 3.0, 2.0]])
    fr = significance.friedman_test(scores)
    n, k = scores.shape
    avg = fr["avg_ranks"]
    assert fr["chi2"] == pytest.approx(12 * n / (k * (k + 1)) * (np.sum(avg ** 2) - k * (k + 1) ** 2 / 4))
    # perfect agreement: F is infinite, the chi-square p is reported
    same = significance.friedman_test(np.tile([3.0, 2.0, 1.0], (6, 1)))
    assert same["f"] == np.inf and same["p"] == same["p_chi2"] < 0.01


def test_nemenyi_matches_demsar():
    # Table 5a critical values and the worked example's critical differences
    for k, q in ((2, 1.960), (3, 2.343), (4, 2.569), (10, 3.164)):
        assert significance.nemenyi_q(k, 0.05) == pytest.approx(q, abs=1e-3)
    assert significance.nemenyi_q(4, 0.10) == pytest.approx(2.291, abs=1e-3)
    assert significance.nemenyi_cd(4, 14, 0.05) == pytest.approx(1.25, abs=5e-3)
    assert significance.nemenyi_cd(4, 14, 0.10) == pytest.approx(1.12, abs=5e-3)
    _, avg = significance.average_ranks(DEMSAR_AUC)
    p = significance.nemenyi_pvalues(avg, 14)
    diff = np.abs(avg[:, None] - avg[None])
    # "even the best and the worst differ by less than CD" at .05; at .10 C4.5 is worse than
    # C4.5+m and C4.5+m+cf
    assert not (p < 0.05).any()
    assert {tuple(sorted(ij)) for ij in zip(*np.nonzero(p < 0.10))} == {(0, 1), (0, 3)}
    assert np.array_equal(p < 0.10, diff > significance.nemenyi_cd(4, 14, 0.10))
    assert significance.cd_cliques(avg, significance.nemenyi_cd(4, 14, 0.10)) == [[3, 1, 2], [2, 0]]


def test_wilcoxon_holm_matches_scipy():
    from scipy import stats
    rows = significance.wilcoxon_holm(DEMSAR_AUC, DEMSAR_NAMES)
    assert len(rows) == 6
    raw = [stats.wilcoxon(DEMSAR_AUC[:, i] - DEMSAR_AUC[:, j], zero_method="zsplit").pvalue
           for i, j in itertools.combinations(range(4), 2)]
    np.testing.assert_allclose([r["p"] for r in rows], raw)
    np.testing.assert_allclose([r["p_adjusted"] for r in rows], significance.holm(raw))
    assert rows[0]["a"] == "C4.5" and rows[0]["b"] == "C4.5+m"


def test_cd_diagram_draws():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, avg = significance.average_ranks(DEMSAR_AUC)
    fig, ax = plt.subplots(figsize=(6, 2.5))
    cd = significance.nemenyi_cd(4, 14, 0.10)
    assert figures.draw_cd_diagram(ax, avg, cd, DEMSAR_NAMES, title="CD") is ax
    texts = [t.get_text() for t in ax.texts]
    assert any(t.startswith("C4.5+m+cf (") for t in texts) and any(t.startswith("CD = ") for t in texts)
    assert len(ax.collections) >= 2
    plt.close(fig)


def test_cd_diagram_descriptive_claims_nothing():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    figures.draw_cd_diagram(ax, [1.2, 2.0, 2.8], np.inf, ["a", "b", "c"], descriptive=True)
    texts = [t.get_text() for t in ax.texts]
    assert "descriptive: no ranking claim" in texts and not any(t.startswith("CD = ") for t in texts)
    assert not any(c.get_linewidth()[0] == 3 for c in ax.collections)  # no bars joining encoders
    plt.close(fig)


# ----------------------------------------------------------------------------- predictions tables

def predictions_table(y, pred, corpora, *, encoders=None, seeds=(0, 1, 2), setting="cross"):
    """A run directory's long predictions table for one simulated study: y [K, N] (or with
    singleton axes), pred [E, K, S, N]; cells are the ordered corpus pairs."""
    y = np.asarray(y).reshape(-1, y.shape[-1])
    e, k, s, n = pred.shape
    encoders = encoders or [f"enc{i}" for i in range(e)]
    pairs = [(a, b) for a in corpora for b in corpora if a != b]
    assert len(pairs) == k
    enc = np.repeat(np.arange(e), k * s * n)
    cell = np.tile(np.repeat(np.arange(k), s * n), e)
    seed = np.tile(np.repeat(np.asarray(seeds), n), e * k)
    utt = np.tile(np.arange(n), e * k * s)
    true = y[cell, utt]
    p = pred.reshape(-1)
    src = np.array([a for a, _ in pairs])[cell]
    tgt = np.array([b for _, b in pairs])[cell]
    lab = np.array(LABELS)
    return pd.DataFrame({
        "encoder": np.array(encoders)[enc], "head": "fcn", "layer": "-1",
        "cell": [f"{setting}:{a}->{b}" for a, b in zip(src, tgt)], "setting": setting,
        "source": src, "target": tgt, "fold": -1, "seed": seed,
        "id": [f"{b}/u{i}" for b, i in zip(tgt, utt)], "true": true, "pred": p,
        "true_label": lab[true], "pred_label": lab[p],
        "probs": list(np.eye(len(LABELS), dtype=np.float32)[p])})


def test_significance_rows_from_a_predictions_table():
    """Both claims' rows from a predictions table equal the tests run on arrays computed here
    without pandas: new-corpora on the corpora's pseudo-values, these-corpora on the model
    groups' per-seed shares and the utterances' linearised differences."""
    corpora = ["A", "B", "C", "D"]
    y, pred, uar, src = simulate(np.random.default_rng(3), 1, n_utt=30, planted=[0.6, 0.0, 0.0])
    preds = predictions_table(y[0, 0, :, 0], pred[0], corpora)
    rows = tables.significance_rows(preds)
    for col in ("setting", "head", "layer", "claim", "encoder_a", "encoder_b", "diff_uar", "ci_low", "ci_high",
                "p", "p_adjusted", "p_min", "test", "unit", "n_units", "question", "holm_family"):
        assert col in rows
    assert len(rows) == 6 and set(rows["claim"]) == set(tables.CLAIMS)
    assert (rows["n_units"] == 12).all() and (rows["n_seeds"] == 3).all()
    assert (rows["diff_uar"] >= 0).all()  # encoder_a is the one with the higher mean
    for _, fam in rows.groupby("claim"):
        np.testing.assert_allclose(fam["p_adjusted"], significance.holm(fam["p"].to_numpy()))
    assert (rows["labels"] == "|".join(LABELS)).all()
    cell = uar[0].mean(-1)  # [E, K] seed-mean per-pair UARs
    idx = {"enc0": 0, "enc1": 1, "enc2": 2}
    tgt = np.array([b for a in range(4) for b in range(4) if a != b])
    member = np.zeros((12, 4), bool)
    member[np.arange(12), src] = member[np.arange(12), tgt] = True
    yk = y[0, 0, :, 0]                                                     # [K, N]
    n_cls = np.stack([(yk == c).sum(-1) for c in range(4)], -1)             # [K, C]
    w = 1.0 / ((n_cls > 0).sum(-1, keepdims=True) * np.take_along_axis(n_cls, yk, -1))
    hits = pred[0] == yk[None, :, None, :]                                 # [E, K, S, N]
    for _, r in rows.iterrows():
        a, b = idx[r["encoder_a"]], idx[r["encoder_b"]]
        d = cell[a] - cell[b]
        assert r["diff_uar"] == pytest.approx(d.mean())
        if r["claim"] == "new-corpora":
            assert r["p"] == pytest.approx(significance.signflip_pvalues(significance.corpus_pseudovalues(d, member)))
            assert r["p_min"] == 0.125 and r["n_clusters"] == 4
            continue
        # every cell has its own models here: one group per source and encoder
        z = np.concatenate([np.stack([uar[0, e, src == g].sum(0) for g in range(4)]) * sign / 12
                            for e, sign in ((a, 1.0), (b, -1.0))])          # [8, S]
        per = w * (hits[a].mean(1) - hits[b].mean(1)) / 12                  # [K, N]
        centred = hits - hits.mean(-1, keepdims=True)
        nv = (w / 12) ** 2 * (centred[a].var(1, ddof=1) + centred[b].var(1, ddof=1)) / 3
        u = np.stack([per[tgt == g].sum(0) for g in range(4)]).ravel()       # the same utterance, every source
        noise = np.stack([nv[tgt == g].sum(0) for g in range(4)]).ravel()
        strata = np.repeat(np.arange(4), yk.shape[1]) * 10 + yk[[list(tgt).index(g) for g in range(4)]].ravel()
        ref = significance.these_corpora_test(d.mean(), z, u, strata, noise)
        assert r["p"] == pytest.approx(float(ref["p"]), rel=1e-6) and r["p_min"] == 0.0
        assert r["ci_low"] == pytest.approx(float(ref["ci_low"])) and r["df"] == pytest.approx(float(ref["df"]))
    # the same with the run's cells list for the label sets
    cells = [{"name": c, "labels": list(LABELS)} for c in preds["cell"].unique()]
    again = tables.significance_rows(preds, cells=cells)
    pd.testing.assert_frame_equal(rows, again)
    # one claim at a time; a report-wide Holm family spans every table
    only = tables.significance_rows(preds, claim="new-corpora")
    assert len(only) == 3 and (only["claim"] == "new-corpora").all()
    two = pd.concat([preds, preds.assign(head="cnn")])
    wide = tables.significance_rows(two, claim="new-corpora", family="report")
    assert len(wide) == 6 and (wide["holm_family"] == "report").all()
    np.testing.assert_allclose(wide["p_adjusted"], significance.holm(wide["p"].to_numpy()))
    with pytest.raises(significance.StatisticsError, match="needs the per-utterance predictions"):
        tables.significance_rows(scores=tables.unit_scores(preds))
    with pytest.raises(significance.StatisticsError, match="weighted sum"):
        tables.significance_rows(preds, metric="macro_f1")


def test_two_corpora_cannot_be_significant_on_new_corpora():
    """Two corpora: leaving either out leaves no pair, so nothing can be said about new corpora
    (p = p_min = 1); a large difference on these corpora is still found."""
    y, pred, *_ = simulate(np.random.default_rng(5), 1, n_enc=2, n_corpora=2, n_seeds=2, n_utt=40,
                          planted=[3.0, 0.0])
    rows = tables.significance_rows(predictions_table(y[0, 0, :, 0], pred[0], ["X", "Y"], seeds=(0, 1)))
    r = rows.set_index("claim").loc["new-corpora"]
    assert r["n_units"] == 2 and r["p_min"] == 1.0 and r["p"] == 1.0 and not r["significant"]
    assert r["ci_low"] == -np.inf and r["ci_high"] == np.inf
    assert significance.format_p(r["p"]) == "1.000"
    assert rows.set_index("claim").loc["these-corpora", "significant"]


def test_mismatched_runs_are_refused():
    corpora = ["A", "B", "C"]
    y, pred, *_ = simulate(np.random.default_rng(9), 1, n_enc=2, n_corpora=3, n_utt=20)
    preds = predictions_table(y[0, 0, :, 0], pred[0], corpora)
    other = preds.copy()
    other.loc[(other["encoder"] == "enc1") & (other["id"] == "B/u3"), "id"] = "B/u999"
    with pytest.raises(significance.StatisticsError, match="different test utterances"):
        tables.significance_rows(other)
    cells = [{"name": c, "labels": list(LABELS)} for c in preds["cell"].unique()]
    mixed = preds.copy()
    mixed.loc[mixed["encoder"] == "enc1", "cell"] = mixed["cell"] + "#4"
    cells += [{"name": c + "#4", "labels": list(LABELS[:3]) + ["fear"]} for c in preds["cell"].unique()]
    with pytest.raises(UserError, match="different label sets"):
        tables.significance_rows(mixed, cells=cells)


def test_friedman_and_gap_rows():
    corpora = ["A", "B", "C", "D"]
    y, pred, uar, _ = simulate(np.random.default_rng(4), 1, n_utt=30)
    preds = predictions_table(y[0, 0, :, 0], pred[0], corpora)
    fr = tables.friedman_rows(preds)
    assert len(fr) == 3 and (fr["n_blocks"] == 12).all() and (fr["n_corpora"] == 4).all()
    ranks, avg = significance.average_ranks(uar[0].mean(-1).T)
    np.testing.assert_allclose(sorted(fr["avg_rank"]), sorted(avg))
    assert fr["friedman_chi2"].iloc[0] == pytest.approx(significance.friedman_test(uar[0].mean(-1).T)["chi2"])
    # friedman_p and cd come from relabelling encoders within corpora (pseudo-values over corpora)
    src = np.array([a for a in range(4) for b in range(4) if a != b])
    tgt = np.array([b for a in range(4) for b in range(4) if a != b])
    member = np.zeros((12, 4), bool)
    member[np.arange(12), src] = member[np.arange(12), tgt] = True
    ref = significance.rank_permutation_test(ranks, member, n_perm=20000)
    assert fr["cd"].iloc[0] == pytest.approx(float(ref["cd"])) and fr["friedman_p"].iloc[0] == pytest.approx(ref["p"])
    assert fr["p_min"].iloc[0] == pytest.approx(6 / 6 ** 4) and (fr["ranking"] == "calibrated").all()
    # same-corpus results for the targets: one with the same label set, one without
    same = preds[preds["source"] == "A"].assign(setting="same", source=lambda t: t["target"],
                                                cell=lambda t: "same:" + t["target"])
    cells = [{"name": c, "labels": list(LABELS)} for c in preds["cell"].unique()]
    cells += [{"name": "same:B", "labels": list(LABELS)}, {"name": "same:C", "labels": list(LABELS)},
              {"name": "same:D", "labels": ["angry", "happy", "neutral", "fear"]}]
    gaps = tables.gap_rows(pd.concat([preds, same]), cells=cells)
    assert len(gaps) == 3 * 12
    to_d = gaps[gaps["target"] == "D"]
    assert to_d["gap"].isna().all() and to_d["note"].str.startswith("label sets differ").all()
    to_b = gaps[(gaps["target"] == "B")]
    assert np.isfinite(to_b["gap"]).all()
    np.testing.assert_allclose(to_b["gap"], to_b["same"] - to_b["cross"])
    assert gaps[gaps["target"] == "A"]["note"].eq("no same-corpus result for the target").all()


# ----------------------------------------------------------------------------- the claims, simulated
# Whole studies per utterance (tests/helpers/null_studies.py): 3 encoders, every ordered pair of G
# corpora, 5 seeds, one model per encoder, source and seed tested on every target (its seed offset
# shared by all targets, its spread different per encoder and source), encoder x source / target /
# pair effects, shared and encoder-specific utterance difficulty, 100-200 test utterances per
# target with fixed, imbalanced class counts. A check "rate <= 0.07" over 500 studies fails a
# design whose true rate is 0.05 with probability 0.02 and passes one whose true rate is 0.10
# with probability 0.012 (binomial), so it separates a calibrated test from a broken one; the
# seeds are fixed, so the outcome is the same on every run.

from tests.helpers import null_studies  # noqa: E402

N_NULL = 500


@pytest.mark.parametrize("scenario,g", [("mixed", 4), ("target-dominated", 5), ("utterance-heavy", 5)])
def test_these_corpora_claim_holds_under_nulls(scenario, g):
    """Encoder x corpus effects fixed and centred (equal on these corpora), seeds and test
    utterances random: Holm over the 3 pairs declares some pair different in <= alpha."""
    sim = null_studies.simulate(np.random.default_rng(g), N_NULL, g, scenario=scenario, fixed_corpora=True,
                                sizes=(100, 200))
    fwer = float(null_studies.family_rejects(sim, "these-corpora").any(-1).mean())
    one = float((null_studies.these_corpora_p(sim, 0, 1) <= 0.05).mean())
    print(f"\nthese-corpora, {scenario}, {g} corpora: family-wise false-positive rate {fwer:.3f}, one comparison "
          f"{one:.3f} ({N_NULL} studies)")
    assert fwer <= 0.07 and one <= 0.07


def test_these_corpora_claim_has_power_at_four_to_eight_corpora():
    """+5 UAR points for encoder 0 on every cell: found against both others at every G = 4..8
    (100 studies each; power >= 0.8 required), never in the wrong direction; encoders 1 and 2
    stay equal."""
    for g in range(4, 9):
        sim = null_studies.simulate(np.random.default_rng(40 + g), 100, g, planted=[0.05, 0, 0], fixed_corpora=True,
                                    sizes=(100, 150))
        rej = null_studies.family_rejects(sim, "these-corpora")
        d = null_studies.uar(sim).mean((-1, -2))
        power = float(rej[:, 0].mean())
        print(f"\nthese-corpora, {g} corpora, +5 points: power {power:.2f} / {rej[:, 1].mean():.2f}; "
              f"1 vs 2 rejected {rej[:, 2].mean():.2f}")
        assert power >= 0.8 and rej[:, 1].mean() >= 0.8
        assert np.all(d[rej[:, 0], 0] > d[rej[:, 0], 1])
        assert rej[:, 2].mean() <= 0.1


@pytest.mark.parametrize("scenario", ["mixed", "target-dominated"])
def test_new_corpora_claim_holds_under_nulls(scenario):
    """Encoder x corpus effects random (exchangeable encoders over corpora), 8 corpora so the
    test can reject: both the family-wise rate and one comparison's rate stay <= alpha."""
    sim = null_studies.simulate(np.random.default_rng(8), 400, 8, scenario=scenario, sizes=(100, 150))
    fwer = float(null_studies.family_rejects(sim, "new-corpora").any(-1).mean())
    one = float((null_studies.new_corpora_p(sim, 0, 1) <= 0.05).mean())
    u = null_studies.uar(sim).mean(-1)
    by_source = significance.holm(np.stack([significance.signflip_pvalues(u[:, a] - u[:, b], clusters=sim["src"])
                                       for a, b in PAIRS], -1))
    fwer_source = float((by_source <= 0.05).any(-1).mean())
    print(f"\nnew-corpora, {scenario}, 8 corpora: family-wise {fwer:.3f}, one comparison {one:.3f}; sign flips "
          f"by source alone: family-wise {fwer_source:.3f} (400 studies)")
    assert fwer <= 0.07 and one <= 0.07
    assert fwer_source > 0.07  # the target role left free: why corpora count in both roles


def test_new_corpora_claim_power_follows_its_floor():
    """+5 points on every cell: with 3 encoders (Holm x 3) nothing can be found below 7 corpora
    (p >= 2 / 2^G); at 7 and 8 corpora it is."""
    power = {}
    for g in range(4, 9):
        sim = null_studies.simulate(np.random.default_rng(50 + g), 100, g, planted=[0.05, 0, 0], sizes=(100, 150))
        power[g] = float(null_studies.family_rejects(sim, "new-corpora")[:, 0].mean())
    print(f"\nnew-corpora, +5 points, power by corpora: {power}")
    assert power[4] == power[5] == power[6] == 0.0
    assert power[7] >= 0.25 and power[8] >= 0.5


@pytest.mark.parametrize("scenario,g", [("mixed", 4), ("target-dominated", 5), ("mixed", 8)])
def test_ranking_holds_under_nulls(scenario, g):
    """Exchangeable encoders: "some pair's average ranks differ by more than cd" in <= alpha of
    studies with the corpus-level cd; Nemenyi's cd over pairs as independent blocks does not."""
    sim = null_studies.simulate(np.random.default_rng(60 + g), 400, g, scenario=scenario, sizes=(100, 150))
    exceeds, classic = null_studies.ranking_exceeds(sim, n_perm=1000)
    print(f"\nranking, {scenario}, {g} corpora: differs by more than cd in {exceeds.mean():.3f}; "
          f"Nemenyi over pairs {classic.mean():.3f} (400 studies)")
    assert exceeds.mean() <= 0.07
    assert classic.mean() > 0.1


def test_rank_permutation_with_two_encoders_is_the_sign_flip():
    """k = 2: relabelling within a corpus flips its pseudo-value about 1.5, so friedman_p is the
    sign-flip p of the rank pseudo-values; with 3 corpora every relabelling is enumerated."""
    rng = np.random.default_rng(0)
    src = np.array([a for a in range(5) for b in range(5) if a != b])
    tgt = np.array([b for a in range(5) for b in range(5) if a != b])
    member = np.zeros((20, 5), bool)
    member[np.arange(20), src] = member[np.arange(20), tgt] = True
    scores = rng.normal(0, 1, (20, 2)) + np.array([0.8, 0.0])
    ranks, avg = significance.average_ranks(scores)
    out = significance.rank_permutation_test(ranks, member)
    pv = significance.corpus_pseudovalues(ranks[:, 0], member)
    assert out["p"] == pytest.approx(significance.signflip_pvalues(pv - 1.5))
    np.testing.assert_allclose(out["avg_ranks"], avg)
    assert out["p_min"] == pytest.approx(2 / 2 ** 5)
    # three corpora, three encoders: 6^3 relabellings, p_min 6 / 216; two corpora: descriptive
    three = significance.rank_permutation_test(significance.average_ranks(rng.normal(0, 1, (6, 3)))[0], _member(3))
    assert three["p_min"] == pytest.approx(6 / 216)
    assert three["descriptive"] == (three["cd"] == np.inf)  # a cd of k - 1 or more could never be exceeded
    two = significance.rank_permutation_test(np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]), _member(2))
    assert two["descriptive"] and two["cd"] == np.inf


def _member(g):
    pairs = [(a, b) for a in range(g) for b in range(g) if a != b]
    m = np.zeros((len(pairs), g), bool)
    for i, (a, b) in enumerate(pairs):
        m[i, a] = m[i, b] = True
    return m


def test_claim_floors_from_the_design():
    """Five corpora, three encoders: these-corpora has no floor; new-corpora's best p is 1/16,
    3/16 after Holm, so it needs 7 corpora; a report-wide family of 6 tables (18 comparisons)
    needs 18 x 2 / 2^G <= 0.05: 10."""
    a, b, r = tables.claim_floors(n_corpora=5, n_encoders=3, n_seeds=5, n_tables=6)
    assert a["claim"] == "these-corpora" and a["reachable"] and a["p_min"] == 0.0
    assert b["p_min"] == 1 / 16 and b["family_size"] == 3 and b["p_min_adjusted"] == 3 / 16
    assert not b["reachable"] and b["corpora_needed"] == 7
    assert r["claim"] == "ranking" and r["p_min"] == pytest.approx(6.0 ** -4) and r["reachable"]
    _, wide, _ = tables.claim_floors(n_corpora=5, n_encoders=3, n_seeds=5, n_tables=6, family="report")
    assert wide["family_size"] == 18 and wide["corpora_needed"] == 10
    one_seed, *_ = tables.claim_floors(n_corpora=8, n_encoders=2, n_seeds=1, n_tables=1)
    assert not one_seed["reachable"] and "seeds" in one_seed["why"]


@settings(max_examples=40, deadline=None)
@given(g=st.integers(3, 7), seed=st.integers(0, 2 ** 16))
def test_pseudovalues_put_each_corpus_effect_in_its_own_value(g, seed):
    """For any differences their mean is T; when a pair's difference is its source's effect
    plus its target's, corpus g's pseudo-value is exactly its two effects (nothing of the
    others leaks in), which is why sign-flipping them treats corpora as the units."""
    rng = np.random.default_rng(seed)
    m = _member(g)
    d = rng.normal(0, 1, len(m))
    assert significance.corpus_pseudovalues(d, m).mean() == pytest.approx(d.mean())
    alpha, beta = rng.normal(0, 1, g), rng.normal(0, 1, g)
    pairs = [(a, b) for a in range(g) for b in range(g) if a != b]
    additive = np.array([alpha[a] + beta[b] for a, b in pairs])
    np.testing.assert_allclose(significance.corpus_pseudovalues(additive, m), alpha + beta, atol=1e-9)


def test_rank_permutations_for_many_encoders_are_sampled():
    """Nine encoders: 9! relabellings per corpus are sampled, not enumerated (memory stays small)."""
    rng = np.random.default_rng(1)
    ranks, _ = significance.average_ranks(rng.normal(0, 1, (20, 9)))
    out = significance.rank_permutation_test(ranks, _member(5), n_perm=500)
    assert out["p_min"] == pytest.approx(1 / 501) and 0 < out["p"] <= 1
