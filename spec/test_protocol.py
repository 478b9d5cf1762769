"""The protocol's invariants, on hypothesis-generated corpus metadata."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from jaxser import protocol
from jaxser.corpora.schema import CANONICAL_EMOTIONS
from spec.checks import check_cells, load_protocol

LABS = ("angry", "happy", "neutral", "sad", "fear")


@st.composite
def metadata(draw):
    """2-4 corpora, each with 2-9 speakers, every speaker with a few utterances of each of the
    corpus' emotions (corpora differ in which emotions beyond the core four they have)."""
    n_corpora = draw(st.integers(2, 4))
    rows = []
    for c in range(n_corpora):
        n_spk = draw(st.integers(2, 9))
        extra = draw(st.sampled_from([(), ("fear",)]))
        emos = ("angry", "happy", "neutral", "sad") + extra
        for s in range(n_spk):
            for e in emos:
                for u in range(draw(st.integers(1, 3))):
                    rows.append((f"c{c}", f"c{c}/s{s}", e))
    df = pd.DataFrame(rows, columns=["corpus", "speaker", "emotion"])
    df["group"] = df["speaker"]
    return df


def _cells(df, **kw):
    return protocol.make_cells(df["corpus"], df["group"], df["emotion"], **kw)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=metadata(), seed=st.integers(0, 10))
def test_fixed_label_cells_conform(df, seed):
    fixed = protocol.DEFAULT_CROSS_LABELS
    cells = _cells(df, labels=fixed, seed=seed)
    assert check_cells(df, cells, fixed_labels=fixed) == []
    n = df["corpus"].nunique()
    assert sum(c.setting == "cross" for c in cells) == n * (n - 1)
    assert sum(c.setting == "loco" for c in cells) == (n if n >= 3 else 0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=metadata(), seed=st.integers(0, 10))
def test_shared_label_cells_conform(df, seed):
    cells = _cells(df, labels=None, seed=seed)
    assert check_cells(df, cells) == []


@settings(max_examples=30, deadline=None)
@given(groups=st.lists(st.sampled_from([f"s{i}" for i in range(12)]), min_size=2, max_size=200),
       k=st.integers(2, 6), seed=st.integers(0, 5))
def test_speaker_folds_partition(groups, k, seed):
    if len(set(groups)) < 2:
        return
    folds = protocol.speaker_folds(groups, k=k, seed=seed)
    assert len(folds) == min(k, len(set(groups)))
    all_idx = np.sort(np.concatenate(folds))
    assert np.array_equal(all_idx, np.arange(len(groups)))  # every row tested exactly once
    g = np.asarray(groups)
    for i, a in enumerate(folds):
        for b in folds[i + 1:]:
            assert not set(g[a]) & set(g[b])  # no speaker in two folds
    assert protocol.speaker_folds(groups, k=k, seed=seed)[0].tolist() == folds[0].tolist()  # deterministic


def test_broken_split_is_caught():
    """A deliberately broken split (one test speaker leaked into training) must fail the spec."""
    df = pd.DataFrame([(f"c{c}", f"c{c}/s{s}", e) for c in range(2) for s in range(6)
                       for e in ("angry", "happy", "neutral", "sad") for _ in range(2)],
                      columns=["corpus", "speaker", "emotion"])
    df["group"] = df["speaker"]
    cells = _cells(df, labels=protocol.DEFAULT_CROSS_LABELS)
    assert check_cells(df, cells, fixed_labels=protocol.DEFAULT_CROSS_LABELS) == []
    same = next(c for c in cells if c.setting == "same")
    leaked = same.test[:1]
    same.fit = np.concatenate([same.fit, leaked])
    problems = check_cells(df, cells, fixed_labels=protocol.DEFAULT_CROSS_LABELS)
    assert any("speakers in both training/validation and test" in p for p in problems)
    # target data in training of a cross cell
    cross = next(c for c in cells if c.setting == "cross")
    cross.val = np.concatenate([cross.val, cross.test[:1]])
    problems = check_cells(df, cells, fixed_labels=protocol.DEFAULT_CROSS_LABELS)
    assert any("target corpus" in p and cross.name in p for p in problems)


def test_loso_below_k_speakers():
    df = pd.DataFrame([("c0", f"c0/s{s}", e) for s in range(3) for e in ("angry", "sad")],
                      columns=["corpus", "speaker", "emotion"])
    df["group"] = df["speaker"]
    cells = _cells(df, settings=("same",))
    assert len(cells) == 3 and all(len(set(df["speaker"].iloc[c.test])) == 1 for c in cells)


def test_defaults_match_protocol_toml():
    p = load_protocol()
    assert tuple(p["canonical_emotions"]) == CANONICAL_EMOTIONS
    assert p["same_corpus"]["k_folds"] == protocol.K_FOLDS
    assert tuple(p["cross_corpus"]["default_labels"]) == protocol.DEFAULT_CROSS_LABELS
    assert tuple(p["seeds"]["default"]) == protocol.SEEDS
    assert p["selection"]["validation_fraction"] == protocol.VAL_FRACTION
    assert tuple(p["metrics"]["reported"]) == protocol.METRICS


def test_label_set_rules():
    assert protocol.label_set(["sad", "angry", "fear"], ["angry", "sad", "happy"]) == ("sad", "angry")
    assert protocol.label_set(["sad", "angry", "happy", "neutral"], fixed=["sad", "neutral"]) == ("neutral", "sad")
    with pytest.raises(protocol.ProtocolError, match="source has no utterances"):
        protocol.label_set(["sad", "angry"], fixed=["sad", "happy"])
    with pytest.raises(protocol.ProtocolError, match="fewer than 2"):
        protocol.label_set(["sad", "angry"], ["sad", "happy"])


def test_single_speaker_validation_is_flagged():
    fit, val, disjoint = protocol.validation_split(["s0"] * 20, ["a", "b"] * 10)
    assert not disjoint and len(val) > 0 and not set(fit) & set(val)


@st.composite
def sentence_metadata(draw):
    """Acted corpora: every speaker says each of the corpus' sentences in each emotion, some
    rows without a sentence id; one corpus may have a single sentence (speaker folds kept)."""
    rows = []
    for c in range(draw(st.integers(2, 3))):
        n_spk, n_txt = draw(st.integers(2, 7)), draw(st.integers(1, 5))
        for s in range(n_spk):
            for t in range(n_txt):
                for e in ("angry", "happy", "neutral", "sad"):
                    rows.append((f"c{c}", f"c{c}/s{s}", e, "" if draw(st.booleans()) and t == 0 else f"t{t}"))
    df = pd.DataFrame(rows, columns=["corpus", "speaker", "emotion", "text"])
    df["group"] = df["speaker"]
    return df


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=sentence_metadata(), seed=st.integers(0, 5), k=st.integers(2, 5))
def test_speaker_text_cells_conform(df, seed, k):
    try:
        cells = _cells(df, labels=protocol.DEFAULT_CROSS_LABELS, seed=seed, k=k, split="speaker+text",
                       text=df["text"])
    except protocol.ProtocolError:  # a sparse design with a block that leaves nothing to train on
        return
    assert check_cells(df, cells, k=k, fixed_labels=protocol.DEFAULT_CROSS_LABELS) == []


def test_speaker_text_defects_are_caught():
    """A sentence of the test block in training, and a missing block, must fail the spec."""
    df = pd.DataFrame([("c0", f"c0/s{s}", e, f"t{t}") for s in range(4) for t in range(3)
                       for e in ("angry", "happy", "neutral", "sad")], columns=["corpus", "speaker", "emotion", "text"])
    df["group"] = df["speaker"]
    cells = _cells(df, settings=("same",), k=3, split="speaker+text", text=df["text"])
    assert len(cells) == 3 * 3 and check_cells(df, cells, k=3) == []
    assert any("fold count" in p or "k_s x k_t" in p for p in check_cells(df, cells[1:], k=3))
    c = cells[0]
    test_text, test_spk = set(df["text"].iloc[c.test]), set(df["speaker"].iloc[c.test])
    leak = np.flatnonzero(df["text"].isin(test_text) & ~df["speaker"].isin(test_spk))[:1]
    c.fit = np.concatenate([c.fit, leak])
    assert any(c.name in p and "sentence ids in both" in p for p in check_cells(df, cells, k=3))


def test_dimensional_constants_match_protocol_toml():
    from jaxser import dimensional, metrics

    dim = load_protocol()["dimensional"]
    assert tuple(dim["dimensions"]) == dimensional.DIMENSIONS
    assert tuple(dim["reported"]) == metrics.DIMENSIONAL_REPORTED
