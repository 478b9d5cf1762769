"""ESD, the Emotional Speech Dataset (Zhou, Sisman, Liu & Li 2021): 10 Mandarin and 10 English
speakers, 350 parallel sentences in five emotions each, 16 kHz WAV.

Layout: `Emotion Speech Dataset/0001/Angry/0001_000351.wav`, with `0001/0001.txt` (id, text,
emotion; Mandarin speakers write the emotion in Chinese). Older copies put each emotion's
files in `train/`, `evaluation/` and `test/` sub-folders. Either way the official split is the
`split` column: within each emotion's 350 utterances, the first 20 are evaluation, the next 30
test and the last 300 train; a split folder that disagrees is an error.
"""
from __future__ import annotations

import re
from pathlib import Path

from jaxser.corpora.schema import CorpusError, find_audio, map_label, parse_files

NAME = "esd"
SAMPLE_RATE = 16_000
LABEL_MAP = {"Neutral": "neutral", "Angry": "angry", "Happy": "happy", "Sad": "sad", "Surprise": "surprise"}
#: Utterance numbers run in blocks of 350 per emotion, in this order (the release's numbering).
BLOCKS = ("Neutral", "Angry", "Happy", "Sad", "Surprise")
#: Speakers as the release README lists them: 0001-0010 Mandarin, 0011-0020 English.
SPEAKERS = {"0001": "female", "0002": "female", "0003": "female", "0004": "male", "0005": "male", "0006": "male",
            "0007": "female", "0008": "male", "0009": "female", "0010": "male", "0011": "male", "0012": "male",
            "0013": "male", "0014": "male", "0015": "female", "0016": "female", "0017": "female",
            "0018": "female", "0019": "female", "0020": "male"}
_SPLIT_FOLDERS = {"train": "train", "evaluation": "evaluation", "test": "test"}
_NAME_RE = re.compile(r"^(\d{4})_(\d{6})$")
CARD = dict(utterances=35000, hours=29.1, speakers=20, licence="research use only (release README)",
            source="https://hltsingapore.github.io/ESD/ (request form; Google Drive archive)")


def split_of(number: int) -> str:
    """The official split of utterance `number` (1..1750)."""
    k = (number - 1) % 350
    return "evaluation" if k < 20 else "test" if k < 50 else "train"


def _transcripts(speaker_dir: Path, speaker: str) -> dict[str, str]:
    f = speaker_dir / f"{speaker}.txt"
    if not f.is_file():
        return {}
    data = f.read_bytes()
    for enc in ("utf-8-sig", "gb18030"):  # Mandarin transcripts: UTF-8, or the GB encoding of Chinese Windows
        try:
            text = data.decode(enc)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise CorpusError(f"{NAME}: {f} is neither UTF-8 nor GB18030 text; re-save it as UTF-8")
    out = {}
    for raw in text.splitlines():
        parts = raw.strip().split("\t")
        if len(parts) >= 2:
            out[parts[0]] = parts[1].strip()
    return out


def parse(path: Path, texts: dict) -> dict:
    m = _NAME_RE.match(path.stem)
    if not m:
        raise CorpusError(f"{NAME}: {path} does not follow ESD naming SSSS_NNNNNN.wav (e.g. 0011_000351.wav)")
    speaker, num = m.group(1), int(m.group(2))
    if speaker not in SPEAKERS:
        raise CorpusError(f"{NAME}: {path}: speaker {speaker} is not one of 0001..0020")
    if not 1 <= num <= 1750:
        raise CorpusError(f"{NAME}: {path}: utterance number {num} is not in 1..1750")
    parents = [p.name for p in path.parents]
    split_dir = parents[0] if parents[0] in _SPLIT_FOLDERS else None
    code = parents[1] if split_dir else parents[0]
    emotion = map_label(NAME, code, LABEL_MAP, path)
    if code != BLOCKS[(num - 1) // 350]:
        raise CorpusError(f"{NAME}: {path}: utterance {num} belongs to {BLOCKS[(num - 1) // 350]}, not the "
                          f"{code} folder")
    split = split_of(num)
    if split_dir and split_dir != split:
        raise CorpusError(f"{NAME}: {path} is in a {split_dir}/ folder but utterance {num} is in the official "
                          f"{split} split")
    if parents[2 if split_dir else 1] != speaker:
        raise CorpusError(f"{NAME}: {path}: file of speaker {speaker} is not in that speaker's folder")
    spk_dir = path.parents[2 if split_dir else 1]
    if spk_dir not in texts:
        texts[spk_dir] = _transcripts(spk_dir, speaker)
    return dict(utt=path.stem, path=str(path.resolve()), speaker=speaker, gender=SPEAKERS[speaker],
                language="zh" if int(speaker) <= 10 else "en", emotion=emotion, raw_label=code,
                text=texts[spk_dir].get(path.stem, ""), split=split)


def records(root, *, errors: list | None = None) -> list[dict]:
    """One record per `SSSS_NNNNNN.wav` below `root`, with the official `split`."""
    texts: dict = {}
    return parse_files(find_audio(root, NAME), lambda p: parse(p, texts), errors)
