"""Encoder registry: `load(name_or_path)` gives an `Encoder` (see base.py).

Accepted: a registry name (`wav2vec2-base`, `trillsson3`, `egemaps`, `random-wav2vec2`, ...),
a Hugging Face Hub id (`facebook/wav2vec2-base`), a TF-Hub handle, or a local directory
(HF `config.json` + `model.safetensors`, or a TF SavedModel). Families are imported lazily:
TensorFlow and torch are never imported unless a model needs them.
"""
from __future__ import annotations

import importlib
from pathlib import Path

from jaxser.encoders.base import Encoder, EncoderError  # noqa: F401

#: registry name -> (module, keyword arguments for that module's `load`)
REGISTRY: dict[str, tuple[str, dict]] = {}


def register(name: str, module: str, **kwargs) -> None:
    REGISTRY[name] = (module, kwargs)


# --- Flax wav2vec2 family (jaxser.encoders.wav2vec2) ---
for _name, _hub in {
    "wav2vec2-base": "facebook/wav2vec2-base",
    "wav2vec2-large": "facebook/wav2vec2-large",
    "wav2vec2-large-lv60": "facebook/wav2vec2-large-lv60",
    "wav2vec2-large-robust": "facebook/wav2vec2-large-robust",
    "xls-r-300m": "facebook/wav2vec2-xls-r-300m",
    "xls-r-1b": "facebook/wav2vec2-xls-r-1b",
    "xls-r-2b": "facebook/wav2vec2-xls-r-2b",
    "mms-300m": "facebook/mms-300m",
    "mms-1b": "facebook/mms-1b",
    "hubert-base": "facebook/hubert-base-ls960",
    "hubert-large": "facebook/hubert-large-ll60k",
    "wavlm-base": "microsoft/wavlm-base",
    "wavlm-base-plus": "microsoft/wavlm-base-plus",
    "wavlm-large": "microsoft/wavlm-large",
    "unispeech-sat-base": "microsoft/unispeech-sat-base",
    "unispeech-sat-large": "microsoft/unispeech-sat-large",
    "data2vec-audio-base": "facebook/data2vec-audio-base",
    "data2vec-audio-large": "facebook/data2vec-audio-large",
}.items():
    register(_name, "wav2vec2", source=_hub)
register("random-wav2vec2", "wav2vec2", source="random", preset="small")
# --- Flax Whisper encoder (jaxser.encoders.whisper) ---
for _size in ("tiny", "base", "small", "medium", "large", "large-v2", "large-v3"):
    register(f"whisper-{_size}", "whisper", source=f"openai/whisper-{_size}")
register("random-whisper", "whisper", source="random")
# --- Flax w2v-BERT 2.0 (jaxser.encoders.w2v_bert) ---
register("w2v-bert-2.0", "w2v_bert", source="facebook/w2v-bert-2.0")
register("random-w2v-bert", "w2v_bert", source="random", preset="tiny")
# --- Flax emotion2vec (jaxser.encoders.emotion2vec; releases convert with emotion2vec_convert) ---
for _name, _hub in {"emotion2vec-base": "emotion2vec/emotion2vec_base",
                    "emotion2vec-plus-seed": "emotion2vec/emotion2vec_plus_seed",
                    "emotion2vec-plus-base": "emotion2vec/emotion2vec_plus_base",
                    "emotion2vec-plus-large": "emotion2vec/emotion2vec_plus_large"}.items():
    register(_name, "emotion2vec", source=_hub)
register("random-emotion2vec", "emotion2vec", source="random", preset="tiny")
# --- TF-Hub (jaxser.encoders.tfhub) ---
for _i in range(1, 6):
    register(f"trillsson{_i}", "tfhub", source=f"https://tfhub.dev/google/trillsson{_i}/1")
# --- speaker recognition (jaxser.encoders.xvector) ---
register("xvector", "xvector", source="speechbrain/spkrec-xvect-voxceleb")
register("random-xvector", "xvector", source="random")
# --- handcrafted (jaxser.encoders.handcrafted) ---
register("egemaps", "handcrafted", kind="egemaps")
register("mfcc", "handcrafted", kind="mfcc")


def available() -> list[str]:
    return sorted(REGISTRY)


def _family_for_path(path: Path) -> str:
    """Which family a local directory belongs to, from the files it holds."""
    if (path / "saved_model.pb").exists():
        return "tfhub"
    if (path / "hyperparams.yaml").exists() or (path / "embedding_model.ckpt").exists():
        return "xvector"
    if (path / "config.yaml").exists() and any((path / f).exists() for f in ("model.pt", "emotion2vec_base.pt")):
        return "emotion2vec"  # an unconverted release: the module says how to convert it
    cfg = path / "config.json"
    if cfg.exists():
        import json

        model_type = json.loads(cfg.read_text()).get("model_type", "")
        if model_type == "speechbrain-xvector":
            return "xvector"
        if model_type == "emotion2vec":
            return "emotion2vec"
        if model_type == "wav2vec2-bert":
            return "w2v_bert"
        return "whisper" if model_type == "whisper" else "wav2vec2"
    raise EncoderError(f"{path}: not a model directory jaxser knows (expected config.json + model.safetensors, "
                       "a TF SavedModel with saved_model.pb, or a SpeechBrain x-vector folder)")


def _looks_like_path(name: str) -> bool:
    """A Hub id is `owner/name`; anything absolute, relative to `.`/`~`, or deeper is a folder."""
    return name.startswith(("/", "./", "../", "~", ".\\")) or name.count("/") > 1


def load(name_or_path: str, **options) -> Encoder:
    """Resolve a registry name, local directory, TF-Hub handle or Hub id to an Encoder."""
    if name_or_path in REGISTRY:
        module, kwargs = REGISTRY[name_or_path]
        kwargs = {**kwargs, **options}
    elif Path(name_or_path).expanduser().is_dir():
        module, kwargs = _family_for_path(Path(name_or_path).expanduser()), {"source": name_or_path, **options}
    elif name_or_path.startswith(("https://tfhub.dev/", "https://www.kaggle.com/models/", "gs://")):
        module, kwargs = "tfhub", {"source": name_or_path, **options}
    elif _looks_like_path(name_or_path):
        raise EncoderError(f"encoder folder {name_or_path} does not exist; pass an existing folder "
                           "(config.json + model.safetensors, a TF SavedModel, a converted x-vector or "
                           "emotion2vec), a registry name or a Hub id such as facebook/wav2vec2-base")
    elif "/" in name_or_path and not Path(name_or_path).exists():
        low = name_or_path.lower()
        module = ("whisper" if "whisper" in low else "xvector" if "xvect" in low else
                  "w2v_bert" if "w2v-bert" in low or "wav2vec2-bert" in low else
                  "emotion2vec" if "emotion2vec" in low else "wav2vec2")
        kwargs = {"source": name_or_path, **options}
    else:
        raise EncoderError(f"unknown encoder {name_or_path!r}: not a registry name ({', '.join(available())}), "
                           "an existing directory, a TF-Hub handle or a Hub id")
    mod = importlib.import_module(f"jaxser.encoders.{module}")
    enc = mod.load(**kwargs)
    if not getattr(enc, "name", None) or enc.name == "encoder":
        enc.name = name_or_path
    return enc
