"""bfloat16 wav2vec2: every hidden state close to float32, batch-invariant, and the length
batching plan (few compiled shapes, bounded padding)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxser.encoders import wav2vec2
from jaxser.encoders.base import bucket_length, geometric_buckets, plan_batches

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            conv_dim=[32, 32, 32, 32], conv_kernel=[10, 3, 3, 2], conv_stride=[5, 2, 2, 2],
            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)


def _waves(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in lengths]


def _cosines(a, b):
    return np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


@pytest.mark.parametrize("kind", [dict(), dict(model_type="wavlm", num_buckets=20, max_bucket_distance=40),
                                  dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True)])
def test_bfloat16_matches_float32_per_layer(kind):
    waves = _waves((4000, 5600, 7300))
    f32 = wav2vec2.load("random", preset="small", **TINY, **kind).embed(waves)
    bf = wav2vec2.load("random", preset="small", dtype="bfloat16", **TINY, **kind).embed(waves)
    cos = _cosines(bf, f32)  # [B, L + 1]: every utterance, every hidden state
    assert bf.dtype == np.float32 and cos.min() >= 0.999, cos.min()


def test_bfloat16_is_batch_invariant():
    enc = wav2vec2.load("random", preset="small", dtype="bfloat16", **TINY)
    waves = _waves((3300, 4000, 4100, 6000, 9000))
    together = enc.embed(waves)
    alone = np.concatenate([enc.embed([w]) for w in waves])
    assert enc.compilations > 1  # several batch shapes really ran
    np.testing.assert_allclose(together, alone, atol=2e-2, rtol=0)
    assert _cosines(together, alone).min() >= 0.9999


def test_conv_as_dot_equals_conv():
    """On CPUs with bf16 matrix units the bf16 feature extractor's strided convs run as dots on a
    [B, T/s, s*C] view."""
    rng = np.random.default_rng(0)
    for k, s, c in ((10, 5, 1), (3, 2, 8), (2, 2, 8), (4, 3, 5)):
        for t in (37, 40, 41):
            x = jnp.asarray(rng.standard_normal((2, t, c)), jnp.bfloat16)
            w = jnp.asarray(rng.standard_normal((k, c, 6)), jnp.bfloat16)
            want = jax.lax.conv_general_dilated(x.astype(jnp.float32), w.astype(jnp.float32), (s,), "VALID",
                                                dimension_numbers=("NWC", "WIO", "NWC"))
            got = wav2vec2.strided_conv_as_dots(x, w, k, s)
            assert got.dtype == jnp.bfloat16 and got.shape == want.shape
            np.testing.assert_allclose(np.asarray(got, np.float32), want, rtol=1e-2, atol=1e-2)


def test_plan_batches_few_shapes_bounded_padding():
    buckets = geometric_buckets(16_000, ratio=wav2vec2.BUCKET_RATIO)
    rng = np.random.default_rng(0)
    lengths = [int(x) for x in rng.uniform(16_000, 40_000, size=300)]
    plan = plan_batches(lengths, buckets, batch_samples=32 * 16_000, max_batch=16, stretch=wav2vec2.BATCH_STRETCH)
    assert sorted(i for idx, _ in plan for i in idx) == list(range(len(lengths)))  # each exactly once
    for idx, blen in plan:
        rows = len(idx)
        assert rows & (rows - 1) == 0 and rows <= 16 and rows * blen <= 32 * 16_000 or rows == 1
        assert all(lengths[i] <= blen < lengths[i] * wav2vec2.BUCKET_RATIO * wav2vec2.BATCH_STRETCH * 1.02
                   for i in idx)
    waste = 1 - sum(lengths) / sum(len(idx) * blen for idx, blen in plan)
    shapes = {(len(idx), blen) for idx, blen in plan}
    one_bucket = plan_batches(lengths, buckets, batch_samples=32 * 16_000, max_batch=16, stretch=1.0)
    assert all(bucket_length(lengths[i], buckets) == blen for idx, blen in one_bucket for i in idx)
    assert waste <= 0.10 and len(shapes) < len({(len(idx), blen) for idx, blen in one_bucket})
    # values never steer the plan: the same lengths give the same plan
    assert plan == plan_batches(lengths, buckets, batch_samples=32 * 16_000, max_batch=16,
                                stretch=wav2vec2.BATCH_STRETCH)
