"""Real audio/video containers written with PyAV (the library jaxser.audio decodes them with):
AVI, MP4, M4A, WebM and MKV with an audio track, optionally a video track, or video only."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

#: extension -> (audio codec, video codec); codecs the corpora's releases use or close to them
CODECS = {".avi": ("pcm_s16le", "mpeg4"), ".mp4": ("aac", "mpeg4"), ".m4a": ("aac", None),
          ".webm": ("libopus", "libvpx"), ".mkv": ("flac", "mpeg4")}


def write_container(path: Path, wave: np.ndarray | None, sr: int, *, video: bool = True,
                    frames: int = 3, layout: str = "mono") -> Path:
    """Write `wave` (mono float32, or None for no audio track) into `path`'s container format,
    with a few tiny video frames when `video`. Another `layout` (e.g. "5.1", MELD's surround
    AAC) takes `wave` as [channels, samples], for the planar-float codecs (AAC)."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    acodec, vcodec = CODECS[path.suffix.lower()]
    with av.open(str(path), "w") as out:
        vs = None
        if video and vcodec:
            vs = out.add_stream(vcodec, rate=10)
            vs.width, vs.height, vs.pix_fmt = 32, 32, "yuv420p"
        if wave is not None:
            aus = out.add_stream(acodec, rate=sr)
            aus.layout = layout
            fmt = "s16" if acodec == "pcm_s16le" else ("flt" if acodec in ("libopus",) else
                                                       "s16" if acodec == "flac" else "fltp")
            if layout != "mono" and fmt != "fltp":
                raise ValueError(f"{layout} audio is written for planar-float codecs only, not {acodec}")
            pcm = np.clip(np.asarray(wave, np.float32), -1, 1)
            data = (pcm * 32767).astype(np.int16) if fmt == "s16" else pcm
            step = 960 if acodec == "libopus" else 1024
            for i in range(0, data.shape[-1], step):
                part = data[..., i:i + step]
                if acodec == "libopus" and len(part) < step:
                    part = np.concatenate([part, np.zeros(step - len(part), part.dtype)])
                part = part[None, :] if layout == "mono" else np.ascontiguousarray(part)
                fr = av.AudioFrame.from_ndarray(part, format=fmt, layout=layout)
                fr.sample_rate, fr.pts, fr.time_base = sr, i, Fraction(1, sr)
                for pkt in aus.encode(fr):
                    out.mux(pkt)
            for pkt in aus.encode(None):
                out.mux(pkt)
        if vs is not None:
            for k in range(frames):
                img = np.full((32, 32, 3), 40 * k % 255, np.uint8)
                vf = av.VideoFrame.from_ndarray(img, format="rgb24")
                for pkt in vs.encode(vf):
                    out.mux(pkt)
            for pkt in vs.encode(None):
                out.mux(pkt)
    return path
