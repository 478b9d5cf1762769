"""The cross-corpus protocol: label sets, speaker-independent folds, validation splits, cells.

Everything that decides which utterance is trained on, selected on or tested on lives here,
so spec/ can check it in one place. Splits are deterministic functions of the metadata and
a seed; they never look at embeddings or predictions.

Defaults match spec/protocol.toml (a spec test keeps them in agreement).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from jaxser.corpora.schema import CANONICAL_EMOTIONS
from jaxser.errors import UserError

K_FOLDS = 5
SEEDS = (0, 1, 2, 3, 4)
DEFAULT_CROSS_LABELS = ("angry", "happy", "neutral", "sad")
VAL_FRACTION = 0.2
SETTINGS = ("same", "cross", "loco")
METRICS = ("uar", "accuracy", "macro_f1")


class ProtocolError(UserError, ValueError):
    """A configuration the protocol cannot honour (e.g. too few classes or speakers)."""


def canonical_order(labels: Iterable[str]) -> tuple[str, ...]:
    """Labels sorted in the canonical order (so class indices are stable across runs)."""
    labels = set(labels)
    unknown = labels - set(CANONICAL_EMOTIONS)
    if unknown:
        raise ProtocolError(f"non-canonical labels {sorted(unknown)}; known: {CANONICAL_EMOTIONS}")
    return tuple(e for e in CANONICAL_EMOTIONS if e in labels)


def label_set(source_labels: Iterable[str], target_labels: Iterable[str] | None = None,
              fixed: Sequence[str] | None = None) -> tuple[str, ...]:
    """The classes of a cell: the fixed set when configured, else those shared by source and
    target (same-corpus: the corpus' own classes)."""
    src = set(source_labels)
    tgt = src if target_labels is None else set(target_labels)
    if fixed:
        out = canonical_order(fixed)
        missing = [lab for lab in out if lab not in src]
        if missing:
            raise ProtocolError(f"fixed label set {out}: source has no utterances of {missing}")
        return out
    out = canonical_order(src & tgt)
    if len(out) < 2:
        raise ProtocolError(f"source and target share fewer than 2 classes ({out}); configure a label set")
    return out


def _stable_perm(items: Sequence[str], seed: int) -> list[str]:
    """A permutation that depends only on the items' names and the seed (not on numpy's RNG
    stream or the order rows arrive in)."""
    return sorted(items, key=lambda s: hashlib.sha256(f"{seed}:{s}".encode()).hexdigest())


def speaker_folds(groups: Sequence[str], k: int = K_FOLDS, seed: int = 0) -> list[np.ndarray]:
    """Speaker-independent folds: row indices of each fold's test set.

    `groups` is the speaker (or coarser fold group) of each row. With fewer than k groups it
    is leave-one-group-out. Groups are dealt, largest first, to the fold with the fewest rows
    so fold sizes stay balanced. Every row is in exactly one test set.
    """
    groups = np.asarray(groups)
    uniq, counts = np.unique(groups, return_counts=True)
    if len(uniq) < 2:
        raise ProtocolError(f"speaker-independent folds need >= 2 speakers, got {len(uniq)}")
    n_folds = min(k, len(uniq))
    size = dict(zip(uniq.tolist(), counts.tolist()))
    order = sorted(_stable_perm(uniq.tolist(), seed), key=lambda g: -size[g])  # stable: ties keep perm order
    fold_of: dict[str, int] = {}
    load = [0] * n_folds
    for g in order:
        f = min(range(n_folds), key=lambda i: (load[i], i))
        fold_of[g] = f
        load[f] += size[g]
    assign = np.array([fold_of[g] for g in groups.tolist()])
    return [np.flatnonzero(assign == f) for f in range(n_folds)]


def validation_split(groups: Sequence[str], labels: Sequence[str] | None = None, frac: float = VAL_FRACTION,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray, bool]:
    """Split training rows into (fit, val) positions, speaker-disjoint where possible.

    Whole speakers go to validation until it holds about `frac` of the rows. With a single
    training speaker no speaker-disjoint split exists: the split is then stratified by label
    over utterances and the returned flag `speaker_disjoint` is False (recorded in the run).
    """
    groups = np.asarray(groups)
    n = len(groups)
    uniq = sorted(set(groups.tolist()))
    if len(uniq) >= 2:
        target = max(1, int(round(frac * n)))
        val_groups: list[str] = []
        count = 0
        counts = {g: int((groups == g).sum()) for g in uniq}
        for g in _stable_perm(uniq, seed + 7919):
            if count >= target or len(val_groups) == len(uniq) - 1:
                break
            val_groups.append(g)
            count += counts[g]
        is_val = np.isin(groups, val_groups)
        return np.flatnonzero(~is_val), np.flatnonzero(is_val), True
    # single speaker: stratified utterance split
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels if labels is not None else np.zeros(n))
    is_val = np.zeros(n, bool)
    for lab in np.unique(labels):
        idx = np.flatnonzero(labels == lab)
        idx = idx[rng.permutation(len(idx))]
        is_val[idx[: max(1, int(round(frac * len(idx))))] if len(idx) > 1 else []] = True
    return np.flatnonzero(~is_val), np.flatnonzero(is_val), False


@dataclass(eq=False)
class Cell:
    """One train/test unit. `fit`, `val`, `test` are row indices into the run's metadata table.

    setting: same | cross | loco. For same-corpus, `fold` numbers the fold; for cross and
    loco it is -1 (the whole target corpus is tested). `excluded` counts target utterances
    outside the label set.
    """

    setting: str
    source: str
    target: str
    fold: int
    labels: tuple[str, ...]
    fit: np.ndarray
    val: np.ndarray
    test: np.ndarray
    val_speaker_disjoint: bool = True
    excluded: int = 0
    meta: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        f = f"/fold{self.fold}" if self.fold >= 0 else ""
        return f"{self.setting}:{self.source}->{self.target}{f}"

    @property
    def train_key(self) -> str:
        """Cells with the same train key share one trained model (same fit/val/labels)."""
        f = f"/fold{self.fold}" if self.fold >= 0 else ""
        return f"{self.setting}:{self.source}{f}[{','.join(self.labels)}]"


def make_cells(corpus: Sequence[str], groups: Sequence[str], emotion: Sequence[str], *,
               settings: Sequence[str] = SETTINGS, k: int = K_FOLDS, labels: Sequence[str] | None = None,
               same_labels: str = "fixed", val_frac: float = VAL_FRACTION, seed: int = 0) -> list[Cell]:
    """All cells of a study from per-row metadata (corpus, fold group/speaker, canonical emotion).

    - same: speaker-independent k-fold within each corpus; validation carved from the
      training folds only. Classes: the fixed set when `labels` is given and
      `same_labels == "fixed"` (so same vs cross compare like with like), else the corpus' own.
    - cross: every ordered pair (A, B), A != B; train on A (fit/val split by speaker), test on
      all of B restricted to the label set (fixed, or shared by A and B).
    - loco: leave-one-corpus-out; train on all other corpora, test on the held-out one.
    """
    corpus = np.asarray(corpus)
    groups = np.asarray(groups)
    emotion = np.asarray(emotion)
    if not (len(corpus) == len(groups) == len(emotion)):
        raise ProtocolError("corpus, groups and emotion must have one entry per row")
    names = list(dict.fromkeys(corpus.tolist()))  # first-seen order
    bad = set(settings) - set(SETTINGS)
    if bad:
        raise ProtocolError(f"unknown settings {sorted(bad)}; known: {SETTINGS}")
    fixed = canonical_order(labels) if labels else None
    cells: list[Cell] = []

    def rows(mask: np.ndarray, labs: tuple[str, ...]) -> np.ndarray:
        return np.flatnonzero(mask & np.isin(emotion, labs))

    def fit_val(train_rows: np.ndarray, s: int) -> tuple[np.ndarray, np.ndarray, bool]:
        f, v, disjoint = validation_split(groups[train_rows], emotion[train_rows], val_frac, seed=s)
        return train_rows[f], train_rows[v], disjoint

    if "same" in settings:
        for c in names:
            in_c = corpus == c
            labs = fixed if (fixed and same_labels == "fixed") else label_set(emotion[in_c])
            if fixed and same_labels == "fixed":
                label_set(emotion[in_c], fixed=fixed)  # refuses a corpus lacking a fixed class
            usable = rows(in_c, labs)
            folds = speaker_folds(groups[usable], k=k, seed=seed)
            for i, test_pos in enumerate(folds):
                test = usable[test_pos]
                train = np.setdiff1d(usable, test)
                fit, val, disjoint = fit_val(train, seed + i)
                cells.append(Cell("same", c, c, i, labs, fit, val, test, disjoint,
                                  excluded=int(in_c.sum() - len(usable))))
    if "cross" in settings:
        for a in names:
            for b in names:
                if a == b:
                    continue
                in_a, in_b = corpus == a, corpus == b
                labs = label_set(emotion[in_a], emotion[in_b], fixed=fixed)
                fit, val, disjoint = fit_val(rows(in_a, labs), seed)
                test = rows(in_b, labs)
                cells.append(Cell("cross", a, b, -1, labs, fit, val, test, disjoint,
                                  excluded=int(in_b.sum() - len(test))))
    if "loco" in settings and len(names) >= 3:
        for b in names:
            others = [c for c in names if c != b]
            in_src, in_b = np.isin(corpus, others), corpus == b
            if fixed:
                labs = fixed
                for c in others:
                    label_set(emotion[corpus == c], fixed=fixed)
            else:
                labs = label_set(emotion[in_src], emotion[in_b])
            fit, val, disjoint = fit_val(rows(in_src, labs), seed)
            test = rows(in_b, labs)
            cells.append(Cell("loco", "+".join(others), b, -1, labs, fit, val, test, disjoint,
                              excluded=int(in_b.sum() - len(test))))
    return cells
