"""One-time conversion of a released emotion2vec checkpoint (a torch pickle) to safetensors.

    python -m jaxser.encoders.emotion2vec_convert SRC DST --allow-pickle

SRC is a release folder as Hugging Face / ModelScope ship it: config.yaml plus either FunASR's
model.pt (emotion2vec_plus_*: the state dict under "model") or the fairseq checkpoint
emotion2vec_base.pt (state dict under "model", training config under "cfg"); SRC may also name the
.pt file itself. DST receives model.safetensors + config.json (jaxser's flattened architecture),
with config.yaml and tokens.txt copied beside them for provenance. Loading DST never unpickles.

Reading a pickle can execute code, hence the explicit --allow-pickle opt-in.
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


def _torch_load(f: Path) -> Any:
    try:
        import torch
    except ImportError:
        raise EncoderError(f"{f}: reading the released pickle checkpoints needs torch "
                           "(pip install 'jaxser[torch]')") from None
    try:
        return torch.load(str(f), map_location="cpu", weights_only=True)
    except Exception:  # the user opted in to pickle: fairseq checkpoints hold OmegaConf/argparse objects
        try:
            return torch.load(str(f), map_location="cpu", weights_only=False)
        except Exception as e:
            raise EncoderError(f"{f}: unreadable torch checkpoint ({type(e).__name__}: {e})") from None


def _state_dict(obj: Any, f: Path) -> dict:
    """The model's state dict inside a checkpoint: nested under "state_dict", "model_state_dict" or
    "model" as FunASR's loader accepts, with a DataParallel "module." prefix removed."""
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj:
        raise EncoderError(f"{f}: expected a state dict (or a checkpoint holding one under 'model'), "
                           f"got {type(obj).__name__}")
    if all(str(k).startswith("module.") for k in obj):
        obj = {str(k)[len("module."):]: v for k, v in obj.items()}
    return obj


def _to_numpy(v: Any) -> np.ndarray:
    if hasattr(v, "detach"):
        v = v.detach().cpu()
        return v.float().numpy() if v.is_floating_point() else v.numpy()
    return np.asarray(v)


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
    model = cfg.get("model") if hasattr(cfg, "get") else None
    if model is not None:
        try:  # an OmegaConf DictConfig in real fairseq checkpoints
            from omegaconf import OmegaConf

            model = OmegaConf.to_container(model, resolve=True) if not isinstance(model, dict) else model
        except ImportError:
            model = dict(model) if not isinstance(model, dict) else model
        return model, None
    raise EncoderError(f"{folder}: no config.yaml beside {f.name}; download the release's config.yaml into the "
                       "same folder")


def read_release(src: str | os.PathLike, *, allow_pickle: bool = False) -> tuple[dict, dict[str, np.ndarray]]:
    """(config.json entries, weights) of a release folder or .pt file; refused without allow_pickle."""
    src = Path(src).expanduser()
    f = find_checkpoint(src)
    if f is None:
        files = sorted(p.name for p in src.iterdir()) if src.is_dir() else []
        raise EncoderError(f"{src}: no emotion2vec checkpoint (expected {' or '.join(CHECKPOINT_NAMES)} beside "
                           f"config.yaml); files: {files}")
    if not allow_pickle:
        raise EncoderError(f"{f}: a torch pickle, which can execute code when read; pass --allow-pickle "
                           "(allow_pickle=True) if you trust the file")
    folder = f.parent
    obj = _torch_load(f)
    model_conf, yml = _model_conf(folder, obj, f)
    cfg = config_from_model_conf(model_conf, yml or f)
    state = _state_dict(obj, f)
    weights, dropped = {}, []
    for k, v in state.items():
        k = str(k)
        if k.startswith(IGNORED) and k not in KEEP_EXTRA:
            continue
        if not k.startswith(ENCODER) and k not in KEEP_EXTRA or not hasattr(v, "shape"):
            # training-only modules outside the encoder (FunASR's loader skips them too)
            dropped.append(k)
            continue
        a = _to_numpy(v)
        weights[k] = a.astype(np.float32) if a.dtype.kind == "f" else a
    scale = weights.get(AUDIO + "alibi_scale")
    if scale is not None and scale.ndim == 4:  # older checkpoints: upgrade_state_dict_named adds the layer axis
        weights[AUDIO + "alibi_scale"] = scale[None]
    # inside the encoder's namespace, an unknown key or shape means the config does not describe the weights
    check_weights(arch_from_config(cfg, yml or f), weights, f)
    if dropped:
        cfg["dropped_keys"] = sorted(dropped)
    return cfg, weights


def convert(src: str | os.PathLike, dst: str | os.PathLike, *, allow_pickle: bool = False) -> Path:
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
    parser = argparse.ArgumentParser(prog="python -m jaxser.encoders.emotion2vec_convert",
                                     description="emotion2vec release (config.yaml + model.pt / emotion2vec_base.pt) "
                                                 "-> model.safetensors + config.json for jaxser")
    parser.add_argument("src", help="release folder, or its .pt file")
    parser.add_argument("dst", help="output folder")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="read the torch pickle checkpoint (it can execute code: only for files you trust)")
    args = parser.parse_args(argv)
    dst = convert(args.src, args.dst, allow_pickle=args.allow_pickle)
    print(f"wrote {dst / 'model.safetensors'} and {dst / 'config.json'}")
    return 0


if __name__ == "__main__":
    from jaxser.errors import report

    sys.exit(report(main))
