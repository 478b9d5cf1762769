"""The embedding cache: correct assembly, atomic chunks, resume after a crash, bad audio."""
from __future__ import annotations

import numpy as np
import pytest

from jaxser import audio, embed as embed_mod
from jaxser.corpora.schema import build_dataset
from jaxser.encoders.base import Encoder, digest


class FrameStats(Encoder):
    """A real (if simple) encoder: per-layer statistics of 20 ms frames. Counts its calls."""

    def __init__(self):
        self.name, self.dim, self.num_layers = "framestats", 4, 2
        self.fingerprint = digest({"enc": "framestats"})
        self.calls = 0

    def _embed(self, waves):
        self.calls += 1
        out = []
        for w in waves:
            f = w[: len(w) // 320 * 320].reshape(-1, 320)
            e = np.log(np.mean(f ** 2, axis=1) + 1e-8)
            z = np.abs(np.diff(np.sign(f), axis=1)).mean(axis=1)
            out.append([[e.mean(), e.std(), z.mean(), len(w) / 16000], [e.max(), e.min(), z.max(), z.min()]])
        return np.asarray(out, np.float32)


def _corpus(tmp_path, n=23, bad=None):
    rng = np.random.default_rng(0)
    recs = []
    for i in range(n):
        sr = (16000, 22050, 44100)[i % 3]
        secs = 0.3 + 0.05 * (i % 7)
        t = np.arange(int(secs * sr)) / sr
        w = 0.3 * np.sin(2 * np.pi * (120 + 10 * i) * t) * (1 + 0.1 * rng.standard_normal(t.size))
        if bad is not None and i == bad:
            w = np.zeros_like(w)
        p = audio.write(tmp_path / "c" / f"u{i:03d}.wav", w, sr)
        recs.append(dict(utt=f"u{i:03d}", path=str(p), speaker=f"s{i % 4}", gender="female", language="en",
                         emotion=("angry", "sad")[i % 2], raw_label="x", text=""))
    return build_dataset("toy", tmp_path / "c", recs)


def test_embeddings_match_direct_calls_and_are_cached(tmp_path):
    ds = _corpus(tmp_path)
    enc = FrameStats()
    e = embed_mod.embed(enc, ds, cache=tmp_path / "cache", chunk_size=5, progress=False)
    assert e.ids == list(ds["id"]) and e.x.shape == (len(ds), 2, 4)
    direct = enc.embed([audio.load(p) for p in ds["audio"]])
    np.testing.assert_allclose(e.x, direct, rtol=1e-6, atol=1e-6)
    calls = enc.calls
    again = embed_mod.embed(enc, ds, cache=tmp_path / "cache", chunk_size=5, progress=False)
    assert enc.calls == calls  # served from the cache
    np.testing.assert_array_equal(again.x, e.x)
    assert not list(e.path.parent.glob("chunk-*"))  # chunks folded into the final file


def test_interrupted_extraction_resumes_to_the_same_result(tmp_path):
    ds = _corpus(tmp_path)
    clean = embed_mod.embed(FrameStats(), ds, cache=tmp_path / "clean", chunk_size=4, progress=False)
    enc = FrameStats()
    with pytest.raises(KeyboardInterrupt):
        embed_mod.embed(enc, ds, cache=tmp_path / "crash", chunk_size=4, progress=False, stop_after_chunks=3)
    out_dir = embed_mod.cache_dir_for(enc, ds, tmp_path / "crash")
    assert len(list(out_dir.glob("chunk-*.npz"))) == 3 and not (out_dir / "embeddings.npz").exists()
    # a half-written temp file left by a kill must not be mistaken for a chunk
    (out_dir / ".chunk-00003.npz.abc.tmp").write_bytes(b"garbage")
    enc2 = FrameStats()
    resumed = embed_mod.embed(enc2, ds, cache=tmp_path / "crash", chunk_size=4, progress=False)
    assert enc2.calls > 0
    assert resumed.ids == clean.ids
    np.testing.assert_array_equal(resumed.x, clean.x)


def test_bad_audio_fails_loudly_or_is_listed(tmp_path):
    ds = _corpus(tmp_path, n=8, bad=5)
    with pytest.raises(audio.AudioError, match="u005.wav: all samples are zero"):
        embed_mod.embed(FrameStats(), ds, cache=tmp_path / "a", progress=False)
    e = embed_mod.embed(FrameStats(), ds, cache=tmp_path / "b", progress=False, skip_errors=True)
    assert "toy/u005" in e.skipped and "toy/u005" not in e.ids and len(e.ids) == 7
    with pytest.raises(KeyError, match="no embedding"):
        e.take(["toy/u005"])


def test_changed_corpus_file_invalidates_cache(tmp_path):
    ds = _corpus(tmp_path, n=6)
    enc = FrameStats()
    d1 = embed_mod.cache_dir_for(enc, ds, tmp_path / "c1")
    p = ds[0]["audio"]
    audio.write(p, 0.2 * np.ones(8000) * np.sin(np.arange(8000)), 16000)
    assert embed_mod.cache_dir_for(enc, ds, tmp_path / "c1") != d1


def test_audio_validation_errors(tmp_path):
    (tmp_path / "junk.wav").write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(audio.AudioError, match="junk.wav: unreadable"):
        audio.load(tmp_path / "junk.wav")
    with pytest.raises(audio.AudioError, match="NaN"):
        audio.validate(np.array([0.1, np.nan] * 1000), "x.wav")
    with pytest.raises(audio.AudioError, match="empty"):
        audio.validate(np.zeros(0), "x.wav")
    with pytest.raises(audio.AudioError, match="absurdly long"):
        audio.load(audio.write(tmp_path / "long.wav", 0.1 * np.ones(16000 * 3), 16000), max_seconds=2)
    stereo = np.stack([np.sin(np.arange(8000) / 5), np.cos(np.arange(8000) / 5)], 1) * 0.3
    import soundfile as sf
    sf.write(tmp_path / "st.wav", stereo, 8000)
    w = audio.load(tmp_path / "st.wav")
    assert w.ndim == 1 and w.dtype == np.float32 and abs(len(w) - 16000) <= 1
    waves, errs = audio.load_many([tmp_path / "junk.wav", tmp_path / "st.wav"], skip_errors=True)
    assert waves[0] is None and len(errs) == 1
