"""jaxser predict: a saved model applied to the target corpus' audio gives the run's own test
predictions bit for bit; damaged, missing and mismatched models are refused clearly."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from jaxser.predict import PredictError, load_model, main
from jaxser.study import artifacts
from tests.helpers.tiny_study import tiny_study

pytest.importorskip("safetensors")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return tiny_study(tmp_path_factory)


def _model_and_predictions(out):
    """The saved model trained on synth-alba, and the run's predictions of it on synth-bruna."""
    path = next((out / "models").glob("mfcc.fcn.last.cross.synth-alba.*"))
    preds = pd.concat(pd.read_parquet(f) for f in (out / "predictions").glob("*.parquet"))
    preds = preds[(preds["source"] == "synth-alba") & (preds["target"] == "synth-bruna")]
    return path, preds


def _target_files(ids):
    from jaxser import corpora

    ds = corpora.load("synth-bruna")
    path_of = dict(zip(ds["id"], ds["audio"]))
    return [path_of[u] for u in ids]


def test_a_run_saves_its_cross_corpus_models(study):
    out = study["out"]
    saved = sorted(p.name for p in (out / "models").iterdir())
    assert len(saved) == 2 and all(n.startswith("mfcc.fcn.last.cross.") for n in saved)
    model = load_model(out / "models" / saved[0])
    info = json.loads((out / "models" / saved[0] / "model.json").read_text())
    assert info["study_fingerprint"] == json.loads((out / "study.json").read_text())["fingerprint"]
    assert model.seeds == (0, 1) and set(model.labels) == {"angry", "happy", "neutral", "sad"}
    assert info["encoder"]["name"] == "mfcc" and info["encoder"]["fingerprint"]


def test_predict_gives_the_runs_test_predictions_bit_for_bit(study, tmp_path):
    """The same encoder, standardisation and jitted prediction program as the run: the mean
    over seeds equals the mean of the run's per-seed probabilities exactly."""
    path, preds = _model_and_predictions(study["out"])
    seeds = sorted(preds["seed"].unique())
    per_seed = np.stack([np.stack(preds[preds["seed"] == s]["probs"].to_numpy()) for s in seeds])  # [S, N, C]
    ids = preds[preds["seed"] == seeds[0]]["id"].tolist()
    files = _target_files(ids)

    model = load_model(path)
    got = model.predict(files)
    np.testing.assert_array_equal(got.seed_probs, per_seed)
    np.testing.assert_array_equal(got.probs, per_seed.mean(axis=0))
    assert got.emotions == [model.labels[i] for i in per_seed.mean(axis=0).argmax(-1)]

    # the command line: the same numbers in the CSV
    csv = tmp_path / "preds.csv"
    assert main(["--model", str(path), *map(str, files[:5]), "--out", str(csv)]) == 0
    table = pd.read_csv(csv)
    assert table["file"].tolist() == [str(f) for f in files[:5]]
    np.testing.assert_array_equal(table[[f"p_{lab}" for lab in model.labels]].to_numpy(np.float32),
                                  per_seed.mean(axis=0)[:5])


def test_a_folder_is_searched_for_audio(study, tmp_path, capsys):
    path, preds = _model_and_predictions(study["out"])
    files = _target_files(preds["id"].unique()[:3].tolist())
    for f in files:
        shutil.copy(f, tmp_path / f.split("/")[-1])
    assert main(["--model", str(path), str(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("file,emotion,p_") and len(lines) == 4


def test_a_damaged_model_is_refused(study, tmp_path, capsys):
    path, _ = _model_and_predictions(study["out"])
    bad = tmp_path / "m"
    shutil.copytree(path, bad)
    data = bytearray((bad / artifacts.HEADS_FILE).read_bytes())
    data[-3] ^= 1
    (bad / artifacts.HEADS_FILE).write_bytes(bytes(data))
    with pytest.raises(artifacts.SavedModelError, match="damaged"):
        load_model(bad)
    assert main(["--model", str(bad), str(bad)]) == 2
    assert "heads.safetensors is damaged" in capsys.readouterr().err

    info = json.loads((path / artifacts.MODEL_FILE).read_text())
    shutil.copy(path / artifacts.HEADS_FILE, bad / artifacts.HEADS_FILE)
    (bad / artifacts.MODEL_FILE).write_text(json.dumps({**info, "labels": ["sad", "angry", "happy", "neutral"]}))
    with pytest.raises(artifacts.SavedModelError, match="checksum"):
        load_model(bad)
    with pytest.raises(artifacts.SavedModelError, match="not a saved model"):
        load_model(tmp_path)


def test_another_encoder_fingerprint_is_refused(study, tmp_path):
    path, preds = _model_and_predictions(study["out"])
    model = load_model(path)
    model.encoder_fingerprint = "0" * 16   # as if trained on other weights
    with pytest.raises(PredictError, match="fingerprint"):
        model.predict(_target_files(preds["id"].iloc[:1].tolist()))


def test_the_encoder_is_loaded_in_the_dtype_the_study_used(study):
    """A study with [encoders] dtype = "bfloat16" records it with each saved model; prediction
    loads the encoder in that dtype (whose fingerprint is the one the model was trained on)."""
    from jaxser import encoders

    path, _ = _model_and_predictions(study["out"])
    model = load_model(path)
    model.encoder_name, model.info["encoder"]["dtype"] = "random-wav2vec2", "bfloat16"
    model.encoder_fingerprint = encoders.load("random-wav2vec2", dtype="bfloat16").fingerprint
    assert model.encoder().dtype == "bfloat16"


def test_missing_inputs_are_user_errors(study, tmp_path, capsys):
    path, _ = _model_and_predictions(study["out"])
    assert main(["--model", str(path), str(tmp_path / "nope.wav")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["--model", str(path), str(tmp_path)]) == 2
    assert "no audio files" in capsys.readouterr().err
