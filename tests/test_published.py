"""Published numbers (the EmoBox paper's tables as data) and the report's comparison with them."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score

from jaxser import encoders
from jaxser.study import published, report
from tests.test_report import FOUR, make_run

EMOBOX_CORPORA = {"aesdd", "ased", "asvpesd", "cafe", "casia", "cremad", "emns", "emodb", "emovdb", "emovo",
                  "emozionalmente", "enterface", "esd", "iemocap", "jlcorpus", "m3ed", "mead", "meld", "mer2023",
                  "mesd", "msppodcast", "oreau", "pavoque", "polish", "ravdess", "resd", "savee", "shemo",
                  "subesco", "tess", "turevdb", "urdu"}


def test_published_table_is_complete_and_names_its_source():
    t = published.published()
    assert tuple(t.columns) == published.COLUMNS
    assert t["paper"].str.contains("2406.07162").all() and set(t["table"]) == {"Table 4", "Table 5"}
    assert set(t["encoder"]) <= set(encoders.available())  # only models jaxser ports
    assert ((t["value"] > 0) & (t["value"] <= 100)).all()
    intra, cross = t[t["table"] == "Table 4"], t[t["table"] == "Table 5"]
    assert set(intra["corpus"]) == EMOBOX_CORPORA and (intra["train"] == intra["test"]).all()
    # every (model, corpus) has UA, WA and F1 once
    metric_sets = intra.groupby(["encoder", "corpus"])["metric"].agg(lambda m: tuple(sorted(m)))
    assert set(metric_sets) == {("accuracy", "macro_f1", "uar")} and len(metric_sets) == 8 * len(EMOBOX_CORPORA)
    # Table 5: the 12 ordered pairs of the track, accuracy, for every model
    pairs = cross.groupby("encoder").apply(lambda g: sorted(zip(g["train"], g["test"])), include_groups=False)
    track = ("iemocap", "meld", "ravdess", "savee")
    assert all(p == sorted((a, b) for a in track for b in track if a != b) for p in pairs)
    assert set(cross["metric"]) == {"accuracy"} and not t.duplicated(["encoder", "setting", "train", "test",
                                                                      "metric"]).any()


def _preds(rng, folds=2, seeds=(0, 1), n=40):
    rows = []
    for f in range(1, folds + 1):
        y = rng.integers(0, 4, n)
        for s in seeds:
            p = np.where(rng.random(n) < 0.6, y, rng.integers(0, 4, n))
            rows.append(pd.DataFrame({"encoder": "wavlm-large", "head": "fcn", "layer": "last",
                                      "cell": f"same:ravdess->ravdess/fold{f}", "setting": "same",
                                      "source": "ravdess", "target": "ravdess", "fold": f, "seed": s,
                                      "id": [f"ravdess/f{f}u{i}" for i in range(n)], "true": y, "pred": p}))
    return pd.concat(rows, ignore_index=True)


def test_comparison_is_the_mean_over_folds_and_flags_differences():
    preds = _preds(np.random.default_rng(0))
    cells = [{"name": f"same:ravdess->ravdess/fold{f}", "labels": list(FOUR)} for f in (1, 2)]
    table = published.published()
    comp = published.comparison(preds, cells, table=table, n_boot=200)
    assert list(comp["metric"]) == ["uar", "accuracy", "macro_f1"]
    # EmoBox's score: each fold's metric (mean over seeds), averaged over folds
    per_fold = [np.mean([balanced_accuracy_score(g["true"], g["pred"]) for _, g in fg.groupby("seed")])
                for _, fg in preds.groupby("cell")]
    uar = comp.set_index("metric").loc["uar"]
    assert uar["jaxser"] == pytest.approx(100 * np.mean(per_fold), abs=1e-9)
    assert uar["ci_low"] <= uar["jaxser"] <= uar["ci_high"] and uar["folds"] == 2
    want = table[(table["encoder"] == "wavlm-large") & (table["corpus"] == "ravdess") & (table["metric"] == "uar")]
    assert uar["published"] == want["value"].iloc[0] and "Table 4" in uar["source_table"]
    assert uar["differs"] == (not uar["ci_low"] <= uar["published"] <= uar["ci_high"])
    # a published value inside the interval is not flagged
    inside = table.copy()
    sel = (inside["encoder"] == "wavlm-large") & (inside["corpus"] == "ravdess") & (inside["metric"] == "accuracy")
    acc = np.mean([np.mean([accuracy_score(g["true"], g["pred"]) for _, g in fg.groupby("seed")])
                   for _, fg in preds.groupby("cell")])
    inside.loc[sel, "value"] = 100 * acc
    row = published.comparison(preds, cells, table=inside, n_boot=200).set_index("metric").loc["accuracy"]
    assert not row["differs"]
    md = "\n".join(published.markdown(comp))
    assert "## Published numbers (EmoBox)" in md and "same:ravdess->ravdess" in md


def test_report_of_an_emobox_run_sets_published_numbers_beside_ours(tmp_path):
    out = make_run(tmp_path / "run", encoders=("wavlm-large", "mfcc"),
                   corpora={"ravdess": FOUR, "savee": FOUR}, settings=("same", "cross"))
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["protocol"] = {"split": "emobox"}
    (out / "manifest.json").write_text(json.dumps(manifest))
    report.write_report(out, bootstrap=100)
    comp = pd.read_csv(out / published.COMPARISON_FILE)
    assert set(comp["encoder"]) == {"wavlm-large"}  # mfcc is not in the paper
    assert set(zip(comp["setting"], comp["source"], comp["target"])) == {
        ("same", "ravdess", "ravdess"), ("same", "savee", "savee"), ("cross", "ravdess", "savee"),
        ("cross", "savee", "ravdess"), ("cross", "mean", "mean")}
    # the track's mean over pairs, on both sides
    acc = comp[(comp["setting"] == "cross") & (comp["metric"] == "accuracy")].set_index("source")
    assert acc.loc["mean", "jaxser"] == pytest.approx(acc.drop("mean")["jaxser"].mean())
    assert acc.loc["mean", "published"] == pytest.approx(acc.drop("mean")["published"].mean())
    assert acc.loc["mean", "ci_low"] <= acc.loc["mean", "jaxser"] <= acc.loc["mean", "ci_high"]
    track = pd.read_csv(out / published.TRACK_FILE)
    mf = track[track["encoder"] == "mfcc"].set_index("source")
    assert list(mf.index) == ["ravdess", "savee", "mean"]
    assert mf.loc["mean", "accuracy"] == pytest.approx(mf.drop("mean")["accuracy"].mean())
    results = pd.read_csv(out / "results.csv")
    r = results[(results["encoder"] == "mfcc") & (results["setting"] == "cross") & (results["source"] == "savee")]
    assert mf.loc["savee", "accuracy"] == pytest.approx(100 * r["accuracy_mean"].iloc[0])
    text = (out / "report.md").read_text()
    assert "## Published numbers (EmoBox)" in text and "Table 5" in text
    # EmoBox's scores per fold, for every encoder, and their mean over folds
    folds = pd.read_csv(out / published.FOLDS_FILE, dtype={"fold": str})
    rav = folds[(folds["encoder"] == "mfcc") & (folds["source"] == "ravdess")]
    assert list(rav["fold"]) == ["0", "1", "2", "mean"]
    assert rav["uar"].iloc[-1] == pytest.approx(rav["uar"].iloc[:-1].mean())
    same = comp[(comp["setting"] == "same") & (comp["source"] == "ravdess") & (comp["metric"] == "uar")]
    wl = folds[(folds["encoder"] == "wavlm-large") & (folds["source"] == "ravdess") & (folds["fold"] == "mean")]
    assert same["jaxser"].iloc[0] == pytest.approx(wl["uar"].iloc[0])
