"""The run directory's files: written atomically, read back verified, damage named in one line."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jaxser.errors import RunDirError
from jaxser.protocol import Cell
from jaxser.study import artifacts

LABELS = ("angry", "neutral", "sad")


def _cells():
    """Two cells sharing one training set (a cross cell and a loco-like second test set)."""
    fit, val = np.array([0, 1, 2]), np.array([3])
    return [Cell("cross", "a", "b", -1, LABELS, fit, val, np.array([4, 5])),
            Cell("cross", "a", "c", -1, LABELS, fit, val, np.array([6, 7, 8]), excluded=1)]


IDS = np.array([f"u{i}" for i in range(9)], dtype=object)
EMOTION = np.array(["angry", "sad", "neutral", "sad", "angry", "sad", "neutral", "neutral", "angry"], dtype=object)


def _write_predictions(run_dir, fingerprint="f" * 12, seeds=(0, 1)):
    cells = _cells()
    rng = np.random.default_rng(0)
    probs = {c.name: rng.dirichlet(np.ones(3), size=(len(seeds), len(c.test))) for c in cells}
    identity = artifacts.model_identity("mfcc", "fcn", "last", cells[0].train_key)
    table = artifacts.predictions_table(identity, cells, probs, [0.5, 0.6], [3, 4], list(seeds), IDS, EMOTION)
    path = artifacts.predictions_path(run_dir, "mfcc", "fcn", "last", cells[0].train_key)
    artifacts.write_predictions_file(path, table, {"study_fingerprint": fingerprint, **identity})
    return path, identity, {c.name: (IDS[c.test], len(c.labels)) for c in cells}


def test_predictions_round_trip_and_verification(tmp_path):
    path, identity, cells = _write_predictions(tmp_path)
    assert path.parent.name == artifacts.PREDICTIONS_DIR
    kw = dict(fingerprint="f" * 12, identity=identity, seeds=[0, 1], cells=cells)
    assert artifacts.verify_predictions(path, **kw) is None
    df = pd.read_parquet(path)
    assert len(df) == 2 * (2 + 3) and list(df.columns) == artifacts.predictions_schema().names
    first = df[df["cell"] == "cross:a->b"]
    assert list(first["id"]) == ["u4", "u5", "u4", "u5"] and list(first["seed"]) == [0, 0, 1, 1]
    assert list(first["true_label"]) == ["angry", "sad"] * 2 and list(first["true"]) == [0, 2] * 2
    assert (first["pred_label"] == np.asarray(LABELS)[first["pred"]]).all()
    assert artifacts.predictions_fingerprint(path) == "f" * 12

    assert "another model" in artifacts.verify_predictions(path, **{**kw, "identity": {**identity, "head": "cnn"}})
    assert "seeds" in artifacts.verify_predictions(path, **{**kw, "seeds": [0, 1, 2]})
    assert "cells" in artifacts.verify_predictions(path, **{**kw, "cells": {"cross:a->b": cells["cross:a->b"]}})
    with pytest.raises(artifacts.ForeignPredictions, match="another study.*--out"):
        artifacts.verify_predictions(path, **{**kw, "fingerprint": "0" * 12})

    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert artifacts.verify_predictions(path, **kw).startswith("unreadable")
    bad = artifacts.set_aside(path)
    assert bad.name == path.name + ".bad" and not path.exists()


def test_a_runs_predictions_are_read_back_verified(tmp_path):
    path, identity, cells = _write_predictions(tmp_path)
    df = artifacts.read_predictions(tmp_path, fingerprint="f" * 12, cells=list(cells))
    assert len(df) == 2 * (2 + 3) and "probs" not in df
    assert df[["encoder", "head", "layer", "train_key"]].drop_duplicates().values.tolist() == [
        [identity["encoder"], identity["head"], identity["layer"], identity["train_key"]]]
    with_probs = artifacts.read_predictions(tmp_path, fingerprint="f" * 12, cells=[{"name": n} for n in cells],
                                            probabilities=True)
    pd.testing.assert_frame_equal(with_probs.drop(columns="probs"), df)

    with pytest.raises(artifacts.ForeignPredictions, match="another study.*--out"):
        artifacts.read_predictions(tmp_path, fingerprint="0" * 12, cells=list(cells))
    with pytest.raises(RunDirError, match=r"is damaged \(ValueError: predictions of cells \['cross:a->c'\]"):
        artifacts.read_predictions(tmp_path, fingerprint="f" * 12, cells=["cross:a->b"])
    with pytest.raises(RunDirError, match=r"missing columns \['dimension'\] of dimensional predictions"):
        artifacts.read_predictions(tmp_path, fingerprint="f" * 12, cells=list(cells), task="dimensional")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(RunDirError, match="is damaged.*which retrains that model") as e:
        artifacts.read_predictions(tmp_path, fingerprint="f" * 12, cells=list(cells))
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)
    path.unlink()
    with pytest.raises(RunDirError, match="no predictions files"):
        artifacts.read_predictions(tmp_path, fingerprint="f" * 12, cells=list(cells))


def test_layer_weights_of_a_run_by_encoder_and_head(tmp_path):
    cells = _cells()
    rng = np.random.default_rng(0)
    weights = {}
    for head in ("fcn", "cnn"):
        identity = artifacts.model_identity("mfcc", head, "weighted", cells[0].train_key)
        probs = {c.name: rng.dirichlet(np.ones(3), size=(2, len(c.test))) for c in cells}
        table = artifacts.predictions_table(identity, cells, probs, [0.5, 0.6], [3, 4], [0, 1], IDS, EMOTION)
        weights[head] = rng.dirichlet(np.ones(4), size=2)
        path = artifacts.predictions_path(tmp_path, "mfcc", head, "weighted", cells[0].train_key)
        artifacts.write_predictions_file(path, table, {"study_fingerprint": "f" * 12, **identity},
                                         layer_weights=weights[head])
    _write_predictions(tmp_path)  # a model without layer weights
    got = artifacts.read_all_layer_weights(tmp_path)
    assert set(got) == {("mfcc", "fcn"), ("mfcc", "cnn")}
    for head, w in weights.items():
        np.testing.assert_allclose(got[("mfcc", head)], w, atol=1e-6)
    path = artifacts.predictions_path(tmp_path, "mfcc", "cnn", "weighted", cells[0].train_key)
    path.write_bytes(b"PAR1" + path.read_bytes()[4:-8] + b"garbage!")
    with pytest.raises(RunDirError, match="is damaged.*which retrains that model"):
        artifacts.read_all_layer_weights(tmp_path)


def test_strays_are_set_aside_and_another_studys_stop_the_run(tmp_path):
    path, _, _ = _write_predictions(tmp_path)
    stray = path.with_name("0123456789abcdef.parquet")
    stray.write_bytes(b"not parquet")
    logs = []
    artifacts.set_aside_strays(tmp_path, {path}, "f" * 12, logs.append)
    assert not stray.exists() and stray.with_name(stray.name + ".bad").exists() and str(stray) in logs[0]
    with pytest.raises(artifacts.ForeignPredictions, match="another study"):
        artifacts.set_aside_strays(tmp_path, set(), "0" * 12, logs.append)
    assert path.exists()  # nothing of the other study is touched


def test_study_json(tmp_path):
    assert artifacts.read_study(tmp_path) is None
    artifacts.write_study(tmp_path, "abc", {"seeds": [0]})
    assert artifacts.read_study(tmp_path) == {"fingerprint": "abc", "study": {"seeds": [0]}}
    for damage in ('{"fingerprint": "66', "[1, 2]", "\xff"):
        (tmp_path / artifacts.STUDY_FILE).write_text(damage, errors="surrogateescape")
        with pytest.raises(RunDirError, match="study.json is damaged.*--out") as e:
            artifacts.read_study(tmp_path)
        assert "\n" not in str(e.value)


def test_cells_splits_metadata_manifest_round_trip(tmp_path):
    cells = _cells()
    artifacts.write_cells(tmp_path, cells)
    records = artifacts.read_cells(tmp_path)
    assert [tuple(r) for r in records] == [artifacts.CELL_KEYS] * 2
    assert records[1] == {"name": "cross:a->c", "setting": "cross", "source": "a", "target": "c", "fold": -1,
                          "labels": list(LABELS), "train_key": cells[1].train_key, "val_speaker_disjoint": True,
                          "excluded": 1, "split": "speaker", "excluded_train": 0, "n_fit": 3, "n_val": 1,
                          "n_test": 3}

    artifacts.write_splits(tmp_path, cells, IDS)
    splits = artifacts.read_splits(tmp_path)
    train_rows = splits[splits["role"] != "test"]
    assert train_rows[list(artifacts.SPLITS_COLUMNS)].values.tolist() == [
        [cells[0].train_key, "fit", u] for u in ("u0", "u1", "u2")] + [
        [cells[0].train_key, "val", "u3"]]  # one training set: written once
    assert (train_rows[artifacts.SPLITS_CELL] == "").all()
    # then every cell's test utterances, named by cell
    test_rows = splits[splits["role"] == "test"]
    assert test_rows.values.tolist() == [["", "test", u, c.name] for c in cells for u in IDS[c.test]]

    meta = pd.DataFrame({c: [f"{c}{i}" for i in range(3)] for c in artifacts.METADATA_COLUMNS})
    artifacts.write_metadata(tmp_path, meta.assign(extra=1))
    pd.testing.assert_frame_equal(artifacts.read_metadata(tmp_path), meta)

    artifacts.write_manifest(tmp_path, {"fingerprint": "abc", "config": {}})
    assert artifacts.read_manifest(tmp_path)["fingerprint"] == "abc"

    (tmp_path / artifacts.CELLS_FILE).write_text('[{"name": "x"}]')
    with pytest.raises(RunDirError, match="cells.json is damaged.*lacks"):
        artifacts.read_cells(tmp_path)
    meta.drop(columns="text").to_parquet(tmp_path / artifacts.METADATA_FILE)
    with pytest.raises(RunDirError, match="metadata.parquet is damaged.*text"):
        artifacts.read_metadata(tmp_path)
    (tmp_path / artifacts.SPLITS_FILE).write_bytes(b"PAR1 garbage")
    with pytest.raises(RunDirError, match="splits.parquet is damaged"):
        artifacts.read_splits(tmp_path)


def _model_info(**kw):
    return {"study_fingerprint": "f" * 12, "jaxser_version": "0", "encoder": {"name": "mfcc", "fingerprint": "e",
            "layers": 1, "dim": 3}, "head": {"kind": "fcn"}, "train": {}, "layer": "last", "layer_index": 0,
            "labels": list(LABELS), "seeds": [0, 1], "train_key": "cross:a[angry,neutral,sad]", "setting": "cross",
            "source": "a", **kw}


def test_saved_model_round_trip_and_verification(tmp_path):
    key = "cross:a[angry,neutral,sad]"
    path = artifacts.model_dir(tmp_path, "org/model", "fcn", "last", key)
    assert path.parent.name == artifacts.MODELS_DIR and path.name.startswith("org-model.fcn.last.cross.a.")
    assert path != artifacts.model_dir(tmp_path, "org/model", "fcn", "last", "cross:a[angry,sad]")
    params = {"body": {"dense_0": {"kernel": np.ones((2, 3, 4), np.float32), "bias": np.zeros((2, 4), np.float32)}}}
    mean, std = np.arange(3, dtype=np.float32), np.ones(3, np.float32)
    artifacts.write_model(path, params, mean, std, _model_info())
    m = artifacts.read_model(path)
    assert m.info["labels"] == list(LABELS)
    np.testing.assert_array_equal(m.params["body"]["dense_0"]["kernel"], params["body"]["dense_0"]["kernel"])
    np.testing.assert_array_equal(m.mean, mean)
    identity = artifacts.model_identity("mfcc", "fcn", "last", key)
    assert artifacts.verify_model(path, fingerprint="f" * 12, identity=identity) is None
    assert "another model" in artifacts.verify_model(path, fingerprint="0" * 12, identity=identity)

    artifacts.write_model(path, params, mean, std, _model_info(seeds=[0, 1, 2]))
    with pytest.raises(artifacts.SavedModelError, match="stacked over the 3 seeds"):
        artifacts.read_model(path)
    artifacts.write_model(path, params, None, None, _model_info())
    assert artifacts.read_model(path).mean is None
    (path / artifacts.HEADS_FILE).write_bytes(b"x" + (path / artifacts.HEADS_FILE).read_bytes()[1:])
    with pytest.raises(RunDirError, match="damaged"):
        artifacts.read_model(path)
    with pytest.raises(ValueError, match="lacks"):
        artifacts.write_model(path, params, None, None, {"labels": []})
