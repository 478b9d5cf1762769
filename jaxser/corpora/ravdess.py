"""RAVDESS (Livingstone & Russo 2018), the audio-only speech part.

Files are `Actor_XX/03-01-EE-II-SS-RR-AA.wav`: modality, vocal channel, emotion, intensity,
statement, repetition, actor (odd = male, even = female). The Zenodo zip
`Audio_Speech_Actors_01-24.zip` unpacks to `Actor_01/ ...`; the Kaggle copy also nests them
in `audio_speech_actors_01-24/` and ships the same files a second time at the top level,
which is why identical copies are dropped here (`drop_duplicate_copies`).

Song files (vocal channel 02, from `Audio_Song_Actors_01-24.zip`) are a different task
(sung, six emotions); they are skipped and counted unless `include_song=True`. Video
modalities (01 full-AV, 02 video-only) are refused: their audio is the same performance as
the audio-only file and would duplicate utterances.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path

from jaxser.corpora.schema import CorpusError, drop_duplicate_copies, find_audio, map_label, parse_files

NAME = "ravdess"
LANGUAGE = "en"
SAMPLE_RATE = 48_000
LABEL_MAP = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fear",      # "fearful"
    "07": "disgust",
    "08": "surprise",  # "surprised"
}
#: The two lexically matched statements (RAVDESS README).
STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
_NAME_RE = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")


def parse_name(path: Path) -> dict:
    """The seven fields of a RAVDESS file name, validated; raises CorpusError naming the file."""
    m = _NAME_RE.match(path.stem)
    if not m:
        raise CorpusError(f"{NAME}: {path} does not follow RAVDESS naming MM-VV-EE-II-SS-RR-AA.wav "
                          "(e.g. 03-01-05-01-02-01-12.wav)")
    modality, channel, emotion, intensity, statement, repetition, actor = m.groups()
    if modality in ("01", "02"):
        kind = "full-AV" if modality == "01" else "video-only"
        raise CorpusError(f"{NAME}: {path} has modality {modality} ({kind} video); jaxser loads the "
                          "audio-only release (modality 03, Audio_Speech_Actors_01-24.zip)")
    if modality != "03":
        raise CorpusError(f"{NAME}: {path}: unknown modality {modality!r} (01, 02 or 03)")
    if channel not in ("01", "02"):
        raise CorpusError(f"{NAME}: {path}: unknown vocal channel {channel!r} (01 speech, 02 song)")
    for field, value in (("intensity", intensity), ("statement", statement), ("repetition", repetition)):
        if value not in ("01", "02"):
            raise CorpusError(f"{NAME}: {path}: {field} {value!r} is not 01 or 02")
    if not 1 <= int(actor) <= 24:
        raise CorpusError(f"{NAME}: {path}: actor {actor!r} is not in 01..24")
    return dict(modality=modality, channel=channel, emotion=emotion, intensity=intensity,
                statement=statement, repetition=repetition, actor=actor)


def parse(path: Path, include_song: bool) -> dict | None:
    """The record of one file, or None for a song file left out (`include_song=False`)."""
    f = parse_name(path)
    emotion = map_label(NAME, f["emotion"], LABEL_MAP, path)
    if f["channel"] == "02" and not include_song:
        return None
    return dict(
        utt=path.stem,
        path=str(path.resolve()),
        speaker=f["actor"],
        gender="male" if int(f["actor"]) % 2 else "female",
        language=LANGUAGE,
        emotion=emotion,
        raw_label=f["emotion"],
        text=STATEMENTS[f["statement"]],
    )


def records(root, *, include_song: bool = False, errors: list | None = None) -> list[dict]:
    """One record per speech file (and song file with `include_song`) anywhere below `root`;
    `errors` collects per-file CorpusErrors instead of raising."""
    parsed = parse_files(find_audio(root, NAME), lambda p: parse(p, include_song), errors)
    out = [r for r in parsed if r is not None]
    songs = len(parsed) - len(out)
    if songs:
        if not out:
            raise CorpusError(f"{NAME}: only song files (vocal channel 02, {songs}) below {root}; this loader "
                              "reads the speech part — pass include_song=True to load songs")
        warnings.warn(f"{NAME}: skipped {songs} song file(s) (vocal channel 02) below {root}; "
                      "pass include_song=True to include them", stacklevel=2)
    return drop_duplicate_copies(NAME, out)
