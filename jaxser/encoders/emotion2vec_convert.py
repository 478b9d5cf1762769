"""A released emotion2vec checkpoint (a torch pickle): read it, or convert it to safetensors.

    python -m jaxser.encoders.emotion2vec_convert SRC DST

SRC is a release folder as Hugging Face / ModelScope ship it: config.yaml plus either FunASR's
model.pt (emotion2vec_plus_*: the state dict under "model") or the fairseq checkpoint
emotion2vec_base.pt (state dict under "model", training config under "cfg"); SRC may also name the
.pt file itself. DST receives model.safetensors + config.json (jaxser's flattened architecture),
with config.yaml and tokens.txt copied beside them for provenance. Loading DST never unpickles.

The .pt pickle is read by jaxser's restricted reader (`torch_pickle`: tensors and plain data only,
no code from the file runs, no torch); the training state fairseq keeps beside the weights (its
config objects, meters) is kept inert. `jaxser.encoders.load` takes a release folder or Hub id
directly, so converting is optional.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from jaxser.encoders.base import EncoderError
from jaxser.encoders.emotion2vec import (AUDIO, IGNORED, arch_from_config, check_weights, config_from_model_conf)

#: checkpoint file names of the releases, in the order they are looked for
CHECKPOINT_NAMES = ("model.pt", "emotion2vec_base.pt")
#: keys the converted file keeps beyond those the encoder reads: the plus models' emotion head
KEEP_EXTRA = ("proj.weight", "proj.bias")
#: the encoder's modules: a checkpoint key under one of them must be one the config implies
ENCODER = tuple(AUDIO + m for m in ("local_encoder.", "project_features.", "relative_positional_encoder.",
                                    "context_encoder.", "extra_tokens", "alibi_scale")) + ("blocks.", "norm.")


def find_checkpoint(path: Path) -> Path | None:
    """The release checkpoint in a folder (model.pt, emotion2vec_base.pt, else a single *.pt), or None."""
    path = Path(path)
    if path.is_file() and path.suffix == ".pt":
        return path
    if not path.is_dir():
        return None
    for name in CHECKPOINT_NAMES:
        if (path / name).exists():
            return path / name
    pts = sorted(path.glob("*.pt"))
    return pts[0] if len(pts) == 1 else None


#: namespaces of the non-tensor objects fairseq / FunASR checkpoints carry (kept as inert records)
TRAINING_STATE = ("fairseq.", "omegaconf.", "argparse.Namespace", "numpy.", "enum.", "typing.", "pathlib.")


def _model_conf(folder: Path, ckpt: dict | Any, f: Path) -> tuple[dict, Path | None]:
    """model_conf from the folder's config.yaml, else from a fairseq checkpoint's cfg.model."""
    yml = folder / "config.yaml"
    if yml.exists():
        import yaml

        try:
            doc = yaml.safe_load(yml.read_text())
        except (OSError, yaml.YAMLError) as e:
            raise EncoderError(f"{yml}: cannot parse ({type(e).__name__}: {e})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("model_conf"), dict):
            raise EncoderError(f"{yml}: no model_conf mapping (not a FunASR emotion2vec config.yaml)")
        if doc.get("model", "Emotion2vec") != "Emotion2vec":
            raise EncoderError(f"{yml}: model {doc.get('model')!r} is not Emotion2vec")
        return doc["model_conf"], yml
    cfg = ckpt.get("cfg") if isinstance(ckpt, dict) else None
    model = cfg.get("model") if isinstance(cfg, dict) else None
    if isinstance(model, dict):  # fairseq stores its config as a plain container
        return model, None
    raise EncoderError(f"{folder}: no config.yaml beside {f.name}; download the release's config.yaml into the "
                       "same folder")


def read_release(src: str | os.PathLike, *, allow_pickle=None) -> tuple[dict, dict[str, np.ndarray]]:
    """(config.json entries, weights) of a release folder or .pt file, read without running code."""
    from jaxser.encoders import torch_pickle
    from jaxser.encoders.hf import warn_allow_pickle

    warn_allow_pickle(allow_pickle)
    src = Path(src).expanduser()
    f = find_checkpoint(src)
    if f is None:
        files = sorted(p.name for p in src.iterdir()) if src.is_dir() else []
        raise EncoderError(f"{src}: no emotion2vec checkpoint (expected {' or '.join(CHECKPOINT_NAMES)} beside "
                           f"config.yaml); files: {files}")
    folder = f.parent
    obj = torch_pickle.load(f, inert=TRAINING_STATE)
    model_conf, yml = _model_conf(folder, obj, f)
    cfg = config_from_model_conf(model_conf, yml or f)
    state = torch_pickle.state_dict(obj, f)
    weights, dropped = {}, []
    for k, v in state.items():
        k = str(k)
        if k.startswith(IGNORED) and k not in KEEP_EXTRA:
            continue
        if not k.startswith(ENCODER) and k not in KEEP_EXTRA or not isinstance(v, np.ndarray):
            # training-only modules outside the encoder (FunASR's loader skips them too)
            dropped.append(k)
            continue
        weights[k] = v.astype(np.float32) if v.dtype.kind in "fV" else v
    scale = weights.get(AUDIO + "alibi_scale")
    if scale is not None and scale.ndim == 4:  # older checkpoints: upgrade_state_dict_named adds the layer axis
        weights[AUDIO + "alibi_scale"] = scale[None]
    # inside the encoder's namespace, an unknown key or shape means the config does not describe the weights
    check_weights(arch_from_config(cfg, yml or f), weights, f)
    if dropped:
        cfg["dropped_keys"] = sorted(dropped)
    return cfg, weights


def convert(src: str | os.PathLike, dst: str | os.PathLike, *, allow_pickle=None) -> Path:
    """Release (folder or .pt) -> DST/model.safetensors + DST/config.json; returns DST."""
    from safetensors.numpy import save

    from jaxser.io import atomic_write_bytes, atomic_write_json

    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    cfg, weights = read_release(src, allow_pickle=allow_pickle)
    f = find_checkpoint(src)
    cfg = {**cfg, "converted_from": str(f)}
    dst.mkdir(parents=True, exist_ok=True)
    blob = save({k: np.ascontiguousarray(v) for k, v in weights.items()},
                metadata={"format": "np", "source": f"emotion2vec {f.name}"})
    atomic_write_bytes(dst / "model.safetensors", blob)
    atomic_write_json(dst / "config.json", cfg)
    for name in ("config.yaml", "tokens.txt"):
        s = f.parent / name
        if s.exists() and s.resolve() != (dst / name).resolve():
            atomic_write_bytes(dst / name, s.read_bytes())
    return dst


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, prog="python -m jaxser.encoders.emotion2vec_convert",
                                     description="emotion2vec release (config.yaml + model.pt / emotion2vec_base.pt) "
                                                 "-> model.safetensors + config.json for jaxser")
    parser.add_argument("src", help="release folder, or its .pt file")
    parser.add_argument("dst", help="output folder")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="ignored (kept for old scripts): the pickle is read without running code")
    args = parser.parse_args(argv)
    dst = convert(args.src, args.dst)
    print(f"wrote {dst / 'model.safetensors'} and {dst / 'config.json'}")
    return 0


if __name__ == "__main__":
    from jaxser.errors import report

    sys.exit(report(main))
