"""Flax heads: shapes, train/eval behaviour, and the hand-written layers against Flax's own."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxser.heads import HeadConfig, make_head


@pytest.mark.parametrize("kind", ["fcn", "cnn", "linear"])
def test_head_shapes(kind):
    sizes = dict(hidden=(16, 8), conv_channels=(4, 8))
    cfg = HeadConfig(kind=kind, **{k: v for k, v in sizes.items() if k in HeadConfig.fields_of(kind)})
    x = jnp.ones((5, 24))
    model = make_head(cfg, 3)
    params = model.init(jax.random.PRNGKey(0), x)["params"]
    out = model.apply({"params": params}, x)
    assert out.shape == (5, 3) and out.dtype == jnp.float32
    # dropout is active only in training, and eval is deterministic
    np.testing.assert_array_equal(out, model.apply({"params": params}, x, train=False))
    if kind != "linear":
        tr = model.apply({"params": params}, x, train=True, rngs={"dropout": jax.random.PRNGKey(1)})
        assert not np.allclose(tr, out)
    mixed = make_head(cfg, 3, n_layers=4)
    x3 = jnp.ones((5, 4, 24))
    p3 = mixed.init(jax.random.PRNGKey(0), x3)["params"]
    assert mixed.apply({"params": p3}, x3).shape == (5, 3)
    assert p3["layer_logits"].shape == (4,)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_conv1d_matches_flax_conv(k):
    """The im2col Conv1D / reshape max-pool are the same layers as nn.Conv / nn.max_pool."""
    import flax.linen as nn
    from jaxser.heads import Conv1D, max_pool_1d
    x = jnp.asarray(np.random.default_rng(k).normal(size=(3, 11, 2)), jnp.float32)
    ours, ref = Conv1D(4, k), nn.Conv(4, (k,), padding="SAME")
    p, p_ref = ours.init(jax.random.PRNGKey(0), x), ref.init(jax.random.PRNGKey(0), x)
    for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(p_ref)):  # same shapes and init
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(ours.apply(p, x), ref.apply(p, x), atol=1e-5)
    np.testing.assert_array_equal(max_pool_1d(x, 2), nn.max_pool(x, (2,), strides=(2,)))


@pytest.mark.parametrize("k,pool,t", [(3, 4, 23), (3, 2, 16), (1, 3, 10), (4, 2, 9), (5, 1, 7), (2, 4, 4)])
def test_signal_conv_pool_matches_flax_conv_relu_pool(k, pool, t):
    """The first CNN block (phase-wise conv + max, bias and ReLU after the max) is nn.Conv ->
    ReLU -> nn.max_pool on a 1-channel signal: same parameters, same outputs and gradients."""
    import flax.linen as nn
    from jaxser.heads import SignalConvPool
    x = jnp.asarray(np.random.default_rng(k * 10 + pool).normal(size=(3, t)), jnp.float32)
    ours, ref = SignalConvPool(4, k, pool), nn.Conv(4, (k,), padding="SAME")
    p = ours.init(jax.random.PRNGKey(0), x)
    p_ref = ref.init(jax.random.PRNGKey(0), x[..., None])
    for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(p_ref)):
        np.testing.assert_array_equal(a, b)
    p = jax.tree.map(lambda a: a + 0.1, p)  # a non-zero bias, so bias-after-max is exercised

    def ref_fn(p, x):
        h = nn.relu(ref.apply(p, x[..., None]))
        return nn.max_pool(h, (pool,), strides=(pool,)) if pool > 1 else h

    np.testing.assert_allclose(ours.apply(p, x), ref_fn(p, x), atol=1e-6)
    g = jax.grad(lambda p: (ours.apply(p, x) ** 2).sum())(p)
    g_ref = jax.grad(lambda p: (ref_fn(p, x) ** 2).sum())(p)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref)):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_head_config_validation():
    with pytest.raises(ValueError, match="kind"):
        HeadConfig(kind="rnn")
    with pytest.raises(ValueError, match="dropout"):
        HeadConfig(dropout=1.0)
    assert hash(HeadConfig(hidden=[8, 4])) == hash(HeadConfig(hidden=(8, 4)))


def test_a_field_of_another_kind_is_refused_not_ignored():
    with pytest.raises(ValueError, match="a fcn head has no conv_channels \\(a field of cnn heads\\)"):
        HeadConfig(kind="fcn", conv_channels=(8,))
    with pytest.raises(ValueError, match="a linear head has no hidden"):
        HeadConfig(kind="linear", hidden=(8,))
    assert HeadConfig(kind="fcn", conv_channels=[32, 64]) == HeadConfig(kind="fcn")  # the default is no choice
