"""Train downstream heads on cached embeddings: optax, all seeds at once, early stopping on
the source validation split.

One cell = one (train, validation, tests) triple decided by ``jaxser.protocol``. A cell's whole
training -- initialisation, every epoch, early stopping -- is ONE jitted program: a
``lax.while_loop`` over epochs whose body is the single-seed epoch vmapped over a leading seed
axis (params, optimizer state, dropout RNG and shuffling are per seed), so S seeds cost one
compiled program and one dispatch in all. Model selection is per seed on validation UAR: the
best parameters so far are kept with ``jnp.where`` on a per-seed improvement mask, and a seed
whose patience ran out never selects again, so the result is exactly what S independent
early-stopped runs give (``train_cell_loop`` is that reference). Test inputs are only touched
after selection, to produce predictions.

Shapes cost memory, not compute: arrays are padded to a power-of-two row *capacity* so that
cells of similar size share one compiled program (tracing and compiling cost more than
training a small head), but the minibatch loop runs ``ceil(n_fit / batch)`` steps of the real
row count (a traced value), and the epoch permutation is drawn row by row, so the capacity
never changes which rows a step sees.

Determinism: shuffling and dropout keys derive from ``jax.random.PRNGKey(seed)`` folded with
the epoch, step and row; an epoch visits every fit row once (the last minibatch is masked, not
wrapped around), so the same data, config and seeds give bit-identical results on CPU.
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
_VAL_CHUNK = 32     # rows per validation forward pass in training (ceil(n_val / 32) passes per epoch)
_PRED_CHUNK = 128   # rows per prediction call after training (bounds CNN activation memory)


def capacity(n: int, minimum: int = 32) -> int:
    """The row count an array of ``n`` rows is padded to: the next power of two, at least
    ``minimum``. Cells whose sizes share a capacity share compiled programs; the padding is never
    trained on nor scored."""
    return max(minimum, 1 << (max(int(n), 1) - 1).bit_length())


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
    for i in range(0, x.shape[0], 4096):  # in chunks: no full-size temporary for a large cache
        bad = ~np.isfinite(x[i:i + 4096]).all(axis=(1, 2))
        if bad.any():  # one NaN/Inf row would turn the standardisation and every seed's loss to NaN
            raise ValueError(f"{what}: row {i + int(np.argmax(bad))} is not finite (NaN/Inf); "
                             "drop or re-extract that utterance")
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
    x_fit: np.ndarray          # padded to capacity(n_fit) rows (padding never sampled)
    y_fit: np.ndarray
    w_fit: np.ndarray
    n_fit: int
    x_val: np.ndarray          # padded to capacity(n_val) rows (a multiple of _VAL_CHUNK)
    y_val: np.ndarray          # padded with -1 (ignored by the UAR)
    n_val: int
    tests: dict[str, np.ndarray]
    mean: np.ndarray | None
    std: np.ndarray | None
    n_layers: int | None       # set when layer == "weighted"


def _prepare(x_fit, y_fit, x_val, y_val, tests, n_classes, config: TrainConfig, rows: int | None = None) -> _Prepared:
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
    fit_rows, val_rows = capacity(max(n_fit, rows or 0)), capacity(max(n_val, rows or 0))
    return _Prepared(
        x_fit=_pad_rows(norm(x_fit), fit_rows), y_fit=np.concatenate([y_fit, np.zeros(fit_rows - n_fit, np.int32)]),
        w_fit=np.concatenate([w[y_fit], np.zeros(fit_rows - n_fit, np.float32)]), n_fit=n_fit,
        x_val=_pad_rows(norm(x_val), val_rows),
        y_val=np.concatenate([y_val, -np.ones(val_rows - n_val, np.int32)]),
        n_val=n_val, tests={k: norm(v) for k, v in test3.items()}, mean=mean, std=std,
        n_layers=shape[0] if config.layer == "weighted" else None)


# ----------------------------------------------------------------------------- the trainer

def _class_counts(y: jax.Array, pred: jax.Array, n_classes: int) -> jax.Array:
    """[2, C]: rows per true class and correct predictions per class; y == -1 (padding) counts
    nowhere. Summed over chunks, it gives the UAR of all of them (``_uar``)."""
    t = jax.nn.one_hot(y, n_classes)                      # -1 -> all-zero row
    return jnp.stack([t.sum(0), (t * jax.nn.one_hot(pred, n_classes)).sum(0)])


def _uar(counts: jax.Array) -> jax.Array:
    """Mean recall over the classes present, from ``_class_counts``."""
    count, hit = counts
    recall = jnp.where(count > 0, hit / jnp.maximum(count, 1.0), 0.0)
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
    """The single-seed pieces (``init``, ``epoch``) and the jitted programs built from them:
    ``fit`` (seeds vmapped, epochs in a while loop), ``j_fit`` (``fit`` vmapped over a leading job
    axis, for ``train_cells``) and ``predict`` (seeds vmapped, one _PRED_CHUNK of rows). Built
    through the cached ``_trainer``: one per head, config, class count and per-row feature shape;
    jit then keeps one ``fit`` program per row capacity and a single ``predict`` program."""

    def __init__(self, head: HeadConfig, config: TrainConfig, n_classes: int, n_layers: int | None,
                 feat_shape: tuple[int, ...]):
        self.n_classes = n_classes
        self.model = make_head(head, n_classes, n_layers=n_layers)
        self.tx = _make_tx(config)
        self.batch = config.batch_size
        self.max_epochs = config.max_epochs
        self.patience = config.patience if config.patience is not None else config.max_epochs + 1
        self.feat_shape = feat_shape
        self.fit = jax.jit(self._fit)
        self.j_fit = jax.jit(self._fit_jobs)
        self.predict = jax.jit(jax.vmap(self._softmax, in_axes=(0, None)))

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
        return jnp.sum(wb * nll) / jnp.maximum(jnp.sum(wb), 1e-12)

    def _softmax(self, params, x: jax.Array) -> jax.Array:
        return jax.nn.softmax(self.model.apply({"params": params}, x, train=False))

    def val_uar(self, params, data: dict) -> jax.Array:
        """Validation UAR over the real rows only: ceil(n_val / _VAL_CHUNK) forward passes."""
        def chunk(i, counts):
            xc = jax.lax.dynamic_slice_in_dim(data["x_val"], i * _VAL_CHUNK, _VAL_CHUNK)
            yc = jax.lax.dynamic_slice_in_dim(data["y_val"], i * _VAL_CHUNK, _VAL_CHUNK)
            logits = self.model.apply({"params": params}, xc, train=False)
            return counts + _class_counts(yc, jnp.argmax(logits, axis=-1), self.n_classes)

        n_chunks = (data["n_val"] + _VAL_CHUNK - 1) // _VAL_CHUNK
        return _uar(jax.lax.fori_loop(0, n_chunks, chunk, jnp.zeros((2, self.n_classes), jnp.float32)))

    @staticmethod
    def permutation(key: jax.Array, n_fit: jax.Array, cap: int) -> jax.Array:
        """An epoch's visiting order of the n_fit real rows (padding rows sort last): a random
        sort key per row from a row-wise fold_in, so a row's key does not depend on the
        capacity; argsort breaks ties by index, so it is deterministic."""
        rows = jnp.arange(cap)
        bits = jax.vmap(lambda i: jax.random.bits(jax.random.fold_in(key, i)))(rows)
        return jnp.argsort(jnp.where(rows < n_fit, bits >> 1, jnp.uint32(0xFFFFFFFF)), stable=True)

    def minibatch(self, perm: jax.Array, i: jax.Array, n_fit: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Row indices of minibatch i and which of them are real (the last one is partial)."""
        pos = i * self.batch + jnp.arange(self.batch)
        return perm[jnp.minimum(pos, n_fit - 1)], pos < n_fit

    def epoch(self, state: dict, data: dict, epoch: jax.Array) -> tuple[dict, jax.Array]:
        """One epoch of minibatch training, then validation and per-seed model selection."""
        n_fit, batch = data["n_fit"], self.batch
        perm = self.permutation(jax.random.fold_in(state["k_shuf"], epoch), n_fit, data["x_fit"].shape[0])
        k_epoch = jax.random.fold_in(state["k_drop"], epoch)

        def step(i, carry):
            params, opt = carry
            b, valid = self.minibatch(perm, i, n_fit)
            wb = jnp.where(valid, data["w_fit"][b], 0.0)  # the last minibatch is masked
            grads = jax.grad(self._loss)(params, data["x_fit"][b], data["y_fit"][b], wb,
                                         jax.random.fold_in(k_epoch, i))
            updates, opt = self.tx.update(grads, opt, params)
            return optax.apply_updates(params, updates), opt

        # ceil(n_fit / batch) steps: the trip count is data, so the capacity costs no compute
        params, opt = jax.lax.fori_loop(0, (n_fit + batch - 1) // batch, step, (state["params"], state["opt"]))
        uar = self.val_uar(params, data)
        active = state["wait"] < self.patience
        improved = active & (uar > state["best_uar"])  # strict: ties keep the earlier epoch
        best = jax.tree.map(lambda new, old: jnp.where(improved, new, old), params, state["best"])
        new = dict(state, params=params, opt=opt, best=best,
                   best_uar=jnp.where(improved, uar, state["best_uar"]),
                   best_epoch=jnp.where(improved, epoch + 1, state["best_epoch"]),
                   wait=jnp.where(improved, 0, jnp.where(active, state["wait"] + 1, state["wait"])))
        return new, uar

    # -- every seed, every epoch: one program
    def _fit(self, seeds: jax.Array, data: dict) -> dict:
        """Train every seed to the end of early stopping. Epochs run while any seed still has
        patience; a seed that ran out keeps training in lockstep but never selects again."""
        epoch = jax.vmap(self.epoch, in_axes=(0, None, None))

        def cond(c):
            e, st, _ = c
            return (e < self.max_epochs) & jnp.any(st["wait"] < self.patience)

        def body(c):
            e, st, hist = c
            st, uar = epoch(st, data, e)
            return e + 1, st, hist.at[e].set(uar)

        hist = jnp.full((self.max_epochs, seeds.shape[0]), jnp.nan, jnp.float32)
        e, st, hist = jax.lax.while_loop(cond, body, (jnp.int32(0), jax.vmap(self.init)(seeds), hist))
        return dict(best=st["best"], best_uar=st["best_uar"], best_epoch=st["best_epoch"], history=hist, epochs=e)

    def _fit_jobs(self, seeds: jax.Array, data: dict) -> dict:
        """``_fit`` for a stack of jobs (data with a leading job axis, the same seeds). Each job
        stops on its own: the batched loop runs until the last job is done and leaves the state
        of finished jobs untouched."""
        return jax.vmap(lambda d: self._fit(seeds, d))(data)


@functools.lru_cache(maxsize=256)
def _trainer(head: HeadConfig, config: TrainConfig, n_classes: int, n_layers: int | None,
             feat_shape: tuple[int, ...]) -> _Trainer:
    return _Trainer(head, config, n_classes, n_layers, feat_shape)


def _trainer_for(prep: _Prepared, head: HeadConfig, config: TrainConfig, n_classes: int) -> _Trainer:
    # fields that only change the data (loss weights, normalisation, layer choice) share programs
    config = replace(config, class_weights=None, standardize=True, layer=0)
    return _trainer(head, config, n_classes, prep.n_layers, prep.x_fit.shape[1:])


def _data(prep: _Prepared) -> dict:
    return dict(x_fit=prep.x_fit, y_fit=prep.y_fit, w_fit=prep.w_fit, x_val=prep.x_val, y_val=prep.y_val,
                n_fit=np.int32(prep.n_fit), n_val=np.int32(prep.n_val))


def _resolve_mesh(mesh) -> Mesh | None:
    if mesh is None:
        return None
    if isinstance(mesh, Mesh):
        return mesh
    if mesh == "auto":  # every device of every process: on a pod slice, seeds span the hosts
        devs = jax.devices()
        return Mesh(np.array(devs), ("seed",)) if len(devs) > 1 else None
    raise ValueError(f"mesh={mesh!r}; expected None, 'auto' or a jax.sharding.Mesh")


def _put(a, sh: NamedSharding) -> jax.Array:
    """A host array placed with ``sh``; every process passes the same whole array and keeps the
    pieces its own devices hold (a mesh may span the devices of several hosts)."""
    a = np.asarray(a)
    return jax.make_array_from_callback(a.shape, sh, lambda idx: a[idx])


def _host(tree):
    """numpy copies of a tree of arrays. An array spread over devices of several processes (a
    pod slice) is gathered first, so every process gets the whole value; every process must
    make the same calls, which the identical training code on every host does."""
    def one(a):
        if isinstance(a, jax.Array) and not a.is_fully_addressable:
            from jax.experimental import multihost_utils
            return np.asarray(multihost_utils.process_allgather(a, tiled=True))
        return np.asarray(a)
    return jax.tree.map(one, tree)


JOB_AXIS = "job"  # a mesh axis of this name shards train_cells' job axis; all others shard seeds


def _job_devices(mesh: Mesh | None) -> int:
    return mesh.shape[JOB_AXIS] if mesh is not None and JOB_AXIS in mesh.axis_names else 1


def _seed_placement(mesh: Mesh | None, seeds: tuple[int, ...]):
    """(seeds to run, put for seed-axis arrays, put for replicated arrays). When the number of
    seeds is not a multiple of the seed-axis device count, the seed list is padded with repeats
    (dropped from the results) so every device holds the same number."""
    if mesh is None:
        return list(seeds), jnp.asarray, jnp.asarray
    seed_axes = tuple(a for a in mesh.axis_names if a != JOB_AXIS)
    n_dev = math.prod(mesh.shape[a] for a in seed_axes)
    run_seeds = list(seeds)
    while len(run_seeds) % n_dev:
        run_seeds.append(seeds[len(run_seeds) % len(seeds)])
    seed_sh = NamedSharding(mesh, P(seed_axes) if seed_axes else P())
    rep_sh = NamedSharding(mesh, P())
    return run_seeds, (lambda a: _put(a, seed_sh)), (lambda a: _put(a, rep_sh))


def _predict(trainer: _Trainer, params, x: np.ndarray, put=jnp.asarray) -> np.ndarray:
    """[S, N, C] probabilities of x, _PRED_CHUNK rows per call (the last chunk padded), so
    every validation and test set of a head goes through one small compiled program."""
    s = jax.tree.leaves(params)[0].shape[0]
    outs = [np.zeros((s, 0, trainer.n_classes), np.float32)]
    for a in range(0, x.shape[0], _PRED_CHUNK):
        part = x[a:a + _PRED_CHUNK]
        outs.append(_host(trainer.predict(params, put(_pad_rows(part, _PRED_CHUNK))))[:, :part.shape[0]])
    return np.concatenate(outs, axis=1)


def _predict_all(trainer: _Trainer, best, prep: _Prepared, put=jnp.asarray):
    """Validation and test probabilities of the kept parameters (after selection only)."""
    val = _predict(trainer, best, prep.x_val[:prep.n_val], put)
    return val, {name: _predict(trainer, best, xt, put) for name, xt in prep.tests.items()}


def train_cell(x_fit, y_fit, x_val, y_val, tests: Mapping[str, np.ndarray], *, n_classes: int,
               head: HeadConfig, config: TrainConfig, seeds: Sequence[int], mesh=None,
               rows: int | None = None) -> CellResult:
    """Train one cell for every seed at once (one jitted program), select per seed on validation
    UAR, then predict the test sets.

    x_*: embeddings [N, L, D] (or [N, D]); y_*: int labels in [0, n_classes); tests: name ->
    [N_t, L, D]. mesh: None (one device), "auto" (shard seeds over all devices when several
    exist) or a ``jax.sharding.Mesh`` whose axes all shard the seed axis. When the number of
    seeds is not a multiple of the device count, the seed list is padded with repeats and the
    padding dropped from the result. rows: pad the fit and validation splits to at least this
    many rows (the capacity, a power of two), so cells of different sizes share one compiled
    program; it costs memory, not compute, and does not change the result.
    """
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("train_cell: seeds is empty")
    mesh = _resolve_mesh(mesh)
    if _job_devices(mesh) > 1:
        raise ValueError(f"train_cell: the mesh's {JOB_AXIS!r} axis shards train_cells' job axis, and train_cell "
                         f"trains one job; use train_cells, or a mesh without a {JOB_AXIS!r} axis")
    prep = _prepare(x_fit, y_fit, x_val, y_val, tests, n_classes, config, rows)
    tr = _trainer_for(prep, head, config, n_classes)
    run_seeds, put_seed, put_rep = _seed_placement(mesh, seeds)
    out = tr.fit(put_seed(np.asarray(run_seeds, np.int32)), {k: put_rep(v) for k, v in _data(prep).items()})
    val_probs, probs = _predict_all(tr, out["best"], prep, put_rep)
    host = _host(out)
    epochs, k = int(host["epochs"]), len(seeds)
    return CellResult(
        probs={n: p[:k].astype(np.float32) for n, p in probs.items()},
        val_uar=host["best_uar"][:k], best_epoch=host["best_epoch"][:k],
        val_probs=val_probs[:k].astype(np.float32), val_uar_history=host["history"][:epochs, :k],
        epochs_run=epochs, seeds=seeds,
        params=jax.tree.map(lambda a: a[:k], host["best"]), mean=prep.mean, std=prep.std,
        extra={"n_devices": 1 if mesh is None else mesh.devices.size})


def train_cell_loop(x_fit, y_fit, x_val, y_val, tests: Mapping[str, np.ndarray], *, n_classes: int,
                    head: HeadConfig, config: TrainConfig, seeds: Sequence[int], mesh=None) -> CellResult:
    """Reference: the same training as ``train_cell``, one seed at a time (the same program
    with a seed axis of 1, each seed early-stopped on its own; its history is NaN after it
    stopped). Used by the benchmark and by the test that checks seed-vmapping changes nothing."""
    if mesh is not None:
        raise ValueError("train_cell_loop runs on one device; use train_cell for sharding")
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("train_cell_loop: seeds is empty")
    prep = _prepare(x_fit, y_fit, x_val, y_val, tests, n_classes, config)
    tr = _trainer_for(prep, head, config, n_classes)
    data = {k: jnp.asarray(v) for k, v in _data(prep).items()}
    runs = []
    for seed in seeds:
        out = tr.fit(jnp.asarray([seed], jnp.int32), data)
        runs.append((out, *_predict_all(tr, out["best"], prep)))
    epochs_run = max(int(o["epochs"]) for o, _, _ in runs)
    cat = lambda xs: np.concatenate([np.asarray(x) for x in xs])  # noqa: E731  (each has a seed axis of 1)
    return CellResult(
        probs={n: cat([p[n] for _, _, p in runs]).astype(np.float32) for n in prep.tests},
        val_uar=cat([o["best_uar"] for o, _, _ in runs]), best_epoch=cat([o["best_epoch"] for o, _, _ in runs]),
        val_probs=cat([v for _, v, _ in runs]).astype(np.float32),
        val_uar_history=np.concatenate([np.asarray(o["history"]) for o, _, _ in runs], axis=1)[:epochs_run],
        epochs_run=epochs_run, seeds=seeds,
        params=jax.tree.map(lambda *a: cat(a), *[o["best"] for o, _, _ in runs]), mean=prep.mean, std=prep.std)


# ----------------------------------------------------------------------------- many cells at once

_JOB_STATE_BYTES = 2 << 30   # per sub-group budget for params + best + optimiser state, all jobs x seeds


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


def _stack_rows(arrays: Sequence[np.ndarray], rows: int, fill=0) -> np.ndarray:
    """[J, rows, ...]: every array padded with ``fill`` to ``rows`` rows and stacked."""
    out = np.full((len(arrays), rows) + arrays[0].shape[1:], fill, arrays[0].dtype)
    for j, a in enumerate(arrays):
        out[j, :a.shape[0]] = a
    return out


@functools.lru_cache(maxsize=256)
def _n_params(head: HeadConfig, n_classes: int, n_layers: int | None, feat_shape: tuple[int, ...]) -> int:
    """Parameters of one model (shapes only, nothing computed)."""
    model = make_head(head, n_classes, n_layers=n_layers)
    x = jax.ShapeDtypeStruct((1,) + feat_shape, jnp.float32)
    shapes = jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x, train=False)["params"], x)
    return sum(math.prod(a.shape) for a in jax.tree.leaves(shapes))


def train_cells(jobs: Sequence[CellData], *, head: HeadConfig, config: TrainConfig, seeds: Sequence[int],
                mesh=None, max_jobs: int = 8, rows: int | None = None) -> list[CellResult]:
    """Train many cells, every seed of each, as few jitted programs as their shapes allow.

    Jobs are grouped by what must be static in a compiled program (per-row feature shape,
    n_classes, fit row capacity); a group is split into sub-groups of at most ``max_jobs`` jobs
    (fewer when the jobs x seeds copies of params, best params and optimiser state would
    exceed ~2 GiB, e.g. CNN heads on D=1024). Per sub-group the fit/val data are stacked on a
    leading job axis (validation padded with ignored rows to the sub-group's largest) and one
    jitted program, ``train_cell``'s vmapped over jobs, trains them all; early stopping and
    selection are per job and seed exactly as in ``train_cell``, and a job's ``epochs_run`` and
    history are its own. Test inputs are predicted only after selection. Returns one
    ``CellResult`` per job, in order, equal to ``train_cell`` on that job up to float rounding
    of the job-batched matmuls. With ``max_jobs=1`` it is ``train_cell`` per job.

    mesh: as ``train_cell`` (None, "auto" or a Mesh): the *seed* axis is sharded over the
    devices, the job axis stays whole on each -- unless the mesh has an axis named "job"
    (``JOB_AXIS``): then the job axis is sharded over it and the seeds over the other axes
    (e.g. ``Mesh(devices.reshape(4, 2), ("job", "seed"))``, or ``("job",)`` alone: every device
    trains whole cells, all seeds each); sub-groups are padded with repeats of a job to a
    multiple of the job-axis size (dropped from the results). rows: as ``train_cell`` (one capacity for all
    jobs: one group, one program; within a group jobs are stacked in order of size, since a
    stack runs as many minibatch steps as its largest job).
    """
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("train_cells: seeds is empty")
    if max_jobs < 1:
        raise ValueError(f"train_cells: max_jobs={max_jobs}; expected >= 1")
    preps = []
    for i, job in enumerate(jobs):
        try:
            preps.append(_prepare(job.x_fit, job.y_fit, job.x_val, job.y_val, job.tests, job.n_classes, config, rows))
        except ValueError as err:
            raise ValueError(f"train_cells: job {i}: {err}") from None

    groups: dict[tuple, list[int]] = {}
    for i, (job, prep) in enumerate(zip(jobs, preps)):
        key = (int(job.n_classes), prep.n_layers, prep.x_fit.shape[0], prep.x_fit.shape[1:])
        groups.setdefault(key, []).append(i)

    mesh = _resolve_mesh(mesh)
    n_job_dev = _job_devices(mesh)
    run_seeds, put_seed, put_rep = _seed_placement(mesh, seeds)
    put_job = put_rep if n_job_dev == 1 else (lambda a: _put(a, NamedSharding(mesh, P(JOB_AXIS))))
    results: list[CellResult | None] = [None] * len(jobs)
    for (n_classes, _, _, _), idx in groups.items():
        idx = sorted(idx, key=lambda i: preps[i].n_fit)
        # params, kept params, Adam's two moments and a gradient: ~5 float32 copies per model
        cap = 1
        if max_jobs > 1 and len(idx) > 1:
            n_par = _n_params(head, n_classes, preps[idx[0]].n_layers, preps[idx[0]].x_fit.shape[1:])
            cap = max(1, min(max_jobs, _JOB_STATE_BYTES // (20 * n_par * len(run_seeds))))
        cap = max(n_job_dev, cap // n_job_dev * n_job_dev)  # a multiple of the job-axis devices
        n_sub = -(-len(idx) // cap)
        size = -(-len(idx) // n_sub)  # balanced sub-groups: fewer distinct stack sizes to compile
        for s0 in range(0, len(idx), size):
            sub = idx[s0:s0 + size]
            if len(sub) == 1 and n_job_dev == 1:
                j = sub[0]
                results[j] = train_cell(jobs[j].x_fit, jobs[j].y_fit, jobs[j].x_val, jobs[j].y_val, jobs[j].tests,
                                        n_classes=n_classes, head=head, config=config, seeds=seeds, mesh=mesh,
                                        rows=rows)
                continue
            tr = _trainer_for(preps[sub[0]], head, config, n_classes)
            for j, res in zip(sub, _train_group(tr, [preps[i] for i in sub], seeds, run_seeds, put_seed, put_rep,
                                                put_job, n_job_dev)):
                res.extra["n_devices"] = 1 if mesh is None else mesh.devices.size
                results[j] = res
    return results


def _train_group(tr: _Trainer, preps: list[_Prepared], seeds, run_seeds, put_seed, put_rep, put_job,
                 n_job_dev: int) -> list[CellResult]:
    n_jobs = len(preps)
    stack = preps + [preps[-1]] * (-n_jobs % n_job_dev)  # padded to the job-axis devices
    val_rows = max(p.x_val.shape[0] for p in stack)
    data = dict(x_fit=np.stack([p.x_fit for p in stack]), y_fit=np.stack([p.y_fit for p in stack]),
                w_fit=np.stack([p.w_fit for p in stack]), n_fit=np.array([p.n_fit for p in stack], np.int32),
                n_val=np.array([p.n_val for p in stack], np.int32),
                x_val=_stack_rows([p.x_val for p in stack], val_rows),
                y_val=_stack_rows([p.y_val for p in stack], val_rows, fill=-1))
    out = tr.j_fit(put_seed(np.asarray(run_seeds, np.int32)), {k: put_job(v) for k, v in data.items()})
    k = len(seeds)
    host = _host(out)
    epochs, history = host["epochs"], host["history"]      # [J], [J, E, S]
    results = []
    for j, p in enumerate(preps):
        # tests only now, after selection; params go back to the devices the way they came out
        best = jax.tree.map(lambda a: a[j], out["best"])
        val_probs, probs = _predict_all(tr, best, p, put_rep)
        results.append(CellResult(
            probs={n: q[:k].astype(np.float32) for n, q in probs.items()},
            val_uar=host["best_uar"][j, :k], best_epoch=host["best_epoch"][j, :k],
            val_probs=val_probs[:k].astype(np.float32), val_uar_history=history[j, :int(epochs[j]), :k],
            epochs_run=int(epochs[j]), seeds=tuple(seeds),
            params=jax.tree.map(lambda a: a[j, :k], host["best"]), mean=p.mean, std=p.std,
            extra={"group_jobs": n_jobs}))
    return results
