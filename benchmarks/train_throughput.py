"""Seed-vmapped trainer vs a per-seed Python loop, same data, same work.

Both run the same training program (a jitted while loop over epochs, each a loop over
minibatches): ``train_cell`` vmaps it over seeds and dispatches it once, ``train_cell_loop``
runs it once per seed. Early stopping is disabled (patience=None) so both do exactly
``epochs * ceil(N / batch)`` optimizer steps per seed. Each path is run once to compile
(timed as "cold": compile + run) and then ``--repeat`` more times warm (run only, best of the
repeats, alternating the two paths); the JSON last line reports the warm times.

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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jaxser.heads import HeadConfig  # noqa: E402
from jaxser.train import TrainConfig, train_cell, train_cell_loop  # noqa: E402


def per_step_loop(x_fit, y_fit, x_val, y_val, tests, *, n_classes, head, config, seeds):
    """Context only (not the JSON ratio): the way per-seed training is often written, one
    jitted optimizer step per minibatch dispatched from Python, same batches, RNG and
    selection as ``train_cell`` (patience=None: the best validation epoch is kept)."""
    import jax.numpy as jnp
    import optax
    from jaxser import train as T

    prep = T._prepare(x_fit, y_fit, x_val, y_val, tests, n_classes, config)
    tr = T._trainer_for(prep, head, config, n_classes)
    d = {k: jnp.asarray(v) for k, v in T._data(prep).items()}
    n_fit, cap = d["n_fit"], prep.x_fit.shape[0]

    @jax.jit
    def step(params, opt, perm, i, key):
        b, valid = tr.minibatch(perm, i, n_fit)
        g = jax.grad(tr._loss)(params, d["x_fit"][b], d["y_fit"][b], jnp.where(valid, d["w_fit"][b], 0.0), key)
        upd, opt = tr.tx.update(g, opt, params)
        return optax.apply_updates(params, upd), opt

    perm_of = jax.jit(lambda k: tr.permutation(k, n_fit, cap))
    uar = jax.jit(lambda p: tr.val_uar(p, d))
    init = jax.jit(tr.init)
    out = []
    for seed in seeds:
        st = init(jnp.int32(seed))
        params, opt, best, best_uar = st["params"], st["opt"], st["params"], -1.0
        for e in range(config.max_epochs):
            perm = perm_of(jax.random.fold_in(st["k_shuf"], e))
            k_epoch = jax.random.fold_in(st["k_drop"], e)
            for i in range(-(-prep.n_fit // tr.batch)):
                params, opt = step(params, opt, perm, i, jax.random.fold_in(k_epoch, i))
            u = float(uar(params))
            if u > best_uar:
                best, best_uar = params, u
        single = jax.tree.map(lambda a: a[None], best)
        out.append(T._predict(tr, single, next(iter(prep.tests.values())))[0])
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
    ap.add_argument("--head", default="fcn", choices=["fcn", "cnn", "linear"])
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
    kw = dict(n_classes=a.classes, head=HeadConfig(kind=a.head),
              config=TrainConfig(max_epochs=a.epochs, patience=None, batch_size=a.batch_size, layer=layer),
              seeds=list(range(a.seeds)))
    args = (xf, yf, xv, yv, {"test": xt})

    def timed(fn):
        t = time.perf_counter()
        r = fn(*args, **kw)
        return time.perf_counter() - t, r

    steps = -(-a.n // a.batch_size) * a.epochs
    print(f"jax {jax.__version__} on {jax.devices()[0].platform} x{jax.device_count()}, "
          f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")
    print(f"N={a.n} L={a.layers} D={a.dim} C={a.classes} head={a.head} layer={layer} "
          f"seeds={a.seeds} epochs={a.epochs} batch={a.batch_size} -> {steps} steps per seed")
    jax.numpy.zeros(1).block_until_ready()  # backend start-up is charged to neither path
    cold_v, rv = timed(train_cell)
    cold_l, rl = timed(train_cell_loop)
    warm_v = warm_l = float("inf")
    for _ in range(a.repeat):  # alternate, keep the best: robust to other load on the machine
        warm_v = min(warm_v, timed(train_cell)[0])
        warm_l = min(warm_l, timed(train_cell_loop)[0])
    assert rv.epochs_run == rl.epochs_run == a.epochs
    diff = float(np.abs(rv.probs["test"] - rl.probs["test"]).max())
    print(f"cold (compile + run): vmap {cold_v:.2f} s, loop {cold_l:.2f} s, ratio {cold_l / cold_v:.2f}x")
    print(f"warm (run only, best of {a.repeat}): vmap {warm_v:.2f} s, loop {warm_l:.2f} s, ratio {warm_l / warm_v:.2f}x")
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
