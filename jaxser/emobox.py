"""EmoBox's partitions as jaxser cells: its intra-corpus folds and its cross-corpus track.

EmoBox (Ma et al., Interspeech 2024; github.com/emo-box/EmoBox) publishes, per corpus,
`data/<name>/<name>.jsonl` (every utterance: `wav` = `downloads/<name>/<path in the release>`,
`emo` = the corpus' own code, optional `start_time`/`end_time`), `label_map.json` (code ->
EmoBox class name) and `fold_N/<name>_{train,test,valid}_fold_N.jsonl`; and, for its
cross-corpus track, `data/track2/<NAME>_selected_balenced.jsonl` (`wav_filename`, `label`,
`speaker`: 240 utterances per corpus, balanced in class and speaker). These files are read
from the user's checkout (they are not shipped with jaxser) and matched, record by record, to
the utterances jaxser's loaders found on disk, so a study on EmoBox's protocol trains and tests
on exactly the files EmoBox lists, and every disagreement is counted and shown.

Matching: a record's path (its `wav` less `downloads/<name>/`) and each utterance's `path`
(relative to its corpus root) are turned into a key by the corpus' rule (`KEY_RULES`; the
path itself by default) and matched exactly, or, where the corpus root is a folder above or
below EmoBox's `downloads/<name>`, by a unique whole-component suffix.
"""
from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from jaxser import protocol
from jaxser.corpora.schema import EMOTIONS
from jaxser.errors import UserError

#: the cross-corpus track: corpus -> its balanced test list in data/track2 (EmoBox's spelling)
TRACK_FILES = {"iemocap": "IEMOCAP_selected_balenced.jsonl", "meld": "MELD_selected_balenced.jsonl",
               "ravdess": "RAVDESS_selected_balenced.jsonl", "savee": "SAVEE_selected_balenced.jsonl"}
TRACK_LABELS = ("angry", "happy", "neutral", "sad")
#: what a mismatch between EmoBox's lists and the corpus on disk does: stop the run, or be reported
MISMATCH = ("error", "warn")
#: examples of each kind of mismatch listed in the log and manifest.json
EXAMPLES = 5
ROLES = ("train", "test", "valid")


class EmoBoxError(UserError, ValueError):
    """EmoBox's files cannot be read, or disagree with the corpora on disk."""


# ----------------------------------------------------------------------------- reading EmoBox's files

def data_dir(path) -> Path:
    """EmoBox's data folder: `path` itself or its `data/` (a checkout's root)."""
    p = Path(path).expanduser()
    for cand in (p / "data", p):
        if cand.is_dir() and (any(cand.glob("*/label_map.json")) or (cand / "track2").is_dir()):
            return cand
    raise EmoBoxError(f"emobox = {path}: not an EmoBox checkout or data folder (no data/<corpus>/label_map.json "
                      "below it); clone github.com/emo-box/EmoBox and give its root")


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines file; a bad line is an error naming the file and line."""
    out = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise EmoBoxError(f"{path}: unreadable ({type(e).__name__}: {e})") from None
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as e:
            raise EmoBoxError(f"{path}:{i}: not a JSON record ({e}); restore the file from EmoBox's repository") \
                from None
        if not isinstance(rec, dict):
            raise EmoBoxError(f"{path}:{i}: expected a JSON object, got {type(rec).__name__}")
        out.append(rec)
    return out


def _field(rec: dict, key: str, path: Path, i: int) -> str:
    v = rec.get(key)
    if not isinstance(v, str) or not v:
        raise EmoBoxError(f"{path}: record {i + 1} has no {key!r}; expected EmoBox's record schema")
    return v


@dataclass
class Fold:
    number: int
    files: dict[str, Path]  # role (train, test, valid) -> partition file


@dataclass
class Partition:
    corpus: str
    labels: dict[str, str]  # the corpus' code -> jaxser label (EmoBox's class name, lower-cased)
    folds: list[Fold]
    listing: Path | None    # data/<name>/<name>.jsonl, absent from some checkouts

    def files(self) -> list[Path]:
        return ([self.listing] if self.listing else []) + [f for fold in self.folds for f in fold.files.values()]


def _fold_file(folder: Path, corpus: str, role: str, n: int) -> Path | None:
    # EmoBox spells them <name>_<role>_fold_<n>.jsonl; EmoDB's folders also hold an older
    # <name>_<role>_fold<n>.jsonl beside them: the underscored name is the one its loader reads
    for name in (f"{corpus}_{role}_fold_{n}.jsonl", f"{corpus}_{role}_fold{n}.jsonl"):
        if (folder / name).is_file():
            return folder / name
    return None


def partition(data: Path, corpus: str) -> Partition:
    """A corpus' EmoBox partition: label map and folds (train and test files required)."""
    folder = Path(data) / corpus
    lm_path = folder / "label_map.json"
    if not lm_path.is_file():
        have = sorted(p.parent.name for p in Path(data).glob("*/label_map.json"))
        raise EmoBoxError(f"{corpus}: EmoBox has no partition of it ({lm_path} missing); EmoBox partitions "
                          f"{', '.join(have) or 'nothing here'}")
    try:
        raw = json.loads(lm_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise EmoBoxError(f"{lm_path}: unreadable ({type(e).__name__}: {e})") from None
    if not isinstance(raw, dict) or not raw:
        raise EmoBoxError(f"{lm_path}: expected an object of code -> class name")
    labels = {}
    for code, name in raw.items():
        lab = str(name).strip().lower()
        if lab not in EMOTIONS:
            raise EmoBoxError(f"{lm_path}: class {name!r} (code {code!r}) is not a jaxser label "
                              f"({', '.join(EMOTIONS)})")
        labels[str(code)] = lab
    folds = []
    for d in sorted(folder.glob("fold_*"), key=lambda p: int(re.sub(r"\D", "", p.name) or 0)):
        n = int(re.sub(r"\D", "", d.name) or 0)
        files = {role: f for role in ROLES if (f := _fold_file(d, corpus, role, n)) is not None}
        missing = [r for r in ("train", "test") if r not in files]
        if missing:
            raise EmoBoxError(f"{d}: no {' or '.join(f'{corpus}_{r}_fold_{n}.jsonl' for r in missing)} (the "
                              "checkout lacks a partition file: fetch the full repository, large files included)")
        folds.append(Fold(n, files))
    if not folds:
        raise EmoBoxError(f"{folder}: no fold_N folders; restore EmoBox's data/{corpus}")
    listing = folder / f"{corpus}.jsonl"
    return Partition(corpus, labels, folds, listing if listing.is_file() else None)


def git_commit(folder: Path) -> str | None:
    """The commit checked out in the git repository holding `folder`, read from its files
    (`.git/HEAD`, the ref it names or `packed-refs`): no git program runs, so nothing in the
    checkout's configuration can."""
    for top in [Path(folder).resolve(), *Path(folder).resolve().parents]:
        dot = top / ".git"
        if dot.is_file():  # a worktree or submodule: "gitdir: <path>"
            text = dot.read_text(errors="replace").strip()
            dot = (top / text.removeprefix("gitdir:").strip()).resolve() if text.startswith("gitdir:") else dot
        if not (dot / "HEAD").is_file():
            continue
        head = (dot / "HEAD").read_text(errors="replace").strip()
        if re.fullmatch(r"[0-9a-f]{40}", head):
            return head
        ref = head.removeprefix("ref:").strip()
        common = dot
        if (dot / "commondir").is_file():
            common = (dot / (dot / "commondir").read_text().strip()).resolve()
        for base in (dot, common):
            if (base / ref).is_file():
                sha = (base / ref).read_text(errors="replace").strip()
                return sha if re.fullmatch(r"[0-9a-f]{40}", sha) else None
        packed = common / "packed-refs"
        if packed.is_file():
            for line in packed.read_text(errors="replace").splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[1] == ref and re.fullmatch(r"[0-9a-f]{40}", parts[0]):
                    return parts[0]
        return None
    return None


def provenance(data: Path, files) -> dict:
    """What manifest.json records of the EmoBox files a study used: the checkout's git commit,
    else the sha256 of every file."""
    root = Path(data).resolve()
    commit = git_commit(root)
    if commit:
        return {"data": str(root), "commit": commit}
    digests = {}
    for f in sorted({Path(f).resolve() for f in files}):
        digests[str(f.relative_to(root)) if f.is_relative_to(root) else str(f)] = \
            hashlib.sha256(f.read_bytes()).hexdigest()
    return {"data": str(root), "commit": None, "sha256": digests}


# ----------------------------------------------------------------------------- matching records to utterances

def release_path(corpus: str, wav: str) -> str:
    """A record's path below the corpus root: its `wav` less `downloads/<name>/`."""
    parts = PurePosixPath(wav.replace("\\", "/")).parts
    if len(parts) > 2 and parts[0] == "downloads":
        parts = parts[2:]
    return "/".join(parts)


def _savee_key(path: str) -> str:
    # EmoBox lists SAVEE flat (`JE_n23.wav`, Kaggle's `ALL/`); the release has `AudioData/JE/n23.wav`
    parts = path.split("/")
    name = parts[-1]
    return name if "_" in name or len(parts) < 2 else f"{parts[-2]}_{name}"


def _meld_key(path: str) -> str:
    # EmoBox: `train/train_splits/x.mp4`, `dev_splits_complete/x.mp4`, `output_repeated_splits_test/x.mp4`;
    # the release: `MELD.Raw/<split folder>/x.mp4`: the split folder and the file name identify a clip
    return "/".join(path.split("/")[-2:])


def _file_name(path: str) -> str:
    # CaFE: EmoBox's list spells the Colère and Dégoût folders as CP437 read back as Windows-1252
    # (`ColŠre`, `D‚go–t`), as some copies of the zip unpack; the file name (speaker, emotion,
    # intensity, sentence) identifies the recording alone. ESD: EmoBox lists
    # `0005/Neutral/0005_000001.wav`, older copies add `train/`, `evaluation/` or `test/` below
    # the emotion; the file name (speaker, utterance number) identifies the recording alone
    return path.split("/")[-1]


#: corpus -> its rule turning a path (EmoBox's or the loader's) into the matching key
KEY_RULES = {"savee": _savee_key, "meld": _meld_key, "cafe": _file_name, "esd": _file_name}


def _key(corpus: str, path: str, start=None) -> str:
    # NFC: a folder such as Oréau's `OréauFR_01` may be stored decomposed (NFD) on disk
    path = unicodedata.normalize("NFC", path.replace("\\", "/"))
    key = KEY_RULES.get(corpus, lambda p: p)(path)
    if start is not None and start == start:  # a segment of a longer recording (PAVOQUE)
        key += f"@{float(start):.2f}"
    return key


class Matcher:
    """Finds the metadata row of a key: exact, else a unique whole-component suffix either way."""

    def __init__(self, keys: list[str], rows: np.ndarray):
        self.exact: dict[str, list[int]] = {}
        self.suffix: dict[str, list[int]] = {}
        for k, r in zip(keys, rows.tolist()):
            self.exact.setdefault(k, []).append(r)
            parts = k.split("/")
            for i in range(1, len(parts)):
                self.suffix.setdefault("/".join(parts[i:]), []).append(r)

    def find(self, key: str) -> tuple[int | None, int]:
        """(row, number of candidates): row None when there is none or several."""
        for table, k in ((self.exact, key), (self.suffix, key)):
            if k in table:
                hits = table[k]
                return (hits[0] if len(hits) == 1 else None), len(hits)
        parts = key.split("/")
        for i in range(1, len(parts)):
            hits = self.exact.get("/".join(parts[i:]))
            if hits:
                return (hits[0] if len(hits) == 1 else None), len(hits)
        return None, 0


@dataclass
class Problems:
    """Disagreements of one corpus, each kind counted with its first examples."""
    kinds: dict

    @classmethod
    def new(cls):
        return cls({k: [] for k in ("missing", "unlisted", "label", "ambiguous")})

    def add(self, kind: str, text: str) -> None:
        self.kinds[kind].append(text)

    def summary(self) -> dict:
        return {k: {"count": len(v), "examples": v[:EXAMPLES]} for k, v in self.kinds.items()}

    def count(self) -> int:
        return sum(len(v) for v in self.kinds.values())


_WHAT = {"missing": "EmoBox records without a file", "unlisted": "files EmoBox does not list",
         "label": "label disagreements", "ambiguous": "ambiguous names"}


def _corpus_rows(meta, corpus: str) -> np.ndarray:
    return np.flatnonzero(meta["corpus"].to_numpy() == corpus)


def _starts(meta, rows):
    if "start" not in meta:
        return [None] * len(rows)
    return meta["start"].to_numpy()[rows].tolist()


class Study:
    """EmoBox's partition files matched to a study's metadata (columns id, corpus, group, speaker,
    emotion, path, and start for segments)."""

    def __init__(self, meta, emobox, *, mismatch: str = "error"):
        if mismatch not in MISMATCH:
            raise EmoBoxError(f"emobox_mismatch = {mismatch!r}: use one of {', '.join(MISMATCH)}")
        if "path" not in meta:
            raise EmoBoxError("the study's metadata has no path column; EmoBox's records are matched by path")
        self.meta = meta
        self.data = data_dir(emobox)
        self.mismatch = mismatch
        self.emotion = meta["emotion"].to_numpy()
        self.groups = meta["group"].to_numpy()
        self.problems: dict[str, Problems] = {}
        self.counts: dict[str, dict] = {}
        self.used: list[Path] = []
        self._parts: dict[str, Partition] = {}
        self._rows: dict[tuple[str, Path], np.ndarray] = {}
        self._track: dict[str, np.ndarray] = {}

    def _problems(self, corpus: str) -> Problems:
        return self.problems.setdefault(corpus, Problems.new())

    def _matcher(self, corpus: str) -> Matcher:
        rows = _corpus_rows(self.meta, corpus)
        paths = self.meta["path"].to_numpy()[rows].tolist()
        return Matcher([_key(corpus, p, s) for p, s in zip(paths, _starts(self.meta, rows))], rows)

    def partition(self, corpus: str) -> Partition:
        """The corpus' partition, every record of it matched once (listing and all fold files)."""
        if corpus in self._parts:
            return self._parts[corpus]
        part = partition(self.data, corpus)
        self.used.append(self.data / corpus / "label_map.json")
        probs = self._problems(corpus)
        matcher = self._matcher(corpus)
        paths = self.meta["path"].to_numpy()
        listed: set[int] = set()
        seen: dict[str, int | None] = {}
        key_of: dict[int, str] = {}  # row -> the record key that claimed it
        n_records = 0
        for f in part.files():
            self.used.append(f)
            rows = []
            for i, rec in enumerate(read_jsonl(f)):
                wav = _field(rec, "wav", f, i)
                code = _field(rec, "emo", f, i)
                if code not in part.labels:
                    raise EmoBoxError(f"{f}: record {i + 1} ({wav}) has code {code!r}, which "
                                      f"{self.data / corpus / 'label_map.json'} does not map")
                rel = release_path(corpus, wav)
                key = _key(corpus, rel, rec.get("start_time"))
                if key not in seen:
                    n_records += 1
                    row, n = matcher.find(key)
                    if row is not None and key_of.setdefault(row, key) != key:
                        # two records, one file: a root pointed inside a folder EmoBox lists beside
                        # others with the same names (Oréau's two sessions)
                        probs.add("ambiguous", f"{rel} and {key_of[row]} both match {paths[row]}")
                        row = None
                    seen[key] = row
                    if row is None:
                        if n != 1:  # (one candidate: already reported as claimed by another record)
                            probs.add("ambiguous" if n > 1 else "missing",
                                      f"{rel} ({n} files match)" if n > 1 else rel)
                    elif self.emotion[row] != part.labels[code]:
                        probs.add("label", f"{paths[row]}: EmoBox {part.labels[code]} ({code}), "
                                           f"jaxser {self.emotion[row]}")
                row = seen[key]
                if row is not None:
                    rows.append(row)
                    listed.add(row)
            self._rows[(corpus, f)] = np.array(sorted(set(rows)), dtype=int)
        classes = set(part.labels.values())
        for r in _corpus_rows(self.meta, corpus).tolist():
            if r not in listed and self.emotion[r] in classes:
                probs.add("unlisted", str(paths[r]))
        self.counts[corpus] = {"records": n_records, "matched": len(listed),
                               "utterances": int(len(_corpus_rows(self.meta, corpus)))}
        self._parts[corpus] = part
        return part

    def rows(self, corpus: str, f: Path) -> np.ndarray:
        return self._rows[(corpus, f)]

    def track(self, corpus: str) -> np.ndarray:
        """Rows of the corpus' balanced track2 test list. A name is resolved among the corpus'
        files with the same stem (MELD's `dia/utt` names repeat across its train, dev and test
        folders; the list gives `.wav` names for `.mp4` clips), then by the record's label and
        speaker; a name still matching several files is ambiguous and left out (reported)."""
        if corpus in self._track:
            return self._track[corpus]
        if corpus not in TRACK_FILES:
            raise EmoBoxError(f"{corpus}: EmoBox's cross-corpus track tests only {', '.join(TRACK_FILES)} "
                              f"(data/track2); use {corpus} as a source only, or split \"speaker\"")
        f = self.data / "track2" / TRACK_FILES[corpus]
        if not f.is_file():
            raise EmoBoxError(f"{f}: missing; restore EmoBox's data/track2")
        self.used.append(f)
        probs = self._problems(corpus)
        rows = _corpus_rows(self.meta, corpus)
        paths = self.meta["path"].to_numpy()
        speakers = self.meta["speaker"].to_numpy()
        stem_key = KEY_RULES.get("savee") if corpus == "savee" else (lambda p: p.split("/")[-1])
        by_stem: dict[str, list[int]] = {}
        for r in rows.tolist():
            by_stem.setdefault(PurePosixPath(stem_key(str(paths[r]))).stem, []).append(r)
        out = []
        for i, rec in enumerate(read_jsonl(f)):
            name = _field(rec, "wav_filename", f, i)
            label = _field(rec, "label", f, i).strip().lower()
            spk = str(rec.get("speaker", "")).strip().lower()
            cands = by_stem.get(PurePosixPath(stem_key(name)).stem, [])
            if len(cands) > 1:
                cands = [r for r in cands if self.emotion[r] == label] or cands
            if len(cands) > 1 and spk:
                cands = [r for r in cands if str(speakers[r]).lower().split("/", 1)[-1].endswith(spk)] or cands
            if not cands:
                probs.add("missing", f"track2 {name}")
            elif len(cands) > 1:
                probs.add("ambiguous", f"track2 {name}: {', '.join(str(paths[r]) for r in cands[:3])}")
            else:
                if self.emotion[cands[0]] != label:
                    probs.add("label", f"track2 {name} ({paths[cands[0]]}): EmoBox {label}, jaxser "
                                       f"{self.emotion[cands[0]]}")
                out.append(cands[0])
        self._track[corpus] = np.array(sorted(set(out)), dtype=int)
        return self._track[corpus]

    # ------------------------------------------------------------------------- cells

    def cells(self, settings, *, labels=None, val_frac: float = protocol.VAL_FRACTION, seed: int = 0) -> list:
        """Same-corpus cells = EmoBox's folds on the corpus' EmoBox classes (validation: EmoBox's
        valid file where there is one, else a speaker-disjoint split of the training fold);
        cross cells = the track (train on the source less its own track list, test on the
        target's balanced list, four classes)."""
        bad = set(settings) - {"same", "cross"}
        if bad:
            raise EmoBoxError(f"settings {sorted(bad)}: EmoBox's protocol defines same-corpus folds and the "
                              "cross-corpus track only (settings same, cross)")
        names = list(dict.fromkeys(self.meta["corpus"].tolist()))
        cells = []
        if "same" in settings:
            for c in names:
                cells += self._same(c, val_frac, seed)
        if "cross" in settings:
            labs = protocol.canonical_order(labels or TRACK_LABELS)
            if set(labs) - set(TRACK_LABELS):
                raise EmoBoxError(f"labels {list(labs)}: EmoBox's cross-corpus track has the classes "
                                  f"{', '.join(TRACK_LABELS)}")
            for a in names:
                src = _corpus_rows(self.meta, a)
                src = src[np.isin(self.emotion[src], labs)]
                if a in TRACK_FILES:  # its own test list stays out of training
                    src = np.setdiff1d(src, self.track(a))
                fit, val, disjoint = None, None, True
                for b in names:
                    if a == b:
                        continue
                    test = self.track(b)
                    test = test[np.isin(self.emotion[test], labs)]
                    if fit is None:
                        f, v, disjoint = protocol.validation_split(self.groups[src], self.emotion[src], val_frac,
                                                                   seed=seed)
                        fit, val = src[f], src[v]
                    cells.append(protocol.Cell("cross", a, b, -1, labs, fit, val, test, disjoint,
                                               excluded=int(np.isin(self.emotion[_corpus_rows(self.meta, b)],
                                                                    labs).sum() - len(test)),
                                               meta={"test": f"EmoBox track2 {TRACK_FILES[b]}"}, split="emobox"))
        return cells

    def _same(self, corpus: str, val_frac: float, seed: int) -> list:
        part = self.partition(corpus)
        labs = protocol.canonical_order(
            {part.labels[c] for c in part.labels} & set(self.emotion[_corpus_rows(self.meta, corpus)]))
        if len(labs) < 2:
            raise EmoBoxError(f"{corpus}: fewer than 2 of EmoBox's classes found on disk ({list(labs)})")
        in_c = _corpus_rows(self.meta, corpus)
        excluded = int(len(in_c) - np.isin(self.emotion[in_c], labs).sum())
        out = []
        for fold in part.folds:
            def rows(role):
                r = self.rows(corpus, fold.files[role])
                return r[np.isin(self.emotion[r], labs)]
            train, test = rows("train"), rows("test")
            if "valid" in fold.files:
                fit, val = np.setdiff1d(train, rows("valid")), rows("valid")
                disjoint = not set(self.meta["speaker"].to_numpy()[fit]) & set(self.meta["speaker"].to_numpy()[val])
                how = "EmoBox's validation file"
            else:
                f, v, disjoint = protocol.validation_split(self.groups[train], self.emotion[train], val_frac,
                                                           seed=seed + fold.number)
                fit, val = train[f], train[v]
                how = "speaker-disjoint split of EmoBox's training fold"
            if not len(fit) or not len(test):
                raise EmoBoxError(f"{corpus} fold {fold.number}: no {'training' if not len(fit) else 'test'} "
                                  f"utterance of EmoBox's lists found on disk ({fold.files['train'].parent})")
            out.append(protocol.Cell("same", corpus, corpus, fold.number, labs, fit, val, test, disjoint,
                                     excluded=excluded, split="emobox",
                                     meta={"emobox_fold": fold.number, "validation": how,
                                           "files": {r: p.name for r, p in fold.files.items()}}))
        return out

    # ------------------------------------------------------------------------- reporting

    def report(self) -> dict:
        """manifest.json's `emobox` entry: provenance, counts and disagreements per corpus."""
        return {**provenance(self.data, self.used), "mismatch": self.mismatch,
                "corpora": {c: {**self.counts.get(c, {}), **p.summary()} for c, p in self.problems.items()}}

    def check(self, log) -> None:
        """Log every corpus' disagreements; with mismatch "error", stop when there are any."""
        worst = None
        for c, p in self.problems.items():
            for kind, items in p.kinds.items():
                if items:
                    log(f"emobox {c}: {len(items)} {_WHAT[kind]}, e.g. {'; '.join(items[:EXAMPLES])}")
                    worst = worst or (c, kind, items)
        if worst and self.mismatch == "error":
            c, kind, items = worst
            total = sum(p.count() for p in self.problems.values())
            raise EmoBoxError(f"EmoBox's lists and the corpora on disk disagree ({total} problems, listed above and "
                              f"in manifest.json; first: {c}: {len(items)} {_WHAT[kind]}, e.g. {items[0]}); fix the "
                              "corpus folder, or set emobox_mismatch = \"warn\" (--emobox-mismatch warn) to "
                              "run on the utterances that match")
