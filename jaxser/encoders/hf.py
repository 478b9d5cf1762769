"""Hugging Face checkpoints: resolve a Hub id (pinned to a revision) or a local folder, and read
its config and weights.

Weights are read as the Hub publishes them: `model.safetensors` (or a sharded index) when the
revision has it, else `pytorch_model.bin` (or its sharded index) through jaxser's restricted
unpickler (`torch_pickle`: tensors only, no code from the file ever runs, no torch needed).
Every download goes through `snapshot`, which names the exact files, revision and the
`jaxser fetch` command when the Hub cannot be reached (`HF_HUB_OFFLINE=1` on compute nodes).
"""
from __future__ import annotations

import contextlib
import json
import os
import threading
import warnings
from pathlib import Path

import numpy as np

from jaxser.encoders.base import EncoderError

SAFETENSORS = ("model.safetensors", "model.safetensors.index.json")
PICKLES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
#: what a transformers-style folder needs beside its weights
META = ("config.json", "preprocessor_config.json")


def split_revision(source: str, revision: str | None = None) -> tuple[str, str | None]:
    """`owner/name@rev` -> (`owner/name`, rev); an explicit `revision` wins over none in the name."""
    source = str(source)
    if "@" in source and not Path(source).expanduser().exists():
        source, rev = source.rsplit("@", 1)
        if revision is not None and revision != rev:
            raise EncoderError(f"{source}: revision {rev!r} in the name and revision={revision!r} disagree")
        revision = rev or None
    return source, revision


def warn_allow_pickle(allow_pickle) -> None:
    if allow_pickle:
        warnings.warn("allow_pickle is no longer needed and is ignored: pickle checkpoints are read by jaxser's "
                      "restricted reader, which never runs code from them", DeprecationWarning, stacklevel=3)


def pins_file() -> Path:
    """Where the commits of unpinned Hub repos are recorded when first fetched: beside the
    Hugging Face cache, so every machine sharing the cache uses the same weights."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / "jaxser-pins.json"


def read_pins() -> dict[str, str]:
    try:
        pins = json.loads(pins_file().read_text())
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as e:
        raise EncoderError(f"{pins_file()}: unreadable ({e}); delete it to pin every unpinned repo again "
                           "at its current commit") from None
    return {str(k): str(v) for k, v in pins.items()} if isinstance(pins, dict) else {}


def pin(repo: str, commit: str) -> None:
    """Record `repo`'s commit (first use pins it; `jaxser fetch --update` moves the pin)."""
    from jaxser.io import atomic_write_json, exclusive_lock

    f = pins_file()
    f.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(f.with_suffix(".lock")):
        pins = read_pins()
        if pins.get(repo) != commit:
            atomic_write_json(f, {**pins, repo: commit})


_updating = threading.local()


@contextlib.contextmanager
def updating_pins():
    """Within the block, unpinned repos resolve `main` again and their pins move (`jaxser fetch --update`)."""
    _updating.on = True
    try:
        yield
    finally:
        _updating.on = False


def snapshot(repo: str, revision: str | None, patterns: list[str]) -> Path:
    """The local snapshot folder of `repo` at `revision` holding the files matching `patterns`
    (downloaded into the Hugging Face cache when missing).

    With no revision, a repo is used at the commit it was first fetched at (recorded in
    `pins_file()`), so a re-upload of its weights never changes a study silently; within
    `updating_pins()` it resolves `main` again and the pin moves."""
    update = getattr(_updating, "on", False)
    pinned = None if revision is not None or update else read_pins().get(repo)
    try:
        from huggingface_hub import snapshot_download

        local = Path(snapshot_download(repo, revision=revision or pinned, allow_patterns=list(patterns)))
    except Exception as e:
        revision = revision or pinned
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        first = str(e).splitlines()[0] if str(e) else ""
        at = f"@{revision}" if revision else ""
        raise EncoderError(
            f"cannot get {', '.join(patterns)} of {repo}{at} ({'HF_HUB_OFFLINE is set; ' if offline else ''}"
            f"{type(e).__name__}: {first}). On a machine with Hub access run `jaxser fetch {repo}{at}` "
            "(it fills the Hugging Face cache, HF_HOME, that this machine must share), or download the files into a "
            "folder and pass its path instead.") from None
    if revision is None and local.parent.name == "snapshots":
        pin(repo, local.name)
    return local


def resolve(source: str | os.PathLike, *, revision: str | None = None, allow_pickle=None) -> Path:
    """A local folder holding `config.json` + weights for a folder or a Hub id (`owner/name[@rev]`):
    safetensors when the revision has them, else the PyTorch `.bin` as released."""
    warn_allow_pickle(allow_pickle)
    path = Path(source).expanduser()
    if path.is_dir():
        _check_folder(path)
        return path
    repo, revision = split_revision(str(source), revision)
    local = snapshot(repo, revision, [*META, "*.safetensors", "*.safetensors.index.json"])
    if not any((local / f).exists() for f in SAFETENSORS):  # many releases publish only the pickle
        local = snapshot(repo, revision, [*META, "pytorch_model*.bin", "pytorch_model.bin.index.json"])
    _check_folder(local)
    return local


def _check_folder(path: Path) -> None:
    if not (path / "config.json").exists():
        raise EncoderError(f"{path}: no config.json (expected a Hugging Face model folder)")
    if not any((path / f).exists() for f in SAFETENSORS + PICKLES):
        raise EncoderError(f"{path}: no weights (model.safetensors or pytorch_model.bin) found "
                           f"(files: {sorted(p.name for p in path.iterdir())})")


def read_config(path: Path) -> dict:
    try:
        return json.loads((Path(path) / "config.json").read_text())
    except json.JSONDecodeError as e:
        raise EncoderError(f"{path}/config.json is not valid JSON: {e}") from None


def weight_files(path: Path) -> list[Path]:
    """The weight files a folder's checkpoint consists of (one file, or the shards of its index)."""
    path = Path(path)
    for single, index in (SAFETENSORS, PICKLES):
        if (path / single).exists():
            return [path / single]
        if (path / index).exists():
            try:
                shards = sorted(set(json.loads((path / index).read_text())["weight_map"].values()))
            except (json.JSONDecodeError, KeyError, AttributeError, TypeError) as e:
                raise EncoderError(f"{path / index}: not a weight index ({type(e).__name__}: {e})") from None
            missing = [s for s in shards if not (path / s).exists() or "/" in s or s.startswith(".")]
            if missing:
                raise EncoderError(f"{path / index}: shards {missing[:3]} are missing; re-download the checkpoint")
            return [path / s for s in shards]
    _check_folder(path)
    raise EncoderError(f"{path}: no weights found")


def read_tensors(f: Path) -> dict[str, np.ndarray]:
    """One weight file's tensors: safetensors, or a PyTorch pickle read without running code."""
    f = Path(f)
    if f.suffix == ".safetensors":
        from safetensors.numpy import load_file

        try:
            return load_file(str(f))
        except Exception as e:
            raise EncoderError(f"{f}: unreadable safetensors file ({type(e).__name__}: {e})") from None
    from jaxser.encoders import torch_pickle

    tensors = torch_pickle.state_dict(torch_pickle.load(f), f, keys=("state_dict",))
    bad = [k for k, v in tensors.items() if not isinstance(v, np.ndarray)]
    if bad:
        raise EncoderError(f"{f}: entries {bad[:3]} are not tensors")
    return tensors


def read_weights(path: Path, *, allow_pickle=None) -> dict[str, np.ndarray]:
    """All tensors of a checkpoint folder, floats as float32 numpy arrays, keyed by their HF names."""
    warn_allow_pickle(allow_pickle)
    out: dict[str, np.ndarray] = {}
    for f in weight_files(path):
        for k, v in read_tensors(f).items():
            out[k] = v.astype(np.float32) if v.dtype.kind in "fV" and v.dtype != np.float32 else v
    return out


def provenance(path: Path, files: list[Path] | None = None) -> dict:
    """What a run records of the weights it used: the Hub repo and commit (from the cache's
    `models--owner--name/snapshots/<commit>` layout) or the local folder, and each file's sha256."""
    from jaxser.io import sha256_file

    path = Path(path)
    out: dict = {"folder": str(path)}
    parts = path.parts
    if len(parts) >= 3 and parts[-2] == "snapshots" and parts[-3].startswith("models--"):
        out["repo"] = parts[-3][len("models--"):].replace("--", "/")
        out["revision"] = parts[-1]
    out["sha256"] = {f.name: sha256_file(f) for f in (files if files is not None else weight_files(path))}
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


def random_preset(presets: dict, preset: str | None, overrides: dict, *, default: str, make_arch, make_weights,
                  seed: int) -> tuple[str, dict, object, dict[str, np.ndarray], str]:
    """(preset, config, arch, weights, where) of seeded random weights under the checkpoint's own names,
    so a random model takes the real loading path (`make_arch(config, where)`, `make_weights(arch, seed)`)."""
    preset = preset or default
    config = preset_config(presets, preset, overrides)
    arch = make_arch(config, f"preset {preset!r}")
    return preset, config, arch, make_weights(arch, seed), f"random preset {preset!r}"


def random_tensor(rng: np.random.Generator, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """One seeded float32 tensor of a random-weights model (float64 draws, rounded once): norm gains
    near 1, fan-in scaled normals for matrices, small values for vectors."""
    if "norm.weight" in name:
        return (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
    if len(shape) >= 2:
        return (rng.standard_normal(shape) / np.sqrt(int(np.prod(shape[1:])))).astype(np.float32)
    return (0.02 * rng.standard_normal(shape)).astype(np.float32)


def check_preprocessor(path: Path, want: dict, kind: str | None = None) -> None:
    """preprocessor_config.json, when the folder has one, must describe the front end jaxser
    implements: `feature_extractor_type` `kind` (when given) and the values of `want`."""
    f = Path(path) / "preprocessor_config.json"
    if not f.exists():
        return
    try:
        pc = json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise EncoderError(f"{f} is not valid JSON: {e}") from None
    got = pc.get("feature_extractor_type", kind)
    if kind is not None and got != kind:
        raise EncoderError(f"{f}: feature_extractor_type {got!r}; jaxser implements {kind} only")
    bad = {k: (pc[k], v) for k, v in want.items() if k in pc and int(pc[k]) != v}
    if bad:
        raise EncoderError(f"{f}: front end differs from what jaxser implements (got, expected): {bad}")


def read_converted(path: Path, hint: str) -> tuple[dict, dict[str, np.ndarray]]:
    """(config, float32 weights) of a folder jaxser converted (config.json + model.safetensors),
    through safetensors only; `hint` ends the message when the folder is unusable."""
    path = Path(path)
    cfg = read_config(path)
    if not isinstance(cfg, dict):
        raise EncoderError(f"{path}/config.json: expected a JSON object; {hint}")
    try:
        weights = read_tensors(path / "model.safetensors")
    except EncoderError as e:
        raise EncoderError(f"{e}; {hint}") from None
    return cfg, {k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in weights.items()}


def open_checkpoint(source, *, revision: str | None = None, allow_pickle=None, preset=None,
                    overrides: dict | None = None):
    """(folder, config) of a checkpoint source, refusing options that only apply to random weights."""
    if overrides:
        raise TypeError(f"unexpected keyword arguments for a checkpoint: {sorted(overrides)}")
    if preset is not None:
        raise EncoderError("preset= only applies to source='random'")
    path = resolve(source, revision=revision, allow_pickle=allow_pickle)
    return path, read_config(path)
