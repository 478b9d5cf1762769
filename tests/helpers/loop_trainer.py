"""The per-seed loop reference of ``jaxser.train.train``: the same compiled program with a
queue of one unit in one slot, run once per seed, so each seed trains alone. Training units
side by side must change nothing but float rounding; the equality tests and the throughput
benchmark compare against this."""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxser.heads import HeadConfig
from jaxser.train import ModelData, ModelResult, TrainConfig, prepare
from jaxser.trainer import Trainer


def train_loop(model: ModelData, *, head: HeadConfig, config: TrainConfig, seeds: Sequence[int]) -> ModelResult:
    """One model trained seed by seed on one device. A seed's history is NaN after it stopped."""
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("train_loop: seeds is empty")
    prep = prepare(model, config)
    tr = Trainer.for_data(prep, head, config)
    data = {k: jnp.asarray(v)[None] for k, v in prep.arrays().items()}   # a model axis of 1
    runs = []
    for seed in seeds:
        out = jax.tree.map(lambda a: a[0], tr.fit(jnp.zeros((1, 1), jnp.int32), jnp.full((1, 1), seed, jnp.int32),
                                                  data, n_slots=1, uniform=True))
        val = tr.predict_probs(out["best"], prep.x_val[:prep.n_val])
        runs.append((out, val, {name: tr.predict_probs(out["best"], xt) for name, xt in prep.tests.items()}))
    epochs_run = max(int(o["epochs"][0]) for o, _, _ in runs)

    def cat(xs):  # each has a seed axis of 1
        return np.concatenate([np.asarray(x) for x in xs])

    return ModelResult(
        probs={n: cat([p[n] for _, _, p in runs]).astype(np.float32) for n in prep.tests},
        val_uar=cat([o["best_uar"] for o, _, _ in runs]), best_epoch=cat([o["best_epoch"] for o, _, _ in runs]),
        val_probs=cat([v for _, v, _ in runs]).astype(np.float32),
        val_uar_history=np.concatenate([np.asarray(o["history"]) for o, _, _ in runs], axis=1)[:epochs_run],
        epochs_run=epochs_run, seeds=seeds,
        params=jax.tree.map(lambda *a: cat(a), *[o["best"] for o, _, _ in runs]), mean=prep.mean, std=prep.std)
