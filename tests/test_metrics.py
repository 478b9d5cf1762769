"""jaxser.metrics against scikit-learn, plus the resampling procedures' basic properties."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jaxser import metrics, significance

skm = pytest.importorskip("sklearn.metrics", reason="scikit-learn (dev extra) is the reference")


@st.composite
def label_pairs(draw, max_classes=6, max_n=60):
    n = draw(st.integers(1, max_n))
    c = draw(st.integers(1, max_classes))
    y = draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n))
    p = draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n))
    return np.array(y), np.array(p)


def _sk(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns on classes absent from y_true
        return fn(*a, **k)


@settings(max_examples=200, deadline=None)
@given(label_pairs())
def test_point_metrics_match_sklearn(pair):
    y, p = pair
    assert metrics.uar(y, p) == pytest.approx(_sk(skm.balanced_accuracy_score, y, p), abs=1e-12)
    assert metrics.accuracy(y, p) == pytest.approx(skm.accuracy_score(y, p), abs=1e-12)
    assert metrics.macro_f1(y, p) == pytest.approx(
        _sk(skm.f1_score, y, p, average="macro", zero_division=0), abs=1e-12)
    c = int(max(y.max(), p.max())) + 1
    np.testing.assert_array_equal(metrics.confusion(y, p, c), _sk(skm.confusion_matrix, y, p, labels=range(c)))


@settings(max_examples=100, deadline=None)
@given(label_pairs(), st.sets(st.integers(0, 7), min_size=1, max_size=8))
def test_macro_f1_with_labels_matches_sklearn(pair, labels):
    y, p = pair
    labels = sorted(labels)
    assert metrics.macro_f1(y, p, labels=labels) == pytest.approx(
        _sk(skm.f1_score, y, p, labels=labels, average="macro", zero_division=0), abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(label_pairs())
def test_per_class_recall_matches_sklearn(pair):
    y, p = pair
    c = int(max(y.max(), p.max())) + 1
    got = metrics.per_class_recall(y, p, c)
    ref = _sk(skm.recall_score, y, p, labels=range(c), average=None, zero_division=0)
    present = np.isin(np.arange(c), y)
    np.testing.assert_allclose(got[present], ref[present])
    assert np.isnan(got[~present]).all()


def test_edge_cases():
    y = np.array([0, 0, 1, 1])
    # a label never predicted, and a predicted label absent from the truth
    p = np.array([0, 2, 2, 1])
    assert metrics.uar(y, p) == pytest.approx(_sk(skm.balanced_accuracy_score, y, p))
    assert metrics.macro_f1(y, p) == pytest.approx(_sk(skm.f1_score, y, p, average="macro", zero_division=0))
    # single class everywhere
    one = np.zeros(5, int)
    assert metrics.uar(one, one) == 1.0 and metrics.macro_f1(one, one) == 1.0
    assert metrics.uar(one, np.ones(5, int)) == 0.0
    assert metrics.chance_uar(4) == 0.25
    assert metrics.mean_std([1.0, 3.0]) == (2.0, pytest.approx(np.sqrt(2.0)))
    assert metrics.mean_std([0.5]) == (0.5, 0.0)
    with pytest.raises(ValueError, match="empty"):
        metrics.uar([], [])
    with pytest.raises(ValueError, match="y_pred has 2"):
        metrics.uar([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="out of range"):
        metrics.confusion([0, 3], [0, 1], n_classes=2)


def _noisy(y, acc, c, rng):
    return np.where(rng.random(y.size) < acc, y, rng.integers(0, c, y.size))


def test_bootstrap_ci_contains_point_and_shrinks():
    rng = np.random.default_rng(0)
    widths = []
    for n in (100, 1600):
        y = rng.integers(0, 4, n)
        p = _noisy(y, 0.6, 4, rng)
        for m in ("uar", "accuracy", "macro_f1"):
            point, lo, hi = metrics.bootstrap_ci(y, p, m, n_boot=500, seed=1)
            assert lo <= point <= hi
            ref = {"uar": metrics.uar, "accuracy": metrics.accuracy, "macro_f1": metrics.macro_f1}[m]
            assert point == pytest.approx(ref(y, p))
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2  # ~1/sqrt(N): 4x less for 16x more utterances


def test_bootstrap_vectorised_matches_callable_and_seed_rows():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 80)
    p = _noisy(y, 0.7, 3, rng)
    fast = metrics.bootstrap_ci(y, p, "uar", n_boot=200, seed=5)
    slow = metrics.bootstrap_ci(y, p, metrics.uar, n_boot=200, seed=5)
    assert fast == pytest.approx(slow)
    # several seeds: the point estimate is the mean over seed rows
    ps = np.stack([p, _noisy(y, 0.5, 3, rng)])
    point, lo, hi = metrics.bootstrap_ci(y, ps, "uar", n_boot=200)
    assert point == pytest.approx(np.mean([metrics.uar(y, q) for q in ps]))
    assert lo <= point <= hi


def test_paired_tests():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    a = _noisy(y, 0.8, 4, rng)
    b = _noisy(y, 0.3, 4, rng)
    for test in (significance.paired_bootstrap_test, significance.paired_permutation_test):
        assert test(y, a, a, "uar", 500, 0) == 1.0
        p_ab = test(y, a, b, "uar", 500, 0)
        assert p_ab < 0.01
        assert test(y, b, a, "uar", 500, 0) == pytest.approx(p_ab, abs=0.01)  # two-sided
    # two systems of equal quality: no evidence of a difference
    c = _noisy(y, 0.6, 4, rng)
    d = _noisy(y, 0.6, 4, rng)
    assert significance.paired_permutation_test(y, c, d, "accuracy", 500, 0) > 0.05


def test_resampled_metrics_equal_gathered_resamples():
    """The bootstrap counts resamples with a matrix product; it must give exactly what
    computing the metrics on the gathered resamples gives."""
    from jaxser.metrics import batched_metrics, resampled_metrics
    rng = np.random.default_rng(7)
    y = rng.integers(0, 4, 90)
    p = np.stack([_noisy(y, q, 4, rng) for q in (0.3, 0.6, 0.9)])
    p[0, :5] = 3  # a class predicted but never true, for macro-F1's union
    idx = rng.integers(0, len(y), size=(50, len(y)))
    fast, ref = resampled_metrics(y, p, 4, idx), batched_metrics(y[idx], p[:, idx], 4)
    one, ref1 = resampled_metrics(y, p[1], 4, idx), batched_metrics(y[idx], p[1][idx], 4)
    for m in ("uar", "accuracy", "macro_f1"):
        assert fast[m].shape == ref[m].shape == (3, 50) and one[m].shape == (50,)
        np.testing.assert_allclose(fast[m], ref[m], rtol=0, atol=1e-12)
        np.testing.assert_allclose(one[m], ref1[m], rtol=0, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(label_pairs())
def test_count_kernels_match_sklearn(pair):
    """The batched kernels and the confusion-matrix route give scikit-learn's numbers."""
    y, p = pair
    c = int(max(y.max(), p.max())) + 1
    ref = {"uar": _sk(skm.balanced_accuracy_score, y, p), "accuracy": skm.accuracy_score(y, p),
           "macro_f1": _sk(skm.f1_score, y, p, average="macro", zero_division=0)}
    batched = metrics.batched_metrics(np.stack([y, y]), np.stack([p, p]), c)
    from_cm = metrics.metrics_from_confusion(metrics.confusion(y, p, c))
    resampled = metrics.resampled_metrics(y, p, c, np.arange(y.size)[None])  # the identity draw
    for m, v in ref.items():
        np.testing.assert_allclose(batched[m], [v, v], atol=1e-12)
        assert float(from_cm[m]) == pytest.approx(v, abs=1e-12)
        assert float(resampled[m][0]) == pytest.approx(v, abs=1e-12)


def test_mean_ci_is_scipys_t_interval():
    from scipy import stats

    v = [31.0, 35.5, 28.25, 40.0, 33.0]
    mean, lo, hi = metrics.mean_ci(v + [float("nan")])
    ref = stats.t.interval(0.95, len(v) - 1, loc=np.mean(v), scale=stats.sem(v))
    assert mean == pytest.approx(np.mean(v)) and (lo, hi) == pytest.approx(ref)
    assert np.isnan(metrics.mean_ci([3.0])[1]) and np.isnan(metrics.mean_ci([])[0])
