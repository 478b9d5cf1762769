"""ShEMO, the Sharif Emotional Speech Database (Mohamad Nezami et al. 2019): 3000 semi-natural
Persian utterances from radio plays, 87 speakers, 44.1 kHz. Distributed as `female/` and
`male/` folders (github.com/pariajm/sharif-emotional-speech-dataset) with names like
`F01A01.wav`:

    <F|M><speaker 01..><emotion letter><index>

Letters (release README): A anger, F fear, H happiness, N neutral, S sadness, W surprise. The
first letter is the gender (F female, M male), so the speaker is the gender letter plus its
number (female F01 and male M01 are different people). A file in a `female`/`male` folder
must agree with its name.
"""
from __future__ import annotations

import re
from pathlib import Path

from jaxser.corpora.schema import CorpusError, find_audio, map_label, parse_files

NAME = "shemo"
LANGUAGE = "fa"
SAMPLE_RATE = 44_100
LABEL_MAP = {"A": "angry", "F": "fear", "H": "happy", "N": "neutral", "S": "sad", "W": "surprise"}
_NAME_RE = re.compile(r"^([FM])(\d{2})([A-Za-z])(\d+)$")


def parse(path: Path, root) -> dict:
    m = _NAME_RE.match(path.stem)
    if not m:
        raise CorpusError(f"{NAME}: {path} does not follow ShEMO naming <F|M><speaker><emotion><index>.wav "
                          "(e.g. F01A01.wav)")
    g, spk, code, _idx = m.groups()
    emotion = map_label(NAME, code, LABEL_MAP, path)
    gender = "female" if g == "F" else "male"
    for folder in path.relative_to(root).parts[:-1]:
        if folder.lower() in ("female", "male") and folder.lower() != gender:
            raise CorpusError(f"{NAME}: {path} is in folder {folder!r} but its name says {gender}")
    return {"utt": path.stem, "path": str(path), "speaker": f"{g}{spk}", "gender": gender, "language": LANGUAGE,
            "emotion": emotion, "raw_label": code, "text": ""}


def records(root, *, errors: list | None = None) -> list[dict]:
    """One record per WAV below root; `errors` collects per-file CorpusErrors instead of raising."""
    root = Path(root)
    return parse_files(find_audio(root, NAME), lambda p: parse(p, root), errors)
