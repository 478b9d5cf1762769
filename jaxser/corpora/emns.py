"""EMNS, the Emotive Narrative Storytelling corpus (Noriy et al. 2023, OpenSLR 136): one
female British English speaker, eight emotions, 48 kHz Opus audio in WebM files decoded
through `jaxser.audio` (PyAV).

Layout: `cleaned_webm/recorded_audio_<id>.webm` and `metadata.csv`, `|`-separated, with
columns `id`, `utterance`, `description`, `emotion`, `gender`, `age`, `level`,
`audio_recording`, ... The table names each recording `wavs/recorded_audio_<id>.webm`
(the folder of the first upload); rows are matched by file name, wherever the file sits.
"""
from __future__ import annotations

from pathlib import Path

from jaxser.corpora.schema import CorpusError, find_audio, find_file, map_label, parse_files, read_table

NAME = "emns"
LANGUAGE = "en"
SAMPLE_RATE = 48_000
LABEL_MAP = {"Angry": "angry", "Disgust": "disgust", "Excited": "excited", "Happy": "happy", "Neutral": "neutral",
             "Sad": "sad", "Sarcastic": "sarcastic", "Surprised": "surprise", "Surprise": "surprise"}
#: The corpus has one speaker; the table's rows carry no speaker id.
SPEAKER = "1"
CARD = dict(utterances=1181, hours=1.9, speakers=1, licence="see OpenSLR SLR136",
            source="https://www.openslr.org/136")


def records(root, *, errors: list | None = None) -> list[dict]:
    """One record per `.webm` below `root`, described by its `metadata.csv` row."""
    files = find_audio(root, NAME, (".webm",))
    table = find_file(root, NAME, "metadata.csv")
    rows: dict[str, tuple[int, dict]] = {}
    for line, row in read_table(NAME, table, ("emotion", "audio_recording"), delimiter="|"):
        rows.setdefault(Path(row["audio_recording"]).name, (line, row))

    def parse(path: Path) -> dict:
        if path.name not in rows:
            raise CorpusError(f"{NAME}: {path} has no row in {table} (audio_recording .../{path.name})")
        line, row = rows[path.name]
        code = row["emotion"]
        emotion = map_label(NAME, code, LABEL_MAP, f"{table} line {line}")
        gender = row.get("gender", "").lower()
        return dict(utt=path.stem, path=str(path.resolve()), speaker=SPEAKER,
                    gender=gender if gender in ("female", "male") else "unknown", language=LANGUAGE,
                    emotion=emotion, raw_label=code, text=row.get("utterance", ""), level=row.get("level", ""))

    return parse_files(files, parse, errors)
