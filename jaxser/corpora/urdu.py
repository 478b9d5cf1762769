"""URDU (Latif et al. 2018, "Cross lingual speech emotion recognition: Urdu vs. Western
languages"): 400 utterances from Urdu talk shows, four emotions. The paper and README speak
of 38 speakers (27 male, 11 female), but the released file names carry only 29 speaker codes
(SM1-SM7 and SM17-SM27: 18 male; SF1-SF11: 11 female; per the repository's file list), so a
speaker-independent split sees 29 speakers. Distributed as github.com/siddiquelatif/URDU-Dataset
with one folder per emotion
(`Angry/ Happy/ Neutral/ Sad/`) and names like `SM1_F10_A010.wav`:

    S<M|F><speaker number>_F<file number of that speaker>_<emotion letter><running index>

The speaker code (`SM1`, `SF10`) is global across the emotion folders; the letter after the
last underscore is the emotion (A angry, H happy, N neutral, S sad). When a file sits in one
of the four emotion folders, the folder must agree with the letter.
"""
from __future__ import annotations

import re
from pathlib import Path

from jaxser.corpora.schema import CorpusError, find_audio, map_label, parse_files

NAME = "urdu"
LANGUAGE = "ur"
#: Not stated by the dataset README; the card reports the real rates of your copy.
SAMPLE_RATE = None
LABEL_MAP = {"A": "angry", "H": "happy", "N": "neutral", "S": "sad"}
FOLDERS = {"angry": "A", "happy": "H", "neutral": "N", "sad": "S"}
_NAME_RE = re.compile(r"^S([MF])(\d+)_F(\d+)_([A-Za-z])(\d+)$")


def parse(path: Path, root) -> dict:
    m = _NAME_RE.match(path.stem)
    if not m:
        raise CorpusError(f"{NAME}: {path} does not follow URDU naming S<M|F><speaker>_F<file>_<emotion><index>.wav "
                          "(e.g. SM1_F10_A010.wav)")
    g, spk, _file, code, _idx = m.groups()
    emotion = map_label(NAME, code, LABEL_MAP, path)
    for folder in path.relative_to(root).parts[:-1]:
        want = FOLDERS.get(folder.lower())
        if want is not None and want != code:
            raise CorpusError(f"{NAME}: {path} is in folder {folder!r} but its name says emotion {code!r}")
    return {"utt": path.stem, "path": str(path), "speaker": f"S{g}{int(spk)}",
            "gender": "female" if g == "F" else "male", "language": LANGUAGE, "emotion": emotion,
            "raw_label": code, "text": ""}


def records(root, *, errors: list | None = None) -> list[dict]:
    """One record per WAV below root; `errors` collects per-file CorpusErrors instead of raising."""
    root = Path(root)
    return parse_files(find_audio(root, NAME), lambda p: parse(p, root), errors)
