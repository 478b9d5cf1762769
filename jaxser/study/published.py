"""Published numbers beside a run's own: a run on EmoBox's protocol (split "emobox") is shown
next to the EmoBox paper's tables for the same model, with jaxser's interval, and every
difference larger than that interval is flagged.

`published/emobox.csv` holds the paper's numbers (Ma et al., Interspeech 2024, arXiv
2406.07162): Table 4 (intra-corpus UA, WA, macro-F1 per corpus and model) and Table 5
(cross-corpus accuracy per train/test pair and model), for the models jaxser ports, one row
per number with the table it comes from. Metrics are named as jaxser names them: UA = uar,
WA = accuracy, F1 = macro_f1; values in percent.

EmoBox scores a corpus as the mean over its folds of each fold's metric (not the pooled
predictions jaxser's results.csv reports), so the comparison recomputes that mean here; its
95% interval is a percentile bootstrap over each fold's test utterances (resampled per fold,
the same draws for every seed) of the seed-mean, fold-mean metric.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from jaxser.errors import UserError
from jaxser.metrics import batched_metrics, resampled_metrics
from jaxser.study.tables import cell_arrays

PUBLISHED_DIR = Path(__file__).resolve().parent / "published"
COLUMNS = ("paper", "table", "via", "setting", "corpus", "train", "test", "model", "encoder", "metric", "value")
#: what each setting of EmoBox's protocol is compared on (the paper's cross-corpus table has accuracy only)
COMPARED = {"same": ("uar", "accuracy", "macro_f1"), "cross": ("accuracy", "uar")}
COMPARISON_FILE = "published.csv"
#: an EmoBox run's scores as EmoBox reports them: per fold and the mean over folds; per track
#: pair and the mean over pairs
FOLDS_FILE = "emobox_folds.csv"
TRACK_FILE = "emobox_track.csv"


class PublishedError(UserError, ValueError):
    """A published-numbers file that cannot be read."""


def published(name: str = "emobox") -> pd.DataFrame:
    """The published numbers `published/<name>.csv` (values in percent)."""
    path = PUBLISHED_DIR / f"{name}.csv"
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as e:
        raise PublishedError(f"{path}: unreadable ({type(e).__name__}: {e})") from None
    missing = set(COLUMNS) - set(df.columns)
    if missing:
        raise PublishedError(f"{path}: missing columns {sorted(missing)}")
    df["value"] = pd.to_numeric(df["value"], errors="raise")
    return df


def _fold_metrics(g: pd.DataFrame, n_classes: int, n_boot: int, rng) -> tuple[dict, dict | None]:
    """Seed-mean metrics of one cell, and their bootstrap draws [B] (None without bootstrap)."""
    seeds = sorted(g["seed"].unique().tolist())
    y, p, _ = cell_arrays(g, seeds)
    point = {m: float(np.mean(v)) for m, v in batched_metrics(y, p, n_classes).items()}
    if not n_boot:
        return point, None
    boot = resampled_metrics(y, p, n_classes, rng.integers(0, len(y), size=(n_boot, len(y))))
    return point, {m: v.mean(0) for m, v in boot.items()}


def fold_scores(preds: pd.DataFrame, cells: list[dict]) -> pd.DataFrame:
    """Every model's same-corpus scores per EmoBox fold (seed means, percent) and, in rows with
    fold "mean", their mean over the corpus' folds: EmoBox's UA (uar), WA (accuracy) and F1."""
    info = {c["name"]: c for c in cells}
    rows = []
    keys = ["encoder", "head", "layer", "source"]
    same = preds[preds["setting"] == "same"]
    for key, g in same.groupby(keys, sort=False):
        per = []
        for name, fg in g.groupby("cell", sort=False):
            point, _ = _fold_metrics(fg, len(info[name]["labels"]), 0, None)
            per.append({**dict(zip(keys, key)), "fold": str(info[name]["fold"]),
                        **{m: 100 * point[m] for m in COMPARED["same"]}})
        per.sort(key=lambda r: int(r["fold"]))
        rows += per + [{**dict(zip(keys, key)), "fold": "mean",
                        **{m: float(np.mean([r[m] for r in per])) for m in COMPARED["same"]}}]
    return pd.DataFrame(rows)


def comparison(preds: pd.DataFrame, cells: list[dict], *, table: pd.DataFrame | None = None, n_boot: int = 1000,
               seed: int = 0) -> pd.DataFrame:
    """One row per (encoder, head, layer, cell group, metric) that the published table has: jaxser's
    value (same-corpus: the mean over folds), its 95% interval, the published value and whether
    the published value lies outside the interval (`differs`). Percent throughout."""
    table = published() if table is None else table
    info = {c["name"]: c for c in cells}
    rng = np.random.default_rng(seed)
    rows = []
    keys = ["encoder", "head", "layer", "setting", "source", "target"]
    pairs: dict[tuple, list] = {}  # (encoder, head, layer, metric) -> each cross pair's (value, draws, published)
    for key, g in preds.groupby(keys, sort=False):
        enc, head, layer, setting, source, target = key
        pub = table[(table["encoder"] == enc) & (table["setting"] == setting) & (table["train"] == source)
                    & (table["test"] == target)]
        if pub.empty or setting not in COMPARED:
            continue
        folds = [_fold_metrics(fg, len(info[name]["labels"]), n_boot, rng) for name, fg in g.groupby("cell")]
        for m in COMPARED[setting]:
            hit = pub[pub["metric"] == m]
            if hit.empty:
                continue
            value = 100 * float(np.mean([f[0][m] for f in folds]))
            lo = hi = np.nan
            if n_boot:
                draws = 100 * np.mean([f[1][m] for f in folds], axis=0)
                lo, hi = np.percentile(draws, [2.5, 97.5])
            ref = hit.iloc[0]
            rows.append({**dict(zip(keys, key)), "metric": m, "folds": len(folds), "jaxser": value,
                         "ci_low": float(lo), "ci_high": float(hi), "published": float(ref["value"]),
                         "paper_model": ref["model"], "source_table": f"{ref['paper']}, {ref['table']}",
                         "differs": bool(n_boot) and not lo <= float(ref["value"]) <= hi})
            if setting == "cross":
                pairs.setdefault((enc, head, layer, m), []).append(
                    (value, draws if n_boot else None, float(ref["value"]), rows[-1]))
    for (enc, head, layer, m), got in pairs.items():  # the track's mean over the pairs both have
        if len(got) < 2:
            continue
        value, ref = float(np.mean([v for v, *_ in got])), float(np.mean([p for _, _, p, _ in got]))
        lo = hi = np.nan
        if n_boot:  # pairs resampled independently (their test sets differ or are resampled apart)
            lo, hi = np.percentile(np.mean([d for _, d, _, _ in got], axis=0), [2.5, 97.5])
        rows.append({"encoder": enc, "head": head, "layer": layer, "setting": "cross", "source": "mean",
                     "target": "mean", "metric": m, "folds": len(got), "jaxser": value, "ci_low": float(lo),
                     "ci_high": float(hi), "published": ref, "paper_model": got[0][3]["paper_model"],
                     "source_table": got[0][3]["source_table"] + f" (mean of {len(got)} pairs)",
                     "differs": bool(n_boot) and not lo <= ref <= hi})
    return pd.DataFrame(rows)


def track_scores(preds: pd.DataFrame, cells: list[dict]) -> pd.DataFrame:
    """Every model's cross-corpus scores per pair (seed means, percent: accuracy, the track's
    number, and UAR) and, in rows with source and target "mean", their mean over the pairs."""
    info = {c["name"]: c for c in cells}
    rows = []
    keys = ["encoder", "head", "layer"]
    cross = preds[preds["setting"] == "cross"]
    for key, g in cross.groupby(keys, sort=False):
        per = []
        for (a, b), pg in g.groupby(["source", "target"], sort=False):
            point, _ = _fold_metrics(pg, len(info[pg["cell"].iloc[0]]["labels"]), 0, None)
            per.append({**dict(zip(keys, key)), "source": a, "target": b,
                        **{m: 100 * point[m] for m in COMPARED["cross"]}})
        rows += per + [{**dict(zip(keys, key)), "source": "mean", "target": "mean",
                        **{m: float(np.mean([r[m] for r in per])) for m in COMPARED["cross"]}}]
    return pd.DataFrame(rows)


def markdown(comp: pd.DataFrame) -> list[str]:
    """The report's section: jaxser's number and interval beside the published one."""
    if comp.empty:
        return ["", "## Published numbers (EmoBox)", "",
                "No published number for the encoders and corpora of this run (published/emobox.csv lists "
                "the EmoBox paper's models: " + ", ".join(sorted(published()["encoder"].unique())) + ")."]
    out = ["", "## Published numbers (EmoBox)", "",
           "jaxser's number (same-corpus: the mean over EmoBox's folds of each fold's score, as EmoBox reports "
           "it) with its 95% bootstrap interval, beside the EmoBox paper's for the same model. **!** marks a "
           "published number outside jaxser's interval. The recipes differ (head, training, layer; see "
           "docs/emobox.md), so a difference is a fact to explain, not an error.", ""]
    tab = pd.DataFrame({
        "encoder": comp["encoder"], "head/layer": comp["head"] + "/" + comp["layer"].astype(str),
        "cell": [f"{s}:{a}->{b}" for s, a, b in zip(comp["setting"], comp["source"], comp["target"])],
        "metric": comp["metric"], "folds": comp["folds"],
        "jaxser (95% CI)": [f"{v:.2f} [{lo:.2f}, {hi:.2f}]" for v, lo, hi in
                            zip(comp["jaxser"], comp["ci_low"], comp["ci_high"])],
        "published": [f"{p:.2f}{' **!**' if d else ''}" for p, d in zip(comp["published"], comp["differs"])],
        "source": comp["source_table"]})
    header = "| " + " | ".join(tab.columns) + " |"
    out += [header, "|" + "---|" * len(tab.columns)]
    out += ["| " + " | ".join(str(v) for v in r) + " |" for r in tab.itertuples(index=False)]
    out += ["", f"{int(comp['differs'].sum())} of {len(comp)} published numbers lie outside jaxser's interval "
                f"(`{COMPARISON_FILE}`)."]
    return out
