"""Synthetic emotional-speech corpora: the embedded default that needs no data or weights.

Four small acted-emotion corpora in fictional languages, generated on first use by a
source-filter synthesiser (numpy/scipy only) and cached on disk. They are built to differ the
way real corpora differ -- language (vowel/consonant inventory, syllable structure, rhythm),
speaker population, recording channel and acting style -- while emotion is carried by the
paralinguistic cues the literature documents (docs/synthetic.md has the cue table and the
sources), so that same-corpus SER is learnable and cross-corpus transfer is real but imperfect.

Synthesis, per utterance:
  * a sentence (fixed per corpus, the same text in every emotion, as in acted corpora) is a
    syllable sequence drawn from the language's phonotactics; each phone has a duration,
    formant targets (vowels, consonant loci), voicing, aspiration and frication settings;
  * an F0 contour = speaker mean x emotion level, declination, pitch accents on stressed
    syllables, a phrase-final fall or rise, micro-prosody, tremor; per-cycle jitter/shimmer;
  * a Rosenberg/LF-like glottal-flow-derivative pulse train (open quotient, spectral tilt)
    plus aspiration and place-dependent frication noise;
  * time-varying formant filtering (Klatt resonators, five to six formants scaled by the
    speaker's vocal-tract length) applied frame-wise in the STFT domain, which vectorises
    the whole utterance (no per-sample Python loops);
  * a recording channel: synthetic room impulse response, coloured noise floor (and mains
    hum), band limits or a telephone path (8 kHz, mu-law), and file level normalisation.

Generation is deterministic (seeds derive from corpus names, never from `hash()`), atomic
(built in a temporary sibling folder, renamed into place, a marker file written last) and
cached (a complete folder whose marker matches the configuration is never rewritten).
"""
from __future__ import annotations

import csv
import functools
import hashlib
import json
import os
import shutil
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from jaxser.corpora.schema import CorpusError, build_dataset, map_label
from jaxser.io import atomic_write_text

#: Bump when the synthesiser changes what it writes: the cache folder is versioned by it.
VERSION = 1
METADATA = "metadata.csv"
MARKER = ".jaxser-synthetic.json"
METADATA_FIELDS = ("path", "speaker", "gender", "label", "sentence", "duration", "f0_hz")


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
_CONS_DUR = {"plosive": 0.060, "fricative": 0.090, "nasal": 0.060, "approximant": 0.050, "aspirate": 0.060}


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
_ADDITIVE = {"level_st", "loud_db", "oq", "final_st", "tremor_st"}


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
    def n_utterances(self) -> int:
        return (self.population.n_female + self.population.n_male) * len(self.emotions) * self.n_sentences

    def config_hash(self) -> str:
        blob = json.dumps({"version": VERSION, "spec": asdict(self)}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


CORPORA: dict[str, CorpusSpec] = {
    "synth-alba": CorpusSpec(
        name="synth-alba", language_tag="x-alba",
        language=Language(vowels=("i", "e", "a", "o", "u"), consonants=tuple("ptkbdgmnslrj"),
                          patterns=(("CV", 0.7), ("V", 0.1), ("CVC", 0.2)), codas=("n", "l", "s"),
                          rate=5.6, rhythm="syllable", stress="penultimate"),
        sample_rate=16000, emotions=("angry", "happy", "neutral", "sad", "fear"),
        label_map=(("ANG", "angry"), ("HAP", "happy"), ("NEU", "neutral"), ("SAD", "sad"), ("FEA", "fear")),
        population=Population(5, 5, (215.0, 18.0), (118.0, 10.0)),
        channel=Channel(band=(60.0, 7600.0), rt60=0.18, drr_db=12.0, snr_db=40.0, noise_color=1.0,
                        level_db=-26.0),
        n_sentences=4, acting=1.0, speaker_fmt="{g}{i:02d}",
        layout="{speaker}/{speaker}_{sentence}_{code}.wav"),
    "synth-bruna": CorpusSpec(
        name="synth-bruna", language_tag="x-bruna",
        language=Language(vowels=("i", "y", "e", "oe", "a", "o", "u", "I"),
                          consonants=("p", "t", "k", "b", "d", "g", "f", "v", "s", "z", "S", "x", "m", "n", "l", "r"),
                          patterns=(("CVC", 0.4), ("CCVC", 0.2), ("CV", 0.25), ("CCV", 0.15)),
                          clusters=("pr", "tr", "kr", "pl", "kl", "st", "Sp", "fr"),
                          codas=("t", "s", "n", "r", "x", "k", "l"),
                          rate=4.6, rhythm="stress", stress="initial", aspirated=True),
        sample_rate=22050, emotions=("angry", "happy", "neutral", "sad", "boredom", "disgust"),
        label_map=(("R", "angry"), ("J", "happy"), ("N", "neutral"), ("T", "sad"), ("L", "boredom"),
                   ("E", "disgust")),
        population=Population(4, 4, (198.0, 15.0), (108.0, 9.0)),
        channel=Channel(band=(80.0, 10000.0), rt60=0.45, drr_db=4.0, snr_db=32.0, noise_color=0.3,
                        level_db=-29.0),
        n_sentences=4, acting=1.3, speaker_fmt="{i:02d}", layout="wav/{speaker}{sentence}{code}.wav"),
    "synth-corva": CorpusSpec(
        name="synth-corva", language_tag="x-corva",
        language=Language(vowels=("a", "i", "u"), consonants=("p", "t", "k", "m", "n", "s", "h", "w", "j", "r"),
                          patterns=(("CV", 0.8), ("CVC", 0.2)), codas=("n",),
                          rate=6.8, rhythm="mora", stress="penultimate", long_vowels=0.3),
        sample_rate=44100, emotions=("angry", "happy", "neutral", "sad", "surprise"),
        label_map=(("01", "neutral"), ("02", "happy"), ("03", "sad"), ("04", "angry"), ("05", "surprise")),
        population=Population(6, 6, (228.0, 20.0), (126.0, 12.0), jitter=0.005),
        channel=Channel(band=(40.0, 18000.0), rt60=0.10, drr_db=18.0, snr_db=38.0, noise_color=2.0,
                        level_db=-23.0, hum_hz=50.0, normalise="rms"),
        n_sentences=3, acting=0.9, speaker_fmt="{i:02d}", layout="Actor_{speaker}/{code}-{sentence}-{speaker}.wav"),
    "synth-duna": CorpusSpec(
        name="synth-duna", language_tag="x-duna",
        language=Language(vowels=("i", "e", "@", "a", "o", "u", "ae"),
                          consonants=("t", "d", "k", "g", "S", "s", "z", "m", "n", "l", "r", "w", "f"),
                          patterns=(("CCV", 0.25), ("CVC", 0.35), ("CV", 0.3), ("VC", 0.1)),
                          clusters=("sk", "st", "sn", "tr", "dr", "kl", "gr"), codas=("k", "t", "m", "n", "S", "l"),
                          rate=5.0, rhythm="stress", stress="final"),
        sample_rate=16000, emotions=("angry", "happy", "neutral", "sad"),
        label_map=(("rabo", "angry"), ("siva", "happy"), ("nelo", "neutral"), ("tuma", "sad")),
        population=Population(7, 5, (188.0, 16.0), (104.0, 10.0), jitter=0.010, shimmer=0.06),
        channel=Channel(band=(300.0, 3400.0), rt60=0.30, drr_db=8.0, snr_db=22.0, noise_color=1.0,
                        level_db=-22.0, telephone=True, normalise="agc"),
        n_sentences=4, acting=0.8, speaker_fmt="spk{i:02d}", layout="{code}/{speaker}_{sentence}.wav"),
}


# ----------------------------------------------------------------------------------------
# Paths, cache and atomic generation
# ----------------------------------------------------------------------------------------

def default_root() -> Path:
    """$JAXSER_CACHE/synthetic/v<VERSION>, else ~/.cache/jaxser/synthetic/v<VERSION>."""
    base = os.environ.get("JAXSER_CACHE")
    base = Path(base).expanduser() if base else Path.home() / ".cache" / "jaxser"
    return base / "synthetic" / f"v{VERSION}"


def spec(name: str) -> CorpusSpec:
    try:
        return CORPORA[name]
    except KeyError:
        raise CorpusError(f"unknown synthetic corpus {name!r}; known: {', '.join(CORPORA)}") from None


def _seed(*parts) -> list[int]:
    """Stable integer seeds from names (crc32, not Python's salted hash())."""
    return [zlib.crc32(str(p).encode()) if not isinstance(p, int) else p for p in parts]


def _read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None


def is_complete(folder: str | os.PathLike, s: CorpusSpec) -> bool:
    """True when `folder` holds a finished generation of exactly this configuration: the marker
    (written last) matches, and every file it lists exists with the recorded size."""
    folder = Path(folder)
    m = _read_marker(folder)
    if not m or m.get("config") != s.config_hash() or m.get("version") != VERSION:
        return False
    sizes = m.get("sizes", {})
    if len(sizes) != m.get("n_files"):
        return False
    for rel, size in sizes.items():
        try:
            if (folder / rel).stat().st_size != size:
                return False
        except OSError:
            return False
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _clean_stale_tmp(target: Path) -> None:
    """Remove build (and swapped-out) folders left by generations whose process has died."""
    if not target.parent.is_dir():
        return
    for p in target.parent.iterdir():
        for prefix in (f".{target.name}.tmp-", f".{target.name}.old-"):
            if p.name.startswith(prefix):
                try:
                    pid = int(p.name[len(prefix):].split("-")[0])
                except ValueError:
                    continue
                if not _pid_alive(pid):
                    shutil.rmtree(p, ignore_errors=True)


def generate(name: str, root: str | os.PathLike | None = None) -> Path:
    """Write corpus `name` (WAVs at its native rate + metadata.csv) into `root` (default:
    default_root()/name) unless a complete, matching generation is already there.

    Atomic: everything is written into a temporary sibling folder, the marker last, and the
    folder is renamed into place, so an interrupted run never leaves a folder that looks
    complete. A folder without our marker is never overwritten (it may be the user's data).
    """
    s = spec(name)
    target = Path(root).expanduser() if root is not None else default_root() / name
    if is_complete(target, s):
        return target
    if target.exists() and (target.is_file() or (any(target.iterdir()) and _read_marker(target) is None)):
        raise CorpusError(f"{name}: {target} exists and is not a synthetic corpus folder (no {MARKER}); "
                          "refusing to overwrite it: remove it or pass another root")
    target.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale_tmp(target)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}"
    tmp.mkdir()
    try:
        _write_corpus(s, tmp)
        if is_complete(target, s):  # a concurrent process finished first: keep its result
            shutil.rmtree(tmp)
            return target
        trash = None
        if target.exists():  # stale generation (other version/config, or damaged): swap it out
            trash = target.parent / f".{target.name}.old-{os.getpid()}-{os.urandom(4).hex()}"
            os.replace(target, trash)
        try:
            os.replace(tmp, target)
        except OSError:
            if not is_complete(target, s):  # lost a race only if the winner's folder is complete
                raise
            shutil.rmtree(tmp, ignore_errors=True)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def generate_all(root: str | os.PathLike | None = None) -> dict[str, Path]:
    """Generate every corpus below `root` (default: default_root()); returns name -> folder."""
    base = Path(root).expanduser() if root is not None else default_root()
    return {n: generate(n, base / n) for n in CORPORA}


def load(name: str, root: str | os.PathLike | None = None, **options):
    """The unified `datasets.Dataset` of synthetic corpus `name`, generated on first use.

    `root` is the corpus folder itself (default: default_root()/name)."""
    if options:
        raise CorpusError(f"{name}: synthetic corpora take no options, got {sorted(options)}")
    s = spec(name)
    folder = generate(name, root)
    return build_dataset(name, folder, records(s, folder))


def load_all(root: str | os.PathLike | None = None) -> dict:
    """All synthetic corpora; `root` is their parent folder (default: default_root())."""
    base = Path(root).expanduser() if root is not None else default_root()
    return {n: load(n, base / n) for n in CORPORA}


def records(s: CorpusSpec, folder: Path) -> list[dict]:
    """Loader records from the metadata CSV (the corpus' own label codes are mapped here)."""
    meta = folder / METADATA
    if not meta.is_file():
        raise CorpusError(f"{s.name}: {meta} is missing")
    codes = dict(s.label_map)
    out = []
    with open(meta, newline="") as f:
        reader = csv.DictReader(f)
        missing = set(METADATA_FIELDS) - set(reader.fieldnames or ())
        if missing:
            raise CorpusError(f"{s.name}: {meta} lacks columns {sorted(missing)}")
        for row in reader:
            path = folder / row["path"]
            out.append({
                "utt": Path(row["path"]).with_suffix("").as_posix(),
                "path": str(path),
                "speaker": row["speaker"],
                "gender": row["gender"],
                "language": s.language_tag,
                "emotion": map_label(s.name, row["label"], codes, path),
                "raw_label": row["label"],
                "text": row["sentence"],
                "duration": float(row["duration"]),
            })
    return out


# ----------------------------------------------------------------------------------------
# Corpus plan: speakers, sentences, per-corpus cue profiles
# ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Speaker:
    code: str
    gender: str
    f0: float  # mean F0, Hz
    vtl: float  # formant scaling (shorter vocal tract: > 1)
    jitter: float
    shimmer: float
    breath: float
    oq: float
    rate: float
    expressive: float  # speaker-specific strength of emotional expression


def _speakers(s: CorpusSpec) -> list[Speaker]:
    rng = np.random.default_rng(_seed(s.name, "speakers"))
    p = s.population
    genders = ["female"] * p.n_female + ["male"] * p.n_male
    order = rng.permutation(len(genders))  # interleave genders across speaker numbers
    out = []
    for i, gi in enumerate(order, start=1):
        g = genders[gi]
        mu, sd = p.f0_female if g == "female" else p.f0_male
        out.append(Speaker(
            code=s.speaker_fmt.format(g=g[0], i=i),
            gender=g,
            f0=float(np.clip(rng.normal(mu, sd), 0.75 * mu, 1.3 * mu)),
            vtl=float((1.17 if g == "female" else 1.0) * np.exp(rng.normal(0, 0.04))),
            jitter=float(p.jitter * np.exp(rng.normal(0, 0.25))),
            shimmer=float(p.shimmer * np.exp(rng.normal(0, 0.25))),
            breath=float((0.05 if g == "female" else 0.03) * np.exp(rng.normal(0, 0.3))),
            oq=float((0.65 if g == "female" else 0.58) + rng.normal(0, 0.03)),
            rate=float(np.exp(rng.normal(0, 0.07))),
            expressive=float(rng.uniform(0.75, 1.25)),
        ))
    return out


def _syllable(lang: Language, rng) -> tuple[list[str], str, list[str], bool]:
    pats = [p for p, _ in lang.patterns]
    w = np.array([w for _, w in lang.patterns], dtype=float)
    pat = pats[rng.choice(len(pats), p=w / w.sum())]
    vpos = pat.index("V")
    n_on, n_co = vpos, len(pat) - vpos - 1
    if n_on == 2 and lang.clusters:
        onset = list(lang.clusters[rng.integers(len(lang.clusters))])
    else:
        onset = [lang.consonants[rng.integers(len(lang.consonants))] for _ in range(n_on)]
    codas = lang.codas or lang.consonants
    coda = [codas[rng.integers(len(codas))] for _ in range(n_co)]
    vowel = lang.vowels[rng.integers(len(lang.vowels))]
    long = bool(rng.random() < lang.long_vowels)
    return onset, vowel, coda, long


def _sentences(s: CorpusSpec) -> list[list[tuple]]:
    """Each sentence: syllables (onset, vowel, coda, long, stressed), 5-8 syllables in 2-4 words."""
    rng = np.random.default_rng(_seed(s.name, "sentences"))
    lang = s.language
    out = []
    for _ in range(s.n_sentences):
        while True:
            words = [int(rng.integers(1, 4)) for _ in range(int(rng.integers(2, 5)))]
            if 5 <= sum(words) <= 8:
                break
        sent = []
        for n in words:
            stress_at = {"initial": 0, "final": n - 1, "penultimate": max(n - 2, 0)}[lang.stress]
            for j in range(n):
                onset, vowel, coda, long = _syllable(lang, rng)
                sent.append((onset, vowel, coda, long, j == stress_at))
        out.append(sent)
    return out


def _corpus_cues(s: CorpusSpec) -> dict[str, Cues]:
    """The table's cues scaled by the corpus' acting strength, each deviation from neutral
    perturbed by a corpus-specific factor: the same emotion is expressed somewhat differently
    in every corpus (one source of cross-corpus shift)."""
    rng = np.random.default_rng(_seed(s.name, "cues"))
    neutral = asdict(Cues())
    out = {}
    for emo in s.emotions:
        c = asdict(EMOTION_CUES[emo])
        new = {}
        for k in sorted(c):
            f = s.acting * float(np.exp(rng.normal(0, s.cue_spread)))
            if k in _ADDITIVE:
                new[k] = neutral[k] + f * (c[k] - neutral[k])
            else:
                new[k] = float(np.exp(f * np.log(c[k] / neutral[k]))) * neutral[k]
        out[emo] = Cues(**new)
    return out


def _utterance_cues(c: Cues, spk: Speaker, rng) -> Cues:
    """Speaker expressiveness and per-take variation (no two takes are alike)."""
    d = asdict(c)
    neutral = asdict(Cues())
    e = spk.expressive
    out = {}
    for k in sorted(d):
        if k in _ADDITIVE:
            out[k] = neutral[k] + e * (d[k] - neutral[k])
        else:
            out[k] = float(np.exp(e * np.log(d[k] / neutral[k]))) * neutral[k]
    out["level_st"] += rng.normal(0, 0.8)
    out["loud_db"] += rng.normal(0, 1.5)
    out["final_st"] += rng.normal(0, 0.8)
    out["oq"] += rng.normal(0, 0.02)
    for k, sd in (("range", 0.15), ("rate", 0.06), ("tilt", 0.12), ("jitter", 0.2), ("shimmer", 0.2),
                  ("breath", 0.2)):
        out[k] *= float(np.exp(rng.normal(0, sd)))
    return Cues(**out)


# ----------------------------------------------------------------------------------------
# Synthesis
# ----------------------------------------------------------------------------------------

@dataclass
class _Seg:
    dur: float
    kind: str  # vowel | plosive-closure | burst | aspiration | fricative | nasal | approximant | aspirate | silence
    formants: np.ndarray  # F1..F3 (Hz, before speaker scaling)
    av: float = 0.0  # voicing amplitude
    asp: float = 0.0  # aspiration amplitude (through the vocal tract)
    fric: float = 0.0  # frication amplitude (parallel branch)
    fric_cf: float = 4000.0
    fric_bw: float = 1.0
    stressed: bool = False
    syllable: int = -1


def _plan(sentence, lang: Language, cues: Cues, rng) -> list[_Seg]:
    """Phone segments with durations (s) for one take of a sentence."""
    segs: list[_Seg] = []
    n_syl = len(sentence)
    for si, (onset, vowel, coda, long, stressed) in enumerate(sentence):
        vf = np.array(VOWELS[vowel], dtype=np.float64)
        prec = cues.precision
        vdur = 0.11
        if lang.rhythm == "stress":
            vdur *= 1.6 if stressed else 0.6
            if not stressed:
                prec *= 0.6
        elif lang.rhythm == "syllable":
            vdur *= 1.15 if stressed else 1.0
        if long:
            vdur *= 2.0
        if si == n_syl - 1:
            vdur *= 1.35 * cues.final_len
        vf = SCHWA + prec * (vf - SCHWA)
        vamp = 1.0 if stressed else 0.7
        for ph in onset:
            segs.extend(_consonant(ph, lang, si, vamp))
        segs.append(_Seg(vdur, "vowel", vf, av=vamp, stressed=stressed, syllable=si))
        for ph in coda:
            segs.extend(_consonant(ph, lang, si, vamp))
    for sg in segs:
        sg.dur *= float(np.exp(rng.normal(0, 0.1)))
    return segs


def _consonant(ph: str, lang: Language, si: int, vamp: float) -> list[_Seg]:
    c = CONSONANTS[ph]
    loci = np.array(c.loci, dtype=np.float64)
    a = 10 ** (c.amp_db / 20)
    d = _CONS_DUR[c.kind]
    if c.kind == "plosive":
        out = [_Seg(d, "closure", loci, av=0.08 if c.voiced else 0.0, syllable=si),
               _Seg(0.012, "burst", loci, av=0.0, fric=a * 1.5, fric_cf=c.noise[0], fric_bw=c.noise[1], syllable=si)]
        if lang.aspirated and not c.voiced:
            out.append(_Seg(0.035, "aspiration", loci, asp=0.3 * vamp, syllable=si))
        return out
    if c.kind == "fricative":
        return [_Seg(d, "fricative", loci, av=0.35 if c.voiced else 0.0, fric=a, fric_cf=c.noise[0],
                     fric_bw=c.noise[1], syllable=si)]
    if c.kind == "aspirate":
        return [_Seg(d, "aspirate", loci, asp=a * 3.0, syllable=si)]
    kind_av = {"nasal": 0.3, "approximant": 0.55}[c.kind]
    return [_Seg(d, c.kind, loci, av=kind_av * vamp * (a / 10 ** (-6 / 20)) ** 0.5, syllable=si)]


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Moving average with a Hann kernel along axis 0 (edges held): coarticulation, ramps."""
    if width <= 1:
        return x
    from scipy.ndimage import convolve1d

    k = np.hanning(width + 2)[1:-1]
    return convolve1d(x, k / k.sum(), axis=0, mode="nearest")


def _colored_noise(n: int, exponent: float, rng) -> np.ndarray:
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


def _factors(m: int) -> list[int]:
    out, p = [1], 2
    while m > 1:
        while m % p == 0:
            out.append(p)
            m //= p
        p += 1
    return out


def _glottal(frac: np.ndarray, oq: float) -> np.ndarray:
    """Rosenberg-C glottal flow derivative over one normalised period (LF-like: gradual
    opening, abrupt closure at t = oq, closed phase after)."""
    tp = 0.65 * oq
    tn = oq - tp
    out = np.zeros_like(frac)
    op = frac < tp
    cl = (frac >= tp) & (frac < oq)
    out[op] = (np.pi / (2 * tp)) * np.sin(np.pi * frac[op] / tp)
    out[cl] = -(np.pi / (2 * tn)) * np.sin(0.5 * np.pi * (frac[cl] - tp) / tn)
    return out


def synthesize(s: CorpusSpec, spk: Speaker, sentence, cues: Cues, rng) -> tuple[np.ndarray, float]:
    """One take: returns (float waveform at s.sample_rate before the channel, mean F0 in Hz)."""
    from scipy import fft as sfft  # lazy: `import jaxser.corpora` must stay cheap
    from scipy.signal import lfilter, sosfilt

    sr = s.sample_rate
    lang = s.language
    segs = _plan(sentence, lang, cues, rng)
    # rescale the intrinsic durations to the language's syllable rate (x speaker, emotion),
    # keeping the relative timing (long vowels, clusters, stress, final lengthening)
    speech = sum(sg.dur for sg in segs)
    want = len(sentence) / (lang.rate * cues.rate * spk.rate)
    lead, trail = float(rng.uniform(0.08, 0.18)), float(rng.uniform(0.10, 0.22))
    want = float(np.clip(want, 1.02 - lead - trail, 2.45 - lead - trail))  # 1.0-2.5 s files
    scale = want / speech
    for sg in segs:
        sg.dur *= scale
    total = lead + want + trail
    n = int(round(total * sr))

    # --- frame grid for the filter: 4-6 ms hop (a power of two), Hann windows 4 hops long,
    # FFT size with room for 20 ms of filter tail: bandwidths >= 80 Hz decay by 1/e in
    # 1/(pi B) = 4 ms, so 20 ms is > 40 dB down ---
    hop = 1 << int(np.ceil(np.log2(0.004 * sr)))
    win = 4 * hop
    m = int(np.ceil((win + 0.020 * sr) / hop))
    while max(_factors(m)) > 5:  # an FFT-friendly size (2, 3, 5-smooth)
        m += 1
    nfft = m * hop
    n_frames = (n + 2 * win) // hop + 1
    tf = (np.arange(n_frames) * hop + win / 2 - win) / sr  # frame centres, seconds

    # --- segment tracks at frame rate ---
    bounds = lead + np.cumsum([0.0] + [sg.dur for sg in segs])
    idx = np.searchsorted(bounds, tf, side="right") - 1
    inside = (idx >= 0) & (idx < len(segs))
    idx_c = np.clip(idx, 0, len(segs) - 1)
    table = np.array([[*sg.formants, sg.av, sg.asp, sg.fric, sg.fric_cf, sg.fric_bw] for sg in segs])
    tr = table[idx_c]
    # outside speech: formants held at the neighbouring segment, no excitation
    tr[~inside, 3:6] = 0.0
    form = _smooth(tr[:, :3], max(3, int(round(0.030 * sr / hop))))
    amps = _smooth(tr[:, 3:6], 3)
    av, asp = amps[:, 0], amps[:, 1]

    # --- F0 contour (semitones re the speaker/emotion level) ---
    t0, t1 = lead, lead + want
    rel = np.clip((tf - t0) / max(t1 - t0, 1e-3), 0, 1)
    contour = cues.range * 3.0 * (0.5 - rel)  # declination
    vowel_ids = [i for i, sg in enumerate(segs) if sg.kind == "vowel" and sg.stressed]
    for i in vowel_ids:
        c = 0.5 * (bounds[i] + bounds[i + 1])
        w = 0.6 * segs[i].dur + 0.03
        h = cues.range * float(rng.uniform(1.5, 3.5))
        contour = contour + h * np.exp(-0.5 * ((tf - c) / w) ** 2)
    last = [i for i, sg in enumerate(segs) if sg.kind == "vowel"][-1]
    fs_ = bounds[last]
    contour = contour + cues.final_st * np.clip((tf - fs_) / max(bounds[last + 1] - fs_, 1e-3), 0, 1) ** 1.5 \
        * (1.0 if cues.final_st > 0 else min(cues.range, 1.5))
    micro = _smooth(rng.standard_normal(n_frames), max(3, int(round(0.06 * sr / hop))))
    contour = contour + 0.35 * micro / (micro.std() + 1e-9)
    if cues.tremor_st:
        contour = contour + cues.tremor_st * np.sin(2 * np.pi * rng.uniform(5, 7) * tf + rng.uniform(0, 6.28))
    f0_level = spk.f0 * 2 ** (cues.level_st / 12)
    f0_f = np.clip(f0_level * 2 ** (contour / 12), 55.0, 650.0)

    # --- sample-rate source ---
    ts = np.arange(n) / sr
    f0 = np.interp(ts, tf, f0_f)
    phase0 = np.cumsum(f0 / sr)
    n_cyc = int(phase0[-1]) + 3
    jit = np.clip(rng.standard_normal(n_cyc), -3, 3) * spk.jitter * cues.jitter
    f0j = f0 * (1 + jit[phase0.astype(np.int64)])
    phase = np.cumsum(f0j / sr) + rng.uniform(0, 1)
    cyc = phase.astype(np.int64)
    frac = phase - cyc
    shim = np.clip(1 + spk.shimmer * cues.shimmer * rng.standard_normal(cyc[-1] + 2), 0.3, 2.0)
    oq = float(np.clip(spk.oq + cues.oq, 0.35, 0.85))
    av_s = np.interp(ts, tf, av)
    voiced = _glottal(frac, oq) * shim[cyc] * av_s
    fc = 1400.0 * cues.tilt * (1.15 if spk.gender == "female" else 1.0)
    a = float(np.exp(-2 * np.pi * min(fc, 0.45 * sr) / sr))
    voiced = lfilter([1 - a], [1, -a], voiced)
    if np.any(av_s > 0.5):
        voiced /= np.sqrt(np.mean(voiced[av_s > 0.5] ** 2)) + 1e-9
    breath = spk.breath * cues.breath
    pulse_mod = 0.5 + 0.5 * (frac < oq)  # aspiration is stronger while the glottis is open
    asp_s = np.interp(ts, tf, asp) + breath * av_s * pulse_mod
    noise_a = rng.standard_normal(n) * asp_s
    white = rng.standard_normal(n)

    # --- time-varying vocal-tract filter in the STFT domain ---
    vt = spk.vtl * cues.formants
    F = np.empty((n_frames, 6))
    F[:, :3] = form * vt
    F[:, 3] = 3500.0 * vt
    F[:, 4] = 4500.0 * vt
    F[:, 5] = 5500.0 * vt
    B = np.array([80.0, 100.0, 150.0, 220.0, 280.0, 350.0])
    B = B * (1 + 0.5 * (vt - 1))
    Bt = np.broadcast_to(B, F.shape).copy()
    Bt[:, 0] += 150.0 * breath  # breathy voice widens F1 (glottal losses)
    keep = F.max(axis=0) < 0.45 * sr
    F, Bt = F[:, keep], Bt[:, keep]
    frames = _frames(voiced + noise_a, hop, win, n_frames)
    active = frames.any(axis=1)  # silent frames (pauses, closures) need no filtering
    r = np.exp(-np.pi * Bt[active] / sr)
    c = 2 * r * np.cos(2 * np.pi * F[active] / sr)
    # each frame's all-pole polynomial A(z) = prod_k (1 - c_k z^-1 + r_k^2 z^-2), evaluated on
    # the FFT grid with one batched rfft; H = A(1) / A(z): Klatt resonators, unity gain at DC
    poly = np.zeros((len(r), 2 * F.shape[1] + 1))
    poly[:, 0] = 1.0
    for k in range(F.shape[1]):
        prev = poly.copy()
        poly[:, 1:] -= c[:, k, None] * prev[:, :-1]
        poly[:, 2:] += (r[:, k] ** 2)[:, None] * prev[:, :-2]
    # (float64 FFT: the product polynomial's coefficients span a wide range)
    H = (poly.sum(axis=1)[:, None] / sfft.rfft(poly, nfft, axis=1)).astype(np.complex64)
    y = _ola_filter(frames, active, H, hop, win, nfft, n)

    # frication (parallel branch): for each place of articulation in the sentence, band-pass
    # noise gated by that place's amplitude track, at its level re the vowels' RMS
    vowel_rms = np.sqrt(np.mean(y[av_s > 0.5] ** 2)) if np.any(av_s > 0.5) else 1.0
    places = sorted({(sg.fric_cf, sg.fric_bw) for sg in segs if sg.fric > 0})
    for cf, bw in places:
        gate = np.array([sg.fric if (sg.fric_cf, sg.fric_bw) == (cf, bw) else 0.0 for sg in segs])[idx_c]
        gate[~inside] = 0.0
        gate = np.interp(ts, tf, _smooth(gate, 3))
        cf = cf * spk.vtl ** 0.5
        lo, hi = cf * 2 ** (-bw / 2), min(cf * 2 ** (bw / 2), 0.45 * sr)
        if lo >= 0.8 * hi:
            continue  # the band lies above this corpus' Nyquist frequency
        band = sosfilt(_butter(2, float(lo), float(hi), sr), white)
        y += band / (np.sqrt(np.mean(band ** 2)) + 1e-12) * gate * (0.5 * vowel_rms)
    voiced_mask = av_s > 0.5
    f0_mean = float(np.exp(np.mean(np.log(f0j[voiced_mask])))) if np.any(voiced_mask) else float("nan")

    # --- level: speech RMS set by the emotion's intensity (dB re the corpus' neutral level) ---
    span = slice(int(lead * sr), int((lead + want) * sr))
    y = y / (np.sqrt(np.mean(y[span] ** 2)) + 1e-12)
    y *= 10 ** ((s.channel.level_db + cues.loud_db) / 20)
    return y, f0_mean


def _frames(x: np.ndarray, hop: int, win: int, n_frames: int) -> np.ndarray:
    """Periodic-Hann-windowed frames of x (padded by one window at the start), 75 % overlap."""
    xp = np.zeros((n_frames - 1) * hop + win, dtype=np.float32)
    xp[win:win + x.size] = x
    window = np.hanning(win + 1)[:-1].astype(np.float32)  # sums to 2 at 75 % overlap
    return np.lib.stride_tricks.sliding_window_view(xp, win)[::hop][:n_frames] * window


def _ola_filter(frames: np.ndarray, active: np.ndarray, H: np.ndarray, hop: int, win: int, nfft: int,
                n: int) -> np.ndarray:
    """Time-varying filtering: each active frame times its frequency response H[i] (zero-padded
    to nfft so the filter tail does not wrap around), then overlap-added; Hann frames at 75 %
    overlap add up to a constant 2."""
    from scipy import fft as sfft

    n_frames = frames.shape[0]
    m = nfft // hop
    yf = np.zeros((n_frames, nfft), dtype=np.float32)
    yf[active] = sfft.irfft(sfft.rfft(frames[active], nfft, axis=1) * H, nfft, axis=1)
    out = np.zeros((n_frames + m) * hop, dtype=np.float64)
    for j in range(m):  # overlap-add as m shifted slabs, each one vectorised
        out[j * hop:j * hop + n_frames * hop] += yf[:, j * hop:(j + 1) * hop].reshape(-1)
    return out[win:win + n] / 2.0


def _rir(s: CorpusSpec, spk_code: str) -> np.ndarray:
    """Synthetic room impulse response: direct path, early reflections and an exponentially
    decaying, slightly low-passed noise tail (Polack's model); one per speaker session."""
    ch = s.channel
    sr = s.sample_rate
    rng = np.random.default_rng(_seed(s.name, "rir", spk_code))
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
def _butter(order: int, lo: float, hi: float, sr: int) -> np.ndarray:
    from scipy.signal import butter

    return butter(order, [lo, hi], btype="bandpass", fs=sr, output="sos")


def channel(s: CorpusSpec, y: np.ndarray, rir: np.ndarray, rng) -> np.ndarray:
    """The recording chain of corpus `s` applied to one utterance."""
    from scipy.signal import fftconvolve, resample_poly, sosfilt

    ch = s.channel
    sr = s.sample_rate
    n = y.size
    y = fftconvolve(y, rir)[:n]
    noise_rms = 10 ** ((ch.level_db - ch.snr_db) / 20)
    y = y + noise_rms * _colored_noise(n, ch.noise_color, rng)
    if ch.hum_hz:
        t = np.arange(n) / sr
        hum = np.sin(2 * np.pi * ch.hum_hz * t) + 0.3 * np.sin(2 * np.pi * 3 * ch.hum_hz * t + 0.7)
        y = y + 0.7 * noise_rms * hum
    lo, hi = ch.band
    if ch.telephone:
        sos = _butter(6, lo, hi, sr)
        y = resample_poly(sosfilt(sos, y), 8000, sr)
        mu = 255.0
        peak = 10 ** ((ch.level_db + 16) / 20)  # the codec's clipping point
        x = np.clip(y / peak, -1, 1)
        q = np.round((np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)) * 127) / 127  # 8-bit mu-law
        y = np.sign(q) * np.expm1(np.abs(q) * np.log1p(mu)) / mu * peak
        y = sosfilt(sos, resample_poly(y, sr, 8000)[:n])  # the line/handset band limits again
    else:
        sos = _butter(4, lo, min(hi, 0.45 * sr), sr)
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


def _write_wav(path: Path, wave: np.ndarray, sr: int) -> None:
    """16-bit PCM WAV, encoded in memory and written in one call (libsndfile's many small
    seeks and writes to a file cost ~5x more wall time per file)."""
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, wave, sr, subtype="PCM_16", format="WAV")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def _write_corpus(s: CorpusSpec, folder: Path) -> None:
    """Synthesise every utterance into `folder`, then metadata.csv, then the marker (last).

    Utterances are independent (each has its own seeded generator), so they run on a few
    threads (numpy/scipy release the GIL in their kernels); the output does not depend on
    the number of threads or on scheduling."""
    from concurrent.futures import ThreadPoolExecutor

    speakers = _speakers(s)
    sentences = _sentences(s)
    cues = _corpus_cues(s)
    codes = s.codes
    rirs = {spk.code: _rir(s, spk.code) for spk in speakers}

    def one(job):
        spk, emo, si = job
        sid = f"s{si + 1:02d}"
        rng = np.random.default_rng(_seed(s.name, spk.code, emo, sid))
        uc = _utterance_cues(cues[emo], spk, rng)
        y, f0 = synthesize(s, spk, sentences[si], uc, rng)
        wav = channel(s, y, rirs[spk.code], rng)
        rel = s.layout.format(speaker=spk.code, sentence=sid, code=codes[emo])
        _write_wav(folder / rel, wav, s.sample_rate)
        return {"path": rel, "speaker": spk.code, "gender": spk.gender, "label": codes[emo], "sentence": sid,
                "duration": f"{wav.size / s.sample_rate:.6f}", "f0_hz": f"{f0:.2f}"}

    jobs = [(spk, emo, si) for spk in speakers for emo in s.emotions for si in range(len(sentences))]
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        rows = list(pool.map(one, jobs))
    if len({r["path"] for r in rows}) != len(rows):
        raise CorpusError(f"{s.name}: layout {s.layout!r} maps two utterances to one file")
    sizes = {r["path"]: (folder / r["path"]).stat().st_size for r in rows}
    with open(folder / METADATA, "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=METADATA_FIELDS, lineterminator="\n")
        wr.writeheader()
        wr.writerows(rows)
    sizes[METADATA] = (folder / METADATA).stat().st_size
    marker = {"version": VERSION, "config": s.config_hash(), "corpus": s.name, "n_files": len(sizes),
              "sizes": sizes}
    atomic_write_text(folder / MARKER, json.dumps(marker, indent=1, sort_keys=True))  # last: the folder is complete
