"""Tiny corpus trees with real file names, layouts and native sample rates, for loader tests.

Each builder writes short generated WAVs (a noise-modulated tone, so no file is silent or
identical to another) and returns the list of written paths.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from jaxser import audio

SECONDS = 0.2


def tone(sample_rate: int, seed: int, seconds: float = SECONDS) -> np.ndarray:
    """`seconds` of a tone whose pitch and noise depend on `seed`."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    f0 = 120 + 15 * (seed % 17)
    env = 0.5 + 0.5 * rng.random(n).cumsum() / n
    return (0.3 * env * np.sin(2 * np.pi * f0 * t) + 0.02 * rng.standard_normal(n)).astype(np.float32)


def write_wav(path: Path, sample_rate: int, channels: int = 1) -> Path:
    """A short distinct WAV at `path` (seeded by the file name)."""
    w = tone(sample_rate, zlib.crc32(path.name.encode()))
    if channels > 1:
        w = np.stack([w] * channels, axis=1)
    return audio.write(path, w, sample_rate)


def frames(sample_rate: int, seconds: float = SECONDS) -> int:
    return int(seconds * sample_rate)


def write_tree(root: Path, relpaths, sample_rate: int, channels: int = 1) -> list[Path]:
    return [write_wav(Path(root) / r, sample_rate, channels) for r in relpaths]


CREMAD_DEMOGRAPHICS = ("ActorID,Age,Sex,Race,Ethnicity\n"
                       "1001,51,Male,Caucasian,Not Hispanic\n"
                       "1002,21,Female,Caucasian,Not Hispanic\n"
                       "1040,32,Male,Caucasian,Not Hispanic\n"
                       "1091,29,Female,Asian,Not Hispanic\n")
CREMAD_FILES = ("1001_DFA_ANG_XX.wav", "1001_IEO_HAP_HI.wav", "1002_TIE_SAD_LO.wav", "1002_IOM_NEU_XX.wav",
                "1040_ITH_SAD_X.wav", "1091_WSI_FEA_MD.wav", "1091_TSI_DIS_XX.wav")


def cremad(root: Path, demographics: bool = True, subdir: str = "AudioWAV") -> list[Path]:
    """The GitHub/Kaggle layout: AudioWAV/*.wav, with VideoDemographics.csv at the top."""
    root = Path(root)
    paths = write_tree(root / subdir, CREMAD_FILES, 16_000)
    if demographics:
        (root / "VideoDemographics.csv").write_text(CREMAD_DEMOGRAPHICS)
    return paths


RAVDESS_FILES = {
    "Actor_01": ("03-01-01-01-01-01-01.wav", "03-01-05-02-02-01-01.wav", "03-01-08-01-01-02-01.wav"),
    "Actor_02": ("03-01-02-01-02-02-02.wav", "03-01-06-02-01-01-02.wav", "03-01-07-01-02-01-02.wav"),
    "Actor_24": ("03-01-03-02-01-01-24.wav", "03-01-04-01-02-02-24.wav"),
}
RAVDESS_SONG = {"Actor_01": ("03-02-03-01-01-01-01.wav",), "Actor_24": ("03-02-04-02-02-02-24.wav",)}


def ravdess(root: Path, top: str = "", song: bool = False) -> list[Path]:
    """Actor_XX/ folders, optionally inside the zip's top folder (e.g. Audio_Speech_Actors_01-24)."""
    base = Path(root) / top if top else Path(root)
    rel = [f"{a}/{f}" for a, fs in RAVDESS_FILES.items() for f in fs]
    if song:
        rel += [f"{a}/{f}" for a, fs in RAVDESS_SONG.items() for f in fs]
    return write_tree(base, rel, 48_000)


TESS_FILES = {  # real folder spellings of the distributed archive
    "OAF_angry": ("OAF_back_angry.wav",),
    "OAF_Fear": ("OAF_back_fear.wav",),
    "OAF_neutral": ("OA_bite_neutral.wav", "OAF_dog_neutral.wav"),
    "OAF_Pleasant_surprise": ("OAF_back_ps.wav",),
    "YAF_disgust": ("YAF_chain_disgust.wav",),
    "YAF_happy": ("YAF_dog_happy.wav",),
    "YAF_pleasant_surprised": ("YAF_dog_ps.wav",),
    "YAF_sad": ("YAF_young_sad.wav",),
}


def tess(root: Path, flat: bool = False, top: str = "TESS Toronto emotional speech set data") -> list[Path]:
    base = Path(root) / top if top else Path(root)
    rel = [f if flat else f"{d}/{f}" for d, fs in TESS_FILES.items() for f in fs]
    return write_tree(base, rel, 24_414)


EMODB_FILES = ("03a01Fa.wav", "03b10Nc.wav", "08a02Ab.wav", "10a04Wa.wav", "13b01Lb.wav", "16b09Eb.wav",
               "15a07Ta.wav")


def emodb(root: Path) -> list[Path]:
    return write_tree(Path(root) / "wav", EMODB_FILES, 16_000)


SAVEE_FILES = {"DC": ("a01.wav", "n30.wav", "sa15.wav"), "JE": ("d03.wav", "su01.wav"),
               "JK": ("f02.wav",), "KL": ("h07.wav",)}


def savee(root: Path, flat: bool = False) -> list[Path]:
    """The release (AudioData/DC/a01.wav) or the flattened ALL/DC_a01.wav redistribution."""
    if flat:
        rel = [f"ALL/{s}_{f}" for s, fs in SAVEE_FILES.items() for f in fs]
    else:
        rel = [f"AudioData/{s}/{f}" for s, fs in SAVEE_FILES.items() for f in fs]
    return write_tree(Path(root), rel, 44_100)


EMOVO_FILES = {"f1": ("dis-f1-b1.wav", "gio-f1-l4.wav"), "f3": ("neu-f3-n5.wav",),
               "m1": ("pau-m1-d2.wav", "rab-m1-b3.wav"), "m3": ("sor-m3-l1.wav", "tri-m3-n1.wav")}


def emovo(root: Path, flat: bool = False) -> list[Path]:
    rel = [f if flat else f"EMOVO/{s}/{f}" for s, fs in EMOVO_FILES.items() for f in fs]
    return write_tree(Path(root), rel, 48_000, channels=2)


def voiced_wave(n: int, seed: int, sr: int = 16_000) -> np.ndarray:
    """A voiced-like test signal: amplitude-modulated tone plus a little noise (float32)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    w = 0.3 * np.sin(2 * np.pi * (150 + 40 * seed) * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (w + 0.05 * rng.standard_normal(n)).astype(np.float32)
