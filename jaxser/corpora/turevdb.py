"""TurEV-DB, the Turkish Emotion-Voice Database (Canpolat, Ormanoğlu & Zeyrek 2020, SLTU;
github.com/Xeonen/TurEV-DB): 1,735 single-word utterances of 82 words by six speakers in four
emotions. The recordings are in `Sound Source/<Emotion>/` (Angry Calm Happy Sad), named

    <speaker id>_<emotion code>_<word>.wav

e.g. `1984_sk_eger.wav`. Codes are Turkish: kz kızgın (angry), sk sakin (calm), mt mutlu
(happy), hl hüzünlü (sad); the folder must agree with the code. Speaker genders are not given
per speaker, so gender is "unknown".

The repository also holds filtered copies of the same recordings (e.g. `Model Output for Test
Data/testEmotions500HighPass/sound/Angry/1157_kz_beste.wav`) which are not utterances of the
corpus: when a `Sound Source` folder exists below the root only files inside it are read.
"""
from __future__ import annotations

import re
from pathlib import Path

from jaxser.corpora.schema import CorpusError, find_audio, map_label, parse_files

NAME = "turevdb"
LANGUAGE = "tr"
SAMPLE_RATE = 44_100
LABEL_MAP = {"kz": "angry", "sk": "calm", "mt": "happy", "hl": "sad"}
FOLDERS = {"angry": "kz", "calm": "sk", "happy": "mt", "sad": "hl"}
SOURCE_FOLDER = "sound source"
#: Size and hours as EmoBox's list of the release counts them; speakers, licence, source from the owners.
CARD = {"utterances": 1735, "hours": 0.46, "speakers": "6", "licence": "CC BY-NC-ND 4.0 (repository README)",
         "source": "github.com/Xeonen/TurEV-DB (folder Sound Source)"}
_NAME_RE = re.compile(r"^(\d+)_([A-Za-z]{2})_([^_\s]+)$")


def parse(path: Path) -> dict:
    m = _NAME_RE.match(path.stem)
    if not m:
        raise CorpusError(f"{NAME}: {path} does not follow TurEV-DB naming <speaker>_<emotion code>_<word>.wav "
                          "(e.g. 1984_sk_eger.wav)")
    spk, code, word = m.groups()
    emotion = map_label(NAME, code.lower(), LABEL_MAP, path)
    want = FOLDERS.get(path.parent.name.lower())
    if want is not None and want != code.lower():
        raise CorpusError(f"{NAME}: {path} is in folder {path.parent.name!r} but its name says emotion {code!r}")
    return {"utt": path.stem, "path": str(path), "speaker": spk, "gender": "unknown", "language": LANGUAGE,
            "emotion": emotion, "raw_label": code, "text": word}


def records(root, *, errors: list | None = None) -> list[dict]:
    """One record per WAV in `Sound Source/` (or anywhere below root when there is no such
    folder); `errors` collects per-file CorpusErrors instead of raising."""
    root = Path(root)
    paths = find_audio(root, NAME)
    inside = [p for p in paths if any(part.lower() == SOURCE_FOLDER for part in p.relative_to(root).parts[:-1])]
    return parse_files(inside or paths, parse, errors)
