"""Results tables (Markdown, CSV, JSON, LaTeX), significance.csv and figures from a run's predictions.

Long on purpose: every table of a report, from one read of the predictions.

Everything here is recomputed from predictions/*.parquet, read with cells.json and
manifest.json through `jaxser.study.artifacts`' verified readers, so the report can never
disagree with what the models predicted (spec/ re-checks that independently). Tables list
heads, encoders, layers, corpora and label sets in the study's own order (`StudyOrder`).
Every metric and test comes from jaxser.metrics, jaxser.significance and jaxser.study.tables,
every figure from jaxser.study.figures; this module only chooses what to show and formats it.

Same-corpus results pool each seed's predictions over the folds (every utterance is tested
once), then average over seeds. Per-cell intervals are 95% percentile bootstraps over test
utterances of the seed-mean metric, resampling the same utterances for every seed.
Comparisons of encoders answer two labelled questions (docs/statistics.md): on these corpora
(training seeds and test utterances are the random units) and on new corpora (corpora are the
units, as sources and as targets); rankings use corpora as units too.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from jaxser import metrics
from jaxser.metrics import batched_metrics, resampled_metrics
from jaxser.protocol import canonical_order
from jaxser.significance import format_p
from jaxser.study import artifacts, figures, tables
from jaxser.study.tables import cell_arrays

METRICS = metrics.REPORTED
KEYS = ["encoder", "head", "layer", "setting", "source", "target"]
ALPHA = 0.05
SETTING_TITLES = {"same": "Same-corpus", "cross": "Cross-corpus", "loco": "Leave-one-corpus-out"}
DOCS = "docs/statistics.md in the jaxser repository"


def compute_results(preds: pd.DataFrame, cells: list[dict], *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per result cell (encoder, head, layer, setting, source, target): metrics as
    mean/std over seeds, bootstrap intervals, label set, chance and how many seeds predicted
    a single class for every test utterance (``constant_seeds``)."""
    cell_info = {c["name"]: c for c in cells}
    rng = np.random.default_rng(seed)
    rows = []
    for key, g in preds.groupby(KEYS, sort=False):
        seeds = sorted(g["seed"].unique().tolist())
        y, p, _ = cell_arrays(g, seeds)
        names = g["cell"].unique().tolist()
        labels = cell_info[names[0]]["labels"]
        n_classes = len(labels)
        point = batched_metrics(y, p, n_classes)  # per seed
        row = dict(zip(KEYS, key))
        if "chosen_layer" in g and g["chosen_layer"].notna().any():  # layer "best": per fold, in fold order
            row["chosen_layer"] = "|".join(str(int(v)) for v in
                                           g.drop_duplicates("cell").sort_values("fold")["chosen_layer"])
        row.update(labels="|".join(labels), n_classes=n_classes, n_test=len(y), n_seeds=len(seeds),
                   chance_uar=metrics.chance_uar(n_classes),
                   constant_seeds=int(sum(np.unique(ps).size == 1 for ps in p)),
                   excluded=excluded_count(cell_info, names, key[3]))
        boot = resampled_metrics(y, p, n_classes, rng.integers(0, len(y), size=(n_boot, len(y)))) if n_boot else None
        rows.append(summarise(row, point, boot, METRICS))
    return pd.DataFrame(rows)


def excluded_count(cell_info: dict, names: list[str], setting: str) -> int:
    """Target utterances a result cell left out: summed over its cells, except same-corpus folds,
    whose cells each report the corpus' one count."""
    return int(sum(cell_info[n]["excluded"] for n in names) if setting != "same" else cell_info[names[0]]["excluded"])


def summarise(row: dict, point: dict, boot: dict | None, names) -> dict:
    """`row` with each metric's mean/std over seeds and, given bootstrap replicates, its 95 %
    interval of the seed-averaged metric (`<m>_mean`, `<m>_std`, `<m>_ci_low`, `<m>_ci_high`)."""
    for m in names:
        row[f"{m}_mean"], row[f"{m}_std"] = metrics.mean_std(point[m])
        if boot is not None:
            lo, hi = np.percentile(boot[m].mean(0), [2.5, 97.5])
            row[f"{m}_ci_low"], row[f"{m}_ci_high"] = float(lo), float(hi)
    return row


def ranking(results: pd.DataFrame, gaps: pd.DataFrame | None = None, ranks: pd.DataFrame | None = None) -> pd.DataFrame:
    """Encoders by mean cross-corpus UAR per head/layer: the mean and spread over corpus pairs,
    the Friedman average rank over pairs (``ranks``: tables.friedman_rows), same-corpus and
    LOCO means, and the same→cross gap averaged over the pairs where it is defined
    (``gaps``: tables.gap_rows; pairs with different label sets have none)."""
    rows = []
    for (head, layer, enc), g in results.groupby(["head", "layer", "encoder"]):
        cross, same, loco = (g[g["setting"] == s]["uar_mean"] for s in ("cross", "same", "loco"))
        row = {"head": head, "layer": layer, "encoder": enc,
               "cross_uar": cross.mean() if len(cross) else np.nan,
               "cross_sd": cross.std(ddof=1) if len(cross) > 1 else np.nan, "n_pairs": len(cross),
               "same_uar": same.mean() if len(same) else np.nan,
               "loco_uar": loco.mean() if len(loco) else np.nan, "gap": np.nan, "n_gap": 0, "avg_rank": np.nan}
        if gaps is not None and len(gaps):
            gg = gaps[(gaps["encoder"] == enc) & (gaps["head"] == head) & (gaps["layer"] == layer)]["gap"].dropna()
            row["gap"], row["n_gap"] = (gg.mean() if len(gg) else np.nan), len(gg)
        if ranks is not None and len(ranks):
            r = ranks[(ranks["setting"] == "cross") & (ranks["head"] == head) & (ranks["layer"] == layer)
                      & (ranks["encoder"] == enc)]
            if len(r):
                row["avg_rank"] = float(r["avg_rank"].iloc[0])
        rows.append(row)
    df = pd.DataFrame(rows)
    df = df.sort_values(["head", "layer", "cross_uar"], ascending=[True, True, False])
    df["rank"] = df.groupby(["head", "layer"]).cumcount() + 1
    return df


def write_report(run_dir: str | Path, *, bootstrap: int = 1000, family: str = "table") -> pd.DataFrame:
    """Write results.csv/json, significance.csv, report.md, table.tex and figures/ for a finished run.
    ``family``: Holm's family, "table" (each setting, head and layer) or "report" (all of them)."""
    from jaxser.io import atomic_write_text

    run = Path(run_dir)
    manifest = artifacts.read_manifest(run)
    cells = artifacts.read_cells(run)
    dimensional = (manifest.get("protocol") or {}).get("task") == "dimensional"
    preds = artifacts.read_predictions(run, fingerprint=manifest["fingerprint"], cells=cells,
                                       task="dimensional" if dimensional else "categorical")
    preds["layer"] = preds["layer"].astype(str)
    if dimensional:
        from jaxser.study import report_dimensional

        return report_dimensional.write_report(run, preds, cells, manifest, bootstrap=bootstrap, family=family)
    results = compute_results(preds, cells, n_boot=bootstrap)
    atomic_write_text(run / "results.csv", results.to_csv(index=False))
    atomic_write_text(run / "results.json", results.to_json(orient="records", indent=1))
    scores = tables.unit_scores(preds, cells=cells)
    sig = tables.significance_rows(preds, scores=scores, alpha=ALPHA, family=family)
    atomic_write_text(run / "significance.csv", sig.to_csv(index=False))
    ranks = tables.friedman_rows(scores=scores, settings=("cross",), alpha=ALPHA)
    gaps = tables.gap_rows(scores=scores)
    rank = ranking(results, gaps, ranks)
    profile = layer_profile(results, gaps)
    figs = figures.result_figures(run, results, ranks, preds)
    figs += figures.layer_figures(run, profile, artifacts.read_all_layer_weights(run))
    order = StudyOrder(manifest.get("config", {}), cells)
    text = _markdown(manifest, results, rank, ranks, sig, gaps, figs, cells, order, profile)
    if (manifest.get("protocol") or {}).get("split") == "emobox":  # the paper's numbers beside ours
        from jaxser.study import published

        comp = published.comparison(preds, cells, n_boot=bootstrap)
        atomic_write_text(run / published.COMPARISON_FILE, comp.to_csv(index=False))
        in_order = order.frame(preds, ["encoder", "head", "layer", "unit"])  # their rows in study order
        atomic_write_text(run / published.FOLDS_FILE, published.fold_scores(in_order, cells).to_csv(index=False))
        atomic_write_text(run / published.TRACK_FILE, published.track_scores(in_order, cells).to_csv(index=False))
        text += "\n".join(published.markdown(order.frame(comp, ["encoder", "head", "layer", "unit"]))) + "\n"
    atomic_write_text(run / "report.md", text)
    atomic_write_text(run / "table.tex", _latex(results, order))
    return results


# ----------------------------------------------------------------------------- Markdown

def _pct(v, signed: bool = False) -> str:
    if v is None or pd.isna(v):
        return ""
    return f"{100 * v:+.1f}" if signed else f"{100 * v:.1f}"


def _constant_mark(n_const: int, n_seeds: int) -> str:
    if not n_const:
        return ""
    return " (const)" if n_const == n_seeds else f" (const {n_const}/{n_seeds})"


def _md_table(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(str(v) for v in r.tolist()) + " |")
    return "\n".join(lines)


def _md_tables(tables: list[pd.DataFrame]) -> list[str]:
    return [x for t in tables for x in ("", _md_table(t))]


def setting_sections(level: str, tables_of) -> list[str]:
    """A section per setting that has results: its title at heading `level` ("###"), then the
    tables `tables_of(setting)` gives."""
    out = []
    for setting, title in SETTING_TITLES.items():
        tables = tables_of(setting)
        if tables:
            out += ["", f"{level} {title}", *_md_tables(tables)]
    return out


def _ranks(values) -> dict:
    """Each distinct value's first position."""
    return {v: i for i, v in enumerate(dict.fromkeys(values))}


class StudyOrder:
    """The order a report lists things in: the study's own, never alphabetical. Encoders, heads
    and layers as its config lists them (a sweep's hidden states in index order where the
    config says "all"); settings same, cross, LOCO; corpora, corpus pairs and label sets in
    the order the protocol made its cells."""

    def __init__(self, cfg: dict, cells: list[dict]):
        self._rank = {col: _ranks(map(str, cfg.get(f"{col}s") or ())) for col in ("encoder", "head", "layer")}
        self._rank.update(setting=_ranks(SETTING_TITLES), labels=_ranks("|".join(c["labels"]) for c in cells))
        self._units = _ranks((c["setting"], c["source"], c["target"]) for c in cells)

    def key(self, column: str, value) -> tuple:
        rank = self._rank[column]
        if column == "layer":  # a hidden-state index sorts where the config's sweep ("all") stands
            v = str(value)
            return rank.get(v, rank.get("all", len(rank))), int(v) if v.isdigit() else -1, v
        return rank.get(str(value), len(rank)), str(value)

    def values(self, column: str, values) -> list:
        """The distinct `values` of `column` in study order."""
        return sorted(dict.fromkeys(values), key=lambda v: self.key(column, v))

    def frame(self, df: pd.DataFrame, columns) -> pd.DataFrame:
        """`df` sorted by `columns` in study order (stable); "unit" sorts a row's setting, source
        and target as the protocol made the cells."""
        if df.empty:
            return df
        ranks = []
        for c in columns:
            if c == "unit":
                units = list(zip(df["setting"], df["source"], df["target"]))
                ranks.append(np.array([self._units.get(u, len(self._units)) for u in units]))
            else:
                pos = {v: i for i, v in enumerate(self.values(c, df[c]))}
                ranks.append(df[c].map(pos).to_numpy())
        return df.iloc[np.lexsort(ranks[::-1])]  # lexsort: the last key is the primary one, and it is stable

    def combos(self, df: pd.DataFrame, columns) -> list[tuple]:
        """The distinct combinations of `columns` in `df`, in study order."""
        return list(self.frame(df[list(columns)].drop_duplicates(), columns).itertuples(index=False, name=None))

    def units(self, setting: str, sub: pd.DataFrame) -> list[tuple[str, str]]:
        """The (source, target) result units of `setting` in `sub`, as the protocol made the cells."""
        pairs = dict.fromkeys(zip(sub["source"], sub["target"]))
        return sorted(pairs, key=lambda u: (self._units.get((setting, *u), len(self._units)), u))

    def label_keys(self, results: pd.DataFrame) -> dict[str, str]:
        """A short name (L1, L2, ...) per label set of `results`, numbered in cell order."""
        return {s: f"L{i + 1}" for i, s in enumerate(self.values("labels", results["labels"]))}


#: the row heading of a table per result unit, by setting
UNIT_HEADINGS = {"same": "corpus", "cross": "source → target", "loco": "held-out corpus"}
#: encoders side by side in one table; more are split over several tables with the same rows,
#: so a table stays readable in a terminal
ENCODERS_PER_TABLE = 6


def unit_tables(sub: pd.DataFrame, setting: str, text, order: StudyOrder, *, lead: dict | None = None,
                footer: tuple[str, dict] | None = None) -> list[pd.DataFrame]:
    """Tables of one setting with a row per result unit (corpus, corpus pair or held-out corpus)
    and a column per encoder (at most ENCODERS_PER_TABLE a table), both in study order.
    `text`: each row of `sub` as shown; `lead`: columns before the encoders, name -> {unit: text};
    `footer`: a last row, (its heading, {encoder: text})."""
    units = order.units(setting, sub)
    encoders = order.values("encoder", sub["encoder"])
    cell = dict(zip(zip(sub["source"], sub["target"], sub["encoder"]), text))
    names = [f"{s} → {t}" if setting == "cross" else t for s, t in units]
    tables = []
    for i in range(0, len(encoders), ENCODERS_PER_TABLE):
        chunk = encoders[i:i + ENCODERS_PER_TABLE]
        t = pd.DataFrame({UNIT_HEADINGS[setting]: names})
        for name, col in (lead or {}).items():
            t[name] = [col[u] for u in units]
        for e in chunk:
            t[e] = [cell.get((*u, e), "—") for u in units]
        if footer:
            t.loc[len(t)] = [footer[0], *("" for _ in lead or ()), *(footer[1].get(e, "") for e in chunk)]
        tables.append(t)
    return tables


def _uar_tables(results, setting, head, layer, keys, order: StudyOrder) -> list[pd.DataFrame]:
    """UAR mean ± std per result unit and encoder, each unit's chance level and label set
    beside it, constant-prediction cells marked, and each encoder's mean in the last row."""
    sub = results[(results["setting"] == setting) & (results["head"] == head) & (results["layer"] == layer)]
    if sub.empty:
        return []
    val = [f"{_pct(m)} ± {_pct(s)}{_constant_mark(c, n)}" for m, s, c, n in
           zip(sub["uar_mean"], sub["uar_std"], sub["constant_seeds"], sub["n_seeds"])]
    per_unit = sub.drop_duplicates(["source", "target"]).set_index(["source", "target"])
    chance = {u: f"{_pct(r['chance_uar'])} ({keys[r['labels']]})" for u, r in per_unit.iterrows()}
    mixed = sub["labels"].nunique() > 1
    means = sub.groupby("encoder")["uar_mean"].mean().map(_pct).to_dict()
    return unit_tables(sub, setting, val, order, lead={"chance (label set)": chance},
                       footer=("*mean UAR (mixed label sets)*" if mixed else "*mean UAR*", means))


def _gap_tables(gaps: pd.DataFrame, head, layer, order: StudyOrder) -> list[pd.DataFrame]:
    g = gaps[(gaps["head"] == head) & (gaps["layer"] == layer)]
    if g.empty:
        return []

    def show(r):
        if pd.notna(r["gap"]):
            return _pct(r["gap"], signed=True)
        if r["note"].startswith("label sets differ"):
            return "n/a (different label sets)"
        return "n/a (no same-corpus result)"

    return unit_tables(g, "cross", g.apply(show, axis=1).tolist(), order)


def _sig_table(sig: pd.DataFrame) -> pd.DataFrame:
    t = pd.DataFrame({
        "setting": sig["setting"],  # each encoder with its mean UAR beside it: fewer columns to scan
        "A (UAR)": [f"{e} ({_pct(m)})" for e, m in zip(sig["encoder_a"], sig["mean_a"])],
        "B (UAR)": [f"{e} ({_pct(m)})" for e, m in zip(sig["encoder_b"], sig["mean_b"])],
        "A − B": sig["diff_uar"].map(lambda v: _pct(v, signed=True)),
        "95% CI": [f"[{_pct(lo, True)}, {_pct(hi, True)}]" if np.isfinite(lo) and np.isfinite(hi)
                   else "unbounded (too few units)" for lo, hi in zip(sig["ci_low"], sig["ci_high"])],
        "p": sig["p"].map(format_p), "p (Holm)": sig["p_adjusted"].map(format_p),
        "smallest possible p": sig["p_min"].map(format_p),
        "significant": sig["significant"].map(lambda s: "yes" if s else "no"),
        "units (independent)": [f"{u} ({c})" for u, c in zip(sig["n_units"], sig["n_clusters"])],
    })
    if "claim" in sig and (sig["claim"] == "these-corpora").all():  # a t-test: no design floor
        t = t.drop(columns=["smallest possible p"]).rename(columns={"units (independent)": "units (model groups)"})
    return t


def _settings_note(cfg: dict, results: pd.DataFrame) -> list[str]:
    """Footnotes for settings that have no results, so an empty column is never a mystery."""
    configured = cfg.get("settings") or ["same", "cross", "loco"]
    notes = []
    for s, name in (("same", "same-corpus"), ("cross", "cross-corpus"), ("loco", "leave-one-corpus-out (LOCO)")):
        if (results["setting"] == s).any():
            continue
        if s not in configured:
            notes.append(f"No {name} results: this study's settings ({', '.join(configured)}) exclude {s}.")
        elif s == "loco":
            notes.append("No leave-one-corpus-out results: LOCO needs at least 3 corpora.")
        else:
            notes.append(f"No {name} results in this run.")
    return notes


def _markdown(manifest, results, rank, ranks, sig, gaps, figs, cells, order: StudyOrder, profile=None) -> str:
    cfg = manifest.get("config", {})
    keys = order.label_keys(results)
    fig_of = dict(figs)
    out = ["# Cross-corpus SER benchmark report", ""]
    labels_cfg = cfg.get("labels")
    out.append(f"Corpora: {', '.join(cfg.get('corpora', []))}. Encoders: {', '.join(cfg.get('encoders', []))}. "
               f"Heads: {', '.join(cfg.get('heads', []))}. Layers: {', '.join(map(str, cfg.get('layers', [])))}. "
               f"Seeds: {manifest.get('seeds')}. Label set: "
               f"{', '.join(labels_cfg) if labels_cfg else 'shared by source and target (per pair)'}. "
               f"git {str(manifest.get('git', ''))[:10]}.")
    folds = ("folds disjoint in speaker and sentence (speaker+text, see below)"
             if any(c.get("split") == "speaker+text" for c in cells) else "speaker-independent folds")
    protocol = (f"Same-corpus: {folds}, each utterance tested once. Cross-corpus: train on the source, test on all "
                "of the target. Model selection on a speaker-disjoint split of the source only.")
    if any(c.get("split") == "emobox" for c in cells):  # EmoBox's partitions (docs/emobox.md)
        protocol = ("Same-corpus: EmoBox's folds, as its partition files list them (folds pooled here; EmoBox's "
                    "mean over folds below). Cross-corpus: train on the source less its own track list, test on "
                    "the target's balanced EmoBox track list. Model selection on EmoBox's validation file where "
                    "it has one, else on a speaker-disjoint split of the source's training data.")
    out += ["", f"All numbers are UAR (%) as mean ± std over seeds. {protocol}",
            "", "**Label sets and chance.** UARs are only comparable within one label set (chance = 100/classes). "
                "Every table gives each row's chance level and label set:", ""]
    out += [f"- {k}: {', '.join(canonical_order(s.split('|')))} ({len(s.split('|'))} classes, chance "
            f"{100 / len(s.split('|')):.1f}%)" for s, k in keys.items()]
    n_const = int((results["constant_seeds"] > 0).sum())
    out += ["", "**(const)** marks a cell whose model predicted one class for every test utterance in every "
                "seed (its UAR is chance by construction); **(const k/S)** in k of S seeds. "
                f"{n_const} of {len(results)} result cells are marked. **—**: no result for that encoder and cell."]
    out += [f"\n{n}" for n in _settings_note(cfg, results)]
    out += _layer_section(profile, results, fig_of, order)
    for head, layer in order.combos(results, ["head", "layer"]):
        out += ["", f"## Head `{head}`, layer `{layer}`"]
        out += setting_sections("###", lambda setting: _uar_tables(results, setting, head, layer, keys, order))
        gap_tabs = _gap_tables(gaps, head, layer, order)
        if gap_tabs:
            out += ["", "### Same→cross gap (points of UAR)", "",
                    "The target's same-corpus UAR minus the pair's cross-corpus UAR, only where both cells use "
                    "the same label set (otherwise their chance levels differ and the difference means nothing)."]
            out += _md_tables(gap_tabs)
        out += _ranking_section(rank, ranks, head, layer, fig_of)
        s = sig.assign(family_size=sig.groupby(["claim", "holm_family"])["p"].transform("count"))
        s = s[(s["head"] == head) & (s["layer"] == layer)]
        out += _significance_section(s.sort_values("setting", key=lambda c: c.map(
            {k: i for i, k in enumerate(SETTING_TITLES)}), kind="stable"))
    out += _speaker_text_section(cells)
    excl = list(dict.fromkeys((c["target"], c["excluded"]) for c in cells if c["setting"] != "same" and c["excluded"]))
    if excl:
        out += ["", "## Excluded target utterances (outside the label set)", ""]
        out += [_md_table(pd.DataFrame(excl, columns=["target", "excluded"]))]
    if manifest.get("skipped"):
        out += ["", f"## Skipped audio ({len(manifest['skipped'])} files)", ""]
        out += [f"- `{u}`: {why}" for u, why in list(manifest["skipped"].items())[:50]]
    other = _figure_list(figs, results, order)
    if other:
        out += ["", "## Figures", "", "All heatmaps share one colour scale."]
        for name, path in other:
            out += ["", f"![{name}]({path})"]
    out += ["", "Full results (with 95% bootstrap intervals over test utterances, WA and macro-F1): `results.csv`; "
                "every encoder comparison: `significance.csv`; LaTeX: `table.tex`; per-utterance predictions: "
                "`predictions/`.", ""]
    return "\n".join(out)


def _figure_list(figs: list[tuple[str, str]], results: pd.DataFrame, order: StudyOrder,
                 heatmap: str = "cross-corpus heatmap") -> list[tuple[str, str]]:
    """The figures of the report's figure list (rankings, critical differences and layer figures
    stand in their sections): heatmaps (named "<heatmap> <encoder>/<head>/<layer>") in study
    order, then the rest as made."""
    fig_of = dict(figs)
    heatmaps = [(name, fig_of[name]) for head, layer, enc in order.combos(results, ["head", "layer", "encoder"])
                if (name := f"{heatmap} {enc}/{head}/{layer}") in fig_of]
    rest = [(n, p) for n, p in figs if not n.startswith(("ranking ", "critical-difference ", "layer ",
                                                         heatmap + " "))]
    return heatmaps + rest


def _ranking_section(rank, ranks, head, layer, fig_of) -> list[str]:
    r = rank[(rank["head"] == head) & (rank["layer"] == layer)]
    out = ["", "### Ranking by mean cross-corpus UAR", ""]
    if not r["cross_uar"].notna().any():
        return out + ["No cross-corpus results for this head and layer."]
    rt = pd.DataFrame({"rank": r["rank"], "encoder": r["encoder"],
                       "cross UAR (mean over pairs)": r["cross_uar"].map(_pct),
                       "SD over pairs": r["cross_sd"].map(_pct), "pairs": r["n_pairs"],
                       "avg rank over pairs": r["avg_rank"].map(lambda v: "" if pd.isna(v) else f"{v:.2f}")})
    if r["same_uar"].notna().any():
        rt["same UAR"] = r["same_uar"].map(_pct)
        rt["gap same→cross"] = [
            _pct(g, True) + ("" if k == n else f" ({k}/{n} pairs)") if k else "n/a (different label sets)"
            for g, k, n in zip(r["gap"], r["n_gap"], r["n_pairs"])]
    if r["loco_uar"].notna().any():
        rt["LOCO UAR"] = r["loco_uar"].map(_pct)
    out += [_md_table(rt), "",
            "SD over pairs is the spread of the encoder's UAR across corpus pairs (how much transfer varies), "
            "not an uncertainty of the mean; the gap is averaged over the pairs where it is defined."]
    fr = ranks[(ranks["setting"] == "cross") & (ranks["head"] == head) & (ranks["layer"] == layer)]
    cd_fig = fig_of.get(f"critical-difference {head}/{layer}")
    if len(fr) and cd_fig:
        f0 = fr.iloc[0]
        out += ["", f"![critical-difference diagram {head}/{layer}]({cd_fig})", ""]
        words = (f"Average ranks over {int(f0['n_blocks'])} corpus pairs (rank 1 = best on a pair) of {len(fr)} "
                 f"encoders. The test treats the {int(f0['n_corpora'])} corpora as the units (a pair shares its "
                 "source's trained model and its target's test set with other pairs): encoders are relabelled "
                 "within each corpus' jackknife pseudo-values. ")
        if f0["ranking"] == "descriptive":
            out += [words + f"With {int(f0['n_corpora'])} corpora no difference of average ranks could exceed the "
                    f"critical difference at α = {ALPHA}: the diagram is **descriptive** and claims nothing "
                    f"(see {DOCS})."]
        else:
            out += [words + f"Friedman p = {format_p(f0['friedman_p'])} (smallest possible "
                    f"{format_p(f0['p_min'])}). Critical difference at α = {ALPHA}: {f0['cd']:.2f} ranks; "
                    "encoders joined by a bar are not significantly different. If all encoders were equally good, "
                    f"some pair would differ by more than the CD in at most {ALPHA:.0%} of studies (see {DOCS})."]
    else:
        n_enc = int(r["cross_uar"].notna().sum())
        why = ("only one encoder has cross-corpus results" if n_enc < 2 else
               "fewer than 2 corpus pairs have a result for every encoder")
        out += ["", f"No critical-difference diagram: {why}, so there is nothing to rank."]
    rank_fig = fig_of.get(f"ranking {head}/{layer}")
    if rank_fig:
        out += ["", f"![ranking {head}/{layer}]({rank_fig})"]
    return out


def _significance_section(s: pd.DataFrame) -> list[str]:
    out = ["", "### Are the differences between encoders significant?", ""]
    if s.empty:
        return out + ["No comparisons: fewer than two encoders have results on common cells."]
    family = s["holm_family"].iloc[0] if "holm_family" in s else ""
    scope = ("the whole report (every setting, head and layer)" if family == "report"
             else "one setting, head and layer")
    out += ["Each row compares two encoders (A has the higher mean UAR). The unit is the result cell: a corpus "
            "pair for cross-corpus, a corpus (folds pooled) for same-corpus, a held-out corpus for LOCO; each "
            "encoder's score on a unit is its UAR averaged over seeds. Two questions are asked of every pair, "
            f"each with its own Holm correction over {scope}: **significant** means the Holm-adjusted p is "
            f"≤ {ALPHA}, so if all encoders were equally good the chance of any row of that question being "
            f"marked significant would be at most 5%. Details: {DOCS}; all rows: `significance.csv`."]
    a = s[s["claim"] == "these-corpora"]
    if len(a):
        out += ["", "**On these corpora** — would A still beat B on *these* corpora with other training seeds and "
                "other test utterances drawn from the same corpora? The corpora are fixed: this says nothing about "
                "other corpora. p is a t-test whose variance adds how much each trained model's score moves from "
                "seed to seed and how much the score would move with another sample of test utterances (paired: "
                "both encoders are scored on the same utterances).", "", _md_table(_sig_table(a))]
        if a["p"].isna().any():
            out += ["", "A row without p: its models were trained with one seed, so seed-to-seed variation cannot "
                    "be measured; train with 2 or more seeds."]
    b = s[s["claim"] == "new-corpora"]
    if len(b):
        per = b.groupby(["n_clusters", "p_min"], sort=False)["setting"].agg(lambda c: ", ".join(dict.fromkeys(c)))
        floors = "; ".join(f"{format_p(pm)} with {n} corpora" + (f" ({st})" if len(per) > 1 else "")
                           for (n, pm), st in per.items())
        adj = (b["p_min"] * b["family_size"]).clip(upper=1)  # Holm's first step: the best a family can do
        out += ["", "**On new corpora** — would A beat B on corpora like these that are *not* in the study? Each "
                "corpus is one unit, as a training and as a test corpus (jackknife pseudo-values over corpora, "
                "sign-flip test), so an encoder that happens to suit one corpus counts once. Smallest achievable "
                f"p of this design: {floors}" + ("" if (adj <= ALPHA).any() else
                f"; after Holm no row can reach {ALPHA} whatever the differences: this study has too few corpora "
                "to claim anything about new corpora (a non-significant row here says nothing either way)") + ".",
                "", _md_table(_sig_table(b))]
    return out


def _speaker_text_section(cells: list[dict]) -> list[str]:
    """Per corpus, what the speaker+text split costs: utterances of other speakers withheld
    from training because they say a sentence of the test block."""
    same = [c for c in cells if c["setting"] == "same"]
    if not any(c.get("split") == "speaker+text" for c in cells):
        return []
    rows = []
    for corpus in dict.fromkeys(c["source"] for c in same):
        cs = [c for c in same if c["source"] == corpus]
        if all(c.get("split") != "speaker+text" for c in cs):
            rows.append({"corpus": corpus, "folds": len(cs), "withheld per fold (mean, range)": "0 (kept speaker "
                         "folds: fewer than two sentence ids)", "share of training pool": ""})
            continue
        lost = np.array([int(c.get("excluded_train", 0)) for c in cs])
        pool = np.array([int(c.get("n_fit", 0)) + int(c.get("n_val", 0)) for c in cs]) + lost
        rows.append({"corpus": corpus, "folds": len(cs),
                     "withheld per fold (mean, range)": f"{lost.mean():.1f} ({lost.min()}–{lost.max()})",
                     "share of training pool": f"{100 * lost.sum() / max(pool.sum(), 1):.0f}%"})
    if not rows:
        return []
    return ["", "## Speaker+text folds: training utterances withheld", "",
            "Same-corpus folds are disjoint in speaker and sentence: utterances of other speakers that say a "
            "sentence of the test block are withheld from training (counted per fold below; see docs/protocol.md).",
            "", _md_table(pd.DataFrame(rows))]


def _latex(results: pd.DataFrame, order: StudyOrder) -> str:
    lines = ["% jaxser cross-corpus results: UAR (%) mean ± std over seeds; chance = 100 / classes",
             "\\begin{tabular}{lll" + "c" * 4 + "}", "\\toprule",
             "Encoder & Head & Layer & Same & Cross & LOCO & Chance \\\\", "\\midrule"]
    esc = lambda t: str(t).replace("_", "\\_")  # noqa: E731
    for enc, head, layer in order.combos(results, ["encoder", "head", "layer"]):
        g = results[(results["encoder"] == enc) & (results["head"] == head) & (results["layer"] == layer)]
        vals = []
        for s in ("same", "cross", "loco"):
            sub = g[g["setting"] == s]
            vals.append("--" if sub.empty else f"{100 * sub['uar_mean'].mean():.1f} $\\pm$ "
                        f"{100 * sub['uar_std'].mean():.1f}")
        ch = sorted({round(100 * c, 1) for c in g["chance_uar"]})
        vals.append(f"{ch[0]:.1f}" if len(ch) == 1 else f"{ch[0]:.1f}--{ch[-1]:.1f}")
        lines.append(f"{esc(enc)} & {esc(head)} & {esc(layer)} & " + " & ".join(vals) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- layer profile

LAYER_SETTINGS = ("same", "cross", "loco")


def _is_index(layer) -> bool:
    return str(layer).isdigit()



def layer_profile(results: pd.DataFrame, gaps: pd.DataFrame | None = None) -> pd.DataFrame:
    """UAR per hidden-state index (the layers a sweep reports) for each encoder, head and
    setting: the mean over result cells (corpora for same-corpus, folds pooled; corpus pairs
    for cross-corpus; held-out corpora for LOCO) with a 95 % t-band, and the same→cross gap
    averaged over the pairs where it is defined (one label set on both sides). One row per
    encoder, head, setting and layer; ``peak`` marks each curve's highest mean."""
    cols = ["encoder", "head", "setting", "layer", "uar", "low", "high", "n_units", "gap", "n_gap", "peak"]
    sub = results[results["layer"].map(_is_index) & results["setting"].isin(LAYER_SETTINGS)]
    rows = []
    for (enc, head, setting, layer), g in sub.groupby(["encoder", "head", "setting", "layer"]):
        mean, lo, hi = metrics.mean_ci(g["uar_mean"])
        row = {"encoder": enc, "head": head, "setting": setting, "layer": int(layer), "uar": mean, "low": lo,
               "high": hi, "n_units": len(g), "gap": np.nan, "n_gap": 0}
        if setting == "cross" and gaps is not None and len(gaps):
            gg = gaps[(gaps["encoder"] == enc) & (gaps["head"] == head) & (gaps["layer"].astype(str) == layer)]
            gg = gg["gap"].dropna()
            row["gap"], row["n_gap"] = (gg.mean() if len(gg) else np.nan), len(gg)
        rows.append(row)
    prof = pd.DataFrame(rows, columns=cols[:-1])
    if prof.empty:
        return prof.assign(peak=pd.Series(dtype=bool))
    prof = prof.sort_values(["encoder", "head", "setting", "layer"]).reset_index(drop=True)
    best = prof.groupby(["encoder", "head", "setting"])["uar"].transform("max")
    first = prof[prof["uar"] == best].groupby(["encoder", "head", "setting"])["layer"].transform("min")
    prof["peak"] = False
    prof.loc[first.index, "peak"] = prof.loc[first.index, "layer"] == first
    # a profile needs at least two layers
    n = prof.groupby(["encoder", "head"])["layer"].transform("nunique")
    return prof[n >= 2].reset_index(drop=True)


def best_layers(profile: pd.DataFrame, results: pd.DataFrame) -> pd.DataFrame:
    """Per encoder, head and setting: the peak layer of the profile with its UAR, the last
    layer's UAR, and the UAR of layer "best" (chosen per training set on source validation)
    when the study has it."""
    rows = []
    for (enc, head, setting), g in profile.groupby(["encoder", "head", "setting"]):
        peak = g[g["peak"]].iloc[0]
        last = g.sort_values("layer").iloc[-1]
        chosen = results[(results["encoder"] == enc) & (results["head"] == head) & (results["setting"] == setting)
                         & (results["layer"] == "best")]
        rows.append({"encoder": enc, "head": head, "setting": setting, "peak layer": int(peak["layer"]),
                     "UAR at peak": _pct(peak["uar"]), f"UAR at last ({int(last['layer'])})": _pct(last["uar"]),
                     "UAR of 'best' (validation choice)": _pct(chosen["uar_mean"].mean()) if len(chosen) else "",
                     "layers chosen": ", ".join(sorted({x for v in chosen.get("chosen_layer", pd.Series(dtype=str))
                                                         .dropna().astype(str) for x in v.split("|")}, key=int))})
    return pd.DataFrame(rows)


def _layer_section(profile, results, fig_of, order: StudyOrder) -> list[str]:
    if profile is None or profile.empty:
        return []
    out = ["", "## Layer profile", "",
           "UAR per hidden state (index 0 = the encoder's first hidden state) as the mean over result cells: "
           "corpora for same-corpus (folds pooled), corpus pairs for cross-corpus, held-out corpora for LOCO; the "
           "shaded band is a 95 % t-interval over those cells, and the gap is averaged over the pairs whose "
           "same-corpus and cross-corpus cells share a label set. The peak layer is picked on *test* results: it "
           "describes where emotion (and its transfer) sits, it is not a model selection. Layer `best` is the "
           "selection: per training set, the layer with the highest source-validation UAR (no target data).", "",
           _md_table(order.frame(best_layers(profile, results), ["head", "encoder", "setting"]))]
    for what in ("layer profile", "layer weights"):  # named "<what> <encoder>/<head>"
        models = [n[len(what) + 1:].rsplit("/", 1) for n in fig_of if n.startswith(what + " ")]
        for enc, head in sorted(models, key=lambda m: (order.key("head", m[1]), order.key("encoder", m[0]))):
            out += ["", f"![{what} {enc}/{head}]({fig_of[f'{what} {enc}/{head}']})"]
    return out


def statistics_plan(cfg) -> list[str]:
    """What the report's claims can reach, from a study config alone (printed before a run):
    one line per claim, and a warning when no comparison on new corpora can be significant."""
    n_tables = len([s for s in cfg.settings if s != "loco" or len(cfg.corpora) >= 3]) * len(cfg.heads) * len(cfg.layers)
    family = getattr(cfg, "family", "table")
    rows = tables.claim_floors(n_corpora=len(cfg.corpora), n_encoders=len(cfg.encoders), n_seeds=len(cfg.seeds),
                                n_tables=n_tables, family=family, alpha=ALPHA)
    scope = "the report" if family == "report" else "each table"
    a, b, r = rows
    if len(cfg.encoders) < 2:
        return ["statistics: one encoder: no comparisons or rankings to test"]

    def fp(p):
        return f"{p:.3g}"

    out = ["statistics: on these corpora: " + (
        f"no floor on p (seeds and test utterances are the units); Holm over {a['family_size']} comparisons in "
        f"{scope}" if a["reachable"] else f"no comparison can be tested ({a['why']})")]
    out.append(f"statistics: on new corpora: smallest p {fp(b['p_min'])} with {len(cfg.corpora)} corpora "
               "(2 / 2^corpora), "
               f"{fp(b['p_min_adjusted'])} after Holm over {b['family_size']} comparisons in {scope}")
    if not b["reachable"]:
        out.append(f"warning: no comparison on new corpora can be significant at {ALPHA} with {len(cfg.corpora)} "
                   f"corpora ({b['why']}); the report still gives the differences and their p")
    out.append(f"statistics: ranking (corpora as units): smallest Friedman p {fp(r['p_min'])}"
               + ("" if r["reachable"] else "; the critical-difference diagram will be descriptive"))
    return out

