"""The compiled head-training program: one seed's initialisation, loss, optimizer step and
epoch, and the queue that trains a stack's (model, seed) units through a few slots in one
``lax.while_loop`` (``Trainer``); ``jaxser.train`` prepares the data and decides the stacks.

Model selection is per unit on validation UAR (dimensional task: mean CCC): the best
parameters so far are kept with ``jnp.where`` on a per-slot improvement mask, so a unit gets
exactly what an independent early-stopped run gives (the tests check it against a per-seed
loop). Shuffling and dropout keys derive from ``jax.random.PRNGKey(seed)`` folded with the
epoch, step and row, and the minibatch loop runs ``ceil(n_fit / batch)`` steps of the real
row count (a traced value): the padded row capacity never changes which rows a step sees.
"""
from __future__ import annotations

import functools
from dataclasses import replace
from typing import TYPE_CHECKING, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxser import sharding
from jaxser.heads import HeadConfig, make_head

if TYPE_CHECKING:
    from jaxser.train import PreparedData, TrainConfig

OPTIMIZERS = ("adam", "sgd")
#: the losses of the dimensional task; "ccc" (1 - mean CCC over the dimensions) is the default
#: because the task is scored by CCC, and MSE alone shrinks predictions towards the mean, which
#: CCC punishes (docs/training.md)
DIMENSIONAL_LOSSES = ("ccc", "mse")
_VAL_CHUNK = 32     # rows per validation forward pass in training (ceil(n_val / 32) passes per epoch)
_PRED_CHUNK = 128   # rows per prediction call after training (bounds CNN activation memory)


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
    in a while loop; ``_queue``) and ``predict`` (seeds vmapped, one _PRED_CHUNK of rows).
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
        return cached_trainer(head, config, prepared.n_classes, prepared.n_layers, prepared.x_fit.shape[1:],
                               prepared.task)

    @staticmethod
    def clear_cache() -> None:
        """Forget every cached trainer, so the next ones trace and compile afresh."""
        cached_trainer.cache_clear()

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
def cached_trainer(head: HeadConfig, config: TrainConfig, n_classes: int, n_layers: int | None,
                   feat_shape: tuple[int, ...], task: str = "categorical") -> Trainer:
    """The one ``Trainer`` of these settings, so its jitted programs are traced and compiled once."""
    return Trainer(head, config, n_classes, n_layers, feat_shape, task)
