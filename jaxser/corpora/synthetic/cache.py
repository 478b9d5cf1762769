"""The generation folder of a synthetic corpus: where it lives, the marker that says it is
complete, and building it atomically (a temporary sibling named after this process, published
with `jaxser.io.publish_dir`; a dead process's leftovers are removed by the next generation)."""
from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np

from jaxser.corpora.schema import CorpusError
from jaxser.corpora.synthetic.channel import apply_channel, room_impulse_response
from jaxser.corpora.synthetic.specs import VERSION, CorpusSpec
from jaxser.corpora.synthetic.voice import corpus_cues, sentences, speakers, synthesize, take_cues
from jaxser.io import atomic_write_text, cache_root, pid_alive, publish_dir, temp_sibling, temp_sibling_owner

METADATA = "metadata.csv"
MARKER = ".jaxser-synthetic.json"
METADATA_FIELDS = ("path", "speaker", "gender", "label", "sentence", "duration", "f0_hz")


def default_root() -> Path:
    """$JAXSER_CACHE/synthetic/v<VERSION>, else ~/.cache/jaxser/synthetic/v<VERSION>."""
    return cache_root() / "synthetic" / f"v{VERSION}"


def _read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None


def is_complete(folder: str | os.PathLike, s: CorpusSpec) -> bool:
    """True when `folder` holds a finished generation of exactly this configuration: the marker
    (written last) matches, and every file it lists exists with the recorded size."""
    folder = Path(folder)
    m = _read_marker(folder)
    if not m or m.get("config") != s.config_hash() or m.get("version") != VERSION:
        return False
    sizes = m.get("sizes", {})
    if len(sizes) != m.get("n_files"):
        return False
    for rel, size in sizes.items():
        try:
            if (folder / rel).stat().st_size != size:
                return False
        except OSError:
            return False
    return True


def clean_stale_temps(target: Path) -> None:
    """Remove build (and swapped-out) folders left by generations whose process has died."""
    if not target.parent.is_dir():
        return
    for p in target.parent.iterdir():
        pid = temp_sibling_owner(p, target)
        if pid is not None and not pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)


def _write_wav(path: Path, wave: np.ndarray, sr: int) -> None:
    """16-bit PCM WAV, encoded in memory and written in one call (libsndfile's many small
    seeks and writes to a file cost ~5x more wall time per file)."""
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, wave, sr, subtype="PCM_16", format="WAV")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def write_corpus(s: CorpusSpec, folder: Path) -> None:
    """Synthesise every utterance into `folder`, then metadata.csv, then the marker (last).

    Utterances are independent (each has its own seeded generator), so they run on a few
    threads (numpy/scipy release the GIL in their kernels); the output does not depend on
    the number of threads or on scheduling."""
    from concurrent.futures import ThreadPoolExecutor

    from jaxser.threads import cpu_threads

    voices = speakers(s)
    texts = sentences(s)
    cues = corpus_cues(s)
    codes = s.codes
    rirs = {spk.code: room_impulse_response(s, spk.code) for spk in voices}

    def one(item):
        spk, emo, si = item
        sid = f"s{si + 1:02d}"
        uc, rng = take_cues(s, spk, cues, emo, sid)
        y, f0 = synthesize(s, spk, texts[si], uc, rng)
        wav = apply_channel(s, y, rirs[spk.code], rng)
        rel = s.layout.format(speaker=spk.code, sentence=sid, code=codes[emo])
        _write_wav(folder / rel, wav, s.sample_rate)
        return {"path": rel, "speaker": spk.code, "gender": spk.gender, "label": codes[emo], "sentence": sid,
                "duration": f"{wav.size / s.sample_rate:.6f}", "f0_hz": f"{f0:.2f}"}

    items = [(spk, emo, si) for spk in voices for emo in s.emotions for si in range(len(texts))]
    with ThreadPoolExecutor(max_workers=cpu_threads()) as pool:
        rows = list(pool.map(one, items))
    if len({r["path"] for r in rows}) != len(rows):
        raise CorpusError(f"{s.name}: layout {s.layout!r} maps two utterances to one file")
    sizes = {r["path"]: (folder / r["path"]).stat().st_size for r in rows}
    with open(folder / METADATA, "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=METADATA_FIELDS, lineterminator="\n")
        wr.writeheader()
        wr.writerows(rows)
    sizes[METADATA] = (folder / METADATA).stat().st_size
    marker = {"version": VERSION, "config": s.config_hash(), "corpus": s.name, "n_files": len(sizes),
              "sizes": sizes}
    atomic_write_text(folder / MARKER, json.dumps(marker, indent=1, sort_keys=True))  # last: the folder is complete


def ensure_generated(s: CorpusSpec, target: Path) -> Path:
    """Generate corpus `s` into folder `target` unless a complete, matching generation is there.

    Atomic: everything is written into a temporary sibling folder, the marker last, and the
    folder is renamed into place, so an interrupted run never leaves a folder that looks
    complete. A folder without our marker is never overwritten (it may be the user's data).
    """
    if is_complete(target, s):
        return target
    if target.exists() and (target.is_file() or (any(target.iterdir()) and _read_marker(target) is None)):
        raise CorpusError(f"{s.name}: {target} exists and is not a synthetic corpus folder (no {MARKER}); "
                          "refusing to overwrite it: remove it or pass another root")
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(target)
    tmp = temp_sibling(target, "tmp")
    tmp.mkdir()
    try:
        write_corpus(s, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # a stale generation (other version/config, or damaged) is swapped out; a concurrent
    # process that finished first keeps its result
    publish_dir(tmp, target, lambda folder: is_complete(folder, s))
    return target
