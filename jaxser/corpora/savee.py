"""SAVEE, Surrey Audio-Visual Expressed Emotion (Haq & Jackson 2009): four male British
English speakers, seven emotions, 480 utterances, 44.1 kHz.

The release is `AudioData/{DC,JE,JK,KL}/{code}{nn}.wav` (codes a d f h n sa su; 15 files per
emotion, 30 neutral), so the speaker is the folder. Common redistributions (e.g. Kaggle's
`ALL/`) flatten this to `DC_a01.wav`. Both layouts are read; ids are always `DC_a01`, so a
folder holding both copies yields each utterance once (identical copies) or an error.
The sentence number is an index within the emotion, not a sentence id shared across
emotions (most sentences differ per emotion), so `text` is left empty.
"""
from __future__ import annotations

import re
from pathlib import Path

from jaxser.corpora.schema import drop_duplicate_copies
from jaxser.corpora.schema import CorpusError, find_audio, map_label, parse_files

NAME = "savee"
LANGUAGE = "en"
SAMPLE_RATE = 44_100
LABEL_MAP = {"a": "angry", "d": "disgust", "f": "fear", "h": "happy", "n": "neutral", "sa": "sad",
             "su": "surprise"}
SPEAKERS = ("DC", "JE", "JK", "KL")
#: Utterances per emotion code (neutral was recorded twice as often).
COUNTS = {"a": 15, "d": 15, "f": 15, "h": 15, "n": 30, "sa": 15, "su": 15}
_FLAT_RE = re.compile(r"^([A-Za-z]{2})_([a-z]+)(\d\d)$")
_TREE_RE = re.compile(r"^([a-z]+)(\d\d)$")


def parse_path(path: Path) -> tuple[str, str, str]:
    """(speaker, emotion code, number) from `DC/a01.wav` or `DC_a01.wav`; CorpusError otherwise."""
    m = _FLAT_RE.match(path.stem)
    if m:
        speaker, code, num = m.groups()
        where = "file name prefix"
    else:
        m = _TREE_RE.match(path.stem)
        if not m:
            raise CorpusError(f"{NAME}: {path} does not follow SAVEE naming AudioData/<speaker>/a01.wav "
                              "or <speaker>_a01.wav")
        code, num = m.groups()
        speaker, where = path.parent.name, "folder"
    if speaker not in SPEAKERS:
        raise CorpusError(f"{NAME}: {path}: speaker {where} {speaker!r} is not one of {', '.join(SPEAKERS)}")
    return speaker, code, num


def parse(path: Path) -> dict:
    """The record of one SAVEE file; CorpusError naming the file otherwise."""
    speaker, code, num = parse_path(path)
    emotion = map_label(NAME, code, LABEL_MAP, path)
    if not 1 <= int(num) <= COUNTS[code]:
        raise CorpusError(f"{NAME}: {path}: utterance number {num} is outside 01..{COUNTS[code]:02d} "
                          f"for emotion {code!r}")
    return dict(
        utt=f"{speaker}_{code}{num}",
        path=str(path.resolve()),
        speaker=speaker,
        gender="male",
        language=LANGUAGE,
        emotion=emotion,
        raw_label=code,
        text="",
    )


def records(root, *, errors: list | None = None) -> list[dict]:
    """One record per `*.wav` below `root` in either layout; `errors` collects per-file
    CorpusErrors instead of raising (same-id copies with different contents still raise)."""
    return drop_duplicate_copies(NAME, parse_files(find_audio(root, NAME), parse, errors))
