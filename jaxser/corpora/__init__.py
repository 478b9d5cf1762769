"""Corpus registry: `load(name, root)` returns the unified `datasets.Dataset`.

One module per corpus; each exposes `NAME`, `LANGUAGE`, `LABEL_MAP` (its own codes to the
canonical emotions) and `records(root, **options) -> list[dict]`; a corpus rated on
arousal/valence/dominance also declares `DIMENSIONS` (the documented scale of each, read by
`dimension_ranges`). Modules are imported only when used, so `import jaxser.corpora` stays cheap.
"""
from __future__ import annotations

import importlib
import inspect

from jaxser.corpora.schema import (CANONICAL_EMOTIONS, COLUMNS, EMOTIONS, CorpusError, CorpusRootError,  # noqa: F401
                                   DIMENSIONS, UnknownLabelError,
                                   build_dataset, content_digests, duplicate_groups, fingerprint)

#: registry name -> module (under jaxser.corpora)
_MODULES = {
    "cremad": "crema_d",
    "ravdess": "ravdess",
    "tess": "tess",
    "emodb": "emodb",
    "savee": "savee",
    "emovo": "emovo",
    "iemocap": "iemocap",
    "urdu": "urdu",
    "baved": "baved",
    "aesdd": "aesdd",
    "shemo": "shemo",
    "subesco": "subesco",
    "cafe": "cafe",
    # EmoBox corpora
    "ased": "ased",
    "asvpesd": "asvpesd",
    "casia": "casia",
    "emns": "emns",
    "emovdb": "emovdb",
    "emozionalmente": "emozionalmente",
    "enterface": "enterface",
    "esd": "esd",
    "jlcorpus": "jlcorpus",
    "m3ed": "m3ed",
    "mead": "mead",
    "mer2023": "mer2023",
    "mesd": "mesd",
    "oreau": "oreau",
    "pavoque": "pavoque",
    "polish": "polish",
    "resd": "resd",
    "turevdb": "turevdb",
    "meld": "meld",
    # dimensional (arousal, valence, dominance) as well as categorical
    "msppodcast": "msppodcast",
    "mspimprov": "mspimprov",
    "manifest": "manifest",
}
_ALIASES = {"crema-d": "cremad", "crema_d": "cremad", "emo-db": "emodb", "berlin": "emodb"}
# EmoBox corpora, part one: the corpora's own spellings
_ALIASES.update({"asvp-esd": "asvpesd", "emov-db": "emovdb", "jl-corpus": "jlcorpus", "turev-db": "turevdb",
                 "oréau": "oreau"})
_ALIASES.update({"msp-podcast": "msppodcast", "msp-improv": "mspimprov"})


def _synthetic_names() -> tuple[str, ...]:
    from jaxser.corpora import synthetic

    return tuple(synthetic.CORPORA)


def available() -> list[str]:
    """Registry names of every corpus loader (real corpora, the manifest loader, synthetic)."""
    return sorted(_MODULES) + list(_synthetic_names())


def canonical_name(name: str) -> str:
    key = name.strip().lower()
    return _ALIASES.get(key, key)


def module(name: str):
    """The loader module for a registry name."""
    key = canonical_name(name)
    if key not in _MODULES:
        raise CorpusError(f"unknown corpus {name!r}; known: {', '.join(available())}")
    return importlib.import_module(f"jaxser.corpora.{_MODULES[key]}")


def load(name: str, root=None, /, skip_errors: bool = False, **options):
    """Load corpus `name` found below folder `root` into the unified schema.

    Synthetic corpora (`jaxser.corpora.synthetic.CORPORA`) need no root: they are generated
    (deterministically, cached) on first use. The manifest loader takes `root` = the CSV/JSONL
    file (or a folder holding `manifest.csv`/`manifest.jsonl`) and an optional `name=`.

    `skip_errors=True` keeps a file whose header cannot be read, with duration NaN, so the
    extraction can skip it and list it with its reason; without it the AudioError (naming the
    file) propagates. Synthetic corpora are generated valid and ignore the flag.
    """
    key = canonical_name(name)
    if key in _synthetic_names():
        from jaxser.corpora import synthetic

        return synthetic.load(key, root, **options)
    mod = module(key)
    if root is None:
        raise CorpusError(f"{key}: a corpus root is needed (the folder {key} was unpacked to)")
    if hasattr(mod, "load"):  # loaders with their own naming (manifest) build the dataset themselves
        return mod.load(root, skip_errors=skip_errors, **options)
    if "skip_errors" in inspect.signature(mod.records).parameters:  # loaders that read headers themselves
        options["skip_errors"] = skip_errors
    return build_dataset(mod.NAME, root, mod.records(root, **options), skip_errors=skip_errors,
                         dimensions=getattr(mod, "DIMENSIONS", None))


def dimension_ranges(name_or_dataset, **options) -> dict[str, tuple[float, float]]:
    """The documented (lo, hi) scale of each dimension a corpus rates, e.g. IEMOCAP's
    {"arousal": (1.0, 5.0), "valence": (1.0, 5.0), "dominance": (1.0, 5.0)}; {} for a corpus
    with no dimensional ratings. Targets are mapped to [0, 1] by these ranges, never by
    statistics of the data.

    `name_or_dataset`: a registry name, or a loaded dataset, which carries the ranges its rows
    were checked against (the only way to name a manifest corpus' scale by the dataset alone).
    By name: synthetic corpora take theirs from their spec, a corpus module from its
    `DIMENSIONS`, the manifest loader from the option it is loaded with (`dimension_range=(lo,
    hi)` or one pair per dimension), so pass the same options here."""
    from jaxser.corpora.schema import carried_ranges

    if not isinstance(name_or_dataset, str):
        carried = carried_ranges(name_or_dataset)
        if carried is not None:
            return carried
        if not any(d in name_or_dataset.column_names for d in DIMENSIONS):
            return {}
        name_or_dataset = name_or_dataset[0]["corpus"]
    key = canonical_name(name_or_dataset)
    if key in _synthetic_names():
        from jaxser.corpora import synthetic

        if options:
            raise CorpusError(f"{key}: synthetic corpora take no options, got {sorted(options)}")
        return dict(synthetic.spec(key).dimensions)
    if key not in _MODULES:
        raise CorpusError(f"{name_or_dataset}: not a registry corpus, so its dimension scales are not known by name; "
                          "pass its dataset (a manifest corpus' rows carry the scales they were loaded with)")
    mod = module(key)
    if hasattr(mod, "dimension_ranges"):  # the manifest loader: ranges are a loader option
        return mod.dimension_ranges(**options)
    return {d: (float(lo), float(hi)) for d, (lo, hi) in getattr(mod, "DIMENSIONS", {}).items()}


def fold_groups(ds) -> list[str]:
    """The unit of speaker-independent folds for each row: the speaker, unless the corpus
    module defines `fold_group(speaker) -> str` (IEMOCAP: its session, two speakers each)."""
    out = []
    mods: dict[str, object] = {}
    for corpus, spk in zip(ds["corpus"], ds["speaker"]):
        if corpus not in mods:
            try:
                mods[corpus] = module(corpus)
            except CorpusError:
                mods[corpus] = None  # synthetic / manifest corpora: speakers are the unit
        fg = getattr(mods[corpus], "fold_group", None)
        out.append(f"{corpus}/{fg(spk.split('/', 1)[1])}" if fg else spk)
    return out
