"""Loaders of the multilingual seed-study corpora -- URDU, BAVED, AESDD, ShEMO, SUBESCO, CaFE:
trees with the releases' real file names (and their known quirks), short WAVs at each corpus'
native rate, loaded through `jaxser.corpora.load` exactly as a user would."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from jaxser import audio, corpora
from jaxser.corpora import CorpusError, UnknownLabelError
from tests.helpers.corpus_release_trees import (SUBESCO_QUIRK, by_utt, make_aesdd, make_baved, make_cafe, make_shemo,
                                                make_subesco, make_urdu, tone)


# ---------------------------------------------------------------- URDU

def test_urdu_fields(tmp_path):
    rows = by_utt(corpora.load("urdu", make_urdu(tmp_path / "URDU-Dataset-master")))
    assert len(rows) == 6
    r = rows["SM1_F10_A010"]
    assert (r["speaker"], r["gender"], r["emotion"], r["raw_label"], r["language"]) == (
        "urdu/SM1", "male", "angry", "A", "ur")
    assert r["path"] == "Angry/SM1_F10_A010.wav"
    assert (rows["SF10_F2_S02"]["speaker"], rows["SF10_F2_S02"]["gender"]) == ("urdu/SF10", "female")
    assert rows["SM5_F72_N0100"]["emotion"] == "neutral" and rows["SF5_F1_H021"]["emotion"] == "happy"


def test_urdu_errors(tmp_path):
    root = make_urdu(tmp_path / "u1")
    tone(root / "Angry" / "SM2_F1_X01.wav", 44_100)
    with pytest.raises(UnknownLabelError, match=r"'X' in .*SM2_F1_X01.wav"):
        corpora.load("urdu", root)
    root = make_urdu(tmp_path / "u2")
    tone(root / "Happy" / "SM2_F1_A01.wav", 44_100)
    with pytest.raises(CorpusError, match="in folder 'Happy' but its name says emotion 'A'"):
        corpora.load("urdu", root)
    root = make_urdu(tmp_path / "u3")
    tone(root / "Sad" / "speaker one.wav", 44_100)
    with pytest.raises(CorpusError, match="does not follow URDU naming"):
        corpora.load("urdu", root)


# ---------------------------------------------------------------- BAVED

def test_baved_default_level_map(tmp_path):
    rows = by_utt(corpora.load("baved", make_baved(tmp_path / "BAVED")))
    assert len(rows) == 6
    r = rows["56-f-40-2-2-657"]
    assert (r["speaker"], r["gender"], r["raw_label"], r["level"], r["emotion"]) == (
        "baved/56", "female", "2", "high", "angry")
    assert (r["age"], r["word"], r["text"], r["language"], r["path"]) == ("40", "2", "2", "ar", "2/56-f-40-2-2-657.wav")
    assert rows["0-m-21-0-0-1"]["emotion"] == "sad" and rows["0-m-21-0-0-1"]["level"] == "low"
    assert rows["0-m-21-0-1-2"]["emotion"] == "neutral" and rows["0-m-21-0-1-2"]["gender"] == "male"


def test_baved_level_map_options(tmp_path):
    root = make_baved(tmp_path / "BAVED")
    excluded = Counter()
    ds = corpora.load("baved", root, level_map="strict", excluded=excluded)
    assert len(ds) == 4 and excluded == Counter({"2": 2}) and set(ds["emotion"]) == {"sad", "neutral"}
    ds = corpora.load("baved", root, level_map={"0": "boredom", "1": "neutral", "2": "happy"})
    assert sorted(set(ds["emotion"])) == ["boredom", "happy", "neutral"]
    with pytest.raises(CorpusError, match="unknown level_map preset"):
        corpora.load("baved", root, level_map="valence")
    with pytest.raises(CorpusError, match="invalid"):
        corpora.load("baved", root, level_map={"2": "elated"})


def test_baved_errors(tmp_path):
    root = make_baved(tmp_path / "b1")
    tone(root / "1" / "3-m-20-1-3-44.wav", 16_000)
    with pytest.raises(UnknownLabelError, match=r"'3' in .*3-m-20-1-3-44.wav"):
        corpora.load("baved", root)
    root = make_baved(tmp_path / "b2")
    tone(root / "4" / "3-m-20-1-1-44.wav", 16_000)
    with pytest.raises(CorpusError, match="word folder '4' but its name says word 1"):
        corpora.load("baved", root)
    root = make_baved(tmp_path / "b3")
    tone(root / "1" / "3_m_20_1_1_44.wav", 16_000)
    with pytest.raises(CorpusError, match="does not follow BAVED naming"):
        corpora.load("baved", root)


# ---------------------------------------------------------------- AESDD

def test_aesdd_fields(tmp_path):
    rows = by_utt(corpora.load("aesdd", make_aesdd(tmp_path / "AESDD")))
    assert set(rows) == {"a01_1", "d04_5b", "d04_5", "f12_01", "h20_3", "s01_2"}
    r = rows["d04_5b"]
    assert (r["speaker"], r["gender"], r["emotion"], r["raw_label"], r["text"], r["take"], r["language"]) == (
        "aesdd/5", "unknown", "disgust", "d", "04", "b", "el")
    assert r["path"] == "Acted Emotional Speech Dynamic Database/disgust/d04 (5)b.wav"
    assert rows["f12_01"]["speaker"] == "aesdd/1" and rows["f12_01"]["emotion"] == "fear"
    assert rows["h20_3"]["emotion"] == "happy" and rows["s01_2"]["emotion"] == "sad"
    ds = corpora.load("aesdd", tmp_path / "AESDD", genders={"1": "female", "5": "male"})
    g = {r["speaker"]: r["gender"] for r in ds}
    assert g == {"aesdd/1": "female", "aesdd/5": "male", "aesdd/2": "unknown", "aesdd/3": "unknown"}


def _no_data_chunk(path: Path) -> Path:
    """A WAV cut just before its data chunk, as `sadness/s05 (3).wav` is in the AESDD release
    (libsndfile: "No 'data' chunk marker")."""
    raw = tone(path, 44_100).read_bytes()
    path.write_bytes(raw[:raw.index(b"data")])
    return path


def test_aesdd_release_take_letters(tmp_path):
    # The release has both take letters: `s01 (5)a.wav` and `s01 (5)b.wav`, next to `s04 (5).wav`
    # and `s04 (5)b.wav` (EmoBox data/aesdd file list).
    root = make_aesdd(tmp_path / "t")
    for name in ("s01 (5)a", "s01 (5)b", "s04 (5)"):
        tone(root / "Acted Emotional Speech Dynamic Database" / "sadness" / f"{name}.wav", 44_100)
    rows = by_utt(corpora.load("aesdd", root))
    assert (rows["s01_5a"]["take"], rows["s01_5b"]["take"], rows["s04_5"]["take"]) == ("a", "b", "")
    assert rows["s01_5a"]["speaker"] == "aesdd/5" and rows["s01_5a"]["emotion"] == "sad"


def test_aesdd_release_broken_file_is_skipped_with_a_warning(tmp_path):
    root = make_aesdd(tmp_path / "bad")
    bad = _no_data_chunk(root / "Acted Emotional Speech Dynamic Database" / "sadness" / "s05 (3).wav")
    with pytest.raises(audio.AudioError, match="data"):
        audio.info(bad)
    with pytest.warns(UserWarning, match=r"known to be broken in the AESDD release: .*s05 \(3\)\.wav"):
        ds = corpora.load("aesdd", root)
    assert len(ds) == 6 and "aesdd/s05_3" not in ds["id"]
    # a readable s05 (3).wav (a repaired copy) is kept
    tone(bad, 44_100)
    rows = by_utt(corpora.load("aesdd", root))
    assert rows["s05_3"]["speaker"] == "aesdd/3" and rows["s05_3"]["emotion"] == "sad"


def test_aesdd_other_unreadable_files_still_fail(tmp_path):
    root = make_aesdd(tmp_path / "bad2")
    _no_data_chunk(root / "Acted Emotional Speech Dynamic Database" / "sadness" / "s05 (4).wav")
    with pytest.raises(audio.AudioError, match=r"s05 \(4\)\.wav"):
        corpora.load("aesdd", root)
    ds = corpora.load("aesdd", root, skip_errors=True)
    assert "aesdd/s05_4" in ds["id"]


def test_aesdd_errors(tmp_path):
    root = make_aesdd(tmp_path / "e1")
    tone(root / "extra" / "n01 (1).wav", 44_100)
    with pytest.raises(UnknownLabelError, match=r"'n' in .*n01 \(1\)\.wav"):
        corpora.load("aesdd", root)
    root = make_aesdd(tmp_path / "e2")
    tone(root / "fear" / "a02 (1).wav", 44_100)
    with pytest.raises(CorpusError, match="in folder 'fear' but its name says emotion 'a'"):
        corpora.load("aesdd", root)
    root = make_aesdd(tmp_path / "e3")
    tone(root / "anger" / "anger_01.wav", 44_100)
    with pytest.raises(CorpusError, match="does not follow AESDD naming"):
        corpora.load("aesdd", root)


# ---------------------------------------------------------------- ShEMO

def test_shemo_fields(tmp_path):
    rows = by_utt(corpora.load("shemo", make_shemo(tmp_path / "ShEMO")))
    assert len(rows) == 6
    r = rows["F01F02"]  # F as gender, then F as fear
    assert (r["speaker"], r["gender"], r["emotion"], r["raw_label"], r["language"]) == (
        "shemo/F01", "female", "fear", "F", "fa")
    assert rows["M01N03"]["speaker"] == "shemo/M01" and rows["M01N03"]["gender"] == "male"
    assert rows["F12W03"]["emotion"] == "surprise" and rows["M07S01"]["emotion"] == "sad"
    assert rows["F01A01"]["emotion"] == "angry" and rows["M12H10"]["emotion"] == "happy"


def test_shemo_errors(tmp_path):
    root = make_shemo(tmp_path / "s1")
    tone(root / "male" / "M02X01.wav", 44_100)
    with pytest.raises(UnknownLabelError, match=r"'X' in .*M02X01.wav"):
        corpora.load("shemo", root)
    root = make_shemo(tmp_path / "s2")
    tone(root / "female" / "M02A01.wav", 44_100)
    with pytest.raises(CorpusError, match="in folder 'female' but its name says male"):
        corpora.load("shemo", root)


# ---------------------------------------------------------------- SUBESCO

def test_subesco_fields(tmp_path):
    rows = by_utt(corpora.load("subesco", make_subesco(tmp_path / "sub")))
    assert len(rows) == 7
    r = rows["F_02_MONIKA_S_10_ANGRY_1"]
    assert (r["speaker"], r["gender"], r["emotion"], r["raw_label"], r["text"], r["speaker_name"], r["take"],
            r["language"]) == ("subesco/F_02", "female", "angry", "ANGRY", "10", "MONIKA", "1", "bn")
    assert rows["M_01_BASHIR_S_3_SURPRISE_2"]["speaker"] == "subesco/M_01"
    assert rows["M_01_BASHIR_S_3_SURPRISE_2"]["gender"] == "male"
    assert {rows[k]["emotion"] for k in rows} == {"neutral", "angry", "surprise", "disgust", "fear", "happy", "sad"}


def test_subesco_release_quirk_bracket_after_take(tmp_path):
    """F_02_MONIKA_S_2_SURPRISE_3].wav of the release is read as take 3, under the id without
    the bracket; the record still points at the real file."""
    rows = by_utt(corpora.load("subesco", make_subesco(tmp_path / "q", quirk=True)))
    assert len(rows) == 8 and SUBESCO_QUIRK not in rows
    r = rows["F_02_MONIKA_S_2_SURPRISE_3"]
    assert (r["speaker"], r["gender"], r["emotion"], r["raw_label"], r["text"], r["speaker_name"], r["take"]) == (
        "subesco/F_02", "female", "surprise", "SURPRISE", "2", "MONIKA", "3")
    assert r["path"] == "SUBESCO/F_02_MONIKA_S_2_SURPRISE_3].wav"
    assert Path(r["audio"]).is_file()
    assert r["duration"] == pytest.approx(0.2)


@pytest.mark.parametrize("name", ["F_02_MONIKA_S_2_SURPRISE_2]", "F_02_MONIKA_S_2_SURPRISE_3]]",
                                  "F_02_MONIKA_S_2_SURPRISE_3)", "M_01_BASHIR_S_3_HAPPY_1]"])
def test_subesco_bracket_accepted_only_for_the_release_file(tmp_path, name):
    root = make_subesco(tmp_path / "b")
    tone(root / "SUBESCO" / f"{name}.wav", 48_000)
    with pytest.raises(CorpusError, match="does not follow SUBESCO naming"):
        corpora.load("subesco", root)


def test_subesco_quirky_file_and_a_renamed_copy_clash(tmp_path):
    # A copy where someone already renamed the file would give the same utterance twice.
    root = make_subesco(tmp_path / "c", quirk=True)
    tone(root / "fixed" / "F_02_MONIKA_S_2_SURPRISE_3.wav", 48_000)
    with pytest.raises(CorpusError, match="duplicate utterance id 'F_02_MONIKA_S_2_SURPRISE_3'"):
        corpora.load("subesco", root)


def test_subesco_errors(tmp_path):
    root = make_subesco(tmp_path / "x1")
    tone(root / "SUBESCO" / "F_03_SMITA_S_1_BORED_1.wav", 48_000)
    with pytest.raises(UnknownLabelError, match=r"'BORED' in .*F_03_SMITA_S_1_BORED_1.wav"):
        corpora.load("subesco", root)
    root = make_subesco(tmp_path / "x2")
    tone(root / "SUBESCO" / "F_03_SMITA_1_ANGRY_1.wav", 48_000)
    with pytest.raises(CorpusError, match="does not follow SUBESCO naming"):
        corpora.load("subesco", root)


# ---------------------------------------------------------------- CaFE

def test_cafe_fields(tmp_path):
    rows = by_utt(corpora.load("cafe", make_cafe(tmp_path / "cafe")))
    assert len(rows) == 8
    r = rows["02-C-2-6"]
    assert (r["speaker"], r["gender"], r["emotion"], r["raw_label"], r["text"], r["intensity"], r["language"]) == (
        "cafe/02", "female", "angry", "C", "6", "fort", "fr-CA")
    assert r["path"] == "CaFE_48k/Colère/Fort/02-C-2-6.wav"
    assert rows["01-C-1-1"]["gender"] == "male" and rows["01-C-1-1"]["intensity"] == "faible"
    assert rows["11-N-1-4"]["emotion"] == "neutral" and rows["11-N-1-4"]["intensity"] == ""
    assert {r["emotion"] for r in rows.values()} == {"angry", "disgust", "happy", "neutral", "fear", "surprise", "sad"}
    ds = corpora.load("cafe", tmp_path / "cafe", genders={"1": "female"})
    assert by_utt(ds)["01-C-1-1"]["gender"] == "female"


def test_cafe_aiff_and_errors(tmp_path):
    root = tmp_path / "c192"
    tone(root / "Neutre" / "01-N-1-1.aiff", 192_000, secs=0.1)  # the 192 kHz release is AIFF
    audio.write(root / "Joie" / "Faible" / "02-J-1-1.aiff", np.full(9600, 0.1), 192_000)
    ds = corpora.load("cafe", root)
    assert sorted(ds["emotion"]) == ["happy", "neutral"]
    root = make_cafe(tmp_path / "c1")
    tone(root / "Joie" / "Fort" / "07-X-2-1.wav", 48_000)
    with pytest.raises(UnknownLabelError, match=r"'X' in .*07-X-2-1.wav"):
        corpora.load("cafe", root)
    root = make_cafe(tmp_path / "c2")
    tone(root / "Joie" / "Fort" / "07-J-1-1.wav", 48_000)
    with pytest.raises(CorpusError, match="folder 'Fort' but its name says intensity 1"):
        corpora.load("cafe", root)
    root = make_cafe(tmp_path / "c3")
    tone(root / "Peur" / "Fort" / "07-J-2-1.wav", 48_000)
    with pytest.raises(CorpusError, match="folder 'Peur' but its name says emotion 'J'"):
        corpora.load("cafe", root)


def test_cafe_garbled_folder_names_of_published_copies(tmp_path):
    # EmoBox's CaFE list has CaFE_48k/ColŠre/... and CaFE_48k/D‚go–t/... (CP437 bytes read as cp1252)
    root = tmp_path / "garbled"
    for rel in ["ColŠre/Faible/01-C-1-1.wav", "ColŠre/Fort/02-C-2-6.wav", "D‚go–t/Fort/10-D-2-1.wav",
                "Neutre/08-N-1-1.wav", "Tristesse/Faible/04-T-1-3.wav"]:
        tone(root / "CaFE_48k" / rel, 48_000)
    rows = by_utt(corpora.load("cafe", root))
    assert {k: (r["emotion"], r["intensity"]) for k, r in rows.items()} == {
        "01-C-1-1": ("angry", "faible"), "02-C-2-6": ("angry", "fort"), "10-D-2-1": ("disgust", "fort"),
        "08-N-1-1": ("neutral", ""), "04-T-1-3": ("sad", "faible")}
    assert rows["10-D-2-1"]["path"] == "CaFE_48k/D‚go–t/Fort/10-D-2-1.wav"
    # the garbled spellings are still checked against the file name
    tone(root / "CaFE_48k" / "D‚go–t" / "Fort" / "03-J-2-1.wav", 48_000)
    with pytest.raises(CorpusError, match="folder 'D‚go–t' but its name says emotion 'J'"):
        corpora.load("cafe", root)


def test_cafe_undecodable_folder_names_are_refused_with_the_fix(tmp_path):
    # a copy that kept the zip's raw CP437 bytes: Col\x8are is not UTF-8
    import os

    folder = os.path.join(os.fsencode(tmp_path / "raw" / "CaFE_48k"), b"Col\x8are", b"Faible")
    try:
        os.makedirs(folder)
    except OSError:
        pytest.skip("this file system does not take non-UTF-8 names")
    src = tone(tmp_path / "src.wav", 48_000)
    os.rename(os.fsencode(src), os.path.join(folder, b"01-C-1-1.wav"))
    tone(tmp_path / "raw" / "CaFE_48k" / "Neutre" / "08-N-1-1.wav", 48_000)
    with pytest.raises(CorpusError, match=r"'Col\\udc8are' is not valid UTF-8.*python -m zipfile -e"):
        corpora.load("cafe", tmp_path / "raw")


# ---------------------------------------------------------------- collecting errors, real release names

def test_collect_errors_instead_of_raising(tmp_path):
    """Loaders take `errors=[]` to skip and list bad files (what the corpus card uses)."""
    from jaxser.corpora import urdu

    root = make_urdu(tmp_path / "u")
    tone(root / "Angry" / "SM2_F1_X01.wav", 44_100)
    tone(root / "Angry" / "notes.wav", 44_100)
    errors: list = []
    recs = urdu.records(root, errors=errors)
    assert len(recs) == 6 and len(errors) == 2
    assert any(isinstance(e, UnknownLabelError) and e.path.endswith("SM2_F1_X01.wav") for e in errors)


def test_urdu_real_release_names(tmp_path):
    """Names from the release's file list: a two-digit female code, the highest male code, and a
    running index written with a zero before three digits (`A0100`)."""
    root = tmp_path / "URDU-Dataset-master"
    for folder, name in [("Sad", "SF11_F4_S06"), ("Sad", "SM27_F4_S096"), ("Angry", "SM4_F48_A0100"),
                         ("Neutral", "SF9_F1_N01")]:
        tone(root / folder / f"{name}.wav", 44_100)
    rows = by_utt(corpora.load("urdu", root))
    assert {k: (r["speaker"], r["gender"], r["emotion"]) for k, r in rows.items()} == {
        "SF11_F4_S06": ("urdu/SF11", "female", "sad"), "SM27_F4_S096": ("urdu/SM27", "male", "sad"),
        "SM4_F48_A0100": ("urdu/SM4", "male", "angry"), "SF9_F1_N01": ("urdu/SF9", "female", "neutral")}
