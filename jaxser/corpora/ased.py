"""ASED, the Amharic Speech Emotion Dataset v1 (Retta et al. 2022, ACM TALLIP;
github.com/Ethio2021/ASED_V1): 2,474 recordings by 65 native speakers (25 female, 40 male) of
four dialects, five emotions, kept when at least five of eight judges agreed. Five folders,
one per emotion (`01Neutral/ 02Fearful/ 03Happy/ 04Sad/ 05Angry/`), with names (README)

    <emotion letter><folder number>-<sentence 01..07>-<repetition 01|02>-<gender 01|02>-<speaker 01..65>.wav

e.g. `a5-03-01-02-50.wav` = angry (folder 5), sentence 3, first repetition, male speaker 50.
Letters: n neutral, f fearful, h happy, s sad, a angry; gender 01 female, 02 male. The letter
and the folder number must agree with each other and with a recognisable emotion folder.

Quirks of the release, handled on purpose:
- one file spells its letter in upper case, `04Sad/S4-04-02-01-29.wav`; letters are matched
  case-insensitively and `raw_label` keeps the spelling.
- the gender field is not constant for speakers 09, 15, 21, 23 and 25: each has exactly one
  file marked 02 among 11 to 65 marked 01. The README's count (25 female) holds only if all
  five are female, so a speaker's gender is the value most of its files carry (a tie is
  "unknown"); the disagreeing files are counted in a warning, and `gender_field` keeps each
  file's own value.

Sentence numbers count within an emotion's list (25 emotion-specific sentences plus two
common ones, 07 per folder); `text` is the sentence number, which groups sentence k of every
emotion together (a sentence-disjoint split is then conservative, never leaky).
"""
from __future__ import annotations

import re
import warnings
from collections import Counter
from pathlib import Path

from jaxser.corpora.schema import CorpusError, find_audio, map_label, parse_files

NAME = "ased"
LANGUAGE = "am"
SAMPLE_RATE = 16_000
LABEL_MAP = {"n": "neutral", "f": "fear", "h": "happy", "s": "sad", "a": "angry"}
FOLDER_NUMBERS = {"n": "1", "f": "2", "h": "3", "s": "4", "a": "5"}
FOLDERS = {"01neutral": "n", "02fearful": "f", "03happy": "h", "04sad": "s", "05angry": "a"}
#: Size and hours as EmoBox's list of the release counts them; speakers, licence, source from the owners.
CARD = {"utterances": 2474, "hours": 2.11, "speakers": "65 (25 female, 40 male)", "licence": "? (not stated)",
         "source": "github.com/Ethio2021/ASED_V1"}
_NAME_RE = re.compile(r"^([A-Za-z])(\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")


def parse(path: Path) -> dict:
    m = _NAME_RE.match(path.stem)
    if not m:
        raise CorpusError(f"{NAME}: {path} does not follow ASED naming <emotion><folder>-<sentence>-<repetition>-"
                          "<gender>-<speaker>.wav (e.g. a5-03-01-02-50.wav)")
    raw, num, sent, rep, g, spk = m.groups()
    code = raw.lower()
    emotion = map_label(NAME, code, LABEL_MAP, path)
    if FOLDER_NUMBERS[code] != num:
        raise CorpusError(f"{NAME}: {path}: emotion letter {raw!r} goes with folder number {FOLDER_NUMBERS[code]}, "
                          f"not {num}")
    want = FOLDERS.get(path.parent.name.lower())
    if want is not None and want != code:
        raise CorpusError(f"{NAME}: {path} is in folder {path.parent.name!r} but its name says emotion {raw!r}")
    if g not in ("01", "02"):
        raise CorpusError(f"{NAME}: {path}: gender field {g!r} is not 01 (female) or 02 (male)")
    if rep not in ("01", "02"):
        raise CorpusError(f"{NAME}: {path}: repetition {rep!r} is not 01 or 02")
    return {"utt": path.stem, "path": str(path), "speaker": spk, "gender": "female" if g == "01" else "male",
            "language": LANGUAGE, "emotion": emotion, "raw_label": raw, "text": sent, "repetition": rep,
            "gender_field": g}


def records(root, *, errors: list | None = None) -> list[dict]:
    """One record per WAV below root, each speaker's gender by majority of its files; `errors`
    collects per-file CorpusErrors instead of raising."""
    out = parse_files(find_audio(root, NAME), parse, errors)
    votes: dict[str, Counter] = {}
    for r in out:
        votes.setdefault(r["speaker"], Counter())[r["gender"]] += 1
    majority = {}
    for spk, c in votes.items():
        (top, n), *rest = c.most_common()
        majority[spk] = "unknown" if rest and rest[0][1] == n else top
    odd = [r for r in out if r["gender"] != majority[r["speaker"]]]
    for r in out:
        r["gender"] = majority[r["speaker"]]
    if odd:
        warnings.warn(f"{NAME}: {len(odd)} file(s) carry a gender field unlike most files of their speaker "
                      f"(e.g. {Path(odd[0]['path']).name}); each speaker keeps its majority gender", stacklevel=2)
    return out
