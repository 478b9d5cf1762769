"""Arousal, valence and dominance targets of the synthetic takes, in [0, 1].

Computed when a corpus is loaded, from the same seeded per-take cues the synthesiser used
(`voice.take_cues`), so the generated audio, metadata and cache keys are those of the
categorical corpora. Arousal rises with vocal intensity, F0 range and level and speaking
rate; dominance with intensity, spectral effort and pressed phonation plus the category's
potency; valence is the category's pleasantness and the smiling formant shift, plus a part
drawn per take that nothing in the audio carries.
"""
from __future__ import annotations

import math

import numpy as np

from jaxser.corpora.synthetic.specs import (EMOTION_DOMINANCE, EMOTION_VALENCE, VALENCE_UNOBSERVED_SD, CorpusSpec,
                                            Cues, stable_seed)


def _squash(x: float) -> float:
    """Logistic map to (0, 1), rounded so the targets are the same on every platform."""
    return round(1.0 / (1.0 + math.exp(-x)), 6)


def targets(s: CorpusSpec, emotion: str, sentence: str, speaker: str, cues: Cues, expressive: float) -> dict:
    """{arousal, valence, dominance} of one take from the cues it was synthesised with."""
    arousal = 0.09 * cues.loud_db + 0.7 * math.log(cues.range) + 0.07 * cues.level_st + 1.2 * math.log(cues.rate)
    dominance = (0.07 * cues.loud_db + 0.6 * math.log(cues.tilt) - 2.5 * cues.oq
                 + s.acting * expressive * EMOTION_DOMINANCE[emotion])
    hidden = np.random.default_rng(stable_seed(s.name, speaker, emotion, sentence, "valence"))
    valence = (1.6 * s.acting * expressive * EMOTION_VALENCE[emotion] + 12.0 * math.log(cues.formants)
               + float(hidden.normal(0.0, VALENCE_UNOBSERVED_SD)))
    return {"arousal": _squash(1.5 * arousal), "valence": _squash(valence), "dominance": _squash(1.5 * dominance)}
