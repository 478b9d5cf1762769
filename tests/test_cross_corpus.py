"""The benchmark runner end to end on synthetic corpora, resume, and the spec on its artifacts."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments import cross_corpus
from spec.checks import check_run

pytest.importorskip("opensmile")


def _cfg(out, **kw):
    cfg = cross_corpus.load_config(cross_corpus.DEFAULT_CONFIG)
    cfg.out_dir = str(out)
    cfg.corpora = {"synth-alba": "", "synth-bruna": "", "synth-corva": ""}
    cfg.encoders = ["mfcc"]
    cfg.heads = ["fcn"]
    cfg.seeds = [0, 1]
    cfg.bootstrap = 50
    cfg.train = {"max_epochs": 8, "patience": 3}
    for k, v in kw.items():
        setattr(cfg, k, v)
    cross_corpus.validate(cfg)
    return cfg


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from jaxser.corpora import synthetic

    names = list(synthetic.CORPORA)[:3]
    out = tmp_path_factory.mktemp("run") / "r"
    cfg = _cfg(out, corpora={n: "" for n in names})
    cross_corpus.run(cfg, log=lambda *a: None)
    return out, cfg


def test_run_writes_every_artifact_and_passes_the_spec(run_dir):
    out, cfg = run_dir
    for f in ("manifest.json", "metadata.parquet", "splits.parquet", "cells.json", "results.csv", "results.json",
              "report.md", "table.tex"):
        assert (out / f).exists(), f
    assert list((out / "figures").glob("heatmap_*.png")) and (out / "figures" / "confusion_best_cross.png").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seeds"] == [0, 1] and set(manifest["corpora"]) == set(cfg.corpora)
    assert all(v["fingerprint"] for v in manifest["encoders"].values())
    results = pd.read_csv(out / "results.csv")
    n = len(cfg.corpora)
    assert set(results["setting"]) == {"same", "cross", "loco"}
    assert (results["setting"] == "cross").sum() == n * (n - 1)
    assert ((results["uar_ci_low"] <= results["uar_mean"] + 1e-9) & (results["uar_mean"] <= results["uar_ci_high"] + 1e-9)).all()
    report = (out / "report.md").read_text()
    assert "Cross-corpus" in report and "Ranking" in report
    assert check_run(out) == []


def test_results_agree_with_scikit_learn(run_dir):
    from sklearn.metrics import balanced_accuracy_score, f1_score

    out, _ = run_dir
    preds = pd.concat(pd.read_parquet(f) for f in (out / "predictions").glob("*.parquet"))
    results = pd.read_csv(out / "results.csv")
    r = results[results["setting"] == "cross"].iloc[0]
    sub = preds[(preds["setting"] == "cross") & (preds["source"] == r["source"]) & (preds["target"] == r["target"])]
    per_seed = [balanced_accuracy_score(g["true"], g["pred"]) for _, g in sub.groupby("seed")]
    f1 = [f1_score(g["true"], g["pred"], average="macro", zero_division=0) for _, g in sub.groupby("seed")]
    assert r["uar_mean"] == pytest.approx(np.mean(per_seed), abs=1e-9)
    assert r["macro_f1_mean"] == pytest.approx(np.mean(f1), abs=1e-9)


def _copy(run_dir, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(run_dir, dst)
    return dst


def test_spec_catches_planted_defects(run_dir, tmp_path):
    out, _ = run_dir
    meta = pd.read_parquet(out / "metadata.parquet").set_index("id")
    cells = json.loads((out / "cells.json").read_text())

    # 1. a test speaker leaks into the training split of a same-corpus fold
    d = _copy(out, tmp_path / "leak")
    splits = pd.read_parquet(d / "splits.parquet")
    preds = pd.concat(pd.read_parquet(f) for f in (d / "predictions").glob("*.parquet"))
    same = next(c for c in cells if c["setting"] == "same")
    test_id = preds.loc[preds["cell"] == same["name"], "id"].iloc[0]
    splits = pd.concat([splits, pd.DataFrame([{"train_key": same["train_key"], "role": "fit", "id": test_id}])])
    splits.to_parquet(d / "splits.parquet", index=False)
    assert any("test speakers also in training" in p for p in check_run(d))

    # 2. target-corpus data used for model selection in a cross cell
    d = _copy(out, tmp_path / "target")
    splits = pd.read_parquet(d / "splits.parquet")
    cross = next(c for c in cells if c["setting"] == "cross")
    tid = meta.index[meta["corpus"] == cross["target"]][0]
    splits = pd.concat([splits, pd.DataFrame([{"train_key": cross["train_key"], "role": "val", "id": tid}])])
    splits.to_parquet(d / "splits.parquet", index=False)
    assert any("target-corpus utterances used in training" in p for p in check_run(d))

    # 3. a reported metric that predictions do not support
    d = _copy(out, tmp_path / "metric")
    res = pd.read_csv(d / "results.csv")
    res.loc[0, "uar_mean"] += 0.05
    res.to_csv(d / "results.csv", index=False)
    assert any("recomputed from predictions" in p for p in check_run(d))

    # 4. a missing seed
    d = _copy(out, tmp_path / "seed")
    f = sorted((d / "predictions").glob("*.parquet"))[0]
    p = pd.read_parquet(f)
    p[p["seed"] != 1].to_parquet(f, index=False)
    assert any("seeds" in x for x in check_run(d))

    # 5. a label set that breaks the configured rule
    d = _copy(out, tmp_path / "labels")
    cj = json.loads((d / "cells.json").read_text())
    for c in cj:
        if c["setting"] == "cross":
            c["labels"] = c["labels"][:-1]
            break
    (d / "cells.json").write_text(json.dumps(cj))
    problems = check_run(d)
    assert any("label set" in x or "outside the label set" in x for x in problems)


def test_interrupted_run_resumes(run_dir, tmp_path):
    out, cfg = run_dir
    d = _copy(out, tmp_path / "resume")
    files = sorted((d / "predictions").glob("*.parquet"))
    before = pd.read_csv(d / "results.csv")
    files[0].unlink()  # as if the run died before this model finished
    (d / "results.csv").unlink()
    cfg2 = _cfg(d, corpora=cfg.corpora)
    cross_corpus.run(cfg2, log=lambda *a: None)
    after = pd.read_csv(d / "results.csv")
    pd.testing.assert_frame_equal(before, after)  # deterministic retraining of the missing model
    assert check_run(d) == []


def test_training_threads_change_no_prediction(run_dir, tmp_path):
    """The fixture trained its models in worker threads (several per core on CPU); one worker
    in the main thread must give the very same predictions, file by file."""
    out, cfg = run_dir
    assert cfg.workers is None  # the fixture used the default: threads on a multi-core CPU
    serial = tmp_path / "serial"
    cross_corpus.run(_cfg(serial, corpora=cfg.corpora, workers=1), log=lambda *a: None)
    files = sorted(p.name for p in (out / "predictions").glob("*.parquet"))
    assert files == sorted(p.name for p in (serial / "predictions").glob("*.parquet"))
    for name in files:
        pd.testing.assert_frame_equal(pd.read_parquet(out / "predictions" / name),
                                      pd.read_parquet(serial / "predictions" / name))


TWO_HOSTS = r"""
import json, sys
from experiments import cross_corpus as cc
cfg = cc.load_config(cc.DEFAULT_CONFIG)
for k, v in json.loads(sys.argv[1]).items():
    setattr(cfg, k, v)
cc.validate(cfg)
cc.run(cfg, log=print)
"""


def test_two_hosts_share_the_training(run_dir, tmp_path):
    """The runner launched on two jax.distributed processes (the multi-host recipe: same
    command everywhere, shared run directory and cache): each trains its share of the models,
    process 0 writes the report after a barrier; the run equals the one-process run."""
    from multihost import run_processes

    out, cfg = run_dir
    two = tmp_path / "two"
    study = dict(out_dir=str(two), corpora=cfg.corpora, encoders=cfg.encoders, heads=cfg.heads, seeds=cfg.seeds,
                 bootstrap=cfg.bootstrap, train=cfg.train)
    logs = run_processes(TWO_HOSTS, [json.dumps(study)], tmp_path)
    import re
    files = sorted(p.name for p in (out / "predictions").glob("*.parquet"))
    shares = [int(re.search(r"process \d of 2: (\d+) models to train here", log)[1]) for log in logs]
    assert sum(shares) == len(files) and min(shares) >= len(files) // 2  # split, not duplicated
    assert files == sorted(p.name for p in (two / "predictions").glob("*.parquet"))
    for name in files:
        pd.testing.assert_frame_equal(pd.read_parquet(out / "predictions" / name),
                                      pd.read_parquet(two / "predictions" / name))
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv"), pd.read_csv(two / "results.csv"))
    assert "writes the report" in logs[1]
    assert check_run(two) == []


def test_a_failing_model_stops_the_threaded_run_and_keeps_finished_ones(run_dir, tmp_path, monkeypatch):
    import threading

    import jaxser.train as train_mod
    out, cfg = run_dir
    real, calls, lock = train_mod.train_cells, [], threading.Lock()

    def flaky(*a, **kw):
        with lock:
            calls.append(1)
            n = len(calls)
        if n == 4:
            raise RuntimeError("planted failure")
        return real(*a, **kw)

    monkeypatch.setattr(train_mod, "train_cells", flaky)
    d = tmp_path / "flaky"
    with pytest.raises(RuntimeError, match="planted failure"):
        cross_corpus.run(_cfg(d, corpora=cfg.corpora, workers=2), log=lambda *a: None)
    written = list((d / "predictions").glob("*.parquet"))
    total = len(list((out / "predictions").glob("*.parquet")))
    assert 1 <= len(written) < total and not (d / "report.md").exists()
    monkeypatch.setattr(train_mod, "train_cells", real)  # the re-run trains only what is missing
    cross_corpus.run(_cfg(d, corpora=cfg.corpora, workers=2), log=lambda *a: None)
    assert len(list((d / "predictions").glob("*.parquet"))) == total and check_run(d) == []


def test_resume_refuses_a_different_study(run_dir, tmp_path):
    out, cfg = run_dir
    d = _copy(out, tmp_path / "other")
    cfg2 = _cfg(d, corpora=cfg.corpora, seeds=[0, 1, 2])
    with pytest.raises(cross_corpus.ConfigError, match="different study"):
        cross_corpus.run(cfg2, log=lambda *a: None)


def test_config_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[run]\nseedz = [1]\n")
    with pytest.raises(cross_corpus.ConfigError, match="unknown \\[run\\] keys"):
        cross_corpus.load_config(bad)
    with pytest.raises(cross_corpus.ConfigError, match="not canonical"):
        _cfg(tmp_path, labels=["angry", "furious"])
    assert cross_corpus.main(["--config", str(tmp_path / "missing.toml")]) == 2


def test_shipped_configs_parse():
    for f in Path(cross_corpus.CONFIG_DIR).glob("*.toml"):
        cfg = cross_corpus.load_config(f)
        cross_corpus.validate(cfg)
        assert cfg.encoders and cfg.corpora


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_run_units_writes_every_finished_model_before_the_error(exc):
    """A unit that fails while another runs: the running one finishes and is written, nothing is
    written twice, no more than `workers` run at once, and the error then propagates."""
    import threading

    failing_started = threading.Event()
    lock = threading.Lock()
    started, written, in_flight, peak = [], [], [0], [0]

    def train(u):
        with lock:
            started.append(u)
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        try:
            if u == 1:
                failing_started.set()
                raise exc("planted")
            if u == 0:
                failing_started.wait()  # still running when unit 1 fails
            return u * 10
        finally:
            with lock:
                in_flight[0] -= 1

    with pytest.raises(exc, match="planted"):
        cross_corpus.run_units(list(range(8)), train, lambda u, r: written.append((u, r)), workers=2)
    assert (0, 0) in written and peak[0] <= 2
    assert sorted(u for u, _ in written) == sorted(u for u in started if u != 1)
    assert all(r == u * 10 for u, r in written)
