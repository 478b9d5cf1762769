"""Oréau, a French emotional speech database (Zenodo record 4405783): 79 everyday classroom
sentences, 10 to 13 written for each of seven emotions, read by 32 non-professional speakers.
Version 1 holds 502 utterances; version 2 keeps the 434 (90 %) a perception test recognised.
Each version unpacks to its own folder, `OréauFR_01/` or `OréauFR_02/`, with one folder per
gender and per emotion session:

    OréauFR_02/<f|m>/sess<emotion letter>/<speaker 2 digits><text code><emotion><version>.wav

e.g. `OréauFR_02/f/sessj/10a02Ja.wav` = speaker 10, text a02, joie, version a (EmoDB-like).
Letters are French: C colère (angry), D dégoût (disgust), J joie (happy), N neutre, P peur
(fear), S surprise, T tristesse (sad). Gender comes from the `f`/`m` folder ("unknown" if a
copy has flattened it); the session folder must agree with the letter.

The release writes the é of `Oréau` decomposed (Unicode NFD: `e` + U+0301), so the same name
can arrive in either normal form depending on the system that unpacked it. Folder names are
compared after NFC normalisation; `version=1` or `version=2` picks one version when a root
holds both (it must then be given: version 2 is a selection of version 1, so together they
would hold most recordings twice).
"""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from jaxser.corpora.schema import CorpusError, find_audio, map_label, parse_files

NAME = "oreau"
LANGUAGE = "fr"
SAMPLE_RATE = 44_100
LABEL_MAP = {"C": "angry", "D": "disgust", "J": "happy", "N": "neutral", "P": "fear", "S": "surprise", "T": "sad"}
GENDER_FOLDERS = {"f": "female", "m": "male"}
#: Size and hours as EmoBox's list of the release counts them; speakers, licence, source from the owners.
CARD = {"utterances": 434, "hours": 0.34, "speakers": "32 (version 2: 7 female, 25 male)",
         "licence": "? (see the Zenodo record)", "source": "zenodo.org/record/4405783 (OréauFR_02, version 2)"}
_NAME_RE = re.compile(r"^(\d\d)([a-z]\d\d)([A-Z])([a-z])$")
_VERSION_RE = re.compile(r"^oréaufr_0*(\d+)$")


def nfc(name: str) -> str:
    return unicodedata.normalize("NFC", name)


def version_of(path: Path, root: Path) -> str | None:
    """The release version of a file, from its `OréauFR_0N` folder in either normal form."""
    for part in path.relative_to(root).parts[:-1]:
        m = _VERSION_RE.match(nfc(part).lower())
        if m:
            return m.group(1)
    return None


def parse(path: Path, root: Path) -> dict:
    m = _NAME_RE.match(path.stem)
    if not m:
        raise CorpusError(f"{NAME}: {path} does not follow Oréau naming <speaker><text><emotion><version>.wav "
                          "(e.g. 10a02Ja.wav)")
    spk, text, code, version = m.groups()
    emotion = map_label(NAME, code, LABEL_MAP, path)
    gender = "unknown"
    for part in path.relative_to(root).parts[:-1]:
        key = nfc(part).lower()
        if key in GENDER_FOLDERS:
            gender = GENDER_FOLDERS[key]
        if key.startswith("sess") and len(key) == 5 and key[4].upper() != code:
            raise CorpusError(f"{NAME}: {path} is in folder {part!r} but its name says emotion {code!r}")
    return {"utt": path.stem, "path": str(path), "speaker": spk, "gender": gender, "language": LANGUAGE,
            "emotion": emotion, "raw_label": code, "text": text, "release": version_of(path, root) or ""}


def records(root, *, version: int | str | None = None, errors: list | None = None) -> list[dict]:
    """One record per WAV below root (of release `version` when given); `errors` collects
    per-file CorpusErrors instead of raising."""
    root = Path(root)
    paths = find_audio(root, NAME)
    found = {version_of(p, root) for p in paths} - {None}
    if version is not None:
        want = str(int(version))
        paths = [p for p in paths if version_of(p, root) == want]
        if not paths:
            raise CorpusError(f"{NAME}: no OréauFR_0{want} folder with audio below {root} "
                              f"(found versions: {', '.join(sorted(found)) or 'none'})")
    elif len(found) > 1:
        raise CorpusError(f"{NAME}: {root} holds Oréau versions {', '.join(sorted(found))} "
                          "(OréauFR_01, OréauFR_02); pass version=1 or version=2 to load one")
    return parse_files(paths, lambda p: parse(p, root), errors)
