"""SUBESCO, the SUST Bangla Emotional Speech Corpus (Sultana et al. 2021, PLOS ONE): 7000
sentence-level utterances, 20 professional actors (10 female, 10 male), 10 sentences, 7
emotions, 5 takes. Names (dataset card, huggingface.co/datasets/sustcsenlp/
bn_emotion_speech_corpus) have eight underscore-separated parts:

    <F|M>_<speaker number>_<speaker name>_S_<sentence number>_<EMOTION>_<take>.wav

e.g. `F_02_MONIKA_S_1_NEUTRAL_5.wav`. Emotions: ANGRY DISGUST FEAR HAPPY NEUTRAL SAD SURPRISE.
Speaker numbers restart per gender, so the speaker is gender + number (`F_02`); the name is
kept in the extra column `speaker_name`, the sentence number in `text`.

One file of the Zenodo release (record 4526477, `SUBESCO.zip`) deviates from that pattern:
`F_02_MONIKA_S_2_SURPRISE_3].wav` carries a stray `]` after the take number (noted in
nkululeko's `data/subesco/process_database.py` and in other published preparation scripts).
It is accepted by exact name (`NAME_FIXES`), read as `F_02_MONIKA_S_2_SURPRISE_3` (which is also
its utterance id), and its `path` stays the real file; any other deviation is still a CorpusError.
"""
from __future__ import annotations

import re
from pathlib import Path

from jaxser.corpora.schema import CorpusError, find_audio, map_label, parse_files

NAME = "subesco"
LANGUAGE = "bn"
#: Not asserted here; the card reports the real rates of your copy.
SAMPLE_RATE = None
LABEL_MAP = {"ANGRY": "angry", "DISGUST": "disgust", "FEAR": "fear", "HAPPY": "happy", "NEUTRAL": "neutral",
             "SAD": "sad", "SURPRISE": "surprise"}
#: Exact file stems of the release that break the naming scheme -> the stem they stand for.
NAME_FIXES = {"F_02_MONIKA_S_2_SURPRISE_3]": "F_02_MONIKA_S_2_SURPRISE_3"}
_NAME_RE = re.compile(r"^([FM])_(\d+)_([^_]+)_S_(\d+)_([A-Za-z]+)_(\d+)$")


def parse(path: Path) -> dict:
    stem = NAME_FIXES.get(path.stem, path.stem)
    m = _NAME_RE.match(stem)
    if not m:
        raise CorpusError(f"{NAME}: {path} does not follow SUBESCO naming "
                          "<F|M>_<speaker>_<NAME>_S_<sentence>_<EMOTION>_<take>.wav "
                          "(e.g. F_02_MONIKA_S_1_NEUTRAL_5.wav)")
    g, spk, spk_name, sent, code, take = m.groups()
    emotion = map_label(NAME, code, LABEL_MAP, path)
    return {"utt": stem, "path": str(path), "speaker": f"{g}_{int(spk):02d}",
            "gender": "female" if g == "F" else "male", "language": LANGUAGE, "emotion": emotion, "raw_label": code,
            "text": str(int(sent)), "speaker_name": spk_name, "take": str(int(take))}


def records(root, *, errors: list | None = None) -> list[dict]:
    """One record per WAV below root; `errors` collects per-file CorpusErrors instead of raising."""
    return parse_files(find_audio(root, NAME), parse, errors)
