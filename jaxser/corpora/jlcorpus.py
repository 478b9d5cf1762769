"""JL-Corpus (James, Tian & Watson 2018, Interspeech; kaggle.com/datasets/tli725/jl-corpus):
New Zealand English, four actors (female1, female2, male1, male2), five primary emotions
(angry, sad, neutral, happy, excited) and five secondary ones (anxious, apologetic, assertive,
concerned, encouraging), 2,400 sentence-level files. The raw release folder
`Raw JL corpus (unchecked and unannotated)/JL(wav+txt)/` holds WAVs (and transcript .txt files)
named

    <female|male><1|2>_<emotion>_<sentence number><a|b>_<take 1|2>.wav

e.g. `male2_concerned_6b_1.wav`. Every emotion is kept under EmoBox's class names: the
secondary emotions and `excited` are classes of their own (never merged into happy).
`text` is the sentence code (`6b`); `take` is an extra column.

The Kaggle upload also holds a partial lower-case copy of the raw folder (identical files,
used once with a warning) and the material of a perception test. When a `JL(wav+txt)` folder
exists below the root, only files inside such folders are read.
"""
from __future__ import annotations

import re
from pathlib import Path

from jaxser.corpora.schema import CorpusError, drop_duplicate_copies, find_audio, map_label, parse_files

NAME = "jlcorpus"
LANGUAGE = "en-NZ"
SAMPLE_RATE = 44_100
LABEL_MAP = {"angry": "angry", "sad": "sad", "neutral": "neutral", "happy": "happy", "excited": "excited",
             "anxious": "anxious", "apologetic": "apologetic", "assertive": "assertive", "concerned": "concerned",
             "encouraging": "encouraging"}
#: Size and hours as EmoBox's list of the release counts them; speakers, licence, source from the owners.
CARD = {"utterances": 2400, "hours": 1.41, "speakers": "4 (2 female, 2 male)",
         "licence": "CC0 (the authors' Kaggle upload)",
         "source": "kaggle.com/datasets/tli725/jl-corpus (folder Raw JL corpus (unchecked and unannotated))"}
_NAME_RE = re.compile(r"^((?:fe)?male)([12])_([A-Za-z]+)_(\d+)([abAB])_(\d+)$")


def parse(path: Path) -> dict:
    m = _NAME_RE.match(path.stem)
    if not m:
        raise CorpusError(f"{NAME}: {path} does not follow JL-Corpus naming <female|male><n>_<emotion>_<sentence>"
                          "<a|b>_<take>.wav (e.g. male2_concerned_6b_1.wav)")
    sex, n, code, sent, letter, take = m.groups()
    emotion = map_label(NAME, code, LABEL_MAP, path)
    return {"utt": path.stem, "path": str(path), "speaker": f"{sex}{n}", "gender": sex, "language": LANGUAGE,
            "emotion": emotion, "raw_label": code, "text": f"{int(sent)}{letter.lower()}", "take": str(int(take))}


SOURCE_FOLDER = "jl(wav+txt)"


def records(root, *, errors: list | None = None) -> list[dict]:
    """One record per WAV in `JL(wav+txt)/` folders (or anywhere below root when there is none;
    identical copies used once); `errors` collects per-file CorpusErrors instead of raising."""
    root = Path(root)
    paths = find_audio(root, NAME)
    inside = [p for p in paths if any(part.lower() == SOURCE_FOLDER for part in p.relative_to(root).parts[:-1])]
    return drop_duplicate_copies(NAME, parse_files(inside or paths, parse, errors))
