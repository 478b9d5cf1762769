"""PAVOQUE (Steiner et al. 2013), the MaryTTS expressive German corpus: one male speaker,
one long recording per speaking style (neutral, angry, happy, sad, and `poker`, a
poker-faced style) plus outtakes, each `pavoque-<style>.flac` (44.1 kHz) from the GitHub
release with its segment table `pavoque-<style>.yaml` (a list of `prompt`, `text`, `style`,
`start`, `end`, `segments` = phone labels).

Each utterance is a segment: rows carry `start`/`end` (seconds into the recording;
`jaxser.corpora.schema.SEGMENT_COLUMNS`) and `jaxser.audio.load(path, start=, end=)` reads
only those samples, so no utterance ever decodes a whole recording. The segment's `style`
is its label (the outtakes recording mixes styles). The id is `<prompt>-<style>`, EmoBox's
key without its `pavoque-` prefix; the release has no repeated (prompt, style) pair, and a
repeat is an error naming both segments. Tables of the repository before the release carry
no segment times (one `file` per prompt) and are refused with a message saying so.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from jaxser.corpora.schema import CorpusError, CorpusRootError, map_label

NAME = "pavoque"
LANGUAGE = "de"
SAMPLE_RATE = 44_100
LABEL_MAP = {"neutral": "neutral", "angry": "angry", "happy": "happy", "sad": "sad", "poker": "poker"}
SPEAKER = "stefan"
_PHONE_LINE = re.compile(r"^[ \t]*- \{lab: [^\n]*\}[ \t]*\n", re.M)
CARD = dict(utterances=7334, hours=12.2, speakers=1, licence="CC BY-NC-SA 3.0 Unported (pavoque-data README)",
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
        # Plain data only, nothing runs (a safe loader; libyaml's when present). The tables list
        # every phone of every segment as `  - {lab: ..., end: ...}` lines under `segments:`;
        # building those ~10^5 small mappings is most of the time and none is used, so those
        # lines are dropped first (`segments:` then reads as empty). Any other layout still parses.
        text = _PHONE_LINE.sub("", table.read_text(encoding="utf-8"))
        items = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    except yaml.YAMLError as e:
        raise CorpusError(f"{NAME}: {table} is not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(items, list):
        raise CorpusError(f"{NAME}: {table} is not a list of segments")
    return items


def records(root, *, errors: list | None = None) -> list[dict]:
    """One record per segment of every `pavoque-*.yaml` table below `root`."""
    from jaxser import audio

    out, seen = [], {}
    for table in _tables(root):
        flac = table.with_suffix(".flac")
        recording = table.stem.removeprefix("pavoque-")
        try:
            items = _segments(table)
            if items and isinstance(items[0], dict) and "file" in items[0] and "start" not in items[0]:
                raise CorpusError(f"{NAME}: {table} has no segment times (a table from before the release, one "
                                  "file per prompt); use the .yaml and .flac files of the GitHub release")
            if not flac.is_file():
                raise CorpusError(f"{NAME}: {table} has no recording {flac.name} beside it")
            length = audio.info(flac).duration
        except (CorpusError, audio.AudioError) as e:
            if errors is None:
                raise
            errors.append(e if isinstance(e, CorpusError) else CorpusError(str(e)))
            continue
        for k, d in enumerate(items):
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
                utt = f"{d['prompt']}-{code}"
                if utt in seen:
                    raise CorpusError(f"{NAME}: {where} repeats prompt {d['prompt']!r} in style {code!r} "
                                      f"(first in {seen[utt]})")
                seen[utt] = where
                out.append(dict(utt=utt, path=str(flac.resolve()), speaker=SPEAKER, gender="male",
                                language=LANGUAGE, emotion=emotion, raw_label=code, text=str(d.get("text") or ""),
                                start=start, end=min(end, length), duration=min(end, length) - start,
                                recording=recording))
            except CorpusError as e:
                if errors is None:
                    raise
                errors.append(e)
    return out
