"""RESD, the Russian Emotional Speech Dialogs corpus (Aniemore), as published on the Hugging
Face Hub: `train.csv` and `test.csv` (columns `name`, `path`, `emotion`, ...) beside
`train/` and `test/` holding `<session>/<file>.wav`, e.g.
`train/happiness_enthusiasm_32/32_happiness_enthusiasm_h_120.wav`.

Labels come from the tables' `emotion` column (seven classes; `enthusiasm` is EmoBox's
`enthusiastic`). The release names no speakers: each session folder holds one recorded
emotion pair, and the session is the speaker unit here (folds never split a session). The
release's own train/test assignment is the `split` column. File names are irregular (a space
instead of `_` before the emotion letter, the pair written in the other order than the
folder's); they are used as written, never parsed.
"""
from __future__ import annotations

from pathlib import Path

from jaxser.corpora.schema import CorpusError, CorpusRootError, find_file, map_label, read_table

NAME = "resd"
LANGUAGE = "ru"
LABEL_MAP = {"anger": "angry", "disgust": "disgust", "enthusiasm": "enthusiastic", "fear": "fear",
             "happiness": "happy", "neutral": "neutral", "sadness": "sad"}
SPLITS = ("train", "test")
CARD = dict(utterances=1396, hours=2.3, speakers=None, licence="see the dataset card (Aniemore/resd_annotated)",
            source="https://huggingface.co/datasets/Aniemore/resd_annotated")


def records(root, *, errors: list | None = None) -> list[dict]:
    """One record per row of `train.csv` and `test.csv`; a row whose WAV is missing, or an
    unknown emotion, is a CorpusError naming the table and line."""
    if not Path(root).is_dir():
        raise CorpusRootError(f"{NAME}: corpus root {root} is not a folder; pass the folder the dataset was "
                              "downloaded to (with train.csv and test.csv)")
    out = []
    for split in SPLITS:
        table = find_file(root, NAME, f"{split}.csv")
        for line, row in read_table(NAME, table, ("path", "emotion")):
            try:
                rel = row["path"].replace("\\", "/")
                wav = table.parent / split / rel
                if not wav.is_file():
                    raise CorpusError(f"{NAME}: {table} line {line}: {wav} does not exist")
                code = row["emotion"]
                emotion = map_label(NAME, code, LABEL_MAP, f"{table} line {line}")
                session = Path(rel).parent.name or Path(rel).stem
                out.append(dict(utt=f"{split}/{Path(rel).stem}", path=str(wav.resolve()), speaker=session,
                                gender="unknown", language=LANGUAGE, emotion=emotion, raw_label=code,
                                text=row.get("text", ""), split=split))
            except CorpusError as e:
                if errors is None:
                    raise
                errors.append(e)
    return out
