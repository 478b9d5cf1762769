"""What a study is: `StudyConfig`, read from TOML, overridden on the command line, validated,
and fingerprinted (the fingerprint is the resume key of a run directory).

`--config` takes a path or the name of a shipped config (`jaxser/study/configs/*.toml`;
`default` is the embedded synthetic study).
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import tomllib
from pathlib import Path

from jaxser.errors import UserError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "default.toml"
DEFAULT_SPLIT = "speaker"
#: layer names that train one model per hidden state ('all' reports every layer, 'best' the one
#: chosen per training set on source-validation UAR)
LAYER_SWEEPS = ("all", "best")


class ConfigError(UserError, ValueError):
    """A configuration that cannot be run (unknown keys, mismatched resume, bad values)."""


@dataclasses.dataclass
class StudyConfig:
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
    split: str = DEFAULT_SPLIT   # same-corpus folds disjoint in "speaker" or in "speaker+text"
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
        # the default split is left out so that studies defined before the option keep their
        # fingerprint (and their run directories resume)
        if d["split"] == DEFAULT_SPLIT:
            d.pop("split")
        return d

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.study(), sort_keys=True).encode()).hexdigest()[:12]


_RUN_KEYS = {"out_dir", "seeds", "settings", "labels", "k_folds", "bootstrap", "split"}
_MODEL_KEYS = {"encoders", "heads", "layers"}
_TOP_KEYS = {"run", "corpora", "models", "head", "train", "corpus_options"}


def shipped_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))


def config_path(name_or_path: str | os.PathLike) -> Path:
    """A config file: an existing path, else a shipped config by name (`default`, `default.toml`)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = CONFIG_DIR / (path.name if path.suffix == ".toml" else f"{path.name}.toml")
    if str(name_or_path) in (path.name, path.stem) and shipped.is_file():
        return shipped
    raise ConfigError(f"config file {name_or_path} not found (a path, or a shipped name: "
                      f"{', '.join(shipped_configs())})")


def load_config(name_or_path: str | os.PathLike = "default") -> StudyConfig:
    path = config_path(name_or_path)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: unreadable ({type(e).__name__}: {e})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown sections {sorted(unknown)}; known: {sorted(_TOP_KEYS)}")
    run, models = raw.get("run", {}), raw.get("models", {})
    if set(run) - _RUN_KEYS:
        raise ConfigError(f"{path}: unknown [run] keys {sorted(set(run) - _RUN_KEYS)}; known: {sorted(_RUN_KEYS)}")
    if set(models) - _MODEL_KEYS:
        raise ConfigError(f"{path}: unknown [models] keys {sorted(set(models) - _MODEL_KEYS)}")
    labels = run.get("labels", "shared")
    return StudyConfig(
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
        split=str(run.get("split", DEFAULT_SPLIT)),
    )


def _split_list(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


def argument_parser(prog: str = "jaxser run") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Run a cross-corpus SER benchmark "
                                "(default: the embedded synthetic study).")
    p.add_argument("--config", default="default",
                   help=f"study config: a TOML path or a shipped name ({', '.join(shipped_configs())}); "
                        "default: %(default)s")
    p.add_argument("--corpus", action="append", help="NAME=ROOT (repeatable; replaces the config's corpora)")
    p.add_argument("--encoder", action="append", help="registry name, Hub id, TF-Hub handle or folder (repeatable)")
    p.add_argument("--head", action="append", choices=["fcn", "cnn", "linear"], help="repeatable")
    p.add_argument("--layer", action="append", help="'last', an index, 'weighted' (a learned mix), 'all' (one model "
                   "per hidden state) or 'best' (per training set, the layer with the best source-validation UAR; "
                   "trains every layer) (repeatable)")
    p.add_argument("--seeds", help="comma-separated, e.g. 0,1,2")
    p.add_argument("--labels", help="comma-separated fixed label set, or 'shared'")
    p.add_argument("--settings", help="comma-separated subset of same,cross,loco")
    p.add_argument("--split", help="same-corpus folds disjoint in 'speaker' (default) or 'speaker+text' "
                   "(speaker and sentence)")
    p.add_argument("--k-folds", type=int)
    p.add_argument("--bootstrap", type=int, help="bootstrap resamples for the 95%% intervals")
    p.add_argument("--out", help="run directory")
    p.add_argument("--cache", help="embedding cache folder (default $JAXSER_CACHE or ~/.cache/jaxser)")
    p.add_argument("--skip-errors", action="store_true", help="skip and list unreadable audio instead of failing")
    p.add_argument("--workers", type=int, help="models trained concurrently (default: one per CPU core up to 4 on "
                   "CPU, 1 on an accelerator); results do not depend on it")
    return p


def parse_args(argv=None, *, prog: str = "jaxser run") -> StudyConfig:
    """The config named by `--config`, with the command line's overrides, validated."""
    a = argument_parser(prog).parse_args(argv)
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
    if a.split:
        cfg.split = a.split
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


def validate(cfg: StudyConfig) -> None:
    from jaxser.corpora.schema import CANONICAL_EMOTIONS
    from jaxser.protocol import SETTINGS, SPLITS

    if len(cfg.corpora) < 2 and set(cfg.settings) - {"same"}:
        raise ConfigError(f"cross-corpus settings need >= 2 corpora, got {list(cfg.corpora)}")
    if not cfg.encoders:
        raise ConfigError("no encoders configured")
    if not cfg.seeds or len(set(cfg.seeds)) != len(cfg.seeds):
        raise ConfigError(f"seeds must be distinct and non-empty, got {cfg.seeds}")
    if set(cfg.settings) - set(SETTINGS):
        raise ConfigError(f"unknown settings {sorted(set(cfg.settings) - set(SETTINGS))}; known: {SETTINGS}")
    if cfg.split not in SPLITS:
        raise ConfigError(f"split {cfg.split!r} ([run] split / --split): use one of {', '.join(SPLITS)}")
    if cfg.labels and set(cfg.labels) - set(CANONICAL_EMOTIONS):
        raise ConfigError(f"labels {sorted(set(cfg.labels) - set(CANONICAL_EMOTIONS))} are not canonical "
                          f"({', '.join(CANONICAL_EMOTIONS)})")
    for layer in cfg.layers:
        if layer not in ("last", "weighted", *LAYER_SWEEPS):
            try:
                int(layer)
            except ValueError:
                raise ConfigError(f"layer {layer!r} ([models] layers / --layer): use 'last', 'weighted', 'all', "
                                  "'best' or an integer") from None


def layer_index(layer: str) -> int | str:
    """A config layer name as the trainer takes it: -1 for 'last', 'weighted', or the index. The
    sweeps ('all', 'best') give -1 too: `jaxser.train.train_layers` sets every layer itself."""
    return -1 if layer in ("last", *LAYER_SWEEPS) else "weighted" if layer == "weighted" else int(layer)
