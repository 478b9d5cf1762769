"""Layer-wise analysis: every hidden state trained in one program (``train_layers``), its
memory bound, the validation-only choice of layer "best", and `--layer all` end to end."""
from __future__ import annotations

import glob
from dataclasses import replace
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest

from jaxser.heads import HeadConfig
from jaxser.layers import LAYER_STACK_BYTES, layer_bytes, layers_per_program, select_layer, train_layers
from jaxser.train import ModelData, ModelResult, TrainConfig, train

C = 4
FAST = TrainConfig(max_epochs=10, patience=3)
SMALL_FCN = HeadConfig(kind="fcn", hidden=(32,), dropout=0.2)


def toy(n, *, layers=5, d=16, seed=0):
    """Class c marked by +0.6 * l on dimension c of layer l: deeper layers are more informative."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, n)
    x = rng.normal(size=(n, layers, d)).astype(np.float32)
    for layer in range(layers):
        x[np.arange(n), layer, y] += 0.6 * layer
    return x, y


def model(seed=0, n_fit=200):
    (xf, yf), (xv, yv), (xt, _) = toy(n_fit, seed=seed), toy(60, seed=seed + 10), toy(90, seed=seed + 20)
    return ModelData(xf, yf, xv, yv, {"t": xt, "u": xt[:40]}, C)


@pytest.mark.parametrize("kind,budget", [("fcn", LAYER_STACK_BYTES), ("cnn", None)])
def test_every_layer_in_one_program_equals_each_layer_trained_alone(kind, budget):
    """Layers x seeds vmapped give what `train(layer=l)` gives for each l: the same selection
    and epochs, outputs equal up to the rounding of layer-batched matmuls (a few float32 ulps
    of values <= 1; measured <= 1.2e-7, checked at 1e-5). The CNN case is split into programs
    of 2 layers by a small budget (5 layers -> 3 balanced programs of 2, 2, 1)."""
    head = HeadConfig(kind=kind, hidden=(32,), **({"conv_channels": (4,)} if kind == "cnn" else {}))
    m = model(seed=1)
    seeds = [0, 1, 2]
    if budget is None:
        budget = 2 * layer_bytes(head, FAST, C, 16, len(seeds), 256, 64)
    [res] = train_layers([m], head=head, config=FAST, seeds=seeds, budget=budget)
    assert [r.layer for r in res] == [0, 1, 2, 3, 4]
    assert [r.stack_size for r in res] == ([5] * 5 if kind == "fcn" else [2, 2, 2, 2, 1])
    for layer, r in enumerate(res):
        ref = train([m], head=head, config=replace(FAST, layer=layer), seeds=seeds)[0]
        assert ref.layer == layer
        np.testing.assert_array_equal(r.best_epoch, ref.best_epoch)
        assert r.epochs_run == ref.epochs_run and r.val_uar_history.shape == ref.val_uar_history.shape
        np.testing.assert_allclose(r.val_uar, ref.val_uar, atol=1e-6)
        np.testing.assert_allclose(r.val_probs, ref.val_probs, atol=1e-5)
        for n in ("t", "u"):
            np.testing.assert_allclose(r.probs[n], ref.probs[n], atol=1e-5)
        for a, b in zip(jax.tree.leaves(r.params), jax.tree.leaves(ref.params)):
            np.testing.assert_allclose(a, b, atol=1e-5)
        np.testing.assert_array_equal(r.mean, ref.mean)


def test_chosen_layers_and_several_models():
    ms = [model(seed=2), model(seed=3, n_fit=150)]
    out = train_layers(ms, head=SMALL_FCN, config=FAST, seeds=[0, 1], layers=[-1, 1])
    assert [[r.layer for r in rs] for rs in out] == [[4, 1], [4, 1]]
    alone = train(ms[1:], head=SMALL_FCN, config=replace(FAST, layer=1), seeds=[0, 1])[0]
    np.testing.assert_array_equal(out[1][1].best_epoch, alone.best_epoch)
    with pytest.raises(ValueError, match="out of range"):
        train_layers(ms, head=SMALL_FCN, config=FAST, seeds=[0], layers=[5])


def test_memory_bound_fits_the_cnn_on_a_large_encoder():
    """The CNN on 1 024-d, 25-layer embeddings, 5 seeds, 4 096 fit rows: each program stays
    within the budget (2 layers at ~1.7 GB by the bound; XLA measured 0.81 GB per layer), and
    the small FCN stacks every layer in one program."""
    cnn, fcn = HeadConfig(kind="cnn"), HeadConfig(kind="fcn")
    cfg = TrainConfig()
    k = layers_per_program(cnn, cfg, C, 1024, 5, 4096, 1024, 25)
    assert 1 <= k < 25 and k * layer_bytes(cnn, cfg, C, 1024, 5, 4096, 1024) <= LAYER_STACK_BYTES
    assert layers_per_program(fcn, cfg, C, 1024, 5, 4096, 1024, 25) == 25
    assert layers_per_program(cnn, cfg, C, 1024, 5, 4096, 1024, 25, budget=1) == 1


def _result(layer, val_uar):
    z = np.zeros(len(val_uar))
    return ModelResult(probs={}, val_uar=np.asarray(val_uar, np.float32), best_epoch=z, val_probs=z,
                       val_uar_history=z, epochs_run=1, seeds=tuple(range(len(val_uar))), params={}, mean=None,
                       std=None, layer=layer)


def test_select_layer_uses_the_validation_mean_and_breaks_ties_low():
    rs = [_result(0, [0.5, 0.75]), _result(1, [0.625, 0.625]), _result(2, [0.75, 0.25])]
    assert select_layer(rs).layer == 0  # a tie at 0.625: the lower layer
    assert select_layer(rs[::-1]).layer == 0  # whatever the order given
    assert select_layer(rs[1:]).layer == 1


# ----------------------------------------------------------------------------- --layer all end to end

EMOTIONS = ("angry", "happy", "neutral", "sad")


def _corpus(folder: Path, shift: int) -> Path:
    """4 speakers x 4 emotions x 2 takes of 0.4 s tones (pitch and level by emotion)."""
    import soundfile as sf

    folder.mkdir(parents=True)
    rng = np.random.default_rng(shift)
    t = np.arange(6400) / 16000
    rows = ["id,path,speaker,emotion"]
    for s in range(4):
        for k, emo in enumerate(EMOTIONS):
            for take in range(2):
                wav = (0.1 + 0.1 * k) * np.sin(2 * np.pi * (140 + 60 * k + 9 * s + shift + 3 * take) * t)
                sf.write(folder / f"s{s}_{emo}_{take}.wav", (wav + 0.02 * rng.normal(size=t.size)).astype(np.float32),
                         16000, subtype="PCM_16")
                rows.append(f"{folder.name}-s{s}{emo}{take},s{s}_{emo}_{take}.wav,s{s},{emo}")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    return folder / "manifest.csv"


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
    from experiments.cross_corpus import main

    tmp = tmp_path_factory.mktemp("layers")
    cfg = tmp / "tiny.toml"
    cfg.write_text('[run]\nbootstrap = 10\nk_folds = 2\nsave_models = "none"\n'
                   '[train]\nmax_epochs = 4\npatience = 2\n')
    out = tmp / "run"
    argv = ["--config", str(cfg), "--corpus", f"ca={_corpus(tmp / 'ca', 0)}", "--corpus",
            f"cb={_corpus(tmp / 'cb', 20)}", "--encoder", "random-wav2vec2", "--head", "fcn", "--layer", "all",
            "--layer", "best", "--seeds", "0,1", "--settings", "same,cross", "--out", str(out)]
    assert main(argv) == 0
    return out


def _preds(run):
    return pd.concat([pd.read_parquet(f) for f in glob.glob(str(run / "predictions" / "*.parquet"))],
                     ignore_index=True)


def test_layer_all_writes_every_hidden_state_the_profile_and_passes_the_spec(sweep_run):
    from jaxser import encoders
    from spec.checks import check_run

    n_layers = encoders.load("random-wav2vec2").num_layers
    results = pd.read_csv(sweep_run / "results.csv", dtype={"layer": str})
    assert set(results["layer"]) == {str(i) for i in range(n_layers)} | {"best"}
    best = results[results["layer"] == "best"]
    assert best["chosen_layer"].notna().all()
    assert results.loc[results["layer"] != "best", "chosen_layer"].isna().all()
    assert (sweep_run / "figures" / "layers_random-wav2vec2_fcn.png").exists()
    assert "## Layer profile" in (sweep_run / "report.md").read_text()
    assert check_run(sweep_run) == []


def test_the_spec_catches_a_layer_chosen_on_test_data(sweep_run, tmp_path):
    """Plant a defect: make layer "best" the layer with the highest *test* UAR (where that
    differs from the validation choice, else a validation-worse layer), with that layer's
    predictions; the spec must name it."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    from jaxser import metrics
    from spec.checks import check_layer_choice

    run = tmp_path / "run"
    shutil.copytree(sweep_run, run)
    preds = _preds(run)
    per_layer = preds[preds["layer"].str.isdigit()]
    f_best = None
    for f in glob.glob(str(run / "predictions" / "*.parquet")):
        t = pq.read_table(f)
        if t.column("layer")[0].as_py() != "best":
            continue
        key = t.column("train_key")[0].as_py()
        chosen = t.column("chosen_layer")[0].as_py()
        sub = per_layer[per_layer["train_key"] == key]
        test_uar = sub.groupby("layer").apply(lambda g: metrics.uar(g["true"], g["pred"]))
        by_test = int(test_uar.idxmax())
        planted = by_test if by_test != chosen else int(test_uar.drop(str(chosen)).idxmax())
        rows = sub[sub["layer"] == str(planted)].assign(layer="best", chosen_layer=planted)
        table = pa.Table.from_pandas(rows[t.schema.names], schema=t.schema, preserve_index=False)
        pq.write_table(table.replace_schema_metadata(t.schema.metadata), f, write_page_checksum=True)
        f_best = key
        break
    assert f_best is not None
    problems = check_layer_choice(_preds(run))
    assert len(problems) == 1 and f_best in problems[0] and "source-validation choice" in problems[0]
