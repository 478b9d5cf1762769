"""Power of the report's claims over 4-8 corpora, and their false-positive rates, on simulated studies.

Whole cross-corpus studies are simulated per utterance (tests/helpers/null_studies.py: 3 encoders,
every ordered pair of G corpora, 5 seeds, one model per encoder, source and seed tested on every
target, encoder x source / target / pair effects, shared and encoder-specific utterance
difficulty, 100-400 test utterances per target) and put through the same code the report uses:

  these-corpora  significance.these_corpora_test  (Holm over the 3 encoder pairs)
  new-corpora    sign-flip test of significance.corpus_pseudovalues (Holm over the 3 pairs)
  ranking        significance.rank_permutation_test: the planted encoder's average rank beats another's by more than cd

Power: encoder 0 is better by +2, +3 or +5 UAR points on every cell (the others equal); the share of
studies declaring it better than encoder 1. False positives: no planted difference, the share of
studies declaring any pair different (these-corpora with encoder x corpus effects centred, as the
claim's null requires). Writes docs/img/statistics_power.png; the last line printed is one JSON object.

    python benchmarks/statistics_power.py            # ~2-4 min on a 2-core CPU
    python benchmarks/statistics_power.py --quick    # fewer studies
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers import null_studies  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EFFECTS = (0.02, 0.03, 0.05)
CORPORA = range(4, 9)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=200, help="simulated studies per point")
    ap.add_argument("--quick", action="store_true", help="60 studies per point")
    ap.add_argument("--out", default=str(ROOT / "docs" / "img" / "statistics_power.png"))
    a = ap.parse_args(argv)
    n = 60 if a.quick else a.studies
    t0 = time.perf_counter()
    power = {c: {e: [] for e in EFFECTS} for c in ("these-corpora", "new-corpora", "ranking")}
    null = {c: [] for c in ("these-corpora", "new-corpora", "ranking")}
    for g in CORPORA:
        for e in EFFECTS:
            for fixed in (True, False):
                sim = null_studies.simulate(np.random.default_rng(1000 * g + int(1000 * e) + fixed), n, g,
                                            planted=[e, 0.0, 0.0], fixed_corpora=fixed)
                if fixed:
                    rejects = null_studies.family_rejects(sim, "these-corpora")
                    power["these-corpora"][e].append(float(rejects[:, 0].mean()))
                else:
                    power["new-corpora"][e].append(float(null_studies.family_rejects(sim, "new-corpora")[:, 0].mean()))
                    power["ranking"][e].append(float(_rank_found(sim)))
        sim = null_studies.simulate(np.random.default_rng(7 + g), n, g, fixed_corpora=True)
        null["these-corpora"].append(float(null_studies.family_rejects(sim, "these-corpora").any(-1).mean()))
        sim = null_studies.simulate(np.random.default_rng(9 + g), n, g)
        null["new-corpora"].append(float(null_studies.family_rejects(sim, "new-corpora").any(-1).mean()))
        null["ranking"].append(float(null_studies.ranking_exceeds(sim)[0].mean()))
        print(f"{g} corpora: power {[(c, {e: v[-1] for e, v in p.items()}) for c, p in power.items()]}; "
              f"false positives {[(c, v[-1]) for c, v in null.items()]}", flush=True)
    _figure(power, null, n, Path(a.out))
    out = {"studies_per_point": n, "corpora": list(CORPORA), "effects_uar_points": [100 * e for e in EFFECTS],
           "power": {c: {f"+{100 * e:g}": v for e, v in p.items()} for c, p in power.items()},
           "false_positive_rate": null, "figure": str(a.out),
           "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps(out))
    return out


def _rank_found(sim) -> float:
    """Share of studies whose diagram separates encoder 0 from encoder 1 (ranks differ by more than cd)."""
    from scipy.stats import rankdata

    from jaxser import significance

    seed_mean = null_studies.uar(sim).mean(-1)
    ranks = rankdata(-np.swapaxes(seed_mean, 1, 2), axis=-1)
    r = significance.rank_permutation_test(ranks, null_studies.membership(sim), n_perm=1000)
    return float(((r["avg_ranks"][:, 1] - r["avg_ranks"][:, 0]) > r["cd"]).mean())


def _figure(power, null, n, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = {"these-corpora": "on these corpora\n(seeds and test utterances as units)",
              "new-corpora": "on new corpora\n(corpora as units, Holm over 3 pairs)",
              "ranking": "ranking (CD diagram)\n(corpora as units)"}
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), sharey=True)
    g = list(CORPORA)
    for ax, (claim, p) in zip(axes, power.items()):
        for e, v in p.items():
            ax.plot(g, v, "o-", label=f"+{100 * e:g} UAR points")
        ax.plot(g, null[claim], "k--", lw=1, label="no difference (false positives)")
        ax.axhline(0.05, color="grey", lw=0.6)
        ax.axhline(0.8, color="grey", lw=0.6, ls=":")
        ax.set_title(titles[claim], fontsize=9)
        ax.set_xlabel("corpora in the study")
        ax.set_xticks(g)
    axes[0].set_ylabel(f"share of {n} simulated studies\nfinding encoder A better than B")
    axes[0].legend(fontsize=7, loc="center right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
