"""Which models to train, where and how many at once (words as in docs/design.md's glossary).

A model is a recipe (encoder, head, layer) trained on one train key's training set, all seeds
at once; a layer sweep ('all', 'best') trains every hidden state of a train key in one program
(`jaxser.layers.train_layers`). The study's models are cut into jobs (one recipe and a few
train keys: one training call a worker runs), spread round-robin over recipes so that
concurrent workers compile different programs, and split between hosts by a fixed share of
that list. None of this changes a result: every model's predictions are the same whichever
worker, host or device trains it.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from jaxser.study.config import LAYER_SWEEPS

#: the layer name of a sweep's jobs ('all' and 'best' share them)
SWEEP = "all"

#: (encoder, head, layer): how a model is made; a model is a recipe trained on one train key
Recipe = tuple[str, str, str]
#: a recipe and the train keys one training call (a worker's job) trains it on
Job = tuple[Recipe, list[str]]

#: above this, padding every cell's fit and validation rows to one capacity costs too much memory
SHARED_ROWS_BYTES = 256 << 20


@dataclasses.dataclass(frozen=True)
class DevicePolicy:
    """How training uses the machine.

    On CPU, models train one per program, several jobs at once in threads (XLA:CPU leaves
    cores idle on these small heads; measured 1.5-2.3x on 2 cores). On accelerators up to 8
    models per device are stacked into one program instead (`jaxser.train.train`; with several
    local devices the stack's model axis is sharded over a mesh).
    """
    on_cpu: bool
    max_stack: int       # models stacked into one program
    workers: int         # jobs trained concurrently (threads)
    keys_per_job: int    # train keys handed to one training call
    mesh: object = None  # jax.sharding.Mesh over the local devices, or None


def device_policy(workers: int | None = None) -> DevicePolicy:
    import jax

    from jaxser import sharding
    from jaxser.threads import cpu_threads

    on_cpu = jax.default_backend() == "cpu"
    max_stack, mesh = (1, None) if on_cpu else (8, None)
    if not on_cpu and jax.process_count() == 1 and jax.local_device_count() > 1:
        from jax.sharding import Mesh

        mesh = Mesh(np.array(jax.local_devices()), (sharding.MODEL_AXIS,))
        max_stack = 8 * jax.local_device_count()
    return DevicePolicy(on_cpu=on_cpu, max_stack=max_stack, mesh=mesh,
                        workers=workers or (cpu_threads() if on_cpu else 1),
                        keys_per_job=1 if on_cpu else 2 * max_stack)


def training_jobs(encoders: Sequence[str], heads: Sequence[str], layers: Sequence[str], train_keys: Sequence[str],
                  keys_per_job: int) -> list[Job]:
    """Every model of the study, in jobs of `keys_per_job` train keys, round-robin over
    recipes: concurrent workers then start on different programs (compiled in parallel)
    instead of compiling the same one twice. The list is the same on every host."""
    keys = list(train_keys)
    by_recipe = {(e, h, layer): [keys[i:i + keys_per_job] for i in range(0, len(keys), keys_per_job)]
                 for e in encoders for h in heads for layer in trained_layers(layers)}
    longest = max((len(b) for b in by_recipe.values()), default=0)
    return [(r, batches[i]) for i in range(longest) for r, batches in by_recipe.items() if i < len(batches)]


def largest_first(fit_rows: dict[str, int]) -> list[str]:
    """Train keys, the largest training sets first (ties in the given order): on CPU a long
    model started last would run alone while the other workers idle, and on an accelerator the
    keys one call stacks are then of similar size (its slots run in lockstep per epoch)."""
    return sorted(fit_rows, key=lambda k: -fit_rows[k])


def trained_layers(layers: Sequence[str]) -> list[str]:
    """The layer names that get jobs, in order: the sweeps share the jobs of layer SWEEP
    ('best' is chosen among the models of every hidden state)."""
    out: list[str] = []
    for layer in layers:
        name = SWEEP if layer in LAYER_SWEEPS else layer
        if name not in out:
            out.append(name)
    return out


def written_layers(layer: str, n_layers: int, layers: Sequence[str]) -> list[str]:
    """The layer names of the predictions a job of `layer` writes per train key: a sweep's
    every hidden state ("0" .. str(n_layers - 1); "all" itself never appears in results) and
    "best" when the study asks for it; any other job its own layer."""
    if layer != SWEEP:
        return [layer]
    return [str(i) for i in range(n_layers)] + (["best"] if "best" in layers else [])


def written_results(layer: str, result, layers: Sequence[str]) -> list[tuple[str, object, int | None]]:
    """(layer name, ModelResult, chosen hidden state or None) of each predictions file a job of
    `layer` writes for one train key, in `written_layers` order. `result`: a ModelResult, or
    for a sweep the list of every hidden state's (`jaxser.layers.train_layers`)."""
    if layer != SWEEP:
        return [(layer, result, None)]
    from jaxser.layers import select_layer

    out = [(str(r.layer), r, None) for r in result]
    if "best" in layers:
        best = select_layer(result)
        out.append(("best", best, best.layer))
    return out


def host_share(jobs: list[Job], process: int, n_processes: int) -> list[Job]:
    """This host's jobs of the (identical) list every host builds."""
    return jobs[process::n_processes]


def still_missing(jobs: list[Job], needs_training: Callable[[Recipe, str], bool]) -> list[Job]:
    """The jobs restricted to the train keys whose models `needs_training` says are not on
    disk yet."""
    out = [(r, [k for k in keys if needs_training(r, k)]) for r, keys in jobs]
    return [j for j in out if j[1]]


def rows_for(embedding_shape: tuple[int, ...], layer: str, rows_cap: int) -> int | None:
    """The row capacity one recipe trains all its models with: the study's
    shared capacity (one compiled program for every cell; padding costs memory, not compute),
    unless padded fit + validation copies would hold too much memory (large corpora, the
    all-layer input of layer="weighted", every layer's copy in a sweep): then None, per-cell
    capacities. `embedding_shape`: one utterance's [layers, dim]."""
    row_bytes = 4 * (int(np.prod(embedding_shape)) if layer in ("weighted", SWEEP) else embedding_shape[-1])
    return rows_cap if 2 * rows_cap * row_bytes <= SHARED_ROWS_BYTES else None


def run_jobs(jobs: list, train: Callable, finished: Callable, workers: int) -> None:
    """Train `jobs` on `workers` threads, calling `finished(job, result)` on this thread.

    At most `workers` jobs are in flight, and the next one is submitted only from here after
    one completed, so on an error (or Ctrl-C) nothing new starts: the running jobs finish,
    every one that succeeded is passed to `finished` (its predictions written), and then the
    first error propagates. A re-run then trains only what is missing.
    """
    if workers <= 1:
        for job in jobs:
            finished(job, train(job))
        return
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    todo = list(reversed(jobs))
    error: BaseException | None = None
    with ThreadPoolExecutor(workers) as pool:
        running: dict = {}

        def fill():
            while error is None and todo and len(running) < workers:
                job = todo.pop()
                running[pool.submit(train, job)] = job

        fill()
        while running:
            try:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
            except BaseException as e:  # Ctrl-C while waiting: stop submitting, drain the rest
                error = error or e
                continue
            for fut in done:
                job = running.pop(fut)
                if fut.exception() is not None:
                    error = error or fut.exception()
                    continue
                fill()  # keep the workers busy while this thread writes
                try:
                    finished(job, fut.result())
                except BaseException as e:
                    error = error or e
    if error is not None:
        raise error

