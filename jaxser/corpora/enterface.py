"""eNTERFACE'05 (Martin, Kotsia, Macq & Pitas 2006): audio-visual emotion database, 42-44
subjects reacting to six scenarios with five sentences each; the audio track of each `.avi`
is decoded through `jaxser.audio` (PyAV).

Layout: `subject 1/anger/sentence 1/s1_an_1.avi`. Irregular subjects of the release, read as
they are: subject 6 has one file per emotion and no sentence folders (`subject 6/anger/
s6_an.avi`); subject 3 names files `s_3_su_4.avi`; one file of subject 16 is
`s16_su_3avi.avi`. The subject, emotion and sentence are taken from the folders and must agree
with the file name; the utterance id is the regular `s<subject>_<code>[_<sentence>]`.
"""
from __future__ import annotations

import re
from pathlib import Path

from jaxser.corpora.schema import CorpusError, find_audio, map_label, parse_files

NAME = "enterface"
LANGUAGE = "en"
LABEL_MAP = {"an": "angry", "di": "disgust", "fe": "fear", "ha": "happy", "sa": "sad", "su": "surprise"}
#: emotion folder -> file code
FOLDERS = {"anger": "an", "disgust": "di", "fear": "fe", "happiness": "ha", "sadness": "sa", "surprise": "su"}
_SUBJECT_RE = re.compile(r"^subject (\d+)$")
_SENTENCE_RE = re.compile(r"^sentence (\d)$")
_FILE_RE = re.compile(r"^s_?(\d+)_([a-z]{2})(?:_(\d))?(?:avi)?$")
CARD = dict(utterances=1263, hours=1.1, speakers=43, licence="free for research (eNTERFACE'05 site)",
            source="https://enterface.net/enterface05/main.php?frame=emotion")


def parse(path: Path) -> dict:
    m = _FILE_RE.match(path.stem)
    if not m:
        raise CorpusError(f"{NAME}: {path} does not follow eNTERFACE naming sN_em_K.avi (e.g. s1_an_1.avi)")
    subj, code, sent = m.groups()
    emotion = map_label(NAME, code, LABEL_MAP, path)
    sent_m = _SENTENCE_RE.match(path.parent.name)
    emo_dir = path.parents[1] if sent_m else path.parent
    subj_m = _SUBJECT_RE.match(emo_dir.parent.name)
    if not subj_m or emo_dir.name not in FOLDERS:
        raise CorpusError(f"{NAME}: {path} is not in a 'subject N/<emotion>/[sentence K/]' folder")
    if subj_m.group(1) != subj or FOLDERS[emo_dir.name] != code or (sent_m and sent and sent_m.group(1) != sent):
        raise CorpusError(f"{NAME}: {path}: the file name disagrees with its folders (subject, emotion or sentence)")
    sentence = sent_m.group(1) if sent_m else (sent or "")
    utt = f"s{subj}_{code}" + (f"_{sentence}" if sentence else "")
    return dict(utt=utt, path=str(path.resolve()), speaker=subj, gender="unknown", language=LANGUAGE,
                emotion=emotion, raw_label=code, text=f"{code}{sentence}" if sentence else "")


def records(root, *, errors: list | None = None) -> list[dict]:
    """One record per `.avi` below `root`."""
    return parse_files(find_audio(root, NAME, (".avi",)), parse, errors)
