"""Any corpus described by a manifest file (CSV or JSON Lines) in the unified schema.

For corpora without a dedicated loader (or private recordings): one row per utterance with
`path` (relative to the manifest's folder, or absolute), `speaker` and `emotion`, and
optionally `id`, `language`, `gender`, `text`, `raw_label`. `label_map` maps the file's
labels to canonical emotions; without it the labels must already be canonical. Every
problem is reported with the manifest file and its line number.
"""
from __future__ import annotations

import codecs
import csv
import io
import json
import re
from pathlib import Path
from typing import Mapping

from jaxser.corpora.schema import (EMOTIONS, GENDERS, CorpusError, CorpusRootError, build_dataset,
                                   map_label)

REQUIRED = ("path", "speaker", "emotion")
OPTIONAL = ("id", "language", "gender", "text", "raw_label")
FILENAMES = ("manifest.csv", "manifest.jsonl")
#: Spellings accepted for the gender column (case-insensitive); empty means unknown.
_GENDER_ALIASES = {"f": "female", "female": "female", "w": "female", "woman": "female",
                   "m": "male", "male": "male", "man": "male", "": "unknown", "unknown": "unknown"}


def find_manifest(root) -> Path:
    """The manifest file: `root` itself, or `manifest.csv` / `manifest.jsonl` inside it."""
    root = Path(root)
    if root.is_file():
        return root
    if not root.exists():
        raise CorpusRootError(f"manifest: {root} does not exist; pass the manifest file or its folder")
    found = [root / n for n in FILENAMES if (root / n).is_file()]
    if not found:
        raise CorpusRootError(f"manifest: no {' or '.join(FILENAMES)} in {root}; pass the manifest file itself "
                              "or the folder holding it")
    if len(found) > 1:
        raise CorpusError(f"manifest: both {found[0]} and {found[1]} exist; pass the one to use")
    return found[0]


def default_name(manifest: Path) -> str:
    """`mycorpus` for `mycorpus.csv`, or for `mycorpus/manifest.csv`."""
    stem = manifest.stem if manifest.stem.lower() != "manifest" else manifest.resolve().parent.name
    name = re.sub(r"[^a-z0-9_-]+", "-", stem.lower()).strip("-")
    return name or "manifest"


#: the text encodings a manifest may use
ENCODINGS = "UTF-8, with or without a byte-order mark (ASCII is UTF-8)"


def read_text(manifest: Path) -> str:
    """The manifest's text; bytes that are not UTF-8 stop with the line and byte offset of the
    first one, so the user can find it (a Latin-1 or Windows-1252 export, typically)."""
    data = manifest.read_bytes()
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[bom:].decode("utf-8")
    except UnicodeDecodeError as e:
        start, end = bom + e.start, bom + e.end  # offsets in the file, byte-order mark included
        line = data.count(b"\n", 0, start) + 1
        column = start - (data.rfind(b"\n", 0, start) + 1)
        raise CorpusError(f"manifest: {manifest} line {line} (byte offset {start}, column byte {column}): bytes "
                          f"{data[start:end]!r} are not UTF-8; accepted encodings: {ENCODINGS}; re-save the file "
                          "as UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None


def read_rows(manifest: Path) -> list[tuple[int, dict]]:
    """(line number, row) pairs; CSV by header, JSONL one object per line."""
    suffix = manifest.suffix.lower()
    rows: list[tuple[int, dict]] = []
    if suffix == ".csv" or suffix == ".tsv":
        with io.StringIO(read_text(manifest), newline="") as f:
            reader = csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
            header = [c.strip() for c in reader.fieldnames or ()]
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise CorpusError(f"manifest: {manifest} lacks required column(s) {missing} "
                                  f"(has {header}; needs {list(REQUIRED)})")
            for row in reader:
                if None in row:
                    raise CorpusError(f"manifest: {manifest} line {reader.line_num}: more fields than columns")
                rows.append((reader.line_num, {k.strip(): (v or "").strip() for k, v in row.items()}))
    elif suffix in (".jsonl", ".ndjson"):
        with io.StringIO(read_text(manifest)) as f:
            for line, text in enumerate(f, start=1):
                if not text.strip():
                    continue
                try:
                    row = json.loads(text)
                except json.JSONDecodeError as e:
                    raise CorpusError(f"manifest: {manifest} line {line}: invalid JSON ({e.msg})") from None
                if not isinstance(row, dict):
                    raise CorpusError(f"manifest: {manifest} line {line}: expected a JSON object")
                rows.append((line, {k: "" if v is None else str(v).strip() for k, v in row.items()}))
    else:
        raise CorpusError(f"manifest: {manifest}: unsupported manifest type {suffix!r} (.csv, .tsv or .jsonl)")
    return rows


def read_manifest(root, name: str | None = None, *, label_map: Mapping[str, str] | None = None,
            language: str = "und") -> tuple[str, Path, list[dict]]:
    """(corpus name, manifest folder, records) for the manifest at `root`."""
    manifest = find_manifest(root)
    name = name or default_name(manifest)
    if "/" in name:
        raise CorpusError(f"manifest: corpus name {name!r} must not contain '/'")
    mapping = {c: c for c in EMOTIONS}
    for k, v in (label_map or {}).items():
        if v not in EMOTIONS:
            raise CorpusError(f"manifest: label_map sends {k!r} to {v!r}, which is not one of "
                              f"{', '.join(EMOTIONS)}")
        mapping[str(k)] = v
    base = manifest.resolve().parent
    rows = read_rows(manifest)
    if not rows:
        raise CorpusError(f"manifest: {manifest} has no rows")
    out = []
    line_of: dict[str, int] = {}  # utterance id -> the line that gave it
    for line, row in rows:
        where = f"{manifest} line {line}"
        missing = [c for c in REQUIRED if not row.get(c)]
        if missing:
            raise CorpusError(f"manifest: {where}: missing or empty required field(s) {missing}")
        p = Path(row["path"])
        path = p if p.is_absolute() else base / p
        if not path.is_file():
            raise CorpusError(f"manifest: {where}: audio file {path} does not exist")
        gender = _GENDER_ALIASES.get(row.get("gender", "").lower())
        if gender is None:
            raise CorpusError(f"manifest: {where}: gender {row['gender']!r} is not one of {', '.join(GENDERS)}")
        label = row["emotion"]
        utt = row.get("id") or (p.with_suffix("").as_posix() if not p.is_absolute() else p.stem)
        if utt in line_of:
            raise CorpusError(f"manifest: {manifest} lines {line_of[utt]} and {line}: both give the utterance id "
                              f"{utt!r}; ids must be unique: give each row its own id (the id column, or else the "
                              "audio path, names it)")
        line_of[utt] = line
        out.append(dict(
            utt=utt,
            path=str(path.resolve()),
            speaker=row["speaker"],
            gender=gender,
            language=row.get("language") or language,
            emotion=map_label(name, label, mapping, where),
            raw_label=row.get("raw_label") or label,
            text=row.get("text", ""),
        ))
    return name, base, out


def load(root, name: str | None = None, *, skip_errors: bool = False, **options):
    """The unified `datasets.Dataset` of the manifest at `root` (file or folder).

    `name` is the corpus name used in ids and speakers (default: the manifest's stem, or its
    folder's name for `manifest.csv`); options: `label_map`, `language` (default for rows
    without one, "und"); `skip_errors` as in `jaxser.corpora.load` (unreadable header ->
    duration NaN instead of AudioError).
    """
    corpus, base, recs = read_manifest(root, name, **options)
    return build_dataset(corpus, base, recs, skip_errors=skip_errors)
