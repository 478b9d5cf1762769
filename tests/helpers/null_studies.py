"""Whole cross-corpus studies simulated per utterance, and the report's claims evaluated on them
in bulk (through jaxser.significance's vectorised cores), for the calibration tests and the power
figure of docs/statistics.md.

The model is linear on the probability scale: utterance i of target corpus b, scored by encoder
e's model trained on source a with seed s, is classified correctly with probability

    0.5 + pair difficulty (shared by the encoders) + encoder x source + encoder x target
        + encoder x pair + utterance difficulty (shared) + utterance difficulty (encoder-specific)
        + the model's seed offset (one model per encoder, source and seed, tested on every target;
          its spread differs per encoder and source) + a planted advantage per encoder

with bounded effects, so the probability never leaves (0, 1) and the expected UAR of a cell is
exactly 0.5 + its effects: a planted +0.05 is +5 UAR points, and with the encoder x corpus
effects centred per encoder (``fixed_corpora=True``) the encoders are exactly equal on these
corpora, the null of the "these-corpora" claim. Without centring the encoder x corpus effects are
random with mean zero: the encoders are exchangeable over corpora, the null of "new-corpora" and
of the ranking. Class counts per target are fixed (100-400 utterances, imbalanced), as a corpus'
are.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from jaxser import significance

CLASS_SHARES = (0.4, 0.3, 0.2, 0.1)
SCENARIOS = {
    # half-widths of the uniform effects (probability scale); seed: the range of per-model SDs
    "mixed": dict(pair=0.05, enc_src=0.025, enc_tgt=0.025, enc_pair=0.025, utt=0.15, utt_enc=0.06,
                  seed=(0.005, 0.025)),
    "target-heavy": dict(pair=0.05, enc_src=0.01, enc_tgt=0.08, enc_pair=0.01, utt=0.12, utt_enc=0.05,
                         seed=(0.005, 0.02)),
    "target-dominated": dict(pair=0.02, enc_src=0.0, enc_tgt=0.1, enc_pair=0.0, utt=0.05, utt_enc=0.0,
                             seed=(0.002, 0.005)),
    "utterance-heavy": dict(pair=0.05, enc_src=0.0, enc_tgt=0.0, enc_pair=0.0, utt=0.2, utt_enc=0.12,
                            seed=(0.01, 0.03)),
}


def design(n_corpora: int, sizes=(100, 400)):
    """Ordered pairs (src, tgt [K]), each target's class of every utterance slot [G, N] (-1 for
    padding beyond its size) and UAR weights [G, N]."""
    g = n_corpora
    src = np.array([a for a in range(g) for b in range(g) if a != b])
    tgt = np.array([b for a in range(g) for b in range(g) if a != b])
    n_b = np.linspace(sizes[0], sizes[1], g).round().astype(int)
    n = int(n_b.max())
    cls = np.full((g, n), -1)
    w = np.zeros((g, n))
    for b, nb in enumerate(n_b):
        counts = np.floor(np.array(CLASS_SHARES) * nb).astype(int)
        counts[0] += nb - counts.sum()
        cls[b, :nb] = np.repeat(np.arange(len(counts)), counts)
        w[b, :nb] = 1.0 / (len(counts) * counts[cls[b, :nb]])
    return src, tgt, cls, w


def simulate(rng, n_studies: int, n_corpora: int, *, scenario: str = "mixed", n_enc: int = 3, n_seeds: int = 5,
             planted=None, fixed_corpora: bool = False, sizes=(100, 400), chunk: int = 50) -> dict:
    """hits [R, E, K, S, N] (bool) of n_studies studies and the design (see ``design``)."""
    eff = SCENARIOS[scenario]
    src, tgt, cls, w = design(n_corpora, sizes)
    g, k, n = n_corpora, src.size, cls.shape[1]
    out = np.empty((n_studies, n_enc, k, n_seeds, n), bool)

    def u(half, *shape):
        return rng.uniform(-half, half, shape) if half else np.zeros(shape)

    for lo in range(0, n_studies, chunk):
        r = min(chunk, n_studies - lo)
        fixed = (u(eff["enc_src"], r, n_enc, g)[:, :, src] + u(eff["enc_tgt"], r, n_enc, g)[:, :, tgt]
                 + u(eff["enc_pair"], r, n_enc, k))                                    # [r, E, K]
        if fixed_corpora:
            fixed = fixed - fixed.mean(-1, keepdims=True)
        sd = rng.uniform(*eff["seed"], (r, n_enc, g, 1))
        seed_off = np.clip(rng.normal(0, 1, (r, n_enc, g, n_seeds)), -3, 3) * sd          # [r, E, G, S]
        utt = u(eff["utt"], r, 1, g, n) + u(eff["utt_enc"], r, n_enc, g, n)               # [r, E|1, G, N]
        p = (0.5 + u(eff["pair"], r, 1, k)[..., None, None] + fixed[..., None, None]
             + seed_off[:, :, src][..., None] + utt[:, :, tgt][:, :, :, None, :])
        if planted is not None:
            p = p + np.asarray(planted, float).reshape(1, n_enc, 1, 1, 1)
        assert p.min() > 0 and p.max() < 1, "effects too large for the linear model"
        hits = rng.random(p.shape, dtype=np.float32) < p
        out[lo:lo + r] = hits
    return {"hits": out, "src": src, "tgt": tgt, "cls": cls, "w": w, "n_corpora": g}


def uar(sim) -> np.ndarray:
    """Per-seed UAR [R, E, K, S]."""
    return np.einsum("reksn,kn->reks", sim["hits"], sim["w"][sim["tgt"]], optimize=True)


def membership(sim) -> np.ndarray:
    m, _ = significance.corpus_membership(sim["src"], sim["tgt"], "cross")
    return m


def these_corpora_p(sim, a: int, b: int, scores=None) -> np.ndarray:
    """The these-corpora p of encoder a vs b in every study [R], through significance.these_corpora_test."""
    scores = uar(sim) if scores is None else scores
    src, tgt, w = sim["src"], sim["tgt"], sim["w"]
    g, k = sim["n_corpora"], src.size
    diff = (scores[:, a] - scores[:, b]).mean((-1, -2))
    onehot = (src[:, None] == np.arange(g)).astype(float)                      # [K, G]
    za = np.einsum("rks,kg->rgs", scores[:, a], onehot) / k
    zb = -np.einsum("rks,kg->rgs", scores[:, b], onehot) / k
    hbar = sim["hits"].mean(3)                                                  # [R, E, K, N]
    per_cell = w[tgt] * (hbar[:, a] - hbar[:, b]) / k                           # [R, K, N]
    tgt_onehot = (tgt[:, None] == np.arange(g)).astype(float)
    u = np.einsum("rkn,kg->rgn", per_cell, tgt_onehot).reshape(len(diff), -1)   # [R, G*N]
    strata = (np.arange(g)[:, None] * 10 + sim["cls"]).ravel()
    strata = np.where(sim["cls"].ravel() < 0, -1, strata)
    valid = (sim["cls"] >= 0)[tgt][:, None, :]                                  # [K, 1, N]
    h = sim["hits"][:, [a, b]]
    centred = h - (h * valid).sum(-1, keepdims=True) / valid.sum(-1, keepdims=True)
    nv = centred.var(3, ddof=1) / h.shape[3]                                    # [R, 2, K, N]
    per_noise = (w[tgt] / k) ** 2 * nv.sum(1)
    noise = np.einsum("rkn,kg->rgn", per_noise, tgt_onehot).reshape(len(diff), -1)
    return significance.these_corpora_test(diff, np.concatenate([za, zb], 1), u, strata, noise)["p"]


def new_corpora_p(sim, a: int, b: int, scores=None) -> np.ndarray:
    """The new-corpora p of encoder a vs b in every study [R] (sign flips of corpus pseudo-values)."""
    scores = uar(sim) if scores is None else scores
    d = (scores[:, a] - scores[:, b]).mean(-1)                                  # [R, K]
    return significance.signflip_pvalues(significance.corpus_pseudovalues(d, membership(sim)))


def family_rejects(sim, claim: str, alpha: float = 0.05) -> np.ndarray:
    """[R, 3]: which of the 3 encoder pairs (0-1, 0-2, 1-2) each study declares different after
    Holm within the study's family."""
    scores = uar(sim)
    fn = these_corpora_p if claim == "these-corpora" else new_corpora_p
    p = np.stack([fn(sim, a, b, scores) for a, b in ((0, 1), (0, 2), (1, 2))], -1)
    return significance.holm(p) <= alpha


def ranking_exceeds(sim, alpha: float = 0.05, n_perm: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per study: whether some pair of encoders' average ranks differ by more than the reported
    cd (the diagram's claim), and the same with Nemenyi's classic cd over pairs as blocks."""
    seed_mean = uar(sim).mean(-1)                                               # [R, E, K]
    ranks = rankdata(-np.swapaxes(seed_mean, 1, 2), axis=-1)                     # [R, K, E]
    out = significance.rank_permutation_test(ranks, membership(sim), alpha=alpha, n_perm=n_perm, seed=seed)
    spread = out["avg_ranks"].max(-1) - out["avg_ranks"].min(-1)
    classic = significance.nemenyi_cd(ranks.shape[-1], ranks.shape[-2], alpha)
    return spread > out["cd"], spread > classic
