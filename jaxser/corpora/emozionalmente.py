"""Emozionalmente (Catania, Wilke & Garzotto 2025): crowdsourced acted Italian speech, 431
amateur actors, 18 sentences, the Big Six emotions plus neutrality, 16 kHz mono WAV.

The Zenodo archive holds `audio/<timestamp>.wav` and `metadata/`: `samples.csv` (one row per
recording: `file_name`, `actor`, `sentence`, `emotion_expressed`, ...) and `users.csv`
(`username`, `gender`, `age`, ...). Labels, speakers and sentences come from these tables,
never from file names (which are only timestamps).
"""
from __future__ import annotations

from pathlib import Path

from jaxser.corpora.schema import CorpusError, find_audio, find_file, map_label, parse_files, read_table

NAME = "emozionalmente"
LANGUAGE = "it"
SAMPLE_RATE = 16_000
#: `emotion_expressed` values (the actor's intended emotion).
LABEL_MAP = {"anger": "angry", "disgust": "disgust", "fear": "fear", "joy": "happy", "neutrality": "neutral",
             "sadness": "sad", "surprise": "surprise"}
_GENDERS = {"female": "female", "male": "male", "f": "female", "m": "male", "donna": "female", "uomo": "male"}
#: What the published card says (EmoBox's table for the utterance count and hours).
CARD = dict(utterances=6902, hours=6.3, speakers=431, licence="see the Zenodo record (open access)",
            source="https://zenodo.org/records/6569824 (emozionalmente.zip)")


def read_users(path) -> dict[str, str]:
    """username -> female/male/unknown from `users.csv`."""
    out = {}
    for line, row in read_table(NAME, path, ("username", "gender")):
        g = row["gender"].lower()
        out[row["username"]] = _GENDERS.get(g, "unknown")
    return out


def records(root, *, errors: list | None = None) -> list[dict]:
    """One record per WAV below `root`, described by `samples.csv` (and `users.csv`); a WAV the
    table does not list, or a row whose WAV is missing, is a CorpusError naming it."""
    wavs = find_audio(root, NAME)
    samples = find_file(root, NAME, "samples.csv")
    users_path = find_file(root, NAME, "users.csv", required=False)
    users = read_users(users_path) if users_path else {}
    rows: dict[str, tuple[int, dict]] = {}
    for line, row in read_table(NAME, samples, ("file_name", "actor", "sentence", "emotion_expressed")):
        if row["file_name"] in rows:
            raise CorpusError(f"{NAME}: {samples} line {line} repeats file {row['file_name']!r} "
                              f"(first on line {rows[row['file_name']][0]})")
        rows[row["file_name"]] = (line, row)

    def parse(path: Path) -> dict:
        if path.name not in rows:
            raise CorpusError(f"{NAME}: {path} is not listed in {samples}")
        line, row = rows[path.name]
        code = row["emotion_expressed"]
        emotion = map_label(NAME, code, LABEL_MAP, f"{samples} line {line}")
        return dict(utt=path.stem, path=str(path.resolve()), speaker=row["actor"],
                    gender=users.get(row["actor"], "unknown"), language=LANGUAGE, emotion=emotion,
                    raw_label=code, text=row["sentence"])

    out = parse_files(wavs, parse, errors)
    missing = sorted(set(rows) - {p.name for p in wavs})
    if missing:
        e = CorpusError(f"{NAME}: {len(missing)} file(s) listed in {samples} are missing below {root} "
                        f"(e.g. {missing[0]})")
        if errors is None:
            raise e
        errors.append(e)
    return out
