"""Executable protocol checks, for planned cells and for finished run directories.

Long on purpose: the whole protocol, checked in one file that shares no code with the splits it checks.

Each check returns a list of violations (human-readable strings); empty means conforming.
They are deliberately written from the protocol text (protocol.toml / docs/design.md), not by
calling the code that made the splits, so a bug there cannot hide itself here. Metrics are
recomputed with scikit-learn's formulas written out here; statistical tests (sign-flip, Holm)
are not re-implemented but taken from jaxser.significance, whose own tests check them, and fed the
differences recomputed here, so a report that tested the wrong numbers is still caught.
"""
from __future__ import annotations

import json
import tomllib
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

SPEC_DIR = Path(__file__).resolve().parent


def load_protocol() -> dict:
    return tomllib.loads((SPEC_DIR / "protocol.toml").read_text())


def check_cells(meta: pd.DataFrame, cells, *, k: int | None = None, fixed_labels=None) -> list[str]:
    """Invariants of planned cells over a metadata table (columns corpus, group, speaker, emotion;
    text, the sentence id, for cells whose split is "speaker+text").

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
        if getattr(c, "split", "speaker") == "speaker+text" and c.setting == "same":
            if "text" not in meta:
                out.append(f"{name}: split speaker+text but the metadata has no text (sentence id) column")
            else:
                out += sentence_leaks(name, corpus[train], meta["text"].to_numpy()[train],
                                      corpus[test], meta["text"].to_numpy()[test])
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
        if any(getattr(c, "split", "speaker") == "speaker+text" for c in cs) and "text" in meta:
            out += block_count(name, len(cs), group[usable], meta["text"].to_numpy()[usable], k)
            continue
        n_groups = len(set(group[usable]))
        if len(cs) != min(k, n_groups):
            out.append(f"same:{name}: {len(cs)} folds, expected min(k={k}, groups={n_groups})")
    return out


def _sentence_ids(text) -> np.ndarray:
    return np.array(["" if t is None or t != t else str(t).strip() for t in text], dtype=object)


def sentence_leaks(name: str, train_corpus, train_text, test_corpus, test_text) -> list[str]:
    """A speaker+text fold may not have one non-empty (corpus, sentence id) on both sides."""
    def ids(corpus, text):
        return {(c, t) for c, t in zip(np.asarray(corpus).tolist(), _sentence_ids(text).tolist()) if t}

    both = ids(train_corpus, train_text) & ids(test_corpus, test_text)
    if both:
        return [f"{name}: sentence ids in both training/validation and test: {sorted(both)[:5]}"]
    return []


def block_count(name: str, n_folds: int, groups, text, k: int) -> list[str]:
    """Speaker+text folds number k_s x k_t (k_s = min(k, groups), k_t = min(k, sentence ids,
    each id-less row counting alone)) less the empty blocks: exactly k_s x k_t when every group
    says every sentence, else between max(k_s, k_t) and k_s x k_t."""
    groups, text = np.asarray(groups).astype(str), _sentence_ids(text)
    ids = set(text.tolist()) - {""}
    if len(ids) < 2:  # the protocol keeps speaker folds for such a corpus
        k_s = min(k, len(set(groups.tolist())))
        return [] if n_folds == k_s else [f"same:{name}: {n_folds} folds, expected min(k={k}, groups={k_s}) "
                                         "(fewer than two sentence ids: speaker folds)"]
    k_s = min(k, len(set(groups.tolist())))
    k_t = min(k, len(ids) + int((text == "").sum()))
    crossed = not (text == "").any() and all(
        set(text[groups == g].tolist()) == ids for g in set(groups.tolist()))
    if crossed and n_folds != k_s * k_t:
        return [f"same:{name}: {n_folds} speaker+text folds, expected k_s x k_t = {k_s} x {k_t}"]
    if not max(k_s, k_t) <= n_folds <= k_s * k_t:
        return [f"same:{name}: {n_folds} speaker+text folds, expected between {max(k_s, k_t)} and "
                f"k_s x k_t = {k_s} x {k_t}"]
    return []


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


def _corpus_violations(c: dict, tr_meta, te_meta) -> list[str]:
    """A cell's training and test utterances against its source and target corpora."""
    out = []
    if set(te_meta["corpus"]) != {c["target"]}:
        out.append(f"{c['name']}: test utterances from {sorted(set(te_meta['corpus']))}")
    if c["setting"] != "same" and c["target"] in set(tr_meta["corpus"]):
        out.append(f"{c['name']}: target-corpus utterances used in training or model selection")
    if set(tr_meta["corpus"]) - set(c["source"].split("+")):
        out.append(f"{c['name']}: training uses corpora outside its source")
    return out


def check_run(run_dir: str | Path) -> list[str]:
    """Check a finished run directory against the protocol (see docs/design.md and jaxser.study.artifacts)."""
    run = Path(run_dir)
    proto = load_protocol()
    out: list[str] = []
    for f in ("manifest.json", "metadata.parquet", "splits.parquet", "cells.json", "results.csv",
              "significance.csv", "report.md"):
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
    if (manifest.get("protocol") or {}).get("task") == "dimensional":
        return out + check_dimensional_run(run, manifest, meta, splits, cells, preds)
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

    # 1. every configured cell x encoder x head x layer x seed is present (a layer sweep: every hidden state)
    n_layers = {e: int((manifest.get("encoders") or {}).get(e, {}).get("layers", 0)) for e in cfg["encoders"]}
    expected_models = list(dict.fromkeys((e, h, name) for e in cfg["encoders"] for h in cfg["heads"]
                                         for layer in cfg["layers"] for name in expected_layers(layer, n_layers[e])))
    if (preds["layer"].astype(str) == "all").any():
        out.append("predictions carry layer 'all': a sweep's results are named by hidden-state index")
    if any(layer in ("all", "best") for layer in cfg["layers"]) and not all(n_layers.values()):
        out.append("manifest.json lacks an encoder's layer count: a layer sweep's results cannot be checked")
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
        tr = splits[(splits["train_key"] == c["train_key"]) & splits["role"].isin(["fit", "val"])]
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
        # EmoBox's own folds are the definition there (MELD's train and test share the cast):
        # check_emobox compares them with the partition files instead
        if leak and not (c.get("split") == "emobox" and c["setting"] == "same"):
            out.append(f"{c['name']}: test speakers also in training/validation: {sorted(leak)[:5]}")
        if digest is not None:
            shared = (set(digest.loc[train_ids]) & set(digest.loc[test_ids])) - {""}
            if shared:
                both = te_meta.index[digest.loc[test_ids].isin(shared).to_numpy()]
                out.append(f"{c['name']}: {len(shared)} recordings (same audio_sha256) in both training/validation "
                           f"and test, e.g. test utterance {both[0]}")
        out += _corpus_violations(c, tr_meta, te_meta)
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
        if c["setting"] != "same" and c.get("split") != "emobox":  # EmoBox's track tests its balanced lists
            n_target = int(((meta["corpus"] == c["target"]) & meta["emotion"].isin(labs)).sum())
            if len(test_ids) != n_target:
                out.append(f"{c['name']}: {len(test_ids)} test utterances, target has {n_target} in the label set")
        if c["setting"] == "same" and c.get("split") == "speaker+text":
            if "text" not in meta:
                out.append(f"{c['name']}: split speaker+text but metadata.parquet has no text (sentence id) column")
            else:
                out += sentence_leaks(c["name"], tr_meta["corpus"], tr_meta["text"], te_meta["corpus"],
                                      te_meta["text"])
    # same-corpus: each usable utterance tested exactly once per model and seed
    same = [c for c in cells if c["setting"] == "same" and c.get("split") != "emobox"]  # EmoBox: check_emobox
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
        if any(c.get("split") == "speaker+text" for c in same if c["source"] == corpus) and "text" in meta:
            rows = meta.loc[sorted(usable)]
            group = rows["group"] if "group" in rows else rows["speaker"]
            out += block_count(corpus, len(names), group.to_numpy(), rows["text"].to_numpy(),
                               int(cfg.get("k_folds") or proto["same_corpus"]["k_folds"]))
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

    # 4. layer "best" was chosen on source validation only
    out += check_layer_choice(preds)
    if (manifest.get("protocol") or {}).get("split") == "emobox":
        out += check_emobox(run)

    # 5. significance.csv agrees with the predictions
    try:
        sig = pd.read_csv(run / "significance.csv")
    except Exception as e:  # pandas raises several types for damaged files
        return out + [f"{run / 'significance.csv'}: unreadable ({type(e).__name__})"]
    return out + check_significance(sig, per_seed, preds)


def expected_layers(layer: str, n_layers: int) -> list[str]:
    """The predictions' layer names one configured layer gives: a sweep ('all') every hidden
    state by index, 'best' those and itself, anything else its own name."""
    sweep = [str(i) for i in range(n_layers)]
    return sweep if layer == "all" else sweep + ["best"] if layer == "best" else [str(layer)]


def check_layer_choice(preds: pd.DataFrame) -> list[str]:
    """Layer "best" (protocol.toml [selection] best_layer): per encoder, head and training set,
    the chosen hidden state must be the one with the highest source-validation UAR averaged over
    seeds (rounded to 9 decimals; ties to the lowest index), recomputed from the per-layer
    predictions' val_uar, so a choice that looked at test data is caught; and the "best" rows
    must be the chosen layer's predictions."""
    preds = preds.assign(layer=preds["layer"].astype(str))
    best = preds[preds["layer"] == "best"]
    if best.empty:
        return []
    out: list[str] = []
    if "chosen_layer" not in best or best["chosen_layer"].isna().any():
        return ["layer 'best' predictions without a chosen_layer"]
    per_layer = preds[preds["layer"].str.fullmatch(r"\d+")]
    val = per_layer.groupby(["encoder", "head", "train_key", "layer", "seed"])["val_uar"].first().reset_index()
    val["index"] = val["layer"].astype(int)
    for (enc, head, key), g in best.groupby(["encoder", "head", "train_key"]):
        where = f"{enc}/{head}/best/{key}"
        chosen = g["chosen_layer"].unique()
        if len(chosen) != 1:
            out.append(f"{where}: several chosen layers {sorted(chosen)}")
            continue
        chosen = int(chosen[0])
        v = val[(val["encoder"] == enc) & (val["head"] == head) & (val["train_key"] == key)]
        if v.empty:
            out.append(f"{where}: no per-layer predictions to recompute the choice from")
            continue
        means = v.groupby("index")["val_uar"].mean().round(9)
        expected = int(means[means == means.max()].index.min())
        if chosen != expected:
            out.append(f"{where}: chose layer {chosen} (validation UAR {means.get(chosen, float('nan')):.4f}), the "
                       f"source-validation choice is layer {expected} ({means[expected]:.4f})")
            continue
        ref = per_layer[(per_layer["encoder"] == enc) & (per_layer["head"] == head) & (per_layer["train_key"] == key)
                        & (per_layer["layer"] == str(chosen))]
        on = ["cell", "seed", "id"]
        both = g[on + ["pred", "val_uar"]].merge(ref[on + ["pred", "val_uar"]], on=on, how="outer",
                                                 suffixes=("", "_chosen"), indicator=True)
        if (both["_merge"] != "both").any() or (both["pred"] != both["pred_chosen"]).any() \
                or (both["val_uar"] != both["val_uar_chosen"]).any():
            out.append(f"{where}: its predictions are not those of the chosen layer {chosen}")
    return out


SIGNIFICANCE_COLUMNS = ("setting", "head", "layer", "claim", "encoder_a", "encoder_b", "diff_uar", "ci_low",
                        "ci_high", "p", "p_adjusted", "test", "unit", "n_units", "holm_family")


def _pseudovalues(d: pd.Series, setting: str) -> np.ndarray:
    """Jackknife pseudo-values over corpora of the mean of d (indexed by source, target): G T -
    (G - 1) T_-g, T_-g the mean over the units not involving corpus g (a cross pair involves its
    source and target, other units their target)."""
    involved = [{t} | ({s} if setting == "cross" else set()) for s, t in d.index]
    corpora = sorted(set().union(*involved))
    g, t = len(corpora), d.mean()
    out = []
    for c in corpora:
        rest = [v for v, inv in zip(d.to_numpy(), involved) if c not in inv]
        out.append(g * t - (g - 1) * np.mean(rest) if rest else np.nan)
    return np.array(out)


def check_significance(sig: pd.DataFrame, per_seed: pd.DataFrame, preds: pd.DataFrame | None = None) -> list[str]:
    """significance.csv against per-seed UARs recomputed from predictions (``_recompute``):
    one row per claim and pair of encoders with common units in each (setting, head, layer);
    diff_uar is the mean over units of the seed-mean UAR difference; p is the protocol's test
    of those differences (new-corpora: the sign-flip test of the corpora's pseudo-values,
    recomputed here; these-corpora: jaxser.study.tables' test on the predictions); p_adjusted is
    Holm's adjustment within the claim and family, so never below p."""
    from jaxser import significance
    from jaxser.study import tables

    stats = load_protocol()["statistics"]
    tol = load_protocol()["metrics"]["metric_tolerance"]
    missing = [c for c in SIGNIFICANCE_COLUMNS if c not in sig]
    if missing:
        return [f"significance.csv lacks columns {missing}"]
    out: list[str] = []
    sig = sig.assign(layer=sig["layer"].astype(str))
    units = per_seed.groupby(["setting", "head", "layer", "source", "target", "encoder"])["uar"].mean()
    units = units.unstack("encoder")
    fixed = None
    if preds is not None and (sig["claim"] == "these-corpora").any():
        fixed = tables.significance_rows(preds, claim="these-corpora").assign(layer=lambda t: t["layer"].astype(str))
        fixed = fixed.set_index(["setting", "head", "layer", "encoder_a", "encoder_b"])["p"]
    seen = set()
    for i, r in sig.iterrows():
        where = f"significance.csv row {i + 2} ({r['setting']}/{r['head']}/{r['layer']}, {r['claim']}: " \
                f"{r['encoder_a']} vs {r['encoder_b']})"
        if r["claim"] not in stats["claims"]:
            out.append(f"{where}: unknown claim (expected one of {stats['claims']})")
            continue
        key = (r["setting"], r["head"], r["layer"])
        try:
            tab = units.loc[key][[r["encoder_a"], r["encoder_b"]]].dropna()
        except KeyError:
            out.append(f"{where}: no such encoders or family in the predictions")
            continue
        seen.add((*key, r["claim"], frozenset((r["encoder_a"], r["encoder_b"]))))
        d = tab[r["encoder_a"]] - tab[r["encoder_b"]]
        if len(d) != r["n_units"]:
            out.append(f"{where}: n_units {r['n_units']}, the predictions give {len(d)} common units")
        if not len(d):
            continue
        if abs(d.mean() - r["diff_uar"]) > tol:
            out.append(f"{where}: diff_uar {r['diff_uar']:.6f}, recomputed from predictions {d.mean():.6f}")
        if r["claim"] == "new-corpora":
            pv = _pseudovalues(d, r["setting"])
            p = (significance.signflip_test(pv, alpha=stats["alpha"])["p"] if len(pv) > 1 and np.isfinite(pv).all()
                 else 1.0)
        elif fixed is not None:
            p = fixed.get((*key, r["encoder_a"], r["encoder_b"]), np.nan)
        else:
            p = r["p"]
        if not (np.isnan(p) and np.isnan(r["p"])) and not abs(p - r["p"]) <= 1e-9 * max(1.0, abs(p)):
            out.append(f"{where}: p {r['p']:.6g}, the protocol's test of the recomputed differences gives {p:.6g}")
        if np.isfinite(r["p"]) and not r["p"] - 1e-12 <= r["p_adjusted"] <= 1 + 1e-12:
            out.append(f"{where}: p_adjusted {r['p_adjusted']:.6g} is not in [p = {r['p']:.6g}, 1]")
        if not (r["ci_low"] <= r["diff_uar"] + tol and r["diff_uar"] - tol <= r["ci_high"]):
            out.append(f"{where}: the interval [{r['ci_low']:.6g}, {r['ci_high']:.6g}] excludes diff_uar")
    for key, fam in sig.groupby(list(stats["holm_family"]), sort=False):
        holm = significance.holm(fam["p"].to_numpy(float))
        if np.nan_to_num(np.abs(holm - fam["p_adjusted"].to_numpy(float)), nan=0.0).max() > 1e-9:
            out.append(f"significance.csv {'/'.join(map(str, key))}: p_adjusted is not Holm's adjustment of p "
                       "within the family")
    if "significant" in sig and (sig["significant"].astype(bool) != (sig["p_adjusted"] <= stats["alpha"])).any():
        out.append(f"significance.csv: 'significant' disagrees with p_adjusted <= {stats['alpha']}")
    for key in units.index.droplevel(["source", "target"]).unique():
        tab = units.loc[key].dropna(axis=1, how="all")
        encs = list(tab.columns)
        for a in range(len(encs)):
            for b in range(a + 1, len(encs)):
                common = tab[[encs[a], encs[b]]].dropna()
                for claim in stats["claims"]:
                    if len(common) and (*key, claim, frozenset((encs[a], encs[b]))) not in seen:
                        out.append(f"significance.csv: no row comparing {encs[a]} and {encs[b]} in "
                                   f"{'/'.join(map(str, key))} ({claim})")
    return out


# ----------------------------------------------------------------------------- EmoBox's partitions

def _emobox_key(corpus: str, path: str) -> str:
    """EmoBox's documented path rules, written out again: SAVEE flat `JE_n23.wav` = release
    `AudioData/JE/n23.wav`; a MELD clip is its split folder and file name; a CaFE or ESD
    recording its file name; paths compared in Unicode NFC."""
    parts = unicodedata.normalize("NFC", str(path)).replace("\\", "/").split("/")
    if parts[0] == "downloads" and len(parts) > 2:
        parts = parts[2:]
    if corpus in ("cafe", "esd"):  # garbled folder names (CaFE), split folders (ESD): names are unique
        return parts[-1]
    if corpus == "savee":
        return parts[-1] if "_" in parts[-1] or len(parts) < 2 else f"{parts[-2]}_{parts[-1]}"
    if corpus == "meld":
        return "/".join(parts[-2:])
    return "/".join(parts)


def _same_file(a: str, b: str) -> bool:
    return a == b or a.endswith("/" + b) or b.endswith("/" + a)


def check_protocol(run_dir: str | Path) -> list[str]:
    """What a run directory's protocol files alone show (a --dry-run directory too): every cell's
    fit, validation and test utterances are known and disjoint, and its source alone trains."""
    run = Path(run_dir)
    meta = pd.read_parquet(run / "metadata.parquet").set_index("id")
    splits = pd.read_parquet(run / "splits.parquet")
    cells = json.loads((run / "cells.json").read_text())
    out = []
    if "cell" not in splits or not (splits["role"] == "test").any():
        return ["splits.parquet lists no test utterances (role test, column cell)"]
    for c in cells:
        tr = splits[(splits["train_key"] == c["train_key"]) & splits["role"].isin(["fit", "val"])]
        te = splits.loc[(splits["role"] == "test") & (splits["cell"] == c["name"]), "id"]
        fit, val = set(tr.loc[tr["role"] == "fit", "id"]), set(tr.loc[tr["role"] == "val", "id"])
        if len(te) != c["n_test"] or len(fit) != c["n_fit"] or len(val) != c["n_val"]:
            out.append(f"{c['name']}: splits.parquet disagrees with cells.json's counts")
        for a, b, what in ((fit, val, "fit/val"), (fit, set(te), "fit/test"), (val, set(te), "val/test")):
            if a & b:
                out.append(f"{c['name']}: {what} share {len(a & b)} utterances")
        unknown = (fit | val | set(te)) - set(meta.index)
        if unknown:
            out.append(f"{c['name']}: ids not in metadata: {sorted(unknown)[:3]}")
            continue
        if set(meta.loc[sorted(fit | val), "corpus"]) - set(c["source"].split("+")):
            out.append(f"{c['name']}: training or model selection uses corpora outside the source")
        if set(meta.loc[list(te), "corpus"]) - {c["target"]}:
            out.append(f"{c['name']}: test utterances outside the target")
    return out


def check_emobox(run_dir: str | Path, emobox: str | Path | None = None) -> list[str]:
    """An EmoBox run against EmoBox's files (the folder manifest.json names, or `emobox`):
    each same-corpus fold tests exactly its test file's utterances and trains and selects on
    exactly its train (and valid) file's, within the cell's classes; each cross cell tests
    utterances of the target's track2 list only and never trains on the source's own list."""
    run = Path(run_dir)
    manifest = json.loads((run / "manifest.json").read_text())
    data = Path(emobox or (manifest.get("emobox") or {}).get("data") or "")
    if (data / "data").is_dir():
        data = data / "data"
    if not data.is_dir():
        return [f"EmoBox data folder {data} not found: give it to check the folds"]
    out = check_protocol(run)
    meta = pd.read_parquet(run / "metadata.parquet").set_index("id")
    splits = pd.read_parquet(run / "splits.parquet")
    cells = json.loads((run / "cells.json").read_text())
    if "path" not in meta:
        return out + ["metadata.parquet has no path column: EmoBox's lists cannot be compared"]

    by_name: dict[tuple[str, str], list] = {}
    starts = meta["start"] if "start" in meta else pd.Series(np.nan, index=meta.index)
    for i, corpus, p, t0 in zip(meta.index, meta["corpus"], meta["path"], starts):
        key = _emobox_key(corpus, p)
        by_name.setdefault((corpus, key.split("/")[-1]), []).append((i, key, t0))

    def ids_of(corpus: str, recs) -> set:
        """Utterances of records; a segment (PAVOQUE) is also matched by its start time."""
        found = set()
        for r in recs:
            k = _emobox_key(corpus, r["wav"])
            t = r.get("start_time")
            found |= {i for i, key, t0 in by_name.get((corpus, k.split("/")[-1]), []) if _same_file(key, k)
                      and (t is None or t0 != t0 or abs(float(t0) - float(t)) < 0.005)}
        return found

    def records(f: Path) -> list[dict]:
        return [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]

    track = {"iemocap": "IEMOCAP", "meld": "MELD", "ravdess": "RAVDESS", "savee": "SAVEE"}
    for c in cells:
        labs = set(c["labels"])
        tr = splits[(splits["train_key"] == c["train_key"]) & splits["role"].isin(["fit", "val"])]
        train = set(tr["id"])
        test = set(splits.loc[(splits["role"] == "test") & (splits["cell"] == c["name"]), "id"])
        if c["setting"] == "same":
            folder = data / c["source"] / f"fold_{c['fold']}"
            want = {}
            for role in ("train", "test", "valid"):
                f = next((folder / n for n in (f"{c['source']}_{role}_fold_{c['fold']}.jsonl",
                                                f"{c['source']}_{role}_fold{c['fold']}.jsonl")
                          if (folder / n).is_file()), None)
                if f is not None:
                    got = ids_of(c["source"], records(f))
                    want[role] = {i for i in got if meta.loc[i, "emotion"] in labs}
            if "test" not in want or "train" not in want:
                out.append(f"{c['name']}: EmoBox's partition files are missing in {folder}")
                continue
            if test != want["test"]:
                out.append(f"{c['name']}: tests {len(test)} utterances, EmoBox's test file lists {len(want['test'])} "
                           f"(differing: {sorted(test ^ want['test'])[:3]})")
            expected = want["train"] | want.get("valid", set())
            if train != expected:
                out.append(f"{c['name']}: trains/selects on {len(train)} utterances, EmoBox's train"
                           f"{' and valid' if 'valid' in want else ''} files list {len(expected)}")
        elif c["setting"] == "cross":
            f = data / "track2" / f"{track.get(c['target'], c['target'])}_selected_balenced.jsonl"
            if not f.is_file():
                out.append(f"{c['name']}: no EmoBox track2 list for {c['target']} ({f})")
                continue
            stems = {Path(_emobox_key(c["target"], r["wav_filename"])).stem for r in records(f)}
            off = [i for i in test if Path(_emobox_key(c["target"], meta.loc[i, "path"])).stem not in stems]
            if off:
                out.append(f"{c['name']}: {len(off)} test utterances are not on EmoBox's track2 list, e.g. {off[0]}")
            if len(test) > len(stems):
                out.append(f"{c['name']}: {len(test)} test utterances, the track2 list has {len(stems)}")
            own = data / "track2" / f"{track.get(c['source'], '')}_selected_balenced.jsonl"
            if c["source"] in track and c["source"] != "meld" and own.is_file():  # MELD's names repeat
                own_stems = {Path(_emobox_key(c["source"], r["wav_filename"])).stem for r in records(own)}
                src = meta.loc[sorted(train)]
                leak = [i for i, p in zip(src.index, src["path"]) if Path(_emobox_key(c["source"], p)).stem
                        in own_stems and meta.loc[i, "emotion"] in labs]
                if leak:
                    out.append(f"{c['name']}: trains on {len(leak)} utterances of {c['source']}'s own track2 test "
                               f"list, e.g. {leak[0]}")
    return out


# ----------------------------------------------------------------------------- the dimensional task

def _ccc(y: np.ndarray, p: np.ndarray) -> float:
    """Lin's CCC written out: 2 cov / (var_y + var_p + (mean_y - mean_p)^2), population moments."""
    my, mp = y.mean(), p.mean()
    cov = ((y - my) * (p - mp)).mean()
    den = y.var() + p.var() + (my - mp) ** 2
    return 2 * cov / den if den > 0 else 1.0


def check_dimensional_run(run: Path, manifest: dict, meta: pd.DataFrame, splits: pd.DataFrame, cells: list,
                          preds: pd.DataFrame) -> list[str]:
    """A dimensional run (task "dimensional"): every model, cell and seed present; speaker,
    recording and target-corpus leakage; every rated target utterance tested; targets are the
    declared scale mapped to [0, 1]; the saved models' target standardisation equals the fit
    split's statistics (no validation or test statistic); selection did not depend on the
    target (one validation score and epoch per trained model and seed, whatever it was tested
    on); CCC recomputed from predictions agrees with results.csv and significance.csv."""
    from jaxser import significance

    out: list[str] = []
    proto = load_protocol()
    tol = proto["metrics"]["metric_tolerance"]
    cfg, seeds = manifest["config"], sorted(manifest["seeds"])
    dims = list(manifest["protocol"].get("dimensions") or [])
    scales = manifest["protocol"].get("scales") or {}
    if not dims or set(dims) - set(meta.columns):
        return [f"dimensional run: metadata.parquet lacks the target columns {dims}"]
    rated = meta[dims].notna().all(axis=1)
    # targets on [0, 1] by each corpus' declared scale: within [0, 1], and every declared corpus
    for c in sorted(set(meta["corpus"])):
        if c not in scales or set(dims) - set(scales[c]):
            out.append(f"manifest.json declares no scale of {dims} for corpus {c}")
    v = meta.loc[rated, dims].to_numpy(float)
    if v.size and (v.min() < -1e-9 or v.max() > 1 + 1e-9):
        out.append("metadata targets outside [0, 1]: not mapped by the declared scales")
    have = set(map(tuple, preds[["encoder", "head", "layer", "cell"]].astype(str).drop_duplicates().to_numpy()))
    for e in cfg["encoders"]:
        for h in cfg["heads"]:
            for layer in cfg["layers"]:
                for c in cells:
                    if (e, h, str(layer), c["name"]) not in have:
                        out.append(f"missing predictions for {e}/{h}/layer {layer}/{c['name']}")
    for key, s in preds.groupby(["encoder", "head", "layer", "cell"])["seed"].agg(lambda s: sorted(set(s))).items():
        if s != seeds:
            out.append(f"{'/'.join(map(str, key))}: seeds {s}, configured {seeds}")
    if set(preds["dimension"]) != set(dims):
        out.append(f"predictions hold dimensions {sorted(set(preds['dimension']))}, the study {dims}")
    digest = meta["audio_sha256"] if "audio_sha256" in meta else None
    for c in cells:
        if list(c["labels"]) != dims:
            out.append(f"{c['name']}: dimensions {c['labels']}, the study {dims}")
        tr = splits[splits["train_key"] == c["train_key"]]
        train_ids, test_ids = tr["id"].to_numpy(), preds.loc[preds["cell"] == c["name"], "id"].unique()
        tr_meta, te_meta = meta.loc[train_ids], meta.loc[test_ids]
        if set(tr_meta["speaker"]) & set(te_meta["speaker"]):
            out.append(f"{c['name']}: test speakers also in training/validation")
        if digest is not None and (set(digest.loc[train_ids]) & set(digest.loc[test_ids])) - {""}:
            out.append(f"{c['name']}: the same recording in training/validation and test")
        out += _corpus_violations(c, tr_meta, te_meta)
        if not rated.loc[train_ids].all() or not rated.loc[test_ids].all():
            out.append(f"{c['name']}: utterances without every rating of the study trained or tested on")
        fit, val = tr[tr["role"] == "fit"], tr[tr["role"] == "val"]
        if c["val_speaker_disjoint"] and set(meta.loc[fit["id"], "speaker"]) & set(meta.loc[val["id"], "speaker"]):
            out.append(f"{c['name']}: validation speakers overlap the fit split")
        if c["setting"] != "same":
            n_target = int(((meta["corpus"] == c["target"]) & rated).sum())
            if len(test_ids) != n_target:
                out.append(f"{c['name']}: {len(test_ids)} test utterances, the target has {n_target} rated ones")
    for corpus in sorted({c["source"] for c in cells if c["setting"] == "same"}):
        names = [c["name"] for c in cells if c["setting"] == "same" and c["source"] == corpus]
        usable = set(meta.index[(meta["corpus"] == corpus) & rated])
        for key, g in preds[preds["cell"].isin(names)].groupby(["encoder", "head", "layer", "seed", "dimension"]):
            counts = g["id"].value_counts()
            if set(counts.index) != usable or (counts != 1).any():
                out.append(f"same:{corpus} {key}: rated utterances not tested exactly once")
                break
    # the predictions' targets are the metadata's
    for d in dims:
        sub = preds[preds["dimension"] == d]
        if np.abs(sub["true"].to_numpy(float) - meta.loc[sub["id"], d].to_numpy(float)).max(initial=0) > 1e-6:
            out.append(f"predictions' {d} targets differ from metadata.parquet's")
    # selection on the source only: one validation score and epoch per trained model and seed
    per_model = preds.groupby(["encoder", "head", "layer", "train_key", "seed"])[["val_ccc", "best_epoch"]].nunique()
    if (per_model > 1).any().any():
        out.append("a model's validation score or selected epoch differs between its test sets: selection "
                   "depended on what it was tested on")
    # target standardisation: the fit split's statistics
    for path in sorted((run / "models").glob("*/model.json")):
        info = json.loads(path.read_text())
        if info.get("task") != "dimensional":
            out.append(f"{path}: a saved model of a dimensional run that does not say so")
            continue
        from safetensors.numpy import load

        t = load((path.parent / info["tensors"]["file"]).read_bytes())
        fit_ids = splits.loc[(splits["train_key"] == info["train_key"]) & (splits["role"] == "fit"), "id"]
        y = meta.loc[fit_ids, info["dimensions"]].to_numpy(np.float64)
        if "targets/mean" not in t or np.abs(t["targets/mean"] - y.mean(0)).max() > 1e-5 or \
                np.abs(t["targets/std"] - np.where(y.std(0) > 1e-8, y.std(0), 1)).max() > 1e-5:
            out.append(f"{path.parent.name}: target standardisation is not the fit split's mean and std")
    # CCC recomputed from predictions
    rows = []
    for key, g in preds.groupby(["encoder", "head", "layer", "setting", "source", "target", "dimension", "seed"]):
        rows.append((*key, _ccc(g["true"].to_numpy(float), g["pred"].to_numpy(float))))
    per_seed = pd.DataFrame(rows, columns=["encoder", "head", "layer", "setting", "source", "target", "dimension",
                                           "seed", "ccc"])
    per_seed["layer"] = per_seed["layer"].astype(str)
    keys = ["encoder", "head", "layer", "setting", "source", "target", "dimension"]
    agg = per_seed.groupby(keys)["ccc"].mean().reset_index()
    res = pd.read_csv(run / "results.csv")
    res["layer"] = res["layer"].astype(str)
    merged = res.merge(agg, on=keys, how="outer", indicator=True)
    for _, r in merged.iterrows():
        where = f"{r['encoder']}/{r['head']}/{r['setting']}:{r['source']}->{r['target']} {r['dimension']}"
        if r["_merge"] != "both":
            out.append(f"results/predictions mismatch for {where} ({r['_merge']})")
        elif abs(r["ccc_mean"] - r["ccc"]) > tol:
            out.append(f"{where}: ccc {r['ccc_mean']:.6f} in results, {r['ccc']:.6f} recomputed from predictions")
    try:
        sig = pd.read_csv(run / "significance.csv")
    except pd.errors.EmptyDataError:
        sig = pd.DataFrame()
    stats = proto["statistics"]
    units = per_seed.groupby(["dimension", "setting", "head", "layer", "source", "target", "encoder"])["ccc"].mean()
    units = units.unstack("encoder")
    for i, r in sig.iterrows():
        key = (r["dimension"], r["setting"], r["head"], str(r["layer"]))
        tab = units.loc[key][[r["encoder_a"], r["encoder_b"]]].dropna()
        d = tab[r["encoder_a"]] - tab[r["encoder_b"]]
        if abs(d.mean() - r["diff_ccc"]) > tol:
            out.append(f"significance.csv row {i + 2}: diff_ccc {r['diff_ccc']:.6f}, recomputed {d.mean():.6f}")
        if r.get("claim") != "new-corpora":
            out.append(f"significance.csv row {i + 2}: claim {r.get('claim')!r}; CCC is compared on new corpora only")
            continue
        pv = _pseudovalues(d, r["setting"])
        p = significance.signflip_test(pv, alpha=stats["alpha"])["p"] if len(pv) > 1 and np.isfinite(pv).all() else 1.0
        if abs(p - r["p"]) > 1e-9:
            out.append(f"significance.csv row {i + 2}: p {r['p']:.6g}, the protocol's test gives {p:.6g}")
    if len(sig):
        for key, fam in sig.groupby(list(proto["dimensional"]["holm_family"]), sort=False):
            if np.abs(significance.holm(fam["p"].to_numpy(float)) - fam["p_adjusted"].to_numpy(float)).max() > 1e-9:
                out.append(f"significance.csv {'/'.join(map(str, key))}: p_adjusted is not Holm's adjustment of p "
                           "within the dimension's family")
    n_enc = len(cfg["encoders"])
    want = sum(1 for _ in units.groupby(level=[0, 1, 2, 3])) * n_enc * (n_enc - 1) // 2
    if len(sig) != want:
        out.append(f"significance.csv has {len(sig)} comparisons, expected {want} (every encoder pair per "
                   "dimension, setting, head and layer)")
    return out
