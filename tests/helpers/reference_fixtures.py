"""Stored reference outputs for the encoder parity tests, readable without torch or transformers.

Each case under tests/data/reference/<case>/ holds a tiny random checkpoint (the files a user would
load), and `reference.npz`: the input waves and what the reference implementation (transformers'
PyTorch models, or the PyTorch re-typings in tests/) computed from them. The parity tests compare
jaxser's ports against these, so the lean install (no torch) still checks every port numerically.
Where torch and transformers are installed the same case is also generated live (`source="live"`)
and compared against what is stored, so the fixtures cannot go stale.

Regenerate after a deliberate change with `python -m tests.helpers.make_reference_fixtures`.
"""
from __future__ import annotations

import atexit
import importlib.util
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from jaxser.io import sha256_file

STORED = Path(__file__).resolve().parents[1] / "data" / "reference"
MANIFEST = "MANIFEST.json"
REGENERATE = "python -m tests.helpers.make_reference_fixtures"
#: regenerated reference outputs may differ from the stored ones by CPU-dependent rounding only
REGENERATED_ATOL = 1e-5
#: config keys that name the writing library's version, not the model
VERSION_KEYS = ("transformers_version",)
#: what generating each case needs ("transformers" cases run transformers' PyTorch models)
NEEDS_TRANSFORMERS = ("wav2vec2", "hubert", "wavlm", "unispeech-sat", "data2vec-audio", "whisper", "w2v-bert")
SOURCES = ("stored", "live")


class StaleFixture(AssertionError):
    """A stored reference file does not match its manifest or what the generator writes now."""


@dataclass
class Case:
    """One reference case: `path` is the checkpoint folder (load it as a user would), `ref` the arrays."""

    name: str
    path: Path
    ref: dict[str, np.ndarray] = field(repr=False)
    source: str

    def waves(self, prefix: str = "wave_") -> list[np.ndarray]:
        """The input waves stored under `prefix` (16-bit PCM, float32 in [-1, 1)): in full
        (`{prefix}{i}`), or as one period tiled to a length (`{prefix}{i}_period` + `{prefix}{i}_n`)
        where a full wave would be megabytes."""
        out, i = [], 0
        while True:
            key = f"{prefix}{i}"
            if key in self.ref:
                out.append(from_pcm16(self.ref[key]))
            elif key + "_period" in self.ref:
                n = int(self.ref[key + "_n"])
                p = from_pcm16(self.ref[key + "_period"])
                out.append(np.tile(p, -(-n // p.size))[:n].copy())
            else:
                return out
            i += 1

    def json(self, name: str) -> dict:
        return json.loads((self.path / name).read_text())


def to_pcm16(w) -> np.ndarray:
    """int16 samples of a wave already at 16-bit PCM levels (refused otherwise: storage is exact)."""
    q = np.asarray(w, np.float64) * 32768.0
    assert np.array_equal(q, np.round(q)) and q.min(initial=0) >= -32768 and q.max(initial=0) < 32768, "not 16-bit PCM"
    return q.astype(np.int16)


def from_pcm16(q) -> np.ndarray:
    return (np.asarray(q, np.int16).astype(np.float32) / np.float32(32768.0)).astype(np.float32)


def pack_waves(prefix: str, waves, periods=None) -> dict[str, np.ndarray]:
    """The npz entries `Case.waves(prefix)` reads back; `periods[i]` stores wave i as its period."""
    periods = periods or {}
    out = {}
    for i, w in enumerate(waves):
        if i in periods:
            p = np.asarray(periods[i], np.float32)
            assert np.array_equal(np.tile(p, -(-w.size // p.size))[:w.size], w), f"wave {i} is not its period tiled"
            out[f"{prefix}{i}_period"], out[f"{prefix}{i}_n"] = to_pcm16(p), np.int64(w.size)
        else:
            out[f"{prefix}{i}"] = to_pcm16(w)
    return out


def _read_case(root: Path, name: str, source: str, manifest: dict | None) -> Case:
    path = root / name
    if not path.is_dir():
        raise StaleFixture(f"{path}: no such reference case; run {REGENERATE}")
    if manifest is not None:
        want = {k.split("/", 1)[1]: v for k, v in manifest.items() if k.split("/", 1)[0] == name}
        have = {p.name for p in path.iterdir() if p.is_file()}
        if not want or set(want) != have:
            raise StaleFixture(f"{path}: files {sorted(have)} differ from {MANIFEST}'s {sorted(want)}; "
                               f"run {REGENERATE}")
        for fname, digest in want.items():
            if sha256_file(path / fname) != digest:
                raise StaleFixture(f"{path / fname}: sha256 differs from {MANIFEST}; run {REGENERATE}")
    with np.load(path / "reference.npz", allow_pickle=False) as z:
        ref = {k: z[k] for k in z.files}
    return Case(name, path, ref, source)


_STORED: dict[str, Case] = {}
_LIVE: dict[str, Case] = {}
_LIVE_ROOT: list[Path] = []


def stored(name: str) -> Case:
    """The committed case, verified against the manifest's sha256 of every file."""
    if name not in _STORED:
        manifest = json.loads((STORED / MANIFEST).read_text())["files"]
        _STORED[name] = _read_case(STORED, name, "stored", manifest)
    return _STORED[name]


def needs(name: str) -> tuple[str, ...]:
    """The packages generating `name` imports."""
    return ("torch", "transformers") if name.startswith(NEEDS_TRANSFORMERS) else ("torch",)


def live(name: str) -> Case:
    """The case generated now by the reference implementation (skips the test without it); once per session."""
    for pkg in needs(name):
        if importlib.util.find_spec(pkg) is None:
            pytest.skip(f"the live reference needs {pkg} (pip install -e '.[reference]', see docs/encoders.md)")
    if name not in _LIVE:
        from tests.helpers import make_reference_fixtures as make

        if not _LIVE_ROOT:
            _LIVE_ROOT.append(Path(tempfile.mkdtemp(prefix="jaxser-reference-")))
            atexit.register(shutil.rmtree, _LIVE_ROOT[0], True)
        make.build_case(name, _LIVE_ROOT[0])
        _LIVE[name] = _read_case(_LIVE_ROOT[0], name, "live", None)
    return _LIVE[name]


def load(name: str, source: str) -> Case:
    return stored(name) if source == "stored" else live(name)


def assert_same_case(stored_case: Case, live_case: Case) -> None:
    """The stored case is what the generator writes now: same files, identical weights and configs,
    reference outputs equal up to CPU-dependent rounding."""
    from safetensors.numpy import load_file

    a, b = stored_case.path, live_case.path
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir()), f"{a}: files differ from a fresh generation; run {REGENERATE}"
    for fname in names:
        fa, fb = a / fname, b / fname
        if fname.endswith(".safetensors"):
            ta, tb = load_file(str(fa)), load_file(str(fb))
            assert ta.keys() == tb.keys(), f"{fa}: tensor names differ; run {REGENERATE}"
            for k in ta:
                assert np.array_equal(ta[k], tb[k]), f"{fa}: {k} differs; run {REGENERATE}"
        elif fname.endswith(".npz"):
            ra, rb = stored_case.ref, live_case.ref
            assert ra.keys() == rb.keys(), f"{fa}: arrays differ; run {REGENERATE}"
            for k in ra:
                assert ra[k].shape == rb[k].shape and ra[k].dtype == rb[k].dtype, f"{fa}: {k}; run {REGENERATE}"
                if np.issubdtype(ra[k].dtype, np.floating):
                    err = float(np.abs(ra[k] - rb[k]).max(initial=0.0))
                    assert err <= REGENERATED_ATOL, f"{fa}: {k} differs by {err}; run {REGENERATE}"
                else:
                    assert np.array_equal(ra[k], rb[k]), f"{fa}: {k} differs; run {REGENERATE}"
        elif fname.endswith(".json"):
            ja, jb = (json.loads(f.read_text()) for f in (fa, fb))
            for j in (ja, jb):
                for k in VERSION_KEYS:
                    j.pop(k, None)
            assert ja == jb, f"{fa}: differs from a fresh generation; run {REGENERATE}"
        else:
            assert fa.read_bytes() == fb.read_bytes(), f"{fa}: differs from a fresh generation; run {REGENERATE}"
