"""The report on hand-built run directories: significance.csv, rankings with critical-difference
diagrams, like-with-like tables, speaker+text folds, and the spec's checks of all of them."""
from __future__ import annotations

import itertools
import json
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings, strategies as st

from jaxser import metrics, protocol, significance
from jaxser.corpora.schema import EMOTIONS
from jaxser.study import artifacts, figures, report, tables
from jaxser.errors import RunDirError
from spec.checks import block_count, check_run

FOUR = ("angry", "happy", "neutral", "sad")


def make_run(out, *, encoders=("good", "mid", "poor"), corpora=None, seeds=(0, 1),
             settings=("same", "cross", "loco"), labels=FOUR, split="speaker", constant=(), seed=0, heads=("fcn",)):
    """A finished run directory with predictions of made-up quality (no training): every file
    the runner writes, in its layout. ``corpora``: name -> emotions (default: three corpora
    with the four core classes). ``constant``: (encoder, cell name, seeds) predicting class 0."""
    corpora = corpora or {f"c{i}": FOUR for i in range(3)}
    rows = [(f"{c}/s{s}/{e}/t{t}", c, f"{c}/s{s}", e, f"t{t}") for c, emos in corpora.items()
            for s in range(4) for e in emos for t in range(3)]
    meta = pd.DataFrame(rows, columns=["id", "corpus", "speaker", "emotion", "text"])
    meta["group"] = meta["speaker"]
    meta["audio_sha256"] = [f"{i:064x}" for i in range(len(meta))]
    cells = protocol.make_cells(meta["corpus"], meta["group"], meta["emotion"], settings=settings, k=3,
                                labels=labels, seed=0, split=split, text=meta["text"])
    out.mkdir(parents=True)
    meta.to_parquet(out / "metadata.parquet", index=False)
    split_rows = []
    for c in cells:
        split_rows += [(c.train_key, "fit", u) for u in meta["id"].to_numpy()[c.fit]]
        split_rows += [(c.train_key, "val", u) for u in meta["id"].to_numpy()[c.val]]
    artifacts.write_cells(out, cells)
    pd.DataFrame(split_rows, columns=["train_key", "role", "id"]).drop_duplicates().to_parquet(
        out / "splits.parquet", index=False)
    manifest = {"config": {"corpora": {c: "" for c in corpora}, "encoders": list(encoders), "heads": list(heads),
                           "layers": ["last"], "seeds": list(seeds), "settings": list(settings),
                           "labels": list(labels) if labels else None, "k_folds": 3},
                "fingerprint": "f" * 12, "seeds": list(seeds), "git": "0" * 40, "skipped": {}}
    artifacts.write_manifest(out, manifest)
    rng = np.random.default_rng(seed)
    for (quality, enc), head in itertools.product(zip(np.linspace(0.8, 0.3, len(encoders)), encoders), heads):
        frames = []
        for c in cells:
            y = np.array([c.labels.index(e) for e in meta["emotion"].to_numpy()[c.test]])
            for s in seeds:
                hit = rng.random(y.size) < quality + rng.normal(0, 0.05)
                p = np.where(hit, y, rng.integers(0, len(c.labels), y.size))
                if any(e == enc and n == c.name and s in ss for e, n, ss in constant):
                    p = np.zeros_like(y)
                frames.append(pd.DataFrame({
                    "encoder": enc, "head": head, "layer": "last", "cell": c.name, "setting": c.setting,
                    "source": c.source, "target": c.target, "fold": c.fold, "seed": s, "train_key": c.train_key,
                    "id": meta["id"].to_numpy()[c.test], "true_label": np.asarray(c.labels)[y], "true": y,
                    "pred": p, "pred_label": np.asarray(c.labels)[p],
                    "probs": list(np.eye(len(c.labels), dtype=np.float32)[p]), "val_uar": 0.5, "best_epoch": 1}))
        df = pd.concat(frames, ignore_index=True).astype({"true": "int32", "pred": "int32"})
        for key, part in df.groupby("train_key", sort=False):  # one file per trained model, as a run writes
            identity = artifacts.model_identity(enc, head, "last", key)
            artifacts.write_predictions_file(artifacts.predictions_path(out, enc, head, "last", key),
                                             pa.Table.from_pandas(part, preserve_index=False),
                                             {"study_fingerprint": manifest["fingerprint"], **identity})
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = make_run(tmp_path_factory.mktemp("report") / "run",
                   constant=[("poor", "cross:c0->c1", (0, 1)), ("poor", "cross:c1->c2", (1,))])
    report.write_report(out, bootstrap=20)
    return out


def _copy(run, dst):
    shutil.copytree(run, dst)
    return dst


def test_the_report_takes_every_number_from_the_metrics_library():
    for name, home in (("batched_metrics", metrics), ("resampled_metrics", metrics), ("cell_arrays", tables),
                       ("format_p", significance)):
        assert getattr(report, name) is getattr(home, name)
    src = open(report.__file__).read()
    for own in ("def _from_counts", "def batched_metrics", "def resampled_metrics", "def _cell_arrays",
                "def paired_cross_test", "bincount", "np.mean(d <= 0)"):
        assert own not in src


def test_a_run_passes_the_spec_with_significance_csv(run):
    assert check_run(run) == []
    sig = pd.read_csv(run / "significance.csv")
    for col in ("setting", "head", "layer", "encoder_a", "encoder_b", "diff_uar", "ci_low", "ci_high", "p",
                "p_adjusted", "test", "unit", "n_units"):
        assert col in sig
    assert len(sig) == 2 * 3 * 3  # both claims, 3 encoder pairs in each of same, cross, loco
    assert sorted(sig["claim"].unique()) == ["new-corpora", "these-corpora"]
    cross = sig[sig["setting"] == "cross"]
    assert (cross["n_units"] == 6).all()
    new = cross[cross["claim"] == "new-corpora"]
    assert (new["n_clusters"] == 3).all() and (new["p_min"] == 0.25).all()  # 3 corpora: 2 / 2^3
    assert (sig["p_adjusted"] >= sig["p"] - 1e-12).all()
    assert "pseudo-values over corpora" in new["test"].iloc[0] and cross["unit"].iloc[0].startswith("corpus pair")
    fixed = cross[cross["claim"] == "these-corpora"]
    assert "training seeds and test utterances" in fixed["test"].iloc[0] and (fixed["p_min"] == 0).all()
    assert (sig["holm_family"] == sig["setting"] + "/" + sig["head"] + "/" + sig["layer"].astype(str)).all()
    md = (run / "report.md").read_text()
    assert "Are the differences between encoders significant?" in md and "docs/statistics.md" in md
    assert "Holm-adjusted p" in md and "smallest possible p" in md
    assert "**On these corpora**" in md and "**On new corpora**" in md
    assert "Smallest achievable p of this design: 0.250 with 3 corpora;" in md
    assert "too few corpora to claim anything about new corpora" in md


def test_report_wide_holm_family(run, tmp_path):
    d = _copy(run, tmp_path / "wide")
    report.write_report(d, bootstrap=0, family="report")
    sig = pd.read_csv(d / "significance.csv")
    assert (sig["holm_family"] == "report").all()
    for _, fam in sig.groupby("claim"):
        np.testing.assert_allclose(fam["p_adjusted"], significance.holm(fam["p"].to_numpy()))
    assert check_run(d) == []
    assert "the whole report (every setting, head and layer)" in (d / "report.md").read_text()


def test_significance_table_prints_p_as_format_p():
    sig = pd.DataFrame([{"setting": "cross", "encoder_a": "a", "encoder_b": "b", "mean_a": 0.6, "mean_b": 0.4,
                         "diff_uar": 0.2, "ci_low": 0.1, "ci_high": 0.3, "p": 1e-5, "p_adjusted": 3e-5,
                         "p_min": 1e-5, "significant": True, "n_units": 20, "n_clusters": 20}])
    t = report._sig_table(sig)
    assert t.loc[0, "p"] == "< 0.001" and t.loc[0, "p (Holm)"] == "< 0.001" and t.loc[0, "A − B"] == "+20.0"
    assert t.loc[0, "significant"] == "yes"
    assert t.loc[0, "A (UAR)"] == "a (60.0)" and t.loc[0, "B (UAR)"] == "b (40.0)"


def test_spec_catches_a_significance_csv_that_predictions_do_not_support(run, tmp_path):
    d = _copy(run, tmp_path / "diff")
    sig = pd.read_csv(d / "significance.csv")
    sig.loc[0, "diff_uar"] += 0.05
    sig.to_csv(d / "significance.csv", index=False)
    assert any("diff_uar" in p and "recomputed from predictions" in p for p in check_run(d))

    d = _copy(run, tmp_path / "holm")
    sig = pd.read_csv(d / "significance.csv")
    sig.loc[0, "p_adjusted"] = sig.loc[0, "p"] / 2
    sig.to_csv(d / "significance.csv", index=False)
    problems = check_run(d)
    assert any("is not in [p" in p for p in problems) and any("Holm" in p for p in problems)

    d = _copy(run, tmp_path / "fixed-p")
    sig = pd.read_csv(d / "significance.csv")
    row = sig.index[sig["claim"] == "these-corpora"][0]
    sig.loc[row, "p"] = sig.loc[row, "p"] * 0.5
    sig.to_csv(d / "significance.csv", index=False)
    assert any("these-corpora" in p and "the protocol's test" in p for p in check_run(d))

    d = _copy(run, tmp_path / "dropped")
    sig = pd.read_csv(d / "significance.csv")
    sig.iloc[1:].to_csv(d / "significance.csv", index=False)
    assert any("no row comparing" in p for p in check_run(d))

    d = _copy(run, tmp_path / "missing")
    (d / "significance.csv").unlink()
    assert "missing artifact significance.csv" in check_run(d)


def test_critical_difference_diagram_per_head_and_layer(run, tmp_path):
    assert (run / "figures" / "cd_fcn_last.png").exists()
    md = (run / "report.md").read_text()
    assert "](figures/cd_fcn_last.png)" in md and "Average ranks over 6 corpus pairs" in md
    one = make_run(tmp_path / "one", encoders=("solo",))
    report.write_report(one, bootstrap=0)
    md = (one / "report.md").read_text()
    assert "No critical-difference diagram: only one encoder" in md
    assert not list((one / "figures").glob("cd_*.png"))
    assert "No comparisons" in md and len(pd.read_csv(one / "significance.csv")) == 0


def test_ranking_shows_the_spread_over_pairs_not_a_ci(run):
    md = (run / "report.md").read_text()
    assert "SD over pairs" in md and "not an uncertainty of the mean" in md
    assert "CI of cells" not in md
    assert (run / "figures" / "ranking_fcn_last.png").exists()
    res = pd.read_csv(run / "results.csv")
    rank = report.ranking(res)
    cross = res[res["setting"] == "cross"].groupby("encoder")["uar_mean"]
    for _, r in rank.iterrows():
        assert r["cross_uar"] == pytest.approx(cross.mean()[r["encoder"]])
        assert r["cross_sd"] == pytest.approx(cross.std()[r["encoder"]])


def test_every_table_states_chance_and_constant_predictions_are_flagged(run):
    md = (run / "report.md").read_text()
    assert md.count("| chance (label set) |") == 3  # same, cross, loco tables
    assert "| c0 → c1 | 25.0 (L1) |" in md and "| c2 | 25.0 (L1) |" in md
    assert "- L1: neutral, happy, sad, angry (4 classes, chance 25.0%)" in md
    res = pd.read_csv(run / "results.csv")
    const = res.set_index(["encoder", "setting", "source", "target"])["constant_seeds"]
    assert const[("poor", "cross", "c0", "c1")] == 2 and const[("poor", "cross", "c1", "c2")] == 1
    assert const.drop([("poor", "cross", "c0", "c1"), ("poor", "cross", "c1", "c2")]).eq(0).all()
    assert "(const)" in md and "(const 1/2)" in md


def _tables(md: str) -> list[list[list[str]]]:
    """The Markdown tables in `md`, each as rows of cells, header row first (no |---| rule)."""
    tables, rows = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip("|").split("|")])
        elif rows:
            tables.append([rows[0]] + rows[2:])
            rows = []
    return tables


def _table_after(md: str, heading: str) -> list[list[str]]:
    return _tables(md[md.index(heading):])[0]


def test_the_report_lists_heads_encoders_pairs_and_label_sets_in_study_order(tmp_path):
    """Not alphabetically: heads, encoders as the config lists them, corpus pairs and label
    sets as the protocol makes the cells."""
    out = make_run(tmp_path / "order", encoders=("zeta", "alpha"), heads=("fcn", "cnn"), labels=None,
                   corpora={"zz": FOUR, "aa": FOUR + ("fear",), "mm": FOUR + ("fear",)})
    report.write_report(out, bootstrap=0)
    md = (out / "report.md").read_text()
    assert md.index("## Head `fcn`") < md.index("## Head `cnn`")
    assert "- L1: neutral, happy, sad, angry (4 classes" in md  # zz's same-corpus cells come first
    assert "- L2: neutral, happy, sad, angry, fear (5 classes" in md
    cross = _table_after(md, "### Cross-corpus")
    assert cross[0] == ["source → target", "chance (label set)", "zeta", "alpha"]
    assert [r[0] for r in cross[1:]] == ["zz → aa", "zz → mm", "aa → zz", "aa → mm", "mm → zz", "mm → aa",
                                         "*mean UAR (mixed label sets)*"]
    assert [r[1] for r in cross[1:-1]] == ["25.0 (L1)", "25.0 (L1)", "25.0 (L1)", "20.0 (L2)", "25.0 (L1)",
                                           "20.0 (L2)"]
    same = _table_after(md, "### Same-corpus")
    assert [r[0] for r in same[1:]] == ["zz", "aa", "mm", "*mean UAR (mixed label sets)*"]
    assert [r[0] for r in _table_after(md, "### Same→cross gap")[1:]] == [r[0] for r in cross[1:-1]]
    figures = md[md.index("## Figures"):]
    assert figures.index("heatmap zeta/fcn") < figures.index("heatmap alpha/fcn") < figures.index("heatmap zeta/cnn")
    tex = (out / "table.tex").read_text()
    assert tex.index("zeta & fcn") < tex.index("zeta & cnn") < tex.index("alpha & fcn")


def test_the_figure_list_puts_heatmaps_in_study_order_and_the_rest_after():
    order = report.StudyOrder({"encoders": ["zeta", "alpha"], "heads": ["fcn", "cnn"], "layers": ["last"]}, [])
    results = pd.DataFrame([(e, h, "last") for e in ("alpha", "zeta") for h in ("cnn", "fcn")],
                           columns=["encoder", "head", "layer"])
    figs = [(f"CCC heatmap {e}/{h}/last", f"{e}-{h}.png") for e, h in results[["encoder", "head"]].values]
    figs += [("predicted vs true, zeta/fcn/last", "scatter.png"), ("ranking fcn/last", "r.png")]
    listed = [n for n, _ in report._figure_list(figs, results, order, heatmap="CCC heatmap")]
    assert listed == ["CCC heatmap zeta/fcn/last", "CCC heatmap alpha/fcn/last", "CCC heatmap zeta/cnn/last",
                      "CCC heatmap alpha/cnn/last", "predicted vs true, zeta/fcn/last"]


def test_a_table_holds_at_most_six_encoders_and_keeps_every_number(tmp_path):
    encoders = tuple(f"e{i}" for i in range(8))
    out = make_run(tmp_path / "wide", encoders=encoders, settings=("cross",), seeds=(0,))
    report.write_report(out, bootstrap=0)
    md = (out / "report.md").read_text()
    start = md.index("### Cross-corpus")
    section = md[start:md.index("\n### ", start)]
    first, second = _tables(section)
    assert first[0] == ["source → target", "chance (label set)", *encoders[:6]]
    assert second[0] == ["source → target", "chance (label set)", *encoders[6:]]
    assert [r[0] for r in first] == [r[0] for r in second]
    assert max(len(line) for line in section.splitlines()) < 160
    res = pd.read_csv(out / "results.csv")
    shown = {(r[0], enc): v for t in (first, second) for r in t[1:-1] for enc, v in zip(t[0][2:], r[2:])}
    for _, r in res.iterrows():
        assert shown[(f"{r['source']} → {r['target']}", r["encoder"])].startswith(
            f"{100 * r['uar_mean']:.1f} ± {100 * r['uar_std']:.1f}")


def test_the_gap_is_only_formed_within_one_label_set(tmp_path):
    five = FOUR + ("fear",)
    out = make_run(tmp_path / "shared", encoders=("a", "b"), labels=None,
                   corpora={"c0": five, "c1": FOUR, "c2": five})
    report.write_report(out, bootstrap=0)
    assert check_run(out) == []
    md = (out / "report.md").read_text()
    assert "- L1: neutral, happy, sad, angry, fear (5 classes, chance 20.0%)" in md
    assert "- L2: neutral, happy, sad, angry (4 classes, chance 25.0%)" in md
    cells = artifacts.read_cells(out)
    gaps = tables.gap_rows(scores=tables.unit_scores(
        artifacts.read_predictions(out, fingerprint="f" * 12, cells=cells), cells=cells))
    # c1 -> c0 and c1 -> c2 share 4 classes, but c0 and c2 are scored on 5 in their same-corpus cells
    missing = gaps[gaps["gap"].isna()]
    assert set(zip(missing["source"], missing["target"])) == {("c1", "c0"), ("c1", "c2")}
    assert missing["note"].str.startswith("label sets differ").all()
    assert "n/a (different label sets)" in md and "mean UAR (mixed label sets)" in md
    assert "(4/6 pairs)" in md  # the mean gap is over the 4 pairs where it is defined


def test_blank_settings_are_explained(tmp_path):
    out = make_run(tmp_path / "noloco", encoders=("a", "b"), settings=("same", "cross"))
    report.write_report(out, bootstrap=0)
    md = (out / "report.md").read_text()
    assert "settings (same, cross) exclude loco" in md and "LOCO UAR" not in md
    two = make_run(tmp_path / "two", encoders=("a", "b"), corpora={"c0": FOUR, "c1": FOUR})
    report.write_report(two, bootstrap=0)
    assert "LOCO needs at least 3 corpora" in (two / "report.md").read_text()
    assert "\\begin{tabular}" in (two / "table.tex").read_text() and "Chance" in (two / "table.tex").read_text()


def test_one_heatmap_scale_and_one_class_order():
    res = pd.DataFrame({"setting": ["same", "cross", "loco"], "uar_mean": [0.93, 0.31, 0.05]})
    assert figures.heatmap_scale(res) == (30.0, 100.0)  # loco is not in the heatmaps
    assert protocol.canonical_order(["sad", "angry", "neutral", "happy"]) == ("neutral", "happy", "sad", "angry")
    # EmoBox's extra classes come after the nine canonical emotions; a label outside EMOTIONS is refused
    assert protocol.canonical_order(["worried", "angry", "amused", "angry"]) == ("angry", "amused", "worried")
    with pytest.raises(protocol.ProtocolError, match="unknown labels \\['zzz'\\]"):
        protocol.canonical_order(["sad", "angry", "zzz", "neutral", "happy"])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(EMOTIONS), max_size=30))
def test_canonical_order_is_emotions_order_whatever_the_input_order(labels):
    out = protocol.canonical_order(labels)
    assert set(out) == set(labels) and len(out) == len(set(labels))
    assert [EMOTIONS.index(e) for e in out] == sorted(EMOTIONS.index(e) for e in out)
    assert protocol.canonical_order(reversed(labels)) == out == protocol.canonical_order(out)


def test_speaker_text_folds_pass_the_spec_and_the_report_counts_withheld_utterances(tmp_path):
    out = make_run(tmp_path / "st", encoders=("a", "b"), split="speaker+text", settings=("same", "cross"))
    report.write_report(out, bootstrap=0)
    assert check_run(out) == []
    cells = json.loads((out / "cells.json").read_text())
    same = [c for c in cells if c["setting"] == "same"]
    assert all(c["split"] == "speaker+text" for c in same) and len(same) == 3 * 3 * 3  # 3 corpora x 3 x 3
    md = (out / "report.md").read_text()
    assert "## Speaker+text folds: training utterances withheld" in md
    lost = [c["excluded_train"] for c in same if c["source"] == "c0"]
    assert f"| c0 | 9 | {np.mean(lost):.1f} ({min(lost)}–{max(lost)}) |" in md

    # planted defect: a training utterance of another speaker says a sentence of the test block
    meta = pd.read_parquet(out / "metadata.parquet").set_index("id")
    splits = pd.read_parquet(out / "splits.parquet")
    preds = artifacts.read_predictions(out, fingerprint="f" * 12, cells=cells).query("encoder == 'a'")
    c = same[0]
    test_ids = preds.loc[preds["cell"] == c["name"], "id"].unique()
    test_spk, test_txt = set(meta.loc[test_ids, "speaker"]), set(meta.loc[test_ids, "text"])
    train_ids = set(splits.loc[splits["train_key"] == c["train_key"], "id"])
    leak = next(i for i, r in meta.iterrows() if r["corpus"] == c["source"] and r["text"] in test_txt
                and r["speaker"] not in test_spk and i not in train_ids and r["emotion"] in c["labels"])
    d = _copy(out, tmp_path / "leak")
    pd.concat([splits, pd.DataFrame([{"train_key": c["train_key"], "role": "fit", "id": leak}])]).to_parquet(
        d / "splits.parquet", index=False)
    problems = check_run(d)
    assert any(c["name"] in p and "sentence ids in both" in p for p in problems)


def test_block_count_check():
    groups = np.repeat([f"s{i}" for i in range(4)], 3)
    text = np.tile(["t0", "t1", "t2"], 4)
    assert block_count("c", 9, groups, text, 3) == []
    assert "expected k_s x k_t = 3 x 3" in block_count("c", 8, groups, text, 3)[0]
    assert block_count("c", 3, groups, [""] * 12, 3) == []  # no sentence ids: speaker folds


def _one_line_error(fn, match):
    with pytest.raises(RunDirError, match=match) as e:
        fn()
    assert "\n" not in str(e.value)
    return str(e.value)


def test_a_damaged_run_file_stops_the_report_with_the_readers_one_line(run, tmp_path):
    """The report reads the run directory through artifacts' verified readers: a damaged file
    gives the reader's one-line error, naming the file and what to do."""
    d = _copy(run, tmp_path / "cells")
    cells_json = d / "cells.json"
    cells_json.write_bytes(cells_json.read_bytes()[: cells_json.stat().st_size // 2])  # truncated
    said = _one_line_error(lambda: report.write_report(d, bootstrap=0),
                           r"cells.json is damaged \(JSONDecodeError.*re-run the study")
    assert said == _one_line_error(lambda: artifacts.read_cells(d), "cells.json")

    d = _copy(run, tmp_path / "manifest")
    (d / "manifest.json").write_text('{"config": {}}')  # no study fingerprint
    _one_line_error(lambda: report.write_report(d, bootstrap=0), "manifest.json is damaged.*fingerprint")

    d = _copy(run, tmp_path / "predictions")
    files = artifacts.predictions_files(d)
    truncated = files[0]
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    said = _one_line_error(lambda: report.write_report(d, bootstrap=0),
                           "is damaged.*delete it and re-run the study, which retrains that model")
    assert said.startswith(str(truncated))

    # a footer whose identity no longer matches its digest: damaged, not another study's
    d = _copy(run, tmp_path / "footer")
    f = artifacts.predictions_files(d)[0]
    t = pq.read_table(f)
    meta = dict(t.schema.metadata)
    meta[b"jaxser.encoder"] = b"someone-else"
    pq.write_table(t.replace_schema_metadata(meta), f, write_page_checksum=True)
    said = _one_line_error(lambda: report.write_report(d, bootstrap=0), "no intact study fingerprint")
    assert said.startswith(str(f))

    # another study's predictions, intact: refused as such
    d = _copy(run, tmp_path / "foreign")
    f = artifacts.predictions_files(d)[0]
    t = pq.read_table(f)
    identity = {k.decode()[len("jaxser."):]: v.decode() for k, v in t.schema.metadata.items()
                if k.decode() in artifacts.PRED_META}
    artifacts.write_predictions_file(f, t.replace_schema_metadata({}), {**identity, "study_fingerprint": "0" * 12})
    with pytest.raises(artifacts.ForeignPredictions, match="another study"):
        report.write_report(d, bootstrap=0)

    # predictions of a cell cells.json does not list
    d = _copy(run, tmp_path / "cells-list")
    artifacts.write_cells(d, [])
    _one_line_error(lambda: report.write_report(d, bootstrap=0), "predictions of cells .* cells.json does not list")

    d = _copy(run, tmp_path / "none")
    shutil.rmtree(d / artifacts.PREDICTIONS_DIR)
    _one_line_error(lambda: report.write_report(d, bootstrap=0), "no predictions files; run the study")


def test_layer_profile_means_bands_peaks_and_like_with_like_gaps():
    rows = []
    for layer, (same, cross) in enumerate([(0.6, 0.40), (0.7, 0.50), (0.65, 0.45)]):
        for s, t, v, setting in (("c0", "c0", same, "same"), ("c1", "c1", same - 0.1, "same"),
                                 ("c0", "c1", cross, "cross"), ("c1", "c0", cross + 0.02, "cross")):
            rows.append({"encoder": "e", "head": "fcn", "layer": str(layer), "setting": setting, "source": s,
                         "target": t, "uar_mean": v})
    rows.append({"encoder": "e", "head": "fcn", "layer": "last", "setting": "cross", "source": "c0",
                 "target": "c1", "uar_mean": 0.9})  # not a hidden-state index: not in the profile
    results = pd.DataFrame(rows)
    gaps = pd.DataFrame({"encoder": "e", "head": "fcn", "layer": ["0", "0", "1", "1", "2", "2"],
                         "gap": [0.1, np.nan, 0.2, np.nan, 0.3, np.nan]})  # NaN: label sets differ
    prof = report.layer_profile(results, gaps)
    assert sorted(prof["layer"].unique()) == [0, 1, 2]
    peaks = prof[prof["peak"]].set_index("setting")["layer"]
    assert peaks["same"] == 1 and peaks["cross"] == 1
    cross1 = prof[(prof["setting"] == "cross") & (prof["layer"] == 1)].iloc[0]
    assert cross1["uar"] == pytest.approx(0.51) and cross1["low"] < 0.51 < cross1["high"]
    assert cross1["gap"] == pytest.approx(0.2) and cross1["n_gap"] == 1
    table = report.best_layers(prof, results)
    assert set(table["peak layer"]) == {1}


def test_statistics_plan_before_a_run(tmp_path):
    """From the config alone: one line per claim, and a warning when new corpora are out of reach."""
    from jaxser.study.config import ConfigError, load_config

    cfg = load_config("default")  # 4 corpora, 3 encoders
    lines = report.statistics_plan(cfg)
    assert lines[0].startswith("statistics: on these corpora: no floor on p")
    assert "3 comparisons in each table" in lines[0]
    assert "smallest p 0.125 with 4 corpora" in lines[1] and "0.375 after Holm" in lines[1]
    assert lines[2].startswith("warning: no comparison on new corpora can be significant") and "7 corpora" in lines[2]
    assert lines[3].startswith("statistics: ranking") and "descriptive" not in lines[3]
    toml = tmp_path / "wide.toml"
    toml.write_text('[run]\nfamily = "report"\n[corpora]\na = ""\nb = ""\n[models]\nencoders = ["x", "y"]\n')
    wide = load_config(toml)
    assert wide.family == "report" and "family" not in wide.study()  # report-only: runs resume
    assert "in the report" in report.statistics_plan(wide)[0]
    toml.write_text('[run]\nfamily = "pairs"\n[corpora]\na = ""\nb = ""\n[models]\nencoders = ["x"]\n')
    from jaxser.study.config import validate
    with pytest.raises(ConfigError, match="family"):
        validate(load_config(toml))
