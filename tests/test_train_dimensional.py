"""The trainer on the dimensional task: one regression output per dimension, CCC or MSE loss,
targets standardised with fit statistics only, selection on validation mean CCC."""
import numpy as np
import pytest

from jaxser import metrics
from jaxser.heads import HeadConfig
from jaxser.train import ModelData, TrainConfig, train

K = 2
FAST = TrainConfig(max_epochs=30, patience=6, lr=1e-2)
FCN = HeadConfig(kind="fcn", hidden=(32,), dropout=0.1)


def toy(n, seed, d=12):
    """Arousal rides on dimension 0, valence (weakly, nonlinearly) on 1 and 2; targets in [0, 1]."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2, d)).astype(np.float32)
    a = 1 / (1 + np.exp(-1.5 * x[:, -1, 0]))
    v = 1 / (1 + np.exp(-(x[:, -1, 1] * np.abs(x[:, -1, 2])) - 0.3 * rng.normal(size=n)))
    return x, np.stack([a, v], 1).astype(np.float32)


def model(seed=0):
    xf, yf = toy(300, seed)
    xv, yv = toy(80, seed + 1)
    xt, yt = toy(200, seed + 2)
    return ModelData(xf, yf, xv, yv, {"test": xt}, n_classes=K, task="dimensional"), yt


@pytest.mark.parametrize("kind,loss", [("fcn", "ccc"), ("linear", "ccc"), ("fcn", "mse")])
def test_learns_dimensions_on_their_scale(kind, loss):
    m, yt = model()
    head = FCN if kind == "fcn" else HeadConfig(kind=kind)
    config = FAST if loss == "ccc" else TrainConfig(max_epochs=30, patience=6, lr=1e-2, loss=loss)
    r = train([m], head=head, config=config, seeds=[0, 1])[0]
    assert r.probs["test"].shape == (2, 200, K) and r.val_probs.shape == (2, 80, K)
    for s in range(2):
        assert metrics.ccc(yt[:, 0], r.probs["test"][s, :, 0]) > 0.8   # arousal: linearly readable
    # predictions come back on the targets' scale, not the standardised one
    assert 0.2 < r.probs["test"][..., 0].mean() < 0.8
    np.testing.assert_allclose(r.y_mean, m.y_fit.mean(0), rtol=1e-5)


def test_selection_is_validation_mean_ccc_and_targets_statistics_are_the_fit_splits():
    m, _ = model(3)
    r = train([m], head=FCN, config=FAST, seeds=[0, 1])[0]
    for s in range(2):
        want = np.mean([metrics.ccc(m.y_val[:, k], r.val_probs[s, :, k]) for k in range(K)])
        assert r.val_uar[s] == pytest.approx(want, abs=2e-4)
        hist = r.val_uar_history[:, s]
        assert r.val_uar[s] == pytest.approx(np.nanmax(hist), abs=1e-6)
        assert r.best_epoch[s] == int(np.nanargmax(hist)) + 1
    # other validation targets and test inputs change the selection, never the statistics
    m2 = ModelData(m.x_fit, m.y_fit, m.x_val, m.y_val * 0.5 + 0.1, {"test": m.tests["test"] + 1}, K, "dimensional")
    b = train([m2], head=FCN, config=FAST, seeds=[0, 1])[0]
    np.testing.assert_array_equal(r.y_mean, b.y_mean)
    np.testing.assert_array_equal(r.y_std, b.y_std)
    np.testing.assert_allclose(r.y_mean, m.y_fit.mean(0), rtol=1e-5)


def test_stacked_equals_trained_alone_and_categorical_unaffected():
    m1, _ = model(5)
    m2, _ = model(6)
    alone = [train([m], head=FCN, config=FAST, seeds=[0, 1], max_stack=1)[0] for m in (m1, m2)]
    stacked = train([m1, m2], head=FCN, config=FAST, seeds=[0, 1], max_stack=8)
    for a, b in zip(alone, stacked):
        np.testing.assert_array_equal(a.best_epoch, b.best_epoch)
        np.testing.assert_allclose(a.probs["test"], b.probs["test"], atol=1e-4)
    rng = np.random.default_rng(0)
    cat = ModelData(m1.x_fit, rng.integers(0, 3, 300), m1.x_val, rng.integers(0, 3, 80), {"t": m1.x_val}, 3)
    both = train([m1, cat], head=FCN, config=FAST, seeds=[0, 1])
    np.testing.assert_array_equal(both[0].probs["test"], alone[0].probs["test"])
    assert both[1].probs["t"].shape == (2, 80, 3)
    np.testing.assert_allclose(both[1].probs["t"].sum(-1), 1.0, atol=1e-5)
    assert both[1].y_mean is None


def test_bad_targets_are_refused():
    m, _ = model()
    bad = ModelData(m.x_fit, np.where(np.arange(300)[:, None] == 3, np.nan, m.y_fit), m.x_val, m.y_val, {}, K,
                    "dimensional")
    with pytest.raises(ValueError, match="finite"):
        train([bad], head=FCN, config=FAST, seeds=[0])
    with pytest.raises(ValueError, match="loss"):
        TrainConfig(loss="huber")
