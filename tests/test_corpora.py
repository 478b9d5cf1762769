"""The six core corpus loaders and the manifest loader, on tiny trees in the real layouts.

Expectations are written out per file from each corpus' documentation, not recomputed with
the loaders' own tables.
"""
from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxser import corpora
from jaxser.corpora import CANONICAL_EMOTIONS, COLUMNS, CorpusError, UnknownLabelError

from tests.helpers import corpus_fixtures as fx


def rows(ds) -> dict[str, dict]:
    return {r["id"]: r for r in ds}


def check_common(ds, corpus: str, root: Path, sample_rate: int, language: str):
    assert list(ds.column_names)[:len(COLUMNS)] == list(COLUMNS)
    assert ds["id"] == sorted(ds["id"])
    for r in ds:
        assert r["corpus"] == corpus
        assert r["id"].startswith(corpus + "/") and r["speaker"].startswith(corpus + "/")
        assert r["language"] == language
        assert r["emotion"] in CANONICAL_EMOTIONS
        assert Path(r["audio"]).is_absolute() and Path(r["audio"]).is_file()
        assert Path(r["audio"]) == (root.resolve() / r["path"])
        assert r["duration"] == pytest.approx(fx.frames(sample_rate) / sample_rate, abs=1e-6)


def expect(ds, table: dict[str, tuple]):
    """table: id -> (speaker, gender, emotion, raw_label, text, path)."""
    got = rows(ds)
    assert set(got) == set(table)
    for uid, (spk, gender, emo, raw, text, path) in table.items():
        r = got[uid]
        assert (r["speaker"], r["gender"], r["emotion"], r["raw_label"], r["text"], r["path"]) == \
               (spk, gender, emo, raw, text, path), uid


# ----------------------------------------------------------------------------- CREMA-D

CREMAD_EXPECTED = {
    "cremad/1001_DFA_ANG_XX": ("cremad/1001", "male", "angry", "ANG", "DFA"),
    "cremad/1001_IEO_HAP_HI": ("cremad/1001", "male", "happy", "HAP", "IEO"),
    "cremad/1002_TIE_SAD_LO": ("cremad/1002", "female", "sad", "SAD", "TIE"),
    "cremad/1002_IOM_NEU_XX": ("cremad/1002", "female", "neutral", "NEU", "IOM"),
    "cremad/1040_ITH_SAD_X": ("cremad/1040", "male", "sad", "SAD", "ITH"),
    "cremad/1091_WSI_FEA_MD": ("cremad/1091", "female", "fear", "FEA", "WSI"),
    "cremad/1091_TSI_DIS_XX": ("cremad/1091", "female", "disgust", "DIS", "TSI"),
}


def test_cremad_official_layout(tmp_path):
    fx.cremad(tmp_path)
    ds = corpora.load("crema-d", tmp_path)
    check_common(ds, "cremad", tmp_path, 16_000, "en")
    expect(ds, {k: (*v, f"AudioWAV/{k.split('/')[1]}.wav") for k, v in CREMAD_EXPECTED.items()})


def test_cremad_without_demographics_warns_unknown(tmp_path):
    fx.cremad(tmp_path, demographics=False, subdir="cremad/AudioWAV")
    with pytest.warns(UserWarning, match="VideoDemographics.csv not found"):
        ds = corpora.load("cremad", tmp_path)
    assert set(ds["gender"]) == {"unknown"}
    # an explicit demographics file elsewhere is used
    csv = tmp_path.parent / f"{tmp_path.name}-demo.csv"
    csv.write_text(fx.CREMAD_DEMOGRAPHICS)
    ds = corpora.load("cremad", tmp_path, demographics=csv)
    assert rows(ds)["cremad/1091_TSI_DIS_XX"]["gender"] == "female"


def test_cremad_errors(tmp_path):
    fx.cremad(tmp_path)
    bad = fx.write_wav(tmp_path / "AudioWAV" / "1003_DFA_XYZ_XX.wav", 16_000)
    with pytest.raises(UnknownLabelError, match="XYZ.*1003_DFA_XYZ_XX.wav"):
        corpora.load("cremad", tmp_path)
    bad.unlink()
    bad = fx.write_wav(tmp_path / "AudioWAV" / "1003_ABC_ANG_XX.wav", 16_000)
    with pytest.raises(CorpusError, match="1003_ABC_ANG_XX.wav: unknown sentence code 'ABC'"):
        corpora.load("cremad", tmp_path)
    bad.unlink()
    bad = fx.write_wav(tmp_path / "AudioWAV" / "1001-DFA-ANG.wav", 16_000)
    with pytest.raises(CorpusError, match="1001-DFA-ANG.wav does not follow CREMA-D naming"):
        corpora.load("cremad", tmp_path)
    bad.unlink()
    # actor present in audio but missing from the demographics table
    bad = fx.write_wav(tmp_path / "AudioWAV" / "1005_DFA_ANG_XX.wav", 16_000)
    with pytest.raises(CorpusError, match="actor 1005 .* missing from .*VideoDemographics.csv"):
        corpora.load("cremad", tmp_path)
    bad.unlink()
    # a clone without `git lfs pull`
    lfs = tmp_path / "AudioWAV" / "1001_IWW_ANG_XX.wav"
    lfs.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n")
    with pytest.raises(CorpusError, match="git-lfs pointer"):
        corpora.load("cremad", tmp_path)


def test_cremad_known_broken_release_files_left_out_by_name(tmp_path):
    # The four stems public CREMA-D pipelines skip (near-empty, no duration, a one-minute
    # take of every emotion); in the real tree they sit in AudioWAV/ beside the others.
    fx.cremad(tmp_path)
    with open(tmp_path / "VideoDemographics.csv", "a") as f:
        f.write("1064,30,Male,Caucasian,Not Hispanic\n1076,25,Female,African American,Not Hispanic\n")
    for stem in ("1076_MTI_NEU_XX", "1076_MTI_SAD_XX", "1064_TIE_SAD_XX", "1064_IEO_DIS_MD"):
        fx.write_wav(tmp_path / "AudioWAV" / f"{stem}.wav", 16_000)
    with pytest.warns(UserWarning, match=r"left out 4 file\(s\) known to be broken.*1064_IEO_DIS_MD.wav"):
        ds = corpora.load("cremad", tmp_path)
    assert sorted(ds["id"]) == sorted(CREMAD_EXPECTED)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kept = corpora.load("cremad", tmp_path, include_known_bad=True)
    assert rows(kept)["cremad/1064_IEO_DIS_MD"]["emotion"] == "disgust"
    assert len(kept) == len(CREMAD_EXPECTED) + 4
    # only the exact stems are special: a sibling take of the same actor loads normally
    fx.write_wav(tmp_path / "AudioWAV" / "1076_MTI_ANG_XX.wav", 16_000)
    with pytest.warns(UserWarning, match="left out 4"):
        assert "cremad/1076_MTI_ANG_XX" in corpora.load("cremad", tmp_path)["id"]


# ----------------------------------------------------------------------------- RAVDESS

RAVDESS_EXPECTED = {  # id -> (speaker, gender, emotion, raw, statement)
    "03-01-01-01-01-01-01": ("01", "male", "neutral", "01", "Kids are talking by the door"),
    "03-01-05-02-02-01-01": ("01", "male", "angry", "05", "Dogs are sitting by the door"),
    "03-01-08-01-01-02-01": ("01", "male", "surprise", "08", "Kids are talking by the door"),
    "03-01-02-01-02-02-02": ("02", "female", "calm", "02", "Dogs are sitting by the door"),
    "03-01-06-02-01-01-02": ("02", "female", "fear", "06", "Kids are talking by the door"),
    "03-01-07-01-02-01-02": ("02", "female", "disgust", "07", "Dogs are sitting by the door"),
    "03-01-03-02-01-01-24": ("24", "female", "happy", "03", "Kids are talking by the door"),
    "03-01-04-01-02-02-24": ("24", "female", "sad", "04", "Dogs are sitting by the door"),
}


def ravdess_table(prefix: str, extra: dict | None = None):
    table = {**RAVDESS_EXPECTED, **(extra or {})}
    return {f"ravdess/{k}": (f"ravdess/{s}", g, e, r, t, f"{prefix}Actor_{s}/{k}.wav")
            for k, (s, g, e, r, t) in table.items()}


@pytest.mark.parametrize("top", ["", "Audio_Speech_Actors_01-24"])
def test_ravdess_layouts(tmp_path, top):
    fx.ravdess(tmp_path, top=top)
    ds = corpora.load("ravdess", tmp_path)
    check_common(ds, "ravdess", tmp_path, 48_000, "en")
    expect(ds, ravdess_table(f"{top}/" if top else ""))


def test_ravdess_song_skipped_or_included(tmp_path):
    fx.ravdess(tmp_path, song=True)
    with pytest.warns(UserWarning, match="skipped 2 song file"):
        ds = corpora.load("ravdess", tmp_path)
    assert len(ds) == len(RAVDESS_EXPECTED)
    ds = corpora.load("ravdess", tmp_path, include_song=True)
    expect(ds, ravdess_table("", {
        "03-02-03-01-01-01-01": ("01", "male", "happy", "03", "Kids are talking by the door"),
        "03-02-04-02-02-02-24": ("24", "female", "sad", "04", "Dogs are sitting by the door")}))


def test_ravdess_kaggle_duplicate_copy(tmp_path):
    # Kaggle ships Actor_XX/ at the top level and again in audio_speech_actors_01-24/
    fx.ravdess(tmp_path)
    shutil.copytree(tmp_path, tmp_path.parent / f"{tmp_path.name}-copy")
    shutil.move(tmp_path.parent / f"{tmp_path.name}-copy", tmp_path / "audio_speech_actors_01-24")
    with pytest.warns(UserWarning, match="8 file\\(s\\) are identical copies"):
        ds = corpora.load("ravdess", tmp_path)
    expect(ds, ravdess_table(""))
    # a same-named file with different contents is a conflict, not a copy
    fx.write_wav(tmp_path / "audio_speech_actors_01-24" / "Actor_01" / "03-01-01-01-01-01-01.wav", 16_000)
    with pytest.raises(CorpusError, match="found twice with different contents"):
        corpora.load("ravdess", tmp_path)


def test_ravdess_errors(tmp_path):
    fx.ravdess(tmp_path)
    cases = [("01-01-05-01-01-01-01.wav", CorpusError, "modality 01 \\(full-AV video\\)"),
             ("02-01-05-01-01-01-01.wav", CorpusError, "modality 02 \\(video-only video\\)"),
             ("03-01-09-01-01-01-01.wav", UnknownLabelError, "unknown emotion code '09'"),
             ("03-01-05-03-01-01-01.wav", CorpusError, "intensity '03'"),
             ("03-01-05-01-01-01-25.wav", CorpusError, "actor '25'"),
             ("03_01_05_01_01_01_01.wav", CorpusError, "does not follow RAVDESS naming")]
    for name, err, msg in cases:
        bad = fx.write_wav(tmp_path / "Actor_01" / name, 48_000)
        with pytest.raises(err, match=msg) as e:
            corpora.load("ravdess", tmp_path)
        assert name in str(e.value)
        bad.unlink()


# ----------------------------------------------------------------------------- TESS

def tess_table(base: str, flat: bool):
    files = {  # id -> (speaker, emotion, raw, word, folder, file)
        "OAF_back_angry": ("OAF", "angry", "angry", "back", "OAF_angry", "OAF_back_angry.wav"),
        "OAF_back_fear": ("OAF", "fear", "fear", "back", "OAF_Fear", "OAF_back_fear.wav"),
        "OAF_bite_neutral": ("OAF", "neutral", "neutral", "bite", "OAF_neutral", "OA_bite_neutral.wav"),
        "OAF_dog_neutral": ("OAF", "neutral", "neutral", "dog", "OAF_neutral", "OAF_dog_neutral.wav"),
        "OAF_back_ps": ("OAF", "surprise", "ps", "back", "OAF_Pleasant_surprise", "OAF_back_ps.wav"),
        "YAF_chain_disgust": ("YAF", "disgust", "disgust", "chain", "YAF_disgust", "YAF_chain_disgust.wav"),
        "YAF_dog_happy": ("YAF", "happy", "happy", "dog", "YAF_happy", "YAF_dog_happy.wav"),
        "YAF_dog_ps": ("YAF", "surprise", "ps", "dog", "YAF_pleasant_surprised", "YAF_dog_ps.wav"),
        "YAF_young_sad": ("YAF", "sad", "sad", "young", "YAF_sad", "YAF_young_sad.wav"),
    }
    return {f"tess/{k}": (f"tess/{s}", "female", e, r, w, f"{base}{f if flat else d + '/' + f}")
            for k, (s, e, r, w, d, f) in files.items()}


@pytest.mark.parametrize("flat", [False, True])
def test_tess_layouts(tmp_path, flat):
    top = "TESS Toronto emotional speech set data"
    fx.tess(tmp_path, flat=flat, top=top)
    ds = corpora.load("tess", tmp_path)
    check_common(ds, "tess", tmp_path, 24_414, "en")
    expect(ds, tess_table(f"{top}/", flat))
    assert sorted(set(ds["speaker"])) == ["tess/OAF", "tess/YAF"]  # OA_ is not a third speaker


def test_tess_quirks_and_errors(tmp_path):
    fx.tess(tmp_path, top="")
    # a known-broken file of some copies is skipped with a warning, naming it
    (tmp_path / "YAF_angry").mkdir()
    (tmp_path / "YAF_angry" / "YAF_germ_angry.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.warns(UserWarning, match="YAF_germ_angry.wav"):
        ds = corpora.load("tess", tmp_path)
    assert "tess/YAF_germ_angry" not in ds["id"] and len(ds) == 9
    # ... while any other unreadable file is an error
    (tmp_path / "YAF_angry" / "YAF_bean_angry.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    from jaxser.audio import AudioError

    with pytest.raises(AudioError, match="YAF_bean_angry.wav: unreadable audio"):
        corpora.load("tess", tmp_path)
    shutil.rmtree(tmp_path / "YAF_angry")
    for name, err, msg in [("YAF_dog_bored.wav", UnknownLabelError, "unknown emotion code 'bored'"),
                           ("MAF_dog_sad.wav", CorpusError, "unknown speaker prefix 'MAF'"),
                           ("YAF_dog.wav", CorpusError, "does not follow TESS naming")]:
        bad = fx.write_wav(tmp_path / name, 24_414)
        with pytest.raises(err, match=msg) as e:
            corpora.load("tess", tmp_path)
        assert name in str(e.value)
        bad.unlink()


# ----------------------------------------------------------------------------- EmoDB

def test_emodb(tmp_path):
    fx.emodb(tmp_path)
    (tmp_path / "lablaut").mkdir()
    (tmp_path / "lablaut" / "03a01Fa.lab").write_text("not audio")
    ds = corpora.load("berlin", tmp_path)
    check_common(ds, "emodb", tmp_path, 16_000, "de")
    expect(ds, {f"emodb/{k}": (f"emodb/{s}", g, e, r, t, f"wav/{k}.wav") for k, (s, g, e, r, t) in {
        "03a01Fa": ("03", "male", "happy", "F", "a01"),
        "03b10Nc": ("03", "male", "neutral", "N", "b10"),
        "08a02Ab": ("08", "female", "fear", "A", "a02"),
        "10a04Wa": ("10", "male", "angry", "W", "a04"),
        "13b01Lb": ("13", "female", "boredom", "L", "b01"),
        "16b09Eb": ("16", "female", "disgust", "E", "b09"),
        "15a07Ta": ("15", "male", "sad", "T", "a07"),
    }.items()})
    for name, err, msg in [("03a01Xa.wav", UnknownLabelError, "unknown emotion code 'X'"),
                           ("04a01Fa.wav", CorpusError, "unknown speaker '04'"),
                           ("03a03Fa.wav", CorpusError, "unknown text code 'a03'"),
                           ("03-a01-F.wav", CorpusError, "does not follow EmoDB naming")]:
        bad = fx.write_wav(tmp_path / "wav" / name, 16_000)
        with pytest.raises(err, match=msg) as e:
            corpora.load("emodb", tmp_path)
        assert name in str(e.value)
        bad.unlink()


# ----------------------------------------------------------------------------- SAVEE

SAVEE_EXPECTED = {  # id -> (speaker, emotion, raw, tree path, flat path)
    "DC_a01": ("DC", "angry", "a"), "DC_n30": ("DC", "neutral", "n"), "DC_sa15": ("DC", "sad", "sa"),
    "JE_d03": ("JE", "disgust", "d"), "JE_su01": ("JE", "surprise", "su"), "JK_f02": ("JK", "fear", "f"),
    "KL_h07": ("KL", "happy", "h"),
}


@pytest.mark.parametrize("flat", [False, True])
def test_savee_layouts(tmp_path, flat):
    fx.savee(tmp_path, flat=flat)
    ds = corpora.load("savee", tmp_path)
    check_common(ds, "savee", tmp_path, 44_100, "en")

    def path(uid):
        spk, utt = uid.split("_")
        return f"ALL/{uid}.wav" if flat else f"AudioData/{spk}/{utt}.wav"
    expect(ds, {f"savee/{k}": (f"savee/{s}", "male", e, r, "", path(k)) for k, (s, e, r) in SAVEE_EXPECTED.items()})


def test_savee_both_layouts_and_errors(tmp_path):
    fx.savee(tmp_path, flat=False)
    for s, fs in fx.SAVEE_FILES.items():  # the flattened copy of the same files
        for f in fs:
            (tmp_path / "ALL").mkdir(exist_ok=True)
            shutil.copy(tmp_path / "AudioData" / s / f, tmp_path / "ALL" / f"{s}_{f}")
    with pytest.warns(UserWarning, match="identical copies"):
        ds = corpora.load("savee", tmp_path)
    assert len(ds) == len(SAVEE_EXPECTED)
    shutil.rmtree(tmp_path / "ALL")
    for rel, err, msg in [("AudioData/DC/x01.wav", UnknownLabelError, "unknown emotion code 'x'"),
                          ("AudioData/XY/a01.wav", CorpusError, "speaker folder 'XY'"),
                          ("ALL/AB_a01.wav", CorpusError, "speaker file name prefix 'AB'"),
                          ("AudioData/DC/a16.wav", CorpusError, "outside 01..15"),
                          ("AudioData/DC/angry1.wav", CorpusError, "does not follow SAVEE naming")]:
        bad = fx.write_wav(tmp_path / rel, 44_100)
        with pytest.raises(err, match=msg) as e:
            corpora.load("savee", tmp_path)
        assert Path(rel).name in str(e.value)
        bad.unlink()


# ----------------------------------------------------------------------------- EMOVO

EMOVO_EXPECTED = {
    "dis-f1-b1": ("f1", "female", "disgust", "dis", "b1"), "gio-f1-l4": ("f1", "female", "happy", "gio", "l4"),
    "neu-f3-n5": ("f3", "female", "neutral", "neu", "n5"), "pau-m1-d2": ("m1", "male", "fear", "pau", "d2"),
    "rab-m1-b3": ("m1", "male", "angry", "rab", "b3"), "sor-m3-l1": ("m3", "male", "surprise", "sor", "l1"),
    "tri-m3-n1": ("m3", "male", "sad", "tri", "n1"),
}


@pytest.mark.parametrize("flat", [False, True])
def test_emovo_layouts(tmp_path, flat):
    fx.emovo(tmp_path, flat=flat)
    ds = corpora.load("emovo", tmp_path)
    check_common(ds, "emovo", tmp_path, 48_000, "it")
    expect(ds, {f"emovo/{k}": (f"emovo/{s}", g, e, r, t, f"{k}.wav" if flat else f"EMOVO/{s}/{k}.wav")
                for k, (s, g, e, r, t) in EMOVO_EXPECTED.items()})


def test_emovo_errors(tmp_path):
    fx.emovo(tmp_path)
    for name, err, msg in [("ans-f1-b1.wav", UnknownLabelError, "unknown emotion code 'ans'"),
                           ("dis-x1-b1.wav", CorpusError, "unknown speaker 'x1'"),
                           ("dis-f1-b4.wav", CorpusError, "unknown sentence code 'b4'"),
                           ("dis_f1_b1.wav", CorpusError, "does not follow EMOVO naming")]:
        bad = fx.write_wav(tmp_path / "EMOVO" / "f1" / name, 48_000)
        with pytest.raises(err, match=msg) as e:
            corpora.load("emovo", tmp_path)
        assert name in str(e.value)
        bad.unlink()


# ----------------------------------------------------------------------------- shared behaviour

@pytest.mark.parametrize("name,builder", [("cremad", fx.cremad), ("ravdess", fx.ravdess), ("tess", fx.tess),
                                          ("emodb", fx.emodb), ("savee", fx.savee), ("emovo", fx.emovo)])
def test_hidden_and_macos_files_ignored_and_audio_decodes(tmp_path, name, builder):
    builder(tmp_path)
    (tmp_path / "__MACOSX").mkdir()
    (tmp_path / "__MACOSX" / "._junk.wav").write_bytes(b"\x00\x05\x16\x07")
    (tmp_path / "._other.wav").write_bytes(b"\x00\x05\x16\x07")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = corpora.load(name, tmp_path)
    from jaxser import audio

    wave = audio.load(ds[0]["audio"])
    assert wave.ndim == 1 and abs(wave.size - fx.frames(16_000)) <= 1


@pytest.mark.parametrize("name", ["cremad", "ravdess", "tess", "emodb", "savee", "emovo"])
def test_module_contract(tmp_path, name):
    mod = corpora.module(name)
    assert mod.NAME == name and len(mod.LANGUAGE) == 2
    assert set(mod.LABEL_MAP.values()) <= set(CANONICAL_EMOTIONS)
    with pytest.raises(CorpusError, match="does not exist"):
        corpora.load(name, tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no .wav files"):
        corpora.load(name, tmp_path / "empty")


# ----------------------------------------------------------------------------- manifest

@pytest.fixture()
def clips(tmp_path):
    d = tmp_path / "mycorpus"
    fx.write_tree(d, ["audio/s1/a.wav", "audio/s1/b.wav", "audio/s2/c.wav"], 22_050)
    outside = fx.write_wav(tmp_path / "elsewhere" / "d.wav", 22_050)
    return d, outside


def test_manifest_csv_relative_absolute_label_map(clips):
    d, outside = clips
    (d / "manifest.csv").write_text(
        "path,speaker,emotion,gender,language,text\n"
        "audio/s1/a.wav,s1,ang,F,ur,hello\n"
        "audio/s1/b.wav,s1,hap,female,,\n"
        f"audio/s2/c.wav,s2,neutral,m,ur,\n"
        f"{outside},s3,sad,,ur,bye\n")
    ds = corpora.load("manifest", d, label_map={"ang": "angry", "hap": "happy"})
    got = rows(ds)
    assert set(got) == {"mycorpus/audio/s1/a", "mycorpus/audio/s1/b", "mycorpus/audio/s2/c", "mycorpus/d"}
    a = got["mycorpus/audio/s1/a"]
    assert (a["corpus"], a["speaker"], a["gender"], a["language"], a["emotion"], a["raw_label"], a["text"],
            a["path"]) == ("mycorpus", "mycorpus/s1", "female", "ur", "angry", "ang", "hello", "audio/s1/a.wav")
    assert a["duration"] == pytest.approx(fx.frames(22_050) / 22_050, abs=1e-6)
    b = got["mycorpus/audio/s1/b"]
    assert (b["language"], b["emotion"], b["text"]) == ("und", "happy", "")
    assert got["mycorpus/audio/s2/c"]["gender"] == "male"
    dd = got["mycorpus/d"]
    assert (dd["gender"], dd["emotion"], dd["audio"], dd["path"]) == ("unknown", "sad", str(outside.resolve()),
                                                                       str(outside.resolve()))
    # the file itself and an explicit corpus name work too, through the registry
    ds = corpora.load("manifest", d / "manifest.csv", name="urdu-mine", label_map={"ang": "angry", "hap": "happy"})
    assert ds[0]["id"].startswith("urdu-mine/") and ds[0]["speaker"].startswith("urdu-mine/")


def test_manifest_jsonl(clips):
    d, outside = clips
    lines = [{"path": "audio/s1/a.wav", "speaker": "s1", "emotion": "angry", "id": "utt1", "raw_label": "A"},
             {"path": str(outside), "speaker": "s9", "emotion": "surprise", "gender": "male", "text": "oh"}]
    (d / "data.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    ds = corpora.load("manifest", d / "data.jsonl", language="en")
    got = rows(ds)
    assert set(got) == {"data/utt1", "data/d"}
    assert (got["data/utt1"]["raw_label"], got["data/utt1"]["emotion"], got["data/utt1"]["language"]) == \
           ("A", "angry", "en")
    assert (got["data/d"]["speaker"], got["data/d"]["gender"], got["data/d"]["text"]) == ("data/s9", "male", "oh")


def test_manifest_errors(clips):
    d, _ = clips
    m = d / "manifest.csv"
    m.write_text("path,emotion\naudio/s1/a.wav,angry\n")
    with pytest.raises(CorpusError, match=r"manifest.csv lacks required column\(s\) \['speaker'\]"):
        corpora.load("manifest", d)
    m.write_text("path,speaker,emotion\naudio/s1/a.wav,s1,angry\naudio/s1/b.wav,s1,joy\n")
    with pytest.raises(UnknownLabelError, match="unknown emotion code 'joy' in .*manifest.csv line 3"):
        corpora.load("manifest", d)
    with pytest.raises(CorpusError, match="label_map sends 'joy' to 'glee'"):
        corpora.load("manifest", d, label_map={"joy": "glee"})
    m.write_text("path,speaker,emotion\naudio/s1/a.wav,,angry\n")
    with pytest.raises(CorpusError, match=r"manifest.csv line 2: missing or empty required field\(s\) \['speaker'\]"):
        corpora.load("manifest", d)
    m.write_text("path,speaker,emotion\naudio/s1/zzz.wav,s1,angry\n")
    with pytest.raises(CorpusError, match="line 2: audio file .*zzz.wav does not exist"):
        corpora.load("manifest", d)
    m.write_text("path,speaker,emotion,gender\naudio/s1/a.wav,s1,angry,x\n")
    with pytest.raises(CorpusError, match="line 2: gender 'x'"):
        corpora.load("manifest", d)
    m.unlink()
    j = d / "manifest.jsonl"
    j.write_text('{"path": "audio/s1/a.wav", "speaker": "s1", "emotion": "angry"}\n{"path": "audio/s1/b.wav"}\n')
    with pytest.raises(CorpusError, match=r"manifest.jsonl line 2: missing or empty required field\(s\) "
                                          r"\['speaker', 'emotion'\]"):
        corpora.load("manifest", d)
    j.write_text("{not json\n")
    with pytest.raises(CorpusError, match="manifest.jsonl line 1: invalid JSON"):
        corpora.load("manifest", d)
    j.unlink()
    with pytest.raises(CorpusError, match="no manifest.csv or manifest.jsonl"):
        corpora.load("manifest", d)


@pytest.mark.parametrize("name", ["manifest.csv", "manifest.jsonl"])
def test_manifest_bytes_that_are_not_utf8_name_file_line_and_offset(clips, name):
    d, _ = clips
    rows = (["path,speaker,emotion", "audio/s1/a.wav,s1,angry", "audio/s1/b.wav,Jos\xe9,sad"] if name.endswith("csv")
            else ['{"path": "audio/s1/a.wav", "speaker": "s1", "emotion": "angry"}',
                  '{"path": "audio/s1/b.wav", "speaker": "Jos\xe9", "emotion": "sad"}'])
    data = "\n".join(rows).encode("latin-1") + b"\n"  # a Latin-1 export: "Jos\xe9" is one byte 0xe9
    (d / name).write_bytes(data)
    offset = data.index(b"\xe9")
    line = data[:offset].count(b"\n") + 1
    for skip in (False, True):
        with pytest.raises(CorpusError, match=rf"{name} line {line} \(byte offset {offset}, .*b'\\xe9'.* are not "
                                              r"UTF-8; accepted encodings: UTF-8, with or without a byte-order mark"):
            corpora.load("manifest", d, skip_errors=skip)
    (d / name).write_bytes(b"\xef\xbb\xbf" + data.replace(b"\xe9", "\xe9".encode()))  # UTF-8 with a BOM loads
    assert sorted(corpora.load("manifest", d)["speaker"]) == ["mycorpus/Jos\xe9", "mycorpus/s1"]


@settings(max_examples=40, deadline=None)
@given(lines=st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x0b\x0c\x1c\x1d"
                                                                    "\x1e\x85\u2028\u2029"), max_size=12),
                      min_size=1, max_size=6),
       where=st.data(), bad=st.sampled_from([b"\xff", b"\xe9", b"\xc3(", b"\x80"]), bom=st.booleans())
def test_manifest_decoding_errors_point_at_the_first_bad_byte(tmp_path_factory, lines, where, bad, bom):
    import codecs

    from jaxser.corpora.manifest import read_text

    i = where.draw(st.integers(0, len(lines) - 1))
    encoded = [ln.encode() for ln in lines]
    at = where.draw(st.integers(0, len(encoded[i])))
    while at < len(encoded[i]) and (encoded[i][at] & 0xC0) == 0x80:
        at -= 1  # between two characters, not inside one
    encoded[i] = encoded[i][:at] + bad + encoded[i][at:]
    prefix = codecs.BOM_UTF8 if bom else b""
    data = prefix + b"\n".join(encoded)
    f = tmp_path_factory.mktemp("m") / "manifest.csv"
    f.write_bytes(data)
    offset = len(prefix) + sum(len(e) + 1 for e in encoded[:i]) + at
    at += len(prefix) if i == 0 else 0
    with pytest.raises(CorpusError, match=rf"{f} line {i + 1} \(byte offset {offset}, column byte {at}\)"):
        read_text(f)


def test_manifest_duplicate_ids_name_the_file_and_both_lines(clips):
    d, _ = clips
    (d / "manifest.csv").write_text("path,speaker,emotion,id\n"
                                    "audio/s1/a.wav,s1,angry,u1\n"
                                    "audio/s2/c.wav,s2,sad,u2\n"
                                    "audio/s1/b.wav,s1,sad,u1\n")
    with pytest.raises(CorpusError, match=r"manifest.csv lines 2 and 4: both give the utterance id 'u1'"):
        corpora.load("manifest", d)
    (d / "manifest.csv").write_text("path,speaker,emotion\naudio/s1/a.wav,s1,angry\naudio/s1/a.wav,s2,sad\n")
    with pytest.raises(CorpusError, match=r"manifest.csv lines 2 and 3: both give the utterance id 'audio/s1/a'"):
        corpora.load("manifest", d)


# ----------------------------------------------------------------------------- identical recordings

def test_content_digests_find_one_recording_under_two_ids(clips):
    """A manifest listing one file twice (two ids, two speakers) loads; content_digests is how
    the protocol sees that both rows are one recording."""
    import hashlib

    d, _ = clips
    (d / "manifest.csv").write_text("path,speaker,emotion,id\n"
                                    "audio/s1/a.wav,s1,angry,first\n"
                                    "audio/s2/c.wav,s2,sad,other\n"
                                    "audio/s1/a.wav,s3,angry,again\n")
    ds = corpora.load("manifest", d)
    dig = corpora.content_digests(ds)
    by_id = dict(zip(ds["id"], dig))
    assert len(dig) == len(ds) == 3
    assert by_id["mycorpus/first"] == by_id["mycorpus/again"] == \
        hashlib.sha256((d / "audio/s1/a.wav").read_bytes()).hexdigest()
    assert by_id["mycorpus/other"] == hashlib.sha256((d / "audio/s2/c.wav").read_bytes()).hexdigest()
    assert corpora.duplicate_groups(dig) == [[ds["id"].index("mycorpus/again"), ds["id"].index("mycorpus/first")]]
    # an unreadable file gives "" and matches nothing
    (d / "audio/s2/c.wav").unlink()
    dig = corpora.content_digests(ds)
    assert dig[ds["id"].index("mycorpus/other")] == ""
    assert corpora.duplicate_groups(["", "", "x"]) == []


def test_file_digest_is_the_io_digest():
    from jaxser import io
    from jaxser.corpora import schema

    assert schema.file_digest is io.sha256_file
