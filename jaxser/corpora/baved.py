"""BAVED, the Basic Arabic Vocal Emotions Dataset (github.com/40uf411/Basic-Arabic-Vocal-
Emotions-Dataset, also on Kaggle): 1935 recordings of 7 Arabic words by 61 speakers (45 male,
16 female), normalised to 16 kHz mono. Files sit in one folder per word (`0/ ... 6/`) and are
named

    <speaker id>-<m|f>-<age>-<word 0..6>-<emotion level 0..2>-<record id>.wav

e.g. `0-m-21-0-0-1.wav`. The label is an emotion *level*, not a category: 0 = low ("like
feeling tired or feeling down"), 1 = normal (everyday speech, neutral), 2 = high (a strong
positive or negative emotion: happiness, joy, sadness, anger, ...).

The level is kept faithfully (`raw_label` "0"/"1"/"2" and an extra `level` column
low/normal/high). Turning levels into canonical categories is a choice, made explicit by the
`level_map` option: a preset name from LEVEL_MAPS or a dict {"0": ..., "1": ..., "2": ...};
levels missing from the map are excluded and counted (`excluded=Counter()`).

- "arousal" (default): 0 -> sad, 1 -> neutral, 2 -> angry. Level 1 is neutral by the
  README's own words and level 0's "tired/down" is low-arousal negative, closest to sad.
  Level 2 mixes positive and negative high-arousal speech and has no faithful category;
  angry is used as the high-arousal prototype so that BAVED shares three classes with the
  4-class cross-corpus benchmark. Treat results on it as arousal-level transfer.
- "strict": 0 -> sad, 1 -> neutral; level 2 is excluded.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from jaxser.corpora.schema import EMOTIONS, CorpusError, UnknownLabelError, find_audio, map_label, parse_files

NAME = "baved"
LANGUAGE = "ar"
SAMPLE_RATE = 16_000
LEVELS = {"0": "low", "1": "normal", "2": "high"}
LEVEL_MAPS = {
    "arousal": {"0": "sad", "1": "neutral", "2": "angry"},
    "strict": {"0": "sad", "1": "neutral"},
}
DEFAULT_LEVEL_MAP = "arousal"
LABEL_MAP = LEVEL_MAPS[DEFAULT_LEVEL_MAP]
#: The seven words (README order; it spells word 5 "مقول", read here as "مقبول", acceptable).
#: `text` holds the word number.
WORDS = ("اعجبني", "لم يعجبني", "هذا", "الفيلم", "رائع", "مقبول", "سيئ")
_NAME_RE = re.compile(r"^(\d+)-([mfMF])-(\d+)-(\d+)-(\d+)-(\d+)$")


def label_map(*, level_map: str | dict = DEFAULT_LEVEL_MAP) -> dict[str, str]:
    """Resolve the `level_map` option to a {level: canonical emotion} dict (validated)."""
    if isinstance(level_map, str):
        if level_map not in LEVEL_MAPS:
            raise CorpusError(f"{NAME}: unknown level_map preset {level_map!r}; presets: {sorted(LEVEL_MAPS)} "
                              "or a dict {'0': emotion, '1': emotion, '2': emotion}")
        return dict(LEVEL_MAPS[level_map])
    out = {str(k): v for k, v in dict(level_map).items()}
    bad = {k: v for k, v in out.items() if k not in LEVELS or v not in EMOTIONS}
    if bad:
        raise CorpusError(f"{NAME}: level_map entries {bad} are invalid: keys must be levels {sorted(LEVELS)}, "
                          f"values known labels {EMOTIONS}")
    return out


def parse(path: Path, root, mapping: dict) -> dict | str:
    """The record of one file, or its level code when the level map excludes it."""
    m = _NAME_RE.match(path.stem)
    if not m:
        raise CorpusError(f"{NAME}: {path} does not follow BAVED naming speaker-gender-age-word-level-record.wav "
                          "(e.g. 0-m-21-0-0-1.wav)")
    spk, g, age, word, level, _rec = m.groups()
    if level not in LEVELS:
        raise UnknownLabelError(NAME, level, path, LEVELS)
    if int(word) >= len(WORDS):
        raise CorpusError(f"{NAME}: {path}: word number {word} is not one of 0..{len(WORDS) - 1}")
    folder = path.parent.name
    if folder.isdigit() and folder != word and path.parent != Path(root):
        raise CorpusError(f"{NAME}: {path} is in word folder {folder!r} but its name says word {word}")
    if level not in mapping:
        return level
    return {"utt": path.stem, "path": str(path), "speaker": str(int(spk)),
            "gender": "female" if g.lower() == "f" else "male", "language": LANGUAGE,
            "emotion": map_label(NAME, level, mapping, path), "raw_label": level, "text": word,
            "level": LEVELS[level], "age": str(int(age)), "word": word}


def records(root, *, level_map: str | dict = DEFAULT_LEVEL_MAP, errors: list | None = None,
            excluded: Counter | None = None) -> list[dict]:
    """One record per WAV whose level the map covers; `errors` collects per-file CorpusErrors
    instead of raising, `excluded` counts the levels left out."""
    root = Path(root)
    mapping = label_map(level_map=level_map)
    return parse_files(find_audio(root, NAME), lambda p: parse(p, root, mapping), errors, excluded)
