"""Tiny trees of the second group of EmoBox corpora (Emozionalmente, ESD, MEAD, RESD, EMNS,
eNTERFACE'05, MER2023, PAVOQUE, M3ED) in their releases' real layouts and metadata formats,
and a builder that lays out any list of release paths (e.g. a sample of EmoBox's file list)."""
from __future__ import annotations

import csv
import json
import zlib
from pathlib import Path

import numpy as np

from jaxser import audio
from tests.helpers.containers import write_container
from tests.helpers.corpus_release_trees import tone


def media(path: Path, secs: float = 0.2) -> Path:
    """A short file of the kind `path`'s extension names: WAV/FLAC tone, or a container with audio."""
    path = Path(path)
    # no two fixture files alike (MEAD repeats 001.m4a in every folder)
    freq = 150 + zlib.crc32("/".join(path.parts[-5:]).encode()) % 100_000 / 200
    if path.suffix.lower() in audio.CONTAINER_EXTENSIONS:
        sr = 16_000 if path.suffix.lower() != ".webm" else 48_000
        t = np.arange(int(secs * sr)) / sr
        return write_container(path, 0.3 * np.sin(2 * np.pi * freq * t), sr, video=path.suffix.lower() != ".m4a")
    return tone(path, 16_000, secs, freq=freq)


def write_csv(path: Path, header, rows, delimiter=",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=delimiter)
        w.writerow(header)
        w.writerows(rows)
    return path


# Emozionalmente: real file names (timestamps) with their EmoBox labels; actor names invented.
EMOZ = [("1613655062436.wav", "neutrality"), ("1619253465089.wav", "sadness"), ("1613063132088.wav", "joy"),
        ("1613478518982.wav", "anger"), ("1614016987617.wav", "surprise")]


def make_emozionalmente(root: Path, rows=EMOZ, *, extra_row=None) -> Path:
    for name, _ in rows:
        media(root / "emozionalmente" / "audio" / name)
    samples = [[name, f"actor{i % 2}", f"Frase numero {i}.", emo, "ok"] for i, (name, emo) in enumerate(rows)]
    if extra_row:
        samples.append(extra_row)
    write_csv(root / "emozionalmente" / "metadata" / "samples.csv",
              ["file_name", "actor", "sentence", "emotion_expressed", "status"], samples)
    write_csv(root / "emozionalmente" / "metadata" / "users.csv", ["username", "gender", "age"],
              [["actor0", "female", "25"], ["actor1", "male", "31"]])
    return root


ESD = ["0001/Neutral/0001_000001.wav", "0001/Angry/0001_000351.wav", "0011/Happy/0011_000751.wav",
       "0011/Sad/0011_001100.wav", "0020/Surprise/0020_001420.wav"]


def make_esd(root: Path, paths=ESD, *, split_folders=False) -> Path:
    base = root / "Emotion Speech Dataset"
    for rel in paths:
        spk, emo, name = rel.split("/")
        if split_folders:
            from jaxser.corpora.esd import split_of
            rel = f"{spk}/{emo}/{split_of(int(name[5:11]))}/{name}"
        media(base / rel)
    (base / "0001").mkdir(parents=True, exist_ok=True)
    (base / "0001" / "0001.txt").write_text("0001_000001\t打远一看，它们的确很是美丽，\t中立\n"
                                            "0001_000351\t打远一看，它们的确很是美丽，\t生气\n", encoding="utf-8")
    return root


MEAD = ["M003/audio/angry/level_1/001.m4a", "W019/audio/neutral/level_1/020.m4a",
        "M040/audio/contempt/level_3/030.m4a", "W040/audio/disgusted/level_2/007.m4a"]


def make_mead(root: Path, paths=MEAD) -> Path:
    for rel in paths:
        media(root / rel)
    return root


RESD = [("train", "happiness_enthusiasm_32/32_happiness_enthusiasm_h_120.wav", "happiness"),
        ("train", "03_disgust_neutral/03_disgust_neutral n_050.wav", "neutral"),
        ("train", "11_disgust_anger/11_anger_disgust d_200.wav", "disgust"),
        ("test", "anger_fear_34/34_anger_fear_a_060.wav", "anger"),
        ("test", "04_fear_enthusiasm/04_fear_enthusiasm f_120.wav", "fear")]


def make_resd(root: Path, rows=RESD) -> Path:
    for split in ("train", "test"):
        mine = [r for r in rows if r[0] == split]
        for _, rel, _ in mine:
            media(root / split / rel)
        write_csv(root / f"{split}.csv", ["name", "path", "emotion", "text"],
                  [[Path(rel).stem, rel, emo, "текст"] for _, rel, emo in mine])
    return root


EMNS = [("recorded_audio_RF6OuQ4.webm", "Disgust"), ("recorded_audio_KkeDrQa.webm", "Excited"),
        ("recorded_audio_oGl6q2Q.webm", "Surprised"), ("recorded_audio_DTKHnUN.webm", "Sarcastic")]


def make_emns(root: Path, rows=EMNS) -> Path:
    for name, _ in rows:
        media(root / "cleaned_webm" / name)
    write_csv(root / "metadata.csv", ["id", "utterance", "description", "emotion", "date_created", "status",
                                      "gender", "age", "level", "audio_recording"],
              [[i, f"Line {i}.", "", emo, "2022-08-01", "done", "Female", "25", "3", f"wavs/{name}"]
               for i, (name, emo) in enumerate(rows)], delimiter="|")
    return root


ENTERFACE = ["subject 19/anger/sentence 4/s19_an_4.avi", "subject 6/surprise/s6_su.avi",
             "subject 3/happiness/sentence 1/s_3_ha_1.avi", "subject 16/surprise/sentence 3/s16_su_3avi.avi",
             "subject 2/fear/sentence 5/s2_fe_5.avi", "subject 11/sadness/sentence 4/s12_sa_4.avi",
             "subject 2/anger/sentence 1/s2_an_2.avi", "subject 2/anger/sentence 2/s2_an_1.avi"]


def make_enterface(root: Path, paths=ENTERFACE) -> Path:
    for rel in paths:
        media(root / "enterface database" / rel)
    return root


MER = [("train", "sample_00002721", "neutral", ".avi"), ("train", "sample_00005854", "worried", ".avi"),
       ("test1", "sample_00000613", "angry", ".avi"), ("test2", "sample_00003358", "sad", ".mp4"),
       ("test3", "sample_00005933", "happy", ".mp4")]
_MER_DIRS = {"train": ("mer2023train/train", "mer2023train/train-label.csv"),
             "test1": ("test1", "test-labels/test1-label.csv"), "test2": ("test2", "test-labels/test2-label.csv"),
             "test3": ("mer2023train/test3", "test-labels/test3-label.csv")}


def make_mer2023(root: Path, rows=MER) -> Path:
    for split, (folder, table) in _MER_DIRS.items():
        mine = [r for r in rows if r[0] == split]
        for _, name, _, ext in mine:
            media(root / folder / f"{name}{ext}")
        write_csv(root / table, ["name", "discrete", "valence"], [[n, emo, "0.0"] for _, n, emo, _ in mine])
    return root


def make_pavoque(root: Path, segments: dict[str, list[tuple]] | None = None, secs: float = 3.0) -> Path:
    """`pavoque-<style>.flac` (a tone whose pitch steps every 0.5 s, so segments differ) and
    its YAML segment table: (prompt, style, start, end)."""
    import yaml

    segments = segments or {"poker": [("poker_n0010", "poker", 0.0, 1.1), ("poker_n0011", "poker", 1.1, 2.3)],
                            "outtakes": [("a0032a", "neutral", 0.2, 0.9), ("m0002a", "happy", 1.0, 2.0),
                                         ("m0002b", "happy", 1.9, 2.9)]}  # outtakes' spans may overlap
    sr = 16_000
    t = np.arange(int(secs * sr)) / sr
    for rec, segs in segments.items():
        base = 200 + sum(rec.encode()) % 97  # recordings differ, so no two segments are one recording
        wave = 0.3 * np.sin(2 * np.pi * (base + 100 * np.floor(t / 0.5)) * t)
        audio.write(root / f"pavoque-{rec}.flac", wave, sr)
        (root / f"pavoque-{rec}.yaml").write_text(yaml.safe_dump(
            [{"prompt": p, "text": f"Satz {p}.", "style": s, "start": a, "end": b,
              "segments": [{"lab": "H#", "end": a + 0.05}, {"lab": "a", "end": b}]} for p, s, a, b in segs],
            allow_unicode=True, sort_keys=False, default_flow_style=None))  # phones as the release writes them
    return root


def make_m3ed(root: Path, *, missing_wav: bool = False, code: str = "Anger") -> Path:
    ann = {"rucikeaidewomen": {"rucikeaidewomen_1": {
        "SpeakerInfo": {"A": {"Name": "林君霞", "Gender": "female"}, "B": {"Name": "王大力", "Gender": "male"}},
        "Dialog": {"rucikeaidewomen_1_1": {"Speaker": "A", "Text": "你好",
                                           "EmoAnnotation": {"final_main_emo": "Neutral"}},
                   "rucikeaidewomen_1_4": {"Speaker": "B", "Text": "走开",
                                           "EmoAnnotation": {"final_main_emo": "Disgust"}}}}},
        "shaonianpai": {"shaonianpai_1": {
            "SpeakerInfo": {"A": {"Name": "林妙妙", "Gender": "female"}},
            "Dialog": {"shaonianpai_1_1": {"Speaker": "A", "Text": "不行",
                                           "EmoAnnotation": {"final_main_emo": code}}}}}}
    (root / "splitInfo").mkdir(parents=True, exist_ok=True)
    (root / "annotation.json").write_text(json.dumps(ann, ensure_ascii=False), encoding="utf-8")
    (root / "splitInfo" / "movie_list_train.txt").write_text("rucikeaidewomen\n")
    (root / "splitInfo" / "movie_list_test.txt").write_text("shaonianpai\n")
    (root / "splitInfo" / "movie_list_val.txt").write_text("")
    for name in ["A_rucikeaidewomen_1_1", "B_rucikeaidewomen_1_4"] + ([] if missing_wav else ["A_shaonianpai_1_1"]):
        media(root / "modality_speech" / f"{name}.wav")
    return root
