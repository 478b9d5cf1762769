"""Seed-vmapped trainer vs a per-seed loop, same data, same work.

Both run the same training program (a jitted while loop over epochs, each a loop over
minibatches): ``jaxser.train.train`` vmaps it over seeds and dispatches it once, the loop
reference (``tests/helpers/loop_trainer.py``) runs it once per seed. Early stopping is
disabled (patience=None) so both do exactly ``epochs * ceil(N / batch)`` optimizer steps per
seed. Each path is run once to compile (timed as "cold": compile + run) and then
``--repeat`` more times warm (run only, best of the repeats, alternating the two paths); the
JSON last line reports the warm times.

    python benchmarks/train_throughput.py [--n 2000 --layers 13 --dim 768 --seeds 5 --epochs 10]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from tests.helpers.loop_trainer import train_loop  # noqa: E402

from jaxser.heads import HEAD_KINDS, HeadConfig  # noqa: E402
from jaxser.train import ModelData, TrainConfig, prepare, train  # noqa: E402
from jaxser.trainer import Trainer  # noqa: E402


def vmapped(model, **kw):
    return train([model], **kw)[0]


def per_step_loop(model, *, head, config, seeds):
    """Context only (not the JSON ratio): the way per-seed training is often written, one
    jitted optimizer step per minibatch dispatched from Python, same batches, RNG and
    selection as ``train`` (patience=None: the best validation epoch is kept)."""
    import jax.numpy as jnp

    prep = prepare(model, config)
    tr = Trainer.for_data(prep, head, config)
    d = {k: jnp.asarray(v)[None] for k, v in prep.arrays().items()}   # a model axis of 1
    model, n_fit, cap = jnp.int32(0), jnp.int32(prep.n_fit), prep.x_fit.shape[0]
    step = jax.jit(lambda params, opt, perm, i, k_epoch: tr.step(params, opt, d, model, perm, i, k_epoch))
    perm_of = jax.jit(lambda k: tr.permutation(k, n_fit, cap))
    uar = jax.jit(lambda p: tr.val_uar(p, d, model))
    init = jax.jit(tr.init)
    out = []
    for seed in seeds:
        st = init(jnp.int32(seed))
        params, opt, best, best_uar = st["params"], st["opt"], st["params"], -1.0
        for e in range(config.max_epochs):
            perm = perm_of(jax.random.fold_in(st["k_shuf"], e))
            k_epoch = jax.random.fold_in(st["k_drop"], e)
            for i in range(-(-prep.n_fit // tr.batch)):
                params, opt = step(params, opt, perm, i, k_epoch)
            u = float(uar(params))
            if u > best_uar:
                best, best_uar = params, u
        single = jax.tree.map(lambda a: a[None], best)
        out.append(tr.predict_probs(single, next(iter(prep.tests.values())))[0])
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="fit utterances")
    ap.add_argument("--n-val", type=int, default=400)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--layers", type=int, default=13)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--classes", type=int, default=4)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--head", default="fcn", choices=HEAD_KINDS)
    ap.add_argument("--layer", default="-1", help="int layer or 'weighted'")
    ap.add_argument("--repeat", type=int, default=3, help="warm runs per path (best is kept)")
    ap.add_argument("--per-step", action="store_true",
                    help="also time a per-minibatch-dispatch loop (context, not in the JSON)")
    ap.add_argument("--signal", type=float, default=3.0, help="class separation (in noise std units)")
    a = ap.parse_args(argv)

    rng = np.random.default_rng(0)

    def data(n):
        y = rng.integers(0, a.classes, n)
        x = rng.normal(size=(n, a.layers, a.dim)).astype(np.float32)
        x[np.arange(n), :, y] += a.signal  # class c shifts dimension c: a learnable problem
        return x, y

    xf, yf = data(a.n)
    xv, yv = data(a.n_val)
    xt, _ = data(a.n_test)
    layer = a.layer if a.layer == "weighted" else int(a.layer)
    kw = dict(head=HeadConfig(kind=a.head),
              config=TrainConfig(max_epochs=a.epochs, patience=None, batch_size=a.batch_size, layer=layer),
              seeds=list(range(a.seeds)))
    model = ModelData(xf, yf, xv, yv, {"test": xt}, a.classes)

    def timed(fn):
        t = time.perf_counter()
        r = fn(model, **kw)
        return time.perf_counter() - t, r

    steps = -(-a.n // a.batch_size) * a.epochs
    print(f"jax {jax.__version__} on {jax.devices()[0].platform} x{jax.device_count()}, "
          f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")
    print(f"N={a.n} L={a.layers} D={a.dim} C={a.classes} head={a.head} layer={layer} "
          f"seeds={a.seeds} epochs={a.epochs} batch={a.batch_size} -> {steps} steps per seed")
    jax.numpy.zeros(1).block_until_ready()  # backend start-up is charged to neither path
    cold_v, rv = timed(vmapped)
    cold_l, rl = timed(train_loop)
    warm_v = warm_l = float("inf")
    for _ in range(a.repeat):  # alternate, keep the best: robust to other load on the machine
        warm_v = min(warm_v, timed(vmapped)[0])
        warm_l = min(warm_l, timed(train_loop)[0])
    assert rv.epochs_run == rl.epochs_run == a.epochs
    diff = float(np.abs(rv.probs["test"] - rl.probs["test"]).max())
    print(f"cold (compile + run): vmap {cold_v:.2f} s, loop {cold_l:.2f} s, ratio {cold_l / cold_v:.2f}x")
    print(f"warm (run only, best of {a.repeat}): vmap {warm_v:.2f} s, loop {warm_l:.2f} s, "
          f"ratio {warm_l / warm_v:.2f}x")
    print(f"max |p_vmap - p_loop| = {diff:.2e}")
    if a.per_step:
        timed(per_step_loop)  # compile
        warm_p, rp = timed(per_step_loop)
        dp = max(float(np.abs(rv.probs["test"][j] - rp[j][:a.n_test]).max()) for j in range(a.seeds))
        print(f"context: per-step Python loop (one dispatch per minibatch) {warm_p:.2f} s warm, "
              f"{warm_p / warm_v:.2f}x the vmapped time; max |dp| = {dp:.2e}")
    print(json.dumps({"vmap_s": round(warm_v, 3), "loop_s": round(warm_l, 3),
                      "ratio": round(warm_l / warm_v, 3)}))


if __name__ == "__main__":
    main()
