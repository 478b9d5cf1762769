"""Loaders of the second group of EmoBox corpora, container decoding and segment rows.

Every tree is built in the release's real layout and metadata format (tests/helpers/
emobox_b_trees.py) and loaded through `jaxser.corpora.load`, the path a user takes. Where an
EmoBox checkout sits beside the repository (or JAXSER_EMOBOX names one), a sample of its
file list is laid out as a tree and the loader must yield the same files and labels."""
from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jaxser import audio, corpora
from jaxser.audio import AudioError
from jaxser.corpora import card
from jaxser.corpora.schema import CorpusError, UnknownLabelError
from tests.helpers import emobox_b_trees as tr
from tests.helpers.containers import write_container
from tests.helpers.corpus_release_trees import by_utt

# ---------------------------------------------------------------- containers (PyAV)


@pytest.mark.parametrize("ext", [".avi", ".mp4", ".m4a", ".webm", ".mkv"])
def test_container_audio_decodes_like_the_wave_it_holds(tmp_path, ext):
    sr = 48_000
    t = np.arange(int(0.5 * sr)) / sr
    wave = 0.3 * np.sin(2 * np.pi * 440 * t)
    p = write_container(tmp_path / f"clip{ext}", wave, sr)
    hdr = audio.info(p)
    assert hdr.sample_rate == sr and hdr.channels == 1 and abs(hdr.duration - 0.5) < 0.03
    got = audio.load(p)  # 16 kHz mono
    assert abs(got.size - 8000) < 16 * 30
    ref = audio.resample(wave.astype(np.float32), sr)
    n = min(got.size, ref.size)
    corr = np.corrcoef(got[1000:n - 1000], ref[1000:n - 1000])[0, 1]
    assert corr > 0.9, corr  # lossy codecs (AAC, Opus) shift and smear a little


def test_container_without_audio_is_one_line_error_naming_the_file(tmp_path):
    p = write_container(tmp_path / "silent film.avi", None, 16_000)
    for call in (audio.info, audio.load):
        with pytest.raises(AudioError, match="no audio track") as e:
            call(p)
        assert e.value.path == str(p) and "\n" not in str(e.value)


def test_garbage_container_is_unreadable(tmp_path):
    p = tmp_path / "x.mp4"
    p.write_bytes(b"not a video at all" * 10)
    with pytest.raises(AudioError, match="unreadable"):
        audio.info(p)


# ---------------------------------------------------------------- segments


@settings(max_examples=15, deadline=None)
@given(a=st.integers(0, 2900), length=st.integers(60, 900))
def test_segment_is_exactly_that_span_of_the_whole_file(tmp_path_factory, a, length):
    """Reading [start, end) alone gives the samples a whole decode has there (no resampling)."""
    d = tmp_path_factory.mktemp("seg")
    sr = 8_000
    w = (0.3 * np.sin(np.arange(4 * sr) / 3.0)).astype(np.float32)
    for name in ("r.flac", "r.wav"):
        p = audio.write(d / name, w, sr)
        whole = audio.load(p, sample_rate=sr)
        start, end = a / 1000, (a + length) / 1000
        seg = audio.load(p, sample_rate=sr, start=start, end=end)
        lo, hi = round(start * sr), round(end * sr)
        np.testing.assert_array_equal(seg, whole[lo:hi])


def test_segment_outside_the_file_is_refused(tmp_path):
    p = audio.write(tmp_path / "r.flac", 0.1 * np.sin(np.arange(16_000) / 5.0), 16_000)
    with pytest.raises(AudioError, match="ends after the file"):
        audio.load(p, start=0.5, end=2.0)
    with pytest.raises(AudioError, match="not a span"):
        audio.load(p, start=0.6, end=0.5)


def test_segment_of_a_container(tmp_path):
    sr = 16_000
    w = 0.3 * np.sin(2 * np.pi * 300 * np.arange(2 * sr) / sr)
    p = write_container(tmp_path / "v.mkv", w, sr)  # FLAC in Matroska: lossless, seekable
    whole = audio.load(p)
    seg = audio.load(p, start=0.75, end=1.25)
    assert abs(seg.size - 8000) <= 2
    np.testing.assert_allclose(seg, whole[12000:12000 + seg.size], atol=1e-4)


@pytest.mark.parametrize("ext", [".webm", ".mp4", ".avi"])
def test_segment_of_a_lossy_or_video_container_is_aligned(tmp_path, ext):
    """Seeking lands on a packet before `start`; frame times trim the rest, so the span is
    where a whole decode has it, to the container's time resolution (WebM: 1 ms)."""
    sr = 48_000
    t = np.arange(3 * sr) / sr
    wave = 0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t)  # a chirp: misalignment shows
    p = write_container(tmp_path / f"v{ext}", wave, sr)
    whole = audio.load(p)
    seg = audio.load(p, start=1.5, end=2.25)
    assert abs(seg.size - 12000) <= 2
    core = seg[400:-400]
    lags = range(-48, 49)  # +-3 ms at 16 kHz
    corr = [np.corrcoef(core, whole[24400 + lag:24400 + lag + core.size])[0, 1] for lag in lags]
    best = lags[int(np.argmax(corr))]
    assert max(corr) > 0.99 and abs(best) <= (16 if ext == ".webm" else 1), (best, max(corr))


# ---------------------------------------------------------------- Emozionalmente


def test_emozionalmente(tmp_path):
    ds = corpora.load("emozionalmente", tr.make_emozionalmente(tmp_path))
    rows = by_utt(ds)
    assert set(rows) == {n[:-4] for n, _ in tr.EMOZ}
    r = rows["1613063132088"]
    assert (r["emotion"], r["raw_label"], r["speaker"], r["gender"], r["language"]) == \
        ("happy", "joy", "emozionalmente/actor0", "female", "it")
    assert r["text"] == "Frase numero 2." and r["path"] == "emozionalmente/audio/1613063132088.wav"


def test_emozionalmente_unknown_code_and_unlisted_or_missing_files(tmp_path):
    tr.make_emozionalmente(tmp_path, extra_row=["1600000000000.wav", "actor0", "x", "joy", "ok"])
    with pytest.raises(CorpusError, match="missing below"):
        corpora.load("emozionalmente", tmp_path)
    t2 = tmp_path / "b"
    tr.make_emozionalmente(t2, rows=tr.EMOZ[:2] + [("1613063132088.wav", "gioia")])
    with pytest.raises(UnknownLabelError, match="'gioia'.*samples.csv line 4"):
        corpora.load("emozionalmente", t2)
    tr.media(t2 / "emozionalmente" / "audio" / "1700000000000.wav")
    errors = []
    corpora.module("emozionalmente").records(t2, errors=errors)
    assert any("not listed" in str(e) for e in errors)


# ---------------------------------------------------------------- ESD


@pytest.mark.parametrize("split_folders", [False, True])
def test_esd(tmp_path, split_folders):
    ds = corpora.load("esd", tr.make_esd(tmp_path, split_folders=split_folders))
    rows = by_utt(ds)
    assert set(rows) == {Path(p).stem for p in tr.ESD}
    # within each emotion's 350: 1-20 evaluation, 21-50 test, 51-350 train
    assert {u: rows[u]["split"] for u in rows} == {"0001_000001": "evaluation", "0001_000351": "evaluation",
                                                   "0011_000751": "train", "0011_001100": "test",
                                                   "0020_001420": "evaluation"}
    r = rows["0001_000351"]
    assert (r["emotion"], r["raw_label"], r["gender"], r["language"], r["text"]) == \
        ("angry", "Angry", "female", "zh", "打远一看，它们的确很是美丽，")
    assert (rows["0011_000751"]["language"], rows["0011_000751"]["gender"]) == ("en", "male")


def test_esd_transcripts_in_gb18030(tmp_path):
    tr.media(tmp_path / "0002" / "Sad" / "0002_001051.wav")
    (tmp_path / "0002" / "0002.txt").write_bytes("0002_001051\t他们的确很是美丽。\t伤心\n".encode("gb18030"))
    assert corpora.load("esd", tmp_path)[0]["text"] == "他们的确很是美丽。"


def test_esd_refuses_wrong_folders(tmp_path):
    tr.media(tmp_path / "0001" / "Happy" / "0001_000001.wav")  # number 1 is Neutral
    with pytest.raises(CorpusError, match="belongs to Neutral"):
        corpora.load("esd", tmp_path)
    t2 = tmp_path / "b"
    tr.media(t2 / "0001" / "Neutral" / "train" / "0001_000001.wav")  # official: evaluation
    with pytest.raises(CorpusError, match="official evaluation split"):
        corpora.load("esd", t2)
    t3 = tmp_path / "c"
    tr.media(t3 / "0001" / "Joyful" / "0001_000001.wav")
    with pytest.raises(UnknownLabelError, match="Joyful"):
        corpora.load("esd", t3)


# ---------------------------------------------------------------- MEAD


def test_mead(tmp_path):
    ds = corpora.load("mead", tr.make_mead(tmp_path))
    rows = by_utt(ds)
    assert set(rows) == {"M003_angry_level_1_001", "W019_neutral_level_1_020", "M040_contempt_level_3_030",
                         "W040_disgusted_level_2_007"}
    r = rows["M040_contempt_level_3_030"]
    assert (r["emotion"], r["speaker"], r["gender"], r["level"]) == ("contempt", "mead/M040", "male", "3")
    assert rows["W040_disgusted_level_2_007"]["gender"] == "female"
    assert all(0.15 < d < 0.3 for d in ds["duration"])


def test_mead_unknown_emotion_and_bad_level(tmp_path):
    tr.make_mead(tmp_path, ["M003/audio/bored/level_1/001.m4a"])
    with pytest.raises(UnknownLabelError, match="'bored'"):
        corpora.load("mead", tmp_path)
    t2 = tmp_path / "b"
    tr.make_mead(t2, ["M003/audio/neutral/level_2/001.m4a"])
    with pytest.raises(CorpusError, match="neutral has level_1 only"):
        corpora.load("mead", t2)


# ---------------------------------------------------------------- RESD


def test_resd(tmp_path):
    ds = corpora.load("resd", tr.make_resd(tmp_path))
    rows = by_utt(ds)
    assert len(rows) == 5
    r = rows["train/03_disgust_neutral n_050"]  # a space where the others have "_"
    assert (r["emotion"], r["speaker"], r["split"]) == ("neutral", "resd/03_disgust_neutral", "train")
    assert rows["test/04_fear_enthusiasm f_120"]["split"] == "test"
    assert rows["train/happiness_enthusiasm_32/32_happiness_enthusiasm_h_120".split("/", 1)[0] + "/"
                "32_happiness_enthusiasm_h_120"]["emotion"] == "happy"


def test_resd_unknown_code_and_missing_file(tmp_path):
    tr.make_resd(tmp_path, [("train", "x_1/x_1_a_1.wav", "anger"), ("test", "y_2/y_2_z_1.wav", "joy")])
    with pytest.raises(UnknownLabelError, match="'joy'.*test.csv line 2"):
        corpora.load("resd", tmp_path)
    (tmp_path / "test" / "y_2" / "y_2_z_1.wav").unlink()
    with pytest.raises(CorpusError, match="does not exist"):
        corpora.load("resd", tmp_path)


# ---------------------------------------------------------------- EMNS


def test_emns(tmp_path):
    ds = corpora.load("emns", tr.make_emns(tmp_path))
    rows = by_utt(ds)
    assert set(rows) == {n[:-5] for n, _ in tr.EMNS}
    r = rows["recorded_audio_oGl6q2Q"]
    assert (r["emotion"], r["raw_label"], r["gender"], r["speaker"], r["level"]) == \
        ("surprise", "Surprised", "female", "emns/1", "3")
    assert rows["recorded_audio_DTKHnUN"]["emotion"] == "sarcastic"
    assert all(0.15 < d < 0.3 for d in ds["duration"])


def test_emns_unknown_code_and_unlisted_file(tmp_path):
    tr.make_emns(tmp_path, [("recorded_audio_AAAAAAA.webm", "Bored")])
    with pytest.raises(UnknownLabelError, match="'Bored'"):
        corpora.load("emns", tmp_path)
    t2 = tr.make_emns(tmp_path / "b")
    tr.media(t2 / "cleaned_webm" / "recorded_audio_zzzzzzz.webm")
    with pytest.raises(CorpusError, match="has no row"):
        corpora.load("emns", t2)


# ---------------------------------------------------------------- eNTERFACE'05


def test_enterface_with_the_irregular_subjects(tmp_path):
    ds = corpora.load("enterface", tr.make_enterface(tmp_path))
    rows = by_utt(ds)
    assert set(rows) == {"s19_an_4", "s6_su", "s3_ha_1", "s16_su_3", "s2_fe_5", "s12_sa_4", "s2_an_2", "s2_an_1"}
    assert rows["s3_ha_1"]["speaker"] == "enterface/3" and rows["s3_ha_1"]["emotion"] == "happy"
    assert rows["s6_su"]["text"] == "" and rows["s16_su_3"]["text"] == "su3"
    assert rows["s12_sa_4"]["speaker"] == "enterface/11"  # subject 11's files are named s12_*
    assert rows["s2_an_2"]["path"] == "enterface database/subject 2/anger/sentence 1/s2_an_2.avi"


def test_enterface_refuses_disagreeing_folders_and_codes(tmp_path):
    for i, rel in enumerate(["subject 2/fear/sentence 5/s2_an_5.avi", "subject 11/fear/sentence 5/s13_fe_5.avi",
                             "subject 2/fear/sentence 1/s2_fe_2.avi", "subject 4/fear/sentence 1/s12_fe_1.avi"]):
        tr.make_enterface(tmp_path / str(i), [rel])  # only the release's own irregular names pass
        with pytest.raises(CorpusError, match="disagrees|not in a"):
            corpora.load("enterface", tmp_path / str(i))
    t2 = tmp_path / "b"
    tr.make_enterface(t2, ["subject 2/fear/sentence 5/s2_xx_5.avi"])
    with pytest.raises(UnknownLabelError, match="'xx'"):
        corpora.load("enterface", t2)


def test_enterface_video_without_sound_names_the_file(tmp_path):
    tr.make_enterface(tmp_path, ["subject 2/fear/sentence 5/s2_fe_5.avi"])
    p = write_container(tmp_path / "enterface database/subject 2/fear/sentence 4/s2_fe_4.avi", None, 16_000)
    with pytest.raises(AudioError, match="no audio track") as e:
        corpora.load("enterface", tmp_path)
    assert e.value.path == str(p.resolve()) or e.value.path == str(p)
    ds = corpora.load("enterface", tmp_path, skip_errors=True)
    assert np.isnan(by_utt(ds)["s2_fe_4"]["duration"])


# ---------------------------------------------------------------- MER2023


def test_mer2023(tmp_path):
    ds = corpora.load("mer2023", tr.make_mer2023(tmp_path))
    rows = by_utt(ds)
    assert {u: (r["emotion"], r["split"]) for u, r in rows.items()} == {
        "sample_00002721": ("neutral", "train"), "sample_00005854": ("worried", "train"),
        "sample_00000613": ("angry", "test1"), "sample_00003358": ("sad", "test2"),
        "sample_00005933": ("happy", "test3")}
    assert rows["sample_00003358"]["path"] == "test2/sample_00003358.mp4"


def test_mer2023_unknown_code_missing_clip_and_relabel(tmp_path):
    tr.make_mer2023(tmp_path, [("train", "sample_1", "bored", ".avi")])
    with pytest.raises(UnknownLabelError, match="'bored'.*train-label.csv line 2"):
        corpora.load("mer2023", tmp_path)
    t2 = tr.make_mer2023(tmp_path / "b", [("train", "sample_1", "sad", ".avi"), ("test1", "sample_2", "sad", ".avi")])
    (t2 / "test1" / "sample_2.avi").unlink()
    with pytest.raises(CorpusError, match="no test1/sample_2.avi or .mp4"):
        corpora.load("mer2023", t2)
    t3 = tr.make_mer2023(tmp_path / "c", [("train", "sample_1", "sad", ".avi"), ("test1", "sample_2", "sad", ".avi")])
    with open(t3 / "test-labels" / "test1-label.csv", "a") as f:
        f.write("sample_1,sad,0.0\n")
    with pytest.warns(UserWarning, match="1 label row"):
        assert len(corpora.load("mer2023", t3)) == 2
    with open(t3 / "test-labels" / "test1-label.csv", "a") as f:
        f.write("sample_1,happy,0.0\n")
    with pytest.raises(CorpusError, match="labelled 'happy' here and 'sad'"):
        corpora.load("mer2023", t3)


# ---------------------------------------------------------------- PAVOQUE (segments)


def test_pavoque_segments(tmp_path):
    ds = corpora.load("pavoque", tr.make_pavoque(tmp_path))
    rows = by_utt(ds)
    assert set(rows) == {"poker_n0010-poker", "poker_n0011-poker", "a0032a-neutral", "m0002a-happy",
                         "m0002b-happy"}
    r = rows["m0002b-happy"]
    assert (r["start"], r["end"], r["emotion"], r["gender"], r["recording"], r["text"]) == \
        (1.9, 2.9, "happy", "male", "outtakes", "Satz m0002b.")
    assert abs(r["duration"] - 1.0) < 1e-6 and rows["poker_n0010-poker"]["emotion"] == "poker"
    # segments share their file but are different recordings: digests differ, segment by segment
    digests = corpora.content_digests(ds)
    assert len(set(digests)) == len(ds) and corpora.duplicate_groups(digests) == []
    # each segment decodes to its own span only
    i = ds["id"].index("pavoque/m0002b-happy")
    whole = audio.load(ds[i]["audio"])
    seg = audio.load(ds[i]["audio"], start=ds[i]["start"], end=ds[i]["end"])
    assert seg.size == 16000
    np.testing.assert_allclose(seg, whole[30400:46400], atol=1e-6)


def test_pavoque_refuses_repeats_and_tables_without_times(tmp_path):
    tr.make_pavoque(tmp_path, {"sad": [("o0001", "sad", 0.0, 1.0)], "outtakes": [("o0001", "sad", 1.0, 2.0)]})
    with pytest.raises(CorpusError, match="repeats prompt 'o0001' in style 'sad'"):
        corpora.load("pavoque", tmp_path)
    old = tmp_path / "b"
    old.mkdir()
    (old / "pavoque-all.yaml").write_text("- file: ./pavoque/StefanNeutral/wav/a0001.wav\n"
                                          "  date: 2007-10-01T10:53:08+0200\n")
    with pytest.raises(CorpusError, match="no segment times"):
        corpora.load("pavoque", old)


def test_pavoque_card_decodes_segments_only(tmp_path):
    c = card.describe("pavoque", tr.make_pavoque(tmp_path))
    assert c["problems"].empty
    assert int(c["summary"]["utterances"].iloc[0]) == 5
    assert abs(float(c["durations"]["total_h"].iloc[0]) * 3600 - (1.1 + 1.2 + 0.7 + 1.0 + 1.0)) < 1e-3


def test_pavoque_refuses_unknown_style_and_spans_outside(tmp_path):
    tr.make_pavoque(tmp_path, {"x": [("p1", "bored", 0.0, 1.0)]})
    with pytest.raises(UnknownLabelError, match="'bored'.*segment 1"):
        corpora.load("pavoque", tmp_path)
    t2 = tmp_path / "b"
    t2.mkdir()
    tr.make_pavoque(t2, {"sad": [("p1", "sad", 2.0, 9.0)]})
    with pytest.raises(CorpusError, match="not inside pavoque-sad.flac"):
        corpora.load("pavoque", t2)


def test_embedding_extraction_reads_segments(tmp_path, monkeypatch):
    """The extraction decodes each row's span, not its whole file."""
    from jaxser import embed

    ds = corpora.load("pavoque", tr.make_pavoque(tmp_path))
    seen = []
    real = audio.load

    def spy(path, **kw):
        seen.append((kw.get("start"), kw.get("end")))
        return real(path, **kw)

    monkeypatch.setattr(audio, "load", spy)
    job = embed._Extraction.__new__(embed._Extraction)
    job.paths, job.spans, job.sr = list(ds["audio"]), corpora.schema.segments(ds), 16_000
    waves = [job._load(i) for i in range(len(ds))]
    assert seen == list(zip(ds["start"], ds["end"]))
    assert [w.size for w in waves] == [round(d * 16_000) for d in ds["duration"]]


# ---------------------------------------------------------------- M3ED


def test_m3ed(tmp_path):
    ds = corpora.load("m3ed", tr.make_m3ed(tmp_path))
    rows = by_utt(ds)
    r = rows["rucikeaidewomen_1_4"]
    assert (r["emotion"], r["speaker"], r["gender"], r["split"], r["dialog"], r["text"]) == \
        ("disgust", "m3ed/rucikeaidewomen_王大力", "male", "train", "rucikeaidewomen_1", "走开")
    assert (rows["shaonianpai_1_1"]["emotion"], rows["shaonianpai_1_1"]["split"]) == ("angry", "test")


def test_m3ed_missing_wav_warns_and_unknown_code_refused(tmp_path):
    with pytest.warns(UserWarning, match="1 labelled utterance"):
        ds = corpora.load("m3ed", tr.make_m3ed(tmp_path, missing_wav=True))
    assert len(ds) == 2
    with pytest.raises(UnknownLabelError, match="'Angry'"):
        corpora.load("m3ed", tr.make_m3ed(tmp_path / "b", code="Angry"))


# ---------------------------------------------------------------- against EmoBox's file lists


def _emobox() -> Path | None:
    env = os.environ.get("JAXSER_EMOBOX")
    cand = Path(env) if env else Path(__file__).resolve().parents[1].parent / "emobox"
    return cand if (cand / "data").is_dir() else None


def _emobox_rows(name: str, n: int = 24) -> list[dict]:
    base = _emobox()
    if base is None:
        pytest.skip("no EmoBox checkout beside the repository (set JAXSER_EMOBOX)")
    d = base / "data" / name
    f = d / f"{name}.jsonl"
    files = [f] if f.is_file() else sorted(d.glob(f"fold_*/{name}_test*_fold_*.jsonl"))
    rows = [json.loads(line) for p in files for line in p.read_text().splitlines() if line.strip()]
    rows = list({r["wav"] + str(r.get("start_time", "")): r for r in rows}.values())
    return random.Random(0).sample(rows, min(n, len(rows)))


def _rel(r, name):
    return r["wav"].split(f"downloads/{name}/", 1)[1]


def _check(ds, rows, name, key=lambda r: r["path"]):
    got = sorted((key(r), r["raw_label"]) for r in ds)
    want = sorted((_rel(r, name), r["emo"]) for r in rows)
    assert got == want


@pytest.mark.parametrize("name", ["esd", "mead", "enterface"])
def test_file_name_corpora_match_emobox(tmp_path, name):
    rows = _emobox_rows(name)
    for r in rows:
        tr.media(tmp_path / _rel(r, name))
    _check(corpora.load(name, tmp_path), rows, name)


def test_emozionalmente_matches_emobox(tmp_path):
    rows = _emobox_rows("emozionalmente")
    tr.make_emozionalmente(tmp_path / "x", rows=[(Path(_rel(r, "emozionalmente")).name, r["emo"]) for r in rows])
    _check(corpora.load("emozionalmente", tmp_path / "x"), rows, "emozionalmente",
           key=lambda r: r["path"].split("/", 1)[1])


def test_resd_matches_emobox(tmp_path):
    rows = _emobox_rows("resd")
    tr.make_resd(tmp_path, [(_rel(r, "resd").split("/", 1)[0], _rel(r, "resd").split("/", 1)[1], r["emo"])
                            for r in rows])
    _check(corpora.load("resd", tmp_path), rows, "resd")


def test_emns_matches_emobox(tmp_path):
    rows = _emobox_rows("emns", 8)
    tr.make_emns(tmp_path, [(Path(r["wav"]).name, "Surprised" if r["emo"] == "Surprise" else r["emo"]) for r in rows])
    ds = corpora.load("emns", tmp_path)
    assert sorted((r["path"], r["emotion"]) for r in ds) == sorted(
        (_rel(r, "emns"), corpora.module("emns").LABEL_MAP[r["emo"]]) for r in rows)


def test_mer2023_matches_emobox(tmp_path):
    rows = _emobox_rows("mer2023", 12)
    folders = {v[0]: k for k, v in tr._MER_DIRS.items()}
    spec = [(folders[str(Path(_rel(r, "mer2023")).parent)], Path(r["wav"]).stem, r["emo"], Path(r["wav"]).suffix)
            for r in rows]
    tr.make_mer2023(tmp_path, spec)
    _check(corpora.load("mer2023", tmp_path), rows, "mer2023")


def test_pavoque_matches_emobox(tmp_path):
    rows = _emobox_rows("pavoque", 12)
    by_rec: dict[str, list] = {}
    for r in rows:  # keys are pavoque-<prompt>-<style>; keep each segment's place in a short file
        prompt = r["key"][len("pavoque-"):].rsplit("-", 1)[0]
        by_rec.setdefault(Path(r["wav"]).stem.removeprefix("pavoque-"), []).append((prompt, r["emo"]))
    segs = {rec: [(p, s, 0.25 * i, 0.25 * i + 0.2) for i, (p, s) in enumerate(v)] for rec, v in by_rec.items()}
    ds = corpora.load("pavoque", tr.make_pavoque(tmp_path, segs))
    assert sorted((r["id"], r["path"], r["raw_label"]) for r in ds) == sorted(
        ("pavoque/" + r["key"][len("pavoque-"):], _rel(r, "pavoque"), r["emo"]) for r in rows)


def test_m3ed_matches_emobox(tmp_path):
    rows = _emobox_rows("m3ed")
    ann: dict = {}
    for r in rows:  # modality_speech/<speaker letter>_<series>_<dialog no>_<utterance no>.wav
        letter, utt = Path(r["wav"]).stem.split("_", 1)
        series, dialog = utt.rsplit("_", 2)[0], utt.rsplit("_", 1)[0]
        clip = ann.setdefault(series, {}).setdefault(dialog, {"SpeakerInfo": {}, "Dialog": {}})
        clip["SpeakerInfo"][letter] = {"Name": f"{series}-{letter}"}
        clip["Dialog"][utt] = {"Speaker": letter, "Text": "", "EmoAnnotation": {"final_main_emo": r["emo"]}}
        tr.media(tmp_path / _rel(r, "m3ed"))
    (tmp_path / "annotation.json").write_text(json.dumps(ann))
    ds = corpora.load("m3ed", tmp_path)
    _check(ds, rows, "m3ed")
    assert sorted(ds["id"]) == sorted("m3ed/" + r["key"][len("m3ed-"):] for r in rows)


def test_stereo_container_is_averaged_to_mono(tmp_path):
    import av
    from fractions import Fraction

    sr, n = 16_000, 16_000
    left = (0.4 * np.sin(np.arange(n) / 5.0)).astype(np.float32)
    p = tmp_path / "stereo.mkv"
    with av.open(str(p), "w") as out:
        s = out.add_stream("flac", rate=sr)
        s.layout = "stereo"
        for i in range(0, n, 1024):
            pcm = np.stack([left[i:i + 1024], np.zeros_like(left[i:i + 1024])]).T.reshape(1, -1)
            fr = av.AudioFrame.from_ndarray((pcm * 32767).astype(np.int16), format="s16", layout="stereo")
            fr.sample_rate, fr.pts, fr.time_base = sr, i, Fraction(1, sr)
            for pkt in s.encode(fr):
                out.mux(pkt)
        for pkt in s.encode(None):
            out.mux(pkt)
    assert audio.info(p).channels == 2
    np.testing.assert_allclose(audio.load(p), left / 2, atol=1e-4)


@pytest.mark.parametrize("name,make", [("emozionalmente", tr.make_emozionalmente), ("esd", tr.make_esd),
                                       ("mead", tr.make_mead), ("resd", tr.make_resd), ("emns", tr.make_emns),
                                       ("enterface", tr.make_enterface), ("mer2023", tr.make_mer2023),
                                       ("pavoque", tr.make_pavoque), ("m3ed", tr.make_m3ed)])
def test_card_on_every_tree_is_clean(tmp_path, name, make):
    """The card decodes every row (containers, segments) and finds nothing wrong in a good tree."""
    make(tmp_path)
    c = card.describe(name, tmp_path)
    assert c["problems"].empty, c["problems"].to_dict("records")
    assert int(c["summary"]["utterances"].iloc[0]) == len(corpora.load(name, tmp_path))
    assert "published:" in card.render(c)


def test_a_study_with_container_and_segment_corpora(tmp_path, capsys):
    """MEAD (AAC in .m4a) and PAVOQUE (segments of FLAC recordings) through `jaxser run`:
    corpora, extraction, cross-corpus training and the report, then the spec's own checks."""
    from jaxser.cli import main

    mead = [f"{a}/audio/{e}/level_1/{k:03d}.m4a" for a in ("M003", "W009") for e in ("angry", "happy", "sad")
            for k in (1, 2, 3)]
    tr.make_mead(tmp_path / "mead", mead)
    tr.make_pavoque(tmp_path / "pavoque", {s: [(f"{s}{i:04d}", s, 0.5 * i, 0.5 * i + 0.45) for i in range(4)]
                                           for s in ("angry", "happy", "sad")})
    config = tmp_path / "study.toml"
    config.write_text(f"""[run]
seeds = [0]
settings = ["cross"]
labels = ["angry", "happy", "sad"]
bootstrap = 10
[corpora]
mead = "{tmp_path / 'mead'}"
pavoque = "{tmp_path / 'pavoque'}"
[models]
encoders = ["mfcc"]
heads = ["linear"]
[train]
max_epochs = 2
patience = 1
""")
    out = tmp_path / "run"
    assert main(["run", "--config", str(config), "--out", str(out)]) == 0, capsys.readouterr().out
    import pandas as pd

    res = pd.read_csv(out / "results.csv")
    pairs = sorted(zip(res["source"], res["target"], res["n_test"]))
    assert pairs == [("mead", "pavoque", 12), ("pavoque", "mead", 18)]
    meta = pd.read_parquet(out / "metadata.parquet")
    assert meta["audio_sha256"].nunique() == len(meta)  # 12 segments of 3 files: 12 recordings
