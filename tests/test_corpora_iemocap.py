"""IEMOCAP loader: a tree with the release's real file names and EmoEvaluation/transcription line
formats, loaded through `jaxser.corpora.load` exactly as a user would."""
from __future__ import annotations

from collections import Counter

import pytest

from jaxser import corpora
from jaxser.corpora import CorpusError, UnknownLabelError
from tests.helpers.corpus_release_trees import by_utt, eval_block, make_iemocap, tone


def test_iemocap_fields(tmp_path):
    root = make_iemocap(tmp_path / "IEMOCAP_full_release")
    excluded = Counter()
    ds = corpora.load("iemocap", root, excluded=excluded)
    rows = by_utt(ds)
    assert set(rows) == {"Ses01F_impro01_F000", "Ses01F_impro01_M002", "Ses01F_impro01_F003",
                         "Ses02M_script01_1_F003", "Ses02M_script01_1_F006"}
    assert excluded == Counter({"fru": 1, "exc": 1, "xxx": 1})
    r = rows["Ses01F_impro01_M002"]
    assert (r["speaker"], r["gender"], r["emotion"], r["raw_label"]) == ("iemocap/Ses01M", "male", "angry", "ang")
    assert (r["session"], r["dialog"], r["improvised"]) == ("Ses01", "Ses01F_impro01", "true")
    assert r["text"] == "words of Ses01F_impro01_M002."
    assert r["path"] == "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_M002.wav"
    assert r["language"] == "en" and r["corpus"] == "iemocap"
    assert abs(r["duration"] - 0.2) < 1e-3
    r = rows["Ses02M_script01_1_F003"]
    assert (r["speaker"], r["gender"], r["emotion"], r["improvised"]) == ("iemocap/Ses02F", "female", "happy", "false")
    assert rows["Ses02M_script01_1_F006"]["emotion"] == "surprise"
    assert rows["Ses01F_impro01_F000"]["valence"] == 1.5
    # leave-one-session-out is the natural fold unit
    assert sorted(set(corpora.fold_groups(ds))) == ["iemocap/Ses01", "iemocap/Ses02"]


def test_iemocap_merge_excited(tmp_path):
    root = make_iemocap(tmp_path / "iemocap")
    excluded = Counter()
    ds = corpora.load("iemocap", root, merge_excited=True, excluded=excluded)
    rows = by_utt(ds)
    assert rows["Ses02M_script01_1_M004"]["emotion"] == "happy"
    assert rows["Ses02M_script01_1_M004"]["raw_label"] == "exc"
    assert excluded == Counter({"fru": 1, "xxx": 1})


def test_iemocap_errors(tmp_path):
    root = make_iemocap(tmp_path / "a", extra_lines=eval_block("90.0000", "91.0000", "Ses01F_impro01_F009", "bor"))
    with pytest.raises(UnknownLabelError, match=r"'bor'.*Ses01F_impro01\.txt line"):
        corpora.load("iemocap", root)
    root = make_iemocap(tmp_path / "b", skip_wav="Ses01F_impro01_F003")
    with pytest.raises(CorpusError, match="labels Ses01F_impro01_F003 but no Ses01F_impro01_F003.wav"):
        corpora.load("iemocap", root)
    root = make_iemocap(tmp_path / "c", extra_lines="[1.0 - 2.0]\tSes01F_impro01_F010\tneu\n")
    with pytest.raises(CorpusError, match="cannot parse evaluation line"):
        corpora.load("iemocap", root)
    only_wavs = tmp_path / "d"
    tone(only_wavs / "Ses01F_impro01_F000.wav", 16_000)
    with pytest.raises(CorpusError, match="EmoEvaluation"):
        corpora.load("iemocap", only_wavs)
