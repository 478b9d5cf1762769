"""MEAD (Wang et al. 2020), the audio of the Multi-view Emotional Audio-visual Dataset: 48
actors (M003 ... W040), eight emotions at three intensity levels (neutral: one), AAC audio
in `.m4a` files decoded through `jaxser.audio` (PyAV).

Layout, per actor archive: `M003/audio/angry/level_1/001.m4a` (actor, emotion, level,
take). Speaker and gender come from the actor code (`M` male, `W` female).
"""
from __future__ import annotations

import re
from pathlib import Path

from jaxser.corpora.schema import CorpusError, find_audio, map_label, parse_files

NAME = "mead"
LANGUAGE = "en"
SAMPLE_RATE = 48_000
LABEL_MAP = {"neutral": "neutral", "angry": "angry", "contempt": "contempt", "disgusted": "disgust", "fear": "fear",
             "happy": "happy", "sad": "sad", "surprised": "surprise"}
LEVELS = ("level_1", "level_2", "level_3")
_ACTOR_RE = re.compile(r"^([MW])0\d\d$")
_TAKE_RE = re.compile(r"^\d{3}$")
CARD = dict(utterances=31729, hours=37.3, speakers=48, licence="research use (see the MEAD project page)",
            source="https://wywu.github.io/projects/MEAD/MEAD.html (per-actor archives; audio.tar)")


def parse(path: Path) -> dict:
    parts = path.parts
    if len(parts) < 5 or parts[-4] != "audio":
        raise CorpusError(f"{NAME}: {path} is not in MEAD's ACTOR/audio/EMOTION/LEVEL/NNN.m4a layout")
    actor, code, level, take = parts[-5], parts[-3], parts[-2], path.stem
    if not _ACTOR_RE.match(actor):
        raise CorpusError(f"{NAME}: {path}: actor folder {actor!r} is not M0NN or W0NN")
    emotion = map_label(NAME, code, LABEL_MAP, path)
    if level not in LEVELS or (code == "neutral" and level != "level_1"):
        raise CorpusError(f"{NAME}: {path}: level folder {level!r} is not one of {', '.join(LEVELS)} "
                          "(neutral has level_1 only)")
    if not _TAKE_RE.match(take):
        raise CorpusError(f"{NAME}: {path}: take {take!r} is not a three-digit number")
    return dict(utt=f"{actor}_{code}_{level}_{take}", path=str(path.resolve()), speaker=actor,
                gender="male" if actor[0] == "M" else "female", language=LANGUAGE, emotion=emotion,
                raw_label=code, text="", level=level[-1])


def records(root, *, errors: list | None = None) -> list[dict]:
    """One record per `.m4a` below `root` (the video archives' `.mp4` files are not read)."""
    return parse_files(find_audio(root, NAME, (".m4a",)), parse, errors)
