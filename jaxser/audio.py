"""Audio decoding and validation: soundfile + soxr to 16 kHz mono float32.

Why not `datasets.Audio`: datasets 4+ decodes through torchcodec (torch + ffmpeg), which
jaxser must not require. Datasets keep the path; waveforms are decoded here, lazily.
Every failure names the file, so a bad corpus never turns into silent garbage.

Audio inside containers libsndfile cannot read (video files, WebM, AAC in MP4:
CONTAINER_EXTENSIONS) is decoded with PyAV, whose wheels bundle FFmpeg, so no ffmpeg binary
is needed and nothing shells out. A row may also be a segment of a longer file (`start`,
`end` in seconds): only that segment's samples are read.
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
#: Files whose audio track is decoded with PyAV (FFmpeg) instead of libsndfile.
CONTAINER_EXTENSIONS = (".avi", ".mp4", ".m4a", ".webm", ".mkv", ".mov")
#: A segment may end this far after the file's last sample (segment tables round their times).
SEGMENT_END_SLACK = 0.05


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


def is_container(path: str | os.PathLike) -> bool:
    """Whether `path` is read through PyAV (by its extension, CONTAINER_EXTENSIONS)."""
    return Path(path).suffix.lower() in CONTAINER_EXTENSIONS


def info(path: str | os.PathLike) -> AudioInfo:
    """Header-only metadata (no decoding); raises AudioError for unreadable files.

    For containers the frame count comes from the audio track's declared duration, else from
    its packets' times (AVI, a WebM written by a browser), else by decoding once to count.
    """
    if is_container(path):
        return _container_info(path)
    import soundfile as sf

    try:
        i = sf.info(str(path))
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError / OSError
        raise AudioError(path, f"unreadable audio ({type(e).__name__}: {e})") from None
    return AudioInfo(str(path), int(i.samplerate), int(i.channels), int(i.frames))


def _open_container(path):
    import av

    try:
        return av.open(str(path))
    except Exception as e:  # av.error.FFmpegError subclasses, OSError
        raise AudioError(path, f"unreadable audio ({type(e).__name__}: {e})") from None


def _audio_stream(container, path):
    if not container.streams.audio:
        raise AudioError(path, "no audio track in this container (video only?); it cannot be an utterance: "
                               "remove it or replace it with a file that has sound")
    return container.streams.audio[0]


def _container_info(path) -> AudioInfo:
    with _open_container(path) as c:
        s = _audio_stream(c, path)
        sr, channels = int(s.codec_context.sample_rate or s.rate or 0), int(s.codec_context.channels or 0)
        # only the audio track's own duration: a container's is its longest track's (AVI: the video)
        seconds = float(s.duration * s.time_base) if s.duration and s.time_base is not None else None
        if seconds is None:
            seconds = _packet_span(c, s)
    if seconds is None:  # neither headers nor packet times: count the samples
        wave, sr = decode_container(path)
        return AudioInfo(str(path), sr, wave.shape[1], wave.shape[0])
    return AudioInfo(str(path), sr, channels, int(round(seconds * sr)))


def _packet_span(container, stream) -> float | None:
    """The audio track's time span from its packets' times, read without decoding (AVI and
    browser-written WebM declare no track duration; decoding to count costs ~20x more)."""
    import av

    lo = hi = None
    try:
        for pkt in container.demux(stream):
            if not pkt.size:
                continue
            if pkt.pts is None or not pkt.duration:
                return None
            lo = pkt.pts if lo is None else min(lo, pkt.pts)
            hi = pkt.pts + pkt.duration if hi is None else max(hi, pkt.pts + pkt.duration)
    except av.error.FFmpegError:
        return None
    return None if lo is None or stream.time_base is None else float((hi - lo) * stream.time_base)


class _NoFrameTimes(Exception):
    pass


#: Seconds before a segment's start to seek to (more than any codec's pre-roll).
_SEEK_MARGIN = 0.5


def decode_container(path: str | os.PathLike, start: float | None = None,
                     end: float | None = None) -> tuple[np.ndarray, int]:
    """The first audio track of any container PyAV reads, as float32 [frames, channels] at
    its own rate; with `start`/`end` (seconds) only that span (seeking, not decoding from 0,
    unless the frames carry no times to trim by).

    Raises AudioError naming the file when it cannot be opened or decoded, or has no audio.
    """
    try:
        return _decode_container(path, start, end)
    except _NoFrameTimes:
        wave, sr = _decode_container(path, None, None)
        lo = int(round((start or 0.0) * sr))
        return wave[lo:wave.shape[0] if end is None else max(lo, int(round(end * sr)))], sr


def _decode_container(path, start, end) -> tuple[np.ndarray, int]:
    import av

    with _open_container(path) as c:
        s = _audio_stream(c, path)
        s.thread_type = "AUTO"
        if start:
            # a packet well before `start`: decoders drop their pre-roll after a seek (Opus: 312
            # samples), so seeking to `start` itself can begin decoding after it; frame times
            # below trim the rest
            try:
                c.seek(int(max(0.0, start - _SEEK_MARGIN) / s.time_base), stream=s, backward=True, any_frame=False)
            except av.error.FFmpegError:
                c.seek(0)
        chunks, t_first, anchor, sr, pos = [], None, 0, None, 0
        resampler = None
        try:
            for frame in c.decode(s):
                if sr is None:
                    sr = int(frame.sample_rate)
                    resampler = av.AudioResampler(format="fltp", layout=frame.layout, rate=sr)
                if frame.time is None and start:  # no frame times to trim a seek by: decode from 0
                    raise _NoFrameTimes
                t = float(frame.time) if frame.time is not None else pos / sr
                if t_first is None or (start is not None and t <= start):
                    # anchor: the last frame starting at or before `start` (the first frame after a
                    # seek may have lost its decoder pre-roll, so its time is the least exact)
                    t_first, anchor = t, pos
                if end is not None and t >= end:
                    break
                for out in resampler.resample(frame):
                    a = out.to_ndarray()
                    chunks.append(a)
                    pos += a.shape[1]
            if resampler is not None:
                chunks += [out.to_ndarray() for out in resampler.resample(None)]
        except av.error.FFmpegError as e:
            raise AudioError(path, f"undecodable audio ({type(e).__name__}: {e})") from None
    if sr is None or not chunks:
        raise AudioError(path, "empty audio (the audio track holds no samples" + (" in the segment)" if end else ")"))
    wave = np.concatenate(chunks, axis=1).T.astype(np.float32, copy=False)
    t_first = t_first or 0.0
    lo = max(0, anchor + int(round(((start or 0.0) - t_first) * sr)))
    hi = wave.shape[0] if end is None else max(lo, anchor + int(round((end - t_first) * sr)))
    return wave[lo:hi], sr


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


def _check_segment(path, hdr: AudioInfo, start: float | None, end: float | None) -> tuple[float, float] | None:
    if start is None and end is None:
        return None
    start = 0.0 if start is None else float(start)
    end = hdr.duration if end is None else float(end)
    if not (0.0 <= start < end):
        raise AudioError(path, f"segment {start:.3f}-{end:.3f} s is not a span (need 0 <= start < end)")
    if end > hdr.duration + SEGMENT_END_SLACK:
        raise AudioError(path, f"segment {start:.3f}-{end:.3f} s ends after the file ({hdr.duration:.3f} s); "
                               "the segment table does not belong to this recording")
    return start, min(end, hdr.duration)


def load(path: str | os.PathLike, *, sample_rate: int = SAMPLE_RATE, max_seconds: float = MAX_SECONDS,
         min_seconds: float = MIN_SECONDS, start: float | None = None, end: float | None = None) -> np.ndarray:
    """Decode `path` to a validated mono float32 waveform in [-1, 1] at `sample_rate`.

    Multi-channel audio is averaged to mono. The duration limit is checked from the header
    first, so a huge file is refused before it is decoded. Samples that are not finite or
    whose peak exceeds MAX_PEAK are refused: they are not a waveform. `start`/`end` (seconds)
    select a segment of a longer recording: only its samples are read, and the limits apply
    to the segment.
    """
    import soundfile as sf

    hdr = info(path)
    if hdr.frames == 0:
        raise AudioError(path, "empty audio (0 samples)")
    span = _check_segment(path, hdr, start, end)
    seconds = hdr.duration if span is None else span[1] - span[0]
    if seconds > max_seconds:
        raise AudioError(path, f"absurdly long: {seconds:.1f} s > {max_seconds} s "
                               "(raise max_seconds if this is intended)")
    if is_container(path):
        data, sr = decode_container(path, *(span or (None, None)))
    else:
        lo, hi = (0, None) if span is None else (int(round(span[0] * hdr.sample_rate)),
                                                 min(hdr.frames, int(round(span[1] * hdr.sample_rate))))
        try:
            data, sr = sf.read(str(path), start=lo, stop=hi, dtype="float32", always_2d=True)
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
