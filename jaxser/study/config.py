"""What a study is: `StudyConfig`, read from TOML, overridden on the command line, validated,
and fingerprinted (the fingerprint is the resume key of a run directory).

Long on purpose: the schema, its TOML and command-line readers and its validation share one
set of field declarations, which is what keeps a new option to one edit.

`--config` takes a path or the name of a shipped config (`jaxser/study/configs/*.toml`;
`default` is the embedded synthetic study); `--set TABLE.KEY=VALUE` overrides any key of it.
Keys, types and defaults come from the dataclasses (`StudyConfig`, `HeadConfig`,
`TrainConfig`), so a new option is one field (docs/configuration.md). Without `--out`, a study
that the command line changed from its config file gets its own run directory
(`runs/<config>-<fingerprint>`), so trying another corpus or seed list never collides with the
config's own run.
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

if typing.TYPE_CHECKING:
    from jaxser.heads import HeadConfig
    from jaxser.train import TrainConfig

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
#: what a study learns by default (the tasks: `jaxser.train.TASKS`)
DEFAULT_TASK = "categorical"


class ConfigError(UserError, ValueError):
    """A configuration that cannot be run (unknown keys, mismatched resume, bad values)."""


def _in(table: str | None, default=dataclasses.MISSING, *, factory=dataclasses.MISSING, key: str | None = None,
        result: bool | str = True, parse=None):
    """A StudyConfig field and where it is configured: `[table] key` of the TOML file (key: the
    field's name unless given; table None: command line only), also `--set table.key=VALUE`.

    result: whether the field is part of the study's fingerprint (the resume key): True, False
    (where and how fast results are made, not what they are), or "unless-default" (recorded
    only when set to something else, so studies defined before the option keep their
    fingerprint and their run directories resume).
    parse: a converter for values the type alone does not describe (e.g. labels = "shared")."""
    return dataclasses.field(default=default, default_factory=factory,
                             metadata={"table": table, "key": key, "result": result, "parse": parse})


def _labels(value, what: str) -> list[str] | None:
    """A fixed label set, or None for the classes source and target share ("shared", [])."""
    if value in ("shared", None, []):
        return None
    return _strings(value, what)


#: device meshes for extraction ([devices] mesh): "none" runs each encoder on one device, "auto"
#: splits its batches over this host's devices when it has several (`jaxser.sharding.resolve_mesh`)
DEVICE_MESHES = ("none", "auto")
EMOBOX_MISMATCH = ("error", "warn")
REPORT_FAMILIES = ("table", "report")


@dataclasses.dataclass
class StudyConfig:
    """A study. Each field says where it is configured (`_in`), so the TOML loader, `--set`
    overrides, the known-key lists and the error messages all derive from this class: a new
    option is one field here (plus its docs)."""

    out_dir: str = _in("run", result=False)
    corpora: dict[str, str] = _in("corpora", factory=dict)        # the whole table: NAME = "ROOT"
    encoders: list[str] = _in("models", factory=list)
    heads: list[str] = _in("models", factory=lambda: ["fcn", "cnn"])
    layers: list[str] = _in("models", factory=lambda: ["last"])
    seeds: list[int] = _in("run", factory=lambda: [0, 1, 2, 3, 4])
    settings: list[str] = _in("run", factory=lambda: ["same", "cross", "loco"])
    labels: list[str] | None = _in("run", None, parse=_labels)  # None: the classes source and target share
    k_folds: int = _in("run", 5)
    bootstrap: int = _in("run", 1000, result=False)
    # head kind -> its [head.<kind>] table (kinds without one train with HeadConfig's defaults)
    head: dict[str, HeadConfig] = _in("head", factory=dict)
    train: TrainConfig = _in("train", factory=lambda: _train_class()())
    corpus_options: dict[str, dict] = _in("corpus_options", factory=dict)  # corpus -> loader options
    split: str = _in("run", DEFAULT_SPLIT, result="unless-default")  # same-corpus folds (STUDY_SPLITS)
    family: str = _in("run", "table", result=False)  # Holm's family in the report: "table" or "report"
    cache: str | None = _in(None, None, result=False)
    skip_errors: bool = _in(None, False, result=False)
    workers: int | None = _in(None, None, result=False)  # models trained concurrently; None: the device policy's
    save_models: list[str] = _in("run", factory=lambda: list(DEFAULT_SAVE_MODELS), result=False,
                                 parse=lambda v, what: save_models_setting(v, what))
    task: str = _in("run", DEFAULT_TASK)
    dimensions: list[str] = _in("run", factory=lambda: ["arousal", "valence", "dominance"])
    wait: bool = _in(None, False, result=False)  # wait for another runner on the same run directory
    emobox: str | None = _in("run", None, result=False)  # split "emobox": the EmoBox checkout (or its data/)
    emobox_mismatch: str = _in("run", "error", result=False)  # EmoBox's lists vs the corpora on disk
    dry_run: bool = _in(None, False, result=False)  # stop after writing metadata, cells and splits
    encoder_dtype: str = _in("encoders", "float32", key="dtype", result="unless-default")  # encoders.base.DTYPES
    mesh: str = _in("devices", "none", result=False)  # DEVICE_MESHES; results equal the one-device ones
    # the keys a [train] or [head.<kind>] table spelled out: the fingerprint records them even at
    # their default value, as it always has, so such studies keep their fingerprint
    explicit: dict[str, frozenset] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    def study(self) -> dict:
        """What defines the results (not where they are written): the resume key.

        Left out: fields with `result=False` (skip_errors decides whether a run with unusable
        audio stops, not what a finished run contains -- skipped files are listed in
        manifest.json; where the EmoBox checkout lives and what a mismatch does are recorded
        there too); "unless-default" fields at their default; the categorical task with its
        (unused) dimensions; the labels of a dimensional study (classes play no part in it)."""
        d = {}
        for f in dataclasses.fields(self):
            result = f.metadata.get("result", False)
            if result and not (result == "unless-default" and getattr(self, f.name) == _default(f)):
                d[f.name] = getattr(self, f.name)
        d["head"] = {kind: self._spelled(f"head.{kind}", hc) for kind, hc in self.head.items()}
        d["train"] = self._spelled("train", self.train)
        if self.task == DEFAULT_TASK:
            del d["task"], d["dimensions"]
        else:
            del d["labels"]
        return json.loads(json.dumps(d))

    def _spelled(self, table: str, obj) -> dict:
        """A head or train config as the fingerprint records it: the keys its table spelled out,
        and any other field not at its default."""
        given = self.explicit.get(table, frozenset())
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if "set_by" not in f.metadata
                and (f.name in given or getattr(obj, f.name) != _default(f))}

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.study(), sort_keys=True).encode()).hexdigest()[:12]

    def head_config(self, kind: str) -> HeadConfig:
        """The head of `kind`: its [head.<kind>] table, else HeadConfig's defaults."""
        from jaxser.heads import HeadConfig

        return self.head.get(kind) or HeadConfig(kind=kind)

    def train_config(self, layer: str) -> TrainConfig:
        """The [train] table for one layer choice ([models] layers name the layer)."""
        return dataclasses.replace(self.train, layer=layer_index(layer))


def _default(f: dataclasses.Field):
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def _train_class():
    from jaxser.train import TrainConfig

    return TrainConfig


def _options() -> dict[str, dict[str, dataclasses.Field]]:
    """table -> key -> StudyConfig field, of the tables whose keys are fields ([run], [models],
    [encoders], [devices]); [corpora], [corpus_options], [head.<kind>] and [train] are tables
    of their own (keys: names, or the fields of HeadConfig / TrainConfig)."""
    out: dict[str, dict[str, dataclasses.Field]] = {}
    for f in dataclasses.fields(StudyConfig):
        table = f.metadata.get("table")
        if table and table not in WHOLE_TABLES:
            out.setdefault(table, {})[f.metadata["key"] or f.name] = f
    return out


#: tables that are one field each: their keys are names (corpora), kinds or TrainConfig's fields
WHOLE_TABLES = ("corpora", "corpus_options", "head", "train")


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
    return from_tables(raw, str(path), out_dir="runs/" + path.stem)


def from_tables(raw: dict, source: str, *, out_dir: str) -> StudyConfig:
    """A StudyConfig from a TOML document's tables, every key and value checked against the
    dataclass it configures (`source`: the file, named by every error)."""
    options = _options()
    known = [*options, *WHOLE_TABLES]
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"{source}: unknown sections {unknown}; known: {sorted(known)}"
                          f"{_did_you_mean(unknown[0], known)}")
    cfg = StudyConfig(out_dir=out_dir)
    for table, keys in options.items():
        values = _table(raw.get(table, {}), f"{source}: {table}")
        _known_keys(source, table, values, keys)
        for key, value in values.items():
            _set_field(cfg, keys[key], value, _at(source, table, key))
    cfg.corpora = {k: str(v) for k, v in _table(raw.get("corpora", {}), f"{source}: corpora").items()}
    cfg.corpus_options = _table(raw.get("corpus_options", {}), f"{source}: corpus_options")
    _update_train(cfg, _table(raw.get("train", {}), f"{source}: train"), source)
    for kind, values in _table(raw.get("head", {}), f"{source}: head").items():
        _update_head(cfg, kind, _table(values, f"{source}: head.{kind}"), source)
    return cfg


def _at(source: str | None, table: str, key: str) -> str:
    """Where a setting comes from, for messages: `FILE: [table] key`, or `--set table.key`."""
    return f"--set {table}.{key}" if source is None else f"{source}: [{table}] {key}"


def _did_you_mean(name: str, known, prefix: str = "") -> str:
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {prefix}{close[0]}?)" if close else ""


def _known_keys(source: str | None, table: str, values: dict, known, *, doc: str = "") -> None:
    bad = sorted(set(values) - set(known))
    if bad and source is None:
        raise ConfigError(f"--set {table}.{bad[0]}: unknown key{_did_you_mean(bad[0], known, f'{table}.')}; "
                          f"[{table}] keys: "
                          f"{', '.join(known)}{doc}")
    if bad:
        raise ConfigError(f"{source}: unknown [{table}] keys {bad}; known: {', '.join(known)}{doc}"
                          f"{_did_you_mean(bad[0], known)}")


def _set_field(cfg: StudyConfig, f: dataclasses.Field, value, what: str) -> None:
    """One StudyConfig field from a TOML or `--set` value, converted and type-checked."""
    parse = f.metadata["parse"]
    if parse is None:
        hint = _hints(StudyConfig)[f.name]
        if _list_of_str(hint) and isinstance(value, list) and all(isinstance(v, (str, int)) for v in value) \
                and not any(isinstance(v, bool) for v in value):
            value = [str(v) for v in value]  # layers = [-1, 2] names layers as ["-1", "2"]
        _check_type(value, hint, what)
    setattr(cfg, f.name, value if parse is None else parse(value, what))


def _list_of_str(hint) -> bool:
    return typing.get_origin(hint) is list and typing.get_args(hint) == (str,)


def _check_type(value, hint, what: str) -> None:
    if not _has_type(value, hint):
        raise ConfigError(f"{what} = {json.dumps(value, default=str)}: expected {_type_name(hint)}, found "
                          f"{_type_name(type(value))}")


def _hints(cls) -> dict:
    from jaxser.heads import HeadConfig
    from jaxser.train import TrainConfig

    return typing.get_type_hints(cls, localns={"HeadConfig": HeadConfig, "TrainConfig": TrainConfig})


def _update_train(cfg: StudyConfig, values: dict, source: str | None) -> None:
    """[train] keys (a table, or one `--set train.KEY`) into cfg.train, checked against TrainConfig."""
    from jaxser.train import TrainConfig

    cfg.train = _updated(cfg.train, TrainConfig, "train", [f.name for f in dataclasses.fields(TrainConfig)],
                         values, source, cfg)


def _update_head(cfg: StudyConfig, kind: str, values: dict, source: str | None) -> None:
    """[head.<kind>] keys into cfg.head[kind]; a key of another head kind is an error naming
    the kinds that have it."""
    from jaxser.heads import HEAD_KINDS, HeadConfig

    if kind not in HEAD_KINDS:
        where = f"--set head.{kind}" if source is None else f"{source}: [head.{kind}]"
        raise ConfigError(f"{where}: not a head kind; use [head.<kind>] with a kind among {', '.join(HEAD_KINDS)}"
                          f"{_did_you_mean(kind, HEAD_KINDS)}")
    own = HeadConfig.fields_of(kind)
    for key in values:
        kinds = HeadConfig.kinds_of(key)
        if key not in own and kinds:
            raise ConfigError(f"{_at(source, f'head.{kind}', key)}: a key of {', '.join(kinds)} heads only; "
                              f"a {kind} head takes {', '.join(own) or 'no keys'}")
    cfg.head[kind] = _updated(cfg.head.get(kind) or HeadConfig(kind=kind), HeadConfig, f"head.{kind}",
                              [*own, "kind"], values, source, cfg)


def _updated(current, cls, table: str, keys: list[str], values: dict, source: str | None, cfg: StudyConfig):
    """`current` (a HeadConfig or TrainConfig) with `values` of its table: keys, types and the
    dataclass's own checks, each failure a ConfigError naming the source, table and key."""
    settable = {f.name: f for f in dataclasses.fields(cls) if f.name in keys and "set_by" not in f.metadata}
    for key in values:
        f = next((f for f in dataclasses.fields(cls) if f.name == key), None)
        if f is not None and "set_by" in f.metadata:
            raise ConfigError(f"{_at(source, table, key)}: set by {f.metadata['set_by']}; remove it from [{table}]")
    _known_keys(source, table, values, list(settable), doc=" (docs/training.md)")
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        _check_type(value, hints[key], _at(source, table, key))
    try:
        new = dataclasses.replace(current, **values)
    except (TypeError, ValueError) as e:
        where = f"--set {table}" if source is None else f"{source}: [{table}]"
        raise ConfigError(f"{where} {json.dumps(values, default=str)}: {e} (docs/training.md)") from None
    cfg.explicit[table] = cfg.explicit.get(table, frozenset()) | frozenset(values)
    return new


def override(cfg: StudyConfig, assignment: str) -> str:
    """Apply one `--set KEY=VALUE` (KEY dotted as in the TOML file: `train.lr`, `head.cnn.pool`,
    `run.k_folds`, `encoders.dtype`, `corpora.NAME`); VALUE in TOML syntax (3e-4, true, [64, 128],
    "text"), or a bare word where a string is expected. Returns KEY."""
    key, eq, text = assignment.partition("=")
    key = key.strip()
    if not eq or not key:
        raise ConfigError(f"--set {assignment}: expected KEY=VALUE, e.g. --set train.lr=3e-4")
    parts = key.split(".")
    options = _options()
    if parts[0] == "train" and len(parts) == 2:
        _update_train(cfg, {parts[1]: _toml_value(text, key, _hints(_train_class()).get(parts[1]))}, None)
    elif parts[0] == "head" and len(parts) == 3:
        from jaxser.heads import HeadConfig

        hint = _hints(HeadConfig).get(parts[2])
        _update_head(cfg, parts[1], {parts[2]: _toml_value(text, key, hint)}, None)
    elif parts[0] == "corpora" and len(parts) == 2:
        cfg.corpora = {**cfg.corpora, parts[1]: str(_toml_value(text, key, str))}
    elif parts[0] == "corpus_options" and len(parts) == 3:
        opts = {**cfg.corpus_options.get(parts[1], {}), parts[2]: _toml_value(text, key, None)}
        cfg.corpus_options = {**cfg.corpus_options, parts[1]: opts}
    elif len(parts) == 2 and parts[1] in options.get(parts[0], {}):
        f = options[parts[0]][parts[1]]
        hint = str if f.metadata["parse"] else _hints(StudyConfig)[f.name]
        _set_field(cfg, f, _toml_value(text, key, hint), f"--set {key}")
    else:
        tables = ", ".join(f"{table}.*" for table in options)
        raise ConfigError(f"--set {key}: unknown key{_did_you_mean(key, settable_keys())}; keys: TABLE.KEY as in "
                          f"the config file ({tables}, train.*, head.KIND.*, corpora.NAME, corpus_options.CORPUS.KEY; "
                          "docs/configuration.md)")
    return key


def settable_keys() -> list[str]:
    """Every dotted key `--set` takes, except the free-form corpora.NAME and corpus_options."""
    from jaxser.heads import HEAD_KINDS, HeadConfig

    keys = [f"{table}.{key}" for table, fields in _options().items() for key in fields]
    keys += [f"train.{f.name}" for f in dataclasses.fields(_train_class()) if "set_by" not in f.metadata]
    keys += [f"head.{kind}.{name}" for kind in HEAD_KINDS for name in HeadConfig.fields_of(kind)]
    return keys


def _toml_value(text: str, key: str, hint):
    """A command-line value in TOML syntax; a bare word is a string where one is expected."""
    try:
        return tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        if hint is None or _has_type(text, hint):
            return text.strip()
        raise ConfigError(f"--set {key}={text}: expected {_type_name(hint)} in TOML syntax (e.g. 3e-4, true, "
                          "[64, 128], \"text\")") from None


def _has_type(value, hint) -> bool:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_has_type(value, a) for a in typing.get_args(hint))
    if typing.get_origin(hint) in (tuple, list):  # tuple[X, ...] / list[X]: a TOML list of X
        return isinstance(value, (list, tuple)) and all(_has_type(v, typing.get_args(hint)[0]) for v in value)
    if typing.get_origin(hint) is dict or hint is dict:
        return isinstance(value, dict)
    if hint is float:  # a whole number is a number too
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint in (int, str, bool, type(None)):
        return type(value) is hint
    return True


def _type_name(hint) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) in (tuple, list) or hint in (list, tuple):
        args = typing.get_args(hint)
        return f"a list of {_type_name(args[0]).removeprefix('a ')}s" if args else "a list"
    return {int: "a whole number", float: "a number", str: "a string", bool: "true or false",
            dict: "a table"}.get(hint, getattr(hint, "__name__", str(hint)))


def _split_list(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


def argument_parser(prog: str = "jaxser run") -> argparse.ArgumentParser:
    from jaxser.dimensional import DIMENSIONS
    from jaxser.encoders.base import DTYPES
    from jaxser.errors import add_debug_option
    from jaxser.heads import HEAD_KINDS
    from jaxser.protocol import SETTINGS
    from jaxser.train import TASKS

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
    p.add_argument("--head", action="append", choices=HEAD_KINDS,
                   help="downstream head kind (repeatable; replaces the config's)")
    p.add_argument("--layer", action="append", metavar="LAYER",
                   help="encoder layer: 'last', an index (negative counts from the top), 'weighted' "
                        "(a learned mix of all layers), 'all' (one model per hidden state) or 'best' (per "
                        "training set, the layer with the best source-validation UAR); repeatable")
    p.add_argument("--seeds", metavar="LIST", help="training seeds, comma-separated, e.g. 0,1,2")
    p.add_argument("--labels", metavar="LIST",
                   help="comma-separated fixed label set (canonical emotions), or 'shared' (the classes "
                        "source and target share)")
    p.add_argument("--settings", metavar="LIST", help=f"comma-separated subset of {','.join(SETTINGS)}")
    p.add_argument("--split", metavar="SPLIT",
                   help=f"same-corpus folds, one of {', '.join(STUDY_SPLITS)}: disjoint in 'speaker' (default) or "
                        "'speaker+text' (speaker and sentence), or 'emobox': EmoBox's published folds and "
                        "cross-corpus track (needs --emobox)")
    p.add_argument("--emobox", metavar="DIR", help="the EmoBox checkout (or its data/ folder) for --split emobox")
    p.add_argument("--emobox-mismatch", choices=EMOBOX_MISMATCH,
                   help="when EmoBox's lists and the corpora on disk disagree: stop (error, default) or report "
                        "and run on the utterances that match (warn)")
    p.add_argument("--dry-run", action="store_true",
                   help="load the corpora, build the cells, write metadata.parquet, cells.json and splits.parquet "
                        "to the run directory, and stop before extracting anything")
    p.add_argument("--task", choices=TASKS,
                   help="categorical (emotion classes, scored by UAR; default) or dimensional (arousal/valence/"
                        "dominance regression on each corpus' declared scale mapped to [0, 1], scored by CCC)")
    p.add_argument("--dimensions", metavar="LIST",
                   help=f"dimensional task: comma-separated subset of {','.join(DIMENSIONS)} (default all)")
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
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="assignments",
                   help="any config key, dotted as in the config file, value in TOML syntax (repeatable; applied "
                        "before the options above): train.lr=3e-4, head.cnn.conv_channels=[16,32], run.k_folds=3, "
                        f"encoders.dtype=bfloat16 ({'/'.join(DTYPES)}), devices.mesh=auto "
                        f"({'/'.join(DEVICE_MESHES)}); see docs/configuration.md")
    add_debug_option(p)
    return p


def parse_args(argv=None, *, prog: str = "jaxser run") -> StudyConfig:
    """The config named by `--config`, with the command line's overrides, validated. An option
    given is applied whatever its value (`--k-folds 0` is refused by validation, not ignored)."""
    a = argument_parser(prog).parse_args(argv)
    cfg = load_config(a.config)
    configured = cfg.fingerprint()
    overridden = [override(cfg, assignment) for assignment in a.assignments]
    out_set = a.out is not None or "run.out_dir" in overridden
    if a.corpus is not None:
        cfg.corpora = dict(c.partition("=")[::2] for c in a.corpus)
    if a.encoder is not None:
        cfg.encoders = a.encoder
    # flags whose value is the field's value as given
    for flag, field in (("head", "heads"), ("layer", "layers"), ("split", "split"), ("emobox", "emobox"),
                        ("emobox_mismatch", "emobox_mismatch"), ("task", "task"), ("k_folds", "k_folds"),
                        ("bootstrap", "bootstrap")):
        if getattr(a, flag) is not None:
            setattr(cfg, field, getattr(a, flag))
    if a.seeds is not None:
        cfg.seeds = [_int(s, "--seeds") for s in _split_list(a.seeds)]
    if a.labels is not None:
        cfg.labels = None if a.labels == "shared" else _split_list(a.labels)
        if cfg.labels == []:
            raise ConfigError(f"--labels {a.labels!r}: give labels (comma-separated) or 'shared'")
    if a.settings is not None:
        cfg.settings = _split_list(a.settings)
    cfg.dry_run = a.dry_run
    if a.dimensions is not None:
        cfg.dimensions = _split_list(a.dimensions)
    if a.out is not None:
        cfg.out_dir = a.out
    elif not out_set and cfg.fingerprint() != configured:  # another study than the config's: its own run directory
        cfg.out_dir = f"{cfg.out_dir.rstrip('/')}-{cfg.fingerprint()}"
    cfg.cache = a.cache
    cfg.skip_errors = a.skip_errors
    cfg.wait = a.wait
    if a.workers is not None:
        cfg.workers = a.workers
    if a.save_models is not None:
        cfg.save_models = save_models_setting(a.save_models)
    validate(cfg)
    return cfg


def validate(cfg: StudyConfig) -> None:
    """Every value against what the study can run; each error names the setting (its TOML key and
    its option) and the values it takes."""
    from jaxser.corpora.schema import EMOTIONS
    from jaxser.encoders.base import DTYPES
    from jaxser.heads import HEAD_KINDS, HeadConfig
    from jaxser.protocol import SETTINGS
    from jaxser.train import TASKS, TrainConfig

    if len(cfg.corpora) < 2 and set(cfg.settings) - {"same"}:
        raise ConfigError(f"cross-corpus settings need >= 2 corpora, got {list(cfg.corpora)}")
    if not cfg.corpora:
        raise ConfigError("no corpora configured: add [corpora] NAME = \"ROOT\" lines or --corpus NAME=ROOT")
    if not cfg.encoders:
        raise ConfigError("no encoders configured: add [models] encoders = [...] or --encoder NAME")
    if not cfg.seeds or len(set(cfg.seeds)) != len(cfg.seeds):
        raise ConfigError(f"seeds must be distinct and non-empty, got {cfg.seeds}")
    if not cfg.settings:
        raise ConfigError(f"no settings ([run] settings / --settings): use some of {', '.join(SETTINGS)}")
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
    if cfg.emobox_mismatch not in EMOBOX_MISMATCH:
        raise ConfigError(f"emobox_mismatch {cfg.emobox_mismatch!r} ([run] emobox_mismatch / --emobox-mismatch): "
                          f"use {' or '.join(EMOBOX_MISMATCH)}")
    if cfg.emobox is not None and not cfg.emobox:
        raise ConfigError("emobox \"\" ([run] emobox / --emobox): give the EmoBox checkout folder")
    if not cfg.out_dir:
        raise ConfigError("out_dir \"\" ([run] out_dir / --out): give the run directory")
    if cfg.workers is not None and cfg.workers < 1:
        raise ConfigError(f"--workers {cfg.workers}: expected >= 1")
    if cfg.encoder_dtype not in DTYPES:
        raise ConfigError(f"dtype {cfg.encoder_dtype!r} ([encoders] dtype / --set encoders.dtype): use one of "
                          f"{', '.join(DTYPES)}")
    if cfg.mesh not in DEVICE_MESHES:
        raise ConfigError(f"mesh {cfg.mesh!r} ([devices] mesh / --set devices.mesh): use one of "
                          f"{', '.join(DEVICE_MESHES)}")
    if not isinstance(cfg.train, TrainConfig):
        raise ConfigError(f"train = {cfg.train!r}: expected a jaxser.train.TrainConfig")
    for kind, head in cfg.head.items():
        if not (isinstance(head, HeadConfig) and head.kind == kind):
            raise ConfigError(f"head[{kind!r}] = {head!r}: expected a jaxser.heads.HeadConfig of kind {kind}")
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
        if cfg.train.class_weights:
            raise ConfigError("[train] class_weights: the dimensional task has no classes; remove it")
    elif cfg.train.loss is not None:
        raise ConfigError(f"[train] loss = {cfg.train.loss!r}: the categorical task trains on cross-entropy; "
                          "loss chooses the dimensional task's loss (task = \"dimensional\")")
    if cfg.k_folds < 2:
        raise ConfigError(f"k_folds {cfg.k_folds} ([run] k_folds / --k-folds): use 2 or more")
    if cfg.family not in REPORT_FAMILIES:
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
    for f in dataclasses.fields(StudyConfig):  # a default left out of study() (`_in`'s result): say it
        if f.metadata.get("result") == "unless-default" and (f.name in a or f.name in b):
            a.setdefault(f.name, _default(f))
            b.setdefault(f.name, _default(f))
    missing = "(unset)"
    return [f"{k}: {json.dumps(a.get(k, missing))} -> {json.dumps(b.get(k, missing))}"
            for k in sorted(set(a) | set(b)) if a.get(k, missing) != b.get(k, missing)]
