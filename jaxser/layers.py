"""Layer sweeps: one training set's models on every hidden state of the encoder, trained in
one program, and the layer chosen on source validation (``train_layers``, ``select_layer``).

The hidden states of one encoder have one width, so the per-layer models of one training set
form one stack of the trainer (``jaxser.train``): its queue trains layers x seeds units. A
program's device memory is bounded by ``LAYER_STACK_BYTES``, estimated per layer from the
parameter count and the optimizer step's own values (counted from its jaxpr, nothing computed).
"""
from __future__ import annotations

import functools
import math
from dataclasses import replace
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxser import sharding
from jaxser.heads import HeadConfig
from jaxser.sharding import SEED_AXIS
from jaxser.train import (ModelData, ModelResult, TrainConfig, capacity, check, epoch_cost, map_programs, n_params,
                          prepare, train_stack)
from jaxser.trainer import Trainer, cached_trainer

#: device working set of one layer-stacked program (``layers_per_program``)
LAYER_STACK_BYTES = 4 << 30
#: float32 copies of a model's parameters alive per seed while training: parameters, kept
#: parameters, Adam's two moments, the gradient, and the new state of a while loop whose
#: finished layers are kept by a select
_STATE_COPIES = 8


def _jaxpr_bytes(jaxpr) -> int:
    """Bytes of every value a jaxpr (and the jaxprs nested in it) computes."""
    total = 0
    for eqn in jaxpr.eqns:
        total += sum(math.prod(v.aval.shape) * v.aval.dtype.itemsize for v in eqn.outvars
                     if hasattr(v.aval, "shape"))
        for p in eqn.params.values():
            for sub in (p if isinstance(p, (tuple, list)) else (p,)):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    total += _jaxpr_bytes(inner)
    return total


@functools.lru_cache(maxsize=256)
def step_bytes(head: HeadConfig, config: TrainConfig, n_classes: int, dim: int) -> int:
    """Activation bytes of one seed's optimizer step on one layer: the values of the gradient
    of a minibatch's loss that grow with the batch (forward activations kept for the backward
    pass, and the backward's own), counted from its jaxpr at two batch sizes without computing
    anything; parameter-sized values (the gradient itself) are in ``_STATE_COPIES``. XLA fuses
    and reuses most of them, so this bounds the step's activations from above."""
    tr = cached_trainer(head, replace(config, class_weights=None, standardize=True, layer=0), n_classes, None,
                         (dim,))
    params = jax.eval_shape(tr.init, jax.ShapeDtypeStruct((), jnp.int32))["params"]

    def values(b):
        return _jaxpr_bytes(jax.make_jaxpr(jax.grad(tr.loss))(
            params, jax.ShapeDtypeStruct((b, dim), jnp.float32), jax.ShapeDtypeStruct((b,), jnp.int32),
            jax.ShapeDtypeStruct((b,), jnp.float32), jax.ShapeDtypeStruct((2,), jnp.uint32)).jaxpr)
    b = config.batch_size
    return max(0, values(2 * b) - values(b))


def layer_bytes(head: HeadConfig, config: TrainConfig, n_classes: int, dim: int, n_seeds: int, fit_rows: int,
                val_rows: int) -> int:
    """Device bytes one layer adds to a layer-stacked program: per seed, ``_STATE_COPIES``
    float32 copies of the parameters and one optimizer step's values (``step_bytes``), plus the
    layer's padded fit and validation inputs."""
    n_par = n_params(head, n_classes, None, (dim,))
    per_seed = 4 * _STATE_COPIES * n_par + step_bytes(head, config, n_classes, dim)
    return n_seeds * per_seed + 4 * dim * (fit_rows + val_rows)


def layers_per_program(head: HeadConfig, config: TrainConfig, n_classes: int, dim: int, n_seeds: int,
                       fit_rows: int, val_rows: int, n_layers: int, budget: int = LAYER_STACK_BYTES) -> int:
    """How many layers of one model train in one program: as many as fit ``budget`` bytes by
    ``layer_bytes`` (at least 1, at most ``n_layers``)."""
    per = layer_bytes(head, config, n_classes, dim, n_seeds, fit_rows, val_rows)
    return max(1, min(int(n_layers), int(budget // per)))


def train_layers(models: Sequence[ModelData], *, head: HeadConfig, config: TrainConfig, seeds: Sequence[int],
                 layers: Sequence[int] | None = None, mesh=None, rows: int | None = None,
                 budget: int = LAYER_STACK_BYTES, slots: int | None = None) -> list[list[ModelResult]]:
    """Train every model once per encoder layer: ``results[i][j]`` is model ``i`` trained on
    layer ``layers[j]`` (default: every layer, in order), what ``train`` gives with
    ``config.layer`` set to that layer (``config.layer`` itself is not used).

    The layers of one model have one width, so they train together: each layer is a model of
    one stack (``Trainer.fit``), whose queue trains the layers x seeds units, the
    minibatch order and row counts those of the model. Early stopping and selection are per
    layer and seed, exactly as in ``train``; a layer's result equals it trained alone up to the
    float rounding of the slot-batched matmuls. ``layers_per_program`` bounds a program's device
    memory by ``budget``; more layers are split into balanced programs (a model's programs run
    one after the other; on a CPU, different models' run side by side, ``program_threads``).
    The data are checked once per model and each program's layers are standardised just before
    it runs, so the host holds one standardised program per thread besides the caller's
    embeddings.

    mesh, rows, slots: as ``train``.
    """
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("train_layers: seeds is empty")
    checked = []
    for i, model in enumerate(models):
        try:
            checked.append(check(model))
        except ValueError as err:
            raise ValueError(f"train_layers: model {i}: {err}") from None
    place = sharding.lane_placement(sharding.resolve_mesh(mesh, axis=SEED_AXIS, devices="all"))
    plans = []
    for i, data in enumerate(checked):
        n_layers = data.n_layers
        idx = list(range(n_layers)) if layers is None else [int(x) for x in layers]
        bad = [x for x in idx if not -n_layers <= x < n_layers]
        if bad or not idx:
            raise ValueError(f"train_layers: model {i}: layers {bad or idx} are out of range for embeddings with "
                             f"{n_layers} layers")
        plans.append((data, [x % n_layers for x in idx]))

    def one_model(plan) -> list[ModelResult]:
        data, idx = plan
        n_fit, n_val = data.x_fit.shape[0], data.x_val.shape[0]
        per_program = layers_per_program(head, config, data.n_classes, data.x_fit.shape[2], len(seeds),
                                         capacity(max(n_fit, rows or 0)), capacity(max(n_val, rows or 0)),
                                         len(idx), budget)
        size = -(-len(idx) // -(-len(idx) // per_program))  # balanced programs
        results: list[ModelResult] = []
        for a in range(0, len(idx), size):
            preps = [prepare(data, replace(config, layer=x), rows) for x in idx[a:a + size]]
            tr = Trainer.for_data(preps[0], head, config)
            results += train_stack(tr, preps, seeds, place, slots)
        return results

    costs = [epoch_cost(len(idx), data.x_fit.shape[0], config.batch_size) for data, idx in plans]
    return map_programs(one_model, plans, place, costs)


def select_layer(results: Sequence[ModelResult]) -> ModelResult:
    """Of one training set's models on different layers (``train_layers``), the one with the
    highest source-validation UAR averaged over seeds; the mean is rounded to 9 decimals, so
    seeds summed in another order cannot break a tie, and ties go to the lowest layer. Only
    the validation split decides: no test data are read."""
    if not results:
        raise ValueError("select_layer: no models to choose from")
    score = [(-round(float(np.mean(np.asarray(r.val_uar, np.float64))), 9), r.layer) for r in results]
    return results[min(range(len(results)), key=score.__getitem__)]
