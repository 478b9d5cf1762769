"""Train downstream heads on cached embeddings: optax, many seeds and models in one program,
early stopping on the source validation split.

Long on purpose: the one training path (models, layers, seeds, meshes) shares one compiled core.

One *model* here is one head trained on one fit/validation split and scored on any number of
test sets (``ModelData``; ``jaxser.protocol`` decides the splits). ``train(models, ...)`` is
the one training path: it stacks models that can share a compiled program on a leading model
axis (a single model is a stack of one) and trains each stack's models x seeds (its *units*)
as ONE jitted program -- initialisation, every epoch, early stopping -- a queue: a
``lax.while_loop`` whose body is the single-seed epoch vmapped over a few *slots* (params,
optimizer state, dropout RNG and shuffling are per slot); a slot whose unit stopped hands
itself to the next unit, so seeds that stop early cost nothing more. Model selection is per
unit on validation UAR: the best parameters so far are kept with ``jnp.where`` on a per-slot
improvement mask, so the result is exactly what independent early-stopped runs give (the
tests check it against a per-seed loop). Test inputs are only touched after selection, to
produce predictions.

Shapes cost memory, not compute: arrays are padded to a power-of-two row *capacity* so that
models of similar size share one compiled program (tracing and compiling cost more than
training a small head), but the minibatch loop runs ``ceil(n_fit / batch)`` steps of the real
row count (a traced value), and the epoch permutation is drawn row by row, so the capacity
never changes which rows a step sees.

Determinism: shuffling and dropout keys derive from ``jax.random.PRNGKey(seed)`` folded with
the epoch, step and row; an epoch visits every fit row once (the last minibatch is masked, not
wrapped around), so the same data, config and seeds give bit-identical results on CPU.

Placement (meshes, one queue per device, multi-host gathering) lives in ``jaxser.sharding``.
"""
from __future__ import annotations

import functools
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxser import sharding
from jaxser.heads import HeadConfig, make_head
from jaxser.sharding import SEED_AXIS
from jaxser.threads import cpu_threads

OPTIMIZERS = ("adam", "sgd")
#: what a model learns: classes (softmax over labels) or dimensions (one regression output each)
TASKS = ("categorical", "dimensional")
#: the losses of the dimensional task; "ccc" (1 - mean CCC over the dimensions) is the default
#: because the task is scored by CCC, and MSE alone shrinks predictions towards the mean, which
#: CCC punishes (docs/training.md)
DIMENSIONAL_LOSSES = ("ccc", "mse")
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
    loss:           the dimensional task's loss, "ccc" (1 - CCC, the default) or "mse";
                    None: the task's default (cross-entropy for classes, which is the only
                    categorical loss).
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
    loss: str | None = None

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
        if self.loss not in (None, *DIMENSIONAL_LOSSES):
            raise ValueError(f"TrainConfig.loss={self.loss!r}; expected None or one of {DIMENSIONAL_LOSSES} "
                             "(dimensional task; classes always train on cross-entropy)")


@dataclass
class ModelData:
    """One model's data: fit and validation splits, and name -> test embeddings to predict
    after selection. Embeddings are [N, L, D] (or [N, D]) floats, labels ints in
    [0, n_classes). Dimensional task (``task="dimensional"``): targets are floats [N, K] on
    the corpus-free [0, 1] scale, one column per dimension, and ``n_classes`` is K."""

    x_fit: Any
    y_fit: Any
    x_val: Any
    y_val: Any
    tests: Mapping[str, Any]
    n_classes: int
    task: str = "categorical"


@dataclass
class ModelResult:
    """Per-seed outputs of one model (leading axis S = len(seeds), in the order given).

    probs:            test name -> float32 [S, N_test, C] class probabilities (kept params).
    val_uar:          float32 [S] best validation UAR (the selection criterion).
    best_epoch:       int32 [S] 1-based epoch whose parameters were kept.
    val_probs:        float32 [S, N_val, C] validation probabilities of the kept parameters.
    val_uar_history:  float32 [E, S] validation UAR after every epoch a seed ran (NaN after it
                      stopped).
    epochs_run:       E, the epochs this model ran (its longest-running seed).
    seeds:            the seeds, in order.
    params:           the kept parameters, numpy arrays stacked over seeds.
    mean, std:        standardisation statistics from the fit split (None when disabled).
    n_devices:        devices of the mesh that trained it (1 without a mesh).
    stack_size:       models trained together in its compiled program (1: trained alone).
    layer:            the encoder layer it was trained on, as a non-negative index (None for
                      "weighted").
    layer_weights:    float32 [S, L] the learned softmax weights over layers of the kept
                      parameters ("weighted" only, else None).
    slot_epochs:      seed-epochs its stack's program computed (slots x loop iterations, summed
                      over devices), shared by the stack's models: count it once per stack. The
                      seed-epochs the model needed are its seeds' own stopping epochs.
    y_mean, y_std:    dimensional task: the fit split's target statistics [K] the model was
                      trained standardised with; ``probs`` are then predictions [S, N, K] on
                      the targets' [0, 1] scale (de-standardised), and ``val_uar`` /
                      ``val_uar_history`` hold the validation mean CCC, the selection criterion.
    """

    probs: dict[str, np.ndarray]
    val_uar: np.ndarray
    best_epoch: np.ndarray
    val_probs: np.ndarray
    val_uar_history: np.ndarray
    epochs_run: int
    seeds: tuple[int, ...]
    params: Any
    mean: np.ndarray | None
    std: np.ndarray | None
    n_devices: int = 1
    stack_size: int = 1
    layer: int | None = None
    layer_weights: np.ndarray | None = None
    slot_epochs: int = 0
    y_mean: np.ndarray | None = None
    y_std: np.ndarray | None = None


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


def model_inputs(x: np.ndarray, layer: int | str, mean: np.ndarray | None = None,
                 std: np.ndarray | None = None) -> np.ndarray:
    """Embeddings [N, L, D] as a trained head takes them: the layer selected ("weighted": all
    of them) and, for a model trained standardised, z-scored with its fit-split statistics
    (``ModelResult.mean``/``std``; None: not standardised). Training and ``jaxser.predict``
    both use it, so a saved model sees new audio exactly as it saw its training data."""
    x = _select(x, layer).astype(np.float32, copy=False)
    return ((x - mean) / std).astype(np.float32) if mean is not None else np.ascontiguousarray(x)


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


def balanced_class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """weight_c = n / (C * count_c), as scikit-learn's "balanced" (1 for absent classes)."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 1.0)
    return w.astype(np.float32)


@dataclass
class PreparedData:
    """A model's data as the trainer consumes it: the layer selected, standardised with fit
    statistics, fit and validation padded to their row capacity."""

    x_fit: np.ndarray          # padded to capacity(n_fit) rows (padding never sampled)
    y_fit: np.ndarray
    w_fit: np.ndarray          # per-row loss weight (0 on padding)
    n_fit: int
    x_val: np.ndarray          # padded to capacity(n_val) rows (a multiple of _VAL_CHUNK)
    y_val: np.ndarray          # padded with -1 (ignored by the UAR)
    n_val: int
    tests: dict[str, np.ndarray]
    mean: np.ndarray | None
    std: np.ndarray | None
    n_classes: int
    n_layers: int | None       # set when layer == "weighted"
    layer: int | None = None   # the selected layer as a non-negative index (None: "weighted")
    task: str = "categorical"
    y_mean: np.ndarray | None = None   # dimensional: fit-split target statistics [K]
    y_std: np.ndarray | None = None

    def arrays(self) -> dict:
        """The trainer's ``data`` argument: fit and validation arrays and their real row counts."""
        return dict(x_fit=self.x_fit, y_fit=self.y_fit, w_fit=self.w_fit, x_val=self.x_val, y_val=self.y_val,
                    n_fit=np.int32(self.n_fit), n_val=np.int32(self.n_val))


@dataclass
class CheckedData:
    """A model's data checked once (shapes, finiteness, labels), all layers kept: what every
    layer's ``prepare`` starts from, so a layer sweep checks a large cache once, not per layer."""

    x_fit: np.ndarray          # [N, L, D]
    y_fit: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    tests: dict[str, np.ndarray]
    n_classes: int
    task: str = "categorical"

    @property
    def n_layers(self) -> int:
        return self.x_fit.shape[1]


def check(model: ModelData) -> CheckedData:
    """Check a model's data: 3-d float embeddings with one per-row shape, finite rows, integer
    labels in range, non-empty fit and validation splits."""
    n_classes = int(model.n_classes)
    task = getattr(model, "task", "categorical")
    if task not in TASKS:
        raise ValueError(f"task={task!r}; expected one of {TASKS}")
    if task == "categorical" and n_classes < 2:
        raise ValueError(f"n_classes={n_classes}; a classifier needs at least 2 classes")
    if task == "dimensional" and n_classes < 1:
        raise ValueError(f"n_classes={n_classes}; the dimensional task needs at least 1 dimension")
    x_fit = _as_3d(model.x_fit, "x_fit")
    x_val = _as_3d(model.x_val, "x_val")
    shape = x_fit.shape[1:]
    if x_fit.shape[0] == 0:
        raise ValueError("x_fit is empty: nothing to train on")
    if x_val.shape[0] == 0:
        raise ValueError("x_val is empty: model selection needs a validation split")
    if x_val.shape[1:] != shape:
        raise ValueError(f"x_val has per-row shape {x_val.shape[1:]}, x_fit has {shape}")
    check_y = _check_labels if task == "categorical" else _check_targets
    y_fit = check_y(model.y_fit, x_fit.shape[0], n_classes, "y_fit")
    y_val = check_y(model.y_val, x_val.shape[0], n_classes, "y_val")
    test3 = {}
    for name, xt in model.tests.items():
        xt = _as_3d(xt, f"tests[{name!r}]")
        if xt.shape[1:] != shape:
            raise ValueError(f"tests[{name!r}] has per-row shape {xt.shape[1:]}, x_fit has {shape}")
        test3[name] = xt
    return CheckedData(x_fit, y_fit, x_val, y_val, test3, n_classes, task)


def _check_targets(y: np.ndarray, n: int, k: int, what: str) -> np.ndarray:
    """Dimensional targets: finite floats [n, k] (rows lacking a rating are the protocol's to drop)."""
    y = np.asarray(y)
    if y.shape != (n, k) or not np.issubdtype(y.dtype, np.floating):
        raise ValueError(f"{what}: expected float targets [{n}, {k}] (one column per dimension), got "
                         f"{y.dtype} {y.shape}")
    if not np.isfinite(y).all():
        raise ValueError(f"{what}: targets must be finite (drop the rows without a rating)")
    return y.astype(np.float32)


def target_stats(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and std of the fit split's targets (std 1 for a constant dimension):
    the model learns z-scored targets, so every dimension weighs alike in the loss whatever
    its spread, and no statistic of validation or test rows is used."""
    y = np.asarray(y, np.float64)
    mean, std = y.mean(0), y.std(0)
    return mean.astype(np.float32), np.where(std > 1e-8, std, 1.0).astype(np.float32)


def prepare(model: ModelData | CheckedData, config: TrainConfig, rows: int | None = None) -> PreparedData:
    """Check a model's data (unless it is ``CheckedData``), select the configured layer,
    standardise with fit-split statistics only, and pad fit and validation to their capacity
    (at least ``rows``)."""
    data = model if isinstance(model, CheckedData) else check(model)
    n_classes = data.n_classes
    y_fit, y_val = data.y_fit, data.y_val
    n_layers = data.n_layers
    xf = _select(data.x_fit, config.layer).astype(np.float32, copy=False)  # checks the layer's range
    layer = None if config.layer == "weighted" else config.layer % n_layers
    mean = std = None
    if config.standardize:
        mean, std = _fit_stats(xf)  # fit split only: no validation or target statistics

    def norm(x):
        return model_inputs(x, config.layer, mean, std)

    n_val = data.x_val.shape[0]
    n_fit = data.x_fit.shape[0]
    # n <= capacity, so padding to a multiple of the capacity pads to exactly the capacity
    fit_rows, val_rows = capacity(max(n_fit, rows or 0)), capacity(max(n_val, rows or 0))
    y_mean = y_std = None
    if data.task == "dimensional":
        if config.class_weights is not None:
            raise ValueError("class_weights apply to classes; the dimensional task has none")
        y_mean, y_std = target_stats(y_fit)  # fit split only
        y_fit, y_val = (y_fit - y_mean) / y_std, (y_val - y_mean) / y_std
        w_fit, val_fill = np.ones(n_fit, np.float32), np.nan   # NaN marks validation padding
    else:
        w = (balanced_class_weights(y_fit, n_classes) if config.class_weights == "balanced"
             else np.ones(n_classes, np.float32))
        w_fit, val_fill = w[y_fit], -1
    return PreparedData(
        x_fit=sharding.pad_rows(norm(data.x_fit), fit_rows, fill=0), y_fit=sharding.pad_rows(y_fit, fit_rows, fill=0),
        w_fit=sharding.pad_rows(w_fit, fit_rows, fill=0), n_fit=n_fit,
        x_val=sharding.pad_rows(norm(data.x_val), val_rows, fill=0),
        y_val=sharding.pad_rows(y_val, val_rows, fill=val_fill),
        n_val=n_val, tests={k: norm(v) for k, v in data.tests.items()}, mean=mean, std=std, n_classes=n_classes,
        n_layers=n_layers if config.layer == "weighted" else None, layer=layer, task=data.task, y_mean=y_mean,
        y_std=y_std)


# ----------------------------------------------------------------------------- the trainer

def _model_rows(a: jax.Array, model: jax.Array, start: jax.Array, size: int) -> jax.Array:
    """Rows [start, start + size) of model ``model`` of a model-stacked array [M, rows, ...],
    taken in one slice (no copy of the model's whole array)."""
    return jax.lax.dynamic_slice(a, (model, start) + (0,) * (a.ndim - 2), (1, size) + a.shape[2:])[0]


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


def _moment_sums(y: jax.Array, p: jax.Array, w: jax.Array) -> jax.Array:
    """[6, K]: weighted row count and sums of y, p, y^2, p^2, y*p per dimension (w 0 on padding).
    Summed over chunks, they give the CCC of all of them (``_ccc``)."""
    w = w[:, None]
    return jnp.stack([jnp.broadcast_to(w, y.shape).sum(0), (w * y).sum(0), (w * p).sum(0), (w * y * y).sum(0),
                      (w * p * p).sum(0), (w * y * p).sum(0)])


def _ccc(sums: jax.Array) -> jax.Array:
    """Lin's CCC per dimension [K] from ``_moment_sums`` (population moments, as
    ``jaxser.metrics.ccc``); a degenerate denominator gives 0."""
    n = jnp.maximum(sums[0], 1e-12)
    my, mp = sums[1] / n, sums[2] / n
    vy, vp, cov = sums[3] / n - my * my, sums[4] / n - mp * mp, sums[5] / n - my * mp
    den = vy + vp + (my - mp) ** 2
    return jnp.where(den > 1e-12, 2 * cov / jnp.maximum(den, 1e-12), 0.0)


def _make_tx(config: TrainConfig) -> optax.GradientTransformation:
    if config.optimizer == "adam":
        if config.weight_decay:
            return optax.adamw(config.lr, weight_decay=config.weight_decay)
        return optax.adam(config.lr)
    tx = optax.sgd(config.lr, momentum=0.9)
    if config.weight_decay:
        tx = optax.chain(optax.add_decayed_weights(config.weight_decay), tx)
    return tx


class Trainer:
    """The single-seed pieces (``init``, ``loss``, ``step``, ``epoch``; data are stacked over
    a stack's models and a seed trains on one model of them) and the jitted programs built
    from them: ``fit`` (a queue of (model, seed) units through a fixed number of slots, epochs
    in a while loop;
    ``_queue``) and ``predict`` (seeds vmapped, one _PRED_CHUNK of rows).
    Get one with ``Trainer.for_data``: one per head, config, class count and per-row feature
    shape, so jit keeps one ``fit`` program per (row capacity, models, units, slots) and a
    single ``predict`` program."""

    def __init__(self, head: HeadConfig, config: TrainConfig, n_classes: int, n_layers: int | None,
                 feat_shape: tuple[int, ...], task: str = "categorical"):
        self.n_classes = n_classes
        self.task = task
        self.regression_loss = config.loss or DIMENSIONAL_LOSSES[0]
        self.net = make_head(head, n_classes, n_layers=n_layers)
        self.tx = _make_tx(config)
        self.batch = config.batch_size
        self.max_epochs = config.max_epochs
        self.patience = config.patience if config.patience is not None else config.max_epochs + 1
        self.feat_shape = feat_shape
        self.fit = jax.jit(self._fit, static_argnames=("n_slots", "uniform"))
        self.predict = jax.jit(jax.vmap(self._softmax if task == "categorical" else self._output, in_axes=(0, None)))

    @classmethod
    def for_data(cls, prepared: PreparedData, head: HeadConfig, config: TrainConfig) -> "Trainer":
        """The (cached) trainer of a prepared model. Config fields that only change the data
        (loss weights, normalisation, layer choice) share programs."""
        config = replace(config, class_weights=None, standardize=True, layer=0)
        return _cached_trainer(head, config, prepared.n_classes, prepared.n_layers, prepared.x_fit.shape[1:],
                               prepared.task)

    @staticmethod
    def clear_cache() -> None:
        """Forget every cached trainer, so the next ones trace and compile afresh."""
        _cached_trainer.cache_clear()

    # -- per seed
    def init(self, seed: jax.Array) -> dict:
        key = jax.random.PRNGKey(seed)
        k_init, k_shuf, k_drop = jax.random.split(key, 3)
        params = self.net.init(k_init, jnp.zeros((1,) + self.feat_shape, jnp.float32), train=False)["params"]
        return dict(params=params, opt=self.tx.init(params), best=params,
                    best_uar=jnp.float32(-1.0), best_epoch=jnp.int32(0), wait=jnp.int32(0),
                    k_shuf=k_shuf, k_drop=k_drop)

    def loss(self, params, xb, yb, wb, key):
        """Weighted mean cross-entropy of a minibatch (weights 0 on masked rows), dropout on.
        Dimensional task: 1 - mean CCC over the dimensions, or the mean squared error, of the
        standardised targets (``TrainConfig.loss``)."""
        logits = self.net.apply({"params": params}, xb, train=True, rngs={"dropout": key})
        if self.task == "dimensional":
            if self.regression_loss == "mse":
                return jnp.sum(wb[:, None] * (logits - yb) ** 2) / (jnp.maximum(jnp.sum(wb), 1e-12) * yb.shape[-1])
            return 1.0 - _ccc(_moment_sums(yb, logits, wb)).mean()
        nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), yb[:, None], axis=1)[:, 0]
        return jnp.sum(wb * nll) / jnp.maximum(jnp.sum(wb), 1e-12)

    def _softmax(self, params, x: jax.Array) -> jax.Array:
        return jax.nn.softmax(self.net.apply({"params": params}, x, train=False))

    def _output(self, params, x: jax.Array) -> jax.Array:
        return self.net.apply({"params": params}, x, train=False)

    def val_uar(self, params, data: dict, model: jax.Array, uniform: bool = False) -> jax.Array:
        """Validation UAR of model ``model`` over its real rows only: ceil(n_val / _VAL_CHUNK)
        forward passes (``uniform``: every model has model 0's row counts, see ``epoch``)."""
        def chunk(i, counts):
            xc = _model_rows(data["x_val"], model, i * _VAL_CHUNK, _VAL_CHUNK)
            yc = _model_rows(data["y_val"], model, i * _VAL_CHUNK, _VAL_CHUNK)
            logits = self.net.apply({"params": params}, xc, train=False)
            return counts + _class_counts(yc, jnp.argmax(logits, axis=-1), self.n_classes)

        n_chunks = (data["n_val"][0 if uniform else model] + _VAL_CHUNK - 1) // _VAL_CHUNK
        if self.task == "dimensional":  # the validation mean CCC (NaN targets mark padding)
            def moments(i, sums):
                xc = _model_rows(data["x_val"], model, i * _VAL_CHUNK, _VAL_CHUNK)
                yc = _model_rows(data["y_val"], model, i * _VAL_CHUNK, _VAL_CHUNK)
                real = ~jnp.isnan(yc[:, 0])
                pred = self.net.apply({"params": params}, xc, train=False)
                return sums + _moment_sums(jnp.where(real[:, None], yc, 0.0), pred, real.astype(jnp.float32))
            sums = jax.lax.fori_loop(0, n_chunks, moments, jnp.zeros((6, self.n_classes), jnp.float32))
            return _ccc(sums).mean()
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

    def step(self, params, opt, data: dict, model: jax.Array, perm: jax.Array, i: jax.Array, k_epoch: jax.Array):
        """One optimizer step on minibatch i of model ``model``'s epoch order ``perm``; its dropout
        key is ``k_epoch`` folded with i. Returns (params, optimizer state)."""
        b, valid = self.minibatch(perm, i, data["n_fit"][model])
        wb = jnp.where(valid, data["w_fit"][model, b], 0.0)  # the last minibatch is masked
        grads = jax.grad(self.loss)(params, data["x_fit"][model, b], data["y_fit"][model, b], wb,
                                    jax.random.fold_in(k_epoch, i))
        updates, opt = self.tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt

    def epoch(self, state: dict, data: dict, model: jax.Array, epoch: jax.Array,
              uniform: bool = False) -> tuple[dict, jax.Array]:
        """Epoch ``epoch`` of one seed on model ``model``: minibatch training, then validation
        and selection (a seed out of patience never selects again). ``uniform``: every model
        has model 0's row counts (one model's seeds, or a sweep's layers), so the minibatch and validation
        loops keep one trip count for all slots side by side; otherwise each slot runs its own
        (a batched loop whose finished slots are masked every step)."""
        if data["x_fit"].shape[0] == 1:  # a single model: a constant index keeps its reads unbatched
            model = 0
        n_fit, batch = data["n_fit"][0 if uniform else model], self.batch
        perm = self.permutation(jax.random.fold_in(state["k_shuf"], epoch), n_fit, data["x_fit"].shape[1])
        k_epoch = jax.random.fold_in(state["k_drop"], epoch)

        def step(i, carry):
            return self.step(*carry, data, model, perm, i, k_epoch)

        # ceil(n_fit / batch) steps: the trip count is data, so the capacity costs no compute
        params, opt = jax.lax.fori_loop(0, (n_fit + batch - 1) // batch, step, (state["params"], state["opt"]))
        uar = self.val_uar(params, data, model, uniform)
        active = state["wait"] < self.patience
        improved = active & (uar > state["best_uar"])  # strict: ties keep the earlier epoch
        best = jax.tree.map(lambda new, old: jnp.where(improved, new, old), params, state["best"])
        new = dict(state, params=params, opt=opt, best=best,
                   best_uar=jnp.where(improved, uar, state["best_uar"]),
                   best_epoch=jnp.where(improved, epoch + 1, state["best_epoch"]),
                   wait=jnp.where(improved, 0, jnp.where(active, state["wait"] + 1, state["wait"])))
        return new, uar

    # -- every (model, seed) unit, every epoch: one program
    def _queue(self, unit_model: jax.Array, unit_seed: jax.Array, data: dict, n_slots: int, uniform: bool) -> dict:
        """Train U units (model ``unit_model[u]``, seed ``unit_seed[u]``) through ``n_slots`` slots
        that train side by side (the epoch vmapped over slots). A slot whose unit stopped
        (patience ran out, or max_epochs) writes the unit's kept state out and takes the next
        unit of the queue, starting at its epoch 0; the loop ends when the queue is empty and
        every slot is done. A unit's arithmetic depends only on its model, seed and own epoch
        count, so it gets what it gets trained alone, and a stopped unit costs nothing more
        unless the queue has run dry (the last units' tail)."""
        n_units = unit_model.shape[0]
        n_slots = min(n_slots, n_units)
        epoch = jax.vmap(lambda st, m, ep: self.epoch(st, data, m, ep, uniform))
        init = jax.vmap(self.init)
        # the slots' state starts empty: a slot at its unit's epoch 0 initialises it first thing
        st = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), jax.eval_shape(init, unit_seed[:n_slots]))
        out = dict(best=jax.tree.map(lambda a: jnp.zeros((n_units,) + a.shape[1:], a.dtype), st["best"]),
                   best_uar=jnp.zeros(n_units, jnp.float32), best_epoch=jnp.zeros(n_units, jnp.int32),
                   epochs=jnp.zeros(n_units, jnp.int32),
                   history=jnp.full((self.max_epochs, n_units), jnp.nan, jnp.float32))

        def put(buf, at, val):  # rows `at` of buf set to val; an index n_units is dropped
            return buf.at[at].set(val, mode="drop")

        def cond(c):
            return jnp.any(c[1] >= 0)

        def body(c):
            next_unit, unit, ep, st, out, it = c
            active = unit >= 0
            start = active & (ep == 0)
            u = jnp.maximum(unit, 0)   # an idle slot (-1) reads unit 0 and writes nothing

            def fresh(st):
                new = init(unit_seed[u])
                return jax.tree.map(lambda n, o: jnp.where(start.reshape((-1,) + (1,) * (o.ndim - 1)), n, o), new, st)

            st = jax.lax.cond(jnp.any(start), fresh, lambda s: s, st)
            st, uar = epoch(st, unit_model[u], ep)
            at = jnp.where(active, unit, n_units)
            history = out["history"].at[ep, at].set(uar, mode="drop")
            done = active & ((st["wait"] >= self.patience) | (ep + 1 >= self.max_epochs))
            at = jnp.where(done, unit, n_units)
            out = dict(best=jax.tree.map(lambda o, b: put(o, at, b), out["best"], st["best"]),
                       best_uar=put(out["best_uar"], at, st["best_uar"]),
                       best_epoch=put(out["best_epoch"], at, st["best_epoch"]),
                       epochs=put(out["epochs"], at, ep + 1), history=history)
            cand = next_unit + jnp.cumsum(done) - 1   # the next units, in queue order
            refill = done & (cand < n_units)
            unit = jnp.where(done, jnp.where(refill, cand, -1), unit)
            return next_unit + done.sum(dtype=jnp.int32), unit, jnp.where(refill, 0, ep + 1), st, out, it + 1

        carry = (jnp.int32(n_slots), jnp.arange(n_slots, dtype=jnp.int32), jnp.zeros(n_slots, jnp.int32), st, out,
                 jnp.int32(0))
        *_, out, it = jax.lax.while_loop(cond, body, carry)
        return dict(out, iterations=it)

    def _fit(self, unit_model: jax.Array, unit_seed: jax.Array, data: dict, n_slots: int,
             uniform: bool = False) -> dict:
        """``_queue`` for each lane (leading axis of ``unit_model``/``unit_seed``, one per device
        of a mesh); ``data`` (every array with a leading model axis) is shared by the lanes.
        Returns the units' outputs per lane: best (params), best_uar, best_epoch, epochs
        [lanes, U], history [lanes, max_epochs, U] (NaN after a unit stopped) and iterations
        [lanes] (epochs the slots ran: slots x iterations slot-epochs were computed)."""
        if unit_model.shape[0] == 1:  # one lane: no batched loop condition
            return jax.tree.map(lambda a: a[None], self._queue(unit_model[0], unit_seed[0], data, n_slots, uniform))
        return jax.vmap(lambda m, s: self._queue(m, s, data, n_slots, uniform))(unit_model, unit_seed)


    def predict_probs(self, params, x: np.ndarray, put: Callable = jnp.asarray) -> np.ndarray:
        """[S, N, C] probabilities (dimensional: standardised predictions [S, N, K]) of x under
        seed-stacked params, _PRED_CHUNK rows per call
        (the last chunk zero-padded), so every validation and test set of a head goes through
        one small compiled program. put: how a chunk is placed (the params' mesh)."""
        s = jax.tree.leaves(params)[0].shape[0]
        outs = [np.zeros((s, 0, self.n_classes), np.float32)]
        for a in range(0, x.shape[0], _PRED_CHUNK):
            part = x[a:a + _PRED_CHUNK]
            probs = self.predict(params, put(sharding.pad_rows(part, _PRED_CHUNK, fill=0)))
            outs.append(sharding.to_host(probs)[:, :part.shape[0]])
        return np.concatenate(outs, axis=1)


@functools.lru_cache(maxsize=256)
def _cached_trainer(head: HeadConfig, config: TrainConfig, n_classes: int, n_layers: int | None,
                    feat_shape: tuple[int, ...], task: str = "categorical") -> Trainer:
    return Trainer(head, config, n_classes, n_layers, feat_shape, task)


# ----------------------------------------------------------------------------- the training path

_STACK_STATE_BYTES = 2 << 30   # per stack budget for params + best + optimiser state, all models x seeds


@functools.lru_cache(maxsize=256)
def _n_params(head: HeadConfig, n_classes: int, n_layers: int | None, feat_shape: tuple[int, ...]) -> int:
    """Parameters of one model (shapes only, nothing computed)."""
    net = make_head(head, n_classes, n_layers=n_layers)
    x = jax.ShapeDtypeStruct((1,) + feat_shape, jnp.float32)
    shapes = jax.eval_shape(lambda x: net.init(jax.random.PRNGKey(0), x, train=False)["params"], x)
    return sum(math.prod(a.shape) for a in jax.tree.leaves(shapes))


def train(models: Sequence[ModelData], *, head: HeadConfig, config: TrainConfig, seeds: Sequence[int],
          mesh=None, max_stack: int = 8, rows: int | None = None, slots: int | None = None) -> list[ModelResult]:
    """Train every model for every seed, as few jitted programs as their shapes allow; select
    per model and seed on validation UAR, then predict the test sets. Returns one
    ``ModelResult`` per model, in order.

    Models are grouped by what must be static in a compiled program (per-row feature shape,
    n_classes, fit row capacity); a group is sorted by fit size (side-by-side slots run as many
    minibatch steps as their largest model) and split into balanced stacks of at most
    ``max_stack`` models (fewer when the units' kept parameters and the slots' training state
    would exceed ~2 GiB, e.g. CNN heads on D=1024). A stack's fit/val data are stacked on a
    leading model axis (validation padded with ignored rows to the stack's largest) and one
    program trains its models x seeds *units* through a queue (``Trainer._queue``): ``slots``
    units train side by side and a unit that stopped hands its slot to the next, so early
    stopping saves compute instead of idling in lockstep. Early stopping and selection are per
    model and seed, and a model's ``epochs_run`` (its longest-running seed) and history are
    its own; a model's result equals its result trained alone up to float rounding of the
    slot-batched matmuls (with ``max_stack=1`` every model is trained alone).

    mesh: None (one device), "auto" (every device of every process, when there are several)
    or a ``jax.sharding.Mesh``: the units are split over all of its devices (one queue per
    device, padded with repeats of a unit, dropped from the results).
    rows: pad the fit and validation splits to at least this many rows (the capacity, a power
    of two), so models of different sizes share one compiled program; it costs memory, not
    compute, and does not change the result.
    slots: units training side by side per device (default ``default_slots``).
    On a CPU without a mesh, up to ``program_threads`` stacks train at once, in threads, the
    costliest first; each is its own program, so the results are the same as one after the other.
    """
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("train: seeds is empty")
    if max_stack < 1:
        raise ValueError(f"train: max_stack={max_stack}; expected >= 1")
    if slots is not None and slots < 1:
        raise ValueError(f"train: slots={slots}; expected >= 1")
    preps = []
    for i, model in enumerate(models):
        try:
            preps.append(prepare(model, config, rows))
        except ValueError as err:
            raise ValueError(f"train: model {i}: {err}") from None

    groups: dict[tuple, list[int]] = {}
    for i, prep in enumerate(preps):
        groups.setdefault((prep.task, prep.n_classes, prep.n_layers, prep.x_fit.shape), []).append(i)

    place = sharding.lane_placement(sharding.resolve_mesh(mesh, axis=SEED_AXIS, devices="all"))
    stacks = []   # (trainer, model indices) of each compiled program to run
    for idx in groups.values():
        idx = sorted(idx, key=lambda i: preps[i].n_fit)
        first = preps[idx[0]]
        cap = 1
        if max_stack > 1 and len(idx) > 1:
            # per unit: kept params, plus a slot's params, Adam's two moments and a gradient
            n_par = _n_params(head, first.n_classes, first.n_layers, first.x_fit.shape[1:])
            cap = max(1, min(max_stack, _STACK_STATE_BYTES // (20 * n_par * len(seeds))))
        n_stacks = -(-len(idx) // cap)
        size = -(-len(idx) // n_stacks)  # balanced stacks: fewer distinct stack sizes to compile
        tr = Trainer.for_data(first, head, config)
        stacks += [(tr, idx[s0:s0 + size]) for s0 in range(0, len(idx), size)]

    def train_one(item):
        tr, stack = item
        return _train_queue(tr, [preps[i] for i in stack], seeds, place, slots)

    results: list[ModelResult | None] = [None] * len(preps)
    costs = [_epoch_cost(len(stack), max(preps[i].n_fit for i in stack), config.batch_size) for _, stack in stacks]
    for (_, stack), res in zip(stacks, _map_programs(train_one, stacks, place, costs)):
        for i, r in zip(stack, res):
            results[i] = r
    return results


def program_threads(place: "sharding.LanePlacement") -> int:
    """Training programs run at once by one ``train``/``train_layers`` call: on a CPU without a
    mesh, one per core (at most 4), because one small-head program leaves XLA:CPU's cores partly
    idle; with a mesh or on an accelerator 1 (the devices are busy with one program)."""
    if place.devices == 1 and jax.default_backend() == "cpu":
        return cpu_threads()
    return 1


#: an epoch's work besides its minibatch steps (validation, the shuffle, the loop's own
#: bookkeeping), in minibatch steps: measured ~3 on the embedded default's FCN and CNN on CPU
_EPOCH_EXTRA_STEPS = 3


def _epoch_cost(models: int, n_fit: int, batch: int) -> int:
    """Relative cost of a program's epoch over its models: side-by-side slots run as many
    minibatch steps as its largest model (``n_fit`` rows), plus ``_EPOCH_EXTRA_STEPS``, per model."""
    return models * (-(-n_fit // batch) + _EPOCH_EXTRA_STEPS)


def _map_programs(fn: Callable, items: list, place: "sharding.LanePlacement", costs: Sequence[float]) -> list:
    """``[fn(item) for item in items]``, up to ``program_threads`` at once, the costliest first
    (``costs``, relative): a long program started last would run alone while the other
    threads idle. Each item is its own compiled programs on its own data, so the results do not
    depend on the thread count or the order."""
    workers = min(len(items), program_threads(place))
    if workers <= 1:
        return [fn(item) for item in items]
    order = sorted(range(len(items)), key=lambda i: -costs[i])
    with ThreadPoolExecutor(workers, thread_name_prefix="jaxser-train") as ex:
        done = dict(zip(order, ex.map(lambda i: fn(items[i]), order)))
    return [done[i] for i in range(len(items))]


#: on a CPU, a queue's units per slot: a slot-epoch costs about the same whether few or many
#: slots run side by side, so few busy slots beat many that idle while the last units finish
#: (docs/training.md: ~6 units per slot keeps the idle tail near 10 %); but at least 2 slots,
#: since one slot pays the loop's per-step overhead once per seed-epoch
CPU_UNITS_PER_SLOT = 6


def default_slots(n_units: int, early_stopping: bool = True) -> int:
    """Units that train side by side in a queue of ``n_units``. On a CPU, ``n_units /
    CPU_UNITS_PER_SLOT``, at least 2 (at most ``n_units``). On an accelerator, or without
    early stopping (every unit runs max_epochs, so nothing idles), every unit gets a slot:
    side-by-side units cost little more than one, so the fewest loop iterations win."""
    if jax.default_backend() == "cpu" and early_stopping:
        return min(n_units, max(2, -(-n_units // CPU_UNITS_PER_SLOT)))
    return n_units


def _train_queue(tr: Trainer, preps: list[PreparedData], seeds: tuple[int, ...], place: "sharding.LanePlacement",
                 slots: int | None) -> list[ModelResult]:
    """One compiled program for a stack of models x seeds, then their predictions."""
    n_models, k = len(preps), len(seeds)
    val_rows = max(p.x_val.shape[0] for p in preps)  # capacities are powers of two: a multiple of each
    arrays = [dict(p.arrays(), x_val=sharding.pad_rows(p.x_val, val_rows, fill=0),
                   y_val=sharding.pad_rows(p.y_val, val_rows, fill=np.nan if p.task == "dimensional" else -1))
              for p in preps]
    data = {key: place.rep(np.stack([a[key] for a in arrays])) for key in arrays[0]}
    n_units = n_models * k
    per_lane = -(-n_units // place.lanes)
    units = np.arange(per_lane * place.lanes) % n_units  # padded with repeats, dropped below
    unit_model = (units // k).astype(np.int32).reshape(place.lanes, per_lane)
    unit_seed = np.asarray(seeds, np.int32)[units % k].reshape(place.lanes, per_lane)
    n_slots = min(slots or default_slots(per_lane, tr.patience <= tr.max_epochs), per_lane)
    uniform = len({(p.n_fit, p.n_val) for p in preps}) == 1   # one model's seeds or layers
    out = sharding.to_host(tr.fit(place.lane(unit_model), place.lane(unit_seed), data, n_slots=n_slots,
                                  uniform=uniform))

    def by_model(a):  # [lanes, per_lane, ...] -> [models, seeds, ...]
        a = a.reshape((place.lanes * per_lane,) + a.shape[2:])[:n_units]
        return a.reshape((n_models, k) + a.shape[1:])

    host = dict(best=jax.tree.map(by_model, out["best"]), best_uar=by_model(out["best_uar"]),
                best_epoch=by_model(out["best_epoch"]), epochs=by_model(out["epochs"]),
                history=by_model(np.moveaxis(out["history"], 1, 2)),   # [models, seeds, E]
                slot_epochs=int(out["iterations"].sum()) * n_slots)
    return _results(tr, preps, host, seeds, place)


def _results(tr: Trainer, preps: list[PreparedData], host: dict, seeds: tuple[int, ...],
             place: "sharding.LanePlacement") -> list[ModelResult]:
    """The ``ModelResult`` of each model of a trained stack (``host``: the units' outputs as
    [models, seeds, ...]): validation and tests are predicted only now, after selection."""
    results = []
    for j, p in enumerate(preps):
        params = jax.tree.map(lambda a: a[j], host["best"])
        kept = jax.tree.map(place.rep, params)
        epochs_run = int(host["epochs"][j].max())

        def out(x):  # dimensional: predictions back on the targets' [0, 1] scale
            o = tr.predict_probs(kept, x, place.rep)
            return (o if p.y_mean is None else o * p.y_std + p.y_mean).astype(np.float32)
        results.append(ModelResult(
            probs={name: out(xt) for name, xt in p.tests.items()},
            val_uar=host["best_uar"][j], best_epoch=host["best_epoch"][j],
            val_probs=out(p.x_val[:p.n_val]),
            val_uar_history=np.ascontiguousarray(host["history"][j, :, :epochs_run].T),
            epochs_run=epochs_run, seeds=seeds, params=params, mean=p.mean, std=p.std,
            n_devices=place.devices, stack_size=len(preps), layer=p.layer,
            layer_weights=_layer_weights(params), slot_epochs=host["slot_epochs"], y_mean=p.y_mean, y_std=p.y_std))
    return results


def _layer_weights(params: dict) -> np.ndarray | None:
    """[S, L] softmax of a layer mix's logits (one model's seeds); None without a mix."""
    if "layer_logits" not in params:
        return None
    logits = np.asarray(params["layer_logits"], np.float64)
    w = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (w / w.sum(axis=-1, keepdims=True)).astype(np.float32)



# ----------------------------------------------------------------------------- every layer of a model

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
    tr = _cached_trainer(head, replace(config, class_weights=None, standardize=True, layer=0), n_classes, None,
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
    n_par = _n_params(head, n_classes, None, (dim,))
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
            results += _train_queue(tr, preps, seeds, place, slots)
        return results

    costs = [_epoch_cost(len(idx), data.x_fit.shape[0], config.batch_size) for data, idx in plans]
    return _map_programs(one_model, plans, place, costs)


def select_layer(results: Sequence[ModelResult]) -> ModelResult:
    """Of one training set's models on different layers (``train_layers``), the one with the
    highest source-validation UAR averaged over seeds; the mean is rounded to 9 decimals, so
    seeds summed in another order cannot break a tie, and ties go to the lowest layer. Only
    the validation split decides: no test data are read."""
    if not results:
        raise ValueError("select_layer: no models to choose from")
    score = [(-round(float(np.mean(np.asarray(r.val_uar, np.float64))), 9), r.layer) for r in results]
    return results[min(range(len(results)), key=score.__getitem__)]
