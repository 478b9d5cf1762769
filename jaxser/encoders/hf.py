"""Hugging Face checkpoints: resolve a Hub id or local folder, read config and safetensors.

Safetensors only by default: a pickle `.bin` can run arbitrary code when loaded, so it is
read (through torch) only when the user passes `allow_pickle=True`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from jaxser.encoders.base import EncoderError

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
PICKLE_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")


def resolve(source: str | os.PathLike, *, allow_pickle: bool = False) -> Path:
    """A local folder holding `config.json` + weights, downloading a Hub id when possible."""
    path = Path(source).expanduser()
    if path.is_dir():
        _check_folder(path, allow_pickle)
        return path
    source = str(source)
    try:
        from huggingface_hub import snapshot_download

        patterns = ["config.json", "preprocessor_config.json", "*.safetensors", "*.safetensors.index.json"]
        if allow_pickle:
            patterns += ["*.bin", "*.bin.index.json"]
        local = Path(snapshot_download(source, allow_patterns=patterns))
    except Exception as e:
        raise EncoderError(
            f"cannot get checkpoint {source!r} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). "
            f"Without Hub access, download it elsewhere (config.json + model.safetensors) into a folder and "
            f"pass that folder's path instead, or put it in the Hugging Face cache (HF_HOME)."
        ) from None
    _check_folder(local, allow_pickle)
    return local


def _check_folder(path: Path, allow_pickle: bool) -> None:
    if not (path / "config.json").exists():
        raise EncoderError(f"{path}: no config.json (expected a Hugging Face model folder)")
    if any((path / f).exists() for f in WEIGHT_FILES):
        return
    if any((path / f).exists() for f in PICKLE_FILES):
        if allow_pickle:
            return
        raise EncoderError(f"{path}: only pickle weights (pytorch_model.bin) found; pickle can execute code. "
                           "Convert to model.safetensors, or pass allow_pickle=True if you trust the file.")
    raise EncoderError(f"{path}: no model.safetensors found (files: {sorted(p.name for p in path.iterdir())})")


def read_config(path: Path) -> dict:
    try:
        return json.loads((Path(path) / "config.json").read_text())
    except json.JSONDecodeError as e:
        raise EncoderError(f"{path}/config.json is not valid JSON: {e}") from None


def read_weights(path: Path, *, allow_pickle: bool = False) -> dict[str, np.ndarray]:
    """All tensors of a checkpoint folder as float32 numpy arrays, keyed by their HF names."""
    from safetensors.numpy import load_file

    path = Path(path)
    if (path / "model.safetensors").exists():
        files = [path / "model.safetensors"]
    elif (path / "model.safetensors.index.json").exists():
        index = json.loads((path / "model.safetensors.index.json").read_text())
        files = [path / f for f in sorted(set(index["weight_map"].values()))]
    elif allow_pickle:
        return _read_pickle(path)
    else:
        _check_folder(path, allow_pickle)
        raise AssertionError("unreachable")
    out: dict[str, np.ndarray] = {}
    for f in files:
        try:
            tensors = load_file(str(f))
        except Exception as e:
            raise EncoderError(f"{f}: unreadable safetensors file ({type(e).__name__}: {e})") from None
        for k, v in tensors.items():
            out[k] = v.astype(np.float32) if v.dtype != np.float32 and v.dtype.kind == "f" else v
    return out


def _read_pickle(path: Path) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError:
        raise EncoderError(f"{path}: reading pickle weights needs torch (pip install 'jaxser[torch]')") from None
    files = [path / "pytorch_model.bin"]
    if not files[0].exists():
        index = json.loads((path / "pytorch_model.bin.index.json").read_text())
        files = [path / f for f in sorted(set(index["weight_map"].values()))]
    out = {}
    for f in files:
        for k, v in torch.load(str(f), map_location="cpu", weights_only=False).items():
            out[k] = v.float().numpy() if v.is_floating_point() else v.numpy()
    return out


def strip_prefix(weights: dict[str, np.ndarray], prefixes: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Drop a task model's prefix (`wav2vec2.`, `model.encoder.`) so bare and task checkpoints load alike."""
    for p in prefixes:
        if any(k.startswith(p) for k in weights):
            return {k[len(p):]: v for k, v in weights.items() if k.startswith(p)}
    return weights


def check_keys(path, expected: set[str], got: set[str], *, ignore: tuple[str, ...] = ()) -> None:
    """Fail with the exact missing keys (and unexpected ones) instead of a shape error later."""
    missing = sorted(expected - got)
    unexpected = sorted(k for k in got - expected if not k.startswith(ignore))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys, e.g. {missing[:5]}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys, e.g. {unexpected[:5]}")
        raise EncoderError(f"{path}: checkpoint does not match the architecture in its config.json: "
                           + "; ".join(parts))


def preset_config(presets: dict, preset: str, overrides: dict) -> dict:
    """The config of a random-weights preset, with the caller's overrides applied."""
    if preset not in presets:
        raise EncoderError(f"unknown preset {preset!r} (known: {', '.join(presets)})")
    return {**presets[preset], **overrides}


def open_checkpoint(source, *, allow_pickle: bool = False, preset=None, overrides: dict | None = None):
    """(folder, config) of a checkpoint source, refusing options that only apply to random weights."""
    if overrides:
        raise TypeError(f"unexpected keyword arguments for a checkpoint: {sorted(overrides)}")
    if preset is not None:
        raise EncoderError("preset= only applies to source='random'")
    path = resolve(source, allow_pickle=allow_pickle)
    return path, read_config(path)
