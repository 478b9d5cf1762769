"""AESDD, the Acted Emotional Speech Dynamic Database (Vryzas et al. 2018; m3c.web.auth.gr):
Greek utterances by professional actors in five emotions. Version 1: 5 actors (3 female,
2 male), 19 scripted utterances plus one improvised per actor and emotion, ~500 files; later
releases add actors under the same scheme. One folder per emotion (`anger/ disgust/ fear/
happiness/ sadness/`); names per the release README:

    <emotion letter><utterance 01..20> (<speaker number>)[take letter].wav

e.g. `a01 (1).wav`, `f12 (01).wav`, `d04 (5)b.wav` (a second qualified take). Letters: a
anger, d disgust, f fear, h happiness, s sadness. Utterance 20 is the improvised one.

Gender: the README gives the actors' genders only as counts, not per speaker number, so it is
"unknown" unless you pass `genders={"1": "female", ...}`. (Some third-party loaders assume
odd numbers are male; the release does not say so, so jaxser does not.)

One file of the distributed corpus is broken: `sadness/s05 (3).wav` has no WAV `data` chunk
(libsndfile: "No 'data' chunk marker"), so it cannot be read. nkululeko's
`data/aesdd/process_database.py` leaves it out by name, EmoBox's `data/aesdd` file list has no
`s05 (3)`, and MTEB's AESDD task drops it as a corrupt WAV. If its header cannot be read it is
skipped with a warning naming it (`KNOWN_BAD_FILES`); if your copy has a readable one it is
kept. Any other unreadable file is still an AudioError when the dataset is built.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path

from jaxser.audio import AudioError, info
from jaxser.corpora.schema import CorpusError, GENDERS, find_audio, map_label, parse_files

NAME = "aesdd"
LANGUAGE = "el"
SAMPLE_RATE = 44_100
LABEL_MAP = {"a": "angry", "d": "disgust", "f": "fear", "h": "happy", "s": "sad"}
FOLDERS = {"anger": "a", "disgust": "d", "fear": "f", "happiness": "h", "sadness": "s"}
#: File stems broken in the distributed corpus; skipped (with a warning) only if unreadable.
KNOWN_BAD_FILES = ("s05 (3)",)
_NAME_RE = re.compile(r"^([A-Za-z])(\d{1,2})\s*\((\d+)\)\s*([A-Za-z]?)$")


def parse(path: Path, root, genders: dict) -> dict:
    m = _NAME_RE.match(path.stem)
    if not m:
        raise CorpusError(f"{NAME}: {path} does not follow AESDD naming <emotion><utterance> (<speaker>)[take].wav "
                          "(e.g. 'a01 (1).wav')")
    code, sent, spk_raw, take = m.groups()
    code = code.lower()
    emotion = map_label(NAME, code, LABEL_MAP, path)
    for folder in path.relative_to(root).parts[:-1]:
        want = FOLDERS.get(folder.lower())
        if want is not None and want != code:
            raise CorpusError(f"{NAME}: {path} is in folder {folder!r} but its name says emotion {code!r}")
    spk = str(int(spk_raw))
    return {"utt": f"{code}{int(sent):02d}_{spk_raw}{take.lower()}", "path": str(path), "speaker": spk,
            "gender": genders.get(spk, "unknown"), "language": LANGUAGE, "emotion": emotion, "raw_label": code,
            "text": f"{int(sent):02d}", "take": take.lower()}


def records(root, *, genders: dict | None = None, errors: list | None = None) -> list[dict]:
    """One record per WAV below root; `errors` collects per-file CorpusErrors instead of raising."""
    genders = {str(int(k)): v for k, v in (genders or {}).items()}
    bad = {k: v for k, v in genders.items() if v not in GENDERS}
    if bad:
        raise CorpusError(f"{NAME}: genders {bad} not in {GENDERS}")
    root = Path(root)
    out = parse_files(find_audio(root, NAME), lambda p: parse(p, root, genders), errors)
    skipped = [r["path"] for r in out if Path(r["path"]).stem in KNOWN_BAD_FILES and not _readable(r["path"])]
    if skipped:
        warnings.warn(f"{NAME}: skipped {len(skipped)} unreadable file(s) known to be broken in the AESDD "
                      f"release: {', '.join(skipped)}", stacklevel=2)
    return [r for r in out if r["path"] not in skipped]


def _readable(path) -> bool:
    try:
        info(path)
    except AudioError:
        return False
    return True
