"""A dimensional study end to end: synthetic corpora carrying arousal/valence/dominance ratings
on a declared 1-5 scale, trained, reported, checked by the spec, and a saved model applied to
new audio on the [0, 1] scale."""
from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from jaxser import dimensional, metrics
from jaxser.study import load_config, validate
from jaxser.study.run import run
from spec.checks import check_run

pytest.importorskip("opensmile")

SCALE = (1.0, 5.0)
#: emotion -> (arousal, valence, dominance) centre on the 1-5 scale
CENTRES = {"angry": (4.3, 1.8, 4.0), "happy": (3.9, 4.3, 3.4), "neutral": (2.4, 3.0, 3.0), "sad": (1.7, 1.6, 2.0),
           "fear": (4.0, 1.7, 1.8), "boredom": (1.6, 2.6, 2.4), "disgust": (3.1, 1.8, 3.2), "surprise": (4.2, 3.4, 2.9)}


def rated(ds, name):
    """A synthetic corpus with ratings: each emotion's centre plus a jitter fixed by the
    utterance id; one speaker's dominance unrated (NaN), and, in synth-bruna, a few rows rated
    on dimensions only (emotion "")."""
    ids, emotion, speaker = ds["id"], ds["emotion"], ds["speaker"]
    jit = np.array([[int.from_bytes(hashlib.sha256(f"{u}{k}".encode()).digest()[:4], "little") / 2 ** 32 - 0.5
                     for k in range(3)] for u in ids])
    values = np.clip(np.array([CENTRES[e] for e in emotion]) + 0.8 * jit, *SCALE)
    first = sorted(set(speaker))[0]
    values[np.array(speaker) == first, 2] = np.nan
    emo = list(emotion)
    if name == "synth-bruna":
        for i in range(0, len(emo), 25):
            emo[i] = ""
    own = [d for d in dimensional.DIMENSIONS if d in ds.column_names]  # the voices' own targets, replaced here
    ds = ds.remove_columns(["emotion", *own]).add_column("emotion", emo)
    for k, d in enumerate(dimensional.DIMENSIONS):
        ds = ds.add_column(d, values[:, k].tolist())
    return ds


@pytest.fixture(scope="module")
def dim_run(tmp_path_factory):
    from jaxser.study import run as run_mod

    mp = pytest.MonkeyPatch()
    load = run_mod.load_corpus
    mp.setattr(run_mod, "load_corpus", lambda name, root, options, skip: rated(load(name, root, options, skip), name))
    mp.setattr(dimensional, "dimension_ranges", lambda name: {d: SCALE for d in dimensional.DIMENSIONS})
    cfg = load_config("default")
    cfg.out_dir = str(tmp_path_factory.mktemp("dim") / "run")
    cfg.corpora = {"synth-alba": "", "synth-bruna": "", "synth-corva": ""}
    cfg.encoders, cfg.heads, cfg.seeds, cfg.bootstrap = ["mfcc"], ["fcn"], [0, 1], 100
    cfg.train = dataclasses.replace(cfg.train, max_epochs=8, patience=3, lr=3e-3)
    cfg.task, cfg.dimensions = "dimensional", ["valence", "arousal"]
    validate(cfg)
    try:
        out = run(cfg, log=lambda *a: None)
    finally:
        mp.undo()  # only the run sees the rated corpora and their declared scale
    return out, cfg


def test_dimensional_run_artifacts_and_results(dim_run):
    out, cfg = dim_run
    assert cfg.dimensions == ["arousal", "valence"]  # one canonical order
    res = pd.read_csv(out / "results.csv")
    n = len(cfg.corpora)
    assert set(res["dimension"]) == {"arousal", "valence"}
    assert (res["setting"] == "cross").sum() == 2 * n * (n - 1)
    for col in ("ccc_mean", "ccc_std", "ccc_ci_low", "ccc_ci_high", "pearson_mean", "mae_mean"):
        assert col in res
    assert ((res["ccc_ci_low"] <= res["ccc_mean"] + 1e-9) & (res["ccc_mean"] <= res["ccc_ci_high"] + 1e-9)).all()
    # arousal is what the synthetic voices carry: it transfers
    assert res[(res["dimension"] == "arousal") & (res["setting"] == "same")]["ccc_mean"].mean() > 0.5
    report = (out / "report.md").read_text()
    assert "## Arousal" in report and "## Valence" in report and "CCC" in report
    assert list((out / "figures").glob("heatmap_ccc_*.png")) and list((out / "figures").glob("scatter_cross_*.png"))
    sig = pd.read_csv(out / "significance.csv")
    assert list(sig.columns[:1]) == ["dimension"] or sig.empty
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["protocol"]["task"] == "dimensional" and manifest["config"]["task"] == "dimensional"


def test_results_recompute_from_predictions(dim_run):
    out, _ = dim_run
    preds = pd.concat(pd.read_parquet(f) for f in (out / "predictions").glob("*.parquet"))
    meta = pd.read_parquet(out / "metadata.parquet").set_index("id")
    # targets are the declared 1-5 scale mapped to [0, 1], as the metadata holds them
    for d in ("arousal", "valence"):
        sub = preds[preds["dimension"] == d]
        np.testing.assert_allclose(sub["true"], meta.loc[sub["id"], d], atol=1e-6)
    assert meta[["arousal", "valence"]].stack().between(0, 1).all()
    res = pd.read_csv(out / "results.csv")
    r = res[(res["setting"] == "cross") & (res["dimension"] == "valence")].iloc[0]
    sub = preds[(preds["cell"] == f"cross:{r['source']}->{r['target']}") & (preds["dimension"] == "valence")]
    want = np.mean([metrics.ccc(g["true"], g["pred"]) for _, g in sub.groupby("seed")])
    assert r["ccc_mean"] == pytest.approx(want, abs=1e-9)


def test_unrated_rows_are_excluded_and_counted(dim_run):
    out, _ = dim_run
    cells = json.loads((out / "cells.json").read_text())
    meta = pd.read_parquet(out / "metadata.parquet")
    for c in cells:
        assert c["labels"] == ["arousal", "valence"]
        if c["setting"] == "cross":
            tgt = meta[meta["corpus"] == c["target"]]
            assert c["excluded"] == int(tgt[["arousal", "valence"]].isna().any(axis=1).sum())
    # dominance was not asked for: its missing ratings exclude nothing, and rows without a class still count
    assert meta.loc[meta["corpus"] == "synth-bruna", "emotion"].eq("").any()


def test_the_spec_passes_and_catches_a_target_statistic(dim_run, tmp_path):
    import shutil

    out, _ = dim_run
    assert check_run(out) == []
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    model = next((bad / "models").iterdir())
    from safetensors.numpy import load, save

    t = load((model / "heads.safetensors").read_bytes())
    t["targets/mean"] = t["targets/mean"] + 0.05  # as if validation or test targets entered the statistics
    data = save(t, metadata={"format": "jaxser.model/1"})
    (model / "heads.safetensors").write_bytes(data)
    body = json.loads((model / "model.json").read_text())
    body["tensors"]["sha256"] = hashlib.sha256(data).hexdigest()
    from jaxser.study.artifacts import _json_digest

    body["sha256"] = _json_digest(body)
    (model / "model.json").write_text(json.dumps(body))
    assert any("fit split" in p for p in check_run(bad))


def test_a_saved_dimensional_model_predicts_new_audio(dim_run, tmp_path):

    from jaxser.predict import load_model, main

    out, _ = dim_run
    path = next(p for p in sorted((out / "models").iterdir()) if ".cross.synth-alba." in p.name)
    model = load_model(path)
    meta = pd.read_parquet(out / "metadata.parquet")
    rows = meta[meta["corpus"] == "synth-bruna"].head(3)
    from jaxser import corpora

    ds = corpora.load("synth-bruna")
    audio_of = dict(zip(ds["id"], ds["audio"]))
    files = [audio_of[u] for u in rows["id"]]
    preds = model.predict(files)
    assert preds.task == "dimensional" and preds.labels == ("arousal", "valence")
    assert preds.probs.shape == (3, 2) and np.isfinite(preds.probs).all()
    csv = tmp_path / "p.csv"
    assert main(["--model", str(path), *map(str, files), "--out", str(csv)]) == 0
    got = pd.read_csv(csv)
    assert list(got.columns) == ["file", "arousal", "valence"]
    np.testing.assert_allclose(got[["arousal", "valence"]].to_numpy(), preds.probs, rtol=1e-5)
    # the same utterance's prediction in the run equals the saved model's on its audio
    run_preds = pd.concat(pd.read_parquet(f) for f in (out / "predictions").glob("*.parquet"))
    sel = run_preds[(run_preds["cell"] == "cross:synth-alba->synth-bruna") & (run_preds["id"] == rows["id"].iloc[0])
                    & (run_preds["encoder"] == "mfcc")]
    if len(sel):
        want = sel.groupby("dimension")["pred"].mean()
        np.testing.assert_allclose(preds.probs[0], [want["arousal"], want["valence"]], atol=1e-4)


def test_corpora_without_ratings_stop_before_extraction(tmp_path, capsys):
    """A corpus whose rows carry no rating (here a manifest without rating columns) stops a
    dimensional study before anything is extracted, naming the corpus in one line."""
    from jaxser.study.run import main
    from tests.helpers.corpus_release_trees import tone

    lines = ["path,speaker,emotion"]
    for i, (spk, emo) in enumerate([("a", "angry"), ("a", "sad"), ("b", "angry"), ("b", "sad")]):
        tone(tmp_path / "mine" / f"c{i}.wav", 16_000)
        lines.append(f"c{i}.wav,{spk},{emo}")
    (tmp_path / "mine" / "manifest.csv").write_text("\n".join(lines) + "\n")
    code = main(["--task", "dimensional", "--corpus", "synth-alba=", "--corpus", f"mine={tmp_path / 'mine'}",
                 "--encoder", "mfcc", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "mine" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r" / "predictions").exists()


def test_targets_outside_the_declared_scale_are_refused():
    with pytest.raises(dimensional.DimensionError, match="valence = 6 is outside its declared range"):
        dimensional.unit_targets(np.array([[3.0, 6.0]]), "c", ["arousal", "valence"],
                                 {"arousal": (1, 5), "valence": (1, 5)})
    got = dimensional.unit_targets(np.array([[1.0, np.nan], [5.0, 3.0]]), "c", ["arousal", "valence"],
                                   {"arousal": (1, 5), "valence": (1, 7)})
    np.testing.assert_allclose(got, [[0.0, np.nan], [1.0, 1 / 3]])


def test_declared_scales_are_read_from_the_corpus_module(monkeypatch):
    from jaxser import corpora

    mod = corpora.module("iemocap")
    monkeypatch.setattr(mod, "DIMENSIONS", {"arousal": (1, 5), "valence": (1, 5), "dominance": (1, 5)}, raising=False)
    assert dimensional.dimension_ranges("iemocap")["valence"] == (1.0, 5.0)  # read through jaxser.corpora
    monkeypatch.delattr(mod, "DIMENSIONS")
    from jaxser.errors import UserError

    with pytest.raises(UserError, match="iemocap"):
        dimensional.dimension_ranges("iemocap")


def test_dimensional_runs_end_to_end_on_release_trees_and_the_shipped_config(tmp_path):
    """Through the command line a user runs: MSP-Podcast and MSP-IMPROV in their release formats
    (cross-corpus, each corpus' own scale), and the shipped synthetic `dimensional` config; both
    runs pass the spec."""
    from jaxser.cli import main as cli
    from spec.checks import check_run
    from tests.helpers.dimensional_trees import make_mspimprov, make_msppodcast

    pod, imp = make_msppodcast(tmp_path / "MSP-Podcast"), make_mspimprov(tmp_path / "MSP-IMPROV")
    with pytest.warns(UserWarning, match="no summary line"):
        assert cli(["run", "--task", "dimensional", "--corpus", f"msppodcast={pod}", "--corpus", f"mspimprov={imp}",
                    "--encoder", "mfcc", "--head", "fcn", "--seeds", "0", "--settings", "cross",
                    "--out", str(tmp_path / "real")]) == 0
    res = pd.read_csv(tmp_path / "real" / "results.csv")
    assert set(res["dimension"]) == {"arousal", "valence", "dominance"} and res["ccc_mean"].notna().all()
    assert check_run(tmp_path / "real") == []
    assert cli(["run", "--config", "dimensional", "--corpus", "synth-alba=", "--corpus", "synth-bruna=",
                "--encoder", "mfcc", "--head", "fcn", "--seeds", "0", "--out", str(tmp_path / "synthetic")]) == 0
    res = pd.read_csv(tmp_path / "synthetic" / "results.csv")
    assert set(res["setting"]) == {"same", "cross"}  # with two corpora leave-one-out is the cross pair
    assert set(res["dimension"]) == {"arousal", "valence", "dominance"}
    assert check_run(tmp_path / "synthetic") == []
