"""Synthetic emotional-speech corpora: the embedded default that needs no data or weights.

Four small acted-emotion corpora in fictional languages, generated on first use by a
source-filter synthesiser (numpy/scipy only) and cached on disk. They are built to differ the
way real corpora differ -- language (vowel/consonant inventory, syllable structure, rhythm),
speaker population, recording channel and acting style -- while emotion is carried by the
paralinguistic cues the literature documents (docs/synthetic.md has the cue table and the
sources), so that same-corpus SER is learnable and cross-corpus transfer is real but imperfect.

The package, by concern:
  * `specs`   -- phone inventory, emotion cue table, the corpus declaration types, `VERSION`;
  * `voice`   -- speakers, sentences, emotion cues per take, and the formant synthesiser;
  * `channel` -- the recording chain (room, noise, hum, band limits or telephone, levels);
  * `cache`   -- the generation folder: default location, completion marker, atomic build;
  * `dimensions` -- arousal/valence/dominance targets of each take, from its cues;
  * here      -- the four corpora (`CORPORA`), `generate` and `load` for the registry.

Generation is deterministic (seeds derive from corpus names, never from `hash()`), atomic
(built in a temporary sibling folder, renamed into place, a marker file written last) and
cached (a complete folder whose marker matches the configuration is never rewritten).
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

from jaxser.corpora.schema import CorpusError, build_dataset, map_label
from jaxser.corpora.synthetic.cache import (MARKER, METADATA, METADATA_FIELDS, default_root, ensure_generated,
                                            is_complete)
from jaxser.corpora.synthetic.channel import apply_channel
from jaxser.corpora.synthetic.specs import (CONSONANTS, EMOTION_CUES, VERSION, VOWELS, Channel, Consonant,
                                            CorpusSpec, Cues, Language, Population)
from jaxser.corpora.synthetic.dimensions import targets
from jaxser.corpora.synthetic.voice import Speaker, corpus_cues, speakers, synthesize, take_cues

__all__ = [
    "CORPORA", "VERSION", "METADATA", "MARKER", "METADATA_FIELDS", "VOWELS", "CONSONANTS", "EMOTION_CUES",
    "Consonant", "Language", "Cues", "Channel", "Population", "CorpusSpec", "Speaker",
    "default_root", "spec", "is_complete", "generate", "generate_all", "load", "load_all", "records",
    "synthesize", "apply_channel",
]

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


def spec(name: str) -> CorpusSpec:
    """The declaration of synthetic corpus `name` (a CorpusError names the known ones)."""
    try:
        return CORPORA[name]
    except KeyError:
        raise CorpusError(f"unknown synthetic corpus {name!r}; known: {', '.join(CORPORA)}") from None


def generate(name: str, root: str | os.PathLike | None = None) -> Path:
    """Write corpus `name` (WAVs at its native rate + metadata.csv) into `root` (default:
    default_root()/name) unless a complete, matching generation is already there; atomic and
    never overwriting a folder that is not ours (`cache.ensure_generated`)."""
    s = spec(name)
    target = Path(root).expanduser() if root is not None else default_root() / name
    return ensure_generated(s, target)


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
    return build_dataset(name, folder, records(s, folder), dimensions=s.dimensions)


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
    voices = {spk.code: spk for spk in speakers(s)}
    cues = corpus_cues(s)
    out = []
    with open(meta, newline="") as f:
        reader = csv.DictReader(f)
        missing = set(METADATA_FIELDS) - set(reader.fieldnames or ())
        if missing:
            raise CorpusError(f"{s.name}: {meta} lacks columns {sorted(missing)}")
        for row in reader:
            path = folder / row["path"]
            emotion = map_label(s.name, row["label"], codes, path)
            spk = voices.get(row["speaker"])
            if spk is None:
                raise CorpusError(f"{s.name}: {meta}: speaker {row['speaker']!r} is not one of the corpus' voices")
            uc, _ = take_cues(s, spk, cues, emotion, row["sentence"])
            out.append({
                "utt": Path(row["path"]).with_suffix("").as_posix(),
                "path": str(path),
                "speaker": row["speaker"],
                "gender": row["gender"],
                "language": s.language_tag,
                "emotion": emotion,
                "raw_label": row["label"],
                "text": row["sentence"],
                "duration": float(row["duration"]),
                **targets(s, emotion, row["sentence"], spk.code, uc, spk.expressive),
            })
    return out
