"""TESS, the Toronto Emotional Speech Set (Dupuis & Pichora-Fuller 2010).

Two actresses, OAF (older, 64) and YAF (younger, 26), say "Say the word ___" with 200 NU-6
words in seven emotions: `{speaker}_{word}_{emotion}.wav`, e.g. `OAF_back_angry.wav`,
`YAF_dog_ps.wav` (ps = pleasant surprise). Releases put them in per-speaker/emotion folders
with inconsistent spelling (`OAF_Fear/`, `OAF_Pleasant_surprise/`, `YAF_pleasant_surprised/`)
or flat; only the file name is used, so folder spelling never matters.

Deliberately handled quirks of the distributed files:
- `OA_bite_neutral.wav` (in `OAF_neutral/`) lacks the F; the prefix `OA` is read as OAF, so
  it does not become a third, one-file speaker. Its id is the corrected `OAF_bite_neutral`.
- The Kaggle archive holds the corpus twice; identical copies are used once (warning).
- `YAF_germ_angry.wav` and `YAF_neat_fear.wav` are reported unreadable in some copies: if
  their header cannot be read they are skipped with a warning naming them; any other
  unreadable file is an error (kept with duration NaN under `skip_errors=True`).
"""
from __future__ import annotations

import warnings
from pathlib import Path

from jaxser.audio import AudioError, info
from jaxser.corpora.schema import drop_duplicate_copies
from jaxser.corpora.schema import CorpusError, find_audio, map_label, parse_files

NAME = "tess"
LANGUAGE = "en"
SAMPLE_RATE = 24_414
LABEL_MAP = {
    "angry": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happy",
    "neutral": "neutral",
    "ps": "surprise",  # pleasant surprise
    "sad": "sad",
}
SPEAKERS = ("OAF", "YAF")
#: Misspelled speaker prefixes in the official release -> the speaker they belong to.
SPEAKER_FIXES = {"OA": "OAF"}
#: Files reported as unreadable in distributed copies; skipped (with a warning) only if so.
KNOWN_BAD_FILES = ("YAF_germ_angry", "YAF_neat_fear")


def parse_name(path: Path) -> tuple[str, str, str]:
    """(speaker, word, emotion code as spelled) of a TESS file name; CorpusError otherwise."""
    parts = path.stem.split("_")
    if len(parts) != 3 or not all(parts):
        raise CorpusError(f"{NAME}: {path} does not follow TESS naming SPEAKER_word_emotion.wav "
                          "(e.g. OAF_back_angry.wav)")
    speaker, word, code = parts
    speaker = SPEAKER_FIXES.get(speaker, speaker)
    if speaker not in SPEAKERS:
        raise CorpusError(f"{NAME}: {path}: unknown speaker prefix {parts[0]!r} (known: OAF, YAF)")
    return speaker, word, code


def parse(path: Path, skipped: list, skip_errors: bool = False) -> dict | None:
    """The record of one file; None (and `path` appended to `skipped`) for an unreadable file
    of KNOWN_BAD_FILES. Any other unreadable file raises AudioError, or with `skip_errors`
    is kept with duration NaN (the extraction lists it)."""
    speaker, word, code = parse_name(path)
    emotion = map_label(NAME, code.lower(), LABEL_MAP, path)
    try:
        duration = info(path).duration
    except AudioError:
        if path.stem in KNOWN_BAD_FILES:
            skipped.append(path)
            return None
        if not skip_errors:
            raise
        duration = float("nan")
    return dict(
        utt=f"{speaker}_{word}_{code}",
        path=str(path.resolve()),
        speaker=speaker,
        gender="female",
        language=LANGUAGE,
        emotion=emotion,
        raw_label=code,
        text=word,
        duration=duration,
    )


def records(root, *, errors: list | None = None, skip_errors: bool = False) -> list[dict]:
    """One record per `*.wav` below `root`, with the word as text and header durations;
    `errors` collects per-file CorpusErrors instead of raising (an unreadable header outside
    KNOWN_BAD_FILES is an AudioError and raises unless `skip_errors`)."""
    skipped: list = []
    out = [r for r in parse_files(find_audio(root, NAME), lambda p: parse(p, skipped, skip_errors), errors)
           if r is not None]
    if skipped:
        warnings.warn(f"{NAME}: skipped {len(skipped)} unreadable file(s) known to be broken in some TESS "
                      f"copies: {', '.join(str(p) for p in skipped)}", stacklevel=2)
    return drop_duplicate_copies(NAME, out)
