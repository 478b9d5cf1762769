"""Tiny trees of MELD, MSP-Podcast and MSP-IMPROV in their releases' real layouts and label
formats: MELD's `*_sent_emo.csv` tables with 5.1 AAC MP4 clips, MSP-Podcast's
`Labels/labels_consensus.csv` with `Audios/`, MSP-IMPROV's `Evaluation.txt` with its session
folders."""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from tests.helpers.containers import write_container
from tests.helpers.corpus_release_trees import tone
from tests.helpers.emobox_b_trees import write_csv

# ---------------------------------------------------------------- MELD

MELD_HEADER = ["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID", "Season",
               "Episode", "StartTime", "EndTime"]
#: split -> [(utterance text, speaker, emotion, sentiment, dialogue, utterance)]; the texts carry
#: the release's C1-encoded punctuation (U+0092 for an apostrophe).
MELD_ROWS = {
    "train": [("also I was the point person on my company\x92s transition", "Chandler", "neutral", "neutral", 0, 0),
              ("You must\x92ve had your hands full.", "The Interviewer", "neutral", "neutral", 0, 1),
              ("Oh my God!", "Monica", "joy", "positive", 1, 0),
              ("No way!", "Ross", "surprise", "positive", 125, 3)],      # the release's broken clip
    "dev": [("Oh, what do you mean?", "Phoebe", "anger", "negative", 0, 0),
            ("Okay.", "Rachel", "sadness", "negative", 110, 7)],          # no clip in the release
    "test": [("Why do all you\x92re coffee mugs have numbers on the bottom?", "Mark", "surprise", "positive", 0, 0),
             ("Oh. That\x92s so Monica can keep track.", "Rachel", "fear", "negative", 0, 1),
             ("Ew.", "Joey", "disgust", "negative", 2, 0)],
}
#: where the release (as EmoBox unpacked it: train.tar.gz into train/) keeps each split's clips
MELD_FOLDERS = {"train": "train/train_splits", "dev": "dev_splits_complete", "test": "output_repeated_splits_test"}
MELD_TABLES = {"train": "train_sent_emo.csv", "dev": "dev_sent_emo.csv", "test": "test_sent_emo.csv"}
#: clips the release ships without a table row
MELD_SPARE = ["dev_splits_complete/dia49_utt4.mp4", "output_repeated_splits_test/final_videos_testdia101_utt0.mp4"]


def surround_clip(path: Path, secs: float = 0.25, sr: int = 48_000) -> Path:
    """An MP4 with a tiny video track and 5.1 AAC audio, as MELD's clips are; the tone's pitch
    depends on the path so no two clips are alike."""
    freq = 150 + zlib.crc32("/".join(Path(path).parts[-2:]).encode()) % 100_000 / 200
    t = np.arange(int(secs * sr)) / sr
    wave = np.stack([0.2 * np.sin(2 * np.pi * freq * (1 + 0.01 * c) * t) for c in range(6)]).astype(np.float32)
    return write_container(path, wave, sr, layout="5.1")


def make_meld(root: Path, *, rows=None, skip: tuple = (), spare: bool = True) -> Path:
    """MELD.Raw below `root`: the three tables and a clip for each row except dev dia110_utt7
    (and `skip`, a list of (split, 'diaD_uttU'))."""
    base = root / "MELD.Raw"
    for split, items in (rows or MELD_ROWS).items():
        write_csv(base / MELD_TABLES[split], MELD_HEADER,
                  [[i + 1, text, spk, emo, sent, d, u, 1, 1, "00:00:01,000", "00:00:02,000"]
                   for i, (text, spk, emo, sent, d, u) in enumerate(items)])
        for *_, d, u in items:
            stem = f"dia{d}_utt{u}"
            if (split, stem) not in {("dev", "dia110_utt7"), *skip}:
                surround_clip(base / MELD_FOLDERS[split] / f"{stem}.mp4")
    if spare:
        for rel in MELD_SPARE:
            surround_clip(base / rel)
        (base / "dev_splits_complete" / "._dia0_utt0.mp4").write_bytes(b"\x00\x05\x16\x07 resource fork")
    return root


# ---------------------------------------------------------------- MSP-Podcast

MSPP_HEADER = ["FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set"]
MSPP_ROWS = [
    ["MSP-PODCAST_0001_0008.wav", "N", "4.2", "4.4", "4.6", "127", "Female", "Test1"],
    ["MSP-PODCAST_0001_0012.wav", "H", "5.8", "6.2", "5.0", "127", "Female", "Train"],
    ["MSP-PODCAST_0002_0031.wav", "X", "3.0", "2.6", "3.4", "Unknown", "Unknown", "Development"],
    ["MSP-PODCAST_0003_0004.wav", "C", "3.6", "2.0", "4.8", "1002", "Male", "Test2"],
    ["MSP-PODCAST_0004_0100.wav", "A", "6.4", "1.8", "6.0", "884", "Male", "Train"],
    ["MSP-PODCAST_0004_0101.wav", "S", "1.6", "1.4", "2.0", "884", "Male", "Train"],
]


def make_msppodcast(root: Path, *, rows=None, labels="labels_consensus.csv", audio="Audios", missing=()) -> Path:
    rows = MSPP_ROWS if rows is None else rows
    write_csv(root / "Labels" / labels, MSPP_HEADER, rows)
    for r in rows:
        if r[0] not in missing:
            tone(root / audio / r[0], 16_000)
    return root


# ---------------------------------------------------------------- MSP-IMPROV

def improv_block(name: str, code: str, a="3.000000", v="3.000000", d="3.000000", n="3.400000") -> str:
    """A summary line and two raters' lines of Evaluation.txt, then the blank separator."""
    return (f"UTD-IMPROV-{name}.avi; {code}; A:{a}; V:{v}; D:{d} ; N:{n};\n"
            f"rater01; Neutral; Neutral; A:3.000000; V:3.000000; D:3.000000; N:3.000000;\n"
            f"rater02; Happy; Happy,Excited; A:4.000000; V:4.000000; D:3.000000; N:4.000000;\n\n")


#: name (without MSP-IMPROV-) -> (category, A, V, D)
IMPROV = {
    "S01A-F01-P-FM01": ("N", "3.000000", "3.200000", "3.000000"),
    "S01A-M01-T-MF01": ("A", "4.200000", "1.800000", "4.000000"),
    "S02H-F01-R-FM02": ("H", "3.800000", "4.600000", "3.400000"),
    "S03S-M02-S-MF03": ("S", "1.600000", "1.400000", "NaN"),
    "S04N-F02-P-FM04": ("X", "2.800000", "2.600000", "2.400000"),
    "S05A-M02-T-MF05": ("O", "3.400000", "2.200000", "3.600000"),
}


def make_mspimprov(root: Path, *, items=None, extra: str = "", missing=(), spare: bool = True) -> Path:
    items = IMPROV if items is None else items
    text = "".join(improv_block(n, c, a, v, d) for n, (c, a, v, d) in items.items())
    first = next(iter(items))
    text += improv_block(first, *items[first])  # the release repeats some blocks verbatim
    root.mkdir(parents=True, exist_ok=True)
    (root / "Evaluation.txt").write_text(text + extra)
    names = [*items, *(["S06H-F03-R-FM06"] if spare else [])]
    for n in names:
        if n in missing:
            continue
        sentence, speaker, rec = n.split("-")[:3]
        tone(root / "Audio" / f"session{int(speaker[1:])}" / sentence / rec / f"MSP-IMPROV-{n}.wav", 16_000)
    return root
