"""Audio decoding and validation: soundfile + soxr to 16 kHz mono float32.

Why not `datasets.Audio`: datasets 4+ decodes through torchcodec (torch + ffmpeg), which
jaxser must not require. Datasets keep the path; waveforms are decoded here, lazily.
Every failure names the file, so a bad corpus never turns into silent garbage.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from jaxser.errors import UserError

SAMPLE_RATE = 16_000
#: Files longer than this are refused by default (an SER utterance is seconds long; an
#: hour-long file is almost always a wrong path or an unsegmented recording).
MAX_SECONDS = 600.0
#: Shorter than this (after resampling) cannot yield a single frame from any encoder.
MIN_SECONDS = 0.05
#: Decoded samples are full scale at 1.0. A float WAV may legitimately overshoot a little
#: (unclipped mixing or gain: a few times full scale, +20 dB is already extreme), but no
#: recording chain gets near 1e3 (+60 dB over full scale). Beyond it the samples are not a
#: waveform: bytes reinterpreted as floats (peaks like 1e25) or integer PCM values stored
#: unscaled in a float file (peaks up to 32768). Either would reach the encoders as garbage.
MAX_PEAK = 1e3


class AudioError(UserError, ValueError):
    """A file that cannot be used as an utterance; the message names the file and why."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class AudioInfo:
    path: str
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def info(path: str | os.PathLike) -> AudioInfo:
    """Header-only metadata (no decoding); raises AudioError for unreadable files."""
    import soundfile as sf

    try:
        i = sf.info(str(path))
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError / OSError
        raise AudioError(path, f"unreadable audio ({type(e).__name__}: {e})") from None
    return AudioInfo(str(path), int(i.samplerate), int(i.channels), int(i.frames))


def resample(wave: np.ndarray, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """High-quality resampling (soxr 'HQ'); a no-op when the rates already match."""
    if orig_sr == target_sr:
        return np.asarray(wave, dtype=np.float32)
    import soxr

    return soxr.resample(np.asarray(wave, dtype=np.float32), orig_sr, target_sr, quality="HQ").astype(
        np.float32, copy=False
    )


def validate(wave: np.ndarray, path: str | os.PathLike = "<array>", *, sample_rate: int = SAMPLE_RATE,
             max_seconds: float = MAX_SECONDS, min_seconds: float = MIN_SECONDS) -> np.ndarray:
    """Refuse empty, too short, too long, non-finite and all-zero waveforms."""
    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise AudioError(path, f"expected a 1-D mono waveform, got shape {wave.shape}")
    if wave.size == 0:
        raise AudioError(path, "empty audio (0 samples)")
    seconds = wave.size / sample_rate
    if seconds < min_seconds:
        raise AudioError(path, f"too short: {seconds:.3f} s < {min_seconds} s")
    if seconds > max_seconds:
        raise AudioError(path, f"absurdly long: {seconds:.1f} s > {max_seconds} s "
                               "(raise max_seconds if this is intended)")
    if not np.all(np.isfinite(wave)):
        raise AudioError(path, "contains NaN or Inf samples")
    if not np.any(wave):
        raise AudioError(path, "all samples are zero (silent or corrupt file)")
    return wave


def load(path: str | os.PathLike, *, sample_rate: int = SAMPLE_RATE, max_seconds: float = MAX_SECONDS,
         min_seconds: float = MIN_SECONDS) -> np.ndarray:
    """Decode `path` to a validated mono float32 waveform in [-1, 1] at `sample_rate`.

    Multi-channel audio is averaged to mono. The duration limit is checked from the header
    first, so a huge file is refused before it is decoded. Samples that are not finite or
    whose peak exceeds MAX_PEAK are refused: they are not a waveform.
    """
    import soundfile as sf

    hdr = info(path)
    if hdr.frames == 0:
        raise AudioError(path, "empty audio (0 samples)")
    if hdr.duration > max_seconds:
        raise AudioError(path, f"absurdly long: {hdr.duration:.1f} s > {max_seconds} s "
                               "(raise max_seconds if this is intended)")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:
        raise AudioError(path, f"undecodable audio ({type(e).__name__}: {e})") from None
    wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(wave)):  # check before resampling spreads NaNs around
        raise AudioError(path, "contains NaN or Inf samples")
    peak = float(np.max(np.abs(wave))) if wave.size else 0.0
    if peak > MAX_PEAK:
        raise AudioError(path, f"not a waveform: peak sample {peak:.3g} is far outside [-1, 1] (limit {MAX_PEAK:g}; "
                               "corrupt data, or integer samples stored unscaled in a float file: rescale it)")
    wave = resample(wave, sr, sample_rate)
    return validate(wave, path, sample_rate=sample_rate, max_seconds=max_seconds, min_seconds=min_seconds)


def load_many(paths, *, skip_errors: bool = False, **kw) -> tuple[list[np.ndarray | None], list[AudioError]]:
    """Decode several files. With `skip_errors`, bad files give None and are listed; else the
    first bad file raises."""
    waves: list[np.ndarray | None] = []
    errors: list[AudioError] = []
    for p in paths:
        try:
            waves.append(load(p, **kw))
        except AudioError as e:
            if not skip_errors:
                raise
            waves.append(None)
            errors.append(e)
    return waves, errors


def write(path: str | os.PathLike, wave: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> Path:
    """Write a WAV file (used by the synthetic corpora and test fixtures)."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(wave, dtype=np.float32), sample_rate, subtype=subtype)
    return path
