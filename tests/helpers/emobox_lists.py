"""Check a loader against EmoBox's file list of its corpus (`data/<name>/<name>.jsonl` of an
EmoBox checkout: `wav` = `downloads/<name>/<path in the release>`, `emo` = the corpus' code,
`label_map.json` = code -> EmoBox class name).

EmoBox ships no licence, so nothing of it is copied here: a test reads the checkout named by
JAXSER_EMOBOX, or `emobox/` next to the repository, and skips when neither exists. From a
sample of the listed paths it builds a tiny tree of short WAVs in the release's own layout,
loads it with `jaxser.corpora.load` and compares files and labels; the whole list is checked
by name through each loader's `records`.
"""
from __future__ import annotations

import json
import os
import random
import unicodedata
from collections import defaultdict
from pathlib import Path

import pytest

from tests.helpers.corpus_release_trees import tone

REPO = Path(__file__).resolve().parents[2]


def emobox_root() -> Path | None:
    env = os.environ.get("JAXSER_EMOBOX")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "emobox"]:
        if (cand / "data").is_dir():
            return cand
    return None


def emobox_list(name: str) -> tuple[list[dict], dict[str, str]]:
    """EmoBox's rows and label map of corpus `name`; skips the test without a checkout."""
    root = emobox_root()
    if root is None or not (root / "data" / name / f"{name}.jsonl").is_file():
        pytest.skip(f"no EmoBox checkout with data/{name} (set JAXSER_EMOBOX)")
    d = root / "data" / name
    rows = [json.loads(line) for line in (d / f"{name}.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows, json.loads((d / "label_map.json").read_text(encoding="utf-8"))


def release_path(name: str, row: dict) -> str:
    prefix = f"downloads/{name}/"
    assert row["wav"].startswith(prefix), row["wav"]
    return row["wav"][len(prefix):]


def sample(rows: list[dict], per_code: int, must: tuple[str, ...] = (), seed: int = 0) -> list[dict]:
    """Up to `per_code` rows of every emotion code (seeded), plus every row whose release
    path ends with one of `must` (the quirks a test wants in the tree)."""
    by_code = defaultdict(list)
    for r in rows:
        by_code[r["emo"]].append(r)
    rng = random.Random(seed)
    picked = {id(r): r for code in sorted(by_code)
              for r in rng.sample(by_code[code], min(per_code, len(by_code[code])))}
    for m in must:
        hits = [r for r in rows if r["wav"].endswith(m)]
        assert hits, f"{m} is not in EmoBox's list"
        picked.update((id(r), r) for r in hits)
    return list(picked.values())


def build_tree(root: Path, name: str, rows: list[dict], secs: float = 0.06) -> Path:
    """Short WAVs at each row's release path and sample rate (names kept byte for byte, so a
    decomposed accent stays decomposed)."""
    for r in rows:
        tone(root / release_path(name, r), int(r.get("sample_rate") or 16_000), secs=secs)
    return root


def compare(name: str, ds, root: Path, rows: list[dict], label_map: dict[str, str]) -> None:
    """The loaded dataset holds exactly the sampled files, each with EmoBox's label (its class
    name lower-cased is jaxser's label)."""
    def key(p: str) -> str:
        return unicodedata.normalize("NFC", p)

    want = {key(release_path(name, r)): label_map[r["emo"]].lower() for r in rows}
    got = {key(p): e for p, e in zip(ds["path"], ds["emotion"])}
    assert set(got) == set(want), (sorted(set(want) - set(got))[:5], sorted(set(got) - set(want))[:5])
    wrong = {p: (got[p], want[p]) for p in want if got[p] != want[p]}
    assert not wrong, wrong


def compare_records(name: str, records: list[dict], root: Path, rows: list[dict], label_map: dict[str, str]) -> None:
    """`compare` for a loader's raw records (absolute paths) instead of a dataset."""
    ds = {"path": [Path(r["path"]).relative_to(root).as_posix() for r in records],
          "emotion": [r["emotion"] for r in records]}
    compare(name, ds, root, rows, label_map)
