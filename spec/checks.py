"""Executable protocol checks, for planned cells and for finished run directories.

Each check returns a list of violations (human-readable strings); empty means conforming.
They are deliberately written from the protocol text (protocol.toml / DESIGN.md), not by
calling the code that made the splits, so a bug there cannot hide itself here.
"""
from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

SPEC_DIR = Path(__file__).resolve().parent


def load_protocol() -> dict:
    return tomllib.loads((SPEC_DIR / "protocol.toml").read_text())


def check_cells(meta: pd.DataFrame, cells, *, k: int | None = None, fixed_labels=None) -> list[str]:
    """Invariants of planned cells over a metadata table (columns corpus, group, speaker, emotion).

    `cells` are jaxser.protocol.Cell objects (or anything with the same attributes).
    """
    proto = load_protocol()
    k = k or proto["same_corpus"]["k_folds"]
    out: list[str] = []
    corpus = meta["corpus"].to_numpy()
    group = meta["group"].to_numpy() if "group" in meta else meta["speaker"].to_numpy()
    speaker = meta["speaker"].to_numpy()
    emotion = meta["emotion"].to_numpy()
    for c in cells:
        fit, val, test = (np.asarray(x, dtype=int) for x in (c.fit, c.val, c.test))
        name = c.name
        if len(test) == 0 or len(fit) == 0:
            out.append(f"{name}: empty fit or test set")
        for a, b, what in ((fit, val, "fit/val"), (fit, test, "fit/test"), (val, test, "val/test")):
            if np.intersect1d(a, b).size:
                out.append(f"{name}: {what} share {np.intersect1d(a, b).size} utterances")
        train = np.concatenate([fit, val])
        if np.intersect1d(speaker[train], speaker[test]).size:
            out.append(f"{name}: speakers in both training/validation and test: "
                       f"{sorted(set(speaker[train]) & set(speaker[test]))[:5]}")
        if np.intersect1d(group[train], group[test]).size:
            out.append(f"{name}: fold groups in both training/validation and test")
        if c.val_speaker_disjoint and np.intersect1d(speaker[fit], speaker[val]).size:
            out.append(f"{name}: validation speakers also in fit split")
        if set(corpus[test]) != {c.target}:
            out.append(f"{name}: test rows from {sorted(set(corpus[test]))}, expected only {c.target}")
        sources = set(c.source.split("+"))
        if set(corpus[train]) - sources:
            out.append(f"{name}: training/validation uses corpora {sorted(set(corpus[train]) - sources)} "
                       f"outside the source {sorted(sources)}")
        if c.setting != "same" and c.target in set(corpus[train]):
            out.append(f"{name}: target corpus {c.target} used in training or model selection")
        labs = set(c.labels)
        if len(labs) < 2:
            out.append(f"{name}: fewer than 2 classes")
        if set(emotion[np.concatenate([train, test])]) - labs:
            out.append(f"{name}: rows with labels outside the cell's label set {sorted(labs)}")
        if fixed_labels and labs != set(fixed_labels) and (
                c.setting != "same" or labs != set(emotion[corpus == c.target])):
            out.append(f"{name}: label set {c.labels} is neither the configured {tuple(fixed_labels)} "
                       "nor (same-corpus) the corpus' own classes")
        if not fixed_labels and c.setting == "cross":
            shared = set(emotion[corpus == c.source]) & set(emotion[corpus == c.target])
            if labs != shared:
                out.append(f"{name}: label set {sorted(labs)} is not the shared set {sorted(shared)}")
        in_target = corpus == c.target
        expected_test = np.flatnonzero(in_target & np.isin(emotion, list(labs)))
        if c.setting != "same":
            if not np.array_equal(np.sort(test), expected_test):
                out.append(f"{name}: test set is not all of {c.target} within the label set")
            if c.excluded != int(in_target.sum() - len(expected_test)):
                out.append(f"{name}: excluded count {c.excluded} != {int(in_target.sum() - len(expected_test))}")
    # same-corpus: folds partition the usable utterances; fold count follows k / LOSO
    same: dict[str, list] = {}
    for c in cells:
        if c.setting == "same":
            same.setdefault(c.source, []).append(c)
    for name, cs in same.items():
        labs = set(cs[0].labels)
        usable = np.flatnonzero((corpus == name) & np.isin(emotion, list(labs)))
        tested = np.concatenate([np.asarray(c.test, int) for c in cs])
        counts = np.bincount(tested, minlength=len(meta))
        if np.any(counts[usable] != 1):
            out.append(f"same:{name}: {int(np.sum(counts[usable] != 1))} utterances not tested exactly once")
        n_groups = len(set(group[usable]))
        if len(cs) != min(k, n_groups):
            out.append(f"same:{name}: {len(cs)} folds, expected min(k={k}, groups={n_groups})")
    return out


def _recompute(preds: pd.DataFrame) -> pd.DataFrame:
    """Per-seed metrics of each result row, recomputed from predictions with scikit-learn
    formulas written out here (UAR = mean recall over classes present in the truth)."""
    rows = []
    keys = ["encoder", "head", "layer", "setting", "source", "target", "seed"]
    for key, g in preds.groupby(keys, sort=False):
        y, p = g["true"].to_numpy(), g["pred"].to_numpy()
        classes = np.unique(y)
        recalls = [np.mean(p[y == c] == c) for c in classes]
        labels = np.union1d(classes, np.unique(p))
        f1s = []
        for c in labels:
            tp = np.sum((p == c) & (y == c))
            fp = np.sum((p == c) & (y != c))
            fn = np.sum((p != c) & (y == c))
            f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
        rows.append(dict(zip(keys, key), uar=float(np.mean(recalls)), accuracy=float(np.mean(y == p)),
                         macro_f1=float(np.mean(f1s)), n_test=len(y)))
    return pd.DataFrame(rows)


def check_run(run_dir: str | Path) -> list[str]:
    """Check a finished run directory against the protocol (see DESIGN.md, Artifacts)."""
    run = Path(run_dir)
    proto = load_protocol()
    out: list[str] = []
    for f in ("manifest.json", "metadata.parquet", "splits.parquet", "cells.json", "results.csv", "report.md"):
        if not (run / f).exists():
            out.append(f"missing artifact {f}")
    if out:
        return out
    def read(name, how):
        try:
            return how(run / name)
        except Exception as e:  # name the damaged artifact rather than fail with a traceback
            out.append(f"{run / name}: unreadable ({type(e).__name__})")

    manifest = read("manifest.json", lambda f: json.loads(f.read_text()))
    meta = read("metadata.parquet", lambda f: pd.read_parquet(f).set_index("id"))
    splits = read("splits.parquet", pd.read_parquet)
    cells = read("cells.json", lambda f: json.loads(f.read_text()))
    if out:
        return out
    pred_files = sorted((run / "predictions").glob("*.parquet"))
    if not pred_files:
        return out + ["no predictions/*.parquet"]
    frames = []
    for f in pred_files:
        try:
            table = pq.read_table(f, page_checksum_verification=True)
        except Exception as e:  # pyarrow raises several types for damaged files
            out.append(f"{f}: unreadable predictions file ({type(e).__name__})")
            continue
        fp = (table.schema.metadata or {}).get(b"jaxser.study_fingerprint", b"").decode(errors="replace")
        if fp != manifest.get("fingerprint"):
            out.append(f"{f}: study fingerprint {fp or '(none)'} differs from manifest.json's "
                       f"{manifest.get('fingerprint')}")
        frames.append(table.to_pandas())
    if not frames:
        return out
    preds = pd.concat(frames, ignore_index=True)
    lengths = preds["probs"].map(len).to_numpy()
    if (lengths == 0).any():
        out.append(f"{int((lengths == 0).sum())} predictions have no probabilities")
    ok = np.isfinite(np.concatenate([np.asarray(p, dtype=float) for p in preds["probs"]] + [np.zeros(0)]))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    finite = np.array([ok[a:a + n].all() for a, n in zip(starts, lengths)], dtype=bool)
    if not finite.all():
        out.append(f"{int((~finite).sum())} predictions have non-finite probabilities "
                   f"(first: {preds.loc[~finite, 'id'].iloc[0]} in cell {preds.loc[~finite, 'cell'].iloc[0]})")
    results = pd.read_csv(run / "results.csv")
    cfg = manifest["config"]
    seeds = list(manifest["seeds"])
    tol = proto["metrics"]["metric_tolerance"]

    # 1. every configured cell x encoder x head x layer x seed is present
    expected_models = [(e, h, str(layer)) for e in cfg["encoders"] for h in cfg["heads"] for layer in cfg["layers"]]
    have = set(map(tuple, preds[["encoder", "head", "layer", "cell"]].astype(str).drop_duplicates().to_numpy()))
    for e, h, layer in expected_models:
        for c in cells:
            if (e, h, layer, c["name"]) not in have:
                out.append(f"missing predictions for {e}/{h}/layer {layer}/{c['name']}")
    got_seeds = preds.groupby(["encoder", "head", "layer", "cell"])["seed"].agg(lambda s: sorted(set(s)))
    for key, s in got_seeds.items():
        if s != sorted(seeds):
            out.append(f"{'/'.join(map(str, key))}: seeds {s}, configured {sorted(seeds)}")

    # 2. splits: speaker / corpus / recording leakage, label sets, test sets
    digest = meta["audio_sha256"] if "audio_sha256" in meta else None
    if digest is None:
        out.append("metadata.parquet has no audio_sha256 column: the same recording on both sides of a split "
                   "cannot be ruled out")
    for c in cells:
        tr = splits[splits["train_key"] == c["train_key"]]
        train_ids = tr["id"].to_numpy()
        test_ids = preds.loc[preds["cell"] == c["name"], "id"].unique()
        if len(train_ids) == 0:
            out.append(f"{c['name']}: no training rows recorded in splits.parquet")
            continue
        missing = [i for i in np.concatenate([train_ids, test_ids]) if i not in meta.index]
        if missing:
            out.append(f"{c['name']}: ids not in metadata: {missing[:3]}")
            continue
        tr_meta, te_meta = meta.loc[train_ids], meta.loc[test_ids]
        leak = set(tr_meta["speaker"]) & set(te_meta["speaker"])
        if leak:
            out.append(f"{c['name']}: test speakers also in training/validation: {sorted(leak)[:5]}")
        if digest is not None:
            shared = (set(digest.loc[train_ids]) & set(digest.loc[test_ids])) - {""}
            if shared:
                both = te_meta.index[digest.loc[test_ids].isin(shared).to_numpy()]
                out.append(f"{c['name']}: {len(shared)} recordings (same audio_sha256) in both training/validation "
                           f"and test, e.g. test utterance {both[0]}")
        if set(te_meta["corpus"]) != {c["target"]}:
            out.append(f"{c['name']}: test utterances from {sorted(set(te_meta['corpus']))}")
        if c["setting"] != "same" and c["target"] in set(tr_meta["corpus"]):
            out.append(f"{c['name']}: target-corpus utterances used in training or model selection")
        if set(tr_meta["corpus"]) - set(c["source"].split("+")):
            out.append(f"{c['name']}: training uses corpora outside its source")
        fit, val = tr[tr["role"] == "fit"], tr[tr["role"] == "val"]
        if c["val_speaker_disjoint"] and set(meta.loc[fit["id"], "speaker"]) & set(meta.loc[val["id"], "speaker"]):
            out.append(f"{c['name']}: validation speakers overlap the fit split")
        labs = set(c["labels"])
        if set(tr_meta["emotion"]) - labs or set(te_meta["emotion"]) - labs:
            out.append(f"{c['name']}: utterances outside the label set {sorted(labs)}")
        fixed = cfg.get("labels")
        if fixed and c["setting"] != "same" and labs != set(fixed):
            out.append(f"{c['name']}: label set {c['labels']} differs from the configured {fixed}")
        if not fixed and c["setting"] == "cross":
            shared = set(meta.loc[meta["corpus"] == c["source"], "emotion"]) & set(
                meta.loc[meta["corpus"] == c["target"], "emotion"])
            if labs != shared:
                out.append(f"{c['name']}: label set is not the shared set {sorted(shared)}")
        if c["setting"] != "same":
            n_target = int(((meta["corpus"] == c["target"]) & meta["emotion"].isin(labs)).sum())
            if len(test_ids) != n_target:
                out.append(f"{c['name']}: {len(test_ids)} test utterances, target has {n_target} in the label set")
    # same-corpus: each usable utterance tested exactly once per model and seed
    same = [c for c in cells if c["setting"] == "same"]
    for corpus in sorted({c["source"] for c in same}):
        names = [c["name"] for c in same if c["source"] == corpus]
        labs = set(next(c["labels"] for c in same if c["source"] == corpus))
        usable = set(meta.index[(meta["corpus"] == corpus) & meta["emotion"].isin(labs)])
        sub = preds[preds["cell"].isin(names)]
        for key, g in sub.groupby(["encoder", "head", "layer", "seed"]):
            counts = g["id"].value_counts()
            if set(counts.index) != usable or (counts != 1).any():
                out.append(f"same:{corpus} {key}: utterances not tested exactly once")
                break
    # predictions' true labels agree with the metadata
    true_lab = preds["true_label"].to_numpy()
    meta_lab = meta.loc[preds["id"], "emotion"].to_numpy()
    if np.any(true_lab != meta_lab):
        out.append(f"{int(np.sum(true_lab != meta_lab))} predictions carry a true label that differs from metadata")

    # 3. metrics recomputed from predictions match results
    per_seed = _recompute(preds)
    per_seed["layer"] = per_seed["layer"].astype(str)
    agg = per_seed.groupby(["encoder", "head", "layer", "setting", "source", "target"]).agg(
        uar=("uar", "mean"), accuracy=("accuracy", "mean"), macro_f1=("macro_f1", "mean"),
        n_seeds=("seed", "nunique")).reset_index()
    res = results.copy()
    res["layer"] = res["layer"].astype(str)
    merged = res.merge(agg, on=["encoder", "head", "layer", "setting", "source", "target"], how="outer",
                       suffixes=("", "_recomputed"), indicator=True)
    for _, r in merged[merged["_merge"] != "both"].iterrows():
        out.append(f"results/predictions mismatch for {r['encoder']}/{r['head']}/{r['setting']}:"
                   f"{r['source']}->{r['target']} ({r['_merge']})")
    for _, r in merged[merged["_merge"] == "both"].iterrows():
        for m in proto["metrics"]["reported"]:
            if abs(r[f"{m}_mean"] - r[m]) > tol:
                out.append(f"{r['encoder']}/{r['head']}/{r['setting']}:{r['source']}->{r['target']}: {m} "
                           f"{r[f'{m}_mean']:.6f} in results, {r[m]:.6f} recomputed from predictions")
    return out
