"""The dimensional task's targets: which dimensions exist, each corpus' declared scale, and
the corpus-free [0, 1] scale every target is mapped to before training and scoring.

A corpus rates arousal, valence and dominance on its own scale (IEMOCAP 1-5, MSP-Podcast
1-7, ...), declared by its module as ``DIMENSIONS = {"arousal": (lo, hi), ...}``. Every
target is mapped to [0, 1] by that documented range -- never by statistics of the data --
so a cross-corpus cell compares like with like and no statistic of a test corpus is used.
"""
from __future__ import annotations

import numpy as np

from jaxser.errors import UserError

#: the dimensions a study may ask for, in report order
DIMENSIONS = ("arousal", "valence", "dominance")


class DimensionError(UserError, ValueError):
    """Dimensional targets that cannot be used (no declared scale, values outside it)."""


def dimension_ranges(name_or_dataset) -> dict[str, tuple[float, float]]:
    """A corpus' declared dimension scales, dimension -> (lo, hi): its module's (or its
    synthetic spec's) ``DIMENSIONS``. ``name_or_dataset``: a registry name or a dataset (its
    ``corpus`` column names it).

    Until ``jaxser.corpora.dimension_ranges`` exists, this reads the module attribute itself;
    once it exists, this defers to it."""
    from jaxser import corpora

    shared = getattr(corpora, "dimension_ranges", None)
    if shared is not None:
        return dict(shared(name_or_dataset))
    name = name_or_dataset if isinstance(name_or_dataset, str) else str(name_or_dataset[0]["corpus"])
    key = corpora.canonical_name(name)
    declared = None
    from jaxser.corpora.synthetic import CORPORA as synthetic

    if key in synthetic:
        from jaxser.corpora.synthetic import spec

        declared = getattr(spec(key), "dimensions", None) or getattr(spec(key), "DIMENSIONS", None)
    elif key in corpora.available():
        declared = getattr(corpora.module(key), "DIMENSIONS", None)
    if not declared:
        raise DimensionError(f"corpus {name}: declares no arousal/valence/dominance scale; the dimensional task "
                             "needs corpora that rate them (IEMOCAP, MSP-IMPROV, MSP-Podcast, or a manifest with "
                             "arousal/valence/dominance columns and their range)")
    return {d: (float(lo), float(hi)) for d, (lo, hi) in dict(declared).items()}


def unit_targets(values: np.ndarray, corpus: str, dims, ranges: dict) -> np.ndarray:
    """Targets [N, K] of one corpus on its own scale -> the [0, 1] scale, by its declared
    ranges (NaN stays NaN: a row without that rating). A value outside the declared range
    means the declaration or the labels are wrong: refused, naming the corpus and dimension."""
    values = np.asarray(values, np.float64)
    out = np.empty_like(values)
    for k, d in enumerate(dims):
        if d not in ranges:
            raise DimensionError(f"corpus {corpus}: has no declared {d} scale (declares {sorted(ranges)}); "
                                 f"choose dimensions among them ([run] dimensions / --dimensions)")
        lo, hi = ranges[d]
        if not hi > lo:
            raise DimensionError(f"corpus {corpus}: declared {d} range ({lo}, {hi}) is empty")
        v = values[:, k]
        bad = np.isfinite(v) & ((v < lo) | (v > hi))
        if bad.any():
            raise DimensionError(f"corpus {corpus}: {d} = {v[np.argmax(bad)]:g} is outside its declared range "
                                 f"[{lo:g}, {hi:g}] ({int(bad.sum())} values); fix the labels or the declared scale")
        out[:, k] = (v - lo) / (hi - lo)
    return out


def corpus_targets(ds, corpus: str, dims) -> np.ndarray:
    """The [0, 1]-scaled targets [N, K] of a corpus dataset (NaN where it lacks a rating or
    a dimension column)."""
    cols = set(ds.column_names)
    raw = np.stack([np.asarray(ds[d], np.float64) if d in cols else np.full(len(ds), np.nan) for d in dims], 1) \
        if len(ds) else np.zeros((0, len(dims)))
    if not np.isfinite(raw).any():
        raise DimensionError(f"corpus {corpus}: no utterance carries a rating of {', '.join(dims)}; the dimensional "
                             "task needs corpora with arousal/valence/dominance ratings")
    return unit_targets(raw, corpus, dims, dimension_ranges(corpus))
