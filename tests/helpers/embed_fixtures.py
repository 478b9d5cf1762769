"""A tiny real encoder and a tiny corpus of real WAV files for the embedding-cache tests
(also run inside the multi-process tests, so they live outside the test modules)."""
from __future__ import annotations

import numpy as np

from jaxser import audio
from jaxser.corpora.schema import build_dataset
from jaxser.encoders.base import Encoder, digest


class FrameStats(Encoder):
    """A real (if simple) encoder: per-layer statistics of 20 ms frames. Counts its calls."""

    def __init__(self):
        self.name, self.dim, self.num_layers = "framestats", 4, 2
        self.fingerprint = digest({"enc": "framestats"})
        self.calls = 0
        self.utts = 0  # utterances embedded (what a resumed run recomputed)

    def _embed(self, waves):
        self.calls += 1
        self.utts += len(waves)
        out = []
        for w in waves:
            f = w[: len(w) // 320 * 320].reshape(-1, 320)
            e = np.log(np.mean(f ** 2, axis=1) + 1e-8)
            z = np.abs(np.diff(np.sign(f), axis=1)).mean(axis=1)
            out.append([[e.mean(), e.std(), z.mean(), len(w) / 16000], [e.max(), e.min(), z.max(), z.min()]])
        return np.asarray(out, np.float32)


def toy_corpus(tmp_path, n=23, bad=None):
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
