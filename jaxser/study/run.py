"""Run (or resume) a study: corpora -> embeddings -> cells -> train -> report.

Long by design: one short function per step of a run, in the order a run takes them, so the
module reads top to bottom as a run goes (words as in docs/design.md's glossary).

Resumable: embeddings come from the cache, and each trained model's predictions are written
atomically as soon as they exist, so a re-run after a crash trains only what is missing.
Multi-host (the same command on every host, a shared run directory and cache): every host
extracts its share of each corpus (`jaxser.embed`) and trains its share of the models;
process 0 writes the run's metadata and, after a barrier, the report.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from jaxser import io as jio
from jaxser.errors import CacheError, RunDirError
from jaxser.io import cache_root
from jaxser.study import artifacts, schedule
from jaxser.study.config import ConfigError, StudyConfig, layer_index, parse_args, study_diff

#: the stages a run goes through, in order (logged as they start; timed in manifest.json)
STAGES = ("corpora", "extract", "train", "report")


def stage(log, name: str, detail: str = "") -> None:
    """Say which stage the run is in, so a long silent stretch has a name."""
    log(f"[{STAGES.index(name) + 1}/{len(STAGES)}] {name}{' ' + detail if detail else ''}")


#: jax.monitoring's duration events of making an executable: tracing, lowering to StableHLO,
#: and XLA compilation (which includes loading a program from the on-disk cache)
COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration",
                  "/jax/core/compile/backend_compile_duration")


class CompileClock:
    """Seconds jax has spent making executables in this process, summed over threads (so
    CPU seconds, not wall time): manifest.json's compile_extract_s and compile_train_s say how
    much of a stage was compiling rather than computing. One per process (``compile_clock``):
    jax keeps every listener it is given."""

    def __init__(self):
        self.total = 0.0
        self._lock = threading.Lock()

    def __call__(self, event: str, duration: float, **_) -> None:
        if event in COMPILE_EVENTS:
            with self._lock:
                self.total += duration


@functools.lru_cache(maxsize=1)
def compile_clock() -> CompileClock:
    import jax

    clock = CompileClock()
    jax.monitoring.register_event_duration_secs_listener(clock)
    return clock


def run(cfg: StudyConfig, *, log=print) -> Path:
    """Run (or resume) the study; returns the run directory (locked for the run's life)."""
    with contextlib.ExitStack() as held:
        return _run(cfg, log, held)


def _run(cfg: StudyConfig, log, held: contextlib.ExitStack) -> Path:
    from jaxser import sharding

    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    sharding.initialize_distributed()
    import jax

    me, n_proc = jax.process_index(), jax.process_count()
    lead = me == 0
    persistent_compilation_cache(cfg.cache)
    preflight(cfg)
    out = claim_run_dir(cfg, lead=lead, log=log, held=held, alone=n_proc == 1)

    from jaxser.study.report import statistics_plan
    for line in statistics_plan(cfg) if lead else []:  # what the report's claims can reach
        log(line)
    t0 = time.perf_counter()
    stage(log, "corpora")
    datasets, roots = load_corpora(cfg, log)
    if cfg.task == "dimensional":  # before extraction: every corpus rates the study's dimensions on a declared scale
        from jaxser.dimensional import corpus_targets

        for name, ds in datasets.items():
            corpus_targets(ds, name, cfg.dimensions)
    timings["corpora_s"] = time.perf_counter() - t0

    if cfg.dry_run:  # the protocol alone: nothing is extracted or trained
        meta, skipped, duplicates = study_metadata(datasets, {}, log, dimensions=study_dimensions(cfg))
        cells, extra = study_cells(cfg, meta, log)
        manifest = {**study_manifest(cfg, out, datasets, roots, {}, skipped, duplicates, len(cells)), **extra,
                    "dry_run": True}
        if lead:
            write_protocol(out, meta, cells, manifest)
        log(f"dry run: {len(cells)} cells over {len(meta)} utterances written to {out} (metadata.parquet, "
            "cells.json, splits.parquet); nothing extracted")
        return out

    clock = compile_clock()
    t0, c0 = time.perf_counter(), clock.total
    emb, enc_info = extract_embeddings(cfg, datasets, log, timings)
    timings["extract_s"] = time.perf_counter() - t0
    timings["compile_extract_s"] = clock.total - c0

    meta, skipped, duplicates = study_metadata(datasets, emb, log, dimensions=study_dimensions(cfg))
    cells, extra = study_cells(cfg, meta, log)
    manifest = {**study_manifest(cfg, out, datasets, roots, enc_info, skipped, duplicates, len(cells)), **extra}
    if lead:
        write_protocol(out, meta, cells, manifest)

    t0, c0 = time.perf_counter(), clock.total
    train_models(cfg, out, TrainingData.of(cfg, meta, cells, emb, enc_info), process=me, n_processes=n_proc,
                 log=log)
    timings["train_s"] = time.perf_counter() - t0
    timings["compile_train_s"] = clock.total - c0
    if n_proc > 1:  # every host's models are written before process 0 reads them all
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("jaxser study: models trained")
        if not lead:
            log(f"process {me}: its share is trained; process 0 writes the report")
            return out

    from jaxser.study.report import write_report

    t0 = time.perf_counter()
    stage(log, "report")
    write_report(out, bootstrap=cfg.bootstrap, family=cfg.family)
    timings["report_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - t_start
    artifacts.write_manifest(out, {**manifest, "timings": timings})
    return out


# ----------------------------------------------------------------------------- setup

def persistent_compilation_cache(cache: str | None) -> None:
    """Keep XLA programs on disk next to the embeddings: a warm re-run of a study then skips
    most compilation, which on CPU costs more than training the small heads themselves."""
    import jax

    if jax.config.jax_compilation_cache_dir:
        return  # the user chose one
    path = Path(cache or cache_root()) / "xla"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CacheError(f"{path}: cannot create the cache folder ({e.strerror or e}); set --cache or "
                         "JAXSER_CACHE to a writable folder") from None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)


def claim_run_dir(cfg: StudyConfig, *, lead: bool, log, held: contextlib.ExitStack | None = None,
                  alone: bool = True) -> Path:
    """The run directory, refused when it holds another study's results (the message lists the
    settings that differ); study.json (re)written only once the study is accepted. A directory
    whose earlier run stopped before training anything (a bad corpus root, say) is taken over:
    there is nothing in it to lose. The lead process locks it into `held` (one runner per run
    directory; `cfg.wait` waits for another one instead of stopping) and sweeps the temporary
    files killed runs left (`alone`: every one, as no other process writes there)."""
    out = Path(cfg.out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunDirError(f"--out {out}: cannot create the run directory ({e.strerror or e}); choose a "
                          "writable path") from None
    if lead and held is not None:
        held.enter_context(run_dir_lock(out, wait=cfg.wait, log=log))
        jio.sweep_temps(out, alone=alone)
    prev = artifacts.read_study(out)
    if prev is not None:
        if prev["fingerprint"] != cfg.fingerprint() and has_results(out):
            diff = study_diff(prev.get("study") or {}, cfg.study())
            raise ConfigError(f"{out} holds the results of a different study "
                              f"({'; '.join(diff) or 'different settings'}); "
                              f"give this one its own --out DIR, or delete {out} to replace them")
        if lead and prev["fingerprint"] == cfg.fingerprint():
            log(f"resuming the run in {out}")
    else:  # study.json gone: the predictions still say whose they are
        artifacts.refuse_foreign_predictions(out, cfg.fingerprint())
    if lead:
        artifacts.write_study(out, cfg.fingerprint(), cfg.study())
    return out


def run_dir_lock(out: Path, *, wait: bool, log):
    """The run directory's lock (`RUN/.lock`, naming its holder): a second runner on the same
    --out stops at once naming the holder, or with --wait waits for it to finish."""
    def busy(holder: str) -> None:
        if not wait:
            raise RunDirError(f"--out {out} is in use by another jaxser run ({holder}); let it finish, re-run "
                              "with --wait to wait for it, or choose another --out")
        log(f"--out {out} is in use by another jaxser run ({holder}); waiting for it to finish (--wait)")
        if _on_run_lock_busy is not None:
            _on_run_lock_busy(out)
    return jio.exclusive_lock(out / LOCK, on_busy=busy)


#: the run directory's lock file
LOCK = ".lock"
#: test hook: called when --wait starts waiting for another runner, so tests order on events
_on_run_lock_busy = None


def has_results(out: Path) -> bool:
    """Whether a run directory holds trained models' results."""
    return bool(artifacts.predictions_files(out)) or any((out / artifacts.MODELS_DIR).glob("*"))


# ----------------------------------------------------------------------------- 1. corpora

def _is_manifest(root) -> bool:
    from jaxser.corpora.manifest import FILENAMES

    root = Path(root)
    if root.is_file():
        return root.suffix.lower() in (".csv", ".tsv", ".jsonl", ".ndjson")
    return root.is_dir() and any((root / n).is_file() for n in FILENAMES)


def load_corpus(name: str, root: str, options: dict, skip_errors: bool):
    """`--corpus NAME=ROOT`: a registry corpus, or a manifest (NAME `manifest`, or any name that
    is not a registry corpus with ROOT a manifest file or a folder holding one). A manifest
    corpus is named NAME, so its rows, embeddings and results all carry the one name."""
    from jaxser import corpora

    kw = dict(options)
    if skip_errors:  # loaders then keep unreadable files for the extraction to skip and list
        kw["skip_errors"] = True
    key = corpora.canonical_name(name)
    if key == "manifest" or (key not in corpora.available() and root and _is_manifest(root)):
        if not root:
            raise ConfigError(f"corpus {name}: a manifest corpus needs its file: --corpus {name}=PATH/manifest.csv")
        kw["name"] = name
        return corpora.load("manifest", root, **kw)
    try:
        return corpora.load(name, root or None, **kw)
    except TypeError as e:  # a loader option it does not take
        raise ConfigError(f"[corpus_options.{name}] {options}: {e}") from None


def preflight(cfg: StudyConfig) -> None:
    """Before any work: every corpus root and every encoder's checkpoint of the study can be had
    (checkpoints are fetched into their caches when the Hub can be reached). Every problem is
    reported at once, each with its fix, instead of one per attempt after minutes of work."""
    from jaxser import corpora, encoders
    from jaxser.corpora.synthetic import CORPORA as synthetic

    problems = []
    for name, root in cfg.corpora.items():
        key = corpora.canonical_name(name)
        there = bool(root) and Path(root).expanduser().exists()
        if key in synthetic or key not in corpora.available() and there and _is_manifest(root):
            continue
        if key not in corpora.available() and not (root and not there):
            problems.append(f"unknown corpus {name!r} (known: {', '.join(corpora.available())}); for your own corpus "
                            f"pass its manifest: --corpus {name}=PATH/manifest.csv")
        elif not root:
            problems.append(f"corpus {name}: needs its folder (--corpus {name}=ROOT)")
        elif not there:
            problems.append(f"corpus {name}: {root} does not exist")
    for name in [] if cfg.dry_run else cfg.encoders:  # a dry run extracts nothing
        problem = encoders.locate(name)
        if problem:
            problems.append(f"encoder {name}: {problem}")
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        n_e = sum(p.startswith("encoder ") for p in problems)
        raise ConfigError(f"{n_e} of {len(cfg.encoders)} encoders and {len(problems) - n_e} of {len(cfg.corpora)} "
                          "corpora of this study cannot be had:\n  " + "\n  ".join(problems))


def load_corpora(cfg: StudyConfig, log) -> tuple[dict, dict]:
    """corpus name (as its rows carry it) -> dataset, and -> the root it was loaded from."""
    datasets, roots = {}, {}
    for name, root in cfg.corpora.items():
        ds = load_corpus(name, root, cfg.corpus_options.get(name, {}), cfg.skip_errors)
        own = sorted(set(ds["corpus"]))
        if len(own) != 1:
            raise ConfigError(f"corpus {name} ({root}): its rows name corpora {own}, expected one")
        if own[0] in datasets:
            raise ConfigError(f"corpus {own[0]} is given twice (--corpus {name}={root})")
        # keyed by the name the rows carry (an alias such as crema-d loads as cremad)
        datasets[own[0]], roots[own[0]] = ds, root
        log(f"corpus {own[0]}: {len(ds)} utterances")
    return datasets, roots


# ----------------------------------------------------------------------------- 2. embeddings

def extract_embeddings(cfg: StudyConfig, datasets: dict, log, timings: dict) -> tuple[dict, dict]:
    """encoder -> corpus -> cached embeddings, and encoder -> what the manifest records of it."""
    from jaxser import encoders
    from jaxser.embed import embed

    emb: dict[str, dict] = {}
    enc_info: dict[str, dict] = {}
    for i, enc_name in enumerate(cfg.encoders):
        stage(log, "extract", f"{enc_name} ({i + 1}/{len(cfg.encoders)} encoders)")
        te = time.perf_counter()
        options = encoder_options(enc_name, cfg.encoder_dtype, cfg.mesh)
        enc = encoders.load(enc_name, **options)
        for layer in cfg.layers:  # before extracting, which may take hours
            idx = layer_index(layer)
            if isinstance(idx, int) and not -enc.num_layers <= idx < enc.num_layers:
                raise ConfigError(f"layer {layer} ([models] layers / --layer) is out of range for {enc_name}, which "
                                  f"has {enc.num_layers} layers: use -{enc.num_layers}..{enc.num_layers - 1}, "
                                  "'last' or 'weighted'")
        enc_info[enc_name] = {"fingerprint": enc.fingerprint, "layers": enc.num_layers, "dim": enc.dim,
                              "weights": enc.provenance, **({"dtype": enc.dtype} if "dtype" in options else {})}
        emb[enc_name] = {c: embed(enc, ds, cache=cfg.cache, skip_errors=cfg.skip_errors)
                         for c, ds in datasets.items()}
        timings[f"extract_{enc_name}_s"] = time.perf_counter() - te
        log(f"encoder {enc_name}: {enc.num_layers} x {enc.dim} embeddings ({timings[f'extract_{enc_name}_s']:.1f}s"
            + ("" if cfg.encoder_dtype == "float32" else f"; {getattr(enc, 'dtype', 'float32')}") + ")")
        del enc
    return emb, enc_info


def encoder_options(name: str, dtype: str, mesh: str) -> dict:
    """The `encoders.load` options that [encoders] dtype and [devices] mesh ask of encoder
    `name`. The JAX encoders (the families whose loader takes a dtype: wav2vec2, Whisper,
    w2v-BERT, emotion2vec) take both; the others (handcrafted features, TF-Hub, x-vector)
    compute in float32 on one device and get neither (the log line of each encoder says its
    dtype). Defaults ask nothing, so such studies load their encoders as before."""
    if dtype == "float32" and mesh == "none":
        return {}
    import importlib
    import inspect

    from jaxser import encoders

    family = encoders.family(name)
    if "dtype" not in inspect.signature(importlib.import_module(f"jaxser.encoders.{family}").load).parameters:
        return {}
    return {"dtype": dtype, **({} if mesh == "none" else {"mesh": mesh})}


# ----------------------------------------------------------------------------- 3. metadata and cells

def study_metadata(datasets: dict, emb: dict, log, dimensions=None) -> tuple[pd.DataFrame, dict, dict]:
    """The study's utterances (artifacts.METADATA_COLUMNS), what was skipped and what dropped.

    Rows skipped by any encoder are dropped for all (same test sets), and of several copies of
    one recording only the first is kept: otherwise the same audio could sit in training and
    in test. Returns (metadata, skipped id -> why, dropped id -> kept id). ``dimensions``
    (dimensional task): each row also carries its targets on the [0, 1] scale, one column per
    dimension (NaN where the corpus did not rate it).
    """
    from jaxser import corpora

    frames = []
    for name, ds in datasets.items():
        extra = [c for c in artifacts.OPTIONAL_METADATA if c in ds.column_names]
        df = ds.select_columns(list(artifacts.CORPUS_COLUMNS) + extra).to_pandas()
        if dimensions:
            from jaxser.dimensional import corpus_targets

            df[list(dimensions)] = corpus_targets(ds, name, dimensions)
        df["group"] = corpora.fold_groups(ds)
        df["audio_sha256"] = corpora.content_digests(ds)
        df["audio"] = list(ds["audio"])
        frames.append(df)
    meta = pd.concat(frames, ignore_index=True)
    path_of = dict(zip(meta["id"], meta.pop("audio")))
    skipped = {u: why if str(path_of.get(u, "")) in why else f"{path_of.get(u, '?')}: {why}"
               for e in emb.values() for x in e.values() for u, why in x.skipped.items()}
    if skipped:
        log(f"{len(skipped)} utterances skipped (unusable audio); listed in manifest.json")
        meta = meta[~meta["id"].isin(skipped)].reset_index(drop=True)
    first = meta[meta["audio_sha256"] != ""].drop_duplicates("audio_sha256")
    kept_of = dict(zip(first["audio_sha256"], first["id"]))
    dup = (meta["audio_sha256"] != "") & ~meta.index.isin(first.index)
    duplicates = {u: kept_of[d] for u, d in zip(meta.loc[dup, "id"], meta.loc[dup, "audio_sha256"])}
    if duplicates:
        log(f"{len(duplicates)} utterances dropped as copies of a recording already in the study "
            f"(e.g. {next(iter(duplicates))} = {next(iter(duplicates.values()))}); listed in manifest.json")
        meta = meta[~dup].reset_index(drop=True)
    return meta, skipped, duplicates


def study_dimensions(cfg: StudyConfig) -> list[str] | None:
    """The dimensions a dimensional study regresses (None for the categorical task)."""
    return list(cfg.dimensions) if cfg.task == "dimensional" else None


def study_cells(cfg: StudyConfig, meta: pd.DataFrame, log) -> tuple[list, dict]:
    """The study's cells, and what manifest.json records of how they were made (split "emobox":
    EmoBox's files, their commit or digests, and every disagreement with the corpora on disk;
    with emobox_mismatch "error" a disagreement stops the run once it is recorded)."""
    from jaxser import protocol

    dims = study_dimensions(cfg)
    if dims:  # the utterances rated on every dimension of the study; scales mapped to [0, 1]
        return protocol.make_dimensional_cells(meta["corpus"], meta["group"], meta[dims].notna().all(axis=1),
                                               dims, settings=cfg.settings, k=cfg.k_folds, seed=0, split=cfg.split,
                                               text=meta["text"]), {}
    if cfg.split != "emobox":
        return protocol.make_cells(meta["corpus"], meta["group"], meta["emotion"], settings=cfg.settings,
                                   k=cfg.k_folds, labels=cfg.labels, seed=0, split=cfg.split,
                                   text=meta["text"]), {}
    from jaxser import emobox

    study = emobox.Study(meta, cfg.emobox, mismatch=cfg.emobox_mismatch)
    try:
        cells = study.cells(cfg.settings, labels=cfg.labels, seed=0)
        study.check(log)
    except emobox.EmoBoxError:
        if study.problems:  # what was found so far is worth keeping for the user
            artifacts.write_manifest(Path(cfg.out_dir), {"config": {**cfg.study(), "out_dir": cfg.out_dir},
                                                         "fingerprint": cfg.fingerprint(),
                                                         "emobox": study.report()})
        raise
    return cells, {"emobox": study.report()}


def write_protocol(out: Path, meta: pd.DataFrame, cells: list, manifest: dict) -> None:
    """metadata.parquet, cells.json, splits.parquet and manifest.json: the protocol of a run."""
    artifacts.write_metadata(out, meta)
    artifacts.write_cells(out, cells)
    artifacts.write_splits(out, cells, meta["id"].to_numpy())
    artifacts.write_manifest(out, manifest)


def _git_hash() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).resolve().parent).stdout.strip() or "unknown"
    except Exception:
        return "unknown"


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("jaxser", "jax", "jaxlib", "flax", "optax", "numpy", "datasets", "tensorflow", "torch", "opensmile"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def study_manifest(cfg: StudyConfig, out: Path, datasets: dict, roots: dict, enc_info: dict, skipped: dict,
                   duplicates: dict, n_cells: int) -> dict:
    from jaxser import corpora

    return {
        "config": {**cfg.study(), "out_dir": str(out)}, "fingerprint": cfg.fingerprint(), "seeds": cfg.seeds,
        "versions": _versions(), "git": _git_hash(),
        "corpora": {c: {"root": roots[c], "n": len(ds), "fingerprint": corpora.fingerprint(ds)}
                    for c, ds in datasets.items()},
        "encoders": enc_info, "skipped": skipped, "duplicates": duplicates,
        "protocol": {"k_folds": cfg.k_folds, "labels": cfg.labels or "shared", "split": cfg.split,
                     "validation": ("EmoBox's validation file, else a speaker-disjoint split of the training fold"
                                    if cfg.split == "emobox" else "speaker-disjoint source split"),
                     "cells": n_cells,
                     **({"task": "dimensional", "labels": None, "dimensions": list(cfg.dimensions),
                         "scales": {c: dimension_scales(ds) for c, ds in datasets.items()},
                         "selection": "source-validation mean CCC"} if cfg.task == "dimensional" else {})},
    }


def dimension_scales(ds) -> dict:
    """A corpus' declared scales, from its dataset (which carries them; a manifest corpus'
    name is not a registry name)."""
    from jaxser.dimensional import dimension_ranges

    return {d: list(r) for d, r in dimension_ranges(ds).items()}


# ----------------------------------------------------------------------------- 4. train

@dataclasses.dataclass
class TrainingData:
    """What training a model needs: the study's cells by train key, the metadata columns their
    row indices refer to, the embeddings, and the device policy."""
    cfg: StudyConfig
    groups: dict[str, list]          # train key -> its cells (they share one trained model)
    ids: np.ndarray
    emotion: np.ndarray
    corpus: np.ndarray
    emb: dict[str, dict]             # encoder -> corpus -> embeddings
    policy: schedule.DevicePolicy
    rows_cap: int                    # the largest fit or validation split of the study
    encoders: dict = dataclasses.field(default_factory=dict)  # encoder -> fingerprint, layers, dim
    targets: np.ndarray | None = None  # dimensional task: [rows, dimensions] on the [0, 1] scale

    @classmethod
    def of(cls, cfg: StudyConfig, meta: pd.DataFrame, cells: list, emb: dict,
           encoders: dict | None = None) -> "TrainingData":
        groups: dict[str, list] = {}
        for c in cells:
            groups.setdefault(c.train_key, []).append(c)
        return cls(cfg=cfg, groups=groups, ids=meta["id"].to_numpy(), emotion=meta["emotion"].to_numpy(),
                   corpus=meta["corpus"].to_numpy(), emb=emb, policy=schedule.device_policy(cfg.workers),
                   rows_cap=max(max(len(c.fit), len(c.val)) for c in cells), encoders=dict(encoders or {}),
                   targets=(meta[list(cfg.dimensions)].to_numpy(np.float32) if cfg.task == "dimensional" else None))

    def embedding_shape(self, enc_name: str) -> tuple[int, ...]:
        return next(iter(self.emb[enc_name].values())).x.shape[1:]

    def test_sets(self, key: str) -> dict[str, tuple[np.ndarray, int]]:
        """cell name -> (test ids, number of classes) of a train key's cells."""
        return {c.name: (self.ids[c.test], len(c.labels)) for c in self.groups[key]}


def embedding_rows(data: TrainingData, enc_name: str, rows: np.ndarray) -> np.ndarray:
    """Embeddings of metadata rows, in row order; a non-finite one (a damaged cache, or an
    encoder that overflowed) stops the run naming the utterance and the cache file."""
    x_out = np.empty((len(rows),) + data.embedding_shape(enc_name), np.float32)
    corpus_of = data.corpus[rows]
    for c in dict.fromkeys(corpus_of):
        sel = corpus_of == c
        ids = list(data.ids[rows][sel])
        cached = data.emb[enc_name][c]
        x = cached.take(ids)
        bad = ~np.isfinite(x.reshape(len(ids), -1)).all(axis=1)
        if bad.any():
            raise CacheError(f"{cached.path or f'{enc_name} embeddings of {c}'}: the embedding of "
                             f"utterance {ids[int(np.argmax(bad))]} is not finite (NaN/Inf; {int(bad.sum())} "
                             "such rows); delete that cache folder to re-extract, or re-run with --skip-errors "
                             "to skip such utterances")
        x_out[sel] = x
    return x_out


def train_job(data: TrainingData, job: schedule.Job) -> list:
    """Train one job's models (every seed of each) in one training call."""
    from jaxser import layers, train

    (enc_name, head_kind, layer), keys = job
    head_cfg = data.cfg.head_config(head_kind)
    train_cfg = data.cfg.train_config(layer)
    models = []
    for key in keys:
        cs = data.groups[key]
        lab_index = {lab: i for i, lab in enumerate(cs[0].labels)}

        def labels_of(rows):
            if data.targets is not None:  # dimensional: [0, 1]-scaled targets, one column per dimension
                return data.targets[rows]
            return np.array([lab_index[v] for v in data.emotion[rows]], np.int32)
        models.append(train.ModelData(embedding_rows(data, enc_name, cs[0].fit), labels_of(cs[0].fit),
                                   embedding_rows(data, enc_name, cs[0].val), labels_of(cs[0].val),
                                   {c.name: embedding_rows(data, enc_name, c.test) for c in cs},
                                   n_classes=len(cs[0].labels), task=data.cfg.task))
    rows = schedule.rows_for(data.embedding_shape(enc_name), layer, data.rows_cap)
    if layer == schedule.SWEEP:  # every hidden state, stacked in one program per training set
        return layers.train_layers(models, head=head_cfg, config=train_cfg, seeds=data.cfg.seeds, rows=rows,
                                   mesh=data.policy.mesh)
    return train.train(models, head=head_cfg, config=train_cfg, seeds=data.cfg.seeds,
                       max_stack=data.policy.max_stack, rows=rows, mesh=data.policy.mesh)


def saves_model(data: TrainingData, key: str, layer: str | None = None) -> bool:
    """Whether the study saves the model of this train key (`save_models`: settings). Of a
    layer sweep only the "best" model is saved (`layer`: the model's layer name), not every
    hidden state's."""
    swept = (layer is not None and layer.isdigit() and layer not in data.cfg.layers
             and schedule.SWEEP in schedule.trained_layers(data.cfg.layers))
    return data.groups[key][0].setting in data.cfg.save_models and not swept


def save_model(data: TrainingData, out: Path, recipe: schedule.Recipe, key: str, res) -> None:
    """RUN/models/<name>: what `jaxser predict` needs to apply the model to new audio."""
    import jaxser

    enc_name, head_kind, layer = recipe
    enc = data.encoders[enc_name]
    idx = layer_index(layer)
    cell = data.groups[key][0]
    info = {"study_fingerprint": data.cfg.fingerprint(), "jaxser_version": jaxser.__version__,
            "encoder": {"name": enc_name, **enc},
            "head": dataclasses.asdict(data.cfg.head_config(head_kind)),
            "train": {k: v for k, v in dataclasses.asdict(data.cfg.train_config(layer)).items() if k != "layer"},
            "layer": str(layer), "layer_index": idx if idx == "weighted" or res.layer is None else res.layer,
            "labels": list(cell.labels), "seeds": list(data.cfg.seeds), "train_key": key, "setting": cell.setting,
            "source": cell.source, "val_uar": [float(v) for v in res.val_uar],
            "best_epoch": [int(v) for v in res.best_epoch]}
    if data.targets is not None:  # outputs are the dimensions, on the corpus-free [0, 1] scale
        info.update(task="dimensional", dimensions=list(cell.labels), val_ccc=info.pop("val_uar"))
    artifacts.write_model(artifacts.model_dir(out, *recipe, key), res.params, res.mean, res.std, info,
                          targets=None if res.y_mean is None else (res.y_mean, res.y_std))


def write_job(data: TrainingData, out: Path, job: schedule.Job, results: list) -> None:
    """One predictions file per trained model, after its saved model (when the study saves it):
    the predictions file marks the model done."""
    (enc_name, head_kind, layer), keys = job
    for key, result in zip(keys, results):
        # a sweep's result is every hidden state's model: one file each, and "best"'s
        for name, res, chosen in schedule.written_results(layer, result, data.cfg.layers):
            recipe = (enc_name, head_kind, name)
            if saves_model(data, key, name):
                save_model(data, out, recipe, key, res)
            identity = artifacts.model_identity(*recipe, key)
            if data.targets is not None:
                table = artifacts.dimensional_predictions_table(identity, data.groups[key], res.probs, res.val_uar,
                                                                res.best_epoch, data.cfg.seeds, data.ids, data.targets)
            else:
                table = artifacts.predictions_table(identity, data.groups[key], res.probs, res.val_uar,
                                                    res.best_epoch, data.cfg.seeds, data.ids, data.emotion,
                                                    chosen_layer=chosen)
            artifacts.write_predictions_file(artifacts.predictions_path(out, *recipe, key), table,
                                             {"study_fingerprint": data.cfg.fingerprint(), **identity},
                                             layer_weights=res.layer_weights)


def written_recipes(data: TrainingData, recipe: schedule.Recipe) -> list[schedule.Recipe]:
    """The recipes whose models a job of `recipe` writes (a sweep: every hidden state's)."""
    enc_name, head_kind, layer = recipe
    return [(enc_name, head_kind, name) for name in
            schedule.written_layers(layer, data.embedding_shape(enc_name)[0], data.cfg.layers)]


def needs_training(data: TrainingData, out: Path, log, recipe: schedule.Recipe, key: str) -> bool:
    """Whether a job of `recipe` must train `key`: False only when every model it writes is
    on disk and usable (each checked by `keep_or_set_aside`, which moves damaged files aside)."""
    return not all([keep_or_set_aside(data, out, log, r, key) for r in written_recipes(data, recipe)])


def keep_or_set_aside(data: TrainingData, out: Path, log, recipe: schedule.Recipe, key: str) -> bool:
    """Check a trained model on disk, and say whether it is kept: True when its verified
    predictions file exists, and its verified saved model when the study saves it. A damaged
    predictions file is moved aside (`artifacts.set_aside`) and a damaged saved model left to
    be overwritten: False, the model is retrained; another study's files stop the run."""
    path = artifacts.predictions_path(out, *recipe, key)
    if not path.exists():
        return False
    if saves_model(data, key, recipe[2]):
        why = artifacts.verify_model(artifacts.model_dir(out, *recipe, key), fingerprint=data.cfg.fingerprint(),
                                     identity=artifacts.model_identity(*recipe, key))
        if why is not None:
            log(f"{artifacts.model_dir(out, *recipe, key)}: no usable saved model ({why}); retraining this model")
            return False
    why = artifacts.verify_predictions(path, fingerprint=data.cfg.fingerprint(),
                                       identity=artifacts.model_identity(*recipe, key), seeds=data.cfg.seeds,
                                       cells=data.test_sets(key), task=data.cfg.task)
    if why is None:
        return True
    log(f"{path}: {why}; moved to {artifacts.set_aside(path).name}, retraining this model")
    return False


def training_bar(total: int):
    """The training progress bar: finished models of `total`, with the rate and ETA (a module
    function, so tests can read what it counts)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="train", unit="model", smoothing=0.1, dynamic_ncols=True)


def train_models(cfg: StudyConfig, out: Path, data: TrainingData, *, process: int, n_processes: int, log) -> None:
    """Train every model of the study not yet on disk (this host's share of them); each model's
    predictions are written atomically as soon as it is trained, so an interrupted run resumes there."""
    keys = schedule.largest_first({k: len(cs[0].fit) for k, cs in data.groups.items()})
    jobs = schedule.training_jobs(cfg.encoders, cfg.heads, cfg.layers, keys, data.policy.keys_per_job)
    if process == 0:  # files no model of this study writes: another study's, or damaged
        expected = {artifacts.predictions_path(out, *w, k) for r, keys in jobs for w in written_recipes(data, r)
                    for k in keys}
        artifacts.set_aside_strays(out, expected, cfg.fingerprint(), log)
    jobs = schedule.still_missing(schedule.host_share(jobs, process, n_processes),
                                  functools.partial(needs_training, data, out, log))
    if n_processes > 1:
        log(f"process {process} of {n_processes}: {sum(len(k) for _, k in jobs)} models to train here")
    n_models = sum(len(k) for _, k in jobs)
    per_job = data.policy.keys_per_job
    stage(log, "train", f"{n_models} models ({data.policy.workers} at a time)" if per_job == 1 else
          f"{n_models} models ({data.policy.workers} job(s) at a time, up to {per_job} models each)")
    bar = training_bar(n_models)
    lock, in_flight = threading.Lock(), [0]

    def flight(n):  # how many models workers are training now, next to the count finished
        with lock:
            in_flight[0] += n
            bar.set_postfix_str(f"{in_flight[0]} in flight", refresh=True)

    def train_counted(job):
        flight(len(job[1]))
        try:
            return train_job(data, job)
        finally:
            flight(-len(job[1]))

    def finished(job, results):
        write_job(data, out, job, results)
        bar.update(len(job[1]))
    try:
        schedule.run_jobs(jobs, train_counted, finished, data.policy.workers)
    finally:
        bar.close()


# ----------------------------------------------------------------------------- command line

def _main(argv=None, *, prog: str = "jaxser run") -> int:
    from jaxser.audio import AudioError

    cfg = parse_args(argv, prog=prog)
    try:
        out = run(cfg)
        if cfg.dry_run:
            print(f"\nprotocol: {out / artifacts.CELLS_FILE}, {out / artifacts.SPLITS_FILE}, "
                  f"{out / artifacts.METADATA_FILE}")
            return 0
    except AudioError as e:
        if cfg.skip_errors:
            raise
        raise AudioError(e.path, f"{e.reason}; --skip-errors skips such files and lists them in manifest.json") from e
    timings = artifacts.read_manifest(out).get("timings", {})
    saved = sorted((out / artifacts.MODELS_DIR).glob("*/" + artifacts.MODEL_FILE))
    print(f"\ntime: {timing_summary(timings)}\nreport: {out / 'report.md'}\nresults: {out / 'results.csv'}\n"
          + (f"models: {len(saved)} saved in {out / artifacts.MODELS_DIR} (jaxser predict --model DIR FILES)\n"
             if saved else "")
          + f"check it: python -m pytest spec --run-dir {out}")
    return 0


def timing_summary(timings: dict) -> str:
    """One line of stage timings from manifest.json's, e.g. `corpora 1.2s, extract 14.3s
    (mfcc 14.3s; compiling 6.1 CPU-s), train 10.7s (compiling 4.2 CPU-s), report 5.0s; total 31.2s`:
    stages in wall seconds, compiling in CPU seconds summed over threads (``CompileClock``), which
    can exceed the stage's wall time."""
    def t(s):
        return f"{s / 60:.1f}min" if s >= 600 else f"{s:.1f}s"
    per_enc = {k[len("extract_"):-2]: v for k, v in timings.items() if k.startswith("extract_") and k != "extract_s"}
    parts = []
    for name in STAGES:
        if f"{name}_s" in timings:
            notes = [", ".join(f"{e} {t(v)}" for e, v in per_enc.items())] if name == "extract" and per_enc else []
            if f"compile_{name}_s" in timings:
                c = timings[f"compile_{name}_s"]
                notes.append(f"compiling {c / 60:.1f} CPU-min" if c >= 600 else f"compiling {c:.1f} CPU-s")
            extra = f" ({'; '.join(notes)})" if notes else ""
            parts.append(f"{name} {t(timings[f'{name}_s'])}{extra}")
    total = f"; total {t(timings['total_s'])}" if "total_s" in timings else ""
    return ", ".join(parts) + total if parts else "(no timings recorded)"


def main(argv=None, *, prog: str = "jaxser run") -> int:
    """The command line: a problem the user can fix (config, corpus, audio, encoder, cache, run
    directory) is one line `error: ...` on stderr and exit status 2 (JAXSER_DEBUG=1: traceback)."""
    from jaxser.errors import report

    return report(functools.partial(_main, prog=prog), argv)


if __name__ == "__main__":
    sys.exit(main(prog="python -m jaxser.study.run"))
