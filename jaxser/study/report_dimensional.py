"""The report of a dimensional study: results.csv/json, significance.csv, report.md and
figures from its predictions (arousal, valence, dominance on the corpus-free [0, 1] scale).

Every number is recomputed from predictions/*.parquet through jaxser.metrics, as for the
categorical report: a result cell (encoder, head, layer, setting, source, target, dimension)
scores each seed on the pooled test utterances (same-corpus folds pooled: every utterance is
tested once), and reports the mean and std over seeds of CCC, Pearson r and MAE with 95 %
percentile bootstrap intervals over test utterances of the seed-mean metric. Encoders are
compared per dimension on CCC by the new-corpora claim of docs/statistics.md (corpora as the
units, Holm), as UAR is; its these-corpora claim needs a metric that sums over utterances.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from jaxser import metrics
from jaxser.metrics import DIMENSIONAL_REPORTED
from jaxser.significance import StatisticsError, format_p
from jaxser.study import figures, tables
from jaxser.study.report import (ALPHA, KEYS, StudyOrder, _figure_list, _md_table, excluded_count, setting_sections,
                                 summarise, unit_tables)

DIM_KEYS = [*KEYS, "dimension"]


def cell_values(g: pd.DataFrame, seeds: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """y [N] and predictions [S, N] of one cell and dimension, aligned by utterance id across seeds."""
    g = g.sort_values(["seed", "id"], kind="stable")
    per = [g[g["seed"] == s] for s in seeds]
    ids = per[0]["id"].to_numpy()
    for s, part in zip(seeds, per):
        if not np.array_equal(part["id"].to_numpy(), ids):
            raise StatisticsError(f"seed {s} predicted a different set of utterances than seed {seeds[0]}")
    return per[0]["true"].to_numpy(np.float64), np.stack([part["pred"].to_numpy(np.float64) for part in per])


def compute_results(preds: pd.DataFrame, cells: list[dict], *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per result cell and dimension: CCC, Pearson r and MAE as mean/std over seeds and
    95 % bootstrap intervals (``ccc_mean``, ``ccc_std``, ``ccc_ci_low``, ``ccc_ci_high``, ...),
    n_test, n_seeds, excluded (target utterances without every rating of the study)."""
    cell_info = {c["name"]: c for c in cells}
    rng = np.random.default_rng(seed)
    rows = []
    for key, g in preds.groupby(DIM_KEYS, sort=False):
        seeds = sorted(g["seed"].unique().tolist())
        y, p = cell_values(g, seeds)
        names = g["cell"].unique().tolist()
        point = metrics.regression_metrics(y, p)
        row = dict(zip(DIM_KEYS, key))
        row.update(n_test=len(y), n_seeds=len(seeds), excluded=excluded_count(cell_info, names, key[3]))
        boot = (metrics.resampled_regression_metrics(y, p, rng.integers(0, len(y), size=(n_boot, len(y))))
                if n_boot else None)
        rows.append(summarise(row, point, boot, DIMENSIONAL_REPORTED))
    return pd.DataFrame(rows)


def significance(scores: pd.DataFrame, family: str = "table") -> pd.DataFrame:
    """Every pairwise encoder comparison on CCC, per dimension: the new-corpora claim (the
    sign-flip test of the corpora's jackknife pseudo-values), Holm within each dimension's
    families (``family``: "table", each setting, head and layer; "report", all its tables)."""
    parts = []
    for dim, sub in scores.groupby("dimension", sort=False):
        # CCC is not a sum over utterances, so the these-corpora claim (a test on per-utterance
        # hits) does not apply; the new-corpora claim (corpora as units) does
        s = tables.significance_rows(scores=sub, metric="ccc", claim="new-corpora", alpha=ALPHA,
                                      family=family)
        s.insert(0, "dimension", dim)
        parts.append(s)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def ranking(results: pd.DataFrame) -> pd.DataFrame:
    """Per dimension, head and layer: encoders by mean cross-corpus CCC over corpus pairs, with
    the spread over pairs and the same-corpus and LOCO means."""
    rows = []
    for (dim, head, layer, enc), g in results.groupby(["dimension", "head", "layer", "encoder"], sort=False):
        cross, same, loco = (g[g["setting"] == s]["ccc_mean"] for s in ("cross", "same", "loco"))
        rows.append({"dimension": dim, "head": head, "layer": layer, "encoder": enc,
                     "cross_ccc": cross.mean() if len(cross) else np.nan,
                     "cross_sd": cross.std(ddof=1) if len(cross) > 1 else np.nan, "n_pairs": len(cross),
                     "same_ccc": same.mean() if len(same) else np.nan,
                     "loco_ccc": loco.mean() if len(loco) else np.nan})
    df = pd.DataFrame(rows)
    return df.sort_values(["dimension", "head", "layer", "cross_ccc"], ascending=[True, True, True, False],
                          kind="stable") if len(df) else df


def _f(v, signed=False) -> str:
    return "" if v is None or pd.isna(v) else (f"{v:+.3f}" if signed else f"{v:.3f}")


def _ccc_tables(results, setting, dim, head, layer, order: StudyOrder) -> list[pd.DataFrame]:
    """CCC mean ± std per result unit and encoder, in study order."""
    sub = results[(results["setting"] == setting) & (results["dimension"] == dim) & (results["head"] == head)
                  & (results["layer"] == layer)]
    return unit_tables(sub, setting, [f"{m:.3f} ± {s:.3f}" for m, s in zip(sub["ccc_mean"], sub["ccc_std"])],
                       order) if len(sub) else []


def _markdown(manifest: dict, results, rank, sig, figs, cells) -> str:
    cfg = manifest.get("config", {})
    order = StudyOrder(cfg, cells)
    proto = manifest.get("protocol", {})
    dims = proto.get("dimensions") or cfg.get("dimensions") or sorted(results["dimension"].unique())
    out = ["# Cross-corpus dimensional SER benchmark report", "",
           f"Corpora: {', '.join(cfg.get('corpora', []))}. Encoders: {', '.join(cfg.get('encoders', []))}. "
           f"Heads: {', '.join(cfg.get('heads', []))}. Layers: {', '.join(map(str, cfg.get('layers', [])))}. "
           f"Seeds: {manifest.get('seeds')}. Dimensions: {', '.join(dims)}. git {str(manifest.get('git', ''))[:10]}.",
           "", "All numbers are Lin's concordance correlation coefficient (CCC) as mean ± std over seeds, on "
               "targets mapped to [0, 1] by each corpus' declared scale (never by statistics of the data). "
               "Same-corpus: speaker-independent folds, each utterance tested once. Cross-corpus: train on the "
               "source, test on all of the target. Early stopping and model selection on the mean CCC over the "
               "dimensions of a speaker-disjoint validation split of the source only; targets standardised with "
               "statistics of the fit split only. Pearson r, MAE and 95 % bootstrap intervals: `results.csv`."]
    scales = proto.get("scales") or {}
    if scales:
        out += ["", "**Declared scales** (mapped to [0, 1]):", ""]
        out += [f"- {c}: " + ", ".join(f"{d} {lo:g}–{hi:g}" for d, (lo, hi) in s.items() if d in dims)
                for c, s in scales.items()]
    for dim in dims:
        out += ["", f"## {dim.capitalize()}"]
        for head, layer in order.combos(results, ["head", "layer"]):
            out += ["", f"### Head `{head}`, layer `{layer}`"]
            out += setting_sections("####", lambda setting: _ccc_tables(results, setting, dim, head, layer, order))
            r = rank[(rank["dimension"] == dim) & (rank["head"] == head) & (rank["layer"] == layer)]
            if len(r) and r["cross_ccc"].notna().any():
                out += ["", "#### Ranking by mean cross-corpus CCC", "", _md_table(pd.DataFrame({
                    "encoder": r["encoder"], "cross CCC (mean over pairs)": r["cross_ccc"].map(_f),
                    "SD over pairs": r["cross_sd"].map(_f), "same-corpus CCC": r["same_ccc"].map(_f),
                    "LOCO CCC": r["loco_ccc"].map(_f)}))]
            s = sig[(sig["dimension"] == dim) & (sig["head"] == head) & (sig["layer"] == layer)] if len(sig) else sig
            if len(s):
                out += ["", "#### Encoder comparisons (CCC)", "",
                        "Would the difference hold on corpora not in the study? The sign-flip test of the corpora's "
                        "jackknife pseudo-values (each corpus one unit, as source and as target), Holm-adjusted per "
                        "setting; p_min is the smallest p the design can reach (2 / 2^corpora).", "",
                        _md_table(pd.DataFrame({"setting": s["setting"], "A": s["encoder_a"], "B": s["encoder_b"],
                                                "ΔCCC": s["diff_ccc"].map(lambda v: _f(v, True)),
                                                "p": s["p"].map(format_p), "Holm p": s["p_adjusted"].map(format_p),
                                                "p_min": s["p_min"].map(format_p),
                                                "significant": s["significant"].map({True: "yes", False: "no"})}))]
    excl = list(dict.fromkeys((c["target"], c["excluded"]) for c in cells if c["setting"] != "same" and c["excluded"]))
    if excl:
        out += ["", "## Excluded target utterances (without every rating of the study)", "",
                _md_table(pd.DataFrame(excl, columns=["target", "excluded"]))]
    if figs:
        out += ["", "## Figures", "", "Heatmaps share one CCC colour scale (-1 to 1)."]
        out += [f"\n![{name}]({path})" for name, path in _figure_list(figs, results, order, heatmap="CCC heatmap")]
    return "\n".join(out + [""])


def write_report(run: Path, preds: pd.DataFrame, cells: list[dict], manifest: dict, *,
                 bootstrap: int = 1000, family: str = "table") -> pd.DataFrame:
    """results.csv/json, significance.csv, report.md and figures/ of a dimensional run."""
    from jaxser.io import atomic_write_text

    results = compute_results(preds, cells, n_boot=bootstrap)
    atomic_write_text(run / "results.csv", results.to_csv(index=False))
    atomic_write_text(run / "results.json", results.to_json(orient="records", indent=1))
    sig = significance(tables.dimensional_unit_scores(preds), family)
    atomic_write_text(run / "significance.csv", sig.to_csv(index=False))
    figs = figures.dimensional_figures(run, results, preds)
    atomic_write_text(run / "report.md", _markdown(manifest, results, ranking(results), sig, figs, cells))
    return results
