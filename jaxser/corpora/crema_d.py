"""CREMA-D (Cao et al. 2014): 91 actors, 12 sentences, six emotions, 16 kHz WAV.

Files are `AudioWAV/{ActorID}_{Sentence}_{Emotion}_{Level}.wav`, e.g. `1001_DFA_ANG_XX.wav`.
Gender is not in the file name; it comes from `VideoDemographics.csv` (ActorID, Age, Sex,
Race, Ethnicity), looked for anywhere below the root (or given as `demographics=`). Without
it genders are "unknown" and a warning says so. Only WAV is read: the repository's
`AudioMP3/` files are the rated web versions, several of them blank (upstream issue #13).

Four WAVs of the release are broken and are left out by default, each named in a warning
(`KNOWN_BAD_FILES`; `include_known_bad=True` keeps them): they are not a naming problem, so
the pattern stays strict and only these exact stems are treated specially.
"""
from __future__ import annotations

import csv
import os
import re
import warnings
from pathlib import Path

from jaxser.corpora.schema import CorpusError, find_audio, map_label, parse_files

NAME = "cremad"
LANGUAGE = "en"
SAMPLE_RATE = 16_000
LABEL_MAP = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
#: Sentence codes and their text (CREMA-D README).
SENTENCES = {
    "IEO": "It's eleven o'clock",
    "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before",
    "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}
#: Intensity levels: low, medium, high, unspecified. `X` is how one release spelled
#: 1040_ITH_SAD_X.wav (upstream issue #6, later renamed to XX); both mean unspecified.
LEVELS = ("LO", "MD", "HI", "XX", "X")
#: WAVs of the release that are not usable utterances, with the reason. Independent public
#: CREMA-D processing code skips exactly these stems (sources in docs/corpora.md): two are
#: near-empty, one has almost no duration and one is a one-minute recording of every emotion
#: of its sentence, so its DIS label is wrong.
KNOWN_BAD_FILES = {
    "1076_MTI_NEU_XX": "near-empty audio",
    "1076_MTI_SAD_XX": "near-empty audio",
    "1064_TIE_SAD_XX": "almost no duration",
    "1064_IEO_DIS_MD": "one-minute recording of every emotion of the sentence (label wrong)",
}
DEMOGRAPHICS = "VideoDemographics.csv"
_NAME_RE = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{1,2})$")
_LFS_HEAD = b"version https://git-lfs"


def find_demographics(root) -> Path | None:
    """`VideoDemographics.csv` anywhere below `root` (first in sorted order), else None."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__MACOSX")
        if DEMOGRAPHICS in filenames:
            return Path(dirpath) / DEMOGRAPHICS
    return None


def read_demographics(path) -> dict[str, str]:
    """ActorID -> female/male from the official demographics table."""
    genders = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = {"ActorID", "Sex"} - set(reader.fieldnames or ())
        if missing:
            raise CorpusError(f"{NAME}: {path} lacks column(s) {sorted(missing)} (expected ActorID,Age,Sex,...)")
        for line, row in enumerate(reader, start=2):
            sex = (row["Sex"] or "").strip().lower()
            if sex not in ("female", "male"):
                raise CorpusError(f"{NAME}: {path} line {line}: Sex {row['Sex']!r} is not Female or Male")
            genders[row["ActorID"].strip()] = sex
    return genders


def parse_name(path: Path) -> tuple[str, str, str, str]:
    """(actor, sentence, emotion, level) of a CREMA-D file name; CorpusError if it is not one."""
    m = _NAME_RE.match(path.stem)
    if not m:
        raise CorpusError(f"{NAME}: {path} does not follow CREMA-D naming ActorID_Sentence_Emotion_Level.wav "
                          "(e.g. 1001_DFA_ANG_XX.wav)")
    actor, sentence, emotion, level = m.groups()
    if not 1001 <= int(actor) <= 1091:
        raise CorpusError(f"{NAME}: {path}: actor {actor} is not in 1001..1091")
    if sentence not in SENTENCES:
        raise CorpusError(f"{NAME}: {path}: unknown sentence code {sentence!r} (known: {', '.join(SENTENCES)})")
    if level not in LEVELS:
        raise CorpusError(f"{NAME}: {path}: unknown intensity level {level!r} (known: {', '.join(LEVELS)})")
    return actor, sentence, emotion, level


def _check_not_lfs_pointer(path: Path) -> None:
    # The GitHub repository stores audio in git-lfs; a clone without `git lfs pull` leaves
    # ~130-byte text pointers with the right names, which would otherwise fail much later.
    if path.stat().st_size < 1024:
        with open(path, "rb") as f:
            if f.read(len(_LFS_HEAD)) == _LFS_HEAD:
                raise CorpusError(f"{NAME}: {path} is a git-lfs pointer, not audio; run `git lfs pull` "
                                  "in the CREMA-D clone (or download the AudioWAV files)")


def parse(path: Path, genders: dict[str, str] | None, csv_path: Path | None) -> dict:
    """The record of one CREMA-D file; CorpusError naming the file if it is not usable."""
    actor, sentence, code, _level = parse_name(path)
    emotion = map_label(NAME, code, LABEL_MAP, path)
    _check_not_lfs_pointer(path)
    if genders is not None and actor not in genders:
        raise CorpusError(f"{NAME}: actor {actor} of {path} is missing from {csv_path}")
    return dict(
        utt=path.stem,
        path=str(path.resolve()),
        speaker=actor,
        gender=genders[actor] if genders is not None else "unknown",
        language=LANGUAGE,
        emotion=emotion,
        raw_label=code,
        text=sentence,
    )


def records(root, *, demographics=None, errors: list | None = None,
            include_known_bad: bool = False) -> list[dict]:
    """One record per `*.wav` below `root`; `demographics` overrides the CSV search. `errors`
    collects per-file CorpusErrors instead of raising (a missing or malformed demographics
    file still raises). KNOWN_BAD_FILES are skipped with a warning naming them unless
    `include_known_bad`."""
    paths = find_audio(root, NAME)
    if not include_known_bad:
        bad = [p for p in paths if p.stem in KNOWN_BAD_FILES]
        if bad:
            paths = [p for p in paths if p.stem not in KNOWN_BAD_FILES]
            warnings.warn(f"{NAME}: left out {len(bad)} file(s) known to be broken in the CREMA-D release: "
                          + "; ".join(f"{p} ({KNOWN_BAD_FILES[p.stem]})" for p in bad)
                          + " (include_known_bad=True keeps them)", stacklevel=2)
    csv_path = Path(demographics) if demographics is not None else find_demographics(root)
    if csv_path is not None and not csv_path.is_file():
        raise CorpusError(f"{NAME}: demographics file {csv_path} does not exist")
    genders = read_demographics(csv_path) if csv_path is not None else None
    if genders is None:
        warnings.warn(f"{NAME}: {DEMOGRAPHICS} not found below {root}; speaker genders are 'unknown' "
                      "(copy it from the CREMA-D repository or pass demographics=...)", stacklevel=2)
    return parse_files(paths, lambda p: parse(p, genders, csv_path), errors)
