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

from jaxser.corpora.schema import EMOTIONS
from jaxser.errors import UserError

K_FOLDS = 5
SEEDS = (0, 1, 2, 3, 4)
DEFAULT_CROSS_LABELS = ("angry", "happy", "neutral", "sad")
VAL_FRACTION = 0.2
SETTINGS = ("same", "cross", "loco")
# "speaker": same-corpus folds disjoint in speaker (fold group). "speaker+text": also disjoint in
# sentence id where the corpus has them, so a head cannot score by recognising the sentence.
SPLITS = ("speaker", "speaker+text")
METRICS = ("uar", "accuracy", "macro_f1")


class ProtocolError(UserError, ValueError):
    """A configuration the protocol cannot honour (e.g. too few classes or speakers)."""


def canonical_order(labels: Iterable[str]) -> tuple[str, ...]:
    """Labels in the one order used everywhere: a cell's class indices (stable across runs) and
    every label set a report lists or plots. The order is ``EMOTIONS``' (the nine canonical
    emotions, then EmoBox's extra classes); repeats collapse. A label outside ``EMOTIONS`` is an
    error, never sorted somewhere: corpora, manifests and configs are all checked against that
    list, so an unknown label can only come from a damaged or foreign input."""
    labels = set(labels)
    unknown = labels - set(EMOTIONS)
    if unknown:
        raise ProtocolError(f"unknown labels {sorted(unknown)}; known: {', '.join(EMOTIONS)}")
    return tuple(e for e in EMOTIONS if e in labels)


def label_set(source_labels: Iterable[str], target_labels: Iterable[str] | None = None,
              fixed: Sequence[str] | None = None) -> tuple[str, ...]:
    """The classes of a cell: the fixed set when configured, else those shared by source and
    target (same-corpus: the corpus' own classes)."""
    src = set(source_labels) - {""}   # "": a row rated only on dimensions, no class
    tgt = src if target_labels is None else set(target_labels) - {""}
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
        who = f" ({uniq[0]})" if len(uniq) else ""
        raise ProtocolError(f"speaker-independent folds need >= 2 speakers, got {len(uniq)}{who}; a one-speaker "
                            "corpus can only be a cross-corpus source or target (settings without 'same')")
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


def text_blocks(groups: Sequence[str], text: Sequence[str], k: int = K_FOLDS, seed: int = 0,
                corpus: str = "") -> list[tuple[np.ndarray, np.ndarray, int, dict]]:
    """Same-corpus folds disjoint in speaker and sentence: (test, train, withheld, info) per fold.

    Speakers (fold groups) are dealt to k folds and sentence ids, independently, to k folds
    (both by `speaker_folds`). Fold (i, j) tests the rows of speaker fold i saying a sentence
    of sentence fold j and trains on rows of the other speaker folds saying a sentence of the
    other sentence folds. Acted corpora record every sentence by every speaker, so testing a
    whole speaker fold would leave no training sentence; the blocks test every row exactly
    once at the cost of k_s x k_t folds, each training on about (1 - 1/k_s)(1 - 1/k_t) of the
    corpus. `withheld` counts rows of other speakers left out of training for their sentence.
    A row without a sentence id ("") is dealt as a sentence of its own for testing and never
    withheld from training (it can leak nothing lexical). Empty blocks are skipped.
    Callers check for >= 2 sentence ids first (`make_cells` falls back to speaker folds).
    """
    groups = np.asarray(groups)
    text = np.asarray(text, dtype=object)
    n = len(groups)
    ids = sorted({t for t in text.tolist() if t})
    if len(ids) < 2:
        raise ProtocolError(f"{corpus or 'corpus'}: sentence-disjoint folds need >= 2 sentence ids, got {ids}")
    has_id = text.astype(bool)
    units = np.array([t if t else f"\0row{r}" for r, t in enumerate(text.tolist())], dtype=object)
    s_of = np.empty(n, int)
    t_of = np.empty(n, int)
    s_folds = speaker_folds(groups, k=k, seed=seed)
    t_folds = speaker_folds(units.astype(str), k=k, seed=seed)
    for i, f in enumerate(s_folds):
        s_of[f] = i
    for j, f in enumerate(t_folds):
        t_of[f] = j
    out = []
    for i in range(len(s_folds)):
        for j in range(len(t_folds)):
            test = np.flatnonzero((s_of == i) & (t_of == j))
            if not len(test):
                continue
            train = np.flatnonzero((s_of != i) & ((t_of != j) | ~has_id))
            if not len(train):
                raise ProtocolError(f"{corpus or 'corpus'}: speaker fold {i} x sentence fold {j} leaves no "
                                    "training utterance (no other speaker says another sentence); "
                                    'use split "speaker"')
            withheld = int(np.sum((s_of != i) & (t_of == j) & has_id))
            out.append((test, train, withheld,
                        {"speaker_fold": i, "text_fold": j, "speaker_folds": len(s_folds),
                         "text_folds": len(t_folds)}))
    return out


@dataclass(eq=False)
class Cell:
    """One cell: a train/test pair. `fit`, `val`, `test` are row indices into the run's metadata table.

    setting: same | cross | loco. For same-corpus, `fold` numbers the fold; for cross and
    loco it is -1 (the whole target corpus is tested). `excluded` counts target utterances
    outside the label set.

    split: the disjointness the cell guarantees ("speaker" or "speaker+text"; a same-corpus
    cell of a corpus with fewer than two sentence ids says "speaker" even when
    "speaker+text" was asked).
    `excluded_train` counts utterances of other speakers withheld from fit/val because they
    say a sentence of the test block (zero under "speaker").
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
    split: str = "speaker"
    excluded_train: int = 0

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
               same_labels: str = "fixed", val_frac: float = VAL_FRACTION, seed: int = 0,
               split: str = "speaker", text: Sequence[str] | None = None) -> list[Cell]:
    """All cells of a study from per-row metadata (corpus, fold group/speaker, canonical emotion).

    - same: speaker-independent k-fold within each corpus; validation carved from the
      training folds only. Classes: the fixed set when `labels` is given and
      `same_labels == "fixed"` (so same vs cross compare like with like), else the corpus' own.
      With `split="speaker+text"` (`text`: each row's sentence id, "" when unknown) the folds
      are the blocks of a speaker-fold x sentence-fold grid (see `text_blocks`). A corpus
      with fewer than two sentence ids keeps speaker folds (no ids: nothing to hold out; one
      id: every utterance says it) and its cells say so (split "speaker", meta "split_note").
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
    if split not in SPLITS:
        raise ProtocolError(f"unknown split {split!r}; known: {SPLITS}")
    if split == "speaker+text":
        if text is None:
            raise ProtocolError('split "speaker+text" needs each row\'s sentence id (text=...; "" where unknown)')
        text = np.asarray(["" if t is None or t != t else str(t).strip() for t in text], dtype=object)
        if len(text) != len(corpus):
            raise ProtocolError("text must have one entry per row")
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
            excluded = int(in_c.sum() - len(usable))
            n_ids = len(set(text[usable].tolist()) - {""}) if split == "speaker+text" else 0
            if n_ids >= 2:
                for fold, (test_pos, train_pos, lost, info) in enumerate(
                        text_blocks(groups[usable], text[usable], k=k, seed=seed, corpus=c)):
                    fit, val, disjoint = fit_val(usable[train_pos], seed + info["speaker_fold"] * info["text_folds"]
                                                 + info["text_fold"])
                    cells.append(Cell("same", c, c, fold, labs, fit, val, usable[test_pos], disjoint,
                                      excluded=excluded, meta=info, split=split, excluded_train=lost))
                continue
            note = {"split_note": f"{'no sentence ids' if n_ids == 0 else 'a single sentence id'}: "
                                  "speaker folds only"} if split == "speaker+text" else {}
            folds = speaker_folds(groups[usable], k=k, seed=seed)
            for i, test_pos in enumerate(folds):
                test = usable[test_pos]
                train = np.setdiff1d(usable, test)
                fit, val, disjoint = fit_val(train, seed + i)
                cells.append(Cell("same", c, c, i, labs, fit, val, test, disjoint,
                                  excluded=excluded, meta=dict(note)))
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
                                  excluded=int(in_b.sum() - len(test)), split=split))
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
                              excluded=int(in_b.sum() - len(test)), split=split))
    return cells


#: the placeholder class of a rated utterance when cells are built for the dimensional task
_RATED = "neutral"


def make_dimensional_cells(corpus: Sequence[str], groups: Sequence[str], rated: Sequence[bool],
                           dimensions: Sequence[str], **kw) -> list[Cell]:
    """The cells of a dimensional study: the same settings, folds, validation splits and
    pairs as ``make_cells`` (speaker-independent, selection on the source only), over the
    utterances rated on every dimension of the study (``rated``); the others are excluded
    from training and testing and counted in ``excluded``. A cell's ``labels`` are the
    dimensions. ``kw``: make_cells' settings, k, seed, split, text, val_frac."""
    corpus, rated = np.asarray(corpus), np.asarray(rated, bool)
    if not dimensions:
        raise ProtocolError("the dimensional task needs at least one dimension")
    for c in dict.fromkeys(corpus.tolist()):
        if not rated[corpus == c].any():
            raise ProtocolError(f"corpus {c}: no utterance is rated on all of {', '.join(dimensions)}; drop it "
                                "from the study or ask for fewer dimensions")
    placeholder = np.where(rated, _RATED, "")
    cells = make_cells(corpus, groups, placeholder, labels=[_RATED], same_labels="fixed", **kw)
    for c in cells:
        c.labels = tuple(dimensions)
    return cells
