"""PAVOQUE (Steiner et al. 2013), the MaryTTS expressive German corpus: one male speaker,
one long recording per speaking style (neutral, angry, happy, sad, and `poker`, a
poker-faced style) plus outtakes, each `pavoque-<style>.flac` with a segment table
`pavoque-<style>.yaml` (a list of `prompt`, `style`, `start`, `end`, `text`, ...).

Each utterance is a segment: rows carry `start`/`end` (seconds into the recording;
`jaxser.corpora.schema.SEGMENT_COLUMNS`) and `jaxser.audio.load(path, start=, end=)` reads
only those samples, so no utterance ever decodes a whole recording. The segment's `style`
is its label (the outtakes recording mixes styles). The id is
`<recording>-<prompt>-<style>`, with `-2`, `-3` ... for repeated takes of a prompt in one
recording (in order of time), so no take is silently dropped.
"""
from __future__ import annotations

import os
from pathlib import Path

from jaxser.corpora.schema import CorpusError, CorpusRootError, map_label

NAME = "pavoque"
LANGUAGE = "de"
SAMPLE_RATE = 44_100
LABEL_MAP = {"neutral": "neutral", "angry": "angry", "happy": "happy", "sad": "sad", "poker": "poker"}
SPEAKER = "stefan"
CARD = dict(utterances=7334, hours=12.2, speakers=1, licence="CC BY-NC-SA 4.0 (pavoque-data README)",
            source="https://github.com/marytts/pavoque-data/releases")


def _tables(root) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        raise CorpusRootError(f"{NAME}: corpus root {root} is not a folder; pass the folder holding "
                              "pavoque-*.flac and pavoque-*.yaml")
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__MACOSX")
        found += [Path(dirpath) / f for f in filenames if f.startswith("pavoque-") and f.endswith(".yaml")]
    if not found:
        raise CorpusRootError(f"{NAME}: no pavoque-*.yaml segment tables found anywhere below {root}")
    return sorted(found)


def _segments(table: Path) -> list[dict]:
    import yaml

    try:
        items = yaml.safe_load(table.read_text(encoding="utf-8"))  # plain data only: nothing runs
    except yaml.YAMLError as e:
        raise CorpusError(f"{NAME}: {table} is not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(items, list):
        raise CorpusError(f"{NAME}: {table} is not a list of segments")
    return items


def records(root, *, errors: list | None = None) -> list[dict]:
    """One record per segment of every `pavoque-*.yaml` table below `root`."""
    from jaxser import audio

    out = []
    for table in _tables(root):
        flac = table.with_suffix(".flac")
        recording = table.stem.removeprefix("pavoque-")
        try:
            if not flac.is_file():
                raise CorpusError(f"{NAME}: {table} has no recording {flac.name} beside it")
            length = audio.info(flac).duration
            items = _segments(table)
        except (CorpusError, audio.AudioError) as e:
            if errors is None:
                raise
            errors.append(e if isinstance(e, CorpusError) else CorpusError(str(e)))
            continue
        takes: dict[str, int] = {}
        for k, d in sorted(enumerate(items), key=lambda kd: (float(kd[1].get("start", 0) or 0)
                                                              if isinstance(kd[1], dict) else 0, kd[0])):
            where = f"{table} segment {k + 1}"
            try:
                if not isinstance(d, dict) or not {"prompt", "style", "start", "end"} <= set(d):
                    raise CorpusError(f"{NAME}: {where} lacks prompt/style/start/end")
                code = str(d["style"]).lower()
                emotion = map_label(NAME, code, LABEL_MAP, where)
                start, end = float(d["start"]), float(d["end"])
                if not 0 <= start < end or end > length + audio.SEGMENT_END_SLACK:
                    raise CorpusError(f"{NAME}: {where}: span {start}-{end} s is not inside {flac.name} "
                                      f"({length:.2f} s)")
                base = f"{recording}-{d['prompt']}-{code}"
                takes[base] = takes.get(base, 0) + 1
                utt = base if takes[base] == 1 else f"{base}-{takes[base]}"
                out.append(dict(utt=utt, path=str(flac.resolve()), speaker=SPEAKER, gender="male",
                                language=LANGUAGE, emotion=emotion, raw_label=code, text=str(d.get("text") or ""),
                                start=start, end=min(end, length), duration=min(end, length) - start,
                                recording=recording))
            except CorpusError as e:
                if errors is None:
                    raise
                errors.append(e)
    return out
