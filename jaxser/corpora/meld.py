"""MELD (Poria et al. 2019), the Multimodal EmotionLines Dataset: utterances of dialogues from
the TV series *Friends*, as MP4 clips whose (AAC, often 5.1) audio track is decoded through
`jaxser.audio` (PyAV).

Layout of the release (`MELD.Raw.tar.gz`, whose `train.tar.gz`, `dev.tar.gz` and
`test.tar.gz` unpack to one clip folder each):

    MELD.Raw/train_sent_emo.csv  dev_sent_emo.csv  test_sent_emo.csv
    .../train_splits/dia0_utt0.mp4
    .../dev_splits_complete/dia0_utt0.mp4
    .../output_repeated_splits_test/dia0_utt0.mp4

Each table row (`Sr No.`, `Utterance`, `Speaker`, `Emotion`, `Sentiment`, `Dialogue_ID`,
`Utterance_ID`, `Season`, `Episode`, `StartTime`, `EndTime`) labels the clip
`dia<Dialogue_ID>_utt<Utterance_ID>.mp4` of its split's folder. The folders may sit at any
depth below the root (EmoBox's copy has `train/train_splits/`). Dialogue and utterance
numbers restart in every split, so the id is `<split>/dia<D>_utt<U>`; the official split is
the `split` column (train, dev, test), with `dialogue`, `utterance` and `sentiment`. The
speaker is the character as the table names it; characters recur across the three splits.

Release quirks, as its users reported them (declare-lab/MELD issues 20, 22, 27, 39, 47):
  * dev `dia110_utt7` has a table row but no clip (KNOWN_MISSING): left out with a warning;
    any other row without its clip is an error naming table, line and expected file;
  * train `dia125_utt3.mp4` is a broken cut (KNOWN_BROKEN): left out with a warning, as
    EmoBox's list leaves it out (`keep_broken=True` keeps it);
  * clips without a table row (e.g. dev `dia49_utt4`, test `final_videos_testdia101_utt0`)
    are not used; they are counted in a warning (pass `unlabelled=[]` to receive them);
  * some test clips are cut far too long (test `dia38_utt4` about 5 minutes, `dia220_utt0`
    about 4) and some reportedly have no sound: the latter fail to decode and are reported by
    the extraction like any unreadable file (`skip_errors`);
  * the tables carry Windows-1252 punctuation as C1 control characters (U+0092 for an
    apostrophe); `text` has them translated.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path

from jaxser.corpora.schema import CorpusError, CorpusRootError, find_audio, find_file, map_label, read_table

NAME = "meld"
LANGUAGE = "en"
#: MELD's seven emotions (EmoBox's label map for MELD names the same seven).
LABEL_MAP = {"neutral": "neutral", "joy": "happy", "sadness": "sad", "anger": "angry", "surprise": "surprise",
             "fear": "fear", "disgust": "disgust"}
#: split -> (label table, clip folder)
SPLITS = {"train": ("train_sent_emo.csv", "train_splits"), "dev": ("dev_sent_emo.csv", "dev_splits_complete"),
          "test": ("test_sent_emo.csv", "output_repeated_splits_test")}
REQUIRED_COLUMNS = ("Utterance", "Speaker", "Emotion", "Dialogue_ID", "Utterance_ID")
#: Rows whose clip the release does not contain.
KNOWN_MISSING = frozenset({("dev", "dia110_utt7")})
#: Clips the release ships broken (left out unless keep_broken=True).
KNOWN_BROKEN = frozenset({("train", "dia125_utt3")})
#: utterances: the tables' rows; hours and speakers: EmoBox's list of the release's clips (its
#: durations, its distinct speaker names).
CARD = dict(utterances=13708, hours=12.1, speakers=304,
            licence="GPL-3.0 (the MELD repository); the clips are excerpts of Friends",
            source="https://affective-meld.github.io/ (MELD.Raw.tar.gz)")
_INT_RE = re.compile(r"^\d+$")


def clean_text(text: str) -> str:
    """Translate the Windows-1252 punctuation the tables carry as C1 control characters
    (U+0080..U+009F, e.g. U+0092 for an apostrophe) and no-break spaces."""
    out = []
    for ch in text:
        if "\x80" <= ch <= "\x9f":
            try:
                ch = ch.encode("latin-1").decode("cp1252")
            except UnicodeDecodeError:
                ch = ""  # the five codes cp1252 leaves undefined carry nothing
        out.append(" " if ch == "\xa0" else ch)
    return "".join(out)


def _table(path: Path) -> list[tuple[int, dict]]:
    try:
        return read_table(NAME, path, REQUIRED_COLUMNS)
    except UnicodeDecodeError:  # a copy re-saved by a spreadsheet in Windows-1252
        return read_table(NAME, path, REQUIRED_COLUMNS, encoding="cp1252")


def _clip_index(root) -> dict[tuple[str, str], list[Path]]:
    folders = {folder: split for split, (_, folder) in SPLITS.items()}
    index: dict[tuple[str, str], list[Path]] = {}
    for p in find_audio(root, NAME, (".mp4",)):
        split = folders.get(p.parent.name)
        if split is not None:
            index.setdefault((split, p.stem), []).append(p)
    return index


def records(root, *, keep_broken: bool = False, errors: list | None = None,
            unlabelled: list | None = None) -> list[dict]:
    """One record per labelled clip of the train, dev and test tables found below `root`.

    `errors`: a list to collect per-row CorpusErrors in (those rows are skipped) instead of
    raising the first. `unlabelled`: a list that receives the clips no table row labels.
    """
    clips = _clip_index(root)
    tables = {split: find_file(root, NAME, table, required=False) for split, (table, _) in SPLITS.items()}
    if not any(tables.values()):
        raise CorpusRootError(f"{NAME}: none of {', '.join(t for t, _ in SPLITS.values())} found below {root}; "
                              "pass the folder MELD.Raw was unpacked to")
    out, used, known = [], set(), []
    for split, table in tables.items():
        if table is None:
            continue
        folder = SPLITS[split][1]
        if not any(s == split for s, _ in clips):
            raise CorpusError(f"{NAME}: {table} labels the {split} split but no {folder}/ folder with .mp4 clips "
                              f"is below {root}; unpack the release's {split}.tar.gz there")
        for line, row in _table(table):
            where = f"{table} line {line}"
            try:
                d, u = row["Dialogue_ID"], row["Utterance_ID"]
                if not (_INT_RE.match(d) and _INT_RE.match(u)):
                    raise CorpusError(f"{NAME}: {where}: Dialogue_ID {d!r} / Utterance_ID {u!r} are not numbers")
                stem = f"dia{int(d)}_utt{int(u)}"
                if (split, stem) in used:
                    raise CorpusError(f"{NAME}: {where}: {split} {stem} is labelled twice")
                used.add((split, stem))
                emotion = map_label(NAME, row["Emotion"], LABEL_MAP, where)
                if not row["Speaker"]:
                    raise CorpusError(f"{NAME}: {where}: {split} {stem} has no Speaker")
                found = clips.get((split, stem), [])
                if (split, stem) in KNOWN_BROKEN and not keep_broken:
                    known.append(f"{folder}/{stem}.mp4 (broken in the release)")
                    continue
                if not found:
                    if (split, stem) in KNOWN_MISSING:
                        known.append(f"{folder}/{stem}.mp4 (missing from the release)")
                        continue
                    raise CorpusError(f"{NAME}: {where} labels {stem} but no {folder}/{stem}.mp4 exists below {root}")
                if len(found) > 1:
                    raise CorpusError(f"{NAME}: {where}: {stem} found {len(found)} times "
                                      f"({', '.join(map(str, found))}); remove the extra copies")
                out.append(dict(utt=f"{split}/{stem}", path=str(found[0].resolve()), speaker=row["Speaker"],
                                gender="unknown", language=LANGUAGE, emotion=emotion, raw_label=row["Emotion"],
                                text=clean_text(row["Utterance"]), split=split, dialogue=str(int(d)),
                                utterance=str(int(u)), sentiment=row.get("Sentiment", "")))
            except CorpusError as e:
                if errors is None:
                    raise
                errors.append(e)
    spare = sorted(str(p) for key, ps in clips.items() if key not in used and tables.get(key[0]) for p in ps)
    if unlabelled is not None:
        unlabelled.extend(spare)
    if known:
        warnings.warn(f"{NAME}: {len(known)} labelled clip(s) left out as the release's known problems: "
                      f"{', '.join(known)}", stacklevel=2)
    if spare:
        warnings.warn(f"{NAME}: {len(spare)} clip(s) have no row in their split's table and are not used "
                      f"(e.g. {spare[0]})", stacklevel=2)
    return out
