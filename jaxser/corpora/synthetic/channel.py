"""The recording chain of a synthetic corpus: room, noise floor, hum, band limits or a telephone
path, file level normalisation -- what makes the same voice sound like another corpus."""
from __future__ import annotations

import functools

import numpy as np

from jaxser.corpora.synthetic.specs import CorpusSpec, stable_seed


def colored_noise(n: int, exponent: float, rng) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/f^exponent, unit RMS."""
    if exponent == 0:
        return rng.standard_normal(n)
    from scipy import fft as sfft

    n_fast = sfft.next_fast_len(n, real=True)  # odd lengths with large prime factors are slow
    spec_ = sfft.rfft(rng.standard_normal(n_fast))
    f = np.arange(spec_.size, dtype=np.float64)
    f[0] = 1.0
    spec_ /= f ** (exponent / 2)
    spec_[0] = 0.0
    x = sfft.irfft(spec_, n_fast)[:n]
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


def room_impulse_response(s: CorpusSpec, spk_code: str) -> np.ndarray:
    """Synthetic room impulse response: direct path, early reflections and an exponentially
    decaying, slightly low-passed noise tail (Polack's model); one per speaker session."""
    ch = s.channel
    sr = s.sample_rate
    rng = np.random.default_rng(stable_seed(s.name, "rir", spk_code))
    rt60 = ch.rt60 * float(np.exp(rng.normal(0, 0.1)))
    n = int(1.2 * rt60 * sr) + 1
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * 10 ** (-3 * t / rt60)
    tail[: int(0.003 * sr)] = 0.0
    from scipy.signal import lfilter

    tail = lfilter([0.6], [1, -0.4], tail)
    for _ in range(6):  # early reflections
        k = int(rng.uniform(0.003, 0.025) * sr)
        tail[k] += rng.choice([-1, 1]) * rng.uniform(0.2, 0.5) * 10 ** (-3 * k / sr / rt60) * 4
    drr = ch.drr_db + rng.normal(0, 1.0)
    tail *= 10 ** (-drr / 20) / (np.sqrt(np.sum(tail ** 2)) + 1e-12)
    h = tail
    h[0] += 1.0
    return h


@functools.lru_cache(maxsize=None)
def bandpass_sos(order: int, lo: float, hi: float, sr: int) -> np.ndarray:
    from scipy.signal import butter

    return butter(order, [lo, hi], btype="bandpass", fs=sr, output="sos")


def apply_channel(s: CorpusSpec, y: np.ndarray, rir: np.ndarray, rng) -> np.ndarray:
    """The recording chain of corpus `s` applied to one utterance."""
    from scipy.signal import fftconvolve, resample_poly, sosfilt

    ch = s.channel
    sr = s.sample_rate
    n = y.size
    y = fftconvolve(y, rir)[:n]
    noise_rms = 10 ** ((ch.level_db - ch.snr_db) / 20)
    y = y + noise_rms * colored_noise(n, ch.noise_color, rng)
    if ch.hum_hz:
        t = np.arange(n) / sr
        hum = np.sin(2 * np.pi * ch.hum_hz * t) + 0.3 * np.sin(2 * np.pi * 3 * ch.hum_hz * t + 0.7)
        y = y + 0.7 * noise_rms * hum
    lo, hi = ch.band
    if ch.telephone:
        sos = bandpass_sos(6, lo, hi, sr)
        y = resample_poly(sosfilt(sos, y), 8000, sr)
        mu = 255.0
        peak = 10 ** ((ch.level_db + 16) / 20)  # the codec's clipping point
        x = np.clip(y / peak, -1, 1)
        q = np.round((np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)) * 127) / 127  # 8-bit mu-law
        y = np.sign(q) * np.expm1(np.abs(q) * np.log1p(mu)) / mu * peak
        y = sosfilt(sos, resample_poly(y, sr, 8000)[:n])  # the line/handset band limits again
    else:
        sos = bandpass_sos(4, lo, min(hi, 0.45 * sr), sr)
        y = sosfilt(sos, y)
    if ch.normalise == "peak":
        y = y * (10 ** (-1 / 20) / (np.max(np.abs(y)) + 1e-12))
    elif ch.normalise == "rms":
        y = y * (10 ** (ch.level_db / 20) / (np.sqrt(np.mean(y ** 2)) + 1e-12))
    elif ch.normalise == "agc":
        rms = np.sqrt(np.mean(y ** 2)) + 1e-12
        y = y * (10 ** (ch.level_db / 20) / rms) ** 0.5
    peak = np.max(np.abs(y))
    if peak > 0.99:  # the "recordist" lowers the gain instead of clipping
        y = y * (0.99 / peak)
    return y.astype(np.float32)
