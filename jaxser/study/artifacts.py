"""The run directory: every file's name, schema, writer and verified reader.

Long on purpose: the one place a run's files are defined, so writer and reader cannot drift.

The runner writes these files and reads them back (to resume), the report reads them through
the readers here; the protocol checks (spec/) read them on their own, deliberately, so a bug
here cannot hide itself there. Everything is written atomically through `jaxser.io`; every reader checks
what it reads and names a damaged file in a one-line `RunDirError`.

    study.json          the study's fingerprint and definition (the resume key)
    manifest.json       config, versions, corpora, encoders, skipped and duplicate utterances, timings
    metadata.parquet    one row per utterance in the study (METADATA_COLUMNS)
    cells.json          one entry per protocol cell (CELL_KEYS)
    splits.parquet      the fit/validation utterances of each training set (train_key, role, id) and
                        each cell's test utterances (role test, the cell's name in `cell`)
    predictions/*.parquet  one file per trained model: a row per (cell, seed, test utterance),
                        the study fingerprint and model identity in the footer, page checksums
    models/<name>/      a saved model (`jaxser predict`): heads.safetensors (head parameters
                        stacked over seeds, standardisation statistics) and model.json (what
                        it is: encoder and fingerprint, labels, layer, head and training
                        config, study fingerprint, the tensors' checksum)
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from jaxser.errors import RunDirError
from jaxser import io
from jaxser.io import atomic_write, atomic_write_json

STUDY_FILE = "study.json"
MANIFEST_FILE = "manifest.json"
METADATA_FILE = "metadata.parquet"
CELLS_FILE = "cells.json"
SPLITS_FILE = "splits.parquet"
PREDICTIONS_DIR = "predictions"
MODELS_DIR = "models"
MODEL_FILE = "model.json"
HEADS_FILE = "heads.safetensors"
MODEL_FORMAT = "jaxser.model/1"

#: the corpus columns kept per utterance; the runner adds `group` (fold group) and `audio_sha256`
CORPUS_COLUMNS = ("id", "corpus", "speaker", "gender", "language", "emotion", "duration", "text")
METADATA_COLUMNS = (*CORPUS_COLUMNS, "group", "audio_sha256")
#: metadata columns written where the corpora have them: the file relative to its corpus root,
#: and a segment's span in it (so a protocol can be checked against file lists from the run alone)
OPTIONAL_METADATA = ("path", "start", "end")
CELL_KEYS = ("name", "setting", "source", "target", "fold", "labels", "train_key", "val_speaker_disjoint",
             "excluded", "split", "excluded_train", "n_fit", "n_val", "n_test")
SPLITS_COLUMNS = ("train_key", "role", "id")
#: the column naming a test row's cell (empty on fit and validation rows, which a train key names;
#: test rows have an empty train key)
SPLITS_CELL = "cell"


class ForeignPredictions(RunDirError):
    """A predictions file written by another study (a different fingerprint)."""


class SavedModelError(RunDirError):
    """A saved model folder that is missing, damaged or not a model."""


# ----------------------------------------------------------------------------- shared helpers

def _first_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"


def _damaged(path: Path, e: BaseException, what_to_do: str) -> RunDirError:
    return RunDirError(f"{path} is damaged ({_first_line(e)}); {what_to_do}")


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))


def _read_json(path: Path, check: Callable[[object], None], what_to_do: str):
    try:
        obj = json.loads(Path(path).read_text())
        check(obj)
        return obj
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError) as e:
        io.raise_system_fault(e, path)
        raise _damaged(path, e, what_to_do) from None


def _read_parquet(path: Path, columns: tuple[str, ...], what_to_do: str) -> pd.DataFrame:
    try:
        df = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for damaged files
        io.raise_system_fault(e, path)
        raise _damaged(path, e, what_to_do) from None
    if set(columns) - set(df.columns):
        raise _damaged(path, ValueError(f"missing columns {sorted(set(columns) - set(df.columns))}"), what_to_do)
    return df


_RERUN = "delete it and re-run the study with the same --out to rewrite it"


# ----------------------------------------------------------------------------- study.json

def write_study(run_dir: Path, fingerprint: str, study: dict) -> None:
    atomic_write_json(Path(run_dir) / STUDY_FILE, {"fingerprint": fingerprint, "study": study})


def read_study(run_dir: Path) -> dict | None:
    """study.json of an earlier run (None when there is none), verified: a damaged one stops
    the run naming the file."""
    path = Path(run_dir) / STUDY_FILE
    if not path.exists():
        return None

    def check(obj):
        if not isinstance(obj, dict) or not isinstance(obj.get("fingerprint"), str):
            raise ValueError("no study fingerprint")
    return _read_json(path, check, "delete it to resume the study (every predictions file is checked against "
                                   "the study before reuse), or choose another --out")


# ----------------------------------------------------------------------------- manifest, metadata, cells, splits

def write_manifest(run_dir: Path, manifest: dict) -> None:
    atomic_write_json(Path(run_dir) / MANIFEST_FILE, manifest)


def read_manifest(run_dir: Path) -> dict:
    def check(obj):
        if not isinstance(obj, dict) or not isinstance(obj.get("fingerprint"), str) or "config" not in obj:
            raise ValueError("no study fingerprint or config")
    return _read_json(Path(run_dir) / MANIFEST_FILE, check, _RERUN)


#: a dimensional study's metadata also holds each utterance's [0, 1]-scaled targets
TARGET_COLUMNS = ("arousal", "valence", "dominance")


def write_metadata(run_dir: Path, meta: pd.DataFrame) -> None:
    cols = list(METADATA_COLUMNS) + [c for c in (*OPTIONAL_METADATA, *TARGET_COLUMNS) if c in meta.columns]
    write_parquet(meta[cols], Path(run_dir) / METADATA_FILE)


def read_metadata(run_dir: Path) -> pd.DataFrame:
    return _read_parquet(Path(run_dir) / METADATA_FILE, METADATA_COLUMNS, _RERUN)


def cell_records(cells) -> list[dict]:
    """cells.json entries of `jaxser.protocol.Cell`s."""
    return [{"name": c.name, "setting": c.setting, "source": c.source, "target": c.target, "fold": c.fold,
             "labels": list(c.labels), "train_key": c.train_key, "val_speaker_disjoint": c.val_speaker_disjoint,
             "excluded": c.excluded, "split": c.split, "excluded_train": c.excluded_train,
             "n_fit": len(c.fit), "n_val": len(c.val), "n_test": len(c.test)} for c in cells]


def write_cells(run_dir: Path, cells) -> None:
    atomic_write_json(Path(run_dir) / CELLS_FILE, cell_records(cells))


def read_cells(run_dir: Path) -> list[dict]:
    def check(obj):
        if not isinstance(obj, list) or not all(isinstance(c, dict) for c in obj):
            raise ValueError("not a list of cells")
        for c in obj:
            missing = {"name", "setting", "source", "target", "fold", "labels", "train_key"} - set(c)
            if missing:
                raise ValueError(f"cell {c.get('name', '?')} lacks {sorted(missing)}")
    return _read_json(Path(run_dir) / CELLS_FILE, check, _RERUN)


def splits_frame(cells, ids: np.ndarray) -> pd.DataFrame:
    """The fit and validation utterances of each training set (one per train key), then every
    cell's test utterances (role "test", the cell in `cell`, no train key: a reader selecting a
    training set by its key gets exactly its fit and validation rows, as before)."""
    rows: list[tuple[str, str, str, str]] = []
    first_of: dict[str, object] = {}
    for c in cells:
        first_of.setdefault(c.train_key, c)
    for key, c in first_of.items():
        rows += [(key, "fit", u, "") for u in ids[c.fit]]
        rows += [(key, "val", u, "") for u in ids[c.val]]
    for c in cells:
        rows += [("", "test", u, c.name) for u in ids[c.test]]
    return pd.DataFrame(rows, columns=[*SPLITS_COLUMNS, SPLITS_CELL])


def write_splits(run_dir: Path, cells, ids: np.ndarray) -> None:
    write_parquet(splits_frame(cells, ids), Path(run_dir) / SPLITS_FILE)


def read_splits(run_dir: Path) -> pd.DataFrame:
    return _read_parquet(Path(run_dir) / SPLITS_FILE, SPLITS_COLUMNS, _RERUN)


# ----------------------------------------------------------------------------- predictions

#: parquet key-value metadata of a predictions file: which study and which model wrote it
PRED_META = ("jaxser.study_fingerprint", "jaxser.encoder", "jaxser.head", "jaxser.layer", "jaxser.train_key")
#: footer metadata only some models have: a layer mix's learned weights, JSON [seeds][layers]
LAYER_WEIGHTS_META = "jaxser.layer_weights"
#: the extra column of a layer="best" model's predictions: the hidden state chosen on validation
CHOSEN_LAYER = "chosen_layer"


def predictions_schema(chosen_layer: bool = False):
    """The predictions columns; `chosen_layer`: with the CHOSEN_LAYER column (layer "best")."""
    import pyarrow as pa

    s = pa.large_string()
    return pa.schema([("encoder", s), ("head", s), ("layer", s), ("cell", s), ("setting", s), ("source", s),
                      ("target", s), ("fold", pa.int64()), ("seed", pa.int64()), ("train_key", s), ("id", s),
                      ("true_label", s), ("true", pa.int32()), ("pred", pa.int32()), ("pred_label", s),
                      ("probs", pa.list_(pa.float32())), ("val_uar", pa.float64()), ("best_epoch", pa.int64())]
                     + ([(CHOSEN_LAYER, pa.int64())] if chosen_layer else []))


def model_identity(encoder: str, head: str, layer: str, train_key: str) -> dict[str, str]:
    """What a predictions file's footer says about the model that wrote it."""
    return {"encoder": encoder, "head": head, "layer": str(layer), "train_key": train_key}


def predictions_path(run_dir: Path, encoder: str, head: str, layer: str, train_key: str) -> Path:
    name = hashlib.sha256(f"{encoder}|{head}|{layer}|{train_key}".encode()).hexdigest()[:16]
    return Path(run_dir) / PREDICTIONS_DIR / f"{name}.parquet"


def _meta_digest(meta: dict[str, str]) -> str:
    """Guards the footer's identity fields, which parquet's page checksums do not cover: a
    damaged fingerprint must read as a damaged file, not as another study's. Layer weights are
    covered when present (files without them keep their digest)."""
    fields = [meta.get(k, "") for k in PRED_META] + ([meta[LAYER_WEIGHTS_META]] if LAYER_WEIGHTS_META in meta else [])
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()


def predictions_table(identity: dict[str, str], cells, probs: dict[str, np.ndarray], val_uar, best_epoch,
                      seeds: list[int], ids: np.ndarray, emotion: np.ndarray, chosen_layer: int | None = None):
    """One model's predictions as an Arrow table: a row per (cell, seed, test utterance), seed-major
    within a cell. Built from whole columns (the probabilities a list column), because it runs on
    the main thread while training threads wait for the interpreter.

    `cells`: the model's protocol cells; `probs`: cell name -> [S, N, C]; `val_uar`, `best_epoch`:
    per seed; `ids`, `emotion`: the metadata columns the cells' row indices refer to;
    `chosen_layer`: the hidden state a layer="best" model was chosen as (its own column).
    """
    import pyarrow as pa

    n_seeds = len(seeds)
    cols: dict[str, list] = {}
    for c in cells:
        p = np.asarray(probs[c.name], np.float32)  # [S, N, C]
        n = p.shape[1]
        rows = n_seeds * n
        pred = p.argmax(-1).astype(np.int32).ravel()
        part = {
            "encoder": [identity["encoder"]] * rows, "head": [identity["head"]] * rows,
            "layer": [identity["layer"]] * rows, "cell": [c.name] * rows,
            "setting": [c.setting] * rows, "source": [c.source] * rows,
            "target": [c.target] * rows, "fold": np.full(rows, c.fold, np.int64),
            "seed": np.repeat(np.asarray(seeds, np.int64), n), "train_key": [identity["train_key"]] * rows,
            "id": np.tile(ids[c.test], n_seeds), "true_label": np.tile(emotion[c.test], n_seeds),
            "true": np.tile(np.array([c.labels.index(v) for v in emotion[c.test]], np.int32), n_seeds),
            "pred": pred, "pred_label": np.asarray(c.labels)[pred],
            "probs": p.reshape(-1, p.shape[-1]),
            "val_uar": np.repeat(np.asarray(val_uar, np.float64), n),
            "best_epoch": np.repeat(np.asarray(best_epoch, np.int64), n),
        }
        if chosen_layer is not None:
            part[CHOSEN_LAYER] = np.full(rows, chosen_layer, np.int64)
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
    return pa.table(arrays, schema=predictions_schema(chosen_layer is not None))


def dimensional_predictions_schema():
    """The predictions columns of a dimensional model: a row per (cell, seed, test utterance,
    dimension), targets and predictions on the corpus-free [0, 1] scale."""
    import pyarrow as pa

    s = pa.large_string()
    return pa.schema([("encoder", s), ("head", s), ("layer", s), ("cell", s), ("setting", s), ("source", s),
                      ("target", s), ("fold", pa.int64()), ("seed", pa.int64()), ("train_key", s), ("id", s),
                      ("dimension", s), ("true", pa.float64()), ("pred", pa.float64()), ("val_ccc", pa.float64()),
                      ("best_epoch", pa.int64())])


def dimensional_predictions_table(identity: dict[str, str], cells, preds: dict[str, np.ndarray], val_ccc,
                                  best_epoch, seeds: list[int], ids: np.ndarray, targets: np.ndarray):
    """One dimensional model's predictions as an Arrow table, seed-major then utterance then
    dimension within a cell. `preds`: cell name -> [S, N, K]; `targets`: the metadata's
    [rows, K] scaled targets, in the cells' dimension order."""
    import pyarrow as pa

    n_seeds = len(seeds)
    cols: dict[str, list] = {}
    for c in cells:
        p = np.asarray(preds[c.name], np.float64)  # [S, N, K]
        _, n, k = p.shape
        rows = n_seeds * n * k
        part = {
            "encoder": [identity["encoder"]] * rows, "head": [identity["head"]] * rows,
            "layer": [identity["layer"]] * rows, "cell": [c.name] * rows, "setting": [c.setting] * rows,
            "source": [c.source] * rows, "target": [c.target] * rows, "fold": np.full(rows, c.fold, np.int64),
            "seed": np.repeat(np.asarray(seeds, np.int64), n * k), "train_key": [identity["train_key"]] * rows,
            "id": np.tile(np.repeat(ids[c.test], k), n_seeds), "dimension": list(c.labels) * (n_seeds * n),
            "true": np.tile(np.asarray(targets[c.test], np.float64).ravel(), n_seeds), "pred": p.ravel(),
            "val_ccc": np.repeat(np.asarray(val_ccc, np.float64), n * k),
            "best_epoch": np.repeat(np.asarray(best_epoch, np.int64), n * k),
        }
        for key, v in part.items():
            cols.setdefault(key, []).append(v)
    arrays = {}
    for key, parts in cols.items():
        if isinstance(parts[0], np.ndarray) and parts[0].dtype != object and parts[0].dtype.kind != "U":
            arrays[key] = pa.array(np.concatenate(parts))
        else:
            arrays[key] = pa.array([str(x) for part in parts for x in part], pa.large_string())
    return pa.table(arrays, schema=dimensional_predictions_schema())


def write_predictions_file(path: Path, table, identity: dict[str, str], layer_weights=None) -> None:
    """Atomically, with the study/model identity in the footer and page checksums on the data.
    `layer_weights`: a layer mix's learned weights [seeds, layers], kept in the footer."""
    import pyarrow.parquet as pq

    meta = {f"jaxser.{k}" if not k.startswith("jaxser.") else k: str(v) for k, v in identity.items()}
    if layer_weights is not None:
        meta[LAYER_WEIGHTS_META] = json.dumps(np.asarray(layer_weights, np.float64).round(6).tolist())
    meta["jaxser.identity_sha256"] = _meta_digest(meta)
    table = table.replace_schema_metadata(meta)
    atomic_write(path, lambda tmp: pq.write_table(table, tmp, write_page_checksum=True))


def predictions_files(run_dir: Path) -> list[Path]:
    """The run's predictions files, in name order (set-aside copies are not among them)."""
    return sorted((Path(run_dir) / PREDICTIONS_DIR).glob("*.parquet"))


def _footer(schema) -> dict[str, str]:
    """A predictions file's footer metadata (from its Arrow schema) as text."""
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in (schema.metadata or {}).items()}


def _footer_intact(meta: dict[str, str]) -> bool:
    """The footer names a study and a model, and its digest covers them."""
    return all(k in meta for k in PRED_META) and meta.get("jaxser.identity_sha256") == _meta_digest(meta)


_RETRAIN = "delete it and re-run the study, which retrains that model"
#: the columns a reader of each task's predictions needs (probabilities and chosen layer optional)
_NEEDED = {"categorical": ("encoder", "head", "layer", "cell", "setting", "source", "target", "fold", "seed", "id",
                           "true", "pred"),
           "dimensional": ("encoder", "head", "layer", "cell", "setting", "source", "target", "fold", "seed", "id",
                           "dimension", "true", "pred")}


def read_predictions(run_dir: Path, *, fingerprint: str, cells, task: str = "categorical",
                     probabilities: bool = False) -> pd.DataFrame:
    """Every predictions file of a finished run as one frame, verified: data pages against their
    checksums, a footer intact and written by this study (`fingerprint`; ForeignPredictions
    otherwise), the columns of its `task`, and only cells of `cells` (cells.json's entries or
    names). The per-class probabilities are left on disk unless `probabilities`."""
    import pyarrow.parquet as pq

    files = predictions_files(run_dir)
    if not files:
        raise RunDirError(f"{Path(run_dir) / PREDICTIONS_DIR}: no predictions files; run the study to train its "
                          "models")
    known = {c["name"] if isinstance(c, dict) else c for c in cells}
    frames = []
    for path in files:
        try:
            schema = pq.read_schema(path)
            meta = _footer(schema)
            if not _footer_intact(meta):
                raise ValueError("no intact study fingerprint in its footer")
            if meta["jaxser.study_fingerprint"] != fingerprint:
                raise _foreign(path, meta["jaxser.study_fingerprint"], fingerprint)
            missing = [c for c in _NEEDED[task] if c not in schema.names]
            if missing:
                raise ValueError(f"missing columns {missing} of {task} predictions")
            columns = [c for c in schema.names if probabilities or c != "probs"]
            table = pq.read_table(path, columns=columns, page_checksum_verification=True)
            stray = sorted(set(table.column("cell").unique().to_pylist()) - known)
            if stray:
                raise ValueError(f"predictions of cells {stray[:3]} that {CELLS_FILE} does not list")
        except ForeignPredictions:
            raise
        except Exception as e:  # pyarrow raises several types for damaged files
            io.raise_system_fault(e, path)
            raise _damaged(path, e, _RETRAIN) from None
        frames.append(table.to_pandas())
    return pd.concat(frames, ignore_index=True)


def read_all_layer_weights(run_dir: Path) -> dict[tuple[str, str], np.ndarray]:
    """(encoder, head) -> the learned layer weights of its "weighted" models, [models x seeds,
    layers], from the predictions files' footers (each verified by `read_layer_weights`);
    models of one encoder and head whose layer counts differ are left out."""
    import pyarrow.parquet as pq

    out: dict[tuple[str, str], list] = {}
    for path in predictions_files(run_dir):
        try:
            meta = _footer(pq.read_schema(path))
        except Exception as e:  # pyarrow raises several types for damaged files
            io.raise_system_fault(e, path)
            raise _damaged(path, e, _RETRAIN) from None
        if meta.get("jaxser.layer") != "weighted":
            continue
        w = read_layer_weights(path)
        if w is not None:
            out.setdefault((meta["jaxser.encoder"], meta["jaxser.head"]), []).append(w)
    return {k: np.concatenate(v) for k, v in out.items() if len({a.shape[1] for a in v}) == 1}


def predictions_fingerprint(path: Path) -> str:
    """The study fingerprint in a predictions file's footer ("" when it has none or is unreadable)."""
    import pyarrow.parquet as pq

    try:
        return (pq.read_schema(path).metadata or {}).get(b"jaxser.study_fingerprint", b"").decode()
    except Exception:  # pyarrow raises several types for damaged files
        return ""


def read_layer_weights(path: Path) -> np.ndarray | None:
    """A layer mix's learned weights [seeds, layers] from a predictions file's footer (None when
    the model has none), verified: covered by the footer's digest, finite, each row summing to 1."""
    import pyarrow.parquet as pq

    try:
        meta = _footer(pq.read_schema(path))
    except Exception as e:  # pyarrow raises several types for damaged files
        io.raise_system_fault(e, path)
        raise _damaged(path, e, _RETRAIN) from None
    if LAYER_WEIGHTS_META not in meta:
        return None
    try:
        if meta.get("jaxser.identity_sha256") != _meta_digest(meta):
            raise ValueError("footer digest mismatch")
        w = np.asarray(json.loads(meta[LAYER_WEIGHTS_META]), np.float64)
        if w.ndim != 2 or not np.isfinite(w).all() or np.abs(w.sum(axis=1) - 1).max() > 1e-4:
            raise ValueError(f"layer weights of shape {w.shape} are not rows of weights summing to 1")
    except (ValueError, TypeError) as e:
        raise _damaged(path, e, _RETRAIN) from None
    return w


def _foreign(path: Path, found: str, fingerprint: str) -> ForeignPredictions:
    return ForeignPredictions(f"{path}: predictions of another study (fingerprint {found}, this study "
                              f"{fingerprint}); choose another --out, or delete {path.parent.parent} to start "
                              "this study afresh")


def verify_predictions(path: Path, *, fingerprint: str, identity: dict[str, str], seeds: list[int],
                       cells: dict[str, tuple[np.ndarray, int]], task: str = "categorical") -> str | None:
    """Why the predictions file at `path` cannot be trusted (None when it can).

    Checked: it reads (page checksums verified), has the expected schema, was written by this
    study (raises ForeignPredictions otherwise) for this model, and holds each expected cell's
    test utterances once per seed, in order, with finite probabilities over the cell's classes.
    `cells`: cell name -> (test ids, number of classes). Dimensional task: a row per dimension
    of each of them (the number of classes is the number of dimensions), finite predictions.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, page_checksum_verification=True)
    except Exception as e:  # pyarrow raises several types for damaged files
        io.raise_system_fault(e, path)  # not a reason to set the file aside
        return f"unreadable ({_first_line(e)})"
    meta = _footer(table.schema)
    if not _footer_intact(meta):
        return "no intact study fingerprint in its metadata (damaged, or written by an older version)"
    if meta["jaxser.study_fingerprint"] != fingerprint:
        raise _foreign(path, meta["jaxser.study_fingerprint"], fingerprint)
    want = {f"jaxser.{k}": str(v) for k, v in identity.items()}
    if any(meta[k] != v for k, v in want.items()):
        return "written for another model: " + ", ".join(f"{k} {meta[k]!r}" for k in want if meta[k] != want[k])
    dimensional = task == "dimensional"
    expected = dimensional_predictions_schema() if dimensional else predictions_schema(
        chosen_layer=identity.get("layer") == "best")
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
        if dimensional:
            if len(sel) != n_seeds * n * n_classes:
                return (f"cell {name}: {len(sel)} rows, expected {n_seeds} seeds x {n} utterances x {n_classes} "
                        "dimensions")
            if not (np.array_equal(ids[sel], np.tile(np.repeat(np.asarray(test_ids, object), n_classes), n_seeds))
                    and np.array_equal(seed[sel], np.repeat(np.asarray(seeds, np.int64), n * n_classes))):
                return f"cell {name}: not each test utterance and dimension once per seed {seeds}"
            pred = table.column("pred").take(pa.array(sel)).to_numpy()
            if not np.isfinite(pred).all():
                return f"cell {name}: non-finite predictions"
            continue
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


def set_aside(path: Path) -> Path:
    """Keep a damaged file for inspection, out of the run's `*.parquet` glob."""
    return io.set_aside(path, ".bad")


def set_aside_strays(run_dir: Path, expected: set[Path], fingerprint: str, log) -> None:
    """Predictions files no model of this study writes: another study's stop the run
    (ForeignPredictions), anything else (damaged, renamed) is set aside and logged."""
    for path in sorted(set(predictions_files(run_dir)) - expected):
        found = predictions_fingerprint(path)
        if found and found != fingerprint:
            raise _foreign(path, found, fingerprint)
        log(f"{path}: not a model of this study; moved to {set_aside(path).name}")


def refuse_foreign_predictions(run_dir: Path, fingerprint: str) -> None:
    """Stop (ForeignPredictions) when a predictions file in the run directory is another
    study's: checked before anything of this study is written there."""
    for path in predictions_files(run_dir):
        found = predictions_fingerprint(path)
        if found and found != fingerprint:
            raise _foreign(path, found, fingerprint)


# ----------------------------------------------------------------------------- saved models

#: what model.json must hold besides the format and checksums
MODEL_KEYS = ("study_fingerprint", "jaxser_version", "encoder", "head", "train", "layer", "layer_index", "labels",
              "seeds", "train_key", "setting", "source")


def model_dir(run_dir: Path, encoder: str, head: str, layer: str, train_key: str) -> Path:
    """`RUN/models/<encoder>.<head>.<layer>.<setting>.<source>[.foldN].<digest>`: readable, and
    unique by the digest of the whole identity (the train key's label set included)."""
    setting, _, rest = train_key.partition(":")
    source = rest.split("[")[0].replace("/", ".")
    readable = re.sub(r"[^A-Za-z0-9._+-]+", "-", f"{encoder}.{head}.{layer}.{setting}.{source}").strip("-.")[:96]
    digest = hashlib.sha256(f"{encoder}|{head}|{layer}|{train_key}".encode()).hexdigest()[:8]
    return Path(run_dir) / MODELS_DIR / f"{readable}.{digest}"


def _flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = np.ascontiguousarray(np.asarray(v))
    return out


def _unflatten(flat: dict[str, np.ndarray]) -> dict:
    tree: dict = {}
    for key, v in flat.items():
        *parents, leaf = key.split("/")
        node = tree
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    return tree


def _json_digest(body: dict) -> str:
    return hashlib.sha256(json.dumps({k: v for k, v in body.items() if k != "sha256"}, sort_keys=True)
                          .encode()).hexdigest()


def write_model(path: Path, params: dict, mean: np.ndarray | None, std: np.ndarray | None, info: dict,
                targets: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Save a trained model: the tensors, then model.json naming their checksum (written last,
    each atomically, so a model.json always describes a complete tensors file).

    `params`: the head's parameter tree, every leaf stacked over seeds [S, ...]; `mean`, `std`:
    the fit split's standardisation statistics (None when not standardised); `info`: MODEL_KEYS;
    `targets`: a dimensional model's fit-split target statistics (mean, std) [K], which map
    its outputs back to the [0, 1] scale.
    """
    from safetensors.numpy import save

    missing = set(MODEL_KEYS) - set(info)
    if missing:
        raise ValueError(f"write_model: info lacks {sorted(missing)}")
    tensors = {f"params/{k}": v for k, v in _flatten(params).items()}
    if mean is not None:
        tensors["standardize/mean"] = np.ascontiguousarray(mean, np.float32)
        tensors["standardize/std"] = np.ascontiguousarray(std, np.float32)
    if targets is not None:
        tensors["targets/mean"] = np.ascontiguousarray(targets[0], np.float32)
        tensors["targets/std"] = np.ascontiguousarray(targets[1], np.float32)
    data = save(tensors, metadata={"format": MODEL_FORMAT})
    path = Path(path)
    io.atomic_write_bytes(path / HEADS_FILE, data)
    body = {"format": MODEL_FORMAT, **info, "tensors": {"file": HEADS_FILE, "sha256": hashlib.sha256(data).hexdigest()}}
    body["sha256"] = _json_digest(body)
    atomic_write_json(path / MODEL_FILE, body)


@dataclasses.dataclass
class SavedModel:
    """A verified saved model: model.json's fields, the parameter tree (leaves [S, ...]) and the
    standardisation statistics (None when the model was trained without)."""
    path: Path
    info: dict
    params: dict
    mean: np.ndarray | None
    std: np.ndarray | None
    y_mean: np.ndarray | None = None   # dimensional: target statistics, outputs * y_std + y_mean
    y_std: np.ndarray | None = None


_MODEL_HINT = "a saved model is a folder RUN/models/<name> written by jaxser run (--save-models all saves every model)"


def read_model(path: Path) -> SavedModel:
    """Read and verify a saved model: model.json's checksum and fields, the tensors' checksum,
    and the shapes (parameters stacked over its seeds, statistics over the encoder's width)."""
    from safetensors.numpy import load

    path = Path(path)
    if not (path / MODEL_FILE).is_file():
        raise SavedModelError(f"{path}: not a saved model (no {MODEL_FILE}); {_MODEL_HINT}")
    redo = "re-run the study with the same --out to write it again"
    try:
        body = json.loads((path / MODEL_FILE).read_text())
        if not isinstance(body, dict) or body.get("sha256") != _json_digest(body):
            raise ValueError("its checksum does not match its content")
        if body.get("format") != MODEL_FORMAT:
            raise ValueError(f"format {body.get('format')!r}, this jaxser reads {MODEL_FORMAT!r}")
        missing = set(MODEL_KEYS) - set(body)
        if missing:
            raise ValueError(f"missing fields {sorted(missing)}")
    except (OSError, UnicodeDecodeError, ValueError) as e:
        io.raise_system_fault(e, path / MODEL_FILE)
        raise SavedModelError(f"{path / MODEL_FILE} is damaged ({_first_line(e)}); {redo}") from None
    heads = path / body["tensors"]["file"]
    try:
        data = heads.read_bytes()
    except OSError as e:
        io.raise_system_fault(e, heads)
        raise SavedModelError(f"{heads}: unreadable ({_first_line(e)}); {redo}") from None
    if hashlib.sha256(data).hexdigest() != body["tensors"]["sha256"]:
        raise SavedModelError(f"{heads} is damaged (its checksum differs from {MODEL_FILE}'s); {redo}")
    tensors = load(data)
    params = _unflatten({k[len("params/"):]: v for k, v in tensors.items() if k.startswith("params/")})
    mean, std = tensors.get("standardize/mean"), tensors.get("standardize/std")
    n_seeds, dim = len(body["seeds"]), body["encoder"]["dim"]
    leaves = [v for k, v in tensors.items() if k.startswith("params/")]
    if not leaves or any(v.ndim < 1 or v.shape[0] != n_seeds for v in leaves):
        raise SavedModelError(f"{heads}: parameters are not stacked over the {n_seeds} seeds of {MODEL_FILE}; {redo}")
    if (mean is None) != (std is None) or (mean is not None and (mean.shape[-1] != dim or mean.shape != std.shape)):
        raise SavedModelError(f"{heads}: standardisation statistics do not fit the encoder's width {dim}; {redo}")
    y_mean, y_std = tensors.get("targets/mean"), tensors.get("targets/std")
    if body.get("task") == "dimensional" and (y_mean is None or y_std is None
                                              or y_mean.shape != (len(body.get("dimensions", [])),)):
        raise SavedModelError(f"{heads}: a dimensional model without target statistics for its dimensions; {redo}")
    return SavedModel(path, body, params, mean, std, y_mean, y_std)


def verify_model(path: Path, *, fingerprint: str, identity: dict[str, str]) -> str | None:
    """Why the saved model at `path` cannot be kept for this study and model (None when it can)."""
    try:
        info = read_model(path).info
    except SavedModelError as e:
        return str(e)
    want = {"study_fingerprint": fingerprint, "encoder": identity["encoder"], "head": identity["head"],
            "layer": identity["layer"], "train_key": identity["train_key"]}
    got = {"study_fingerprint": info["study_fingerprint"], "encoder": info["encoder"].get("name"),
           "head": info["head"].get("kind"), "layer": info["layer"], "train_key": info["train_key"]}
    bad = [k for k in want if got[k] != want[k]]
    return f"saved for another model or study ({', '.join(f'{k} {got[k]!r}' for k in bad)})" if bad else None
