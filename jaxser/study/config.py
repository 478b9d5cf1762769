"""What a study is: `StudyConfig`, read from TOML, overridden on the command line, validated,
and fingerprinted (the fingerprint is the resume key of a run directory).

`--config` takes a path or the name of a shipped config (`jaxser/study/configs/*.toml`;
`default` is the embedded synthetic study). Without `--out`, a study that the command line
changed from its config file gets its own run directory (`runs/<config>-<fingerprint>`), so
trying another corpus or seed list never collides with the config's own run.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import tomllib
import types
import typing
from pathlib import Path

from jaxser.errors import UserError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "default.toml"
DEFAULT_SPLIT = "speaker"
#: same-corpus splits a study may ask for: the protocol's own, or EmoBox's published partitions
#: (`jaxser.emobox`; needs `emobox = DIR`, the EmoBox checkout)
STUDY_SPLITS = ("speaker", "speaker+text", "emobox")
#: layer names that train one model per hidden state ('all' reports every layer, 'best' the one
#: chosen per training set on source-validation UAR)
LAYER_SWEEPS = ("all", "best")
#: which trained models a run saves by default (jaxser predict): the ones trained on whole corpora
DEFAULT_SAVE_MODELS = ("cross", "loco")
#: what a study learns: "categorical" (emotion classes) or "dimensional" (arousal, valence,
#: dominance regression scored by CCC)
TASKS = ("categorical", "dimensional")
DEFAULT_TASK = "categorical"


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
    family: str = "table"        # Holm's family in the report: "table" (setting, head, layer) or "report"
    cache: str | None = None
    skip_errors: bool = False
    workers: int | None = None   # models trained concurrently; None: one per core (up to 4) on CPU, 1 elsewhere
    save_models: list[str] = dataclasses.field(default_factory=lambda: list(DEFAULT_SAVE_MODELS))  # settings
    task: str = DEFAULT_TASK
    dimensions: list[str] = dataclasses.field(default_factory=lambda: ["arousal", "valence", "dominance"])
    wait: bool = False           # wait for another runner on the same run directory instead of stopping
    emobox: str | None = None    # split "emobox": the EmoBox checkout (or its data/ folder)
    emobox_mismatch: str = "error"  # EmoBox's lists vs the corpora on disk: "error" stops, "warn" goes on
    dry_run: bool = False        # stop after writing metadata, cells and splits

    def study(self) -> dict:
        """What defines the results (not where they are written): the resume key."""
        d = dataclasses.asdict(self)
        # skip_errors is left out: it decides whether a run with unusable audio stops or goes
        # on, not what a finished run contains (the skipped files are listed in manifest.json),
        # so the suggested re-run with --skip-errors resumes the same study; which models are
        # saved does not change any result either
        # where the EmoBox checkout lives and what a mismatch does are not results either (the
        # checkout's commit and every disagreement are recorded in manifest.json)
        for k in ("out_dir", "cache", "bootstrap", "workers", "skip_errors", "save_models", "wait", "emobox",
                  "emobox_mismatch", "dry_run"):
            d.pop(k)
        # the default split is left out so that studies defined before the option keep their
        # fingerprint (and their run directories resume)
        if d["split"] == DEFAULT_SPLIT:
            d.pop("split")
        d.pop("family")  # which Holm family the report uses changes no result
        # likewise the categorical task, whose studies keep their fingerprints; its dimensions
        # are not used
        if d["task"] == DEFAULT_TASK:
            d.pop("task")
            d.pop("dimensions")
        else:
            d.pop("labels")  # classes play no part in a dimensional study
        return d

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.study(), sort_keys=True).encode()).hexdigest()[:12]


_RUN_KEYS = {"out_dir", "seeds", "settings", "labels", "k_folds", "bootstrap", "split", "save_models", "family",
             "task", "dimensions", "emobox", "emobox_mismatch"}
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


def _int(value, what: str) -> int:
    """A whole number from TOML or the command line, or a ConfigError naming the setting."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f"{what} = {value!r}: expected a whole number")
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{what} = {value!r}: expected a whole number") from None


def _ints(values, what: str) -> list[int]:
    if not isinstance(values, (list, tuple)):
        raise ConfigError(f"{what} = {values!r}: expected a list of whole numbers, e.g. [0, 1, 2]")
    return [_int(v, what) for v in values]


def _strings(values, what: str) -> list[str]:
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, (str, int)) for v in values):
        raise ConfigError(f"{what} = {values!r}: expected a list of names, e.g. [\"a\", \"b\"]")
    return [str(v) for v in values]


def _table(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{what}: expected a table ([{what}] with key = value lines), got {value!r}")
    return value


def save_models_setting(value, what: str = "--save-models") -> list[str]:
    """Which settings' models a run saves: "all", "none", or settings (a list or comma-separated)."""
    from jaxser.protocol import SETTINGS

    if isinstance(value, str):
        value = {"all": list(SETTINGS), "none": []}.get(value.strip(), _split_list(value))
    got = _strings(value, what)
    if set(got) - set(SETTINGS):
        raise ConfigError(f"{what} {','.join(got)}: use all, none, or settings among {', '.join(SETTINGS)}")
    return [s for s in SETTINGS if s in got]


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
    run, models = _table(raw.get("run", {}), f"{path}: run"), _table(raw.get("models", {}), f"{path}: models")
    if set(run) - _RUN_KEYS:
        raise ConfigError(f"{path}: unknown [run] keys {sorted(set(run) - _RUN_KEYS)}; known: {sorted(_RUN_KEYS)}")
    if set(models) - _MODEL_KEYS:
        raise ConfigError(f"{path}: unknown [models] keys {sorted(set(models) - _MODEL_KEYS)}; "
                          f"known: {sorted(_MODEL_KEYS)}")
    from jaxser.heads import HEAD_KINDS, HeadConfig
    from jaxser.train import TrainConfig

    train = _table(raw.get("train", {}), f"{path}: train")
    if "layer" in train:
        raise ConfigError(f"{path}: [train] layer: the layer is chosen by [models] layers (or --layer); remove it "
                          "from [train]")
    check_fields(path, "train", train, TrainConfig, skip=("layer",))
    for kind, options in _table(raw.get("head", {}), f"{path}: head").items():
        if kind not in HEAD_KINDS:
            raise ConfigError(f"{path}: [head.{kind}]: not a head kind; use [head.<kind>] with a kind among "
                              f"{', '.join(HEAD_KINDS)}")
        check_fields(path, f"head.{kind}", _table(options, f"{path}: head.{kind}"), HeadConfig, skip=("kind",))
    labels = run.get("labels", "shared")
    return StudyConfig(
        out_dir=str(run.get("out_dir", "runs/" + path.stem)),
        corpora={k: str(v) for k, v in _table(raw.get("corpora", {}), f"{path}: corpora").items()},
        encoders=_strings(models.get("encoders", []), f"{path}: [models] encoders"),
        heads=_strings(models.get("heads", ["fcn", "cnn"]), f"{path}: [models] heads"),
        layers=_strings(models.get("layers", ["last"]), f"{path}: [models] layers"),
        seeds=_ints(run.get("seeds", [0, 1, 2, 3, 4]), f"{path}: [run] seeds"),
        settings=_strings(run.get("settings", ["same", "cross", "loco"]), f"{path}: [run] settings"),
        labels=None if labels in ("shared", None, []) else _strings(labels, f"{path}: [run] labels"),
        k_folds=_int(run.get("k_folds", 5), f"{path}: [run] k_folds"),
        bootstrap=_int(run.get("bootstrap", 1000), f"{path}: [run] bootstrap"),
        head=_table(raw.get("head", {}), f"{path}: head"),
        train=_table(raw.get("train", {}), f"{path}: train"),
        corpus_options=_table(raw.get("corpus_options", {}), f"{path}: corpus_options"),
        split=str(run.get("split", DEFAULT_SPLIT)),
        save_models=save_models_setting(run.get("save_models", list(DEFAULT_SAVE_MODELS)),
                                        f"{path}: [run] save_models"),
        task=str(run.get("task", DEFAULT_TASK)),
        dimensions=_strings(run.get("dimensions", ["arousal", "valence", "dominance"]), f"{path}: [run] dimensions"),
        family=str(run.get("family", "table")),
        emobox=None if run.get("emobox") is None else str(run["emobox"]),
        emobox_mismatch=str(run.get("emobox_mismatch", "error")),
    )


def check_fields(path: Path, section: str, table: dict, cls, skip: tuple[str, ...] = ()) -> None:
    """A config table's keys and value types against the dataclass it configures: an unknown key
    or a value of the wrong type (`[train] max_epochs = "ten"`) names the file, the section, the
    key, the type expected and the value found."""
    hints = {k: v for k, v in typing.get_type_hints(cls).items() if k not in skip}
    unknown = sorted(set(table) - set(hints))
    if unknown:
        raise ConfigError(f"{path}: unknown [{section}] keys {unknown}; known: {', '.join(hints)} (docs/training.md)")
    for key, value in table.items():
        if not _has_type(value, hints[key]):
            raise ConfigError(f"{path}: [{section}] {key} = {json.dumps(value, default=str)}: expected "
                              f"{_type_name(hints[key])}, found {_type_name(type(value))}")


def _has_type(value, hint) -> bool:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_has_type(value, a) for a in typing.get_args(hint))
    if typing.get_origin(hint) is tuple:  # tuple[X, ...]: a TOML list of X
        return isinstance(value, (list, tuple)) and all(_has_type(v, typing.get_args(hint)[0]) for v in value)
    if hint is float:  # a whole number is a number too
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint in (int, str, bool, type(None)):
        return type(value) is hint
    return True


def _type_name(hint) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) is tuple or hint in (list, tuple):
        args = typing.get_args(hint)
        return f"a list of {_type_name(args[0]).removeprefix('a ')}s" if args else "a list"
    return {int: "a whole number", float: "a number", str: "a string", bool: "true or false",
            dict: "a table"}.get(hint, getattr(hint, "__name__", str(hint)))


def _split_list(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


def argument_parser(prog: str = "jaxser run") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        allow_abbrev=False, prog=prog,
        description="Run (or resume) a cross-corpus SER benchmark: corpora -> embeddings -> "
        "cells -> train -> report. With no options: the embedded synthetic study.",
        epilog="Options override the config file. A run directory holds one study: re-running the same "
        "command resumes it, and a changed study is refused there (give it another --out).")
    p.add_argument("--config", default="default",
                   help=f"study config: a TOML path or a shipped name ({', '.join(shipped_configs())}); "
                        "default: %(default)s")
    p.add_argument("--corpus", action="append", metavar="NAME=ROOT",
                   help="a corpus and its folder (repeatable; replaces the config's corpora); synthetic "
                        "corpora need no root (NAME=); a manifest corpus: NAME=path/manifest.csv")
    p.add_argument("--encoder", action="append", metavar="NAME",
                   help="registry name, Hub id, TF-Hub handle or model folder (repeatable; replaces the config's)")
    p.add_argument("--head", action="append", choices=["fcn", "cnn", "linear"],
                   help="downstream head kind (repeatable; replaces the config's)")
    p.add_argument("--layer", action="append", metavar="LAYER",
                   help="encoder layer: 'last', an index (negative counts from the top), 'weighted' "
                        "(a learned mix of all layers), 'all' (one model per hidden state) or 'best' (per "
                        "training set, the layer with the best source-validation UAR); repeatable")
    p.add_argument("--seeds", metavar="LIST", help="training seeds, comma-separated, e.g. 0,1,2")
    p.add_argument("--labels", metavar="LIST",
                   help="comma-separated fixed label set (canonical emotions), or 'shared' (the classes "
                        "source and target share)")
    p.add_argument("--settings", metavar="LIST", help="comma-separated subset of same,cross,loco")
    p.add_argument("--split", metavar="SPLIT",
                   help="same-corpus folds disjoint in 'speaker' (default) or 'speaker+text' (speaker and sentence), "
                        "or 'emobox': EmoBox's published folds and cross-corpus track (needs --emobox)")
    p.add_argument("--emobox", metavar="DIR", help="the EmoBox checkout (or its data/ folder) for --split emobox")
    p.add_argument("--emobox-mismatch", choices=["error", "warn"],
                   help="when EmoBox's lists and the corpora on disk disagree: stop (error, default) or report "
                        "and run on the utterances that match (warn)")
    p.add_argument("--dry-run", action="store_true",
                   help="load the corpora, build the cells, write metadata.parquet, cells.json and splits.parquet "
                        "to the run directory, and stop before extracting anything")
    p.add_argument("--task", choices=TASKS,
                   help="categorical (emotion classes, scored by UAR; default) or dimensional (arousal/valence/"
                        "dominance regression on each corpus' declared scale mapped to [0, 1], scored by CCC)")
    p.add_argument("--dimensions", metavar="LIST",
                   help="dimensional task: comma-separated subset of arousal,valence,dominance (default all)")
    p.add_argument("--k-folds", type=int, metavar="K", help="same-corpus folds per corpus (default 5)")
    p.add_argument("--bootstrap", type=int, metavar="N", help="bootstrap resamples for the 95%% intervals")
    p.add_argument("--out", metavar="DIR",
                   help="run directory (default: the config's out_dir; runs/<config>-<fingerprint> when the "
                        "options above change the study)")
    p.add_argument("--cache", metavar="DIR", help="embedding cache folder (default $JAXSER_CACHE or ~/.cache/jaxser)")
    p.add_argument("--skip-errors", action="store_true", help="skip and list unreadable audio instead of failing")
    p.add_argument("--workers", type=int, metavar="N",
                   help="models trained concurrently (default: one per CPU core up to 4 on CPU, 1 on an "
                        "accelerator); results do not depend on it")
    p.add_argument("--save-models", metavar="WHICH",
                   help="trained models saved under RUN/models for jaxser predict: 'all', 'none', or settings "
                        f"(comma-separated; default {','.join(DEFAULT_SAVE_MODELS)})")
    p.add_argument("--wait", action="store_true",
                   help="when another run holds the run directory, wait for it to finish (then resume what it "
                        "left) instead of stopping")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error (also JAXSER_DEBUG=1)")
    return p


def parse_args(argv=None, *, prog: str = "jaxser run") -> StudyConfig:
    """The config named by `--config`, with the command line's overrides, validated."""
    a = argument_parser(prog).parse_args(argv)
    if a.debug:  # read by jaxser.errors.report when an error reaches it
        os.environ["JAXSER_DEBUG"] = "1"
    cfg = load_config(a.config)
    configured = cfg.fingerprint()
    if a.corpus:
        cfg.corpora = dict(c.partition("=")[::2] for c in a.corpus)
    if a.encoder:
        cfg.encoders = a.encoder
    if a.head:
        cfg.heads = a.head
    if a.layer:
        cfg.layers = a.layer
    if a.seeds:
        cfg.seeds = [_int(s, "--seeds") for s in _split_list(a.seeds)]
    if a.labels:
        cfg.labels = None if a.labels == "shared" else _split_list(a.labels)
    if a.settings:
        cfg.settings = _split_list(a.settings)
    if a.split:
        cfg.split = a.split
    if a.emobox:
        cfg.emobox = a.emobox
    if a.emobox_mismatch:
        cfg.emobox_mismatch = a.emobox_mismatch
    cfg.dry_run = a.dry_run
    if a.task:
        cfg.task = a.task
    if a.dimensions:
        cfg.dimensions = _split_list(a.dimensions)
    if a.k_folds:
        cfg.k_folds = a.k_folds
    if a.bootstrap is not None:
        cfg.bootstrap = a.bootstrap
    if a.out:
        cfg.out_dir = a.out
    elif cfg.fingerprint() != configured:  # another study than the config's: its own run directory
        cfg.out_dir = f"{cfg.out_dir.rstrip('/')}-{cfg.fingerprint()}"
    cfg.cache = a.cache
    cfg.skip_errors = a.skip_errors
    cfg.wait = a.wait
    if a.workers is not None:
        if a.workers < 1:
            raise ConfigError(f"--workers {a.workers}: expected >= 1")
        cfg.workers = a.workers
    if a.save_models is not None:
        cfg.save_models = save_models_setting(a.save_models)
    validate(cfg)
    return cfg


def validate(cfg: StudyConfig) -> None:
    from jaxser.corpora.schema import EMOTIONS
    from jaxser.heads import HEAD_KINDS
    from jaxser.protocol import SETTINGS

    if len(cfg.corpora) < 2 and set(cfg.settings) - {"same"}:
        raise ConfigError(f"cross-corpus settings need >= 2 corpora, got {list(cfg.corpora)}")
    if not cfg.corpora:
        raise ConfigError("no corpora configured: add [corpora] NAME = \"ROOT\" lines or --corpus NAME=ROOT")
    if not cfg.encoders:
        raise ConfigError("no encoders configured: add [models] encoders = [...] or --encoder NAME")
    if not cfg.seeds or len(set(cfg.seeds)) != len(cfg.seeds):
        raise ConfigError(f"seeds must be distinct and non-empty, got {cfg.seeds}")
    if set(cfg.settings) - set(SETTINGS):
        raise ConfigError(f"unknown settings {sorted(set(cfg.settings) - set(SETTINGS))}; known: {SETTINGS}")
    if cfg.split not in STUDY_SPLITS:
        raise ConfigError(f"split {cfg.split!r} ([run] split / --split): use one of {', '.join(STUDY_SPLITS)}")
    if cfg.split == "emobox" and not cfg.emobox:
        raise ConfigError('split "emobox" needs the EmoBox checkout: [run] emobox = "DIR" or --emobox DIR '
                          "(git clone https://github.com/emo-box/EmoBox)")
    if cfg.split == "emobox" and cfg.task == "dimensional":
        raise ConfigError('split "emobox": EmoBox partitions categorical labels; its folds are not defined for '
                          "the dimensional task (use split speaker)")
    if cfg.split == "emobox" and "loco" in cfg.settings:
        raise ConfigError('split "emobox": EmoBox defines same-corpus folds and a cross-corpus track, no '
                          "leave-one-corpus-out; use settings same and/or cross")
    if cfg.emobox_mismatch not in ("error", "warn"):
        raise ConfigError(f"emobox_mismatch {cfg.emobox_mismatch!r} ([run] emobox_mismatch / --emobox-mismatch): "
                          "use error or warn")
    if cfg.labels and set(cfg.labels) - set(EMOTIONS):
        raise ConfigError(f"labels {sorted(set(cfg.labels) - set(EMOTIONS))} are not known labels "
                          f"({', '.join(EMOTIONS)})")
    if cfg.task not in TASKS:
        raise ConfigError(f"task {cfg.task!r} ([run] task / --task): use one of {', '.join(TASKS)}")
    if cfg.task == "dimensional":
        from jaxser.dimensional import DIMENSIONS

        dims = cfg.dimensions
        if not dims or set(dims) - set(DIMENSIONS) or len(set(dims)) != len(dims):
            raise ConfigError(f"dimensions {cfg.dimensions} ([run] dimensions / --dimensions): use distinct names "
                              f"among {', '.join(DIMENSIONS)}")
        cfg.dimensions = [d for d in DIMENSIONS if d in cfg.dimensions]  # one order: report and fingerprint
        sweeps = [layer for layer in cfg.layers if layer in LAYER_SWEEPS]
        if sweeps:
            raise ConfigError(f"layers {sweeps} ([models] layers / --layer): the dimensional task trains one layer "
                              "per model ('last', an index or 'weighted'); layer sweeps are categorical only")
        if cfg.train.get("class_weights"):
            raise ConfigError("[train] class_weights: the dimensional task has no classes; remove it")
    elif cfg.train.get("loss") is not None:
        raise ConfigError(f"[train] loss = {cfg.train['loss']!r}: the categorical task trains on cross-entropy; "
                          "loss chooses the dimensional task's loss (task = \"dimensional\")")
    if cfg.k_folds < 2:
        raise ConfigError(f"k_folds {cfg.k_folds} ([run] k_folds / --k-folds): use 2 or more")
    if cfg.family not in ("table", "report"):
        raise ConfigError(f"family {cfg.family!r} ([run] family): use 'table' (Holm per setting, head and layer) "
                          "or 'report' (one family for the whole report)")
    if cfg.bootstrap < 0:
        raise ConfigError(f"bootstrap {cfg.bootstrap} ([run] bootstrap / --bootstrap): use 0 or more")
    for layer in cfg.layers:
        if layer not in ("last", "weighted", *LAYER_SWEEPS):
            try:
                int(layer)
            except ValueError:
                raise ConfigError(f"layer {layer!r} ([models] layers / --layer): use 'last', 'weighted', 'all', "
                                  "'best' or an integer") from None
    if set(cfg.heads) - set(HEAD_KINDS) or not cfg.heads:
        raise ConfigError(f"heads {cfg.heads} ([models] heads / --head): use some of {', '.join(HEAD_KINDS)}")
    head_config(cfg, *cfg.heads)
    train_config(cfg, "last")


def head_config(cfg: StudyConfig, *kinds: str):
    """The HeadConfig of the first of `kinds` from the config's [head.<kind>] table; a bad key or
    value is a ConfigError naming the table (checked for every kind given)."""
    from jaxser.heads import HEAD_KINDS, HeadConfig

    unknown = set(cfg.head) - set(HEAD_KINDS)
    if unknown:
        raise ConfigError(f"[head.{sorted(unknown)[0]}]: not a head kind; use [head.<kind>] with a kind among "
                          f"{', '.join(HEAD_KINDS)}")
    out = []
    for kind in kinds:
        options = _table(cfg.head.get(kind, {}), f"head.{kind}")
        try:
            out.append(HeadConfig(kind=kind, **options))
        except (TypeError, ValueError) as e:
            fields = [f.name for f in dataclasses.fields(HeadConfig) if f.name != "kind"]
            raise ConfigError(f"[head.{kind}] {options}: {e}; keys: {', '.join(fields)} "
                              "(docs/training.md)") from None
    return out[0]


def train_config(cfg: StudyConfig, layer: str):
    """The TrainConfig of the config's [train] table for one layer choice; a bad key or value
    is a ConfigError naming [train]."""
    from jaxser.train import TrainConfig

    if "layer" in cfg.train:
        raise ConfigError("[train] layer: the layer is chosen by [models] layers (or --layer); remove it from [train]")
    try:
        return TrainConfig(**{**cfg.train, "layer": layer_index(layer)})
    except (TypeError, ValueError) as e:
        fields = [f.name for f in dataclasses.fields(TrainConfig) if f.name != "layer"]
        raise ConfigError(f"[train] {cfg.train}: {e}; keys: {', '.join(fields)} (docs/training.md)") from None


def layer_index(layer: str) -> int | str:
    """A config layer name as the trainer takes it: -1 for 'last', 'weighted', or the index. The
    sweeps ('all', 'best') give -1 too: `jaxser.layers.train_layers` sets every layer itself."""
    return -1 if layer in ("last", *LAYER_SWEEPS) else "weighted" if layer == "weighted" else int(layer)


def study_diff(old: dict, new: dict) -> list[str]:
    """The settings two study definitions (`StudyConfig.study()`) differ in, one
    `key: old -> new` line each (nested tables as dotted keys, e.g. `train.max_epochs: 30 -> 3`)."""
    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            if isinstance(v, dict) and v:
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out

    a, b = flat(old), flat(new)
    if "split" in a or "split" in b:  # the default split is left out of study(): say it
        a.setdefault("split", DEFAULT_SPLIT)
        b.setdefault("split", DEFAULT_SPLIT)
    missing = "(unset)"
    return [f"{k}: {json.dumps(a.get(k, missing))} -> {json.dumps(b.get(k, missing))}"
            for k in sorted(set(a) | set(b)) if a.get(k, missing) != b.get(k, missing)]
