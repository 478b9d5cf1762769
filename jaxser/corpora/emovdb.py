"""EmoV-DB, the Emotional Voices Database (Adigwe et al. 2018, arXiv:1806.09514;
github.com/numediart/EmoV-DB, openslr.org/115): CMU Arctic sentences read by four English
speakers in five styles, for emotional speech synthesis. The sorted release ships one archive
per speaker and style (`bea_Amused.tar.gz` ...) that unpacks to a `<speaker>_<Style>/` folder:

    <speaker>_<Style>/<style>_<first>-<last>_<sentence>.wav

e.g. `jenie_Amused/amused_57-84_0057.wav`: `57-84` is the annotation file's sentence range
and `0057` the CMU Arctic sentence number (`text`). Speakers: bea and jenie female, josh and
sam male (josh has no Angry or Disgusted set). Style words: amused, anger, disgust, neutral,
sleepiness (matched case-insensitively; `raw_label` keeps the spelling). Folder styles:
Amused Angry Disgusted Neutral Sleepy; a recognisable folder must agree with the file name.
A layout sorted as `<speaker>/<Style>/` works too.

Quirks of the release, accepted on purpose: some names use `_` inside the range
(`sleepiness_113_140_0113.wav`), some capitalise the style (`Disgust_...`, `Neutral_...`),
and the range does not always contain the sentence number (`anger_169-196_0165.wav`); the
range is not used. bea's files are 44.1 kHz, the others' 16 kHz.
"""
from __future__ import annotations

import re
from pathlib import Path

from jaxser.corpora.schema import CorpusError, find_audio, map_label, parse_files

NAME = "emovdb"
LANGUAGE = "en"
SAMPLE_RATE = None  # 44.1 kHz for bea, 16 kHz for the others
LABEL_MAP = {"amused": "amused", "anger": "angry", "disgust": "disgust", "neutral": "neutral", "sleepiness": "sleepy"}
FOLDERS = {"amused": "amused", "angry": "anger", "disgusted": "disgust", "neutral": "neutral", "sleepy": "sleepiness"}
SPEAKERS = {"bea": "female", "jenie": "female", "josh": "male", "sam": "male"}
#: Size and hours as EmoBox's list of the release counts them; speakers, licence, source from the owners.
CARD = {"utterances": 6887, "hours": 9.48, "speakers": "4 (2 female, 2 male)",
         "licence": "non-commercial purposes only (LICENSE.md of the repository)",
         "source": "openslr.org/115 (sorted archives <speaker>_<Style>.tar.gz); github.com/numediart/EmoV-DB"}
_NAME_RE = re.compile(r"^([A-Za-z]+)_(\d+)[-_](\d+)_(\d+)$")


def _speaker_and_style(path: Path) -> tuple[str | None, str | None]:
    parent, grand = path.parent.name.lower(), path.parent.parent.name.lower()
    spk, _, style = parent.partition("_")
    if spk in SPEAKERS and style in FOLDERS:
        return spk, FOLDERS[style]
    if grand in SPEAKERS:
        return grand, FOLDERS.get(parent)
    return None, None


def parse(path: Path) -> dict:
    m = _NAME_RE.match(path.stem)
    if not m:
        raise CorpusError(f"{NAME}: {path} does not follow EmoV-DB naming <style>_<first>-<last>_<sentence>.wav "
                          "(e.g. amused_57-84_0057.wav)")
    raw, _first, _last, sent = m.groups()
    emotion = map_label(NAME, raw.lower(), LABEL_MAP, path)
    spk, folder_style = _speaker_and_style(path)
    if spk is None:
        raise CorpusError(f"{NAME}: {path} is not in a <speaker>_<Style> folder of a known speaker "
                          f"({', '.join(SPEAKERS)}), e.g. jenie_Amused/; the speaker comes from that folder")
    if folder_style is not None and folder_style != raw.lower():
        raise CorpusError(f"{NAME}: {path} is in folder {path.parent.name!r} but its name says style {raw!r}")
    return {"utt": f"{spk}_{raw.lower()}_{sent}", "path": str(path), "speaker": spk, "gender": SPEAKERS[spk],
            "language": LANGUAGE, "emotion": emotion, "raw_label": raw, "text": sent}


def records(root, *, errors: list | None = None) -> list[dict]:
    """One record per WAV below root; `errors` collects per-file CorpusErrors instead of raising."""
    return parse_files(find_audio(root, NAME), parse, errors)
