"""Activation functions by their Hugging Face config names (`hidden_act`, `feat_extract_activation`),
shared by the Flax ports so a name means the same function in every family."""
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
