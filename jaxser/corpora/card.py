"""Corpus card: what is in a corpus folder and what is wrong with it, before any embedding.

`describe(name, root)` runs the corpus' own loader in a mode that collects per-file errors
(unknown codes, bad names) instead of stopping at the first, then looks at every file:
header (sample rate, channels, duration), optionally a full decode (unreadable, empty,
all-zero, NaN files, via `jaxser.audio`), and a content hash (byte-identical duplicates, a
common artefact of re-packaged corpora). Everything comes back as pandas DataFrames so a
notebook, the CLI (`python -m jaxser.corpora describe NAME=ROOT`) and tests see the same data.

Loader conventions the card uses when a module offers them (all optional):
`records(root, errors=[...], excluded=Counter())` to collect per-file CorpusErrors and count
utterances left out by design; `label_map(**options)` for option-dependent label maps.
"""
from __future__ import annotations

import inspect
import math
from collections import Counter
from pathlib import Path

from jaxser.corpora.schema import CorpusError

TABLES = ("summary", "emotions", "label_map", "excluded", "speakers", "gender", "durations", "sample_rates",
          "problems")


def _classify(reason: str) -> str:
    r = reason.lower()
    for key, kind in (("unreadable", "unreadable"), ("undecodable", "unreadable"), ("empty", "empty"),
                      ("all samples are zero", "all_zero"), ("nan or inf", "non_finite"), ("too short", "too_short"),
                      ("absurdly long", "too_long"), ("not a waveform", "not_waveform")):
        if key in r:
            return kind
    return "bad_audio"


def _error_kind(e: Exception) -> str:
    from jaxser.corpora.schema import UnknownLabelError

    return "unknown_label" if isinstance(e, UnknownLabelError) else "layout"


def _call_records(mod, root, options, problems, excluded):
    from jaxser.corpora.schema import CorpusRootError

    params = inspect.signature(mod.records).parameters
    kw = dict(options)
    errors: list = []
    if "errors" in params:
        kw["errors"] = errors
    if "skip_errors" in params:  # unreadable headers: keep the file, _inspect_files reports it
        kw["skip_errors"] = True
    if "excluded" in params:
        kw["excluded"] = excluded
    unlabelled: list = []
    if "unlabelled" in params:  # audio the corpus' label files do not name (MELD, MSP-IMPROV)
        kw["unlabelled"] = unlabelled
    from jaxser.audio import AudioError

    try:
        recs = mod.records(root, **kw)
    except CorpusRootError:  # nothing to describe: the root itself is wrong
        raise
    except CorpusError as e:  # a loader without error collection stops at the first problem
        problems.append({"kind": _error_kind(e), "path": getattr(e, "path", ""), "detail": str(e)})
        recs = []
    except AudioError as e:  # loaders that read headers themselves (e.g. TESS, for durations)
        problems.append({"kind": _classify(e.reason), "path": e.path, "detail": str(e)})
        recs = []
    for e in errors:
        problems.append({"kind": _error_kind(e), "path": getattr(e, "path", ""), "detail": str(e)})
    for p in unlabelled:
        problems.append({"kind": "unlabelled", "path": str(p), "detail": "no label row names this file; not used"})
    return recs


def _rows_from_dataset(ds) -> list[dict]:
    cols = ds.column_names
    rows = []
    for i in range(len(ds)):
        r = ds[i]
        rows.append({"utt": r["id"].split("/", 1)[-1], "path": r["audio"] if isinstance(r["audio"], str) else r["path"],
                     "speaker": r["speaker"].split("/", 1)[-1], "gender": r["gender"], "language": r["language"],
                     "emotion": r["emotion"], "raw_label": r["raw_label"],
                     **({"duration": r["duration"]} if "duration" in cols else {}),
                     **({k: r[k] for k in ("start", "end")} if "start" in cols else {})})
    return rows


#: the canonical column of a label without an emotion (an utterance that only has ratings)
RATED_ONLY = "(none: rated only)"


def _label_map_of_rows(rows) -> dict[str, str]:
    """Each label as the loaded rows pair it with a canonical emotion, for a loader that declares
    no map of its own (a manifest: its labels are canonical, or mapped by its `label_map`
    option); a label paired with several emotions lists them all."""
    seen: dict[str, dict[str, None]] = {}
    for r in rows:
        seen.setdefault(r["raw_label"], {})[r["emotion"] or RATED_ONLY] = None
    return {code: ", ".join(emotions) for code, emotions in seen.items()}


def _inspect_files(rows, problems, *, decode: bool, hashes: bool):
    from jaxser import audio

    for r in rows:
        p = r["path"]
        r.update(sample_rate=None, channels=None, duration=math.nan, ok=True)
        start, end = r.get("start"), r.get("end")  # a segment of a longer recording: only its span
        try:
            hdr = audio.info(p)
            seconds = hdr.duration if start is None else float(end) - float(start)
            r.update(sample_rate=hdr.sample_rate, channels=hdr.channels, duration=seconds)
            if hdr.frames == 0:
                raise audio.AudioError(p, "empty audio (0 samples)")
            if decode:
                audio.load(p, sample_rate=hdr.sample_rate, max_seconds=max(audio.MAX_SECONDS, seconds + 1),
                           start=start, end=end)
        except audio.AudioError as e:
            r["ok"] = False
            problems.append({"kind": _classify(e.reason), "path": str(p), "detail": e.reason})
    if hashes:
        _report_duplicates(rows, problems)


def _report_duplicates(rows, problems):
    """One problem per extra copy of a recording, each naming the whole group (ids and paths):
    the same recording under two ids can land in both train and test."""
    from jaxser.corpora.schema import duplicate_groups, file_digests, segment_digest

    digests = [segment_digest(d, r.get("start"), r.get("end"))
               for d, r in zip(file_digests([r["path"] for r in rows]), rows)]
    for i, d in enumerate(digests):
        if not d and rows[i]["ok"]:
            problems.append({"kind": "unreadable", "path": str(rows[i]["path"]), "detail": "cannot read the file"})
    for group in duplicate_groups(digests):
        members = "; ".join(f"{rows[i]['utt']} ({rows[i]['path']})" for i in group)
        for i in group[1:]:
            problems.append({"kind": "duplicate", "path": str(rows[i]["path"]),
                             "detail": f"{len(group)} identical recordings under different ids: {members}; "
                                       "keep one copy"})


def describe(ds_or_name, root=None, *, decode: bool = True, hashes: bool = True, **options) -> dict:
    """The corpus card as a dict of DataFrames (keys: TABLES).

    `ds_or_name`: a unified `datasets.Dataset`, or a registry name (with `root`, or alone for a
    synthetic corpus). `options` go to the loader (e.g. merge_excited=True, level_map="strict").
    `decode=False` reads headers only; `hashes=False` skips the duplicate check. A root that
    does not exist or holds no audio raises CorpusRootError: an empty card would pass for a
    clean one. Files whose headers cannot be read are rows listed under problems.
    """
    import pandas as pd

    from jaxser import corpora

    problems: list[dict] = []
    excluded: Counter = Counter()
    mod, label_map = None, None
    if isinstance(ds_or_name, str):
        name = corpora.canonical_name(ds_or_name)
        synthetic = False
        try:
            synthetic = name in corpora._synthetic_names()
        except ImportError:
            pass
        if synthetic:
            ds = corpora.load(name, root, **options)
            rows = _rows_from_dataset(ds)
            from jaxser.corpora import synthetic as syn_mod

            label_map = dict(syn_mod.spec(name).label_map) if hasattr(syn_mod, "spec") else None
        else:
            mod = corpora.module(name)
            if root is None:
                raise CorpusError(f"{name}: a corpus root is needed to describe it (NAME=ROOT)")
            if not Path(root).exists():
                from jaxser.corpora.schema import CorpusRootError

                raise CorpusRootError(f"{name}: corpus root {root} does not exist; pass the folder the corpus was "
                                      "unpacked to")
            own_name = getattr(mod, "NAME", name)
            if hasattr(mod, "load") and not hasattr(mod, "records"):  # the manifest loader names its corpus
                from jaxser.corpora.schema import CorpusRootError

                try:
                    ds = mod.load(root, skip_errors=True, **options)
                    rows = _rows_from_dataset(ds)
                    own_name = ds["corpus"][0] if len(ds) else own_name
                except CorpusRootError:
                    raise
                except CorpusError as e:
                    problems.append({"kind": _error_kind(e), "path": getattr(e, "path", ""), "detail": str(e)})
                    rows = []
            else:
                rows = [dict(r) for r in _call_records(mod, root, options, problems, excluded)]
            lm = getattr(mod, "label_map", None)
            label_map = lm(**{k: v for k, v in options.items() if k in inspect.signature(lm).parameters}) \
                if callable(lm) else getattr(mod, "LABEL_MAP", None)
            name = own_name
    else:
        ds = ds_or_name
        name = ds["corpus"][0] if len(ds) else "?"
        rows = _rows_from_dataset(ds)
        try:
            mod = corpora.module(name)
            label_map = getattr(mod, "LABEL_MAP", None)
        except CorpusError:
            pass

    if label_map is None:  # a manifest: its labels are canonical already, or mapped by its label_map option
        label_map = _label_map_of_rows(rows)
    _inspect_files(rows, problems, decode=decode, hashes=hashes)
    df = pd.DataFrame(rows, columns=sorted({k for r in rows for k in r}) or ["utt", "path", "speaker", "gender",
                                                                            "emotion", "raw_label", "duration",
                                                                            "sample_rate", "channels", "ok"])
    n = len(df)
    card: dict[str, pd.DataFrame] = {}

    emo = (df.groupby("emotion").agg(utterances=("utt", "size"), speakers=("speaker", "nunique"),
                                     hours=("duration", lambda s: s.sum() / 3600)).reset_index()
           if n else pd.DataFrame(columns=["emotion", "utterances", "speakers", "hours"]))
    emo["share"] = emo["utterances"] / max(n, 1)
    card["emotions"] = emo.sort_values("utterances", ascending=False, kind="stable").reset_index(drop=True)

    raw_counts = Counter(df["raw_label"]) if n else Counter()
    codes = sorted(set(label_map or {}) | set(raw_counts) | set(excluded))
    card["label_map"] = pd.DataFrame({"code": codes,
                                      "emotion": [(label_map or {}).get(c, "(excluded)" if c in excluded else "")
                                                  for c in codes],
                                      "utterances": [raw_counts.get(c, 0) for c in codes],
                                      "excluded": [excluded.get(c, 0) for c in codes]})
    card["excluded"] = pd.DataFrame(sorted(excluded.items()), columns=["raw_label", "utterances"])

    if n:
        spk = df.groupby("speaker").agg(gender=("gender", "first"), utterances=("utt", "size"),
                                        seconds=("duration", "sum")).reset_index()
        gen = spk.groupby("gender").agg(speakers=("speaker", "size")).join(
            df.groupby("gender").agg(utterances=("utt", "size"))).reset_index()
    else:
        spk = pd.DataFrame(columns=["speaker", "gender", "utterances", "seconds"])
        gen = pd.DataFrame(columns=["gender", "speakers", "utterances"])
    card["speakers"] = spk
    card["gender"] = gen

    def stats(label, s):
        s = s.dropna()
        return {"subset": label, "count": int(s.size), "mean_s": s.mean(), "std_s": s.std(), "min_s": s.min(),
                "median_s": s.median(), "p95_s": s.quantile(0.95) if s.size else math.nan, "max_s": s.max(),
                "total_h": s.sum() / 3600}

    dur = [stats("all", df["duration"] if n else pd.Series(dtype=float))]
    if n:
        dur += [stats(e, g["duration"]) for e, g in df.groupby("emotion")]
    card["durations"] = pd.DataFrame(dur)

    sr = (df.dropna(subset=["sample_rate"]).astype({"sample_rate": int, "channels": int})
          .groupby(["sample_rate", "channels"]).size().rename("files").reset_index()
          if n else pd.DataFrame(columns=["sample_rate", "channels", "files"]))
    card["sample_rates"] = sr
    card["problems"] = pd.DataFrame(problems, columns=["kind", "path", "detail"])
    langs = sorted(set(df["language"])) if n and "language" in df else []
    card["summary"] = pd.DataFrame([{
        "corpus": name, "root": str(root) if root is not None else "", "language": ",".join(langs),
        "utterances": n, "speakers": int(df["speaker"].nunique()) if n else 0, "emotions": int(emo.shape[0]),
        "hours": float(df["duration"].sum() / 3600) if n else 0.0,
        "excluded": int(sum(excluded.values())), "problems": len(problems),
        **_published(mod)}])
    return {k: card[k] for k in TABLES}


def _published(mod) -> dict:
    """What the corpus' owners publish (a loader's CARD: size, hours, speakers, licence, source),
    beside what the folder holds, so a partial download shows at a glance."""
    pub = getattr(mod, "CARD", None) or {}
    return {f"published_{k}" if k in ("utterances", "hours", "speakers") else k: v for k, v in pub.items()}


def render(card: dict, *, max_rows: int = 20) -> str:
    """The card as plain text (what the CLI prints)."""
    import pandas as pd

    s = card["summary"].iloc[0]
    out = [f"== {s['corpus']} ({s['language']}) {s['root']}".rstrip(),
           f"{s['utterances']} utterances, {s['speakers']} speakers, {s['emotions']} emotions, "
           f"{s['hours']:.2f} h; {s['excluded']} excluded by the label map; {s['problems']} problems"]
    if "source" in s:
        out.append(f"published: {s['published_utterances']} utterances, {s['published_hours']} h, "
                   f"{s['published_speakers'] or 'unnamed'} speakers; licence: {s['licence']}; get it: {s['source']}")
    with pd.option_context("display.width", 120, "display.max_columns", 20, "display.float_format", "{:.3f}".format):
        for key, title in (("emotions", "utterances by emotion"), ("label_map", "label map (corpus code -> canonical)"),
                           ("gender", "gender balance"), ("durations", "durations (seconds)"),
                           ("sample_rates", "native sample rates"), ("speakers", "speakers"),
                           ("problems", "problems")):
            t = card[key]
            out.append(f"-- {title}")
            if t.empty:
                out.append("   (none)")
                continue
            text = t.head(max_rows).to_string(index=False)
            out += ["   " + line for line in text.splitlines()]
            if len(t) > max_rows:
                out.append(f"   ... {len(t) - max_rows} more")
    return "\n".join(out)


def to_jsonable(card: dict) -> dict:
    """The card as plain lists of records (for --json)."""
    import json

    return {k: json.loads(v.to_json(orient="records")) for k, v in card.items()}


def write_csv(card: dict, folder, prefix: str) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, v in card.items():
        p = folder / f"{prefix}_{k}.csv"
        v.to_csv(p, index=False)
        paths.append(p)
    return paths
