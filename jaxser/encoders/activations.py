"""Activation functions by their Hugging Face config names (`hidden_act`, `feat_extract_activation`),
and the float32-statistics layer norm, shared by the JAX ports so a name means the same function
in every family."""
from functools import partial

import jax
import jax.numpy as jnp

ACTIVATIONS = {
    "gelu": partial(jax.nn.gelu, approximate=False),
    "gelu_new": partial(jax.nn.gelu, approximate=True),
    "gelu_pytorch_tanh": partial(jax.nn.gelu, approximate=True),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "tanh": jnp.tanh,
}


def layer_norm(x, g, b, eps):
    """LayerNorm with float32 statistics whatever the compute dtype (no affine when g is None)."""
    x32 = x.astype(jnp.float32)
    mu = jnp.mean(x32, -1, keepdims=True)
    var = jnp.mean(jnp.square(x32 - mu), -1, keepdims=True)
    y = (x32 - mu) * jax.lax.rsqrt(var + eps)
    if g is not None:
        y = y * g.astype(jnp.float32) + b.astype(jnp.float32)
    return y.astype(x.dtype)
