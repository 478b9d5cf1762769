"""Train downstream heads on cached embeddings: optax, all seeds at once, early stopping on
the source validation split.

One cell = one (train, validation, tests) triple decided by ``jaxser.protocol``. Every seed of
the cell is trained by ONE jitted function vmapped over a leading seed axis (params,
optimizer state, dropout RNG and shuffling are per seed), so S seeds cost one compiled
program and one dispatch per epoch instead of S. Model selection is per seed on validation
UAR: the best parameters so far are kept with ``jnp.where`` on a per-seed improvement mask,
and a seed whose patience ran out is frozen (its best never changes again), so the result is
exactly what S independent early-stopped runs would give (``train_cell_loop`` is that
reference). Test inputs are only touched after selection, to produce predictions.

Determinism: shuffling and dropout keys derive from ``jax.random.PRNGKey(seed)`` folded with
the epoch and step; minibatches have a fixed shape (the epoch permutation is wrapped around
to fill the last batch), so the same data, config and seeds give bit-identical results on CPU.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxser.heads import HeadConfig, make_head

OPTIMIZERS = ("adam", "sgd")
_EVAL_CHUNK = 512  # rows per forward pass at evaluation time (bounds CNN activation memory)


def row_bucket(n: int) -> int:
    """Row counts are padded to 32, 48, 64, 96, 128, 192, ... (powers of two and 1.5x them), so
    cells of similar size share one compiled program instead of compiling one each (compiling
    costs seconds; a small cell trains in a fraction of that). Padding waste < 1/3, ~1/6 typical."""
    b = 32
    while True:
        if n <= b:
            return b
        if n <= b * 3 // 2:
            return b * 3 // 2
        b *= 2


@dataclass(frozen=True)
class TrainConfig:
    """How a head is trained (defaults and their rationale: docs/training.md).

    optimizer:      "adam" (decoupled weight decay when weight_decay > 0, i.e. AdamW) or "sgd"
                    (momentum 0.9, L2-free).
    lr, weight_decay, batch_size, max_epochs: the usual.
    patience:       epochs without a validation-UAR improvement before a seed stops; None
                    disables early stopping (the best validation epoch is still selected).
    class_weights:  None, or "balanced" (weight_c = n_fit / (C * count_c), as scikit-learn) to
                    counter class imbalance in the loss.
    standardize:    z-score every input dimension with statistics of the fit split only.
    layer:          which encoder layer to use (int, negative counts from the top), or
                    "weighted" for a learned softmax-weighted sum over all layers.
    """

    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 32
    max_epochs: int = 50
    patience: int | None = 10
    class_weights: str | None = None
    standardize: bool = True
    layer: int | str = -1

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"TrainConfig.optimizer={self.optimizer!r}; expected one of {OPTIMIZERS}")
        if self.class_weights not in (None, "balanced"):
            raise ValueError(f"TrainConfig.class_weights={self.class_weights!r}; expected None or 'balanced'")
        if not (isinstance(self.layer, int) or self.layer == "weighted"):
            raise ValueError(f"TrainConfig.layer={self.layer!r}; expected an int or 'weighted'")
        if self.batch_size < 1 or self.max_epochs < 1 or self.lr <= 0:
            raise ValueError(f"TrainConfig: batch_size={self.batch_size}, max_epochs={self.max_epochs} "
                             f"and lr={self.lr} must be positive")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"TrainConfig.patience={self.patience}; expected >= 1 or None")


@dataclass
class CellResult:
    """Per-seed outputs of one cell (leading axis S = len(seeds), in the order given).

    probs:            test name -> float32 [S, N_test, C] class probabilities (best params).
    val_uar:          float32 [S] best validation UAR (the selection criterion).
    best_epoch:       int32 [S] 1-based epoch whose parameters were kept.
    val_probs:        float32 [S, N_val, C] validation probabilities of the kept parameters.
    val_uar_history:  float32 [E, S] validation UAR after every epoch run (NaN once a seed
                      has stopped in the loop reference; the vmapped trainer keeps training
                      stopped seeds but never selects from them).
    epochs_run:       epochs the trainer ran (the longest-running seed).
    params:           the kept parameters, numpy arrays stacked over seeds.
    mean, std:        standardisation statistics from the fit split (None when disabled).
    """

    probs: dict[str, np.ndarray]
    val_uar: np.ndarray
    best_epoch: np.ndarray
    val_probs: np.ndarray
    val_uar_history: np.ndarray
    epochs_run: int
    seeds: tuple[int, ...]
    params: Any = None
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- data preparation

def _as_3d(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 2:
        x = x[:, None, :]
    if x.ndim != 3:
        raise ValueError(f"{what}: expected embeddings [N, L, D] (or [N, D]), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{what}: expected floating-point embeddings, got dtype {x.dtype}")
    return x


def _check_labels(y: np.ndarray, n: int, n_classes: int, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"{what}: expected {n} labels (one per row), got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{what}: labels must be integers in [0, {n_classes}), got dtype {y.dtype}")
    if n and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"{what}: labels must lie in [0, {n_classes}), got range [{y.min()}, {y.max()}]")
    return y.astype(np.int32)


def _select(x: np.ndarray, layer: int | str) -> np.ndarray:
    """[N, L, D] -> [N, D] for an int layer, unchanged for 'weighted'."""
    if layer == "weighted":
        return x
    n_layers = x.shape[1]
    if not -n_layers <= layer < n_layers:
        raise ValueError(f"TrainConfig.layer={layer} is out of range for embeddings with {n_layers} layers")
    return x[:, layer, :]


def _fit_stats(x: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std over rows, accumulated in float64 chunk by chunk so a large
    [N, L, D] cache is never copied whole in float64. Constant features get std 1 (they are
    centred to 0 instead of dividing by ~0)."""
    n = x.shape[0]
    total = np.zeros(x.shape[1:], np.float64)
    for i in range(0, n, chunk):
        total += x[i:i + chunk].sum(axis=0, dtype=np.float64)
    mean = total / n
    sq = np.zeros(x.shape[1:], np.float64)
    for i in range(0, n, chunk):
        sq += ((x[i:i + chunk] - mean) ** 2).sum(axis=0)
    std = np.sqrt(sq / n)
    std = np.where(std > 1e-8 * np.maximum(1.0, np.abs(mean)), std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


def _pad_rows(x: np.ndarray, multiple: int) -> np.ndarray:
    pad = (-x.shape[0]) % multiple
    if pad == 0:
        return x
    return np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])


def _balanced_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 1.0)
    return w.astype(np.float32)


@dataclass
class _Prepared:
    x_fit: np.ndarray          # padded to row_bucket(n_fit) rows (padding never sampled)
    y_fit: np.ndarray
    w_fit: np.ndarray
    n_fit: int
    x_val: np.ndarray          # padded to a multiple of the eval chunk
    y_val: np.ndarray          # padded with -1 (ignored by the UAR)
    n_val: int
    tests: dict[str, np.ndarray]
    mean: np.ndarray | None
    std: np.ndarray | None
    n_layers: int | None       # set when layer == "weighted"
    val_chunk: int


def _prepare(x_fit, y_fit, x_val, y_val, tests, n_classes, config: TrainConfig) -> _Prepared:
    if n_classes < 2:
        raise ValueError(f"n_classes={n_classes}; a classifier needs at least 2 classes")
    x_fit = _as_3d(x_fit, "x_fit")
    x_val = _as_3d(x_val, "x_val")
    shape = x_fit.shape[1:]
    if x_fit.shape[0] == 0:
        raise ValueError("x_fit is empty: nothing to train on")
    if x_val.shape[0] == 0:
        raise ValueError("x_val is empty: model selection needs a validation split")
    if x_val.shape[1:] != shape:
        raise ValueError(f"x_val has per-row shape {x_val.shape[1:]}, x_fit has {shape}")
    y_fit = _check_labels(y_fit, x_fit.shape[0], n_classes, "y_fit")
    y_val = _check_labels(y_val, x_val.shape[0], n_classes, "y_val")
    test3 = {}
    for name, xt in tests.items():
        xt = _as_3d(xt, f"tests[{name!r}]")
        if xt.shape[1:] != shape:
            raise ValueError(f"tests[{name!r}] has per-row shape {xt.shape[1:]}, x_fit has {shape}")
        test3[name] = xt

    xf = _select(x_fit, config.layer).astype(np.float32, copy=False)
    mean = std = None
    if config.standardize:
        mean, std = _fit_stats(xf)  # fit split only: no validation or target statistics

    def norm(x):
        x = _select(x, config.layer).astype(np.float32, copy=False)
        return ((x - mean) / std).astype(np.float32) if config.standardize else np.ascontiguousarray(x)

    w = (_balanced_weights(y_fit, n_classes) if config.class_weights == "balanced"
         else np.ones(n_classes, np.float32))
    n_val = x_val.shape[0]
    n_fit = x_fit.shape[0]
    fit_rows = row_bucket(n_fit)
    val_rows = row_bucket(n_val)
    val_chunk = min(_EVAL_CHUNK, val_rows)
    val_rows = -(-val_rows // val_chunk) * val_chunk
    return _Prepared(
        x_fit=_pad_rows(norm(x_fit), fit_rows), y_fit=np.concatenate([y_fit, np.zeros(fit_rows - n_fit, np.int32)]),
        w_fit=np.concatenate([w[y_fit], np.zeros(fit_rows - n_fit, np.float32)]), n_fit=n_fit,
        x_val=_pad_rows(norm(x_val), val_rows),
        y_val=np.concatenate([y_val, -np.ones(val_rows - n_val, np.int32)]),
        n_val=n_val, tests={k: norm(v) for k, v in test3.items()}, mean=mean, std=std,
        n_layers=shape[0] if config.layer == "weighted" else None, val_chunk=val_chunk)


# ----------------------------------------------------------------------------- the trainer

def _uar_jax(y: jax.Array, pred: jax.Array, n_classes: int) -> jax.Array:
    """Mean recall over classes present in y; rows with y == -1 (padding) are ignored."""
    t = jax.nn.one_hot(y, n_classes)                      # -1 -> all-zero row
    hit = t * jax.nn.one_hot(pred, n_classes)
    count = t.sum(0)
    recall = jnp.where(count > 0, hit.sum(0) / jnp.maximum(count, 1.0), 0.0)
    return recall.sum() / jnp.maximum((count > 0).sum(), 1)


def _make_tx(config: TrainConfig) -> optax.GradientTransformation:
    if config.optimizer == "adam":
        if config.weight_decay:
            return optax.adamw(config.lr, weight_decay=config.weight_decay)
        return optax.adam(config.lr)
    tx = optax.sgd(config.lr, momentum=0.9)
    if config.weight_decay:
        tx = optax.chain(optax.add_decayed_weights(config.weight_decay), tx)
    return tx


class _Trainer:
    """The single-seed functions and their jitted forms: ``v_*`` vmapped over seeds (what
    ``train_cell`` runs), ``s_*`` for one seed (``train_cell_loop``). Built through the cached
    ``_trainer`` so cells with the same static shape and config reuse compiled programs."""

    def __init__(self, head: HeadConfig, config: TrainConfig, n_classes: int, n_layers: int | None,
                 fit_rows: int, feat_shape: tuple[int, ...], val_chunk: int):
        self.n_classes = n_classes
        self.model = make_head(head, n_classes, n_layers=n_layers)
        self.tx = _make_tx(config)
        # static shapes come from the row bucket; the real row count n_fit is data, so all
        # cells in one bucket share this program
        self.batch = min(config.batch_size, fit_rows)
        self.max_steps = math.ceil(fit_rows / self.batch)
        self.fit_rows = fit_rows
        self.val_chunk = val_chunk
        self.patience = config.patience if config.patience is not None else config.max_epochs + 1
        self.feat_shape = feat_shape
        self.v_init = jax.jit(jax.vmap(self.init))
        self.v_epoch = jax.jit(jax.vmap(self.epoch, in_axes=(0, None, None)))
        self.v_probs = jax.jit(jax.vmap(self.probs, in_axes=(0, None, None)), static_argnums=2)
        # jobs x seeds (train_cells): the data gains a leading job axis, seeds stay inner
        self.j_epoch = jax.jit(jax.vmap(jax.vmap(self.epoch, in_axes=(0, None, None)), in_axes=(0, 0, None)))
        self.j_probs = jax.jit(jax.vmap(jax.vmap(self.probs, in_axes=(0, None, None)), in_axes=(0, 0, None)),
                               static_argnums=2)
        self.s_init = jax.jit(self.init)
        self.s_epoch = jax.jit(self.epoch)
        self.s_probs = jax.jit(self.probs, static_argnums=2)

    # -- per seed
    def init(self, seed: jax.Array) -> dict:
        key = jax.random.PRNGKey(seed)
        k_init, k_shuf, k_drop = jax.random.split(key, 3)
        params = self.model.init(k_init, jnp.zeros((1,) + self.feat_shape, jnp.float32), train=False)["params"]
        return dict(params=params, opt=self.tx.init(params), best=params,
                    best_uar=jnp.float32(-1.0), best_epoch=jnp.int32(0), wait=jnp.int32(0),
                    k_shuf=k_shuf, k_drop=k_drop)

    def _loss(self, params, xb, yb, wb, key):
        logits = self.model.apply({"params": params}, xb, train=True, rngs={"dropout": key})
        nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), yb[:, None], axis=1)[:, 0]
        return jnp.sum(wb * nll) / jnp.sum(wb)

    def probs(self, params, x: jax.Array, chunk: int) -> jax.Array:
        """Softmax outputs for x (rows a multiple of chunk), chunked to bound memory."""
        xs = x.reshape((-1, chunk) + x.shape[1:])
        out = jax.lax.map(lambda c: jax.nn.softmax(self.model.apply({"params": params}, c, train=False)), xs)
        return out.reshape((-1, self.n_classes))

    def epoch(self, state: dict, data: dict, epoch: jax.Array) -> tuple[dict, jax.Array]:
        """One epoch of minibatch training, then validation and per-seed model selection."""
        # argsort of random bits: one sort (cheaper to compile than random.permutation's
        # multi-round shuffle); ties are broken by index, so it stays deterministic
        # padding rows sort last and are never sampled; the last minibatch wraps around the
        # permutation; steps past ceil(n_fit / batch) leave parameters and optimiser untouched
        n_fit = data["n_fit"]
        bits = jax.random.bits(jax.random.fold_in(state["k_shuf"], epoch), (self.fit_rows,))
        bits = jnp.where(jnp.arange(self.fit_rows) < n_fit, bits >> 1, jnp.uint32(0xFFFFFFFF))
        perm = jnp.argsort(bits, stable=True)
        idx = perm[jnp.arange(self.max_steps * self.batch) % n_fit].reshape(self.max_steps, self.batch)
        steps = (n_fit + self.batch - 1) // self.batch
        k_epoch = jax.random.fold_in(state["k_drop"], epoch)

        def step(carry, inp):
            params, opt = carry
            i, b = inp
            grads = jax.grad(self._loss)(params, data["x_fit"][b], data["y_fit"][b], data["w_fit"][b],
                                         jax.random.fold_in(k_epoch, i))
            updates, new_opt = self.tx.update(grads, opt, params)
            keep = i < steps
            new = (optax.apply_updates(params, updates), new_opt)
            return jax.tree.map(lambda a, b_: jnp.where(keep, a, b_), new, (params, opt)), None

        (params, opt), _ = jax.lax.scan(step, (state["params"], state["opt"]),
                                        (jnp.arange(self.max_steps), idx))
        val_pred = jnp.argmax(self.probs(params, data["x_val"], self.val_chunk), axis=-1)
        uar = _uar_jax(data["y_val"], val_pred, self.n_classes)
        active = state["wait"] < self.patience
        improved = active & (uar > state["best_uar"])  # strict: ties keep the earlier epoch
        best = jax.tree.map(lambda new, old: jnp.where(improved, new, old), params, state["best"])
        new = dict(state, params=params, opt=opt, best=best,
                   best_uar=jnp.where(improved, uar, state["best_uar"]),
                   best_epoch=jnp.where(improved, epoch + 1, state["best_epoch"]),
                   wait=jnp.where(improved, 0, jnp.where(active, state["wait"] + 1, state["wait"])))
        return new, uar


@functools.lru_cache(maxsize=256)
def _trainer(head: HeadConfig, config: TrainConfig, n_classes: int, prep_key: tuple) -> _Trainer:
    return _Trainer(head, config, n_classes, *prep_key)


def _trainer_for(prep: _Prepared, head: HeadConfig, config: TrainConfig, n_classes: int) -> _Trainer:
    # fields that only change the data (loss weights, normalisation, layer choice) share programs
    config = replace(config, class_weights=None, standardize=True, layer=0)
    return _trainer(head, config, n_classes,
                    (prep.n_layers, prep.x_fit.shape[0], prep.x_fit.shape[1:], prep.val_chunk))


def _data(prep: _Prepared) -> dict:
    return dict(x_fit=prep.x_fit, y_fit=prep.y_fit, w_fit=prep.w_fit, x_val=prep.x_val, y_val=prep.y_val,
                n_fit=np.int32(prep.n_fit))


def _resolve_mesh(mesh) -> Mesh | None:
    if mesh is None:
        return None
    if isinstance(mesh, Mesh):
        return mesh
    if mesh == "auto":
        devs = jax.devices()
        return Mesh(np.array(devs), ("seed",)) if len(devs) > 1 else None
    raise ValueError(f"mesh={mesh!r}; expected None, 'auto' or a jax.sharding.Mesh")


def _predict_all(trainer: _Trainer, predict, best, prep: _Prepared, put=lambda a: a):
    """Validation and test probabilities of the kept parameters (after selection only)."""
    val = np.asarray(predict(best, put(prep.x_val), trainer.val_chunk))[..., :prep.n_val, :]
    probs = {}
    for name, xt in prep.tests.items():
        n = xt.shape[0]
        if n == 0:
            probs[name] = np.zeros(val.shape[:-2] + (0, trainer.n_classes), np.float32)
            continue
        rows = row_bucket(n)
        chunk = min(_EVAL_CHUNK, rows)
        probs[name] = np.asarray(predict(best, put(_pad_rows(xt, -(-rows // chunk) * chunk)), chunk))[..., :n, :]
    return val, probs


def train_cell(x_fit, y_fit, x_val, y_val, tests: Mapping[str, np.ndarray], *, n_classes: int,
               head: HeadConfig, config: TrainConfig, seeds: Sequence[int], mesh=None) -> CellResult:
    """Train one cell for every seed at once (vmapped, jitted), select per seed on validation
    UAR, then predict the test sets.

    x_*: embeddings [N, L, D] (or [N, D]); y_*: int labels in [0, n_classes); tests: name ->
    [N_t, L, D]. mesh: None (one device), "auto" (shard seeds over all devices when several
    exist) or a ``jax.sharding.Mesh`` whose axes all shard the seed axis. When the number of
    seeds is not a multiple of the device count, the seed list is padded with repeats and the
    padding dropped from the result.
    """
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("train_cell: seeds is empty")
    prep = _prepare(x_fit, y_fit, x_val, y_val, tests, n_classes, config)
    tr = _trainer_for(prep, head, config, n_classes)
    mesh = _resolve_mesh(mesh)
    n_dev = 1 if mesh is None else mesh.devices.size
    run_seeds = list(seeds)
    while len(run_seeds) % n_dev:  # pad with repeats so every device holds the same number
        run_seeds.append(seeds[len(run_seeds) % len(seeds)])

    if mesh is None:
        put_seed = put_rep = jnp.asarray
    else:
        seed_sh = NamedSharding(mesh, P(tuple(mesh.axis_names)))
        rep_sh = NamedSharding(mesh, P())
        put_seed = lambda a: jax.device_put(a, seed_sh)
        put_rep = lambda a: jax.device_put(a, rep_sh)

    state = jax.tree.map(put_seed, tr.v_init(put_seed(np.asarray(run_seeds, np.int32))))
    data = {k: put_rep(v) for k, v in _data(prep).items()}

    history = []
    for e in range(config.max_epochs):
        state, uar = tr.v_epoch(state, data, jnp.int32(e))
        history.append(np.asarray(uar))
        if not np.any(np.asarray(state["wait"]) < tr.patience):
            break

    val_probs, probs = _predict_all(tr, tr.v_probs, state["best"], prep, put_rep)
    k = len(seeds)
    return CellResult(
        probs={n: p[:k].astype(np.float32) for n, p in probs.items()},
        val_uar=np.asarray(state["best_uar"])[:k], best_epoch=np.asarray(state["best_epoch"])[:k],
        val_probs=val_probs[:k].astype(np.float32), val_uar_history=np.stack(history)[:, :k],
        epochs_run=len(history), seeds=seeds,
        params=jax.tree.map(lambda a: np.asarray(a)[:k], state["best"]), mean=prep.mean, std=prep.std,
        extra={"n_devices": n_dev})


def train_cell_loop(x_fit, y_fit, x_val, y_val, tests: Mapping[str, np.ndarray], *, n_classes: int,
                    head: HeadConfig, config: TrainConfig, seeds: Sequence[int], mesh=None) -> CellResult:
    """Reference: the same training as ``train_cell`` with a Python loop over seeds (one
    jitted single-seed epoch function, each seed early-stopped on its own). Used by the
    benchmark and by the test that checks the vmapped trainer against it."""
    if mesh is not None:
        raise ValueError("train_cell_loop runs on one device; use train_cell for sharding")
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("train_cell_loop: seeds is empty")
    prep = _prepare(x_fit, y_fit, x_val, y_val, tests, n_classes, config)
    tr = _trainer_for(prep, head, config, n_classes)
    data = {k: jnp.asarray(v) for k, v in _data(prep).items()}

    per_seed = []
    history = np.full((config.max_epochs, len(seeds)), np.nan, np.float32)
    epochs_run = 0
    for j, seed in enumerate(seeds):
        state = tr.s_init(jnp.int32(seed))
        for e in range(config.max_epochs):
            state, uar = tr.s_epoch(state, data, jnp.int32(e))
            history[e, j] = float(uar)
            epochs_run = max(epochs_run, e + 1)
            if int(state["wait"]) >= tr.patience:
                break
        val_probs, probs = _predict_all(tr, tr.s_probs, state["best"], prep)
        per_seed.append((state, val_probs, probs))

    stack = lambda xs: np.stack([np.asarray(x) for x in xs])
    return CellResult(
        probs={n: stack([p[2][n] for p in per_seed]).astype(np.float32) for n in prep.tests},
        val_uar=stack([p[0]["best_uar"] for p in per_seed]),
        best_epoch=stack([p[0]["best_epoch"] for p in per_seed]),
        val_probs=stack([p[1] for p in per_seed]).astype(np.float32),
        val_uar_history=history[:epochs_run], epochs_run=epochs_run, seeds=seeds,
        params=jax.tree.map(lambda *a: np.stack([np.asarray(x) for x in a]), *[p[0]["best"] for p in per_seed]),
        mean=prep.mean, std=prep.std)


# ----------------------------------------------------------------------------- many cells at once

_JOB_STATE_BYTES = 2 << 30   # per sub-group budget for params + best + optimiser state, all jobs x seeds
_PRED_BYTES = 1 << 30        # per prediction call budget for the stacked test inputs


@dataclass
class CellData:
    """One cell's splits for ``train_cells``: embeddings [N, L, D] (or [N, D]), int labels in
    [0, n_classes), and name -> test embeddings."""

    x_fit: Any
    y_fit: Any
    x_val: Any
    y_val: Any
    tests: Mapping[str, Any]
    n_classes: int


def _group_chunk(n_jobs: int, rows: int) -> int:
    """Evaluation chunk for a stack of n_jobs: about _EVAL_CHUNK rows over all jobs together,
    so the activation memory of a job-stacked forward pass stays what one cell needs (with one
    job it is exactly train_cell's chunk)."""
    return min(rows, max(32, _EVAL_CHUNK // n_jobs))


def _stack_rows(arrays: Sequence[np.ndarray], rows: int, fill=0) -> np.ndarray:
    """[J, rows, ...]: every array padded with ``fill`` to ``rows`` rows and stacked."""
    out = np.full((len(arrays), rows) + arrays[0].shape[1:], fill, arrays[0].dtype)
    for j, a in enumerate(arrays):
        out[j, :a.shape[0]] = a
    return out


def _n_params(head: HeadConfig, n_classes: int, prep: _Prepared) -> int:
    """Parameters of one model (shapes only, nothing computed)."""
    model = make_head(head, n_classes, n_layers=prep.n_layers)
    x = jax.ShapeDtypeStruct((1,) + prep.x_fit.shape[1:], jnp.float32)
    shapes = jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x, train=False)["params"], x)
    return sum(math.prod(a.shape) for a in jax.tree.leaves(shapes))


def train_cells(jobs: Sequence[CellData], *, head: HeadConfig, config: TrainConfig, seeds: Sequence[int],
                mesh=None, max_jobs: int = 8) -> list[CellResult]:
    """Train many cells, every seed of each, as few jitted programs as their shapes allow.

    Jobs are grouped by what must be static in a compiled program (per-row feature shape,
    n_classes, fit row bucket); a group is split into sub-groups of at most ``max_jobs`` jobs
    (fewer when the jobs x seeds copies of params, best params and optimiser state would
    exceed ~2 GiB, e.g. CNN heads on D=1024). Per sub-group the fit/val data are stacked on a
    leading job axis (validation padded with ignored rows to the sub-group's largest) and one
    jitted epoch function, ``vmap`` over jobs of ``vmap`` over seeds, trains them all; early
    stopping and selection are per job and seed exactly as in ``train_cell``, and training of a
    sub-group ends when every job's every seed has stopped (a job's ``epochs_run`` and history
    are its own). Test inputs are predicted only after selection, per sub-group, padded to a
    common row bucket. Returns one ``CellResult`` per job, in order, equal to ``train_cell`` on
    that job up to float rounding of the job-batched matmuls.

    mesh: as ``train_cell`` (None, "auto" or a Mesh): the *seed* axis is sharded over the
    devices, the job axis stays whole on each.
    """
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("train_cells: seeds is empty")
    if max_jobs < 1:
        raise ValueError(f"train_cells: max_jobs={max_jobs}; expected >= 1")
    preps = []
    for i, job in enumerate(jobs):
        try:
            preps.append(_prepare(job.x_fit, job.y_fit, job.x_val, job.y_val, job.tests, job.n_classes, config))
        except ValueError as err:
            raise ValueError(f"train_cells: job {i}: {err}") from None

    groups: dict[tuple, list[int]] = {}
    for i, (job, prep) in enumerate(zip(jobs, preps)):
        key = (int(job.n_classes), prep.n_layers, prep.x_fit.shape[0], prep.x_fit.shape[1:])
        groups.setdefault(key, []).append(i)

    mesh = _resolve_mesh(mesh)
    n_dev = 1 if mesh is None else mesh.devices.size
    run_seeds = list(seeds)
    while len(run_seeds) % n_dev:  # as train_cell: pad with repeats, dropped from the results
        run_seeds.append(seeds[len(run_seeds) % len(seeds)])
    if mesh is None:
        put_seed = put_rep = jnp.asarray
    else:
        seed_sh = NamedSharding(mesh, P(None, tuple(mesh.axis_names)))
        rep_sh = NamedSharding(mesh, P())
        put_seed = lambda a: jax.device_put(a, seed_sh)
        put_rep = lambda a: jax.device_put(a, rep_sh)

    results: list[CellResult | None] = [None] * len(jobs)
    for (n_classes, _, _, _), idx in groups.items():
        # params, kept params, Adam's two moments and a gradient: ~5 float32 copies per model
        n_par = _n_params(head, n_classes, preps[idx[0]])
        cap = max(1, min(max_jobs, _JOB_STATE_BYTES // (20 * n_par * len(run_seeds))))
        n_sub = -(-len(idx) // cap)
        size = -(-len(idx) // n_sub)  # balanced sub-groups: fewer distinct stack sizes to compile
        for s0 in range(0, len(idx), size):
            sub = idx[s0:s0 + size]
            for j, res in zip(sub, _train_group([preps[i] for i in sub], n_classes, head, config, seeds,
                                                run_seeds, put_seed, put_rep, n_dev)):
                results[j] = res
    return results


def _train_group(preps: list[_Prepared], n_classes: int, head: HeadConfig, config: TrainConfig, seeds, run_seeds,
                 put_seed, put_rep, n_dev: int) -> list[CellResult]:
    n_jobs = len(preps)
    val_rows = max(row_bucket(p.n_val) for p in preps)
    chunk = _group_chunk(n_jobs, val_rows)
    val_rows = -(-val_rows // chunk) * chunk
    tr = _trainer(head, replace(config, class_weights=None, standardize=True, layer=0), n_classes,
                  (preps[0].n_layers, preps[0].x_fit.shape[0], preps[0].x_fit.shape[1:], chunk))
    data = dict(x_fit=np.stack([p.x_fit for p in preps]), y_fit=np.stack([p.y_fit for p in preps]),
                w_fit=np.stack([p.w_fit for p in preps]), n_fit=np.array([p.n_fit for p in preps], np.int32),
                x_val=_stack_rows([p.x_val[:p.n_val] for p in preps], val_rows),
                y_val=_stack_rows([p.y_val[:p.n_val] for p in preps], val_rows, fill=-1))
    data = {k: put_rep(v) for k, v in data.items()}
    # every job starts from the same per-seed init as train_cell (init depends on the seed only)
    init = tr.v_init(jnp.asarray(np.asarray(run_seeds, np.int32)))
    state = jax.tree.map(lambda a: put_seed(jnp.broadcast_to(a[None], (n_jobs,) + a.shape)), init)

    history, epochs_run = [], [None] * n_jobs
    for e in range(config.max_epochs):
        state, uar = tr.j_epoch(state, data, jnp.int32(e))
        history.append(np.asarray(uar))                        # [J, S]
        active = np.asarray(state["wait"]) < tr.patience       # [J, S]
        for j in range(n_jobs):
            if epochs_run[j] is None and not active[j].any():
                epochs_run[j] = e + 1
        if not active.any():
            break
    history = np.stack(history)                                 # [E, J, S]
    best = state["best"]
    val_probs = np.asarray(tr.j_probs(best, data["x_val"], chunk))

    # tests only now, after selection: each job's test sets concatenated, padded to a common bucket
    names = [list(p.tests) for p in preps]
    cat = [np.concatenate([p.tests[n] for n in nm]) if nm else np.zeros((0,) + p.x_fit.shape[1:], np.float32)
           for p, nm in zip(preps, names)]
    n_test = max(c.shape[0] for c in cat)
    test_probs = [None] * n_jobs
    if n_test:
        rows = row_bucket(n_test)
        rows = -(-rows // chunk) * chunk
        row_bytes = rows * int(np.prod(cat[0].shape[1:])) * 4
        per = max(1, min(n_jobs, _PRED_BYTES // row_bytes))
        for a in range(0, n_jobs, per):
            sl = slice(a, min(a + per, n_jobs))
            out = np.asarray(tr.j_probs(jax.tree.map(lambda x: x[sl], best),
                                        put_rep(_stack_rows(cat[sl], rows)), chunk))
            for j in range(sl.start, sl.stop):
                test_probs[j] = out[j - a]

    k = len(seeds)
    results = []
    for j, p in enumerate(preps):
        probs, start = {}, 0
        for n in names[j]:
            m = p.tests[n].shape[0]
            probs[n] = (test_probs[j][:k, start:start + m] if m else np.zeros((k, 0, n_classes))).astype(np.float32)
            start += m
        e_j = epochs_run[j] or len(history)
        results.append(CellResult(
            probs=probs, val_uar=np.asarray(state["best_uar"][j])[:k],
            best_epoch=np.asarray(state["best_epoch"][j])[:k],
            val_probs=val_probs[j, :k, :p.n_val].astype(np.float32),
            val_uar_history=history[:e_j, j, :k], epochs_run=e_j, seeds=tuple(seeds),
            params=jax.tree.map(lambda a: np.asarray(a[j])[:k], best), mean=p.mean, std=p.std,
            extra={"n_devices": n_dev, "group_jobs": n_jobs}))
    return results
