"""MELD loader: a MELD.Raw tree with the release's tables and 5.1 AAC MP4 clips (written with
PyAV), loaded through `jaxser.corpora.load` as a user would, with the release's known quirks."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jaxser import audio
from jaxser import corpora
from jaxser.corpora import CorpusError, CorpusRootError, UnknownLabelError
from jaxser.corpora import meld
from tests.helpers.corpus_release_trees import by_utt
from tests.helpers.dimensional_trees import MELD_ROWS, make_meld

#: EmoBox's data/meld/label_map.json (code -> EmoBox class), the classes its MELD folds use.
EMOBOX_MELD = {"neutral": "Neutral", "joy": "Happy", "sadness": "Sad", "surprise": "Surprise", "disgust": "Disgust",
               "anger": "Angry", "fear": "Fear"}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_meld(tmp_path_factory.mktemp("meld"))


def test_meld_rows_splits_and_quirks(tree):
    unlabelled = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = corpora.load("meld", tree, unlabelled=unlabelled)
    rows = by_utt(ds)
    # dev dia110_utt7 (no clip in the release) and train dia125_utt3 (broken) are left out
    assert set(rows) == {"train/dia0_utt0", "train/dia0_utt1", "train/dia1_utt0", "dev/dia0_utt0",
                         "test/dia0_utt0", "test/dia0_utt1", "test/dia2_utt0"}
    r = rows["train/dia0_utt0"]
    assert r["path"] == "MELD.Raw/train/train_splits/dia0_utt0.mp4"  # EmoBox's wav minus downloads/meld/
    assert (r["speaker"], r["gender"], r["language"], r["emotion"], r["raw_label"]) == (
        "meld/Chandler", "unknown", "en", "neutral", "neutral")
    assert (r["split"], r["dialogue"], r["utterance"], r["sentiment"]) == ("train", "0", "0", "neutral")
    assert r["text"] == "also I was the point person on my company\u2019s transition"  # cp1252 0x92 translated
    assert rows["train/dia0_utt1"]["speaker"] == "meld/The Interviewer"
    assert rows["dev/dia0_utt0"]["path"] == "MELD.Raw/dev_splits_complete/dia0_utt0.mp4"
    assert rows["test/dia0_utt0"]["path"] == "MELD.Raw/output_repeated_splits_test/dia0_utt0.mp4"
    assert {r["raw_label"]: r["emotion"] for r in rows.values()} == {
        "neutral": "neutral", "joy": "happy", "anger": "angry", "surprise": "surprise", "fear": "fear",
        "disgust": "disgust"}
    # the same dialogue/utterance numbers in two splits are two utterances
    assert rows["dev/dia0_utt0"]["text"] != rows["test/dia0_utt0"]["text"]
    # durations come from the MP4's audio track (0.25 s written; AAC adds its priming frames)
    assert all(0.24 < r["duration"] < 0.32 for r in rows.values())
    messages = [str(w.message) for w in caught]
    assert any("dia110_utt7" in m and "dia125_utt3" in m and "2 labelled clip(s)" in m for m in messages)
    assert any("2 clip(s) have no row" in m for m in messages)
    assert sorted(p.rsplit("/", 1)[1] for p in unlabelled) == ["dia49_utt4.mp4", "final_videos_testdia101_utt0.mp4"]


def test_meld_audio_decodes_from_surround_mp4(tree):
    ds = corpora.load("meld", tree)
    row = by_utt(ds)["test/dia2_utt0"]
    info = audio.info(row["audio"])
    assert (info.sample_rate, info.channels) == (48_000, 6)
    wave = audio.load(row["audio"])  # 16 kHz mono, the path every encoder takes
    assert wave.ndim == 1 and abs(len(wave) / audio.SAMPLE_RATE - row["duration"]) < 0.03
    assert 0.05 < float(abs(wave).max()) <= 1.0


def test_meld_keep_broken_and_label_map(tree):
    ds = corpora.load("meld", tree, keep_broken=True)
    assert "meld/train/dia125_utt3" in ds["id"]
    # the codes and classes of EmoBox's MELD label map
    assert set(meld.LABEL_MAP) == set(EMOBOX_MELD)
    assert {k: v.capitalize() for k, v in meld.LABEL_MAP.items()} == EMOBOX_MELD
    assert (("dev", "dia110_utt7") in meld.KNOWN_MISSING and ("train", "dia125_utt3") in meld.KNOWN_BROKEN)


def test_meld_missing_clip_is_an_error_naming_it(tmp_path):
    root = make_meld(tmp_path / "a", skip=(("train", "dia1_utt0"),), spare=False)
    with pytest.raises(CorpusError, match=r"train_sent_emo.csv line 4 labels dia1_utt0 but no "
                                          r"train_splits/dia1_utt0.mp4"):
        corpora.load("meld", root)
    errors = []
    recs = meld.records(root, errors=errors)
    assert len(errors) == 1 and "dia1_utt0" in str(errors[0])
    assert "train/dia1_utt0" not in {r["utt"] for r in recs} and len(recs) == 6


def test_meld_table_errors(tmp_path):
    rows = {**MELD_ROWS, "dev": [("What?", "Phoebe", "confusion", "neutral", 0, 0)]}
    with pytest.raises(UnknownLabelError, match=r"'confusion'.*dev_sent_emo.csv line 2"):
        corpora.load("meld", make_meld(tmp_path / "a", rows=rows, spare=False))
    rows = {"train": MELD_ROWS["train"][:1] * 2}
    with pytest.raises(CorpusError, match="train dia0_utt0 is labelled twice"):
        corpora.load("meld", make_meld(tmp_path / "b", rows=rows, spare=False))
    root = make_meld(tmp_path / "c", rows={"train": MELD_ROWS["train"][:2]}, spare=False)
    (root / "MELD.Raw" / "test_sent_emo.csv").write_text((root / "MELD.Raw" / "train_sent_emo.csv").read_text())
    with pytest.raises(CorpusError, match="labels the test split but no output_repeated_splits_test/ folder"):
        corpora.load("meld", root)
    with pytest.raises(CorpusRootError, match="train_sent_emo.csv"):
        corpora.load("meld", tmp_path / "c" / "MELD.Raw" / "train")


def test_meld_windows_1252_table(tmp_path):
    """A table re-saved as Windows-1252 (not UTF-8) is read, its apostrophes intact."""
    root = make_meld(tmp_path / "a", rows={"train": MELD_ROWS["train"][:2]}, spare=False)
    table = root / "MELD.Raw" / "train_sent_emo.csv"
    table.write_bytes(table.read_text(encoding="utf-8").encode("latin-1"))  # U+0092 -> byte 0x92
    rows = by_utt(corpora.load("meld", root))
    assert rows["train/dia0_utt1"]["text"] == "You must\u2019ve had your hands full."


def test_meld_clip_that_fails_to_decode_is_reported(tmp_path):
    from tests.helpers.containers import write_container

    root = make_meld(tmp_path / "a", rows={"train": MELD_ROWS["train"][:3]}, spare=False)
    bad = root / "MELD.Raw" / "train" / "train_splits" / "dia0_utt1.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)  # a cut-off download
    with pytest.raises(audio.AudioError, match="dia0_utt1.mp4"):
        corpora.load("meld", root)
    silent = root / "MELD.Raw" / "train" / "train_splits" / "dia1_utt0.mp4"
    write_container(silent, None, 48_000)  # video only: no sound, as some test clips are reported
    ds = corpora.load("meld", root, skip_errors=True)  # kept with duration NaN: the extraction lists them
    rows = by_utt(ds)
    assert math.isnan(rows["train/dia0_utt1"]["duration"]) and math.isnan(rows["train/dia1_utt0"]["duration"])
    assert rows["train/dia0_utt0"]["duration"] > 0
    with pytest.raises(audio.AudioError, match="dia1_utt0.mp4.*no audio track"):
        audio.load(silent)


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x2100)))
def test_meld_clean_text_leaves_no_c1_characters(text):
    out = meld.clean_text(text)
    assert not any("\x80" <= ch <= "\x9f" or ch == "\xa0" for ch in out)
    if not any("\x80" <= ch <= "\xa0" for ch in text):
        assert out == text


def test_meld_matches_emobox(tmp_path):
    """EmoBox's MELD list (`data/meld/meld.jsonl`, speakers in its `data.seg.wrd.stm`): every
    release path is a clip folder of a split, the release's missing and broken clips are the two
    it lacks, and a sampled tree (tables built from its rows) loads to the same files and labels.
    Skips without an EmoBox checkout."""
    from tests.helpers.containers import write_container
    from tests.helpers.dimensional_trees import MELD_HEADER, MELD_TABLES
    from tests.helpers.emobox_b_trees import write_csv
    from tests.helpers.emobox_lists import compare, emobox_list, emobox_root, release_path, sample

    rows, label_map = emobox_list("meld")
    assert {k: v.lower() for k, v in label_map.items()} == meld.LABEL_MAP
    folders = {f"{f}/": s for s, (_, f) in meld.SPLITS.items()}
    names = set()
    for r in rows:
        rel = release_path("meld", r)
        split = next(s for f, s in folders.items() if f in rel)
        stem = rel.rsplit("/", 1)[1][:-4]
        assert r["key"] == f"meld-{stem}-{split}"
        names.add((split, stem))
    assert not names & (meld.KNOWN_MISSING | meld.KNOWN_BROKEN) and len(names) == len(rows)
    speakers = {line.split()[0]: line.split()[2] for line in
                (emobox_root() / "data" / "meld" / "data.seg.wrd.stm").read_text(encoding="utf-8").splitlines()}
    picked = sample(rows, 3, must=("output_repeated_splits_test/dia125_utt3.mp4", "train_splits/dia125_utt2.mp4"))
    tables = {s: [] for s in meld.SPLITS}
    root = tmp_path / "meld"
    for r in picked:
        rel = release_path("meld", r)
        split = next(s for f, s in folders.items() if f in rel)
        d, u = rel.rsplit("/", 1)[1][3:-4].split("_utt")
        tables[split].append([len(tables[split]), "...", speakers[r["key"]], r["emo"], "neutral", d, u, 1, 1, "", ""])
        t = np.arange(int(0.06 * 16_000)) / 16_000
        write_container(root / rel, 0.2 * np.sin(2 * np.pi * (200 + len(tables[split])) * t), 16_000)
    for split, items in tables.items():
        write_csv(root / "MELD.Raw" / MELD_TABLES[split], MELD_HEADER, items)
    ds = corpora.load("meld", root)
    compare("meld", ds, root, picked, label_map)


def test_meld_card_lists_the_unlabelled_clips(tree):
    from jaxser.corpora import card

    c = card.describe("meld", tree, decode=False, hashes=False)
    spare = c["problems"][c["problems"]["kind"] == "unlabelled"]
    assert sorted(p.rsplit("/", 1)[1] for p in spare["path"]) == ["dia49_utt4.mp4", "final_videos_testdia101_utt0.mp4"]
    assert int(c["summary"]["utterances"].iloc[0]) == 7
