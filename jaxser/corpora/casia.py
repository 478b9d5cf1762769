"""CASIA Chinese emotional speech corpus (Institute of Automation, Chinese Academy of Sciences):
four speakers (wangzhe and zhaozuoxiang male, liuchang and zhaoquanyin female),
six emotions. The freely circulated part has 1,200 files, 50 sentences (numbered 201-250) per
speaker and emotion, in one folder per speaker and emotion:

    <speaker>/<emotion>/<sentence number>.wav

e.g. `wangzhe/angry/201.wav`. Emotion folders: angry fear happy neutral sad surprise. The
release spells one speaker `liuchanhg` (for liuchang) and some copies capitalise
`ZhaoZuoxiang`; speaker folders are matched case-insensitively and both spellings of liuchang
are the same speaker (`SPEAKERS`). Speaker codes are the corrected lower-case names.
"""
from __future__ import annotations

from pathlib import Path

from jaxser.corpora.schema import CorpusError, find_audio, map_label, parse_files

NAME = "casia"
LANGUAGE = "zh"
SAMPLE_RATE = 16_000
LABEL_MAP = {"angry": "angry", "fear": "fear", "happy": "happy", "neutral": "neutral", "sad": "sad",
             "surprise": "surprise"}
#: speaker folder (lower-cased) -> (speaker code, gender)
SPEAKERS = {"liuchanhg": ("liuchang", "female"), "liuchang": ("liuchang", "female"),
            "wangzhe": ("wangzhe", "male"), "zhaoquanyin": ("zhaoquanyin", "female"),
            "zhaozuoxiang": ("zhaozuoxiang", "male")}
#: Size and hours as EmoBox's list of the release counts them; speakers, licence, source from the owners.
CARD = {"utterances": 1200, "hours": 0.64, "speakers": "4 (2 female, 2 male)", "licence": "? (not stated)",
         "source": "CASIA (Institute of Automation, CAS); the 1,200-file part circulates freely"}


def parse(path: Path) -> dict:
    spk_dir, emo_dir = path.parent.parent.name, path.parent.name
    if spk_dir.lower() not in SPEAKERS or not path.stem.isdigit():
        raise CorpusError(f"{NAME}: {path} is not <speaker>/<emotion>/<sentence number>.wav with a CASIA speaker "
                          f"folder ({', '.join(sorted(SPEAKERS))}), e.g. wangzhe/angry/201.wav")
    emotion = map_label(NAME, emo_dir, LABEL_MAP, path)
    spk, gender = SPEAKERS[spk_dir.lower()]
    num = str(int(path.stem))
    return {"utt": f"{spk}_{emo_dir}_{num}", "path": str(path), "speaker": spk, "gender": gender,
            "language": LANGUAGE, "emotion": emotion, "raw_label": emo_dir, "text": num}


def records(root, *, errors: list | None = None) -> list[dict]:
    """One record per WAV below root; `errors` collects per-file CorpusErrors instead of raising."""
    return parse_files(find_audio(root, NAME), parse, errors)
