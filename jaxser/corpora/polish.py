"""Emotions in Polish speech recordings (Mięsikowska & Świsulski 2020, Gdańsk University of
Technology, doi:10.34808/h46c-hb44): 450 single-word utterances by 5 young male speakers, six
words (nie, oddaj, podaj, stop, tak, trzymaj), five repetitions, three states. The archive
(`Speech_emotions.zip`) holds flat files named

    <speaker m1..m5>.<emotion letter>_<word>_<repetition 1..5>.wav

e.g. `m1.a_nie_2.wav`. Letters (dataset description): a anger, n neutral, s fear (Polish
*strach*; `s` is not sadness). The speaker prefix starts with the gender letter, `m` for all
five speakers of this release.
"""
from __future__ import annotations

import re
from pathlib import Path

from jaxser.corpora.schema import CorpusError, find_audio, map_label, parse_files

NAME = "polish"
LANGUAGE = "pl"
SAMPLE_RATE = 44_100
LABEL_MAP = {"a": "angry", "n": "neutral", "s": "fear"}
WORDS = ("nie", "oddaj", "podaj", "stop", "tak", "trzymaj")
#: Size and hours as EmoBox's list of the release counts them; speakers, licence, source from the owners.
CARD = {"utterances": 450, "hours": 0.11, "speakers": "5 (all male)", "licence": "? (see the dataset page)",
         "source": "mostwiedzy.pl open research data, doi:10.34808/h46c-hb44 (Speech_emotions.zip)"}
_NAME_RE = re.compile(r"^([mf])(\d+)\.([A-Za-z])_([a-z]+)_(\d+)$")


def parse(path: Path) -> dict:
    m = _NAME_RE.match(path.stem)
    if not m:
        raise CorpusError(f"{NAME}: {path} does not follow the naming <speaker>.<emotion>_<word>_<repetition>.wav "
                          "(e.g. m1.a_nie_2.wav)")
    g, spk, code, word, rep = m.groups()
    emotion = map_label(NAME, code, LABEL_MAP, path)
    if word not in WORDS:
        raise CorpusError(f"{NAME}: {path}: word {word!r} is not one of the release's words {', '.join(WORDS)}")
    return {"utt": path.stem, "path": str(path), "speaker": f"{g}{int(spk)}",
            "gender": "male" if g == "m" else "female", "language": LANGUAGE, "emotion": emotion,
            "raw_label": code, "text": word, "repetition": str(int(rep))}


def records(root, *, errors: list | None = None) -> list[dict]:
    """One record per WAV below root; `errors` collects per-file CorpusErrors instead of raising."""
    return parse_files(find_audio(root, NAME), parse, errors)
