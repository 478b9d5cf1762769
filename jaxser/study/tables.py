"""Study-level tables over a run's predictions (pandas): per-model-run scores, every encoder
comparison under the two claims, rankings, same->cross gaps, and what each claim can reach.

The bridge between a study's long predictions table and the array-level statistics of
``jaxser.metrics`` and ``jaxser.significance``: it groups predictions into result cells,
checks that compared encoders saw the same utterances and label sets, and lays the tests' results
out as the rows the report and significance.csv show.
"""
from __future__ import annotations

import numpy as np

from jaxser.metrics import DIMENSIONAL_REPORTED, REPORTED, metrics_from_confusion, regression_metrics
from jaxser.significance import (StatisticsError, average_ranks, corpus_membership, friedman_test, holm,
                                 new_corpora_test, rank_permutation_test, signflip_min_p, these_corpora_test)


def cell_arrays(g, seeds: list[int]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """y [N] and predictions [S, N] of one cell's predictions table, aligned by utterance id
    across seeds (columns seed, id, true, pred)."""
    seed = g["seed"].to_numpy()
    ids = g["id"].to_numpy().astype(str)
    order = np.lexsort((ids, seed))
    seed, ids = seed[order], ids[order]
    true, pred = g["true"].to_numpy()[order], g["pred"].to_numpy()[order]
    bounds = np.searchsorted(seed, seeds[1:])
    ids_s, preds_s = np.split(ids, bounds), np.split(pred, bounds)
    for s, i in zip(seeds, ids_s):
        if not np.array_equal(i, ids_s[0]):
            raise StatisticsError(f"seed {s} predicted a different set of utterances than seed {seeds[0]}")
    return true[:len(ids_s[0])], np.stack(preds_s), ids_s[0].tolist()


# ----------------------------------------------------------------------------- predictions tables

UNIT_KEYS = ["setting", "head", "layer", "source", "target"]
_UNIT_WORDS = {"cross": "corpus pair (seed mean)", "same": "corpus, folds pooled (seed mean)",
               "loco": "held-out corpus (seed mean)"}


def _label_sets(df, gid: np.ndarray, n_groups: int, cells) -> list[str]:
    """The label set of every group as 'a|b|c': from cells.json entries when given, else
    rebuilt per unit from the (index, name) pairs of the true/pred labels of all its encoders
    and seeds ('?' for a class nobody predicted and no utterance has)."""
    import pandas as pd

    if cells is not None:
        by_name = {c["name"]: "|".join(c["labels"]) for c in cells}
        missing = sorted(set(df["cell"].unique()) - set(by_name))
        if missing:
            raise StatisticsError(f"cells {missing[:3]} are in the predictions but not in the cells list")
        lab = df["cell"].map(by_name).to_numpy()
        per = pd.DataFrame({"g": gid, "lab": lab}).drop_duplicates()
        if per["g"].duplicated().any():
            raise StatisticsError("folds of one result disagree on the label set")
        out = [""] * n_groups
        for g_, l_ in zip(per["g"].to_numpy(), per["lab"].to_numpy()):
            out[g_] = l_
        return out
    if "true_label" not in df or "pred_label" not in df:
        return ["?"] * n_groups
    uid = df.groupby(UNIT_KEYS, sort=True, observed=True).ngroup().to_numpy()
    n_units = int(uid.max()) + 1 if uid.size else 0
    pairs = pd.concat([pd.DataFrame({"u": uid, "i": df["true"].to_numpy(), "n": df["true_label"].to_numpy()}),
                       pd.DataFrame({"u": uid, "i": df["pred"].to_numpy(), "n": df["pred_label"].to_numpy()})]
                      ).drop_duplicates()
    width = np.zeros(n_units, np.int64)
    if "probs" in df:
        np.maximum.at(width, uid, df["probs"].map(len).to_numpy())
    names: list[dict] = [dict() for _ in range(n_units)]
    for u_, i_, n_ in zip(pairs["u"].to_numpy(), pairs["i"].to_numpy(), pairs["n"].to_numpy()):
        if names[u_].setdefault(int(i_), str(n_)) != str(n_):
            raise StatisticsError(f"class index {int(i_)} means both {names[u_][int(i_)]!r} and {str(n_)!r} "
                                  "in one result cell; only runs with one label set can be compared")
    per_unit = ["|".join(d.get(i, "?") for i in range(max(width[u_], max(d) + 1))) for u_, d in enumerate(names)]
    unit_of_group = np.zeros(n_groups, np.int64)
    unit_of_group[gid] = uid
    return [per_unit[u_] for u_ in unit_of_group]


def unit_scores(preds, *, cells=None):
    """Per-model-run scores from a long predictions table: one row per encoder, head, layer,
    setting, source, target and seed, with UAR, accuracy and macro-F1, n_test, the label set
    and a fingerprint of the tested utterances.

    Same-corpus folds are pooled per seed (every utterance is tested once), as in the report.
    ``cells``: the run's cells.json entries (name, labels); without it the label set is rebuilt
    from the true_label/pred_label columns.
    """
    import pandas as pd

    need = ["encoder", "head", "layer", "setting", "source", "target", "seed", "id", "true", "pred"]
    missing = [c for c in need if c not in preds]
    if missing:
        raise StatisticsError(f"predictions table lacks columns {missing}")
    df = preds.assign(layer=preds["layer"].astype(str))
    keys = ["encoder", *UNIT_KEYS, "seed"]
    grouped = df.groupby(keys, sort=True, observed=True)
    gid = grouped.ngroup().to_numpy()
    out = grouped.size().reset_index(name="n_test")
    n_groups = len(out)
    y = df["true"].to_numpy().astype(np.int64)
    p = df["pred"].to_numpy().astype(np.int64)
    if y.size and (y.min() < 0 or p.min() < 0):
        raise StatisticsError("predictions table has negative class indices in true/pred")
    c = int(max(y.max(), p.max())) + 1 if y.size else 1
    cm = np.bincount((gid * c + y) * c + p, minlength=n_groups * c * c).reshape(n_groups, c, c)
    for name, v in metrics_from_confusion(cm).items():
        out[name] = v
    h = pd.util.hash_array(df["id"].astype(str).to_numpy())
    order = np.argsort(gid, kind="stable")
    starts = np.searchsorted(gid[order], np.arange(n_groups))
    out["ids"] = np.bitwise_xor.reduceat(h[order], starts) if n_groups else np.zeros(0, np.uint64)
    out["labels"] = _label_sets(df, gid, n_groups, cells)
    return out


def _check_units(scores) -> None:
    """Encoders compared on one unit must have been tested on the same utterances with the
    same label set, in every seed."""
    per = scores.groupby(UNIT_KEYS, observed=True)
    for col, what in (("labels", "label sets"), ("ids", "test utterances")):
        bad = per[col].nunique()
        bad = bad[bad > 1]
        if len(bad):
            key = dict(zip(UNIT_KEYS, bad.index[0]))
            raise StatisticsError(f"encoders were scored on different {what} in {key['setting']} "
                                  f"{key['source']}->{key['target']} (head {key['head']}, layer "
                                  f"{key['layer']}); only runs of one study can be compared")


# ----------------------------------------------------------------------------- the two claims
# A comparison of two encoders answers one of two questions (docs/statistics.md; their tests are
# jaxser.significance.these_corpora_test and new_corpora_test):
# "these-corpora": would A still beat B on these corpora with other training seeds and other test
#   utterances? Seeds and utterances are the random units; the corpora are fixed.
# "new-corpora": would A beat B on corpora like these but not in the study? Corpora are the units,
#   as sources and as targets.

CLAIMS = ("these-corpora", "new-corpora")
CLAIM_QUESTIONS = {
    "these-corpora": "on these corpora: would A still beat B with other training seeds and other test "
                     "utterances from the same corpora? (the corpora are fixed)",
    "new-corpora": "on new corpora: would A beat B on corpora like these that are not in the study? "
                   "(corpora are the units, as training and as test corpora)",
}
_LINEAR = ("uar", "accuracy")  # metrics that are weighted sums of per-utterance hits


def _utterance_hits(preds, metric: str):
    """Per encoder, result unit and test utterance: the seed-mean hit (pred == true), the true
    class and the utterance's weight in the metric (UAR: 1 / (classes present x utterances of
    its class); accuracy: 1 / utterances), so a unit's seed-mean metric is sum(weight x hit);
    and var_s, the variance over seeds of the hit minus its model's mean hit (the per-utterance
    seed noise, without the model's overall shift, which the seed term counts), with n_s seeds."""
    keys = ["encoder", *UNIT_KEYS]
    df = preds[keys + ["seed", "id", "true"]].assign(
        layer=preds["layer"].astype(str), hit=(preds["true"].to_numpy() == preds["pred"].to_numpy()))
    df["centred"] = df["hit"] - df.groupby(keys + ["seed"], sort=False, observed=True)["hit"].transform("mean")
    h = df.groupby(keys + ["id"], sort=False, observed=True).agg(
        hit=("hit", "mean"), cls=("true", "first"), var_s=("centred", "var"), n_s=("seed", "nunique"))
    h = h.reset_index()
    n_cls = h.groupby(keys + ["cls"], observed=True)["id"].transform("size").to_numpy(np.float64)
    if metric == "uar":
        n_present = h.groupby(keys, observed=True)["cls"].transform("nunique").to_numpy(np.float64)
        h["w"] = 1.0 / (n_present * n_cls)
    else:
        h["w"] = 1.0 / h.groupby(keys, observed=True)["id"].transform("size").to_numpy(np.float64)
    return h


def _these_corpora_row(g, utt, a: str, b: str, units, diff: float, *, alpha: float) -> dict:
    """these_corpora_test for encoders a and b on the units (source, target) of one table:
    g = the table's per-seed scores, utt = its per-utterance hits (``_utterance_hits``)."""
    import pandas as pd

    k = len(units)
    unit_set = pd.MultiIndex.from_tuples(list(units), names=["source", "target"])
    zs = []
    for enc, sign in ((a, 1.0), (b, -1.0)):
        s = g[g["encoder"] == enc].set_index(["source", "target"])
        s = s[s.index.isin(unit_set)].reset_index()
        seeds_per_unit = s.groupby(["source", "target"], observed=True)["seed"].agg(frozenset)
        per_source = seeds_per_unit.groupby(level="source", observed=True).nunique()
        if (per_source > 1).any():
            raise StatisticsError(f"encoder {enc}: the units of one training set have different seeds; "
                                  "its models cannot be told apart")
        zz = s.pivot_table(index="source", columns="seed", values="_m", aggfunc="sum", observed=True) * sign / k
        zs.append(zz.to_numpy(np.float64))
    width = max(z.shape[1] for z in zs)
    z = np.vstack([np.pad(z_, ((0, 0), (0, width - z_.shape[1])), constant_values=np.nan) for z_ in zs])
    sub = utt[utt["encoder"].isin([a, b])].set_index(["source", "target"])
    sub = sub[sub.index.isin(unit_set)].reset_index()
    sub = sub.assign(nv=sub["var_s"].fillna(0.0) / sub["n_s"])
    wide = sub.pivot_table(index=["source", "target", "id"], columns="encoder", values=["hit", "nv"],
                           observed=True)
    w = sub.drop_duplicates(["source", "target", "id"]).set_index(["source", "target", "id"])[["w", "cls"]]
    wide = wide.join(pd.concat({"": w}, axis=1).set_axis(["w", "cls"], axis=1).pipe(
        lambda t: t.set_axis(pd.MultiIndex.from_tuples([("w", ""), ("cls", "")]), axis=1)), how="inner").dropna()
    by_utt = ["target", "id"]
    delta = (wide["w"] * (wide[("hit", a)] - wide[("hit", b)]) / k).groupby(level=by_utt, observed=True).sum()
    noise = ((wide["w"] / k) ** 2 * (wide[("nv", a)] + wide[("nv", b)])).groupby(level=by_utt, observed=True).sum()
    cls = wide["cls"].groupby(level=["target", "id"], observed=True).first()
    strata = [f"{t}\x00{c}" for t, c in zip(delta.index.get_level_values("target"), cls.to_numpy())]
    t = these_corpora_test(diff, z, delta.to_numpy(), strata, noise.reindex(delta.index).to_numpy(), alpha=alpha)
    return {k_: float(v) for k_, v in t.items()} | {"n_clusters": int(z.shape[0])}


def significance_rows(preds=None, *, scores=None, cells=None, metric: str = "uar", settings=None,
                      claim=CLAIMS, family="table", alpha: float = 0.05, n_perm: int = 20000,
                      seed: int = 0, by_label_set: bool = False):
    """Every pairwise encoder comparison of a study, one row per claim and pair, Holm-adjusted
    per family and claim.

    ``claim``: "these-corpora", "new-corpora" or both (docs/statistics.md):
    - these-corpora: is A better than B on this study's corpora, over training seeds and test
      utterances? ``these_corpora_test``: a t-test whose variance adds the seed-to-seed spread
      of every trained model and the sampling variance of the shared test utterances (paired:
      both encoders are scored on the same utterances). Needs the predictions table (per
      utterance) and a linear metric (uar, accuracy); every model group needs >= 2 seeds.
    - new-corpora: is A better than B on corpora not in the study? ``new_corpora_test``: the
      sign-flip test of jackknife pseudo-values over corpora (a cross pair involves its source
      and its target), so corpus effects in either role are the noise; p >= 2 / 2^corpora.

    The unit is the result cell (corpus pair, corpus with folds pooled, held-out corpus); an
    encoder's score on it is its metric averaged over seeds. ``family``: "table" (Holm within
    each setting, head and layer, the default), "report" (one family for the whole report),
    or the columns to group by. ``by_label_set`` splits tables by label set.

    Rows: setting, head, layer, claim, encoder_a (the better mean), encoder_b, mean_a, mean_b,
    diff_<metric>, ci_low, ci_high, p, p_adjusted, p_min, significant, test, unit, n_units,
    n_clusters, n_seeds, df, labels, holm_family, question.
    """
    import pandas as pd

    if metric not in REPORTED + DIMENSIONAL_REPORTED:
        raise StatisticsError(f"unknown metric {metric!r}; expected one of {list(REPORTED + DIMENSIONAL_REPORTED)}")
    claims = (claim,) if isinstance(claim, str) else tuple(claim)
    if not claims or set(claims) - set(CLAIMS):
        raise StatisticsError(f"claim={claim!r}; expected one or both of {list(CLAIMS)}")
    fam = _family_columns(family)
    if scores is None:
        if preds is None:
            raise StatisticsError("significance_rows needs a predictions table or unit scores")
        scores = unit_scores(preds, cells=cells)
    if "these-corpora" in claims:
        if preds is None:
            raise StatisticsError("claim 'these-corpora' needs the per-utterance predictions table (preds=)")
        if metric not in _LINEAR:
            raise StatisticsError(f"claim 'these-corpora' needs a metric that is a weighted sum of per-utterance "
                                  f"hits ({', '.join(_LINEAR)}), got {metric!r}")
        utt = _utterance_hits(preds, metric)
    if settings is not None:
        scores = scores[scores["setting"].isin(list(settings))]
    _check_units(scores)
    group_keys = ["setting", "head", "layer"] + (["labels"] if by_label_set else [])
    rows = []
    for key, g in scores.groupby(group_keys, sort=True, observed=True):
        key = dict(zip(group_keys, key))
        g = g.assign(_m=g[metric])
        unit_cols = ["source", "target"]
        per = g.groupby([*unit_cols, "encoder"], observed=True).agg(
            score=(metric, "mean"), n_seeds=("seed", "nunique")).reset_index()
        tab = per.pivot(index=unit_cols, columns="encoder", values="score")
        n_seeds = per.pivot(index=unit_cols, columns="encoder", values="n_seeds")
        label_of = g.groupby(unit_cols, observed=True)["labels"].first()
        encoders = tab.mean().sort_values(ascending=False, kind="stable").index.tolist()
        if "these-corpora" in claims:
            sel = np.ones(len(utt), bool)
            for c in ("setting", "head", "layer"):
                sel &= (utt[c] == key[c]).to_numpy()
            utt_g = utt[sel]
        for i, a in enumerate(encoders):
            for b in encoders[i + 1:]:
                both = tab[[a, b]].dropna()
                if both.empty:
                    continue
                d = (both[a] - both[b]).to_numpy()
                labs = sorted(set(label_of.loc[both.index]))
                seeds_ab = n_seeds.loc[both.index, [a, b]].to_numpy()
                base = {**{k: key[k] for k in ("setting", "head", "layer")}, "encoder_a": a, "encoder_b": b,
                        "mean_a": float(both[a].mean()), "mean_b": float(both[b].mean()),
                        "unit": _UNIT_WORDS.get(key["setting"], "result cell (seed mean)"),
                        "n_units": int(d.size), "n_seeds": int(seeds_ab.min()),
                        "labels": labs[0] if len(labs) == 1 else f"{len(labs)} label sets"}
                for c in claims:
                    if c == "new-corpora":
                        m, _ = corpus_membership(both.index.get_level_values("source"),
                                                 both.index.get_level_values("target"), key["setting"])
                        t = new_corpora_test(d, m, alpha=alpha, n_perm=n_perm, seed=seed)
                        test = ("sign-flip permutation of jackknife pseudo-values over corpora, "
                                + ("exact" if t["exact"] else f"{n_perm} random flips"))
                        extra = {"p_min": t["p_min"], "n_clusters": t["n_clusters"], "df": np.nan}
                    else:
                        t = _these_corpora_row(g, utt_g, a, b, both.index, float(d.mean()), alpha=alpha)
                        test = ("t-test, variance over training seeds and test utterances (paired), "
                                "Welch-Satterthwaite df")
                        if not np.isfinite(t["p"]):
                            test += "; not testable: needs >= 2 seeds per model"
                        extra = {"p_min": 0.0, "n_clusters": t["n_clusters"], "df": t["df"]}
                    rows.append({**base, "claim": c, f"diff_{metric}": t["diff"], "ci_low": t["ci_low"],
                                 "ci_high": t["ci_high"], "p": t["p"], "test": test, **extra,
                                 "question": CLAIM_QUESTIONS[c]})
    cols = ["setting", "head", "layer", "claim", "encoder_a", "encoder_b", "mean_a", "mean_b", f"diff_{metric}",
            "ci_low", "ci_high", "p", "p_adjusted", "p_min", "significant", "test", "unit", "n_units",
            "n_clusters", "n_seeds", "df", "labels", "holm_family", "question"]
    out = pd.DataFrame(rows, columns=[c for c in cols if c not in ("p_adjusted", "significant", "holm_family")])
    out["holm_family"] = (out[fam].astype(str).agg("/".join, axis=1) if fam and len(out) else "report")
    if len(out):
        out["p_adjusted"] = out.groupby(["claim", "holm_family"], sort=False, observed=True)["p"].transform(
            lambda s: pd.Series(holm(s.to_numpy()), index=s.index))
    else:
        out["p_adjusted"] = pd.Series(dtype=float)
    out["significant"] = out["p_adjusted"] <= alpha
    return out[cols]


def _family_columns(family) -> list[str]:
    """The columns that define one Holm family: "table" (setting, head, layer), "report" (none:
    one family per claim for the whole report), or explicit columns."""
    if family == "table":
        return ["setting", "head", "layer"]
    if family == "report":
        return []
    if isinstance(family, str):
        raise StatisticsError(f"family={family!r}; expected 'table', 'report' or a list of columns")
    return list(family)


def friedman_rows(preds=None, *, scores=None, cells=None, metric: str = "uar", settings=("cross",),
                  alpha: float = 0.05, n_perm: int = 20000, seed: int = 0):
    """Rankings per setting, head and layer, with corpora as the units (``rank_permutation_test``):
    one row per encoder with avg_rank (its mean rank over the units, 1 = best), and the
    table's n_blocks (units ranked), n_corpora, friedman_chi2 (Friedman's statistic over the
    units, descriptive), friedman_p (the permutation p over corpora), cd (two encoders differ
    when their average ranks differ by more than cd; inf when the design cannot say so),
    p_min and ranking ("calibrated" or "descriptive"). Units where some encoder has no result
    are left out, so every unit ranks every encoder."""
    import pandas as pd

    if scores is None:
        scores = unit_scores(preds, cells=cells)
    if settings is not None:
        scores = scores[scores["setting"].isin(list(settings))]
    rows = []
    for (setting, head, layer), g in scores.groupby(["setting", "head", "layer"], sort=True, observed=True):
        tab = g.groupby(["source", "target", "encoder"], observed=True)[metric].mean().unstack("encoder").dropna()
        if tab.shape[1] < 2 or tab.shape[0] < 2:
            continue
        fr = friedman_test(tab.to_numpy())
        ranks, _ = average_ranks(tab.to_numpy())
        m, _ = corpus_membership(tab.index.get_level_values("source"), tab.index.get_level_values("target"),
                                 setting)
        rt = rank_permutation_test(ranks, m, alpha=alpha, n_perm=n_perm, seed=seed)
        for enc, r in zip(tab.columns, rt["avg_ranks"]):
            rows.append({"setting": setting, "head": head, "layer": layer, "encoder": enc, "avg_rank": float(r),
                         "n_blocks": fr["n_blocks"], "n_corpora": rt["n_corpora"], "friedman_chi2": fr["chi2"],
                         "friedman_p": float(rt["p"]), "cd": float(rt["cd"]), "p_min": rt["p_min"],
                         "ranking": "descriptive" if bool(rt["descriptive"]) else "calibrated"})
    out = pd.DataFrame(rows, columns=["setting", "head", "layer", "encoder", "avg_rank", "n_blocks", "n_corpora",
                                      "friedman_chi2", "friedman_p", "cd", "p_min", "ranking"])
    return out.sort_values(["setting", "head", "layer", "avg_rank"], kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------- before a study runs

def claim_floors(*, n_corpora: int, n_encoders: int, n_seeds: int, n_tables: int, family: str = "table",
                 alpha: float = 0.05, n_perm: int = 20000) -> list[dict]:
    """What each claim of a cross-corpus study can reach, from its design alone: per claim,
    the smallest p, the Holm family size m, the smallest Holm-adjusted p (m x the smallest p:
    the first step of Holm) and whether it can reach alpha; for new-corpora also the fewest
    corpora that could. n_tables: (setting, head, layer) tables in the report."""
    from math import factorial

    pairs = n_encoders * (n_encoders - 1) // 2
    m = pairs * (n_tables if family == "report" else 1)
    out = []
    ok_a = n_seeds >= 2 and pairs > 0
    out.append({"claim": "these-corpora", "p_min": 0.0 if ok_a else 1.0, "family_size": m,
                "p_min_adjusted": 0.0 if ok_a else 1.0, "reachable": ok_a,
                "why": "" if ok_a else ("needs >= 2 seeds" if pairs else "needs >= 2 encoders")})
    g = n_corpora
    p_b = signflip_min_p(g, n_perm=n_perm) if g >= 3 else 1.0
    need = next((n for n in range(3, 64) if m * signflip_min_p(n, n_perm=n_perm) <= alpha), None)
    out.append({"claim": "new-corpora", "p_min": p_b, "family_size": m, "p_min_adjusted": min(1.0, m * p_b),
                "reachable": pairs > 0 and m * p_b <= alpha, "corpora_needed": need,
                "why": "" if m * p_b <= alpha else f"needs >= {need} corpora"})
    if n_encoders >= 2 and g >= 3:
        kf = factorial(n_encoders)
        p_r = max(float(kf) ** (1 - g), 1.0 / (n_perm + 1)) if kf ** g > n_perm else float(kf) ** (1 - g)
    else:
        p_r = 1.0
    out.append({"claim": "ranking", "p_min": p_r, "family_size": 1, "p_min_adjusted": p_r,
                "reachable": p_r <= alpha, "why": "" if p_r <= alpha else "descriptive only"})
    return out


def gap_rows(preds=None, *, scores=None, cells=None, metric: str = "uar"):
    """The same-corpus -> cross-corpus drop per encoder, head, layer and cross pair: the target
    corpus' same-corpus score minus the pair's cross score (seed means). A gap is only formed
    when both cells use the same label set; otherwise it is NaN and ``note`` says why, because
    scores with different chance levels cannot be subtracted."""
    import pandas as pd

    if scores is None:
        scores = unit_scores(preds, cells=cells)
    m = scores.groupby(["encoder", "head", "layer", "setting", "source", "target", "labels"],
                       observed=True)[metric].mean().reset_index()
    same = m[m["setting"] == "same"].set_index(["encoder", "head", "layer", "target"])
    rows = []
    for _, r in m[m["setting"] == "cross"].iterrows():
        k = (r["encoder"], r["head"], r["layer"], r["target"])
        row = {"encoder": r["encoder"], "head": r["head"], "layer": r["layer"], "source": r["source"],
               "target": r["target"], "cross": r[metric], "same": np.nan, "gap": np.nan, "note": ""}
        if k not in same.index:
            row["note"] = "no same-corpus result for the target"
        else:
            s = same.loc[k]
            s = s.iloc[0] if isinstance(s, pd.DataFrame) else s
            row["same"] = s[metric]
            if s["labels"] == r["labels"] and "?" not in r["labels"]:
                row["gap"] = s[metric] - r[metric]
            else:
                row["note"] = f"label sets differ ({s['labels']} vs {r['labels']})"
        rows.append(row)
    return pd.DataFrame(rows, columns=["encoder", "head", "layer", "source", "target", "cross", "same", "gap", "note"])



# ----------------------------------------------------------------------------- dimensional

def dimensional_unit_scores(preds):
    """``unit_scores`` for a dimensional study: one row per encoder, head, layer, setting,
    source, target, seed and dimension, with CCC, Pearson r and MAE, n_test, a fingerprint of
    the tested utterances, and ``labels`` = the dimension (so ``significance_rows(...,
    metric="ccc", by_label_set=True)`` compares encoders per dimension). ``preds``: the long
    table (encoder, head, layer, setting, source, target, seed, dimension, id, true, pred);
    same-corpus folds are pooled per seed."""
    import pandas as pd

    need = ["encoder", "head", "layer", "setting", "source", "target", "seed", "dimension", "id", "true", "pred"]
    missing = [c for c in need if c not in preds]
    if missing:
        raise StatisticsError(f"dimensional predictions table lacks columns {missing}")
    df = preds.assign(layer=preds["layer"].astype(str))
    rows = []
    for key, g in df.groupby(["encoder", *UNIT_KEYS, "seed", "dimension"], sort=True, observed=True):
        m = regression_metrics(g["true"].to_numpy(), g["pred"].to_numpy())
        h = pd.util.hash_array(g["id"].astype(str).to_numpy())
        rows.append({**dict(zip(["encoder", *UNIT_KEYS, "seed", "dimension"], key)), "n_test": len(g),
                     **{k: float(v) for k, v in m.items()}, "ids": np.bitwise_xor.reduce(h), "labels": key[-1]})
    return pd.DataFrame(rows, columns=["encoder", *UNIT_KEYS, "seed", "dimension", "n_test",
                                       *DIMENSIONAL_REPORTED, "ids", "labels"])
