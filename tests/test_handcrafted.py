"""Handcrafted baselines: eGeMAPS equals openSMILE called directly; MFCC statistics equal an
independent numpy reference (transformers' numpy audio_utils for the spectrogram and Slaney mel
filters, scipy's DCT, numpy deltas), and are batch- and padding-invariant."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import jaxser.encoders as encoders
from jaxser.encoders import handcrafted
from jaxser.encoders.base import EncoderError

SR = 16_000


def _voice(seconds: float, f0: float, seed: int) -> np.ndarray:
    """A vowel-like signal: harmonics of a gliding f0 plus a little noise, so openSMILE finds pitch."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 8)) * np.hanning(t.size) ** 0.3
    return (0.3 * x / np.abs(x).max() + 0.01 * rng.normal(size=t.size)).astype(np.float32)


# ----------------------------------------------------------------------------- eGeMAPS
def test_egemaps_equals_opensmile():
    if importlib.util.find_spec("opensmile") is None:
        pytest.skip("eGeMAPS needs the opensmile package")
    enc = encoders.load("egemaps")  # first: jaxser loads openSMILE safely even after TensorFlow
    import opensmile
    assert (enc.num_layers, enc.dim) == (1, 88) and len(enc.feature_names) == 88
    waves = [_voice(1.5, 140.0, 0), _voice(0.8, 220.0, 1)]
    out = enc.embed(waves)
    assert out.shape == (2, 1, 88) and np.all(np.isfinite(out))
    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                            feature_level=opensmile.FeatureLevel.Functionals)
    direct = np.concatenate([smile.process_signal(w, SR).to_numpy(np.float32) for w in waves])
    np.testing.assert_array_equal(out[:, 0], direct)
    np.testing.assert_array_equal(enc.embed(waves[1:])[0], out[1])  # batch-invariant
    f0_mean = enc.feature_names.index("F0semitoneFrom27.5Hz_sma3nz_amean")
    assert out[1, 0, f0_mean] > out[0, 0, f0_mean] + 5  # 220 Hz is ~7.6 semitones above 140 Hz
    assert enc.fingerprint == encoders.load("egemaps").fingerprint


def test_egemaps_threads_change_nothing():
    """A batch's utterances go to several threads, each with its own Smile: the features are
    those of one thread, bit for bit, in the batch's order."""
    if importlib.util.find_spec("opensmile") is None:
        pytest.skip("eGeMAPS needs the opensmile package")
    waves = [_voice(0.5 + 0.1 * i, 120.0 + 15 * i, i) for i in range(9)]
    one = handcrafted.EGeMAPSEncoder(threads=1).embed(waves)
    many = handcrafted.EGeMAPSEncoder(threads=3)
    np.testing.assert_array_equal(many.embed(waves), one)
    np.testing.assert_array_equal(many.embed(waves[::-1]), one[::-1])   # the pool is reused


# ----------------------------------------------------------------------------- MFCC reference
def _reference(wave: np.ndarray, cfg: handcrafted.MFCCConfig) -> np.ndarray:
    """Written from the standard definitions, in float64, independent of the JAX code."""
    au = pytest.importorskip("transformers.audio_utils", reason="the MFCC reference uses transformers' numpy "
                                                              "spectrogram and mel filters")
    import scipy.fft

    x = wave.astype(np.float64)
    if x.size < cfg.win_length:  # shorter than one frame: one zero-extended frame
        x = np.pad(x, (0, cfg.win_length - x.size))
    fb = au.mel_filter_bank(num_frequency_bins=cfg.n_fft // 2 + 1, num_mel_filters=cfg.n_mels,
                            min_frequency=cfg.fmin, max_frequency=cfg.fmax, sampling_rate=SR,
                            norm="slaney", mel_scale="slaney")
    mel = au.spectrogram(x, au.window_function(cfg.win_length, "hann", periodic=True),
                         frame_length=cfg.win_length, hop_length=cfg.hop_length, fft_length=cfg.n_fft,
                         power=2.0, center=False, mel_filters=fb, mel_floor=cfg.amin, dtype=np.float64)
    logmel = 10 * np.log10(mel.T)                                          # [T, n_mels]
    mfcc = scipy.fft.dct(logmel, type=2, norm="ortho", axis=1)[:, :cfg.n_mfcc]
    feats = [mfcc]
    n = cfg.delta_width
    for _ in range(cfg.deltas):
        c = np.pad(feats[-1], ((n, n), (0, 0)), mode="edge")
        t = feats[-1].shape[0]
        feats.append(sum(k * (c[n + k:n + k + t] - c[n - k:n - k + t]) for k in range(1, n + 1))
                     / (2 * sum(k * k for k in range(1, n + 1))))
    if cfg.logmel:
        feats.append(logmel)
    f = np.concatenate(feats, axis=1)
    return np.concatenate([f.mean(0), f.std(0)])


@pytest.mark.parametrize("options", [{}, {"deltas": 2, "logmel": False, "n_mfcc": 13, "n_mels": 26}])
def test_mfcc_equals_reference(options):
    enc = encoders.load("mfcc", **options)
    cfg = enc.config
    lengths = [350, 1000, 16000, 20000, 7777]  # under one frame, under / at / over a bucket edge
    rng = np.random.default_rng(0)
    waves = [(0.2 * rng.normal(size=n) + 0.3 * np.sin(np.arange(n) * 0.05 * (i + 1))).astype(np.float32)
             for i, n in enumerate(lengths)]
    out = enc.embed(waves)
    assert out.shape == (len(waves), 1, cfg.frame_dim * 2) == (len(waves), 1, enc.dim)
    assert len(enc.feature_names) == enc.dim and np.all(np.isfinite(out))
    ref = np.stack([_reference(w, cfg) for w in waves])
    # dB-scale values of order 10..100 computed in float32 (measured error ~5e-6 dB)
    np.testing.assert_allclose(out[:, 0], ref, rtol=1e-5, atol=1e-4)


def test_mfcc_batch_and_padding_invariant():
    rng = np.random.default_rng(1)
    waves = [(0.1 * rng.normal(size=n)).astype(np.float32) for n in (3000, 12345, 16000, 3000)]
    enc = handcrafted.load("mfcc", batch_seconds=2.0)  # small batches: several calls per bucket
    together = enc.embed(waves)
    alone = np.concatenate([enc.embed([w]) for w in waves])
    np.testing.assert_array_equal(together, alone)
    wide = handcrafted.load("mfcc", buckets=(48_000,))  # a lot more zero padding
    np.testing.assert_allclose(wide.embed(waves), together, rtol=1e-5, atol=1e-4)
    assert np.abs(together[0] - together[3]).max() > 0.1  # different inputs differ
    assert enc.fingerprint == wide.fingerprint != handcrafted.load("mfcc", deltas=2).fingerprint


def test_errors():
    with pytest.raises(EncoderError, match="unknown handcrafted encoder 'lpc'"):
        handcrafted.load("lpc")
    with pytest.raises(ValueError, match="deltas"):
        handcrafted.load("mfcc", deltas=3)
    with pytest.raises(TypeError, match="egemaps takes no options"):
        handcrafted.load("egemaps", n_mfcc=3)
