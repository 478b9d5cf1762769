"""EmoDB, the Berlin Database of Emotional Speech (Burkhardt et al. 2005).

Ten actors, ten German sentences, seven emotions, 16 kHz. File names carry everything:
`wav/03a01Fa.wav` = speaker 03, text a01, emotion F (Freude), version a. Speaker genders
come from the official documentation (speaker table of emodb.bilderbar.info).
"""
from __future__ import annotations

import re
from pathlib import Path

from jaxser.corpora.schema import CorpusError, find_audio, map_label, parse_files

NAME = "emodb"
LANGUAGE = "de"
SAMPLE_RATE = 16_000
#: German initials: Wut, Langeweile, Ekel, Angst, Freude, Trauer, Neutral.
LABEL_MAP = {"W": "angry", "L": "boredom", "E": "disgust", "A": "fear", "F": "happy", "T": "sad", "N": "neutral"}
GENDERS = {"03": "male", "08": "female", "09": "female", "10": "male", "11": "male",
           "12": "male", "13": "female", "14": "female", "15": "male", "16": "female"}
TEXTS = ("a01", "a02", "a04", "a05", "a07", "b01", "b02", "b03", "b09", "b10")
_NAME_RE = re.compile(r"^(\d\d)([ab]\d\d)([A-Z])([a-z])$")


def parse_name(path: Path) -> tuple[str, str, str, str]:
    """(speaker, text, emotion letter, version) of an EmoDB file name; CorpusError otherwise."""
    m = _NAME_RE.match(path.stem)
    if not m:
        raise CorpusError(f"{NAME}: {path} does not follow EmoDB naming SSTTTEV.wav (e.g. 03a01Fa.wav)")
    speaker, text, code, version = m.groups()
    if speaker not in GENDERS:
        raise CorpusError(f"{NAME}: {path}: unknown speaker {speaker!r} (known: {', '.join(GENDERS)})")
    if text not in TEXTS:
        raise CorpusError(f"{NAME}: {path}: unknown text code {text!r} (known: {', '.join(TEXTS)})")
    return speaker, text, code, version


def parse(path: Path) -> dict:
    """The record of one EmoDB file; CorpusError naming the file otherwise."""
    speaker, text, code, _version = parse_name(path)
    return dict(
        utt=path.stem,
        path=str(path.resolve()),
        speaker=speaker,
        gender=GENDERS[speaker],
        language=LANGUAGE,
        emotion=map_label(NAME, code, LABEL_MAP, path),
        raw_label=code,
        text=text,
    )


def records(root, *, errors: list | None = None) -> list[dict]:
    """One record per `*.wav` below `root` (the `wav/` folder of the release); `errors`
    collects per-file CorpusErrors instead of raising."""
    return parse_files(find_audio(root, NAME), parse, errors)
