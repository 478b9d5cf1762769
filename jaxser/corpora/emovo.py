"""EMOVO (Costantini et al. 2014): six Italian actors, 14 sentences, seven emotions, 48 kHz.

Files are `{speaker}/{emotion}-{speaker}-{sentence}.wav`, e.g. `f1/dis-f1-b1.wav`; the
speaker code's letter is the gender (f/m). Sentence codes: b1-b3 short, l1-l4 long,
n1-n5 nonsense, d1-d2 questions. Most originals are stereo; `jaxser.audio` averages to mono.
"""
from __future__ import annotations

import re
from pathlib import Path

from jaxser.corpora.schema import CorpusError, find_audio, map_label, parse_files

NAME = "emovo"
LANGUAGE = "it"
SAMPLE_RATE = 48_000
#: Italian: disgusto, gioia, neutro, paura, rabbia, sorpresa, tristezza.
LABEL_MAP = {"dis": "disgust", "gio": "happy", "neu": "neutral", "pau": "fear", "rab": "angry",
             "sor": "surprise", "tri": "sad"}
SPEAKERS = ("f1", "f2", "f3", "m1", "m2", "m3")
SENTENCES = ("b1", "b2", "b3", "d1", "d2", "l1", "l2", "l3", "l4", "n1", "n2", "n3", "n4", "n5")
_NAME_RE = re.compile(r"^([a-z]+)-([a-z]\d)-([a-z]\d)$")


def parse_name(path: Path) -> tuple[str, str, str]:
    """(emotion code, speaker, sentence) of an EMOVO file name; CorpusError otherwise."""
    m = _NAME_RE.match(path.stem)
    if not m:
        raise CorpusError(f"{NAME}: {path} does not follow EMOVO naming emotion-speaker-sentence.wav "
                          "(e.g. dis-f1-b1.wav)")
    code, speaker, sentence = m.groups()
    if speaker not in SPEAKERS:
        raise CorpusError(f"{NAME}: {path}: unknown speaker {speaker!r} (known: {', '.join(SPEAKERS)})")
    if sentence not in SENTENCES:
        raise CorpusError(f"{NAME}: {path}: unknown sentence code {sentence!r} (known: {', '.join(SENTENCES)})")
    return code, speaker, sentence


def parse(path: Path) -> dict:
    """The record of one EMOVO file; CorpusError naming the file otherwise."""
    code, speaker, sentence = parse_name(path)
    return dict(
        utt=path.stem,
        path=str(path.resolve()),
        speaker=speaker,
        gender="female" if speaker[0] == "f" else "male",
        language=LANGUAGE,
        emotion=map_label(NAME, code, LABEL_MAP, path),
        raw_label=code,
        text=sentence,
    )


def records(root, *, errors: list | None = None) -> list[dict]:
    """One record per `*.wav` below `root` (speaker folders or flat); `errors` collects
    per-file CorpusErrors instead of raising."""
    return parse_files(find_audio(root, NAME), parse, errors)
