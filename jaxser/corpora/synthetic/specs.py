"""What a synthetic corpus is: phone inventory, emotion cue table and the corpus declarations.

Kept apart from the synthesiser (`voice`), the recording chain (`channel`) and the cache
(`cache`) because `CorpusSpec.config_hash` -- the cache key -- is computed from these
declarations alone: changing how audio is made must bump `VERSION`, changing a declaration
changes the hash.
"""
from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import asdict, dataclass

import numpy as np

#: Bump when the synthesiser changes what it writes: the cache folder is versioned by it.
VERSION = 1


# ----------------------------------------------------------------------------------------
# Phone inventory (formant values: adult male reference, Hz; Peterson & Barney 1952,
# Hillenbrand et al. 1995 for English-like vowels, textbook values for the others)
# ----------------------------------------------------------------------------------------

VOWELS = {
    "i": (280, 2250, 2950), "I": (400, 1920, 2560), "e": (430, 2020, 2600), "E": (580, 1800, 2500),
    "ae": (660, 1720, 2410), "a": (750, 1250, 2500), "o": (450, 850, 2500), "O": (590, 920, 2480),
    "u": (310, 870, 2250), "y": (280, 1800, 2150), "oe": (390, 1550, 2250), "@": (500, 1450, 2450),
}


SCHWA = np.array(VOWELS["@"], dtype=np.float64)


@dataclass(frozen=True)
class Consonant:
    """kind: plosive | fricative | nasal | approximant | aspirate. `loci`: F1-F3 targets the
    formants move towards (consonant place); `noise`: frication/burst centre (Hz) and
    bandwidth (octaves); `amp_db`: level relative to a stressed vowel."""
    kind: str
    voiced: bool
    loci: tuple[float, float, float]
    noise: tuple[float, float] = (0.0, 0.0)
    amp_db: float = 0.0


CONSONANTS = {
    "p": Consonant("plosive", False, (250, 800, 2200), (1000, 2.0), -8),
    "b": Consonant("plosive", True, (250, 800, 2200), (1000, 2.0), -12),
    "t": Consonant("plosive", False, (250, 1800, 2700), (4200, 1.0), -4),
    "d": Consonant("plosive", True, (250, 1800, 2700), (4200, 1.0), -9),
    "k": Consonant("plosive", False, (250, 2000, 2500), (2000, 0.7), -5),
    "g": Consonant("plosive", True, (250, 2000, 2500), (2000, 0.7), -10),
    "f": Consonant("fricative", False, (250, 900, 2300), (5500, 2.5), -18),
    "v": Consonant("fricative", True, (250, 900, 2300), (5500, 2.5), -22),
    "s": Consonant("fricative", False, (250, 1700, 2700), (5500, 0.7), -6),
    "z": Consonant("fricative", True, (250, 1700, 2700), (5500, 0.7), -12),
    "S": Consonant("fricative", False, (250, 1900, 2400), (3000, 0.8), -5),
    "x": Consonant("fricative", False, (250, 1500, 2300), (1600, 0.9), -12),
    "h": Consonant("aspirate", False, (500, 1500, 2500), (0.0, 0.0), -14),
    "m": Consonant("nasal", True, (250, 1000, 2200), (0.0, 0.0), -12),
    "n": Consonant("nasal", True, (250, 1500, 2500), (0.0, 0.0), -11),
    "l": Consonant("approximant", True, (350, 1100, 2700), (0.0, 0.0), -6),
    "r": Consonant("approximant", True, (350, 1250, 1650), (0.0, 0.0), -6),
    "j": Consonant("approximant", True, (280, 2200, 3000), (0.0, 0.0), -5),
    "w": Consonant("approximant", True, (300, 700, 2200), (0.0, 0.0), -5),
}


#: intrinsic durations (s) at a 5 syllables/s reference rate, before rhythm scaling
CONSONANT_DURATIONS = {"plosive": 0.060, "fricative": 0.090, "nasal": 0.060, "approximant": 0.050, "aspirate": 0.060}


@dataclass(frozen=True)
class Language:
    """Phonotactics and rhythm of a fictional language.

    rhythm: "syllable" (equal syllables), "stress" (stressed syllables long, unstressed short
    and reduced towards schwa) or "mora" (long vowels twice as long, no stress lengthening);
    Ramus, Nespor & Mehler (1999) rhythm classes. stress: position in the word."""
    vowels: tuple[str, ...]
    consonants: tuple[str, ...]
    patterns: tuple[tuple[str, float], ...]  # syllable templates with weights
    clusters: tuple[str, ...] = ()  # two-consonant onsets
    codas: tuple[str, ...] = ()
    rate: float = 5.0  # syllables per second (neutral)
    rhythm: str = "syllable"
    stress: str = "penultimate"
    long_vowels: float = 0.0  # probability of a long vowel (mora rhythm)
    aspirated: bool = False  # voiceless plosives aspirated


# ----------------------------------------------------------------------------------------
# Emotion cues (relative to neutral). Directions from Banse & Scherer 1996, Juslin & Laukka
# 2003 (Table 7), Scherer 2003, Murray & Arnott 1993; magnitudes are our choice (docs).
# ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cues:
    level_st: float = 0.0  # F0 level shift, semitones
    range: float = 1.0  # F0 range factor (accents, declination, final movement)
    rate: float = 1.0  # articulation rate factor
    loud_db: float = 0.0  # vocal intensity, dB
    tilt: float = 1.0  # factor on the source low-pass corner: >1 flatter spectrum (effort)
    jitter: float = 1.0  # factor on per-cycle F0 perturbation
    shimmer: float = 1.0  # factor on per-cycle amplitude perturbation
    breath: float = 1.0  # factor on aspiration noise
    precision: float = 1.0  # vowel-space expansion (>1) or reduction (<1)
    formants: float = 1.0  # overall formant scaling (smiling raises formants, Tartter 1980)
    oq: float = 0.0  # open-quotient offset: <0 pressed, >0 lax/breathy
    final_st: float = -2.5  # phrase-final F0 movement (negative: fall, positive: rise)
    tremor_st: float = 0.0  # 5-7 Hz F0 tremor depth
    final_len: float = 1.0  # phrase-final lengthening factor


EMOTION_CUES = {
    "neutral": Cues(),
    "angry": Cues(3.5, 1.5, 1.10, 6.0, 2.2, 1.2, 1.1, 0.6, 1.15, 1.02, -0.12, -4.0, 0.0, 1.0),
    "happy": Cues(4.0, 1.6, 1.08, 3.0, 1.5, 1.0, 1.0, 1.0, 1.05, 1.04, -0.04, -3.0, 0.0, 1.0),
    "sad": Cues(-2.0, 0.55, 0.80, -5.0, 0.55, 1.4, 1.3, 1.8, 0.80, 0.99, 0.12, -1.5, 0.0, 1.3),
    "fear": Cues(5.0, 1.2, 1.18, 1.0, 1.3, 2.0, 1.5, 1.4, 0.95, 1.02, 0.0, 1.0, 0.7, 0.9),
    "surprise": Cues(4.5, 1.9, 1.00, 2.0, 1.4, 1.0, 1.0, 1.1, 1.05, 1.02, -0.03, 5.0, 0.0, 1.1),
    "boredom": Cues(-1.5, 0.45, 0.82, -3.0, 0.7, 1.1, 1.1, 1.3, 0.85, 1.0, 0.08, -1.0, 0.0, 1.2),
    "disgust": Cues(-1.0, 0.9, 0.85, 0.0, 0.85, 1.6, 1.4, 1.1, 1.0, 0.98, -0.05, -3.0, 0.0, 1.2),
}


#: cues combined additively (semitones, dB, offsets); all others are log-scale factors
ADDITIVE_CUES = {"level_st", "loud_db", "oq", "final_st", "tremor_st"}


# ----------------------------------------------------------------------------------------
# Dimensional targets (arousal, valence, dominance in [0, 1]); `dimensions.py` computes them.
# Arousal and dominance follow the cues a take was synthesised with; valence has a part the
# audio carries (the acted category, smiling formants) and a part it does not (rater
# disagreement), as valence from speech is known to be the hardest dimension.
# ----------------------------------------------------------------------------------------

#: The declared scale of every synthetic corpus' dimensional targets.
DIMENSION_RANGE = (0.0, 1.0)
#: Pleasantness of each acted category (-1 unpleasant .. +1 pleasant; Russell 1980's circumplex order).
EMOTION_VALENCE = {"neutral": 0.0, "calm": 0.3, "happy": 0.9, "surprise": 0.3, "sad": -0.7, "angry": -0.7,
                   "fear": -0.6, "disgust": -0.7, "boredom": -0.3}
#: Control/potency of each acted category beyond what loudness and effort carry.
EMOTION_DOMINANCE = {"neutral": 0.0, "calm": 0.0, "happy": 0.3, "surprise": -0.1, "sad": -0.6, "angry": 0.8,
                     "fear": -0.8, "disgust": 0.3, "boredom": -0.2}
#: Standard deviation of the valence part no audio cue carries (logit units).
VALENCE_UNOBSERVED_SD = 0.6


# ----------------------------------------------------------------------------------------
# Corpus declarations: recording chain, speaker population, the whole corpus
# ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Channel:
    """Recording chain. `level_db`: RMS of neutral speech (dBFS); `snr_db`: noise floor below
    it; `noise_color`: spectral exponent (0 white, 1 pink, 2 brown); `normalise`: "none",
    "peak" (each file peak-normalised), "rms" (each file loudness-normalised to level_db,
    which removes the intensity cue) or "agc" (half-way RMS normalisation, like an automatic
    gain control)."""
    band: tuple[float, float]
    rt60: float
    drr_db: float
    snr_db: float
    noise_color: float
    level_db: float = -26.0
    hum_hz: float = 0.0
    telephone: bool = False
    normalise: str = "none"


@dataclass(frozen=True)
class Population:
    n_female: int
    n_male: int
    f0_female: tuple[float, float] = (210.0, 18.0)  # mean, sd (Hz)
    f0_male: tuple[float, float] = (115.0, 11.0)
    jitter: float = 0.006  # mean per-cycle relative F0 perturbation
    shimmer: float = 0.04


@dataclass(frozen=True)
class CorpusSpec:
    name: str
    language_tag: str
    language: Language
    sample_rate: int
    emotions: tuple[str, ...]
    label_map: tuple[tuple[str, str], ...]  # the corpus' own code -> canonical emotion
    population: Population
    channel: Channel
    n_sentences: int
    acting: float  # how strongly emotions are expressed (scales every cue deviation)
    cue_spread: float = 0.25  # per-corpus random deviation of each cue from the table
    layout: str = "{speaker}/{speaker}_{sentence}_{code}.wav"
    speaker_fmt: str = "{g}{i:02d}"

    @property
    def codes(self) -> dict[str, str]:
        """canonical emotion -> this corpus' code"""
        return {emo: code for code, emo in self.label_map}

    @property
    def dimensions(self) -> dict[str, tuple[float, float]]:
        """The declared range of the arousal/valence/dominance targets (a property, not a
        field: the cache key, `config_hash`, stays what it was)."""
        return {d: DIMENSION_RANGE for d in ("arousal", "valence", "dominance")}

    @property
    def n_utterances(self) -> int:
        return (self.population.n_female + self.population.n_male) * len(self.emotions) * self.n_sentences

    def config_hash(self) -> str:
        blob = json.dumps({"version": VERSION, "spec": asdict(self)}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def stable_seed(*parts) -> list[int]:
    """Stable integer seeds from names (crc32, not Python's salted hash())."""
    return [zlib.crc32(str(p).encode()) if not isinstance(p, int) else p for p in parts]
