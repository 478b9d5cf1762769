"""MSP-Podcast (Lotfian & Busso 2019), naturalistic English speaking turns from podcasts, rated by
crowd workers on categories and on arousal, valence and dominance; 16 kHz WAV.

Layout of the release: `Audios/MSP-PODCAST_0001_0008.wav` (`Audio/` in older releases and in
EmoBox's copy) and `Labels/labels_consensus.csv` (older releases spell it
`labels_concensus.csv`), one row per turn:

    FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set
    MSP-PODCAST_0001_0008.wav,N,4.2,4.4,4.6,127,Female,Test1

`EmoClass` is the consensus category, one of A S H U F D C N O X (X: no agreement, O: other;
both kept, under EmoBox's names, so the corpus has EmoBox's class set); `EmoAct`/`EmoVal`/
`EmoDom` the mean ratings on the 1-7 scales (arousal, valence, dominance). `Split_Set` is the
official partition (Train, Development, Test1, Test2, and Test3 in recent releases; older
releases say Validation for Development), kept as the `split` column. `SpkrID` is a number or
`Unknown`; turns of an unknown speaker share the speaker `unknown-<podcast>` (the first number
of the file name), so they never straddle a speaker-independent split within a podcast. A row
with neither a class nor a rating (a turn whose labels a release withholds) is left out with a
warning giving the count.
"""
from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

from jaxser.corpora.schema import (CorpusError, CorpusRootError, dimension_value, find_audio, find_file, map_label,
                                   read_table)

NAME = "msppodcast"
LANGUAGE = "en"
SAMPLE_RATE = 16_000
#: EmoClass codes (the release's) -> canonical, as EmoBox's msppodcast label map names them.
LABEL_MAP = {"A": "angry", "S": "sad", "H": "happy", "U": "surprise", "F": "fear", "D": "disgust", "C": "contempt",
             "N": "neutral", "O": "other", "X": "no-agreement"}
#: The raters' scales (seven-point self-assessment manikins) for EmoAct, EmoVal, EmoDom.
DIMENSIONS = {"arousal": (1.0, 7.0), "valence": (1.0, 7.0), "dominance": (1.0, 7.0)}
LABEL_FILES = ("labels_consensus.csv", "labels_concensus.csv")
REQUIRED_COLUMNS = ("FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set")
#: Split_Set values -> the split column (older releases name the development set Validation).
SPLITS = {"Train": "Train", "Development": "Development", "Validation": "Development", "Test1": "Test1",
          "Test2": "Test2", "Test3": "Test3"}
_GENDERS = {"female": "female", "male": "male", "unknown": "unknown", "": "unknown"}
_NAME_RE = re.compile(r"^MSP-PODCAST_(\d{4})_(\d{4})(?:_\d{4})?\.wav$")
CARD = dict(utterances=None, hours=None, speakers=None,
            licence="academic licence agreement with The University of Texas at Dallas (MSP lab)",
            source="https://www.lab-msp.com/MSP/MSP-Podcast.html (size depends on the release)")


def label_file(root) -> Path:
    for name in LABEL_FILES:
        f = find_file(root, NAME, name, required=False)
        if f is not None:
            return f
    raise CorpusRootError(f"{NAME}: no Labels/{LABEL_FILES[0]} (or {LABEL_FILES[1]}) below {root}; pass the "
                          "folder the release was unpacked to (with Audios/ and Labels/)")


def records(root, *, errors: list | None = None) -> list[dict]:
    """One record per row of the consensus label table whose WAV exists (a row without its WAV
    is an error naming table and line)."""
    table = label_file(root)
    audio: dict[str, list[Path]] = {}
    for p in find_audio(root, NAME):
        audio.setdefault(p.name, []).append(p)
    out, seen, unrated = [], {}, []
    for line, row in read_table(NAME, table, REQUIRED_COLUMNS):
        where = f"{table} line {line}"
        try:
            fname = row["FileName"]
            m = _NAME_RE.match(fname)
            if not m:
                raise CorpusError(f"{NAME}: {where}: FileName {fname!r} is not MSP-PODCAST_NNNN_NNNN.wav")
            if fname in seen:
                raise CorpusError(f"{NAME}: {where}: {fname} is labelled again (first at line {seen[fname]})")
            seen[fname] = line
            code = row["EmoClass"]
            emotion = map_label(NAME, code, LABEL_MAP, where) if code else ""
            split = SPLITS.get(row["Split_Set"])
            if split is None:
                raise CorpusError(f"{NAME}: {where}: Split_Set {row['Split_Set']!r} is not one of "
                                  f"{', '.join(SPLITS)}")
            gender = _GENDERS.get(row["Gender"].lower())
            if gender is None:
                raise CorpusError(f"{NAME}: {where}: Gender {row['Gender']!r} is not Female, Male or Unknown")
            spk = row["SpkrID"]
            if not spk or spk.lower() == "unknown":
                spk = f"unknown-{m.group(1)}"
            dims = {k: dimension_value(NAME, k, row[col], where, DIMENSIONS)
                    for k, col in (("arousal", "EmoAct"), ("valence", "EmoVal"), ("dominance", "EmoDom"))}
            if not code and all(math.isnan(v) for v in dims.values()):
                unrated.append(where)  # a listed turn whose labels the release withholds
                continue
            found = audio.get(fname, [])
            if len(found) != 1:
                raise CorpusError(f"{NAME}: {where}: " + (f"no {fname} below {root} (expected in Audios/)" if not found
                                                          else f"{fname} found {len(found)} times "
                                                               f"({', '.join(map(str, found))})"))
            out.append(dict(utt=fname[:-4], path=str(found[0].resolve()), speaker=spk, gender=gender,
                            language=LANGUAGE, emotion=emotion, raw_label=code, text="", split=split,
                            **dims))
        except CorpusError as e:
            if errors is None:
                raise
            errors.append(e)
    if unrated:
        warnings.warn(f"{NAME}: {len(unrated)} row(s) carry neither a class nor a rating (e.g. {unrated[0]}); "
                      "left out", stacklevel=2)
    return out
