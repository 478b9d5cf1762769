"""M3ED (Zhao et al. 2022), the Multi-modal Multi-scene Multi-label Emotional Dialogue
dataset: Mandarin TV-series dialogues, utterance audio in `modality_speech/`.

Layout: `annotation.json` = {series: {dialog: {"SpeakerInfo": {"A": {"Name": ...}, ...},
"Dialog": {utterance: {"Speaker": "A", "EmoAnnotation": {"final_main_emo": ...}, ...}}}}};
audio `modality_speech/<speaker letter>_<utterance>.wav`; `splitInfo/movie_list_{train,
val,test}.txt` name each series' split. The speaker is `<series>_<character name>` (a
character is one actor within a series); the label is the final main emotion.
Labelled utterances whose WAV the release lacks are left out with a warning giving their
count (EmoBox skips them too).
"""
from __future__ import annotations

import json
import warnings

from jaxser.corpora.schema import CorpusError, find_file, map_label

NAME = "m3ed"
LANGUAGE = "zh"
SAMPLE_RATE = 16_000
LABEL_MAP = {"Neutral": "neutral", "Surprise": "surprise", "Disgust": "disgust", "Anger": "angry", "Sad": "sad",
             "Happy": "happy", "Fear": "fear"}
_GENDERS = {"male": "male", "female": "female", "m": "male", "f": "female", "男": "male", "女": "female"}
SPLIT_FILES = {"train": "movie_list_train.txt", "valid": "movie_list_val.txt", "test": "movie_list_test.txt"}
CARD = dict(utterances=24437, hours=9.8, speakers=626, licence="research use, on request (RUC AIM3 lab)",
            source="https://github.com/aim3-ruc/rucm3ed")


def _splits(root) -> dict[str, str]:
    out = {}
    for split, fname in SPLIT_FILES.items():
        f = find_file(root, NAME, fname, required=False)
        if f is not None:
            for s in f.read_text(encoding="utf-8-sig").split():
                out[s] = split
    return out


def records(root, *, errors: list | None = None) -> list[dict]:
    """One record per labelled utterance of `annotation.json` whose WAV exists."""
    ann = find_file(root, NAME, "annotation.json")
    try:
        data = json.loads(ann.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as e:
        raise CorpusError(f"{NAME}: {ann} is not valid JSON ({e})") from None
    speech = ann.parent / "modality_speech"
    splits = _splits(root)
    out, missing = [], []
    for series, dialogs in data.items():
        for dialog, clip in dialogs.items():
            info = clip.get("SpeakerInfo", {})
            for utt, u in clip.get("Dialog", {}).items():
                where = f"{ann} ({series}/{dialog}/{utt})"
                try:
                    letter = u.get("Speaker")
                    if letter not in info:
                        raise CorpusError(f"{NAME}: {where}: speaker {letter!r} is not in the dialog's SpeakerInfo")
                    code = (u.get("EmoAnnotation") or {}).get("final_main_emo")
                    emotion = map_label(NAME, str(code), LABEL_MAP, where)
                    wav = speech / f"{letter}_{utt}.wav"
                    if not wav.is_file():
                        missing.append(wav)
                        continue
                    person = info[letter] or {}
                    gender = str(person.get("Gender", person.get("gender", ""))).strip().lower()
                    out.append(dict(utt=utt, path=str(wav.resolve()), speaker=f"{series}_{person.get('Name', letter)}",
                                    gender=_GENDERS.get(gender, "unknown"), language=LANGUAGE, emotion=emotion,
                                    raw_label=code, text=str(u.get("Text", "") or ""), dialog=dialog,
                                    split=splits.get(series, "")))
                except CorpusError as e:
                    if errors is None:
                        raise
                    errors.append(e)
    if missing:
        warnings.warn(f"{NAME}: {len(missing)} labelled utterance(s) have no WAV in {speech} "
                      f"(e.g. {missing[0].name}); left out", stacklevel=2)
    return out
