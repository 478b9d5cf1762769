"""The unified corpus schema (docs/design.md) and the helpers every corpus loader shares.

A loader's only job is to turn a corpus folder into a list of records (one dict per
utterance); `build_dataset` validates them and makes the `datasets.Dataset`. Keeping the
schema in one place is what makes corpora interchangeable in the protocol.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Iterable, Mapping
from jaxser.errors import UserError
from jaxser.io import sha256_file

CANONICAL_EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise", "boredom")
#: Classes beyond the nine, named as EmoBox names them (lower-cased), so a corpus keeps all its
#: classes and the shared-class protocol still finds the common ones.
EXTRA_EMOTIONS = ("amused", "anxious", "apologetic", "assertive", "concerned", "contempt", "encouraging",
                  "enthusiastic", "excited", "pleasure", "sarcastic", "sleepy", "worried", "poker",
                  "pain, groan", "disappointment, disapproval", "breath", "other", "no-agreement", "unknown")
#: Every emotion label a unified dataset may carry, in the one order used everywhere.
EMOTIONS = CANONICAL_EMOTIONS + EXTRA_EMOTIONS
GENDERS = ("female", "male", "unknown")
COLUMNS = ("id", "corpus", "audio", "path", "speaker", "gender", "language", "emotion", "raw_label", "text",
           "duration")
#: Keys a loader's record must provide (the rest are derived by build_dataset).
RECORD_KEYS = ("utt", "path", "speaker", "gender", "language", "emotion", "raw_label", "text")
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
#: Extra float columns of a row that is a segment of a longer recording (seconds into its
#: file). `jaxser.audio.load(path, start=, end=)` reads only that span; digests include it.
SEGMENT_COLUMNS = ("start", "end")
#: Dimensional ratings a row may carry, as float columns on the corpus' own scale (NaN where a
#: row lacks one). A corpus module declares the documented range of each as
#: `DIMENSIONS = {"arousal": (lo, hi), ...}`; values outside it are refused.
DIMENSIONS = ("arousal", "valence", "dominance")


class CorpusError(UserError, ValueError):
    """A corpus folder that does not look like the corpus it is said to be."""


class CorpusRootError(CorpusError):
    """A corpus root that is missing or holds no audio at all: nothing to load or describe,
    so it is an error even where per-file problems are only collected."""


class UnknownLabelError(CorpusError):
    """A label code the corpus' documented label map does not contain."""

    def __init__(self, corpus: str, code: str, path: str | os.PathLike, known: Iterable[str]):
        self.corpus, self.code, self.path = corpus, code, str(path)
        super().__init__(f"{corpus}: unknown emotion code {code!r} in {path} "
                         f"(known codes: {', '.join(sorted(known))})")


def features():
    """The `datasets.Features` of the unified schema."""
    from datasets import Features, Value

    f = {c: Value("string") for c in COLUMNS}
    f["duration"] = Value("float32")
    return Features(f)


def map_label(corpus: str, code: str, mapping: Mapping[str, str], path: str | os.PathLike) -> str:
    """Map a corpus' own emotion code to the canonical set, loudly refusing unknown codes."""
    try:
        label = mapping[code]
    except KeyError:
        raise UnknownLabelError(corpus, code, path, mapping.keys()) from None
    assert label in EMOTIONS, f"{corpus}: label map sends {code!r} to unknown label {label!r}"
    return label


def find_audio(root: str | os.PathLike, corpus: str, extensions: tuple[str, ...] = (".wav",)) -> list[Path]:
    """All audio files anywhere below `root`, sorted; users unpack archives differently.

    Hidden files and macOS resource forks (`._x.wav`, `__MACOSX/`) are ignored.
    """
    root = Path(root)
    if not root.exists():
        raise CorpusRootError(f"{corpus}: corpus root {root} does not exist; pass the folder the corpus was "
                              "unpacked to")
    if root.is_file():
        raise CorpusRootError(f"{corpus}: corpus root {root} is a file; pass the folder the corpus was unpacked to")
    exts = tuple(e.lower() for e in extensions)
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__MACOSX")
        for fn in filenames:
            if fn.startswith(".") or not fn.lower().endswith(exts):
                continue
            found.append(Path(dirpath) / fn)
    if not found:
        raise CorpusRootError(f"{corpus}: no {'/'.join(exts)} files found anywhere below {root}; "
                              "pass the folder the corpus was unpacked to")
    return sorted(found)


def header_duration(path, *, skip_errors: bool = False) -> float:
    """A file's duration from its header; with `skip_errors` an unreadable header gives NaN
    (the row stays, and the extraction lists the file with its reason) instead of AudioError."""
    from jaxser import audio

    try:
        return audio.info(path).duration
    except audio.AudioError:
        if skip_errors:
            return float("nan")
        raise


def dimension_value(corpus: str, dim: str, value, where, ranges: Mapping[str, tuple[float, float]] | None) -> float:
    """One dimensional rating as a float on the corpus' scale: NaN for an empty/None/NaN value,
    a CorpusError for text that is not a number or a number outside the declared range."""
    import math

    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "nan", "na", "n/a")):
        return float("nan")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise CorpusError(f"{corpus}: {where}: {dim} {value!r} is not a number") from None
    if math.isnan(v):
        return v
    rng = (ranges or {}).get(dim)
    if rng is None:
        raise CorpusError(f"{corpus}: {where}: a {dim} rating is given but the corpus declares no range for it "
                          "(a loader's DIMENSIONS, or the manifest option dimension_range=(lo, hi))")
    lo, hi = rng
    if not (math.isfinite(v) and lo <= v <= hi):
        raise CorpusError(f"{corpus}: {where}: {dim} {value!r} is outside the corpus' range [{lo:g}, {hi:g}]; "
                          "fix the value or declare the scale the ratings are on")
    return v


def build_dataset(corpus: str, root: str | os.PathLike, records: list[dict], *, durations: bool = True,
                  skip_errors: bool = False, dimensions: Mapping[str, tuple[float, float]] | None = None):
    """Validate loader records and return the unified `datasets.Dataset` (sorted by id).

    Each record has RECORD_KEYS; `utt` is unique within the corpus, `speaker` is the corpus'
    own speaker code (prefixed here so speakers are never shared across corpora), `path` is
    absolute. Durations come from file headers (no decoding) unless a record gives one; an
    unreadable header raises AudioError, or with `skip_errors` gives duration NaN.
    Any other key a record carries (e.g. IEMOCAP's `session`, `improvised`) becomes an extra
    string column after the unified ones; every record must then carry it. `start`/`end`
    (SEGMENT_COLUMNS) are float64 columns instead: the row is that span of its file, and its
    duration must be given (a header gives the whole file's).
    A record with any of DIMENSIONS gives the dataset all three as float64 columns right after
    the unified ones (NaN where a record lacks one), checked against `dimensions` (the corpus'
    declared ranges). Such a row may have `emotion == ""` (rated only dimensionally) when at
    least one of its dimensions is a number; every other row needs a known emotion.
    """
    import math

    from datasets import Dataset

    if not records:
        raise CorpusError(f"{corpus}: no utterances found below {root}")
    root = Path(root).resolve()
    seen: dict[str, str] = {}
    dims = DIMENSIONS if any(d in r for r in records for d in DIMENSIONS) else ()
    extra = sorted(set(records[0]) - set(RECORD_KEYS) - {"duration"} - set(DIMENSIONS))
    cols: dict[str, list] = {c: [] for c in (*COLUMNS, *dims, *extra)}
    for r in sorted(records, key=lambda r: r["utt"]):
        missing = [k for k in RECORD_KEYS if k not in r]
        if missing:
            raise CorpusError(f"{corpus}: loader record for {r.get('path')} lacks {missing}")
        uid = f"{corpus}/{r['utt']}"
        if uid in seen:
            raise CorpusError(f"{corpus}: duplicate utterance id {r['utt']!r}: {seen[uid]} and {r['path']}")
        p = Path(r["path"]).resolve()
        seen[uid] = str(p)
        values = [dimension_value(corpus, d, r.get(d), p, dimensions) for d in dims]
        if r["emotion"] == "":
            if all(math.isnan(v) for v in values):  # only a dimensionally rated row may lack an emotion
                raise CorpusError(f"{corpus}: {p}: no emotion and no arousal/valence/dominance rating; a row "
                                  "needs one or the other")
        elif r["emotion"] not in EMOTIONS:
            raise CorpusError(f"{corpus}: {p}: emotion {r['emotion']!r} is not a known label "
                              "(jaxser.corpora.schema.EMOTIONS)")
        if r["gender"] not in GENDERS:
            raise CorpusError(f"{corpus}: {p}: gender {r['gender']!r} not in {GENDERS}")
        try:
            rel = p.relative_to(root).as_posix()
        except ValueError:
            rel = str(p)
        cols["id"].append(uid)
        cols["corpus"].append(corpus)
        cols["audio"].append(str(p))
        cols["path"].append(rel)
        cols["speaker"].append(f"{corpus}/{r['speaker']}")
        cols["gender"].append(r["gender"])
        cols["language"].append(r["language"])
        cols["emotion"].append(r["emotion"])
        cols["raw_label"].append(str(r["raw_label"]))
        cols["text"].append(str(r["text"] or ""))
        cols["duration"].append(float(r["duration"]) if "duration" in r else
                                (header_duration(p, skip_errors=skip_errors) if durations else float("nan")))
        for d, v in zip(dims, values):
            cols[d].append(v)
        for k in extra:
            if k not in r:
                raise CorpusError(f"{corpus}: record for {p} lacks extra column {k!r} that others carry")
            cols[k].append(float(r[k]) if k in SEGMENT_COLUMNS else str(r[k]))
        if "start" in extra and "duration" not in r:
            raise CorpusError(f"{corpus}: segment record for {p} lacks its duration")
    feats = features()
    if extra or dims:
        from datasets import Value

        feats = type(feats)({**feats, **{d: Value("float64") for d in dims},
                             **{k: Value("float64" if k in SEGMENT_COLUMNS else "string") for k in extra}})
    info = None
    if dims:  # the scales the ratings were checked against travel with the rows (a manifest's are an option)
        import json

        from datasets import DatasetInfo

        info = DatasetInfo(features=feats, description=json.dumps({_RANGES_KEY: {
            d: list(dimensions[d]) for d in dims if d in (dimensions or {})}}))
    return Dataset.from_dict(cols, features=feats, info=info)


_RANGES_KEY = "jaxser_dimension_ranges"


def carried_ranges(ds) -> dict[str, tuple[float, float]] | None:
    """The dimension scales `build_dataset` recorded on a dataset (its `info.description`), or
    None for a dataset without rating columns."""
    import json

    try:
        data = json.loads(ds.info.description or "")
    except (ValueError, AttributeError):
        return None
    ranges = data.get(_RANGES_KEY) if isinstance(data, dict) else None
    if ranges is None:
        return None
    return {d: (float(lo), float(hi)) for d, (lo, hi) in ranges.items()}


def fingerprint(ds) -> str:
    """A corpus fingerprint: ids, paths, sizes and mtimes of every file (cheap: no decoding).

    Changing, adding or removing any file changes it, so embedding caches never go stale.
    """
    h = hashlib.sha256()
    for uid, p in zip(ds["id"], ds["audio"]):
        try:
            st = os.stat(p)
            h.update(f"{uid}\0{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{uid}\0{p}\0missing\n".encode())
    return h.hexdigest()[:16]


#: sha256 of a file's bytes; one implementation for the cache, the card and the loaders.
file_digest = sha256_file


def file_digests(paths, *, workers: int = 8) -> list[str]:
    """sha256 of each file, in order; "" for a file that cannot be read.

    Hashing is I/O-bound, so a small thread pool overlaps the reads (hashlib releases the GIL
    on large buffers). An unreadable file is the extraction's and the card's business to
    report with its reason; here it simply matches nothing.
    """
    from concurrent.futures import ThreadPoolExecutor

    def one(p) -> str:
        try:
            return sha256_file(p)
        except OSError:
            return ""

    paths = [str(p) for p in paths]
    unique = list(dict.fromkeys(paths))  # segments share their file: hash it once
    if len(unique) <= 1:
        got = [one(p) for p in unique]
    else:
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(unique)))) as pool:
            got = list(pool.map(one, unique))
    by_path = dict(zip(unique, got))
    return [by_path[p] for p in paths]


def segment_digest(file_hex: str, start, end) -> str:
    """The digest of a segment: its file's digest and its span (two rows are one recording
    only if both are equal); the file's own digest for a whole-file row (no span)."""
    if not file_hex or start is None or end is None:
        return file_hex
    return hashlib.sha256(f"{file_hex}\0{float(start)!r}\0{float(end)!r}".encode()).hexdigest()


def segments(ds) -> list[tuple[float | None, float | None]]:
    """(start, end) in seconds of each row, (None, None) for rows that are whole files; what
    `jaxser.audio.load(path, start=, end=)` takes."""
    if "start" not in ds.column_names:
        return [(None, None)] * len(ds)
    return list(zip(ds["start"], ds["end"]))


def content_digests(ds) -> list[str]:
    """sha256 hex of each row's file bytes (column `audio`, absolute paths), in row order; ""
    where the file is unreadable; for a segment row, of its file and span. Equal digests are
    the same recording under different ids, which must never sit on both sides of a
    train/test split."""
    digests = file_digests(ds["audio"])
    return [segment_digest(d, s, e) for d, (s, e) in zip(digests, segments(ds))]


def duplicate_groups(digests) -> list[list[int]]:
    """Row indices of each group of two or more identical recordings (empty digests never
    match), groups in order of their first row."""
    groups: dict[str, list[int]] = {}
    for i, d in enumerate(digests):
        if d:
            groups.setdefault(d, []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def drop_duplicate_copies(corpus: str, records: list[dict]) -> list[dict]:
    """Keep one record per utterance id when a redistribution ships byte-identical copies.

    Kaggle archives of RAVDESS and TESS contain the corpus twice under different folders;
    refusing them would make the common download unusable, silently keeping either would
    hide a real conflict. So: identical bytes -> keep the first path (sorted) and warn once
    with the count; different bytes under one id -> CorpusError naming both files.
    """
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(r["utt"], []).append(r)
    out, dropped, example = [], 0, None
    for utt, rs in groups.items():
        if len(rs) > 1:
            rs = sorted(rs, key=lambda r: (len(Path(r["path"]).parts), str(r["path"])))
            first = Path(rs[0]["path"])
            ref = (first.stat().st_size, file_digest(first))
            for other in rs[1:]:
                p = Path(other["path"])
                if (p.stat().st_size, file_digest(p)) != ref:
                    raise CorpusError(f"{corpus}: utterance {utt!r} found twice with different contents: "
                                      f"{first} and {p}; remove one of the copies")
                dropped += 1
                example = example or (first, p)
        out.append(rs[0])
    if dropped:
        warnings.warn(f"{corpus}: {dropped} file(s) are identical copies of others below the root "
                      f"(e.g. {example[1]} = {example[0]}); each utterance is used once", stacklevel=3)
    return out


def parse_files(paths, parse, errors: list | None = None, excluded=None) -> list[dict]:
    """`parse(path)` for every path. Without `errors` the first CorpusError propagates; with a
    list, per-file CorpusErrors are collected there and the file skipped (the corpus card uses
    this to list every problem instead of stopping at the first). A `parse` that returns a
    string instead of a record leaves the file out by design: the string is its raw label,
    counted in the `excluded` Counter when one is given."""
    out = []
    for p in paths:
        try:
            r = parse(p)
        except CorpusError as e:
            if errors is None:
                raise
            errors.append(e)
            continue
        if isinstance(r, str):
            if excluded is not None:
                excluded[r] += 1
        else:
            out.append(r)
    return out


def read_table(corpus: str, path, required: Iterable[str], *, delimiter: str = ",",
               encoding: str = "utf-8-sig") -> list[tuple[int, dict]]:
    """(line number, row) of a corpus' metadata CSV, refusing one that lacks a required column.

    Release tables come with a BOM or stray spaces in headers; both are removed here so each
    loader names columns as the documentation does.
    """
    import csv

    with open(path, newline="", encoding=encoding) as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        fields = [(h or "").strip() for h in (reader.fieldnames or ())]
        missing = [c for c in required if c not in fields]
        if missing:
            raise CorpusError(f"{corpus}: {path} lacks column(s) {missing} (has {fields}); is it the release's table?")
        reader.fieldnames = fields
        return [(i, {k: (v or "").strip() for k, v in row.items() if k is not None})
                for i, row in enumerate(reader, start=2)]


def find_file(root, corpus: str, name: str, *, required: bool = True) -> Path | None:
    """The first file called `name` anywhere below `root` (sorted walk, hidden folders and
    `__MACOSX/` skipped): metadata tables sit at different depths in different unpackings."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__MACOSX")
        if name in filenames:
            return Path(dirpath) / name
    if required:
        raise CorpusRootError(f"{corpus}: no {name} found anywhere below {root}; pass the folder the corpus "
                              "was unpacked to (with its metadata)")
    return None
