"""Same-corpus folds disjoint in speaker and sentence (split="speaker+text")."""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from jaxser import protocol
from jaxser.errors import UserError
from spec.checks import check_cells

CORE = ("angry", "happy", "neutral", "sad")


@st.composite
def metadata(draw):
    """2-3 corpora; each has 2-7 speakers and 0 (no sentence ids) to 5 sentences. A corpus is
    fully crossed (every speaker says every sentence in every emotion, as acted corpora are)
    or sparse (each speaker/emotion a random subset), and may lack some ids."""
    rows = []
    for c in range(draw(st.integers(2, 3))):
        n_spk = draw(st.integers(2, 7))
        n_sent = draw(st.sampled_from([0, 2, 3, 4, 5]))
        crossed = draw(st.booleans())
        holes = draw(st.booleans())
        emos = CORE + draw(st.sampled_from([(), ("fear",)]))
        for s in range(n_spk):
            for e in emos:
                sents = list(range(n_sent)) or [None]
                if not crossed and n_sent:
                    sents = draw(st.lists(st.sampled_from(range(n_sent)), min_size=1, max_size=n_sent, unique=True))
                for t in sents:
                    text = "" if t is None or (holes and draw(st.booleans())) else f"sent{t}"
                    rows.append((f"c{c}", f"c{c}/s{s}", e, text))
    return pd.DataFrame(rows, columns=["corpus", "speaker", "emotion", "text"]).assign(
        group=lambda d: d["speaker"])


def _cells(df, **kw):
    return protocol.make_cells(df["corpus"], df["group"], df["emotion"], **kw)


def _check_text_cells(df, cells, k, labels=None):
    corpus, group, emotion, text = (df[c].to_numpy() for c in ("corpus", "group", "emotion", "text"))
    # the spec's checks hold except the fold count (k_s x k_t blocks instead of k folds)
    assert [v for v in check_cells(df, cells, k=k, fixed_labels=labels) if "folds, expected" not in v] == []
    same = [c for c in cells if c.setting == "same"]
    for name in dict.fromkeys(c.source for c in same):
        cs = [c for c in same if c.source == name]
        usable = np.flatnonzero((corpus == name) & np.isin(emotion, cs[0].labels))
        tested = np.concatenate([c.test for c in cs])
        assert np.array_equal(np.sort(tested), usable)  # every utterance tested exactly once
        assert [c.fold for c in cs] == list(range(len(cs)))
        if len(set(text[usable]) - {""}) < 2:  # no sentence to hold out: speaker folds, flagged
            assert all(c.split == "speaker" and "split_note" in c.meta and c.excluded_train == 0 for c in cs)
            assert len(cs) == min(k, len(set(group[usable])))
            continue
        # the speakers of a speaker fold and the sentences of a sentence fold, from the test sets alone
        spk_fold: dict[int, set] = {}
        txt_fold: dict[int, set] = {}
        for c in cs:
            spk_fold.setdefault(c.meta["speaker_fold"], set()).update(group[c.test])
            txt_fold.setdefault(c.meta["text_fold"], set()).update(t for t in text[c.test] if t)
        for c in cs:
            assert c.split == "speaker+text"
            train = np.concatenate([c.fit, c.val])
            assert not set(group[train]) & set(group[c.test])
            assert not set(df["speaker"].to_numpy()[train]) & set(df["speaker"].to_numpy()[c.test])
            assert not ({t for t in text[train] if t} & {t for t in text[c.test] if t})
            g_i, t_j = spk_fold[c.meta["speaker_fold"]], txt_fold[c.meta["text_fold"]]
            assert not set(group[train]) & g_i and not set(text[train]) & t_j
            left = np.setdiff1d(usable, np.concatenate([train, c.test]))
            # nothing is left out without a conflict: training is as large as disjointness allows
            assert all(group[r] in g_i or text[r] in t_j for r in left)
            assert not any(group[r] not in g_i and not text[r] for r in left)  # rows without ids stay in
            assert c.excluded_train == sum(group[r] not in g_i for r in left)
            assert c.excluded_train == sum(group[r] not in g_i and text[r] in t_j for r in usable)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=metadata(), k=st.integers(2, 5), seed=st.integers(0, 5), fixed=st.booleans())
def test_speaker_text_cells_disjoint(df, k, seed, fixed):
    labels = protocol.DEFAULT_CROSS_LABELS if fixed else None
    try:
        cells = _cells(df, labels=labels, k=k, seed=seed, split="speaker+text", text=df["text"])
    except protocol.ProtocolError as e:  # sparse designs may leave a block nothing to train on
        assert "leaves no training utterance" in str(e)
        return
    _check_text_cells(df, cells, k, labels)
    # cross-corpus and leave-one-corpus-out cells do not depend on the split
    ref = [c for c in _cells(df, labels=labels, k=k, seed=seed) if c.setting != "same"]
    other = [c for c in cells if c.setting != "same"]
    assert [c.name for c in ref] == [c.name for c in other]
    for a, b in zip(ref, other):
        assert all(np.array_equal(x, y) for x, y in ((a.fit, b.fit), (a.val, b.val), (a.test, b.test)))
        assert b.split == "speaker+text" and b.excluded_train == 0


def _crossed(n_spk=6, n_sent=4, corpora=1):
    rows = [(f"c{c}", f"c{c}/s{s}", e, f"t{t}") for c in range(corpora) for s in range(n_spk)
            for e in CORE for t in range(n_sent)]
    return pd.DataFrame(rows, columns=["corpus", "group", "emotion", "text"]).assign(speaker=lambda d: d["group"])


def test_crossed_corpus_blocks():
    """6 speakers x 4 sentences x 4 emotions, k=3: 3 x 3 blocks; each trains on the 4 speakers
    and the sentences outside its block and withholds the other speakers' takes of its sentences."""
    df = _crossed()
    cells = _cells(df, settings=("same",), k=3, split="speaker+text", text=df["text"])
    assert len(cells) == 9
    _check_text_cells(df, cells, 3)
    for c in cells:
        n_test_sent = len(set(df["text"].to_numpy()[c.test]))
        assert len(c.test) == 2 * n_test_sent * 4
        assert len(c.fit) + len(c.val) == 4 * (4 - n_test_sent) * 4
        assert c.excluded_train == 4 * n_test_sent * 4


def test_speaker_split_unchanged():
    """The default split gives the cells it gave before sentence-disjoint folds existed."""
    corpus, group, emotion, text = [], [], [], []
    for c, (n_spk, n_sent, emos) in enumerate([(6, 4, CORE + ("fear",)), (5, 3, CORE), (7, 2, CORE + ("disgust",))]):
        for s in range(n_spk):
            for e in emos:
                for t in range(n_sent):
                    corpus.append(f"c{c}"), group.append(f"c{c}/s{s}"), emotion.append(e), text.append(f"t{t}")

    def digest(cells):
        h = hashlib.sha256()
        for c in cells:
            h.update(f"{c.name}|{c.train_key}|{c.val_speaker_disjoint}|{c.excluded}|".encode())
            for a in (c.fit, c.val, c.test):
                h.update(np.asarray(a, np.int64).tobytes()), h.update(b"|")
        return h.hexdigest()

    fixed = protocol.make_cells(corpus, group, emotion, labels=CORE, seed=0)
    shared = protocol.make_cells(corpus, group, emotion, labels=None, seed=3, k=4)
    assert digest(fixed) == "7d135f7df55fc7697b61a7d7bb0a607c84430badf54c6873680aa6c9b5513639"
    assert digest(shared) == "436af150ab9984a6b8615266d74af7a70dd0a8d3c6ed8a4a21412f80fd369eb4"
    explicit = protocol.make_cells(corpus, group, emotion, labels=CORE, seed=0, split="speaker", text=text)
    assert digest(explicit) == digest(fixed)
    assert all(c.split == "speaker" and c.excluded_train == 0 and c.meta == {} for c in fixed)


def test_split_errors():
    df = _crossed(corpora=2)
    with pytest.raises(protocol.ProtocolError, match="unknown split") as e:
        _cells(df, split="sentence")
    assert isinstance(e.value, UserError)
    with pytest.raises(protocol.ProtocolError, match="needs each row's sentence id"):
        _cells(df, split="speaker+text")
    with pytest.raises(protocol.ProtocolError, match="one entry per row"):
        _cells(df, split="speaker+text", text=df["text"][:-1])
    with pytest.raises(protocol.ProtocolError, match=">= 2 sentence ids"):
        protocol.text_blocks(df["group"], ["t0"] * len(df))


def test_missing_ids_fall_back_to_speaker_folds():
    df = _crossed(corpora=3)
    df.loc[df["corpus"] == "c1", "text"] = None
    df.loc[df["corpus"] == "c2", "text"] = "t0"
    cells = _cells(df, settings=("same",), labels=CORE, split="speaker+text", text=df["text"])
    for name, note in (("c1", "no sentence ids"), ("c2", "a single sentence id")):
        plain = [c for c in _cells(df, settings=("same",), labels=CORE) if c.source == name]
        got = [c for c in cells if c.source == name]
        assert [c.test.tolist() for c in got] == [c.test.tolist() for c in plain]
        assert [c.fit.tolist() for c in got] == [c.fit.tolist() for c in plain]
        assert all(c.split == "speaker" and c.meta["split_note"].startswith(note) for c in got)
    assert all(c.split == "speaker+text" for c in cells if c.source == "c0")


def test_rows_rated_only_on_dimensions_are_excluded_from_categorical_cells_and_counted():
    """A row with emotion "" (rated on arousal/valence/dominance only) has no class: categorical
    cells leave it out of training and testing and count it as excluded."""
    from jaxser.protocol import make_cells

    corpus = np.array(["a"] * 12 + ["b"] * 12)
    groups = np.array([f"{c}{i % 4}" for i, c in enumerate(corpus)])
    emotion = np.array(["angry", "sad", "happy"] * 8, dtype=object)
    emotion[[0, 13]] = ""
    cells = make_cells(corpus, groups, emotion, settings=("same", "cross"), k=2)
    for c in cells:
        used = np.concatenate([c.fit, c.val, c.test])
        assert 0 not in used and 13 not in used
        assert "" not in c.labels
    assert all(c.excluded == 1 for c in cells if c.setting == "cross")


def test_dimensional_cells_follow_the_categorical_protocol_over_rated_rows():
    from jaxser.protocol import ProtocolError, make_dimensional_cells

    corpus = np.array(["a"] * 12 + ["b"] * 12 + ["c"] * 12)
    groups = np.array([f"{c}{i % 4}" for i, c in enumerate(corpus)])
    rated = np.ones(36, bool)
    rated[[1, 14, 30]] = False
    cells = make_dimensional_cells(corpus, groups, rated, ["arousal", "valence"], k=3)
    assert {c.setting for c in cells} == {"same", "cross", "loco"}
    for c in cells:
        assert c.labels == ("arousal", "valence") and c.train_key.endswith("[arousal,valence]")
        train_rows = np.concatenate([c.fit, c.val])
        assert rated[np.concatenate([train_rows, c.test])].all()
        assert not set(groups[c.test]) & set(groups[train_rows])
        if c.setting != "same":
            assert c.excluded == int((~rated[corpus == c.target]).sum())
            assert c.target not in set(corpus[train_rows])
    with pytest.raises(ProtocolError, match="corpus b"):
        make_dimensional_cells(corpus, groups, rated & (corpus != "b"), ["arousal"], k=3)
