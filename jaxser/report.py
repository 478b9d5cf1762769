"""Results tables (Markdown, CSV, JSON, LaTeX) and figures from a run's predictions.

Everything here is recomputed from predictions/*.parquet, so the report can never disagree
with what the models predicted (spec/ re-checks that independently). Same-corpus results
pool each seed's predictions over the folds (every utterance is tested once), then average
over seeds. Intervals are 95% percentile bootstraps over test utterances of the seed-mean
metric, resampling the same utterances for every seed.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

METRICS = ("uar", "accuracy", "macro_f1")
KEYS = ["encoder", "head", "layer", "setting", "source", "target"]


def _from_counts(tp, n_true, n_pred, acc) -> dict[str, np.ndarray]:
    """The metrics from per-class counts [..., C] (true positives, true and predicted rows)."""
    present = n_true > 0
    recall = np.where(present, tp / np.maximum(n_true, 1), 0.0)
    uar = recall.sum(-1) / np.maximum(present.sum(-1), 1)
    union = present | (n_pred > 0)
    f1 = np.where(tp > 0, 2 * tp / np.maximum(n_true + n_pred, 1), 0.0)
    macro_f1 = f1.sum(-1) / np.maximum(union.sum(-1), 1)
    return {"uar": uar, "accuracy": acc, "macro_f1": macro_f1}


def batched_metrics(y: np.ndarray, p: np.ndarray, n_classes: int) -> dict[str, np.ndarray]:
    """UAR, accuracy and macro-F1 of many label/prediction vectors at once.

    y, p: int arrays [..., N]. Definitions follow scikit-learn: UAR averages recall over the
    classes present in y (balanced_accuracy_score); macro-F1 averages over the union of
    classes in y and p (f1_score(average='macro', zero_division=0)).
    """
    y, p = np.broadcast_arrays(np.asarray(y), np.asarray(p))
    lead, n = y.shape[:-1], y.shape[-1]
    rows = np.arange(int(np.prod(lead, dtype=np.int64)))[:, None] * n_classes  # one bincount for all vectors
    y2, p2 = y.reshape(-1, n).astype(np.int64), p.reshape(-1, n).astype(np.int64)
    size = rows.shape[0] * n_classes

    def count(idx, weights=None):
        return np.bincount((rows + idx).ravel(), weights, minlength=size).reshape(lead + (n_classes,))

    hit = y2 == p2
    return _from_counts(count(y2, hit.ravel()), count(y2), count(p2), hit.mean(-1).reshape(lead))


def resampled_metrics(y: np.ndarray, p: np.ndarray, n_classes: int, idx: np.ndarray) -> dict[str, np.ndarray]:
    """``batched_metrics(y[idx], p[..., idx], n_classes)`` without building the resamples.

    y: [N]; p: [N] or [S, N]; idx: [B, N] bootstrap draws. A resample only changes how often
    each utterance counts, so its confusion counts are one matrix product of the draw counts
    [B, N] with per-utterance class indicators: O(B*N*S*C) multiply-adds in BLAS instead of
    O(B*N*S) gathered rows. Returns arrays [S, B] (or [B]); the counts are exact integers, so
    the result equals the gathered computation.
    """
    y, p = np.asarray(y), np.asarray(p)
    single = p.ndim == 1
    p = p[None] if single else p
    b, n = idx.shape
    w = np.bincount((np.arange(b)[:, None] * n + idx).ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
    classes = np.arange(n_classes)
    ey = (y[:, None] == classes).astype(np.float64)                       # [N, C]
    ep = p[..., None] == classes                                          # [S, N, C]
    s = p.shape[0]

    def per_seed(ind):  # [S, N, C] indicators -> [S, B, C] resampled counts
        return (w @ ind.transpose(1, 0, 2).reshape(n, s * n_classes)).reshape(b, s, n_classes).transpose(1, 0, 2)

    tp = per_seed((ep & (ey > 0)).astype(np.float64))
    acc = (w @ (p == y).T.astype(np.float64)).T / n                       # [S, B]
    out = _from_counts(tp, (w @ ey)[None], per_seed(ep.astype(np.float64)), acc)
    return {k: v[0] for k, v in out.items()} if single else out


def _cell_arrays(g: pd.DataFrame, seeds: list[int]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """y [N] and predictions [S, N] aligned by utterance id across seeds."""
    seed = g["seed"].to_numpy()
    ids = g["id"].to_numpy().astype(str)
    order = np.lexsort((ids, seed))
    seed, ids = seed[order], ids[order]
    true, pred = g["true"].to_numpy()[order], g["pred"].to_numpy()[order]
    bounds = np.searchsorted(seed, seeds[1:])
    ids_s, preds_s = np.split(ids, bounds), np.split(pred, bounds)
    for s, i in zip(seeds, ids_s):
        if not np.array_equal(i, ids_s[0]):
            raise ValueError(f"seed {s} predicted a different set of utterances than seed {seeds[0]}")
    return true[:len(ids_s[0])], np.stack(preds_s), ids_s[0].tolist()


def compute_results(preds: pd.DataFrame, cells: list[dict], *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    cell_info = {c["name"]: c for c in cells}
    rng = np.random.default_rng(seed)
    rows = []
    for key, g in preds.groupby(KEYS, sort=False):
        seeds = sorted(g["seed"].unique().tolist())
        y, p, ids = _cell_arrays(g, seeds)
        names = g["cell"].unique().tolist()
        labels = cell_info[names[0]]["labels"]
        n_classes = len(labels)
        point = batched_metrics(y, p, n_classes)  # per seed
        row = dict(zip(KEYS, key))
        row.update(labels="|".join(labels), n_test=len(y), n_seeds=len(seeds), chance_uar=1.0 / n_classes,
                   excluded=int(sum(cell_info[n]["excluded"] for n in names) if key[3] != "same"
                                else cell_info[names[0]]["excluded"]))
        idx = rng.integers(0, len(y), size=(n_boot, len(y))) if n_boot else None
        boot = resampled_metrics(y, p, n_classes, idx) if n_boot else None  # [S, B]
        for m in METRICS:
            row[f"{m}_mean"] = float(point[m].mean())
            row[f"{m}_std"] = float(point[m].std(ddof=1)) if len(seeds) > 1 else 0.0
            if n_boot:
                lo, hi = np.percentile(boot[m].mean(0), [2.5, 97.5])
                row[f"{m}_ci_low"], row[f"{m}_ci_high"] = float(lo), float(hi)
        rows.append(row)
    return pd.DataFrame(rows)


def paired_cross_test(preds: pd.DataFrame, enc_a: str, enc_b: str, head: str, layer: str, *,
                      setting: str = "cross", n_boot: int = 1000, seed: int = 0) -> dict:
    """Paired bootstrap of the mean cross-corpus UAR difference between two encoders.

    Test utterances are resampled within each cell, identically for both encoders and all
    seeds; the statistic is the mean over cells and seeds of UAR(a) - UAR(b). Two-sided p.
    """
    rng = np.random.default_rng(seed)
    sub = preds[(preds["head"] == head) & (preds["layer"].astype(str) == str(layer)) & (preds["setting"] == setting)]
    diffs, boot = [], []
    for cell, g in sub.groupby("cell", sort=True):
        ga, gb = g[g["encoder"] == enc_a], g[g["encoder"] == enc_b]
        if ga.empty or gb.empty:
            continue
        seeds = sorted(ga["seed"].unique().tolist())
        ya, pa, ida = _cell_arrays(ga, seeds)
        yb, pb, idb = _cell_arrays(gb, sorted(gb["seed"].unique().tolist()))
        if ida != idb:
            raise ValueError(f"{cell}: {enc_a} and {enc_b} were tested on different utterances")
        n_classes = int(max(ya.max(), pa.max(), pb.max())) + 1
        diffs.append(batched_metrics(ya, pa, n_classes)["uar"].mean() - batched_metrics(yb, pb, n_classes)["uar"].mean())
        idx = rng.integers(0, len(ya), size=(n_boot, len(ya)))
        boot.append(resampled_metrics(ya, pa, n_classes, idx)["uar"].mean(0)
                    - resampled_metrics(ya, pb, n_classes, idx)["uar"].mean(0))
    if not diffs:
        return {"diff": float("nan"), "p": float("nan"), "cells": 0}
    d = np.mean(boot, axis=0)
    p = min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0)))
    return {"diff": float(np.mean(diffs)), "p": float(p), "cells": len(diffs)}


def _fmt(m, s):
    return f"{100 * m:.1f} ± {100 * s:.1f}"


def _md_table(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(str(v) for v in r.tolist()) + " |")
    return "\n".join(lines)


def ranking(results: pd.DataFrame) -> pd.DataFrame:
    """Encoders by mean cross-corpus UAR per head/layer, with the same-corpus mean and the gap."""
    rows = []
    for (head, layer, enc), g in results.groupby(["head", "layer", "encoder"]):
        cross = g[g["setting"] == "cross"]
        same = g[g["setting"] == "same"]
        loco = g[g["setting"] == "loco"]
        rows.append({"head": head, "layer": layer, "encoder": enc,
                     "cross_uar": cross["uar_mean"].mean() if len(cross) else np.nan,
                     "same_uar": same["uar_mean"].mean() if len(same) else np.nan,
                     "loco_uar": loco["uar_mean"].mean() if len(loco) else np.nan})
    df = pd.DataFrame(rows)
    df["gap"] = df["same_uar"] - df["cross_uar"]
    df = df.sort_values(["head", "layer", "cross_uar"], ascending=[True, True, False])
    df["rank"] = df.groupby(["head", "layer"]).cumcount() + 1
    return df


def read_predictions(run: Path) -> pd.DataFrame:
    """All of a run's predictions (without the per-class probabilities, kept for users but not
    needed here); data pages are checksum-verified, and a file that cannot be read stops the
    report naming it."""
    from jaxser.errors import RunDirError

    files = sorted((run / "predictions").glob("*.parquet"))
    if not files:
        raise RunDirError(f"{run / 'predictions'}: no predictions files; run the study to train its models")
    frames = []
    for f in files:
        try:
            names = pq.read_schema(f).names
            frames.append(pq.read_table(f, columns=[c for c in names if c != "probs"],
                                        page_checksum_verification=True).to_pandas())
        except Exception as e:  # pyarrow raises several types for damaged files
            raise RunDirError(f"{f}: unreadable predictions file ({type(e).__name__}); delete it and re-run the "
                              "study, which retrains that model") from None
    return pd.concat(frames, ignore_index=True)


def write_report(run_dir: str | Path, *, bootstrap: int = 1000) -> pd.DataFrame:
    """Write results.csv/json, report.md, table.tex and figures/ for a finished run."""
    run = Path(run_dir)
    from jaxser.io import atomic_write_text

    preds = read_predictions(run)
    preds["layer"] = preds["layer"].astype(str)
    cells = json.loads((run / "cells.json").read_text())
    manifest = json.loads((run / "manifest.json").read_text())
    results = compute_results(preds, cells, n_boot=bootstrap)
    atomic_write_text(run / "results.csv", results.to_csv(index=False))
    atomic_write_text(run / "results.json", results.to_json(orient="records", indent=1))
    rank = ranking(results)
    sig_rows = []
    for (head, layer), g in rank.groupby(["head", "layer"]):
        g = g.dropna(subset=["cross_uar"])
        if len(g) < 2:
            continue
        best = g.iloc[0]["encoder"]
        for enc in g["encoder"].iloc[1:]:
            t = paired_cross_test(preds, best, enc, head, layer, n_boot=bootstrap)
            sig_rows.append({"head": head, "layer": layer, "best": best, "other": enc,
                             "uar_diff": t["diff"], "p": t["p"], "cells": t["cells"]})
    sig = pd.DataFrame(sig_rows)
    figs = _figures(run, results, rank, preds)
    md = _markdown(manifest, results, rank, sig, figs, cells)
    atomic_write_text(run / "report.md", md)
    atomic_write_text(run / "table.tex", _latex(results))
    return results


def _pivot(results, setting, head, layer):
    sub = results[(results["setting"] == setting) & (results["head"] == head) & (results["layer"] == layer)]
    if sub.empty:
        return None
    col = sub["target"] if setting in ("same", "loco") else sub["source"] + "→" + sub["target"]
    sub = sub.assign(col=col.to_numpy(), val=[_fmt(m, s) for m, s in zip(sub["uar_mean"], sub["uar_std"])])
    tab = sub.pivot(index="encoder", columns="col", values="val")
    tab["mean UAR"] = sub.groupby("encoder")["uar_mean"].mean().map(lambda v: f"{100 * v:.1f}")
    return tab.reset_index()


def _markdown(manifest, results, rank, sig, figs, cells) -> str:
    cfg = manifest["config"]
    out = ["# Cross-corpus SER benchmark report", ""]
    out.append(f"Corpora: {', '.join(cfg['corpora'])}. Encoders: {', '.join(cfg['encoders'])}. "
               f"Heads: {', '.join(cfg['heads'])}. Layers: {', '.join(map(str, cfg['layers']))}. "
               f"Seeds: {manifest['seeds']}. Label set: {cfg['labels'] or 'shared by source and target'}. "
               f"git {manifest['git'][:10]}.")
    out.append("")
    out.append("All numbers are UAR (%) as mean ± std over seeds; chance = 100/classes "
               f"({', '.join(sorted({f'{100 * c:.1f}' for c in results['chance_uar']}))}). Same-corpus: "
               "speaker-independent folds, each utterance tested once. Cross-corpus: train on the row's "
               "source, test on all of the target. Model selection on a speaker-disjoint split of the source only.")
    for (head, layer), _ in results.groupby(["head", "layer"]):
        out += ["", f"## Head `{head}`, layer `{layer}`"]
        for setting, title in (("same", "Same-corpus"), ("cross", "Cross-corpus (source→target)"),
                               ("loco", "Leave-one-corpus-out (target)")):
            tab = _pivot(results, setting, head, layer)
            if tab is not None:
                out += ["", f"### {title}", "", _md_table(tab)]
        r = rank[(rank["head"] == head) & (rank["layer"] == layer)]
        ci = results[(results["head"] == head) & (results["layer"] == layer) & (results["setting"] == "cross")]
        out += ["", "### Ranking by mean cross-corpus UAR", ""]
        rt = r[["rank", "encoder", "cross_uar", "same_uar", "gap", "loco_uar"]].copy()
        for c in ("cross_uar", "same_uar", "gap", "loco_uar"):
            rt[c] = rt[c].map(lambda v: "" if pd.isna(v) else f"{100 * v:.1f}")
        if "uar_ci_low" in ci:
            lohi = ci.groupby("encoder")[["uar_ci_low", "uar_ci_high"]].mean()
            rt["mean 95% CI of cells"] = [f"[{100 * lohi.loc[e, 'uar_ci_low']:.1f}, {100 * lohi.loc[e, 'uar_ci_high']:.1f}]"
                                          if e in lohi.index else "" for e in rt["encoder"]]
        rt.columns = ["rank", "encoder", "cross UAR", "same UAR", "gap same→cross", "LOCO UAR",
                      *(["mean 95% CI of cells"] if "mean 95% CI of cells" in rt else [])]
        out += [_md_table(rt)]
        s = sig[(sig["head"] == head) & (sig["layer"] == layer)] if len(sig) else sig
        if len(s):
            st = s[["best", "other", "uar_diff", "p", "cells"]].copy()
            st["uar_diff"] = st["uar_diff"].map(lambda v: f"{100 * v:+.1f}")
            st["p"] = st["p"].map(lambda v: f"{v:.3f}")
            out += ["", "Paired bootstrap (cross-corpus cells, utterances resampled within cells, "
                        "same resample for both encoders and all seeds):", "", _md_table(st)]
    excl = [(c["name"], c["excluded"]) for c in cells if c["setting"] != "same" and c["excluded"]]
    if excl:
        out += ["", "## Excluded target utterances (outside the label set)", ""]
        out += [_md_table(pd.DataFrame(sorted(set((n.split(":")[1].split("->")[1], e) for n, e in excl)),
                                       columns=["target", "excluded"]))]
    if manifest.get("skipped"):
        out += ["", f"## Skipped audio ({len(manifest['skipped'])} files)", ""]
        out += [f"- `{u}`: {why}" for u, why in list(manifest["skipped"].items())[:50]]
    if figs:
        out += ["", "## Figures", ""]
        out += [f"![{name}]({path})" for name, path in figs]
    out += ["", "Full results (with 95% bootstrap intervals, WA and macro-F1): `results.csv`; "
                "LaTeX: `table.tex`; per-utterance predictions: `predictions/`.", ""]
    return "\n".join(out)


def _latex(results: pd.DataFrame) -> str:
    lines = ["% jaxser cross-corpus results: UAR (%) mean ± std over seeds",
             "\\begin{tabular}{lll" + "c" * 3 + "}", "\\toprule",
             "Encoder & Head & Layer & Same & Cross & LOCO \\\\", "\\midrule"]
    for (enc, head, layer), g in results.groupby(["encoder", "head", "layer"]):
        vals = []
        for s in ("same", "cross", "loco"):
            sub = g[g["setting"] == s]
            vals.append("--" if sub.empty else f"{100 * sub['uar_mean'].mean():.1f} $\\pm$ "
                        f"{100 * sub['uar_std'].mean():.1f}")
        esc = lambda t: str(t).replace("_", "\\_")  # noqa: E731
        lines.append(f"{esc(enc)} & {esc(head)} & {esc(layer)} & " + " & ".join(vals) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(lines)


def _figures(run: Path, results: pd.DataFrame, rank: pd.DataFrame, preds: pd.DataFrame) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig_dir = run / "figures"
    fig_dir.mkdir(exist_ok=True)
    out = []
    for (enc, head, layer), g in results.groupby(["encoder", "head", "layer"]):
        g = g[g["setting"].isin(["same", "cross"])]
        names = sorted(set(g["source"]) | set(g["target"]))
        if len(names) < 2:
            continue
        mat = np.full((len(names), len(names)), np.nan)
        for _, r in g.iterrows():
            mat[names.index(r["source"]), names.index(r["target"])] = 100 * r["uar_mean"]
        fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2, 1.0 * len(names) + 1.5))
        im = ax.imshow(mat, cmap="viridis", vmin=np.nanmin(mat) if np.isfinite(mat).any() else 0, vmax=100)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel("test (target)")
        ax.set_ylabel("train (source)")
        for i in range(len(names)):
            for j in range(len(names)):
                if np.isfinite(mat[i, j]):
                    ax.text(j, i, f"{mat[i, j]:.0f}", ha="center", va="center", color="w" if mat[i, j] < 70 else "k")
        ax.set_title(f"UAR % — {enc} / {head} / {layer}\n(diagonal: same-corpus)", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046)
        fig.tight_layout()
        name = f"heatmap_{_safe(enc)}_{head}_{layer}.png"
        fig.savefig(fig_dir / name, dpi=120)
        plt.close(fig)
        out.append((f"cross-corpus heatmap {enc}/{head}/{layer}", f"figures/{name}"))
    cross = results[results["setting"] == "cross"]
    for (head, layer), g in cross.groupby(["head", "layer"]):
        agg = g.groupby("encoder").agg(m=("uar_mean", "mean"), lo=("uar_ci_low", "mean") if "uar_ci_low" in g else
                                       ("uar_mean", "mean"), hi=("uar_ci_high", "mean") if "uar_ci_high" in g else
                                       ("uar_mean", "mean")).sort_values("m")
        fig, ax = plt.subplots(figsize=(6, 0.5 * len(agg) + 1.5))
        ax.barh(agg.index, 100 * agg["m"], xerr=[100 * (agg["m"] - agg["lo"]), 100 * (agg["hi"] - agg["m"])],
                color="tab:blue", capsize=3)
        ax.axvline(100 * g["chance_uar"].mean(), color="k", ls="--", lw=1, label="chance")
        ax.set_xlabel("mean cross-corpus UAR % (bars: mean of per-cell 95% CIs)")
        ax.set_title(f"Ranking — head {head}, layer {layer}", fontsize=9)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        name = f"ranking_{head}_{layer}.png"
        fig.savefig(fig_dir / name, dpi=120)
        plt.close(fig)
        out.append((f"ranking {head}/{layer}", f"figures/{name}"))
    if len(cross):
        best = cross.sort_values("uar_mean", ascending=False).iloc[0]
        sub = preds[(preds["encoder"] == best["encoder"]) & (preds["head"] == best["head"]) &
                    (preds["layer"] == best["layer"]) & (preds["setting"] == "cross") &
                    (preds["source"] == best["source"]) & (preds["target"] == best["target"])]
        labels = best["labels"].split("|")
        cm = np.zeros((len(labels), len(labels)))
        np.add.at(cm, (sub["true"].to_numpy(), sub["pred"].to_numpy()), 1)
        cmn = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        fig, ax = plt.subplots(figsize=(4.5, 4))
        ax.imshow(cmn, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, f"{cmn[i, j]:.2f}", ha="center", va="center", color="w" if cmn[i, j] > 0.5 else "k")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"Best cross cell: {best['encoder']}/{best['head']}\n{best['source']}→{best['target']} "
                     f"(all seeds, row-normalised)", fontsize=9)
        fig.tight_layout()
        fig.savefig(fig_dir / "confusion_best_cross.png", dpi=120)
        plt.close(fig)
        out.append(("confusion matrix of the best cross-corpus cell", "figures/confusion_best_cross.png"))
    return out


def _safe(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in s)
