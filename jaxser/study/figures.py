"""Every figure of a report, in one plotting module: heatmaps on one colour scale, rankings,
critical-difference diagrams, the confusion matrix of the best cross-corpus cell, layer profiles
and learned layer weights, and the dimensional report's CCC heatmaps and scatter plots.

The reports (``jaxser.study.report``, ``jaxser.study.report_dimensional``) choose what to show
and call these; each figure function draws from tables they have already computed, writes PNGs
atomically under ``figures/`` and returns (name, relative path) pairs for report.md.
matplotlib is imported only when drawing, with the Agg backend (no display needed).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from jaxser import metrics
from jaxser.protocol import canonical_order
from jaxser.significance import cd_cliques, format_p


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    from jaxser.io import atomic_write

    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)


def heatmap_scale(results: pd.DataFrame) -> tuple[float, float]:
    """One colour scale (UAR %, rounded out to tens) for every heatmap of a report, so equal
    colours mean equal UAR across encoders, heads and layers."""
    v = 100 * results.loc[results["setting"].isin(["same", "cross"]), "uar_mean"].to_numpy(float)
    if not v.size:
        return 0.0, 100.0
    return float(np.floor(v.min() / 10) * 10), float(max(np.ceil(v.max() / 10) * 10, np.floor(v.min() / 10) * 10 + 10))


def result_figures(run: Path, results: pd.DataFrame, ranks: pd.DataFrame, preds: pd.DataFrame) -> list[tuple[str, str]]:
    """The categorical report's figures: a UAR heatmap per encoder, head and layer (one colour
    scale), a ranking and a critical-difference diagram per head and layer (``ranks``:
    ``tables.friedman_rows``), and the confusion matrix of the best cross-corpus cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig_dir = run / "figures"
    fig_dir.mkdir(exist_ok=True)
    out = []
    vmin, vmax = heatmap_scale(results)
    for (enc, head, layer), g in results.groupby(["encoder", "head", "layer"]):
        g = g[g["setting"].isin(["same", "cross"])]
        names = sorted(set(g["source"]) | set(g["target"]))
        if len(names) < 2:
            continue
        mat = np.full((len(names), len(names)), np.nan)
        n_cls = np.zeros((len(names), len(names)), int)
        for _, r in g.iterrows():
            i, j = names.index(r["source"]), names.index(r["target"])
            mat[i, j], n_cls[i, j] = 100 * r["uar_mean"], r["n_classes"]
        mixed = g["n_classes"].nunique() > 1
        fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2, 1.0 * len(names) + 1.5))
        im = _source_target(ax, mat, names, cmap="viridis", vmin=vmin, vmax=vmax,
                            text=lambda i, j: f"{mat[i, j]:.0f}" + (f"\n{n_cls[i, j]} cl." if mixed else ""),
                            color=lambda v: "w" if v < vmin + 0.7 * (vmax - vmin) else "k")
        ax.set_title(f"UAR % — {enc} / {head} / {layer}\n(diagonal: same-corpus"
                     + ("; cl. = classes: chance differs" if mixed else "") + ")", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046)
        name = f"heatmap_{_safe(enc)}_{_safe(head)}_{_safe(layer)}.png"
        _save(fig, fig_dir / name)
        out.append((f"cross-corpus heatmap {enc}/{head}/{layer}", f"figures/{name}"))
    cross = results[results["setting"] == "cross"]
    for (head, layer), g in cross.groupby(["head", "layer"]):
        agg = g.groupby("encoder")["uar_mean"].agg(["mean", "std", "count"]).sort_values("mean")
        fig, ax = plt.subplots(figsize=(6, 0.5 * len(agg) + 1.8))
        ax.barh(agg.index, 100 * agg["mean"], xerr=100 * agg["std"].fillna(0), color="tab:blue", alpha=0.6,
                capsize=3)
        for y, enc in enumerate(agg.index):
            v = 100 * g.loc[g["encoder"] == enc, "uar_mean"].to_numpy()
            ax.plot(v, np.full(v.size, y), "k.", ms=4)
        chance = g["chance_uar"].unique()
        if chance.size == 1:
            ax.axvline(100 * chance[0], color="k", ls="--", lw=1, label="chance")
            ax.legend(loc="lower right", fontsize=8)
        ax.set_xlabel(f"cross-corpus UAR %: bar = mean over {int(agg['count'].max())} corpus pairs, whiskers = "
                      "±1 SD over pairs\n(spread across pairs, not a confidence interval); dots = single pairs"
                      + ("" if chance.size == 1 else "; chance differs by pair"), fontsize=8)
        ax.set_title(f"Ranking — head {head}, layer {layer}", fontsize=9)
        name = f"ranking_{_safe(head)}_{_safe(layer)}.png"
        _save(fig, fig_dir / name)
        out.append((f"ranking {head}/{layer}", f"figures/{name}"))
    for (head, layer), fr in ranks[ranks["setting"] == "cross"].groupby(["head", "layer"]):
        fig, ax = plt.subplots(figsize=(7, 0.45 * ((len(fr) + 1) // 2) + 1.6))
        f0 = fr.iloc[0]
        descriptive = f0["ranking"] == "descriptive"
        draw_cd_diagram(ax, fr["avg_rank"].to_numpy(), float(f0["cd"]), fr["encoder"].tolist(),
                                descriptive=descriptive,
                                title=f"Average rank over {int(f0['n_blocks'])} corpus pairs, {int(f0['n_corpora'])} "
                                      f"corpora — head {head}, layer {layer}\n"
                                      + ("descriptive: too few corpora for a ranking claim" if descriptive else
                                         f"Friedman p {format_p(f0['friedman_p'])}, corpora as units"))
        name = f"cd_{_safe(head)}_{_safe(layer)}.png"
        _save(fig, fig_dir / name)
        out.append((f"critical-difference {head}/{layer}", f"figures/{name}"))
    if len(cross):
        out += _confusion_figure(fig_dir, cross, preds)
    return out


def _confusion_figure(fig_dir: Path, cross: pd.DataFrame, preds: pd.DataFrame) -> list[tuple[str, str]]:
    import matplotlib.pyplot as plt

    best = cross.sort_values("uar_mean", ascending=False).iloc[0]
    sub = preds[(preds["encoder"] == best["encoder"]) & (preds["head"] == best["head"]) &
                (preds["layer"] == best["layer"]) & (preds["setting"] == "cross") &
                (preds["source"] == best["source"]) & (preds["target"] == best["target"])]
    cell_labels = best["labels"].split("|")
    labels = canonical_order(cell_labels)
    order = [cell_labels.index(lab) for lab in labels]  # canonical position -> cell's class index
    cm = metrics.confusion(sub["true"].to_numpy(), sub["pred"].to_numpy(), len(cell_labels))[np.ix_(order, order)]
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
    _save(fig, fig_dir / "confusion_best_cross.png")
    return [("confusion matrix of the best cross-corpus cell", "figures/confusion_best_cross.png")]


def _source_target(ax, mat: np.ndarray, names: list[str], *, cmap: str, vmin: float, vmax: float, text,
                   color=lambda v: None):
    """A source x target matrix on ``ax`` (rows: training corpus, columns: test corpus), each
    finite cell labelled ``text(i, j)`` in ``color(value)`` (None: the default colour); the
    heatmap of both reports. Returns the image for a colour bar."""
    im = ax.imshow(mat, cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("test (target)")
    ax.set_ylabel("train (source)")
    for i in range(len(names)):
        for j in range(len(names)):
            if np.isfinite(mat[i, j]):
                ax.text(j, i, text(i, j), ha="center", va="center", fontsize=8, color=color(mat[i, j]))
    return im


def _safe(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(s))


def layer_figures(run: Path, profile: pd.DataFrame, weights: dict) -> list[tuple[str, str]]:
    """A layer sweep's figures: per encoder and head, UAR per hidden state with its band and
    peak (``profile``: ``report.layer_profile``), and the learned weights of layer "weighted"."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig_dir = run / "figures"
    fig_dir.mkdir(exist_ok=True)
    out = []
    colors = {"same": "tab:green", "cross": "tab:blue", "loco": "tab:purple"}
    for (enc, head), g in profile.groupby(["encoder", "head"]):
        has_gap = g["gap"].notna().any()
        fig, axes = plt.subplots(2 if has_gap else 1, 1, figsize=(7, 6 if has_gap else 3.8), sharex=True,
                                 squeeze=False)
        ax = axes[0, 0]
        for setting, c in g.groupby("setting"):
            c = c.sort_values("layer")
            x, y = c["layer"].to_numpy(), 100 * c["uar"].to_numpy()
            ax.plot(x, y, "o-", color=colors.get(setting), label=f"{setting} (n = {int(c['n_units'].max())})")
            ax.fill_between(x, np.clip(100 * c["low"].to_numpy(), 0, 100), np.clip(100 * c["high"].to_numpy(), 0, 100),
                            color=colors.get(setting), alpha=0.15, lw=0)  # a UAR band is within 0-100
            pk = c[c["peak"]].iloc[0]
            ax.plot([pk["layer"]], [100 * pk["uar"]], "*", ms=14, color=colors.get(setting), mec="k")
            ax.annotate(f"peak {int(pk['layer'])}", (pk["layer"], 100 * pk["uar"]), textcoords="offset points",
                        xytext=(5, 6), fontsize=8)
        ax.set_ylabel("UAR %")
        ax.set_title(f"Layer profile — {enc} / {head} (band: 95 % t-interval over cells; ★ peak)", fontsize=9)
        ax.legend(fontsize=8)
        if has_gap:
            gap = g[g["setting"] == "cross"].sort_values("layer")
            bx = axes[1, 0]
            bx.bar(gap["layer"], 100 * gap["gap"], color="tab:red", alpha=0.6)
            bx.axhline(0, color="k", lw=0.8)
            bx.set_ylabel("same→cross gap\n(points, like label sets)")
        axes[-1, 0].set_xlabel("hidden state (layer index)")
        axes[-1, 0].set_xticks(sorted(g["layer"].unique()))
        name = f"layers_{_safe(enc)}_{_safe(head)}.png"
        _save(fig, fig_dir / name)
        out.append((f"layer profile {enc}/{head}", f"figures/{name}"))
    for (enc, head), w in sorted(weights.items()):
        fig, ax = plt.subplots(figsize=(7, 3))
        mean = w.mean(0)
        ax.bar(np.arange(w.shape[1]), mean, color="tab:orange", alpha=0.7)
        ax.axhline(1 / w.shape[1], color="k", ls="--", lw=1, label="uniform")
        ax.set_xlabel("hidden state (layer index)")
        ax.set_ylabel("learned weight")
        ax.set_title(f"Learned layer weights — {enc} / {head}, layer `weighted` (mean over {w.shape[0]} seeds × "
                     "models)", fontsize=9)
        ax.legend(fontsize=8)
        name = f"layer_weights_{_safe(enc)}_{_safe(head)}.png"
        _save(fig, fig_dir / name)
        out.append((f"layer weights {enc}/{head}", f"figures/{name}"))
    return out


# ----------------------------------------------------------------------------- dimensional

def dimensional_figures(run: Path, results: pd.DataFrame, preds: pd.DataFrame) -> list[tuple[str, str]]:
    """The dimensional report's figures: CCC heatmaps per encoder, head and layer (one panel per
    dimension, -1 to 1), and predicted against true values of the best cross-corpus model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig_dir = run / "figures"
    fig_dir.mkdir(exist_ok=True)
    out = []
    dims = list(dict.fromkeys(results["dimension"]))
    for (enc, head, layer), g in results.groupby(["encoder", "head", "layer"], sort=False):
        g = g[g["setting"].isin(["same", "cross"])]
        names = sorted(set(g["source"]) | set(g["target"]))
        if len(names) < 2:
            continue
        fig, axes = plt.subplots(1, len(dims), figsize=(4.2 * len(dims) + 0.8, 1.0 * len(names) + 1.8), squeeze=False)
        for ax, dim in zip(axes[0], dims):
            mat = np.full((len(names), len(names)), np.nan)
            for _, r in g[g["dimension"] == dim].iterrows():
                mat[names.index(r["source"]), names.index(r["target"])] = r["ccc_mean"]
            im = _source_target(ax, mat, names, cmap="RdBu", vmin=-1, vmax=1,
                                text=lambda i, j, mat=mat: f"{mat[i, j]:.2f}")
            ax.set_title(f"{dim} CCC", fontsize=9)
        fig.colorbar(im, ax=axes[0][-1], fraction=0.046)
        fig.suptitle(f"{enc} / {head} / {layer} (diagonal: same-corpus)", fontsize=9)
        name = f"heatmap_ccc_{_safe(enc)}_{_safe(head)}_{_safe(layer)}.png"
        _save(fig, fig_dir / name)
        out.append((f"CCC heatmap {enc}/{head}/{layer}", f"figures/{name}"))
    cross = results[results["setting"] == "cross"]
    if len(cross):  # the model with the highest mean cross-corpus CCC over pairs and dimensions
        best = cross.groupby(["encoder", "head", "layer"], sort=False)["ccc_mean"].mean().idxmax()
        sel = preds[(preds["setting"] == "cross") & (preds["encoder"] == best[0]) & (preds["head"] == best[1])
                    & (preds["layer"] == best[2])]
        mean = sel.groupby(["cell", "id", "dimension"], sort=False).agg(true=("true", "first"), pred=("pred", "mean"))
        mean = mean.reset_index()
        fig, axes = plt.subplots(1, len(dims), figsize=(3.6 * len(dims), 3.8), squeeze=False)
        for ax, dim in zip(axes[0], dims):
            d = mean[mean["dimension"] == dim]
            ax.scatter(d["true"], d["pred"], s=5, alpha=0.4)
            ax.plot([0, 1], [0, 1], "k--", lw=1)
            ax.set_xlim(-0.05, 1.05)
            ax.set_xlabel(f"true {dim} (0–1)")
            ax.set_ylabel("predicted (seed mean)")
            ax.set_title(f"{dim}: CCC {metrics.ccc(d['true'], d['pred']):.2f} pooled", fontsize=9)
        fig.suptitle(f"Cross-corpus predictions of {'/'.join(best)}, all pairs (highest mean cross CCC)", fontsize=9)
        name = f"scatter_cross_{_safe(best[0])}_{_safe(best[1])}_{_safe(best[2])}.png"
        _save(fig, fig_dir / name)
        out.append((f"predicted vs true, {'/'.join(best)}", f"figures/{name}"))
    return out


# ----------------------------------------------------------------------------- critical-difference diagram

def draw_cd_diagram(ax, avg_ranks, cd: float, names: Sequence[str], *, title: str | None = None,
                    descriptive: bool = False):
    """Demšar's critical-difference diagram on a matplotlib Axes: systems placed on the
    average-rank axis (1 = best, at the left), thick bars joining systems whose ranks differ
    by at most ``cd``, and the CD itself drawn as a scale bar. ``descriptive``: the design
    supports no ranking claim, so no CD and no bars are drawn, and the axes say so. Only
    draws; returns ax."""
    r = np.asarray(avg_ranks, np.float64)
    k = r.size
    if len(names) != k:
        raise ValueError(f"{len(names)} names for {k} average ranks")
    lo, hi = 1, max(k, int(np.ceil(r.max())))
    order = np.argsort(r, kind="stable")
    left, right = order[: (k + 1) // 2], order[(k + 1) // 2:][::-1]
    n_rows = max(len(left), len(right))
    cliques = [] if descriptive else cd_cliques(r, cd)
    ax.set_xlim(lo - 0.6, hi + 0.6)
    ax.set_ylim(-(n_rows + 1.5), 2.2)
    ax.axis("off")
    ax.hlines(0, lo, hi, color="k", lw=1)
    for t in range(lo, hi + 1):
        ax.vlines(t, 0, 0.15, color="k", lw=1)
        ax.text(t, 0.3, str(t), ha="center", va="bottom", fontsize=8)
    if descriptive:
        ax.text((lo + hi) / 2, 1.6, "descriptive: no ranking claim", ha="center", va="bottom", fontsize=8,
                style="italic")
    elif np.isfinite(cd) and cd > 0:
        ax.hlines(1.4, lo, lo + cd, color="k", lw=1.5)
        ax.vlines([lo, lo + cd], 1.3, 1.5, color="k", lw=1.5)
        ax.text(lo + cd / 2, 1.6, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=8)
    for side, idxs in (("left", left), ("right", right)):
        for row, i in enumerate(idxs):
            y = -(row + 1) * 0.8 - 0.4
            x_end = lo - 0.5 if side == "left" else hi + 0.5
            ax.plot([r[i], r[i], x_end], [0, y, y], color="k", lw=0.8)
            ax.text(x_end + (-0.05 if side == "left" else 0.05), y, f"{names[i]} ({r[i]:.2f})",
                    ha="right" if side == "left" else "left", va="center", fontsize=8)
    for n, clique in enumerate(cliques):
        y = -0.25 - 0.18 * n
        ax.hlines(y, r[clique[0]] - 0.03, r[clique[-1]] + 0.03, color="k", lw=3)
    if title:
        ax.set_title(title, fontsize=9)
    return ax

