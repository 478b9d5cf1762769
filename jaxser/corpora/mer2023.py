"""MER2023 (Lian et al. 2023), the multimodal emotion recognition challenge's discrete track:
Mandarin TV and film clips as video files whose audio track is decoded through
`jaxser.audio` (PyAV).

Layout of the release: `mer2023train/train/sample_00000613.avi` with
`mer2023train/train-label.csv` (`name`, `discrete`, `valence`); test sets `test1/`,
`test2/`, `mer2023train/test3/` with `test-labels/test{1,2,3}-label.csv`. Clips are `.avi`
or `.mp4` (test2 and most of test3 are MP4). The release names no speakers: each clip is its
own speaker unit (as in EmoBox), so folds are not speaker-independent; the challenge's own
subset is the `split` column.
"""
from __future__ import annotations

import warnings
from pathlib import Path

from jaxser.corpora.schema import CorpusError, find_file, map_label, read_table

NAME = "mer2023"
LANGUAGE = "zh"
LABEL_MAP = {"neutral": "neutral", "angry": "angry", "happy": "happy", "sad": "sad", "worried": "worried",
             "surprise": "surprise"}
#: split -> (label table, clip folder relative to the table's grand-parent)
SPLITS = {"train": ("train-label.csv", "train"), "test1": ("test1-label.csv", "test1"),
          "test2": ("test2-label.csv", "test2"), "test3": ("test3-label.csv", "test3")}
VIDEO_EXTENSIONS = (".avi", ".mp4")
CARD = dict(utterances=5030, hours=5.9, speakers=None, licence="end-user licence agreement of the MER challenge",
            source="http://www.merchallenge.cn/datasets (EULA)")


def _clip_index(root) -> dict[str, list[Path]]:
    from jaxser.corpora.schema import find_audio

    index: dict[str, list[Path]] = {}
    for p in find_audio(root, NAME, VIDEO_EXTENSIONS):
        index.setdefault(p.parent.name + "/" + p.stem, []).append(p)
    return index


def records(root, *, errors: list | None = None) -> list[dict]:
    """One record per labelled clip. A clip labelled again with the same label is used once
    (warning with the count); with another label, or a label row without its clip, it is a
    CorpusError naming the table and line."""
    clips = _clip_index(root)
    out, seen, repeats = [], {}, []
    for split, (table_name, folder) in SPLITS.items():
        table = find_file(root, NAME, table_name, required=split == "train")
        if table is None:
            continue
        for line, row in read_table(NAME, table, ("name", "discrete")):
            try:
                name, code = row["name"], row["discrete"]
                if name in seen:
                    if seen[name][1] != code:
                        raise CorpusError(f"{NAME}: {table} line {line}: clip {name!r} is labelled {code!r} here and "
                                          f"{seen[name][1]!r} in {seen[name][0]}")
                    repeats.append(f"{table} line {line}")
                    continue
                found = clips.get(f"{folder}/{name}", [])
                if len(found) != 1:
                    raise CorpusError(f"{NAME}: {table} line {line}: " + (
                        f"no {folder}/{name}.avi or .mp4 below {root}" if not found else
                        f"{name} found {len(found)} times ({', '.join(map(str, found))})"))
                emotion = map_label(NAME, code, LABEL_MAP, f"{table} line {line}")
                seen[name] = (f"{table} line {line}", code)
                out.append(dict(utt=name, path=str(found[0].resolve()), speaker=name, gender="unknown",
                                language=LANGUAGE, emotion=emotion, raw_label=code, text="", split=split))
            except CorpusError as e:
                if errors is None:
                    raise
                errors.append(e)
    if repeats:
        warnings.warn(f"{NAME}: {len(repeats)} label row(s) repeat a clip already labelled the same way "
                      f"(e.g. {repeats[0]}); each clip is used once", stacklevel=2)
    return out
