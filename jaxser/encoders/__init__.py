"""Encoder registry: `load(name_or_path)` gives an `Encoder` (see base.py).

Accepted: a registry name (`wav2vec2-base`, `trillsson3`, `egemaps`, `random-wav2vec2`, ...),
a Hugging Face Hub id (`facebook/wav2vec2-base`), either with an optional `@revision`, a TF-Hub
handle, or a local directory (HF `config.json` + `model.safetensors` or `pytorch_model.bin`, a TF
SavedModel, a SpeechBrain or emotion2vec release). Families are imported lazily: TensorFlow is
never imported unless a model needs it, and torch never.
"""
from __future__ import annotations

import importlib
from pathlib import Path

from jaxser.encoders.base import Encoder, EncoderError  # noqa: F401

#: registry name -> (module, keyword arguments for that module's `load`)
REGISTRY: dict[str, tuple[str, dict]] = {}


#: Hub commits registry checkpoints are pinned to (each the commit its published files were
#: downloaded from); an entry without one resolves `main` and the run records the commit it got.
REVISIONS = {
    "facebook/wav2vec2-base": "0b5b8e868dd84f03fd87d01f9c4ff0f080fecfe8",
    "facebook/wav2vec2-xls-r-300m": "1a640f32ac3e39899438a2931f9924c02f080a54",
    "facebook/hubert-base-ls960": "dba3bb02fda4248b6e082697eee756de8fe8aa8a",
    "facebook/hubert-large-ll60k": "ff022d095678a2995f3c49bab18a96a9e553f782",
    "microsoft/wavlm-base-plus": "4c66d4806a428f2e922ccfa1a962776e232d487b",
    "microsoft/wavlm-large": "c1423ed94bb01d80a3f5ce5bc39f6026a0f4828c",
    "microsoft/wavlm-base": "efa81aae7ff777e464159e0f877d54eac5b84f81",
    "openai/whisper-tiny": "169d4a4341b33bc18d8881c4b69c2e104e1cc0af",
    "openai/whisper-base": "e37978b90ca9030d5170a5c07aadb050351a65bb",
    "openai/whisper-small": "973afd24965f72e36ca33b3055d56a652f456b4d",
    "openai/whisper-medium": "abdf7c39ab9d0397620ccaea8974cc764cd0953e",
    "openai/whisper-large": "4ef9b41f0d4fe232daafdb5f76bb1dd8b23e01d7",
    "openai/whisper-large-v2": "ae4642769ce2ad8fc292556ccea8e901f1530655",
    "openai/whisper-large-v3": "06f233fe06e710322aca913c1bc4249a0d71fce1",
    "facebook/w2v-bert-2.0": "da985ba0987f70aaeb84a80f2851cfac8c697a7b",
}


def register(name: str, module: str, **kwargs) -> None:
    if "source" in kwargs and kwargs["source"] in REVISIONS:
        kwargs["revision"] = REVISIONS[kwargs["source"]]
    REGISTRY[name] = (module, kwargs)


# --- JAX wav2vec2 family (jaxser.encoders.wav2vec2) ---
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
# --- JAX Whisper encoder (jaxser.encoders.whisper) ---
for _size in ("tiny", "base", "small", "medium", "large", "large-v2", "large-v3"):
    register(f"whisper-{_size}", "whisper", source=f"openai/whisper-{_size}")
register("random-whisper", "whisper", source="random")
# --- JAX w2v-BERT 2.0 (jaxser.encoders.w2v_bert) ---
register("w2v-bert-2.0", "w2v_bert", source="facebook/w2v-bert-2.0")
register("random-w2v-bert", "w2v_bert", source="random", preset="tiny")
# --- JAX emotion2vec (jaxser.encoders.emotion2vec; releases convert with emotion2vec_convert) ---
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
    """Which family a local directory belongs to, from the files it holds (`config.json`'s
    `model_type` for transformers-style folders)."""
    if (path / "saved_model.pb").exists():
        return "tfhub"
    if (path / "hyperparams.yaml").exists() or (path / "embedding_model.ckpt").exists():
        return "xvector"
    cfg = path / "config.json"
    if not cfg.exists() and any((path / f).exists() for f in ("config.yaml", "model.pt", "emotion2vec_base.pt")):
        return "emotion2vec"  # a FunASR / fairseq release
    if cfg.exists():
        import json

        try:
            model_type = json.loads(cfg.read_text()).get("model_type", "")
        except (json.JSONDecodeError, AttributeError) as e:
            raise EncoderError(f"{cfg}: not a valid config.json ({e})") from None
        return {"speechbrain-xvector": "xvector", "emotion2vec": "emotion2vec", "wav2vec2-bert": "w2v_bert",
                "whisper": "whisper"}.get(model_type, "wav2vec2")
    raise EncoderError(f"{path}: not a model directory jaxser knows (expected config.json + weights, a TF SavedModel "
                       "with saved_model.pb, a SpeechBrain x-vector folder or an emotion2vec release)")


def _looks_like_path(name: str) -> bool:
    """A Hub id is `owner/name`; anything absolute, relative to `.`/`~`, or deeper is a folder."""
    return name.startswith(("/", "./", "../", "~", ".\\")) or name.count("/") > 1


def _family_for_hub(repo: str, revision: str | None) -> str:
    """A Hub id's family from its own config files (downloaded first, a few kilobytes)."""
    from jaxser.encoders import hf

    return _family_for_path(hf.snapshot(repo, revision, ["config.json", "config.yaml", "hyperparams.yaml"]))


def _entry(name_or_path: str, options: dict) -> tuple[str, dict]:
    """(family module, its load keyword arguments) for anything `load` accepts."""
    from jaxser.encoders.hf import split_revision

    base, rev = (name_or_path.rsplit("@", 1) if "@" in name_or_path and not Path(name_or_path).exists()
                 else (name_or_path, None))
    if rev is not None and "revision" in options and options["revision"] != rev:
        raise EncoderError(f"{name_or_path}: revision {rev!r} in the name and revision={options['revision']!r} "
                           "disagree")
    revision = {"revision": rev} if rev else {}
    if base in REGISTRY:
        module, kwargs = REGISTRY[base]
        if rev and "source" not in kwargs or rev and kwargs.get("source") == "random":
            raise EncoderError(f"{name_or_path}: {base} has no revisions (it downloads nothing)")
        return module, {**kwargs, **revision, **options}
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return _family_for_path(path), {"source": name_or_path, **options}
    if name_or_path.startswith(("https://tfhub.dev/", "https://www.kaggle.com/models/", "gs://")):
        return "tfhub", {"source": name_or_path, **options}
    if _looks_like_path(name_or_path):
        raise EncoderError(f"encoder folder {name_or_path} does not exist; pass an existing folder "
                           "(config.json + weights, a TF SavedModel, an x-vector or emotion2vec release), "
                           "a registry name or a Hub id such as facebook/wav2vec2-base")
    if "/" in base:
        repo, rev = split_revision(name_or_path, options.get("revision"))
        return _family_for_hub(repo, rev), {"source": repo, **options, **({"revision": rev} if rev else {})}
    import difflib

    close = difflib.get_close_matches(base, available(), n=3)
    raise EncoderError(f"unknown encoder {name_or_path!r}" + (f" (did you mean {', '.join(close)}?)" if close else "")
                       + f": not a registry name ({', '.join(available())}), an existing directory, a TF-Hub handle "
                       "or a Hub id")


def family(name_or_path: str) -> str:
    """The family module (e.g. "wav2vec2") of anything `load` accepts, found as `load` finds it."""
    return _entry(name_or_path, {})[0]


def load(name_or_path: str, **options) -> Encoder:
    """Resolve a registry name, local directory, TF-Hub handle or Hub id (`[@revision]`) to an Encoder."""
    module, kwargs = _entry(name_or_path, options)
    mod = importlib.import_module(f"jaxser.encoders.{module}")
    enc = mod.load(**kwargs)
    if not getattr(enc, "name", None) or enc.name == "encoder":
        enc.name = name_or_path
    return enc


def locate(name_or_path: str) -> str | None:
    """Fetch (or find in the caches) what `load(name_or_path)` needs, without building the model;
    the problem as one line, or None. A study calls it for every encoder before any work."""
    try:
        module, kwargs = _entry(name_or_path, {})
        source = kwargs.get("source")
        if source is None or source == "random":
            return None
        if module == "tfhub":
            from importlib.util import find_spec

            if find_spec("tensorflow") is None:
                return "TF-Hub encoders (TRILLsson) need TensorFlow: pip install 'jaxser[tf]'"
            from jaxser.encoders import tfhub

            tfhub.resolve(source)
        elif module in ("xvector", "emotion2vec"):
            mod = importlib.import_module(f"jaxser.encoders.{module}")
            mod.read_folder(mod._resolve_source(str(source), kwargs.get("revision")))
        else:
            from jaxser.encoders import hf

            hf.weight_files(hf.resolve(source, revision=kwargs.get("revision")))
    except EncoderError as e:
        return str(e)
    return None
