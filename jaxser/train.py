"""Train downstream heads on cached embeddings: optax, many seeds and models in one program,
early stopping on the source validation split (words as in docs/design.md's glossary).

One *model* here is one head trained on one fit/validation split and scored on any number of
test sets (``ModelData``; ``jaxser.protocol`` decides the splits). ``train(models, ...)`` is
the one training path: it checks and prepares each model's data, stacks models that can share
a compiled program on a leading model axis (a single model is a stack of one) and trains each
stack's models x seeds (its *units*) as ONE jitted program -- initialisation, every epoch,
early stopping -- a queue: a ``lax.while_loop`` whose body is the single-seed epoch vmapped
over a few *slots*; a slot whose unit stopped hands itself to the next unit, so seeds that
stop early cost nothing more. The program itself is ``jaxser.trainer.Trainer``; layer sweeps
(every hidden state of a model in one program) are ``jaxser.layers``; placement (meshes, one
queue per device, multi-host gathering) is ``jaxser.sharding``. Test inputs are only touched
after selection, to produce predictions.

Shapes cost memory, not compute: arrays are padded to a power-of-two row *capacity* so that
models of similar size share one compiled program (tracing and compiling cost more than
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxser import sharding
from jaxser.heads import HeadConfig, make_head
from jaxser.sharding import SEED_AXIS
from jaxser.threads import cpu_threads
from jaxser.trainer import DIMENSIONAL_LOSSES, OPTIMIZERS, Trainer

#: what a model learns: classes (softmax over labels) or dimensions (one regression output each)
TASKS = ("categorical", "dimensional")


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
    # a study chooses the layer per model from [models] layers, so its [train] table has no layer key
    layer: int | str = field(default=-1, metadata={"set_by": "[models] layers (or --layer)"})
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
    x_val: np.ndarray          # padded to capacity(n_val) rows (a multiple of the trainer's _VAL_CHUNK)
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


# ----------------------------------------------------------------------------- the training path

_STACK_STATE_BYTES = 2 << 30   # per stack budget for params + best + optimiser state, all models x seeds


@functools.lru_cache(maxsize=256)
def n_params(head: HeadConfig, n_classes: int, n_layers: int | None, feat_shape: tuple[int, ...]) -> int:
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
            n_par = n_params(head, first.n_classes, first.n_layers, first.x_fit.shape[1:])
            cap = max(1, min(max_stack, _STACK_STATE_BYTES // (20 * n_par * len(seeds))))
        n_stacks = -(-len(idx) // cap)
        size = -(-len(idx) // n_stacks)  # balanced stacks: fewer distinct stack sizes to compile
        tr = Trainer.for_data(first, head, config)
        stacks += [(tr, idx[s0:s0 + size]) for s0 in range(0, len(idx), size)]

    def train_one(item):
        tr, stack = item
        return train_stack(tr, [preps[i] for i in stack], seeds, place, slots)

    results: list[ModelResult | None] = [None] * len(preps)
    costs = [epoch_cost(len(stack), max(preps[i].n_fit for i in stack), config.batch_size) for _, stack in stacks]
    for (_, stack), res in zip(stacks, map_programs(train_one, stacks, place, costs)):
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


def epoch_cost(models: int, n_fit: int, batch: int) -> int:
    """Relative cost of a program's epoch over its models: side-by-side slots run as many
    minibatch steps as its largest model (``n_fit`` rows), plus ``_EPOCH_EXTRA_STEPS``, per model."""
    return models * (-(-n_fit // batch) + _EPOCH_EXTRA_STEPS)


def map_programs(fn: Callable, items: list, place: "sharding.LanePlacement", costs: Sequence[float]) -> list:
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


def train_stack(tr: Trainer, preps: list[PreparedData], seeds: tuple[int, ...], place: "sharding.LanePlacement",
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
