"""Loaders of nine EmoBox corpora -- ASED, ASVP-ESD, CASIA, EmoV-DB, JL-Corpus, MESD, Oréau,
Polish, TurEV-DB: tiny trees with real file names of each release (typed here), loaded through
`jaxser.corpora.load` as a user would; and, when an EmoBox checkout is at hand, every file of
EmoBox's list for the corpus (names only) plus a sample as real WAVs, checked file by file and
label by label against EmoBox."""
from __future__ import annotations

import unicodedata
import warnings
import zlib
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from jaxser import corpora
from jaxser.corpora import CorpusError, UnknownLabelError
from jaxser.corpora.schema import EMOTIONS
from tests.helpers import emobox_lists as eb
from tests.helpers.corpus_release_trees import by_utt, tone

NINE = ("ased", "asvpesd", "casia", "emovdb", "jlcorpus", "mesd", "oreau", "polish", "turevdb")


def make(root: Path, rel_paths, sr: int) -> Path:
    """Short tones at the release paths; the pitch follows the whole path, so files that share
    a name in different folders (CASIA's 201.wav) are still different recordings."""
    for rel in rel_paths:
        tone(root / rel, sr, secs=0.06, freq=100.0 + zlib.crc32(rel.encode()) % 100_000 / 200)
    return root


def test_registry_and_label_maps():
    for name in NINE:
        mod = corpora.module(name)
        assert mod.NAME == name and name in corpora.available()
        assert set(mod.LABEL_MAP.values()) <= set(EMOTIONS)
        assert {"utterances", "hours", "speakers", "licence", "source"} <= set(mod.CARD)
    assert corpora.canonical_name("ASVP-ESD") == "asvpesd" and corpora.canonical_name("Oréau") == "oreau"


# ---------------------------------------------------------------- Polish

POLISH = ("m1.a_nie_2.wav", "m3.s_trzymaj_5.wav", "m2.n_podaj_2.wav", "m5.s_stop_5.wav")


def test_polish_fields(tmp_path):
    rows = by_utt(corpora.load("polish", make(tmp_path / "POLISH", POLISH, 44_100)))
    assert len(rows) == 4
    r = rows["m3.s_trzymaj_5"]
    assert (r["speaker"], r["gender"], r["emotion"], r["raw_label"], r["text"], r["repetition"], r["language"]) == (
        "polish/m3", "male", "fear", "s", "trzymaj", "5", "pl")
    assert rows["m1.a_nie_2"]["emotion"] == "angry" and rows["m2.n_podaj_2"]["emotion"] == "neutral"


def test_polish_errors(tmp_path):
    root = make(tmp_path / "p1", POLISH + ("m1.x_nie_1.wav",), 44_100)
    with pytest.raises(UnknownLabelError, match=r"'x' in .*m1.x_nie_1.wav"):
        corpora.load("polish", root)
    root = make(tmp_path / "p2", POLISH + ("m1.a_dom_1.wav",), 44_100)
    with pytest.raises(CorpusError, match="word 'dom' is not one of"):
        corpora.load("polish", root)
    errors: list = []
    recs = corpora.module("polish").records(make(tmp_path / "p3", POLISH + ("m1_a_nie_1.wav",), 44_100), errors=errors)
    assert len(recs) == 4 and len(errors) == 1 and "m1_a_nie_1.wav" in str(errors[0])


# ---------------------------------------------------------------- CASIA

CASIA = ("CASIA/liuchanhg/angry/201.wav", "CASIA/wangzhe/neutral/239.wav", "CASIA/ZhaoZuoxiang/surprise/250.wav",
         "CASIA/zhaoquanyin/fear/201.wav", "CASIA/wangzhe/happy/239.wav", "CASIA/liuchanhg/sad/230.wav")


def test_casia_fields(tmp_path):
    rows = by_utt(corpora.load("casia", make(tmp_path, CASIA, 16_000)))
    assert len(rows) == 6
    r = rows["liuchang_angry_201"]
    assert (r["speaker"], r["gender"], r["emotion"], r["raw_label"], r["text"], r["language"], r["path"]) == (
        "casia/liuchang", "female", "angry", "angry", "201", "zh", "CASIA/liuchanhg/angry/201.wav")
    assert (rows["zhaozuoxiang_surprise_250"]["speaker"], rows["zhaozuoxiang_surprise_250"]["gender"]) == (
        "casia/zhaozuoxiang", "male")
    assert rows["wangzhe_neutral_239"]["text"] == rows["wangzhe_happy_239"]["text"] == "239"


def test_casia_errors(tmp_path):
    with pytest.raises(UnknownLabelError, match=r"'disgust' in .*disgust/201.wav"):
        corpora.load("casia", make(tmp_path / "c1", CASIA + ("wangzhe/disgust/201.wav",), 16_000))
    with pytest.raises(CorpusError, match="not <speaker>/<emotion>/<sentence number>.wav"):
        corpora.load("casia", make(tmp_path / "c2", CASIA + ("lisi/angry/201.wav",), 16_000))
    with pytest.raises(CorpusError, match="not <speaker>/<emotion>/<sentence number>.wav"):
        corpora.load("casia", make(tmp_path / "c3", CASIA + ("wangzhe/angry/201-angry.wav",), 16_000))


# ---------------------------------------------------------------- TurEV-DB

TUREV = ("Sound Source/Calm/1984_sk_eger.wav", "Sound Source/Angry/1157_kz_beste.wav",
         "Sound Source/Happy/1358_mt_nicin.wav", "Sound Source/Sad/7895_hl_ogul1.wav",
         "Sound Source/Sad/1234_hl_kulac.wav")
#: a filtered copy the repository also holds: not an utterance of the corpus
TUREV_COPY = "Model Output for Test Data/testEmotions500HighPass/sound/Angry/1157_kz_beste.wav"


def test_turevdb_fields_and_filtered_copies(tmp_path):
    root = make(tmp_path / "TurEV-DB", TUREV + (TUREV_COPY,), 44_100)
    rows = by_utt(corpora.load("turevdb", root))
    assert set(rows) == {Path(p).stem for p in TUREV}  # the filtered copy is not read
    r = rows["1984_sk_eger"]
    assert (r["speaker"], r["gender"], r["emotion"], r["raw_label"], r["text"], r["language"]) == (
        "turevdb/1984", "unknown", "calm", "sk", "eger", "tr")
    assert rows["7895_hl_ogul1"]["emotion"] == "sad" and rows["1157_kz_beste"]["path"] == TUREV[1]
    # pointed at Sound Source itself, the emotion folders are read directly
    assert len(corpora.load("turevdb", root / "Sound Source")) == 5


def test_turevdb_errors(tmp_path):
    with pytest.raises(UnknownLabelError, match=r"'xx' in .*1984_xx_eger.wav"):
        corpora.load("turevdb", make(tmp_path / "t1", TUREV + ("Sound Source/Calm/1984_xx_eger.wav",), 44_100))
    with pytest.raises(CorpusError, match="in folder 'Happy' but its name says emotion 'kz'"):
        corpora.load("turevdb", make(tmp_path / "t2", TUREV + ("Sound Source/Happy/1984_kz_eger.wav",), 44_100))


# ---------------------------------------------------------------- MESD

MESD_DIR = "Mexican Emotional Speech Database (MESD)"
MESD = tuple(f"{MESD_DIR}/{n}" for n in ("Anger_F_A_tarde.wav", "Sadness_M_B_amenazado.wav", "Fear_M_A_basta_ya.wav",
                                         "Happiness_C_B_oasis.wav", "Neutral_F_A_si.wav", "Disgust_C_A_de_nada.wav"))


def test_mesd_fields(tmp_path):
    rows = by_utt(corpora.load("mesd", make(tmp_path, MESD, 48_000)))
    assert len(rows) == 6
    r = rows["Fear_M_A_basta_ya"]
    assert (r["speaker"], r["gender"], r["emotion"], r["raw_label"], r["text"], r["voice"], r["word_corpus"]) == (
        "mesd/M", "male", "fear", "Fear", "basta ya", "adult male", "A")
    c = rows["Happiness_C_B_oasis"]
    assert (c["speaker"], c["gender"], c["voice"], c["emotion"], c["language"]) == (
        "mesd/C", "unknown", "child", "happy", "es-MX")
    assert rows["Anger_F_A_tarde"]["gender"] == "female"


def test_mesd_errors(tmp_path):
    with pytest.raises(UnknownLabelError, match=r"'Joy' in .*Joy_F_A_tarde.wav"):
        corpora.load("mesd", make(tmp_path / "m1", MESD + (f"{MESD_DIR}/Joy_F_A_tarde.wav",), 48_000))
    with pytest.raises(CorpusError, match="voice 'X' is not F"):
        corpora.load("mesd", make(tmp_path / "m2", MESD + (f"{MESD_DIR}/Anger_X_A_tarde.wav",), 48_000))


# ---------------------------------------------------------------- JL-Corpus

JL_DIR = "Raw JL corpus (unchecked and unannotated)/JL(wav+txt)"
JL = tuple(f"{JL_DIR}/{n}" for n in ("male2_concerned_6b_1.wav", "female1_apologetic_15b_2.wav",
                                     "male2_angry_12a_2.wav", "female2_excited_3a_1.wav", "male1_anxious_10a_1.wav",
                                     "female2_encouraging_7a_2.wav", "male1_assertive_1b_1.wav"))


def test_jlcorpus_fields_and_copies(tmp_path):
    root = make(tmp_path / "archive", JL, 44_100)
    (root / JL_DIR / "male2_concerned_6b_1.txt").write_text("a transcript, not audio\n")
    # the upload's partial lower-case copy (identical bytes) and perception-test material
    copy = root / "raw jl corpus (unchecked and unannotated)" / "JL(wav+txt)" / "male2_angry_12a_2.wav"
    copy.parent.mkdir(parents=True)
    copy.write_bytes((root / JL[2]).read_bytes())
    tone(root / "Perception test" / "Set1" / "clip 01.wav", 44_100)
    with pytest.warns(UserWarning, match="1 file.*identical copies"):
        rows = by_utt(corpora.load("jlcorpus", root))
    assert len(rows) == 7
    r = rows["male2_concerned_6b_1"]
    assert (r["speaker"], r["gender"], r["emotion"], r["raw_label"], r["text"], r["take"], r["language"]) == (
        "jlcorpus/male2", "male", "concerned", "concerned", "6b", "1", "en-NZ")
    assert rows["female2_excited_3a_1"]["emotion"] == "excited"  # a class of its own, not happy
    assert {rows[k]["emotion"] for k in rows} == {"concerned", "apologetic", "angry", "excited", "anxious",
                                                  "encouraging", "assertive"}
    assert rows["female1_apologetic_15b_2"]["gender"] == "female"


def test_jlcorpus_errors(tmp_path):
    with pytest.raises(UnknownLabelError, match=r"'bored' in .*male1_bored_1a_1.wav"):
        corpora.load("jlcorpus", make(tmp_path / "j1", JL + (f"{JL_DIR}/male1_bored_1a_1.wav",), 44_100))
    with pytest.raises(CorpusError, match="does not follow JL-Corpus naming"):
        corpora.load("jlcorpus", make(tmp_path / "j2", JL + (f"{JL_DIR}/male3_angry_1a.wav",), 44_100))


# ---------------------------------------------------------------- ASED

ASED = ("ASED_V1/05Angry/a5-02-01-01-33.wav", "ASED_V1/01Neutral/n1-07-02-02-06.wav",
        "ASED_V1/03Happy/h3-04-02-02-20.wav", "ASED_V1/02Fearful/f2-07-02-01-27.wav",
        "ASED_V1/04Sad/s4-06-02-02-39.wav", "ASED_V1/04Sad/S4-04-02-01-29.wav",
        # speaker 25: one file says male among files that say female (as in the release)
        "ASED_V1/04Sad/s4-01-01-01-25.wav", "ASED_V1/05Angry/a5-01-01-01-25.wav", "ASED_V1/03Happy/h3-02-01-02-25.wav")


def test_ased_fields_and_quirks(tmp_path):
    with pytest.warns(UserWarning, match=r"1 file\(s\) carry a gender field unlike .*h3-02-01-02-25.wav"):
        rows = by_utt(corpora.load("ased", make(tmp_path, ASED, 16_000)))
    assert len(rows) == 9
    r = rows["a5-02-01-01-33"]
    assert (r["speaker"], r["gender"], r["emotion"], r["raw_label"], r["text"], r["repetition"], r["language"]) == (
        "ased/33", "female", "angry", "a", "02", "01", "am")
    upper = rows["S4-04-02-01-29"]  # the release's one upper-case letter
    assert (upper["emotion"], upper["raw_label"]) == ("sad", "S")
    assert {rows[k]["gender"] for k in rows if k.endswith("-25")} == {"female"}
    assert rows["h3-02-01-02-25"]["gender_field"] == "02"
    assert (rows["n1-07-02-02-06"]["gender"], rows["f2-07-02-01-27"]["emotion"]) == ("male", "fear")


@settings(max_examples=80, deadline=None)
@given(st.sampled_from("nfhsa"), st.booleans(), st.integers(1, 7), st.integers(1, 2), st.integers(1, 2),
       st.integers(1, 65))
def test_ased_names_parse_back_to_their_fields(letter, upper, sent, rep, gender, spk):
    """Any well-formed ASED name in its emotion folder gives back its fields; the letter's case
    changes only `raw_label`."""
    mod = corpora.module("ased")
    num = mod.FOLDER_NUMBERS[letter]
    folder = next(f for f, c in mod.FOLDERS.items() if c == letter)
    raw = letter.upper() if upper else letter
    r = mod.parse(Path("ASED_V1") / folder / f"{raw}{num}-{sent:02d}-{rep:02d}-{gender:02d}-{spk:02d}.wav")
    assert (r["emotion"], r["raw_label"], r["text"], r["repetition"], r["speaker"]) == (
        mod.LABEL_MAP[letter], raw, f"{sent:02d}", f"{rep:02d}", f"{spk:02d}")
    assert r["gender"] == ("female" if gender == 1 else "male")


def test_ased_errors(tmp_path):
    with pytest.raises(UnknownLabelError, match=r"'x' in .*x5-01-01-01-01.wav"):
        corpora.load("ased", make(tmp_path / "a1", ASED[:5] + ("ASED_V1/05Angry/x5-01-01-01-01.wav",), 16_000))
    with pytest.raises(CorpusError, match="in folder '03Happy' but its name says emotion 'a'"):
        corpora.load("ased", make(tmp_path / "a2", ASED[:5] + ("ASED_V1/03Happy/a5-01-01-01-01.wav",), 16_000))
    with pytest.raises(CorpusError, match="goes with folder number 5, not 3"):
        corpora.load("ased", make(tmp_path / "a3", ASED[:5] + ("ASED_V1/05Angry/a3-01-01-01-01.wav",), 16_000))


# ---------------------------------------------------------------- Oréau

OREAU_V2 = unicodedata.normalize("NFD", "OréauFR_02")  # as the release writes it: e + U+0301
OREAU = tuple(f"{OREAU_V2}/{p}" for p in ("f/sessj/10a02Ja.wav", "m/sessp/24a02Pa.wav", "m/sessc/24a02Ca.wav",
                                          "f/sesss/13a06Sa.wav", "m/sessn/30a09Na.wav", "m/sesst/18a07Ta.wav",
                                          "m/sessd/31a02Da.wav"))


def test_oreau_fields_with_the_decomposed_accent(tmp_path):
    assert OREAU_V2 != "OréauFR_02" and unicodedata.normalize("NFC", OREAU_V2) == "OréauFR_02"
    rows = by_utt(corpora.load("oreau", make(tmp_path, OREAU, 44_100)))
    assert len(rows) == 7
    r = rows["10a02Ja"]
    assert (r["speaker"], r["gender"], r["emotion"], r["raw_label"], r["text"], r["release"], r["language"]) == (
        "oreau/10", "female", "happy", "J", "a02", "2", "fr")
    assert (rows["24a02Pa"]["gender"], rows["24a02Pa"]["emotion"], rows["31a02Da"]["emotion"]) == ("male", "fear",
                                                                                                   "disgust")
    assert rows["24a02Ca"]["speaker"] == rows["24a02Pa"]["speaker"]


@pytest.mark.parametrize("form", ["NFC", "NFD"])
def test_oreau_versions_in_either_normal_form(tmp_path, form):
    v1 = unicodedata.normalize(form, "OréauFR_01")
    root = make(tmp_path, OREAU + (f"{v1}/f/sessj/10a02Ja.wav", f"{v1}/m/sessc/24a03Ca.wav"), 44_100)
    with pytest.raises(CorpusError, match="holds Oréau versions 1, 2.*pass version=1 or version=2"):
        corpora.load("oreau", root)
    assert len(corpora.load("oreau", root, version=2)) == 7
    one = by_utt(corpora.load("oreau", root, version=1))
    assert set(one) == {"10a02Ja", "24a03Ca"} and one["10a02Ja"]["release"] == "1"
    with pytest.raises(CorpusError, match="no OréauFR_03 folder"):
        corpora.load("oreau", root, version=3)


def test_oreau_errors(tmp_path):
    with pytest.raises(UnknownLabelError, match=r"'X' in .*10a02Xa.wav"):
        corpora.load("oreau", make(tmp_path / "o1", OREAU + (f"{OREAU_V2}/f/sessj/10a02Xa.wav",), 44_100))
    with pytest.raises(CorpusError, match="in folder 'sessj' but its name says emotion 'C'"):
        corpora.load("oreau", make(tmp_path / "o2", OREAU + (f"{OREAU_V2}/f/sessj/10a02Ca.wav",), 44_100))


# ---------------------------------------------------------------- EmoV-DB

EMOV = ("jenie_Amused/amused_57-84_0057.wav", "sam_Sleepy/sleepiness_367-392_0366.wav",
        "bea_Angry/anger_169-196_0165.wav", "bea_Disgusted/Disgust_113-140_0120.wav",
        "josh_Sleepy/sleepiness_113_140_0113.wav", "josh_Neutral/neutral_29-56_0037.wav")


def test_emovdb_fields_and_name_quirks(tmp_path):
    rows = by_utt(corpora.load("emovdb", make(tmp_path / "EmoV-DB", EMOV, 16_000)))
    assert len(rows) == 6
    r = rows["jenie_amused_0057"]
    assert (r["speaker"], r["gender"], r["emotion"], r["raw_label"], r["text"], r["language"]) == (
        "emovdb/jenie", "female", "amused", "amused", "0057", "en")
    assert (rows["sam_sleepiness_0366"]["emotion"], rows["sam_sleepiness_0366"]["gender"]) == ("sleepy", "male")
    assert rows["bea_disgust_0120"]["raw_label"] == "Disgust" and rows["bea_disgust_0120"]["emotion"] == "disgust"
    assert rows["josh_sleepiness_0113"]["text"] == "0113"  # `_` inside the range
    assert rows["bea_anger_0165"]["emotion"] == "angry"  # number outside its range: accepted


def test_emovdb_sorted_by_speaker_then_style(tmp_path):
    rows = by_utt(corpora.load("emovdb", make(tmp_path, ("EmoV-DB_sorted/bea/Amused/amused_1-15_0001.wav",
                                                         "EmoV-DB_sorted/sam/Angry/anger_1-28_0011.wav"), 16_000)))
    assert (rows["bea_amused_0001"]["speaker"], rows["sam_anger_0011"]["emotion"]) == ("emovdb/bea", "angry")


def test_emovdb_errors(tmp_path):
    with pytest.raises(UnknownLabelError, match=r"'happy' in .*happy_1-28_0001.wav"):
        corpora.load("emovdb", make(tmp_path / "e1", EMOV + ("sam_Amused/happy_1-28_0001.wav",), 16_000))
    with pytest.raises(CorpusError, match="in folder 'sam_Amused' but its name says style 'anger'"):
        corpora.load("emovdb", make(tmp_path / "e2", EMOV + ("sam_Amused/anger_1-28_0001.wav",), 16_000))
    with pytest.raises(CorpusError, match="not in a <speaker>_<Style> folder of a known speaker"):
        corpora.load("emovdb", make(tmp_path / "e3", EMOV + ("anna_Amused/amused_1-28_0001.wav",), 16_000))


# ---------------------------------------------------------------- ASVP-ESD

ASVP = ("ASVP-ESD-Update/Audio/actor_36/03-01-09-01-06-36-02-02-01-39.wav",
        "ASVP-ESD-Update/Audio/actor_16/03-02-04-01-02-16-03-03-01-34.wav",
        "ASVP-ESD-Update/Audio/actor_119/03-02-07-01-20-110-02-02-17.wav",  # folder and actor field disagree
        "ASVP-ESD-Update/Audio/actor_/03-02-13-01-04-90-02-02-02-13.wav",   # folder without a number
        "ASVP-ESD-Update/Audio/actor_51/03-01-05-01-01-51-02-02-04-15.wav",
        "ASVP-ESD-Update/Bonus/actor_200/03-01-17-01-02-200-05-02-01-12.wav",  # the one code 17
        "ASVP-ESD-Update/Audio/actor_21/03-02-04-01-21-102-02-01-00-14-18.wav",
        "ASVP-ESD-Update/Audio/actor_9/03-01-12-01-07-09-02-01-01-14 -01.wav")  # a field with a trailing space


def test_asvpesd_fields_and_quirks(tmp_path):
    root = make(tmp_path, ASVP, 16_000)
    left_out = Counter()
    default = by_utt(corpora.load("asvpesd", root, excluded=left_out))
    assert len(default) == 7 and left_out == {"17": 1}  # the undocumented code 17: left out, counted
    rows = by_utt(corpora.load("asvpesd", root, include_unknown=True))
    assert len(rows) == 8
    r = rows["03-01-09-01-06-36-02-02-01-39"]
    assert (r["speaker"], r["gender"], r["emotion"], r["raw_label"], r["vocal_channel"], r["age"], r["language"]) == (
        "asvpesd/36", "male", "excited", "09", "speech", "20-64", "und")
    nonspeech = rows["03-02-04-01-02-16-03-03-01-34"]
    assert (nonspeech["vocal_channel"], nonspeech["emotion"], nonspeech["age"]) == ("non-speech", "sad", "under 20")
    assert rows["03-02-07-01-20-110-02-02-17"]["speaker"] == "asvpesd/110"  # the name, not the folder
    assert rows["03-02-13-01-04-90-02-02-02-13"]["emotion"] == "breath"
    assert rows["03-01-17-01-02-200-05-02-01-12"]["emotion"] == "unknown"
    assert rows["03-02-04-01-21-102-02-01-00-14-18"]["speaker"] == "asvpesd/102"
    odd = rows["03-01-12-01-07-09-02-01-01-14 -01"]
    assert (odd["emotion"], odd["speaker"], odd["gender"]) == ("disappointment, disapproval", "asvpesd/9", "female")


def test_asvpesd_errors(tmp_path):
    with pytest.raises(UnknownLabelError, match=r"'14' in .*03-01-14-01-01-51-02-02-04-15.wav"):
        corpora.load("asvpesd", make(tmp_path / "v1", ASVP[:2] + ("Audio/actor_51/03-01-14-01-01-51-02-02-04-15.wav",),
                                     16_000))
    with pytest.raises(CorpusError, match="modality '01' is not 03"):
        corpora.load("asvpesd", make(tmp_path / "v2", ASVP[:2] + ("Audio/actor_51/01-01-05-01-01-51-02-02-04-15.wav",),
                                     16_000))
    with pytest.raises(CorpusError, match="8 to 12 numeric fields"):
        corpora.load("asvpesd", make(tmp_path / "v3", ASVP[:2] + ("Audio/actor_51/03-01-05-01.wav",), 16_000))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 99), min_size=8, max_size=12),
       st.sampled_from(sorted(corpora.module("asvpesd").LABEL_MAP)), st.sampled_from(["01", "02"]))
def test_asvpesd_any_field_count_parses_to_its_actor(nums, code, channel):
    """Whatever the trailing fields, emotion, channel and actor come from fields 3, 2 and 6."""
    mod = corpora.module("asvpesd")
    fields = ["03", channel, code] + [f"{n:02d}" for n in nums[3:]]
    r = mod.parse(Path("Audio") / "actor_1" / ("-".join(fields) + ".wav"))
    assert r["emotion"] == mod.LABEL_MAP[code] and r["raw_label"] == code
    assert r["speaker"] == str(int(fields[5])) and r["vocal_channel"] == mod.CHANNELS[channel]
    assert r["gender"] == ("female" if int(fields[5]) % 2 else "male")


# ---------------------------------------------------------------- against EmoBox's lists

#: Options that load a corpus exactly as EmoBox lists it (its deliberate differences undone).
EMOBOX_OPTIONS = {"asvpesd": {"include_unknown": True}}
#: corpus -> (files per emotion code in the sampled tree, quirks that must be in it)
EMOBOX_SAMPLE = {
    "ased": (4, ("04Sad/S4-04-02-01-29.wav",)),
    "asvpesd": (2, ("Bonus/actor_200/03-01-17-01-02-200-05-02-01-12.wav", "actor_119/03-02-07-01-20-110-02-02-17.wav")),
    "casia": (3, ()),
    "emovdb": (4, ("josh_Sleepy/sleepiness_113_140_0113.wav", "bea_Angry/anger_169-196_0165.wav")),
    "jlcorpus": (3, ()),
    "mesd": (4, ("Fear_M_A_basta_ya.wav",)),
    "oreau": (4, ()),
    "polish": (6, ()),
    "turevdb": (6, ("7895_hl_ogul1.wav",)),
}


@pytest.mark.parametrize("name", NINE)
def test_every_file_of_emobox_list_gets_emobox_label(tmp_path, name, monkeypatch):
    """Names only: with the file search answering EmoBox's list (no audio is read by these
    loaders' records), each loader's records hold every listed file, each with EmoBox's label."""
    rows, label_map = eb.emobox_list(name)
    root = tmp_path / name
    mod = corpora.module(name)
    monkeypatch.setattr(mod, "find_audio", lambda *a, **k: sorted(root / eb.release_path(name, r) for r in rows))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ASED's gender-field warning is tested above
        recs = mod.records(root, **EMOBOX_OPTIONS.get(name, {}))
    eb.compare_records(name, recs, root, rows, label_map)
    assert len(recs) == len(rows)


@pytest.mark.parametrize("name", NINE)
def test_sample_of_emobox_list_loads_as_emobox_labels_it(tmp_path, name):
    """A sample as real WAVs at EmoBox's paths and rates, through `corpora.load`."""
    rows, label_map = eb.emobox_list(name)
    per_code, must = EMOBOX_SAMPLE[name]
    picked = eb.sample(rows, per_code, must)
    root = eb.build_tree(tmp_path / name, name, picked)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = corpora.load(name, root, **EMOBOX_OPTIONS.get(name, {}))
    eb.compare(name, ds, root, picked, label_map)
    assert all(d > 0 for d in ds["duration"]) and Counter(ds["corpus"]) == {name: len(picked)}


# ---------------------------------------------------------------- in a study

def test_two_of_them_in_a_study(tmp_path, capsys):
    """CASIA and Polish trees (real names, tones whose pitch follows the emotion) run through
    `jaxser run`, same-corpus and cross-corpus on their three shared classes."""
    pytest.importorskip("opensmile")
    import json

    import numpy as np
    import pandas as pd

    from jaxser import audio
    from jaxser.study.run import main
    from spec.checks import check_run

    pitch = {"angry": 300.0, "fear": 420.0, "neutral": 160.0}
    t16, t44 = np.arange(8000) / 16_000, np.arange(22_050) / 44_100
    casia = tmp_path / "CASIA"
    for i, spk in enumerate(("liuchanhg", "wangzhe", "zhaoquanyin", "ZhaoZuoxiang")):
        for emo, f in pitch.items():
            for n in (201, 202):
                audio.write(casia / spk / emo / f"{n}.wav", 0.3 * np.sin(2 * np.pi * (f + 9 * i + n % 2) * t16), 16_000)
    polish = tmp_path / "POLISH"
    for i in range(1, 6):
        for code, emo in (("a", "angry"), ("s", "fear"), ("n", "neutral")):
            for word in ("nie", "tak"):
                wave = 0.3 * np.sin(2 * np.pi * (pitch[emo] + 7 * i + (word == "tak")) * t44)
                audio.write(polish / f"m{i}.{code}_{word}_1.wav", wave, 44_100)
    cfg = tmp_path / "study.toml"
    cfg.write_text('[run]\nseeds = [0]\nsettings = ["same", "cross"]\nbootstrap = 10\n'
                   'labels = ["angry", "fear", "neutral"]\n'
                   '[models]\nencoders = ["mfcc"]\nheads = ["fcn"]\n[train]\nmax_epochs = 3\npatience = 2\n')
    out = tmp_path / "run"
    assert main(["--config", str(cfg), "--corpus", f"casia={casia}", "--corpus", f"polish={polish}",
                 "--out", str(out)]) == 0, capsys.readouterr().err
    meta = pd.read_parquet(out / "metadata.parquet")
    assert Counter(meta["corpus"]) == {"casia": 24, "polish": 30}
    cells = {c["name"] for c in json.loads((out / "cells.json").read_text())}
    assert {"cross:casia->polish", "cross:polish->casia"} <= cells
    assert any(c.startswith("same:casia") for c in cells) and any(c.startswith("same:polish") for c in cells)
    assert check_run(out) == []


# ---------------------------------------------------------------- corpus card

CARD_TREES = {"polish": (POLISH, 44_100), "casia": (CASIA, 16_000), "turevdb": (TUREV + (TUREV_COPY,), 44_100),
              "mesd": (MESD, 48_000), "jlcorpus": (JL, 44_100), "ased": (ASED, 16_000), "oreau": (OREAU, 44_100),
              "emovdb": (EMOV, 16_000), "asvpesd": (ASVP, 16_000)}


@pytest.mark.parametrize("name", NINE)
def test_card_of_a_clean_tree_and_of_a_planted_unknown_code(tmp_path, name):
    """The card lists every utterance and no problem; a file with an unknown emotion code is
    listed under problems (kind unknown_label) while the others still count."""
    from jaxser.corpora.card import describe

    paths, sr = CARD_TREES[name]
    root = make(tmp_path / name, paths, sr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        card = describe(name, root, decode=False)
    # TurEV-DB's filtered copy is not an utterance; ASVP-ESD's code 17 is left out and counted
    n = len(paths) - (name in ("turevdb", "asvpesd"))
    assert card["summary"].iloc[0]["utterances"] == n and card["problems"].empty
    assert card["summary"].iloc[0]["excluded"] == (name == "asvpesd")
    assert set(card["label_map"]["code"]) >= set(corpora.module(name).LABEL_MAP)
    bad = {"polish": "m1.x_nie_1.wav", "casia": "wangzhe/disgust/201.wav",
           "turevdb": "Sound Source/Calm/1984_xx_eger.wav",
           "mesd": f"{MESD_DIR}/Joy_F_A_tarde.wav", "jlcorpus": f"{JL_DIR}/male1_bored_1a_1.wav",
           "ased": "ASED_V1/05Angry/x5-01-01-01-01.wav", "oreau": f"{OREAU_V2}/f/sessj/10a02Xa.wav",
           "emovdb": "sam_Amused/happy_1-28_0001.wav",
           "asvpesd": "ASVP-ESD-Update/Audio/actor_51/03-01-14-01-01-51-02-02-04-15.wav"}[name]
    tone(root / bad, sr, secs=0.06)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        card = describe(name, root, decode=False, hashes=False)
    assert card["summary"].iloc[0]["utterances"] == n
    assert list(card["problems"]["kind"]) == ["unknown_label"] and Path(bad).name in card["problems"]["detail"][0]
