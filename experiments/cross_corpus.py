"""The cross-corpus SER benchmark: `python -m experiments.cross_corpus [options]`.

With no arguments it runs the embedded default (experiments/configs/default.toml):
synthetic corpora, encoders that need no download, FCN and CNN heads, 5 seeds, same-corpus
folds, every ordered cross-corpus pair and leave-one-corpus-out, and writes a run directory
(manifest.json, predictions/, results.csv/json, report.md, figures/, table.tex).

Resumable: embeddings come from the cache, and each trained model's predictions are written
atomically as soon as they exist, so a re-run after a crash trains only what is missing.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from jaxser.errors import CacheError, RunDirError, UserError
from jaxser.io import atomic_write, atomic_write_json, cache_root

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "default.toml"


class ConfigError(UserError, ValueError):
    """A configuration that cannot be run (unknown keys, mismatched resume, bad values)."""


@dataclasses.dataclass
class RunConfig:
    out_dir: str
    corpora: dict[str, str]
    encoders: list[str]
    heads: list[str]
    layers: list[str]
    seeds: list[int]
    settings: list[str]
    labels: list[str] | None
    k_folds: int = 5
    bootstrap: int = 1000
    head: dict = dataclasses.field(default_factory=dict)
    train: dict = dataclasses.field(default_factory=dict)
    corpus_options: dict = dataclasses.field(default_factory=dict)
    cache: str | None = None
    skip_errors: bool = False
    workers: int | None = None   # models trained concurrently; None: one per core (up to 4) on CPU, 1 elsewhere

    def study(self) -> dict:
        """What defines the results (not where they are written): the resume key."""
        d = dataclasses.asdict(self)
        # skip_errors is left out: it decides whether a run with unusable audio stops or goes
        # on, not what a finished run contains (the skipped files are listed in manifest.json),
        # so the suggested re-run with --skip-errors resumes the same study
        for k in ("out_dir", "cache", "bootstrap", "workers", "skip_errors"):
            d.pop(k)
        return d

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.study(), sort_keys=True).encode()).hexdigest()[:12]


_RUN_KEYS = {"out_dir", "seeds", "settings", "labels", "k_folds", "bootstrap"}
_TOP_KEYS = {"run", "corpora", "models", "head", "train", "corpus_options"}


def load_config(path: str | os.PathLike) -> RunConfig:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found (shipped: {sorted(p.name for p in CONFIG_DIR.glob('*.toml'))})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown sections {sorted(unknown)}; known: {sorted(_TOP_KEYS)}")
    run, models = raw.get("run", {}), raw.get("models", {})
    if set(run) - _RUN_KEYS:
        raise ConfigError(f"{path}: unknown [run] keys {sorted(set(run) - _RUN_KEYS)}; known: {sorted(_RUN_KEYS)}")
    if set(models) - {"encoders", "heads", "layers"}:
        raise ConfigError(f"{path}: unknown [models] keys {sorted(set(models) - {'encoders', 'heads', 'layers'})}")
    labels = run.get("labels", "shared")
    return RunConfig(
        out_dir=run.get("out_dir", "runs/" + path.stem),
        corpora={k: str(v) for k, v in raw.get("corpora", {}).items()},
        encoders=list(models.get("encoders", [])),
        heads=list(models.get("heads", ["fcn", "cnn"])),
        layers=[str(x) for x in models.get("layers", ["last"])],
        seeds=[int(s) for s in run.get("seeds", [0, 1, 2, 3, 4])],
        settings=list(run.get("settings", ["same", "cross", "loco"])),
        labels=None if labels in ("shared", None, []) else list(labels),
        k_folds=int(run.get("k_folds", 5)),
        bootstrap=int(run.get("bootstrap", 1000)),
        head=raw.get("head", {}),
        train=raw.get("train", {}),
        corpus_options=raw.get("corpus_options", {}),
    )


def _split_list(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


def parse_args(argv=None) -> RunConfig:
    p = argparse.ArgumentParser(prog="python -m experiments.cross_corpus",
                                description="Run a cross-corpus SER benchmark (default: the embedded synthetic study).")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="study config (TOML); default: %(default)s")
    p.add_argument("--corpus", action="append", help="NAME=ROOT (repeatable; replaces the config's corpora)")
    p.add_argument("--encoder", action="append", help="registry name, Hub id, TF-Hub handle or folder (repeatable)")
    p.add_argument("--head", action="append", choices=["fcn", "cnn", "linear"], help="repeatable")
    p.add_argument("--layer", action="append", help="'last', an index, or 'weighted' (repeatable)")
    p.add_argument("--seeds", help="comma-separated, e.g. 0,1,2")
    p.add_argument("--labels", help="comma-separated fixed label set, or 'shared'")
    p.add_argument("--settings", help="comma-separated subset of same,cross,loco")
    p.add_argument("--k-folds", type=int)
    p.add_argument("--bootstrap", type=int, help="bootstrap resamples for the 95%% intervals")
    p.add_argument("--out", help="run directory")
    p.add_argument("--cache", help="embedding cache folder (default $JAXSER_CACHE or ~/.cache/jaxser)")
    p.add_argument("--skip-errors", action="store_true", help="skip and list unreadable audio instead of failing")
    p.add_argument("--workers", type=int, help="models trained concurrently (default: one per CPU core up to 4 on "
                   "CPU, 1 on an accelerator); results do not depend on it")
    a = p.parse_args(argv)
    cfg = load_config(a.config)
    if a.corpus:
        cfg.corpora = dict(c.partition("=")[::2] for c in a.corpus)
    if a.encoder:
        cfg.encoders = a.encoder
    if a.head:
        cfg.heads = a.head
    if a.layer:
        cfg.layers = a.layer
    if a.seeds:
        cfg.seeds = [int(s) for s in _split_list(a.seeds)]
    if a.labels:
        cfg.labels = None if a.labels == "shared" else _split_list(a.labels)
    if a.settings:
        cfg.settings = _split_list(a.settings)
    if a.k_folds:
        cfg.k_folds = a.k_folds
    if a.bootstrap is not None:
        cfg.bootstrap = a.bootstrap
    if a.out:
        cfg.out_dir = a.out
    cfg.cache = a.cache
    cfg.skip_errors = a.skip_errors
    if a.workers is not None:
        if a.workers < 1:
            raise ConfigError(f"--workers {a.workers}: expected >= 1")
        cfg.workers = a.workers
    validate(cfg)
    return cfg


def validate(cfg: RunConfig) -> None:
    from jaxser.corpora.schema import CANONICAL_EMOTIONS
    from jaxser.protocol import SETTINGS

    if len(cfg.corpora) < 2 and set(cfg.settings) - {"same"}:
        raise ConfigError(f"cross-corpus settings need >= 2 corpora, got {list(cfg.corpora)}")
    if not cfg.encoders:
        raise ConfigError("no encoders configured")
    if not cfg.seeds or len(set(cfg.seeds)) != len(cfg.seeds):
        raise ConfigError(f"seeds must be distinct and non-empty, got {cfg.seeds}")
    if set(cfg.settings) - set(SETTINGS):
        raise ConfigError(f"unknown settings {sorted(set(cfg.settings) - set(SETTINGS))}; known: {SETTINGS}")
    if cfg.labels and set(cfg.labels) - set(CANONICAL_EMOTIONS):
        raise ConfigError(f"labels {sorted(set(cfg.labels) - set(CANONICAL_EMOTIONS))} are not canonical "
                          f"({', '.join(CANONICAL_EMOTIONS)})")
    for layer in cfg.layers:
        if layer not in ("last", "weighted"):
            try:
                int(layer)
            except ValueError:
                raise ConfigError(f"layer {layer!r}: use 'last', 'weighted' or an integer") from None


# ----------------------------------------------------------------------------- the run

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


def _atomic_parquet(df: pd.DataFrame, path: Path) -> None:
    atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))


def _layer_index(layer: str):
    return -1 if layer == "last" else "weighted" if layer == "weighted" else int(layer)


def _persistent_compilation_cache(cache: str | None) -> None:
    """Keep XLA programs on disk next to the embeddings: a warm re-run of a study then skips
    most compilation, which on CPU costs more than training the small heads themselves."""
    import jax

    if jax.config.jax_compilation_cache_dir:
        return  # the user chose one
    path = Path(cache or cache_root()) / "xla"
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)


def run_units(units: list, train: Callable, finished: Callable, workers: int) -> None:
    """Train `units` on `workers` threads, calling `finished(unit, result)` on this thread.

    At most `workers` units are in flight, and the next one is submitted only from here after
    one completed, so on an error (or Ctrl-C) nothing new starts: the running units finish,
    every one that succeeded is passed to `finished` (its predictions written), and then the
    first error propagates. A re-run then trains only what is missing.
    """
    if workers <= 1:
        for unit in units:
            finished(unit, train(unit))
        return
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    todo = list(reversed(units))
    error: BaseException | None = None
    with ThreadPoolExecutor(workers) as pool:
        running: dict = {}

        def fill():
            while error is None and todo and len(running) < workers:
                unit = todo.pop()
                running[pool.submit(train, unit)] = unit

        fill()
        while running:
            try:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
            except BaseException as e:  # Ctrl-C while waiting: stop submitting, drain the rest
                error = error or e
                continue
            for fut in done:
                unit = running.pop(fut)
                if fut.exception() is not None:
                    error = error or fut.exception()
                    continue
                fill()  # keep the workers busy while this thread writes
                try:
                    finished(unit, fut.result())
                except BaseException as e:
                    error = error or e
    if error is not None:
        raise error


def _read_study(path: Path) -> dict:
    """study.json of an earlier run, verified: a damaged one stops the run naming the file."""
    try:
        prev = json.loads(path.read_text())
        if not isinstance(prev, dict) or not isinstance(prev.get("fingerprint"), str):
            raise ValueError("no study fingerprint")
        return prev
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise RunDirError(f"{path} is damaged ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                          "delete it to resume the study (every predictions file is checked against the "
                          "study before reuse), or choose another --out") from None


def _is_manifest(root) -> bool:
    from jaxser.corpora.manifest import FILENAMES

    root = Path(root)
    if root.is_file():
        return root.suffix.lower() in (".csv", ".tsv", ".jsonl", ".ndjson")
    return root.is_dir() and any((root / n).is_file() for n in FILENAMES)


def _load_corpus(name: str, root: str, options: dict, skip_errors: bool):
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
    return corpora.load(name, root or None, **kw)


#: parquet key-value metadata of a predictions file: which study and which model wrote it
PRED_META = ("jaxser.study_fingerprint", "jaxser.encoder", "jaxser.head", "jaxser.layer", "jaxser.train_key")


def _pred_schema():
    import pyarrow as pa

    s = pa.large_string()
    return pa.schema([("encoder", s), ("head", s), ("layer", s), ("cell", s), ("setting", s), ("source", s),
                      ("target", s), ("fold", pa.int64()), ("seed", pa.int64()), ("train_key", s), ("id", s),
                      ("true_label", s), ("true", pa.int32()), ("pred", pa.int32()), ("pred_label", s),
                      ("probs", pa.list_(pa.float32())), ("val_uar", pa.float64()), ("best_epoch", pa.int64())])


def _meta_digest(meta: dict[str, str]) -> str:
    """Guards the footer's identity fields, which parquet's page checksums do not cover: a
    damaged fingerprint must read as a damaged file, not as another study's."""
    return hashlib.sha256(json.dumps([meta.get(k, "") for k in PRED_META]).encode()).hexdigest()


def write_predictions_file(path: Path, table, identity: dict[str, str]) -> None:
    """Atomically, with the study/model identity in the footer and page checksums on the data."""
    import pyarrow.parquet as pq

    meta = {f"jaxser.{k}" if not k.startswith("jaxser.") else k: str(v) for k, v in identity.items()}
    meta["jaxser.identity_sha256"] = _meta_digest(meta)
    table = table.replace_schema_metadata(meta)
    atomic_write(path, lambda tmp: pq.write_table(table, tmp, write_page_checksum=True))


class ForeignPredictions(RunDirError):
    """A predictions file written by another study (a different fingerprint)."""


def verify_predictions(path: Path, *, fingerprint: str, identity: dict[str, str], seeds: list[int],
                       cells: dict[str, tuple[np.ndarray, int]]) -> str | None:
    """Why the predictions file at `path` cannot be trusted (None when it can).

    Checked: it reads (page checksums verified), has the expected schema, was written by this
    study (raises ForeignPredictions otherwise) for this model, and holds each expected cell's
    test utterances once per seed, in order, with finite probabilities over the cell's classes.
    `cells`: cell name -> (test ids, number of classes).
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, page_checksum_verification=True)
    except Exception as e:  # pyarrow raises several types for damaged files
        return f"unreadable ({type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]})"
    meta = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in (table.schema.metadata or {}).items()}
    if any(k not in meta for k in PRED_META) or meta.get("jaxser.identity_sha256") != _meta_digest(meta):
        return "no intact study fingerprint in its metadata (damaged, or written by an older version)"
    if meta["jaxser.study_fingerprint"] != fingerprint:
        raise ForeignPredictions(
            f"{path}: predictions of another study (fingerprint {meta['jaxser.study_fingerprint']}, this study "
            f"{fingerprint}); choose another --out, or delete {path.parent.parent} to start this study afresh")
    want = {f"jaxser.{k}": str(v) for k, v in identity.items()}
    if any(meta[k] != v for k, v in want.items()):
        return "written for another model: " + ", ".join(f"{k} {meta[k]!r}" for k in want if meta[k] != want[k])
    expected = _pred_schema()
    if table.schema.names != expected.names or any(
            not (a.type == b.type or (pa.types.is_list(a.type) and pa.types.is_list(b.type)
                                      and a.type.value_type == b.type.value_type))
            for a, b in zip(table.schema, expected)):
        return f"unexpected columns {table.schema.names} / types"
    n_seeds = len(seeds)
    cell = table.column("cell").to_numpy(zero_copy_only=False)
    ids = table.column("id").to_numpy(zero_copy_only=False)
    seed = table.column("seed").to_numpy()
    if set(cell) != set(cells):
        return f"cells {sorted(set(cell))}, expected {sorted(cells)}"
    for name, (test_ids, n_classes) in cells.items():
        sel = np.flatnonzero(cell == name)
        n = len(test_ids)
        if len(sel) != n_seeds * n:
            return f"cell {name}: {len(sel)} rows, expected {n_seeds} seeds x {n} test utterances"
        if not (np.array_equal(ids[sel], np.tile(np.asarray(test_ids, object), n_seeds))
                and np.array_equal(seed[sel], np.repeat(np.asarray(seeds, np.int64), n))):
            return f"cell {name}: not each test utterance once per seed {seeds}"
        probs = table.column("probs").take(pa.array(sel)).combine_chunks()
        if not (pc.list_value_length(probs).to_numpy(zero_copy_only=False) == n_classes).all():
            return f"cell {name}: probabilities are not over its {n_classes} classes"
        if not np.isfinite(probs.flatten().to_numpy(zero_copy_only=False)).all():
            return f"cell {name}: non-finite probabilities"
    return None


def _set_aside(path: Path) -> Path:
    """Keep a damaged file for inspection, out of the run's `*.parquet` glob."""
    bad = path.with_name(path.name + ".bad")
    os.replace(path, bad)
    return bad


def run(cfg: RunConfig, *, log=print) -> Path:
    """Run (or resume) the study; returns the run directory."""
    from jaxser import corpora, encoders, protocol
    from jaxser.embed import embed
    from jaxser.heads import HeadConfig
    from jaxser.report import write_report
    from jaxser.train import CellData, TrainConfig, train_cells

    from jaxser import sharding

    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    # Multi-host (the same command on every host, a shared run directory and cache): every host
    # extracts its share of each corpus (jaxser.embed) and trains its share of the models;
    # process 0 writes the run's metadata and, after a barrier, the report.
    sharding.initialize_distributed()
    import jax

    me, n_proc = jax.process_index(), jax.process_count()
    lead = me == 0
    _persistent_compilation_cache(cfg.cache)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state_file = out / "study.json"
    if state_file.exists():
        prev = _read_study(state_file)
        if prev["fingerprint"] != cfg.fingerprint():
            raise ConfigError(f"{out} holds a run of a different study (config {prev['fingerprint']} vs "
                              f"{cfg.fingerprint()}); choose another --out or delete it")
        if lead:
            log(f"resuming the run in {out}")
    if lead:
        atomic_write_json(state_file, {"fingerprint": cfg.fingerprint(), "study": cfg.study()})

    # 1. corpora
    t0 = time.perf_counter()
    datasets, roots = {}, {}
    for name, root in cfg.corpora.items():
        ds = _load_corpus(name, root, cfg.corpus_options.get(name, {}), cfg.skip_errors)
        own = sorted(set(ds["corpus"]))
        if len(own) != 1:
            raise ConfigError(f"corpus {name} ({root}): its rows name corpora {own}, expected one")
        if own[0] in datasets:
            raise ConfigError(f"corpus {own[0]} is given twice (--corpus {name}={root})")
        # keyed by the name the rows carry (an alias such as crema-d loads as cremad)
        datasets[own[0]], roots[own[0]] = ds, root
        log(f"corpus {own[0]}: {len(ds)} utterances")
    timings["corpora_s"] = time.perf_counter() - t0

    # 2. embeddings (cached once per encoder x corpus)
    t0 = time.perf_counter()
    emb: dict[str, dict] = {}
    enc_info: dict[str, dict] = {}
    for enc_name in cfg.encoders:
        te = time.perf_counter()
        enc = encoders.load(enc_name)
        enc_info[enc_name] = {"fingerprint": enc.fingerprint, "layers": enc.num_layers, "dim": enc.dim}
        emb[enc_name] = {c: embed(enc, ds, cache=cfg.cache, skip_errors=cfg.skip_errors)
                         for c, ds in datasets.items()}
        timings[f"extract_{enc_name}_s"] = time.perf_counter() - te
        log(f"encoder {enc_name}: {enc.num_layers} x {enc.dim} embeddings ({timings[f'extract_{enc_name}_s']:.1f}s)")
        for layer in cfg.layers:
            idx = _layer_index(layer)
            if isinstance(idx, int) and not -enc.num_layers <= idx < enc.num_layers:
                raise ConfigError(f"layer {layer} out of range for {enc_name} ({enc.num_layers} layers)")
        del enc
    timings["extract_s"] = time.perf_counter() - t0

    # 3. metadata and cells (rows skipped by any encoder are dropped for all: same test sets)
    #    and of several copies of one recording only the first is kept: otherwise the same
    #    audio could sit in training and in test
    frames = []
    for c, ds in datasets.items():
        df = ds.select_columns(["id", "corpus", "speaker", "gender", "language", "emotion", "duration"]).to_pandas()
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
    cells = protocol.make_cells(meta["corpus"], meta["group"], meta["emotion"], settings=cfg.settings,
                                k=cfg.k_folds, labels=cfg.labels, seed=0)
    cell_rows, split_rows = [], []
    for c in cells:
        cell_rows.append({"name": c.name, "setting": c.setting, "source": c.source, "target": c.target,
                          "fold": c.fold, "labels": list(c.labels), "train_key": c.train_key,
                          "val_speaker_disjoint": c.val_speaker_disjoint, "excluded": c.excluded,
                          "n_fit": len(c.fit), "n_val": len(c.val), "n_test": len(c.test)})
    for key in dict.fromkeys(c.train_key for c in cells):
        c = next(x for x in cells if x.train_key == key)
        split_rows += [(key, "fit", u) for u in meta["id"].to_numpy()[c.fit]]
        split_rows += [(key, "val", u) for u in meta["id"].to_numpy()[c.val]]
    if lead:
        _atomic_parquet(meta, out / "metadata.parquet")
        atomic_write_json(out / "cells.json", cell_rows)
        _atomic_parquet(pd.DataFrame(split_rows, columns=["train_key", "role", "id"]), out / "splits.parquet")

    manifest = {
        "config": {**cfg.study(), "out_dir": str(out)}, "fingerprint": cfg.fingerprint(), "seeds": cfg.seeds,
        "versions": _versions(), "git": _git_hash(),
        "corpora": {c: {"root": roots[c], "n": len(ds), "fingerprint": corpora.fingerprint(ds)}
                    for c, ds in datasets.items()},
        "encoders": enc_info, "skipped": skipped, "duplicates": duplicates,
        "protocol": {"k_folds": cfg.k_folds, "labels": cfg.labels or "shared", "validation": "speaker-disjoint source split",
                     "cells": len(cells)},
    }
    if lead:
        atomic_write_json(out / "manifest.json", manifest)

    # 4. train: one model per (encoder, head, layer, train key), all seeds vmapped together in
    #    one program; each model's predictions are written atomically as soon as it is trained,
    #    so an interrupted run resumes there
    t0 = time.perf_counter()
    from tqdm.auto import tqdm

    groups: dict[str, list] = {}
    for c in cells:
        groups.setdefault(c.train_key, []).append(c)
    ids_all = meta["id"].to_numpy()
    emotion_all = meta["emotion"].to_numpy()
    pred_dir = out / "predictions"

    def pred_file(enc_name, head_kind, layer, key) -> Path:
        return pred_dir / (hashlib.sha256(f"{enc_name}|{head_kind}|{layer}|{key}".encode()).hexdigest()[:16]
                           + ".parquet")

    def rows_x(enc_name, rows):
        """Embeddings of metadata rows, in row order; a non-finite one (a damaged cache, or an
        encoder that overflowed) stops the run naming the utterance and the cache file."""
        out_x = np.empty((len(rows),) + emb[enc_name][next(iter(datasets))].x.shape[1:], np.float32)
        corpus_of = meta["corpus"].to_numpy()[rows]
        for c in dict.fromkeys(corpus_of):
            sel = corpus_of == c
            ids = list(ids_all[rows][sel])
            x = emb[enc_name][c].take(ids)
            bad = ~np.isfinite(x.reshape(len(ids), -1)).all(axis=1)
            if bad.any():
                raise CacheError(f"{emb[enc_name][c].path or f'{enc_name} embeddings of {c}'}: the embedding of "
                                 f"utterance {ids[int(np.argmax(bad))]} is not finite (NaN/Inf; {int(bad.sum())} "
                                 "such rows); delete that cache folder to re-extract, or re-run with --skip-errors "
                                 "to skip such utterances")
            out_x[sel] = x
        return out_x

    # One row capacity for every cell of the study: each (encoder, head, layer) then trains all
    # its cells with ONE compiled program (padding costs memory, not compute: jaxser.train),
    # as long as the padded copies stay small (rows_for).
    # On CPU, models train one per program call, several at once in threads (XLA:CPU leaves
    # cores idle on these small heads; measured 1.5-2.3x on 2 cores); on accelerators up to 8
    # cells per device are stacked into one call instead (train_cells; with several devices
    # the job axis is sharded over them).
    rows_cap = max(max(len(c.fit), len(c.val)) for c in cells)
    shared_rows_bytes = 256 << 20  # above this, padded fit + validation copies per cell cost too much

    def rows_for(enc_name, layer):
        """The shared capacity, unless padding every cell to it would hold too much memory
        (large corpora, the all-layer input of layer="weighted"): then per-cell capacities."""
        shape = emb[enc_name][next(iter(datasets))].x.shape[1:]  # [L, D]
        row_bytes = 4 * (int(np.prod(shape)) if layer == "weighted" else shape[-1])
        return rows_cap if 2 * rows_cap * row_bytes <= shared_rows_bytes else None
    on_cpu = jax.default_backend() == "cpu"
    max_jobs, mesh = (1, None) if on_cpu else (8, None)
    if not on_cpu and jax.process_count() == 1 and jax.local_device_count() > 1:
        # several accelerators: each trains whole cells (all seeds), the job axis sharded
        from jax.sharding import Mesh

        from jaxser.train import JOB_AXIS
        mesh = Mesh(np.array(jax.local_devices()), (JOB_AXIS,))
        max_jobs = 8 * jax.local_device_count()
    workers = cfg.workers or (min(4, os.cpu_count() or 1) if on_cpu else 1)
    per = 1 if on_cpu else 2 * max_jobs
    by_model = {(e, h, layer): [list(groups)[i:i + per] for i in range(0, len(groups), per)]
                for e in cfg.encoders for h in cfg.heads for layer in cfg.layers}
    # round-robin over models: concurrent workers start on different programs (compiled in
    # parallel) instead of compiling the same one twice; the unit list is the same on every
    # host (what exists on disk is checked only within a host's own share)
    units = [(m, batches[i]) for i in range(max((len(b) for b in by_model.values()), default=0))
             for m, batches in by_model.items() if i < len(batches)]
    fingerprint = cfg.fingerprint()

    def identity(enc_name, head_kind, layer, key) -> dict[str, str]:
        return {"encoder": enc_name, "head": head_kind, "layer": str(layer), "train_key": key}

    def missing(m, key) -> bool:
        """True unless a verified predictions file of this model exists (a damaged one is set
        aside and the model retrained; another study's stops the run)."""
        path = pred_file(*m, key)
        if not path.exists():
            return True
        why = verify_predictions(path, fingerprint=fingerprint, identity=identity(*m, key), seeds=cfg.seeds,
                                 cells={c.name: (ids_all[c.test], len(c.labels)) for c in groups[key]})
        if why is None:
            return False
        log(f"{path}: {why}; moved to {_set_aside(path).name}, retraining this model")
        return True

    expected_files = {pred_file(*m, k) for m, keys in by_model.items() for batch in keys for k in batch}
    if lead and pred_dir.exists():  # files no model of this study writes: another study's, or damaged
        import pyarrow.parquet as pq

        for path in sorted(set(pred_dir.glob("*.parquet")) - expected_files):
            try:
                fp = (pq.read_schema(path).metadata or {}).get(b"jaxser.study_fingerprint", b"").decode()
            except Exception:
                fp = ""
            if fp and fp != fingerprint:
                raise ForeignPredictions(f"{path}: predictions of another study (fingerprint {fp}, this study "
                                         f"{fingerprint}); choose another --out, or delete {out} to start this "
                                         "study afresh")
            log(f"{path}: not a model of this study; moved to {_set_aside(path).name}")
    units = [(m, [k for k in keys if missing(m, k)]) for m, keys in units[me::n_proc]]
    units = [u for u in units if u[1]]
    if n_proc > 1:
        log(f"process {me} of {n_proc}: {sum(len(k) for _, k in units)} models to train here")

    def train_unit(unit):
        (enc_name, head_kind, layer), keys = unit
        head_cfg = HeadConfig(kind=head_kind, **cfg.head.get(head_kind, {}))
        train_cfg = TrainConfig(**{**cfg.train, "layer": _layer_index(layer)})
        jobs = []
        for key in keys:
            cs = groups[key]
            lab_index = {lab: i for i, lab in enumerate(cs[0].labels)}
            y_of = lambda rows: np.array([lab_index[v] for v in emotion_all[rows]], np.int32)  # noqa: E731
            jobs.append(CellData(rows_x(enc_name, cs[0].fit), y_of(cs[0].fit), rows_x(enc_name, cs[0].val),
                                 y_of(cs[0].val), {c.name: rows_x(enc_name, c.test) for c in cs},
                                 n_classes=len(cs[0].labels)))
        return train_cells(jobs, head=head_cfg, config=train_cfg, seeds=cfg.seeds, max_jobs=max_jobs,
                           rows=rows_for(enc_name, layer),
                           mesh=mesh)

    def write_predictions(unit, results):
        """One parquet file per model: a row per (cell, seed, test utterance). Built as one
        Arrow table from whole columns (the probabilities a fixed-size list column), because it
        runs on the main thread while the training threads wait for the interpreter."""
        import pyarrow as pa

        (enc_name, head_kind, layer), keys = unit
        n_seeds = len(cfg.seeds)
        for key, res in zip(keys, results):
            cols: dict[str, list] = {}
            for c in groups[key]:
                probs = np.asarray(res.probs[c.name], np.float32)  # [S, N, C]
                n = probs.shape[1]
                pred = probs.argmax(-1).astype(np.int32).ravel()   # seed-major, like the rows
                labels = np.asarray(c.labels)
                part = {
                    "encoder": [enc_name] * (n_seeds * n), "head": [head_kind] * (n_seeds * n),
                    "layer": [layer] * (n_seeds * n), "cell": [c.name] * (n_seeds * n),
                    "setting": [c.setting] * (n_seeds * n), "source": [c.source] * (n_seeds * n),
                    "target": [c.target] * (n_seeds * n), "fold": np.full(n_seeds * n, c.fold, np.int64),
                    "seed": np.repeat(np.asarray(cfg.seeds, np.int64), n), "train_key": [key] * (n_seeds * n),
                    "id": np.tile(ids_all[c.test], n_seeds), "true_label": np.tile(emotion_all[c.test], n_seeds),
                    "true": np.tile(np.array([c.labels.index(v) for v in emotion_all[c.test]], np.int32), n_seeds),
                    "pred": pred, "pred_label": labels[pred],
                    "probs": probs.reshape(-1, probs.shape[-1]),
                    "val_uar": np.repeat(np.asarray(res.val_uar, np.float64), n),
                    "best_epoch": np.repeat(np.asarray(res.best_epoch, np.int64), n),
                }
                for k, v in part.items():
                    cols.setdefault(k, []).append(v)
            arrays = {}
            for k, parts in cols.items():
                if k == "probs":
                    flat = np.concatenate(parts)
                    offsets = np.arange(0, flat.size + 1, flat.shape[1], dtype=np.int32)
                    arrays[k] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat.ravel()))
                elif isinstance(parts[0], np.ndarray) and parts[0].dtype != object and parts[0].dtype.kind != "U":
                    arrays[k] = pa.array(np.concatenate(parts))
                else:
                    arrays[k] = pa.array([str(x) for part in parts for x in part], pa.large_string())
            table = pa.table(arrays, schema=_pred_schema())
            write_predictions_file(pred_file(enc_name, head_kind, layer, key), table,
                                   {"study_fingerprint": fingerprint, **identity(enc_name, head_kind, layer, key)})

    bar = tqdm(total=sum(len(k) for _, k in units), desc="train", unit="model")

    def finished(unit, results):
        write_predictions(unit, results)
        bar.update(len(unit[1]))

    run_units(units, train_unit, finished, workers)
    bar.close()
    timings["train_s"] = time.perf_counter() - t0
    if n_proc > 1:  # every host's models are written before process 0 reads them all
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("jaxser cross_corpus: models trained")
        if not lead:
            log(f"process {me}: its share is trained; process 0 writes the report")
            return out

    # 5. results, report, figures
    t0 = time.perf_counter()
    write_report(out, bootstrap=cfg.bootstrap)
    timings["report_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - t_start
    manifest["timings"] = timings
    atomic_write_json(out / "manifest.json", manifest)
    return out


def _main(argv=None) -> int:
    from jaxser.audio import AudioError

    cfg = parse_args(argv)
    try:
        out = run(cfg)
    except AudioError as e:
        if cfg.skip_errors:
            raise
        raise AudioError(e.path, f"{e.reason}; --skip-errors skips such files and lists them in manifest.json") from e
    print(f"\nreport: {out / 'report.md'}\nresults: {out / 'results.csv'}\n"
          f"check it: python -m pytest spec --run-dir {out}")
    return 0


def main(argv=None) -> int:
    """The command line: a problem the user can fix (config, corpus, audio, encoder, cache, run
    directory) is one line `error: ...` on stderr and exit status 2 (JAXSER_DEBUG=1: traceback)."""
    from jaxser.errors import report

    return report(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
