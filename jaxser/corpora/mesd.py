"""MESD, the Mexican Emotional Speech Database (Duville, Alonso-Valerdi & Ibarra-Zarate 2021;
Mendeley Data doi:10.17632/cy34mh68j9): single Spanish words in six affective prosodies by
non-professional actors, 3 adult female, 2 adult male and 6 child voices. One flat folder
(`Mexican Emotional Speech Database (MESD)/`) of files named

    <Emotion>_<voice F|M|C>_<word corpus A|B>_<word>.wav

e.g. `Anger_F_A_tarde.wav`, `Fear_M_A_basta_ya.wav` (a word may contain underscores).
Emotions: Anger Disgust Fear Happiness Neutral Sadness. Voice: F adult female, M adult male,
C child. Word corpus A repeats nouns and adjectives across prosodies and voices; corpus B
words are controlled for age of acquisition, frequency, familiarity and concreteness.

The names do not identify the individual speaker, only the voice type, so the speaker code is
the voice type (`F`, `M`, `C`): three groups, which speaker-independent folds treat as three
speakers (leave-one-group-out). Gender is female/male for adult voices and "unknown" for
children (not given). Extra columns: `voice` (adult female, adult male, child) and
`word_corpus` (A, B); `text` is the word (underscores as spaces).
"""
from __future__ import annotations

import re
from pathlib import Path

from jaxser.corpora.schema import CorpusError, find_audio, map_label, parse_files

NAME = "mesd"
LANGUAGE = "es-MX"
SAMPLE_RATE = 48_000
LABEL_MAP = {"Anger": "angry", "Disgust": "disgust", "Fear": "fear", "Happiness": "happy", "Neutral": "neutral",
             "Sadness": "sad"}
VOICES = {"F": ("adult female", "female"), "M": ("adult male", "male"), "C": ("child", "unknown")}
#: Size and hours as EmoBox's list of the release counts them; speakers, licence, source from the owners.
CARD = {"utterances": 862, "hours": 0.17, "speakers": "11 voices (3 adult female, 2 adult male, 6 children)",
         "licence": "CC BY 4.0 (as redistributions citing Mendeley Data V5 state it; check the record)",
         "source": "Mendeley Data, doi:10.17632/cy34mh68j9"}
_NAME_RE = re.compile(r"^([A-Za-z]+)_([A-Za-z])_([A-Za-z])_(\S+)$")


def parse(path: Path) -> dict:
    m = _NAME_RE.match(path.stem)
    if not m:
        raise CorpusError(f"{NAME}: {path} does not follow MESD naming <Emotion>_<F|M|C>_<A|B>_<word>.wav "
                          "(e.g. Anger_F_A_tarde.wav)")
    code, voice, wc, word = m.groups()
    emotion = map_label(NAME, code, LABEL_MAP, path)
    if voice.upper() not in VOICES:
        raise CorpusError(f"{NAME}: {path}: voice {voice!r} is not F (adult female), M (adult male) or C (child)")
    if wc.upper() not in ("A", "B"):
        raise CorpusError(f"{NAME}: {path}: word corpus {wc!r} is not A or B")
    kind, gender = VOICES[voice.upper()]
    return {"utt": path.stem, "path": str(path), "speaker": voice.upper(), "gender": gender, "language": LANGUAGE,
            "emotion": emotion, "raw_label": code, "text": word.replace("_", " "), "voice": kind,
            "word_corpus": wc.upper()}


def records(root, *, errors: list | None = None) -> list[dict]:
    """One record per WAV below root; `errors` collects per-file CorpusErrors instead of raising."""
    return parse_files(find_audio(root, NAME), parse, errors)
