"""eNTERFACE'05 (Martin, Kotsia, Macq & Pitas 2006): audio-visual emotion database, 42
subjects by its owners' count (43 subject folders in the archive) reacting to six scenarios with
five sentences each; the audio track of each `.avi` is decoded through `jaxser.audio` (PyAV).

Layout: `subject 1/anger/sentence 1/s1_an_1.avi`. The subject, emotion and sentence come
from the folders and must agree with the file name, except for the release's irregular
names, read as they are (KNOWN_NAMES): subject 6 has one file per emotion and no sentence
folders (`subject 6/anger/s6_an.avi`); subject 3 names files `s_3_su_4.avi`; one file of
subject 16 is `s16_su_3avi.avi`; the files in `subject 11/` are named `s12_*` (there is no
`subject 12/`); in `subject 2/anger/` the files of sentences 1 and 2 carry each other's
number. The speaker is the subject folder; the id is the regularised file name
`s<N>_<code>[_<K>]` and `text` its code and sentence.
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
CARD = dict(utterances=1263, hours=1.1, speakers=42, licence="free for research (eNTERFACE'05 site)",
            source="https://enterface.net/enterface05/main.php?frame=emotion")


#: Release names that disagree with their folders, accepted as they are (see the module doc):
#: subject folder -> the subject number its files carry; and (subject, code, folder sentence)
#: -> the sentence number in the file name.
KNOWN_NAMES = {"subjects": {"11": "12"}, "sentences": {("2", "an", "1"): "2", ("2", "an", "2"): "1"}}


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
    folder_subj, folder_sent = subj_m.group(1), sent_m.group(1) if sent_m else None
    subjects = {folder_subj, KNOWN_NAMES["subjects"].get(folder_subj, folder_subj)}  # a corrected copy passes too
    sentences = {folder_sent, KNOWN_NAMES["sentences"].get((folder_subj, code, folder_sent), folder_sent)}
    if subj not in subjects or FOLDERS[emo_dir.name] != code or (folder_sent and sent and sent not in sentences):
        raise CorpusError(f"{NAME}: {path}: the file name disagrees with its folders (subject, emotion or sentence)")
    sentence = sent or folder_sent or ""
    utt = f"s{subj}_{code}" + (f"_{sentence}" if sentence else "")
    return dict(utt=utt, path=str(path.resolve()), speaker=folder_subj, gender="unknown", language=LANGUAGE,
                emotion=emotion, raw_label=code, text=f"{code}{sentence}" if sentence else "")


def records(root, *, errors: list | None = None) -> list[dict]:
    """One record per `.avi` below `root`."""
    return parse_files(find_audio(root, NAME, (".avi",)), parse, errors)
