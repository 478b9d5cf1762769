"""SpeechBrain's x-vector release (hyperparams.yaml + torch pickles): read it, or convert it to safetensors.

    python -m jaxser.encoders.xvector_convert SRC DST

SRC is a SpeechBrain folder: hyperparams.yaml, embedding_model.ckpt and, optionally,
mean_var_norm_emb.ckpt. DST receives model.safetensors + config.json (the port's architecture
entries), with hyperparams.yaml copied beside them for provenance; `jaxser.encoders.xvector`
loads DST without unpickling. hyperparams.yaml is parsed as data (HyperPyYAML tags are kept,
never instantiated) and every module choice the port does not implement is refused here.

The .ckpt pickles are read by jaxser's restricted reader (`torch_pickle`: tensors and plain data
only, no code from the file runs, no torch), so `jaxser.encoders.load` takes a SpeechBrain folder or
Hub id directly; converting is optional. Kept apart from the encoder so that loading a converted
folder never imports yaml.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from jaxser.encoders.base import EncoderError
from jaxser.encoders.xvector import (EMB_MEAN_KEY, MODEL_TYPE, SAMPLE_RATE, arch_from_config, check_weights)
from jaxser.io import atomic_write, atomic_write_text

#: hyperparams.yaml activation classes -> the port's activation names
TORCH_ACTIVATIONS = {"torch.nn.LeakyReLU": "leaky_relu", "torch.nn.ReLU": "relu"}


class _Tagged:
    """A HyperPyYAML-tagged node (`!new:...`, `!name:...`, `!ref`), kept as data: nothing is imported."""

    def __init__(self, tag: str, value: Any):
        self.tag, self.value = tag, value

    def __repr__(self) -> str:
        return f"!{self.tag} {self.value!r}"


def _yaml_loader():
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def construct(loader, suffix, node):
        if isinstance(node, yaml.MappingNode):
            value = loader.construct_mapping(node, deep=True)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_scalar(node)
        return _Tagged(suffix, value)

    Loader.add_multi_constructor("!", construct)
    return Loader


def _resolve(v: Any, top: dict, depth: int = 0) -> Any:
    """Resolve `!ref <key>` against the file's top level (enough for numbers such as n_mels)."""
    if depth > 20:
        raise EncoderError("hyperparams.yaml: !ref cycle")
    if isinstance(v, _Tagged) and v.tag == "ref" and isinstance(v.value, str):
        s = v.value.strip()
        if s.startswith("<") and s.endswith(">") and s[1:-1] in top:
            return _resolve(top[s[1:-1]], top, depth + 1)
        return v.value
    if isinstance(v, dict):
        return {k: _resolve(x, top, depth + 1) for k, x in v.items()}
    if isinstance(v, list):
        return [_resolve(x, top, depth + 1) for x in v]
    return v


def _module(top: dict, key: str, cls: str, path: Path, required: bool = True) -> dict | None:
    node = top.get(key)
    if node is None and not required:
        return None
    if not (isinstance(node, _Tagged) and node.tag == f"new:{cls}"):
        raise EncoderError(f"{path}: `{key}` must be `!new:{cls}` for the x-vector port, got {node!r}")
    args = node.value if isinstance(node.value, dict) else {}
    return {k: _resolve(v, top) for k, v in args.items()}


def config_from_hyperparams(path: Path) -> dict:
    """config.json entries from a SpeechBrain hyperparams.yaml (parsed as data; every module choice the
    port does not implement is refused here, naming the key)."""
    import yaml

    f = Path(path)
    try:
        top = yaml.load(f.read_text(), Loader=_yaml_loader())
    except (OSError, yaml.YAMLError) as e:
        raise EncoderError(f"{f}: cannot parse ({type(e).__name__}: {e})") from None
    if not isinstance(top, dict):
        raise EncoderError(f"{f}: expected a mapping at the top level")
    fb = _module(top, "compute_features", "speechbrain.lobes.features.Fbank", f)
    norm = _module(top, "mean_var_norm", "speechbrain.processing.features.InputNormalization", f)
    xv = _module(top, "embedding_model", "speechbrain.lobes.models.Xvector.Xvector", f)
    emb_norm = _module(top, "mean_var_norm_emb", "speechbrain.processing.features.InputNormalization", f,
                       required=False)
    for key, bad in (("deltas", True), ("context", True), ("requires_grad", True)):
        if bool(fb.get(key, False)) == bad:
            raise EncoderError(f"{f}: compute_features.{key}: {fb[key]} is not supported by the x-vector port")
    if fb.get("filter_shape", "triangular") != "triangular":
        raise EncoderError(f"{f}: compute_features.filter_shape {fb['filter_shape']!r} is not supported (triangular)")
    sr = int(fb.get("sample_rate", SAMPLE_RATE))
    n_mels = int(fb.get("n_mels", 40))
    act = xv.get("activation", _Tagged("name:torch.nn.LeakyReLU", ""))
    act_name = act.tag[len("name:"):] if isinstance(act, _Tagged) and act.tag.startswith("name:") else str(act)
    if act_name not in TORCH_ACTIVATIONS:
        raise EncoderError(f"{f}: embedding_model.activation {act_name!r} is not supported "
                           f"(known: {sorted(TORCH_ACTIVATIONS)})")
    in_channels = int(xv.get("in_channels", 40))
    if in_channels != n_mels:
        raise EncoderError(f"{f}: embedding_model.in_channels {in_channels} differs from "
                           f"compute_features.n_mels {n_mels}")
    blocks = int(xv.get("tdnn_blocks", 5))
    cfg = {
        "model_type": MODEL_TYPE,
        "sample_rate": sr,
        "n_fft": int(fb.get("n_fft", 400)),
        "win_length_ms": float(fb.get("win_length", 25)),
        "hop_length_ms": float(fb.get("hop_length", 10)),
        "f_min": float(fb.get("f_min", 0)),
        "f_max": float(fb["f_max"]) if fb.get("f_max") is not None else sr / 2,
        "n_mels": n_mels,
        "input_norm": {"norm_type": str(norm.get("norm_type", "global")),
                       "mean_norm": bool(norm.get("mean_norm", True)),
                       "std_norm": bool(norm.get("std_norm", True))},
        "activation": TORCH_ACTIVATIONS[act_name],
        "tdnn_channels": [int(c) for c in xv.get("tdnn_channels", [512, 512, 512, 512, 1500])][:blocks],
        "tdnn_kernel_sizes": [int(k) for k in xv.get("tdnn_kernel_sizes", [5, 3, 3, 1, 1])][:blocks],
        "tdnn_dilations": [int(d) for d in xv.get("tdnn_dilations", [1, 2, 3, 1, 1])][:blocks],
        "lin_neurons": int(xv.get("lin_neurons", 512)),
        "embedding_norm": {"norm_type": str((emb_norm or {}).get("norm_type", "global")),
                           "std_norm": bool((emb_norm or {}).get("std_norm", True)), "available": False},
    }
    arch_from_config(cfg, f)  # refuses what the port does not implement (e.g. std_norm: True)
    return cfg


def _read_pickle(path: Path) -> Any:
    from jaxser.encoders import torch_pickle

    return torch_pickle.load(path)


def read_speechbrain(path: Path, *, allow_pickle=None) -> tuple[dict, dict[str, np.ndarray]]:
    """(config, weights) of a SpeechBrain folder: hyperparams.yaml + embedding_model.ckpt
    [+ mean_var_norm_emb.ckpt], the .ckpt pickles read without running code."""
    from jaxser.encoders.hf import warn_allow_pickle

    warn_allow_pickle(allow_pickle)
    path = Path(path)
    hp, ckpt = path / "hyperparams.yaml", path / "embedding_model.ckpt"
    for f in (hp, ckpt):
        if not f.exists():
            raise EncoderError(f"{path}: no {f.name} (a SpeechBrain x-vector folder holds hyperparams.yaml and "
                               "embedding_model.ckpt)")
    cfg = config_from_hyperparams(hp)
    arch = arch_from_config(cfg, hp)
    state = _read_pickle(ckpt)
    if not isinstance(state, dict):
        raise EncoderError(f"{ckpt}: expected a state dict, got {type(state).__name__}")
    weights = {k: np.asarray(v) for k, v in state.items() if not k.endswith(".num_batches_tracked")}
    weights = {k: v.astype(np.float32) for k, v in weights.items()}
    check_weights(arch, weights, ckpt)
    emb = path / "mean_var_norm_emb.ckpt"
    if emb.exists():
        stats = _read_pickle(emb)
        if not (isinstance(stats, dict) and "glob_mean" in stats):
            raise EncoderError(f"{emb}: expected InputNormalization statistics with a 'glob_mean' entry")
        mean = np.asarray(stats["glob_mean"]).astype(np.float32).reshape(-1)
        if mean.shape != (arch.lin_neurons,):
            raise EncoderError(f"{emb}: glob_mean has shape {mean.shape}, expected ({arch.lin_neurons},)")
        weights[EMB_MEAN_KEY] = mean
        cfg["embedding_norm"]["available"] = True
    return cfg, weights


def convert(src: str | os.PathLike, dst: str | os.PathLike, *, allow_pickle=None) -> Path:
    """One-time conversion of a SpeechBrain folder to DST/model.safetensors + DST/config.json (the
    hyperparams.yaml is copied beside them for provenance). Returns DST."""
    from safetensors.numpy import save_file

    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    if not src.is_dir():
        raise EncoderError(f"{src}: not a directory")
    cfg, weights = read_speechbrain(src, allow_pickle=allow_pickle)
    dst.mkdir(parents=True, exist_ok=True)
    cfg = {**cfg, "converted_from": str(src)}
    atomic_write(dst / "model.safetensors", lambda tmp: save_file(
        {k: np.ascontiguousarray(v) for k, v in weights.items()}, tmp,
        metadata={"format": "np", "source": "speechbrain embedding_model.ckpt"}))
    atomic_write_text(dst / "config.json", json.dumps(cfg, indent=2) + "\n")
    if (src / "hyperparams.yaml").resolve() != (dst / "hyperparams.yaml").resolve():
        shutil.copyfile(src / "hyperparams.yaml", dst / "hyperparams.yaml")
    return dst


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, prog="python -m jaxser.encoders.xvector_convert",
                                     description="SpeechBrain x-vector folder (hyperparams.yaml + "
                                                 "embedding_model.ckpt) -> model.safetensors + config.json")
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="ignored (kept for old scripts): the pickles are read without running code")
    args = parser.parse_args(argv)
    try:
        dst = convert(args.src, args.dst)
    except EncoderError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {dst / 'model.safetensors'} and {dst / 'config.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
