"""The trainer (``jaxser.train.train``) on small synthetic embedding problems: learning,
selection on validation only, determinism, and equality of stacked, sharded and per-seed runs."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest
from tests.helpers.loop_trainer import train_loop

from jaxser import metrics
from jaxser.heads import HeadConfig
from jaxser.train import ModelData, TrainConfig, balanced_class_weights, train
from jaxser.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
C = 4


def toy(n, *, d=16, layers=2, informative=-1, shift=2.5, seed=0):
    """Gaussian noise with class c marked by +shift on dimension c of one layer."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, n)
    x = rng.normal(size=(n, layers, d)).astype(np.float32)
    x[np.arange(n), informative, y] += shift
    return x, y


def cell(seed=0, **kw):
    """One model's splits (fit, validation, {"test": ...}) and the test labels."""
    xf, yf = toy(240, seed=seed, **kw)
    xv, yv = toy(80, seed=seed + 100, **kw)
    xt, yt = toy(160, seed=seed + 200, **kw)
    return (xf, yf, xv, yv, {"test": xt}), yt


def train_one(xf, yf, xv, yv, tests, *, n_classes=C, **kw):
    """``train`` on a single model."""
    return train([ModelData(xf, yf, xv, yv, tests, n_classes)], **kw)[0]


FAST = TrainConfig(max_epochs=12, patience=4, batch_size=32)
SMALL_FCN = HeadConfig(kind="fcn", hidden=(32,), dropout=0.2)


@pytest.mark.parametrize("kind", ["fcn", "cnn", "linear"])
def test_learns_separable_problem(kind):
    args, yt = cell()
    cfg = TrainConfig(max_epochs=15, patience=5, lr=1e-2)
    sizes = dict(hidden=(32,), conv_channels=(4, 8))
    head = HeadConfig(kind=kind, **{k: v for k, v in sizes.items() if k in HeadConfig.fields_of(kind)})
    r = train_one(*args, head=head, config=cfg, seeds=[0, 1])
    assert r.probs["test"].shape == (2, 160, C) and r.val_probs.shape == (2, 80, C)
    np.testing.assert_allclose(r.probs["test"].sum(-1), 1.0, atol=1e-5)
    for s in range(2):
        assert metrics.uar(yt, r.probs["test"][s].argmax(-1)) > 0.7  # chance is 0.25; the oracle scores 0.93


def test_selection_uses_validation_only():
    args, _ = cell(seed=1)
    xf, yf, xv, yv, tests = args
    r = train_one(*args, head=SMALL_FCN, config=FAST, seeds=[0, 1, 2])
    # other test inputs (even garbage) change nothing about training or selection
    r2 = train_one(xf, yf, xv, yv, {"other": np.full_like(tests["test"], 1e3)},
                   head=SMALL_FCN, config=FAST, seeds=[0, 1, 2])
    for a, b in zip(jax.tree.leaves(r.params), jax.tree.leaves(r2.params)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(r.best_epoch, r2.best_epoch)
    np.testing.assert_array_equal(r.val_probs, r2.val_probs)
    # the kept epoch is the first best validation epoch before patience ran out ...
    for s in range(3):
        stop = min(int(r.best_epoch[s]) + FAST.patience, r.epochs_run)
        hist = r.val_uar_history[:stop, s]
        assert int(r.best_epoch[s]) == int(np.argmax(hist)) + 1
        # ... and its validation probabilities reproduce the reported validation UAR
        assert r.val_uar[s] == pytest.approx(metrics.uar(yv, r.val_probs[s].argmax(-1)), abs=1e-6)
    # training stops once every seed has run out of patience
    assert r.epochs_run == min(FAST.max_epochs, int(r.best_epoch.max()) + FAST.patience)
    # standardisation statistics come from the fit split only
    np.testing.assert_allclose(r.mean, xf[:, -1].mean(0), atol=1e-5)


def test_deterministic_bit_identical():
    args, _ = cell(seed=2)
    kw = dict(head=SMALL_FCN, config=FAST, seeds=[3, 4, 5])
    a = train_one(*args, **kw)
    Trainer.clear_cache()  # the second run recompiles from scratch
    b = train_one(*args, **kw)
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.probs["test"], b.probs["test"])
    np.testing.assert_array_equal(a.val_probs, b.val_probs)
    np.testing.assert_array_equal(a.best_epoch, b.best_epoch)


def test_vmapped_equals_loop():
    args, _ = cell(seed=3)
    kw = dict(head=HeadConfig(kind="cnn", hidden=(16,), conv_channels=(4,)), config=FAST, seeds=[0, 1, 2])
    v = train_one(*args, **kw)
    lo = train_loop(ModelData(*args, C), **kw)
    np.testing.assert_array_equal(v.best_epoch, lo.best_epoch)
    np.testing.assert_allclose(v.val_uar, lo.val_uar, atol=1e-6)
    np.testing.assert_allclose(v.probs["test"], lo.probs["test"], atol=1e-5)
    np.testing.assert_allclose(v.val_probs, lo.val_probs, atol=1e-5)
    assert v.epochs_run == lo.epochs_run


SHARD_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    from jax.sharding import Mesh
    sys.path.insert(0, sys.argv[1])
    from jaxser.heads import HeadConfig
    from jaxser.train import ModelData, TrainConfig, train
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 260)
    x = rng.normal(size=(260, 2, 12)).astype(np.float32)
    x[np.arange(260), -1, y] += 2.0
    model = ModelData(x[:160], y[:160], x[160:200], y[160:200], {"t": x[200:]}, 3)
    kw = dict(head=HeadConfig(kind="fcn", hidden=(16,)), config=TrainConfig(max_epochs=8, patience=3), seeds=[0, 1, 2])
    a = train([model], **kw)[0]
    b = train([model], mesh="auto", **kw)[0]
    # two models: the model-stacked program (seed axis sharded, model axis whole) must agree too
    c = train([model] * 2, mesh="auto", **kw)[1]
    # the model axis sharded too: 3 models (padded to 4) over ("model", "seed") = (2, 2) and over ("model",) = 4
    d2 = train([model] * 3, mesh=Mesh(np.array(jax.devices()).reshape(2, 2), ("model", "seed")), **kw)
    d4 = train([model] * 3, mesh=Mesh(np.array(jax.devices()), ("model",)), **kw)
    # one model on a model mesh: a stack of one padded to the 4 devices
    e4 = train([model], mesh=Mesh(np.array(jax.devices()), ("model",)), **kw)
    stacked_diff = max(float(np.abs(a.probs["t"] - r.probs["t"]).max()) for r in d2 + d4 + e4)
    stacked_epochs = all(r.best_epoch.tolist() == a.best_epoch.tolist() for r in d2 + d4 + e4)
    diff = max(float(np.abs(p - q).max()) for p, q in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)))
    print(json.dumps({"devices": jax.device_count(), "n_devices": b.n_devices,
                      "probs_diff": float(np.abs(a.probs["t"] - b.probs["t"]).max()), "params_diff": diff,
                      "same_epochs": a.best_epoch.tolist() == b.best_epoch.tolist(),
                      "same_pred": bool((a.probs["t"].argmax(-1) == b.probs["t"].argmax(-1)).all()),
                      "shape": list(b.probs["t"].shape), "cells_shape": list(c.probs["t"].shape),
                      "cells_same_epochs": a.best_epoch.tolist() == c.best_epoch.tolist(),
                      "cells_diff": float(np.abs(a.probs["t"] - c.probs["t"]).max()),
                      "stacked_diff": stacked_diff, "stacked_epochs": stacked_epochs, "stacked_n": len(d2) + len(d4),
                      "stacked_shape": list(d2[2].probs["t"].shape), "stack_sizes": [r.stack_size for r in d2 + e4]}))
""")


def test_sharded_equals_unsharded(tmp_path):
    script = tmp_path / "shard.py"
    script.write_text(SHARD_SCRIPT)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, str(script), str(ROOT)], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["devices"] == 4 and res["n_devices"] == 4
    assert res["shape"] == [3, 60, 3]  # 3 seeds padded to 4 for the mesh, padding dropped
    assert res["same_epochs"] and res["same_pred"]
    # per-device batched matmuls may round differently in the last bit, nothing more
    assert res["probs_diff"] < 1e-5 and res["params_diff"] < 1e-5
    # a stack of models shards the seed axis the same way
    assert res["cells_shape"] == [3, 60, 3] and res["cells_same_epochs"] and res["cells_diff"] < 1e-5
    # and with a "model" mesh axis, the model axis is sharded (stacks padded to the axis size, dropped)
    assert res["stacked_n"] == 6 and res["stacked_shape"] == [3, 60, 3] and res["stack_sizes"] == [3, 3, 3, 1]
    assert res["stacked_epochs"] and res["stacked_diff"] < 1e-5


def test_balanced_class_weights():
    from sklearn.utils.class_weight import compute_class_weight
    y = np.array([0] * 9 + [1] * 3 + [2] * 1)
    np.testing.assert_allclose(balanced_class_weights(y, 3),
                               compute_class_weight("balanced", classes=np.arange(3), y=y), rtol=1e-6)
    # imbalanced, overlapping 1-D problem: weighting makes the minority class predicted more
    rng = np.random.default_rng(0)

    def data(n0, n1):
        y = np.r_[np.zeros(n0, int), np.ones(n1, int)]
        return (rng.normal(size=(len(y), 1, 2)) + y[:, None, None] * 1.0).astype(np.float32), y

    xf, yf = data(360, 40)
    xv, yv = data(90, 10)
    xt, yt = data(200, 200)
    res = {}
    for cw in (None, "balanced"):
        cfg = TrainConfig(max_epochs=10, patience=None, class_weights=cw, lr=1e-2)
        r = train_one(xf, yf, xv, yv, {"t": xt}, n_classes=2, head=HeadConfig(kind="linear"), config=cfg, seeds=[0])
        res[cw] = metrics.per_class_recall(yt, r.probs["t"][0].argmax(-1), 2)[1]
    assert res["balanced"] > res[None] + 0.2


def test_weighted_layer_mix_finds_informative_layer():
    args, yt = cell(seed=4, layers=3, informative=0)
    head = HeadConfig(kind="linear")
    cfg = TrainConfig(max_epochs=15, patience=None, lr=1e-2, layer="weighted")
    r = train_one(*args, head=head, config=cfg, seeds=[0])
    w = r.params["layer_logits"][0]
    assert np.argmax(w) == 0
    assert metrics.uar(yt, r.probs["test"][0].argmax(-1)) > 0.8
    assert r.mean.shape == (3, 16)  # per-layer, per-dimension statistics


def test_input_errors():
    (xf, yf, xv, yv, tests), _ = cell()
    kw = dict(head=SMALL_FCN, config=FAST, seeds=[0])
    with pytest.raises(ValueError, match="y_fit"):
        train_one(xf, yf + 10, xv, yv, tests, **kw)
    with pytest.raises(ValueError, match="x_val"):
        train_one(xf, yf, xv[:, :, :5], yv, tests, **kw)
    with pytest.raises(ValueError, match="out of range"):
        train_one(xf, yf, xv, yv, tests, **dict(kw, config=TrainConfig(layer=5)))
    with pytest.raises(ValueError, match="validation"):
        train_one(xf, yf, xv[:0], yv[:0], tests, **kw)
    with pytest.raises(ValueError, match="layer"):
        TrainConfig(layer="mean")
    with pytest.raises(ValueError, match="seeds is empty"):
        train_one(xf, yf, xv, yv, tests, **dict(kw, seeds=[]))


def test_stacked_equals_trained_alone():
    """Models of different sizes (two fit capacities, different validation/test sizes) trained
    stacked give what each gives trained alone: same selection and epochs, same outputs up
    to the rounding of model-batched matmuls (a few float32 ulps of a probability <= 1, so 1e-5);
    and a rerun is bit-identical."""
    models = []
    for i, (nf, nv, nt) in enumerate([(100, 30, 50), (240, 80, 160), (250, 60, 0), (120, 40, 70)]):
        (xf, yf), (xv, yv), (xt, _) = toy(nf, seed=i), toy(nv, seed=i + 10), toy(max(nt, 1), seed=i + 20)
        models.append(ModelData(xf, yf, xv, yv, {"a": xt[:nt], "b": xt[:nt // 2]} if nt else {}, C))
    kw = dict(head=SMALL_FCN, config=FAST, seeds=[0, 1, 2])
    many = train(models, max_stack=2, **kw)  # 2 capacities -> 2 stacks of 2 models
    again = train(models, max_stack=2, **kw)
    alone = train(models, max_stack=1, **kw)
    assert [r.stack_size for r in many] == [2, 2, 2, 2] and [r.stack_size for r in alone] == [1, 1, 1, 1]
    for model, r, r2, ref in zip(models, many, again, alone):
        np.testing.assert_array_equal(r.best_epoch, ref.best_epoch)
        assert r.epochs_run == ref.epochs_run and r.val_uar_history.shape == ref.val_uar_history.shape
        np.testing.assert_allclose(r.val_uar, ref.val_uar, atol=1e-6)
        np.testing.assert_allclose(r.val_probs, ref.val_probs, atol=1e-5)
        assert r.probs.keys() == ref.probs.keys()
        for n in ref.probs:
            assert r.probs[n].shape == ref.probs[n].shape
            np.testing.assert_allclose(r.probs[n], ref.probs[n], atol=1e-5)
        for a, b, c in zip(jax.tree.leaves(r.params), jax.tree.leaves(ref.params), jax.tree.leaves(r2.params)):
            np.testing.assert_allclose(a, b, atol=1e-5)
            np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(r.probs.get("a", 0), r2.probs.get("a", 0))
    # a model trained alone is the same whether it came alone or in a list
    solo = train([models[1]], **kw)[0]
    np.testing.assert_array_equal(solo.probs["a"], alone[1].probs["a"])


def test_stacked_tests_not_read_before_selection():
    (xf, yf, xv, yv, tests), _ = cell(seed=5)
    kw = dict(head=SMALL_FCN, config=FAST, seeds=[0, 1])
    a = train([ModelData(xf, yf, xv, yv, tests, C), ModelData(xf[:150], yf[:150], xv, yv, {}, C)], **kw)
    b = train([ModelData(xf, yf, xv, yv, {"x": np.full_like(tests["test"], 1e3)}, C),
               ModelData(xf[:150], yf[:150], xv, yv, {}, C)], **kw)
    for ra, rb in zip(a, b):
        np.testing.assert_array_equal(ra.best_epoch, rb.best_epoch)
        np.testing.assert_array_equal(ra.val_probs, rb.val_probs)
    with pytest.raises(ValueError, match="model 1: y_fit"):
        train([ModelData(xf, yf, xv, yv, {}, C), ModelData(xf, yf + 10, xv, yv, {}, C)], **kw)


def test_capacity_changes_nothing():
    """Padding the splits to a larger capacity (to share one compiled program between models of
    different sizes) costs memory only: the same rows are visited in the same order, validation
    scores only real rows, so the result is bit-identical."""
    args, _ = cell(seed=6)
    kw = dict(head=SMALL_FCN, config=FAST, seeds=[0, 1])
    a = train_one(*args, **kw)
    b = train_one(*args, rows=1000, **kw)  # capacity 1024 instead of 256 (fit) and 128 (validation)
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.val_uar_history, b.val_uar_history)
    np.testing.assert_array_equal(a.probs["test"], b.probs["test"])


def test_one_capacity_mixed_sizes():
    """How the runner calls it on accelerators: one capacity for every model, so models of very
    different sizes share a stack whose minibatch and validation loops have per-model trip
    counts (4 vs 8 steps, 1 vs 3 validation chunks); each model must still get what it gets
    alone."""
    models = []
    for i, (nf, nv) in enumerate([(250, 70), (100, 20), (180, 40)]):
        (xf, yf), (xv, yv), (xt, _) = toy(nf, seed=i), toy(nv, seed=i + 10), toy(30, seed=i + 20)
        models.append(ModelData(xf, yf, xv, yv, {"t": xt}, C))
    kw = dict(head=SMALL_FCN, config=FAST, seeds=[0, 1])
    many = train(models, max_stack=3, rows=256, **kw)
    assert [r.stack_size for r in many] == [3, 3, 3]
    for model, r in zip(models, many):
        ref = train([model], **kw)[0]
        np.testing.assert_array_equal(r.best_epoch, ref.best_epoch)
        assert r.epochs_run == ref.epochs_run
        np.testing.assert_allclose(r.val_uar, ref.val_uar, atol=1e-6)
        np.testing.assert_allclose(r.probs["t"], ref.probs["t"], atol=1e-5)


def test_the_trainer_refuses_non_finite_rows():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 4)).astype(np.float32), np.arange(20) % 2
    x[7, 2] = np.inf
    with pytest.raises(ValueError, match="x_fit: row 7 is not finite"):
        train([ModelData(x, y, x[:6] * 0, y[:6], {"t": x[:4] * 0}, 2)], head=HeadConfig(kind="fcn"),
              config=TrainConfig(max_epochs=1), seeds=[0])


def test_queue_slots_change_nothing_but_rounding():
    """The queue trains models x seeds units through a few slots; a unit that stopped hands its
    slot to the next. However many slots, every unit gets what it gets trained alone (same
    selection, outputs to float rounding), a stopped seed's history is NaN, and the computed
    seed-epochs are the units' own plus only the idle tail (none with one slot)."""
    models = []
    for i, (nf, nv) in enumerate([(120, 40), (200, 60), (160, 50)]):
        (xf, yf), (xv, yv), (xt, _) = toy(nf, seed=30 + i), toy(nv, seed=40 + i), toy(30, seed=50 + i)
        models.append(ModelData(xf, yf, xv, yv, {"t": xt}, C))
    config = TrainConfig(max_epochs=20, patience=2, batch_size=32, lr=1e-2)
    kw = dict(head=SMALL_FCN, config=config, seeds=[0, 1, 2], rows=256)   # one capacity: one stack
    runs = {n: train(models, slots=n, **kw) for n in (1, 2, 9)}
    alone = [train([m], slots=1, **kw)[0] for m in models]
    need = sum(min(int(b) + config.patience, config.max_epochs) for r in alone for b in r.best_epoch)
    assert need < 9 * max(r.epochs_run for r in alone)   # the seeds do stop at different epochs
    assert runs[1][0].slot_epochs == need     # one slot never idles
    assert need <= runs[2][0].slot_epochs <= runs[9][0].slot_epochs
    assert runs[9][0].slot_epochs == 9 * max(r.epochs_run for r in alone)   # every unit its own slot: lockstep
    for n, res in runs.items():
        for r, ref in zip(res, alone):
            assert r.stack_size == 3
            np.testing.assert_array_equal(r.best_epoch, ref.best_epoch)
            assert r.epochs_run == ref.epochs_run == min(int(r.best_epoch.max()) + config.patience, config.max_epochs)
            np.testing.assert_allclose(r.probs["t"], ref.probs["t"], atol=1e-5)
            for s, b in enumerate(r.best_epoch):   # ran to best + patience, NaN afterwards
                stop = min(int(b) + config.patience, config.max_epochs)
                assert np.isfinite(r.val_uar_history[:stop, s]).all()
                assert np.isnan(r.val_uar_history[stop:, s]).all()
    with pytest.raises(ValueError, match="slots"):
        train(models, slots=0, **kw)


def test_programs_start_costliest_first_and_return_in_order(monkeypatch):
    """A call's programs are handed to the threads costliest first (a long program started
    last would run alone while the other threads idle); results come back in the given order."""
    import threading

    import jaxser.train as train_mod
    monkeypatch.setattr(train_mod, "program_threads", lambda place: 2)
    started, lock, both = [], threading.Lock(), threading.Barrier(2)

    def fn(item):
        with lock:
            started.append(item)
        both.wait(timeout=60)   # each thread records one item per round before either takes the next
        return item * 10

    out = train_mod.map_programs(fn, [0, 1, 2, 3], place=None, costs=[1.0, 5.0, 3.0, 9.0])
    assert out == [0, 10, 20, 30]
    assert set(started[:2]) == {3, 1} and set(started[2:]) == {2, 0}   # the two costliest first


def test_programs_in_threads_change_nothing(monkeypatch):
    """On a CPU, a call's stacks (and a layer sweep's models) train in threads: each is its own
    program, so the results are bit-identical to one program after the other."""
    import jaxser.train as train_mod
    from jaxser.layers import train_layers
    models = []
    for i, nf in enumerate([100, 240, 130, 250]):   # two capacities: 128 and 256
        (xf, yf), (xv, yv), (xt, _) = toy(nf, seed=60 + i), toy(40, seed=70 + i), toy(30, seed=80 + i)
        models.append(ModelData(xf, yf, xv, yv, {"t": xt}, C))
    kw = dict(head=SMALL_FCN, config=FAST, seeds=[0, 1])
    monkeypatch.setattr(train_mod, "program_threads", lambda place: 3)
    threaded, threaded_layers = train(models, max_stack=1, **kw), train_layers(models[:3], **kw)
    monkeypatch.setattr(train_mod, "program_threads", lambda place: 1)
    serial, serial_layers = train(models, max_stack=1, **kw), train_layers(models[:3], **kw)
    for a, b in zip(threaded + sum(threaded_layers, []), serial + sum(serial_layers, [])):
        np.testing.assert_array_equal(a.best_epoch, b.best_epoch)
        np.testing.assert_array_equal(a.probs["t"], b.probs["t"])
        for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
            np.testing.assert_array_equal(x, y)
