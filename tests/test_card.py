"""The corpus card: per-corpus counts, speakers, durations, native rates, label map, and the
problems it must report instead of crashing (corrupt, all-zero and duplicate files, unknown
codes), on every loader's fixture and through the CLI."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from jaxser import audio, corpora
from jaxser.corpora import __main__ as cli
from jaxser.corpora.card import TABLES, describe, render
from tests.helpers.corpus_release_trees import (make_aesdd, make_baved, make_cafe, make_iemocap, make_shemo,
                                               make_subesco, make_urdu, tone)

#: corpus -> (fixture, native rate, utterances in the clean fixture, planted files:
#: (corrupt, all-zero, duplicate-of-first-file, unknown code))
CASES = {
    "urdu": (make_urdu, 44_100, 6, ("Angry/SM9_F1_A0200.wav", "Sad/SM9_F2_S0201.wav", "Happy/SM9_F3_H0202.wav",
                                    "Sad/SM9_F4_Q0203.wav")),
    "baved": (make_baved, 16_000, 6, ("0/9-m-30-0-1-900.wav", "1/9-m-30-1-1-901.wav", "2/9-m-30-2-2-902.wav",
                                      "3/9-m-30-3-7-903.wav")),
    "aesdd": (make_aesdd, 44_100, 6, ("anger/a05 (4).wav", "fear/f05 (4).wav", "sadness/s05 (4).wav",
                                      "other/x05 (4).wav")),
    "shemo": (make_shemo, 44_100, 6, ("female/F20A01.wav", "female/F20N02.wav", "male/M20S01.wav",
                                      "male/M20Q01.wav")),
    "subesco": (make_subesco, 48_000, 7, ("SUBESCO/F_05_RIMA_S_1_ANGRY_1.wav", "SUBESCO/F_05_RIMA_S_2_SAD_1.wav",
                                          "SUBESCO/F_05_RIMA_S_3_FEAR_1.wav", "SUBESCO/F_05_RIMA_S_4_CALM_1.wav")),
    "cafe": (make_cafe, 48_000, 8, ("Joie/Faible/09-J-1-1.wav", "Peur/Fort/09-P-2-2.wav", "Neutre/09-N-1-3.wav",
                                    "Autre/09-Q-1-4.wav")),
}


def _plant(root: Path, sr: int, corrupt: str, zero: str, dup: str, unknown: str) -> None:
    (root / corrupt).parent.mkdir(parents=True, exist_ok=True)
    (root / corrupt).write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    audio.write(root / zero, np.zeros(int(0.2 * sr)), sr)
    first = sorted(p for p in root.rglob("*.wav") if p.name != Path(corrupt).name)[0]
    (root / dup).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(first, root / dup)
    tone(root / unknown, sr)


def _check_consistent(card, n):
    assert list(card) == list(TABLES)
    s = card["summary"].iloc[0]
    assert s["utterances"] == n
    assert card["emotions"]["utterances"].sum() == n
    assert card["speakers"]["utterances"].sum() == n
    assert card["gender"]["utterances"].sum() == n
    assert card["gender"]["speakers"].sum() == s["speakers"] == len(card["speakers"])
    assert card["label_map"]["utterances"].sum() == n
    assert abs(card["emotions"]["share"].sum() - 1) < 1e-9


@pytest.mark.parametrize("name", sorted(CASES))
def test_card_clean_fixture(tmp_path, name):
    make, sr, n, _ = CASES[name]
    root = make(tmp_path / name)
    card = describe(name, root)
    _check_consistent(card, n)
    assert card["problems"].empty, card["problems"]
    assert card["sample_rates"].to_dict("records") == [{"sample_rate": sr, "channels": 1, "files": n}]
    d = card["durations"].set_index("subset").loc["all"]
    assert d["count"] == n and abs(d["mean_s"] - 0.2) < 1e-3 and abs(d["total_h"] - n * 0.2 / 3600) < 1e-6
    mod = corpora.module(name)
    lm = card["label_map"].set_index("code")["emotion"].to_dict()
    assert all(lm[c] == e for c, e in mod.LABEL_MAP.items())
    text = render(card)
    assert f"== {name}" in text and "utterances by emotion" in text and "problems\n   (none)" in text


@pytest.mark.parametrize("name", sorted(CASES))
def test_card_reports_planted_problems(tmp_path, name):
    make, sr, n, planted = CASES[name]
    root = make(tmp_path / name)
    _plant(root, sr, *planted)
    card = describe(name, root)
    probs = card["problems"]
    kinds = dict(zip(probs["path"].map(lambda p: Path(p).name if p else ""), probs["kind"]))
    corrupt, zero, dup, unknown = (Path(p).name for p in planted)
    assert kinds[corrupt] == "unreadable"
    assert kinds[zero] == "all_zero"
    assert kinds[dup] == "duplicate"
    excl = {Path(x).name for x in (planted[0], planted[2], planted[3])}
    first = sorted(p for p in root.rglob("*.wav") if p.name not in excl)[0]
    detail = probs.set_index("kind").loc["duplicate", "detail"]
    assert "2 identical recordings" in detail and str(first) in detail and str(root / planted[2]) in detail
    assert kinds[unknown] == "unknown_label"
    assert len(probs) == 4, probs
    # corrupt, zero and duplicate files have valid names: they are utterances, flagged
    _check_consistent(card, n + 3)
    assert "unknown emotion code" in render(card)
    # a header-only pass still catches the corrupt file but not the silent one
    fast = describe(name, root, decode=False, hashes=False)
    assert set(fast["problems"]["kind"]) == {"unreadable", "unknown_label"}


def test_card_iemocap(tmp_path):
    from tests.helpers.corpus_release_trees import eval_block

    root = make_iemocap(tmp_path / "iemocap",
                        extra_lines=eval_block("90.0000", "91.0000", "Ses01F_impro01_F009", "bor"))
    tone(root / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F009.wav", 16_000)
    card = describe("iemocap", root)
    probs = card["problems"]
    # the fixture appends the bad line to both dialogues' evaluation files: two reports
    assert probs["kind"].tolist() == ["unknown_label"] * 2 and all("'bor'" in d for d in probs["detail"])
    _check_consistent(card, 5)
    assert card["excluded"].set_index("raw_label")["utterances"].to_dict() == {"exc": 1, "fru": 1, "xxx": 1}
    lm = card["label_map"].set_index("code")
    assert lm.loc["exc", "emotion"] == "(excluded)" and lm.loc["exc", "excluded"] == 1
    assert card["summary"]["excluded"][0] == 3
    merged = describe("iemocap", root, merge_excited=True)
    assert merged["label_map"].set_index("code").loc["exc", "emotion"] == "happy"
    assert merged["summary"]["utterances"][0] == 6
    assert set(card["speakers"]["speaker"]) == {"Ses01F", "Ses01M", "Ses02F"}
    # corrupt one utterance: reported, not a crash
    (root / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F003.wav").write_bytes(b"junk")
    assert "unreadable" in set(describe("iemocap", root)["problems"]["kind"])


def test_card_from_dataset(tmp_path):
    ds = corpora.load("shemo", make_shemo(tmp_path / "shemo"))
    card = describe(ds)
    _check_consistent(card, len(ds))
    assert card["summary"]["corpus"][0] == "shemo" and card["problems"].empty


def test_card_refuses_a_root_without_audio(tmp_path):
    """An empty card would read as a clean corpus; a wrong root is an error instead."""
    empty = tmp_path / "nothing"
    empty.mkdir()
    with pytest.raises(corpora.CorpusRootError, match="no .wav files found"):
        describe("urdu", empty)
    with pytest.raises(corpora.CorpusRootError, match="does not exist"):
        describe("iemocap", tmp_path / "missing")


def test_card_layout_error_reported(tmp_path):
    """A file-level layout problem (here: a file in the wrong emotion folder) is a problem row."""
    root = make_urdu(tmp_path / "urdu")
    tone(root / "Sad" / "SM9_F1_A0300.wav", 44_100)
    card = describe("urdu", root)
    assert card["problems"]["kind"].tolist() == ["layout"]
    assert "is in folder 'Sad'" in card["problems"]["detail"][0]
    assert card["summary"]["utterances"][0] == 6


def test_cli_describe(tmp_path, capsys):
    u = make_urdu(tmp_path / "urdu")
    b = make_baved(tmp_path / "baved")
    _plant(b, 16_000, *CASES["baved"][3])
    out_json, csv_dir = tmp_path / "card.json", tmp_path / "csv"
    rc = cli.main(["describe", f"urdu={u}", f"BAVED={b}", "-o", "baved.level_map=strict", "--json", str(out_json),
                   "--csv-dir", str(csv_dir)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "== urdu" in text and "== baved" in text and "all_zero" in text
    data = json.loads(out_json.read_text())
    assert data["urdu"]["summary"][0]["utterances"] == 6
    assert data["baved"]["summary"][0]["excluded"] == 3  # strict: the two level-2 files + the duplicate
    assert (csv_dir / "baved_problems.csv").is_file() and (csv_dir / "urdu_emotions.csv").is_file()
    assert cli.main(["describe", f"urdu={u}", f"baved={b}", "--strict", "--json", "-"]) == 1
    assert json.loads(capsys.readouterr().out)["baved"]["problems"]
    assert cli.main(["describe", "nosuchcorpus=/tmp"]) == 2
    assert "unknown corpus" in capsys.readouterr().err


def test_describe_a_manifest_fills_the_label_maps_canonical_column(tmp_path, capsys):
    """A manifest's labels are canonical already, or mapped by its label_map option, or named
    by its raw_label column: the card shows each as the loaded rows pair it."""
    for i in range(6):
        tone(tmp_path / f"u{i}.wav", 16_000)
    (tmp_path / "mine.csv").write_text("path,speaker,emotion\nu0.wav,s1,angry\nu1.wav,s2,sad\nu2.wav,s2,sad\n")
    lm = describe("manifest", tmp_path / "mine.csv", hashes=False)["label_map"]
    assert lm.to_dict("records") == [{"code": "angry", "emotion": "angry", "utterances": 1, "excluded": 0},
                                     {"code": "sad", "emotion": "sad", "utterances": 2, "excluded": 0}]

    (tmp_path / "codes.csv").write_text("path,speaker,emotion\nu0.wav,s1,ANG\nu1.wav,s2,TRI\nu2.wav,s2,TRI\n")
    card = describe("manifest", tmp_path / "codes.csv", hashes=False, label_map={"ANG": "angry", "TRI": "sad"})
    assert card["label_map"].set_index("code")["emotion"].to_dict() == {"ANG": "angry", "TRI": "sad"}
    _check_consistent(card, 3)

    (tmp_path / "raw.csv").write_text("path,speaker,emotion,raw_label,arousal\nu0.wav,s1,angry,W,4\n"
                                      "u1.wav,s2,happy,F,2\nu2.wav,s2,,,3\nu3.wav,s3,angry,W,5\n")
    lm = describe("manifest", tmp_path / "raw.csv", hashes=False, dimension_range=(1, 5))["label_map"]
    assert lm.set_index("code")["emotion"].to_dict() == {"": "(none: rated only)", "F": "happy", "W": "angry"}
    assert lm.set_index("code")["utterances"].to_dict() == {"": 1, "F": 1, "W": 2}

    assert cli.main(["describe", f"mine={tmp_path / 'mine.csv'}", "--no-hash"]) == 0
    text = capsys.readouterr().out
    table = text[text.index("-- label map"):text.index("-- gender")].splitlines()
    assert table[1].split() == ["code", "emotion", "utterances", "excluded"]
    assert [line.split() for line in table[2:]] == [["angry", "angry", "1", "0"], ["sad", "sad", "2", "0"]]


def test_card_synthetic(tmp_path):
    from jaxser.corpora import synthetic

    name = "synth-duna" if "synth-duna" in synthetic.CORPORA else sorted(synthetic.CORPORA)[0]
    card = describe(name, tmp_path / name, decode=False)
    n = card["summary"]["utterances"][0]
    assert n > 0 and card["problems"].empty
    _check_consistent(card, n)
    assert len(card["sample_rates"]) == 1


#: The core six loaders (tests/helpers/corpus_fixtures.py): a valid name to plant a corrupt file under,
#: and a name with an emotion code outside the corpus' label map.
CORE = {
    "cremad": ("AudioWAV/1002_DFA_ANG_XX.wav", "AudioWAV/1002_DFA_XYZ_XX.wav"),
    "ravdess": ("Actor_02/03-01-03-01-01-01-02.wav", "Actor_02/03-01-09-01-01-01-02.wav"),
    "tess": ("TESS Toronto emotional speech set data/OAF_angry/OAF_bath_angry.wav",
             "TESS Toronto emotional speech set data/OAF_angry/OAF_bath_bored.wav"),
    "emodb": ("wav/03a02Fa.wav", "wav/03a01Xa.wav"),
    "savee": ("AudioData/DC/a02.wav", "AudioData/DC/x01.wav"),
    "emovo": ("EMOVO/f1/neu-f1-b2.wav", "EMOVO/f1/xyz-f1-b1.wav"),
}


@pytest.mark.parametrize("name", sorted(CORE))
def test_card_core_loaders(tmp_path, name):
    """Clean fixture described fully; a corrupt file and an unknown code (planted one at a
    time: TESS reads headers itself and stops at an unreadable one) are reported, not raised."""
    from tests.helpers import corpus_fixtures as fx

    corpora.module(name)  # a loader that fails to import fails here, never skips
    built = getattr(fx, name)(tmp_path)
    card = describe(name, tmp_path)
    assert card["problems"].empty, card["problems"]
    _check_consistent(card, len(built))
    corrupt, unknown = CORE[name]
    (tmp_path / corrupt).write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    card = describe(name, tmp_path)
    assert card["problems"]["kind"].tolist() == ["unreadable"]
    assert card["problems"]["path"][0].endswith(Path(corrupt).name)
    if card["summary"]["utterances"][0]:  # else the loader itself read the header and stopped
        _check_consistent(card, len(built) + 1)
    (tmp_path / corrupt).unlink()
    fx.write_wav(tmp_path / unknown, 16_000)
    card = describe(name, tmp_path)
    assert card["problems"]["kind"].tolist() == ["unknown_label"]
    assert Path(unknown).name in card["problems"]["detail"][0]
    _check_consistent(card, len(built))  # the other files are still listed


#: Two badly named files per core corpus, planted next to the fixture's official names:
#: (an emotion code outside the label map, a name that does not follow the naming scheme).
CORE_BAD = {
    "cremad": ("AudioWAV/1003_DFA_XYZ_XX.wav", "AudioWAV/1001-DFA-ANG.wav"),
    "ravdess": ("Actor_01/03-01-09-01-01-01-01.wav", "Actor_02/03_01_05_01_01_01_02.wav"),
    "tess": ("TESS Toronto emotional speech set data/OAF_angry/OAF_dog_bored.wav",
             "TESS Toronto emotional speech set data/YAF_sad/YAF_dog.wav"),
    "emodb": ("wav/03a01Xa.wav", "wav/03-a01-F.wav"),
    "savee": ("AudioData/DC/x01.wav", "AudioData/JE/angry1.wav"),
    "emovo": ("EMOVO/f1/ans-f1-b1.wav", "EMOVO/m1/dis_m1_b1.wav"),
}


@pytest.mark.parametrize("name", sorted(CORE_BAD))
def test_core_loaders_collect_every_error(tmp_path, name):
    """`records(root, errors=[...])` on the core six: every badly named file is collected and
    skipped (and listed by the card), while a plain load still stops at the first one."""
    from tests.helpers import corpus_fixtures as fx
    from jaxser.corpora.schema import CorpusError, UnknownLabelError

    mod = corpora.module(name)
    built = getattr(fx, name)(tmp_path)
    unknown, misnamed = (fx.write_wav(tmp_path / rel, 16_000) for rel in CORE_BAD[name])
    first = min(unknown, misnamed)  # loaders walk files in sorted path order
    # (a) without `errors` the first bad file raises, as before
    with pytest.raises(CorpusError) as e:
        corpora.load(name, tmp_path)
    assert first.name in str(e.value)
    assert isinstance(e.value, UnknownLabelError) == (first == unknown)
    with pytest.raises(CorpusError, match=f"{first.name}"):
        mod.records(tmp_path)
    # (b) with `errors` the good records come back and both bad files are collected
    errs: list = []
    recs = mod.records(tmp_path, errors=errs)
    assert sorted(r["path"] for r in recs) == sorted(str(p.resolve()) for p in built)
    assert len(errs) == 2 and all(isinstance(x, CorpusError) for x in errs)
    assert [type(x) is UnknownLabelError for x in errs] == [first == unknown, first != unknown]
    assert unknown.name in str(errs[0 if first == unknown else 1])
    assert misnamed.name in str(errs[1 if first == unknown else 0])
    assert "does not follow" in str(errs[1 if first == unknown else 0])
    assert len(corpora.load(name, tmp_path, errors=[])) == len(built)
    # (c) the card lists both problems and every good utterance
    card = describe(name, tmp_path)
    probs = card["problems"]
    assert sorted(probs["kind"]) == ["layout", "unknown_label"], probs
    details = " ".join(probs["detail"])
    assert unknown.name in details and misnamed.name in details
    _check_consistent(card, len(built))
