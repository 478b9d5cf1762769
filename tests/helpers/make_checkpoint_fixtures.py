"""Write tests/data/checkpoints: PyTorch checkpoints written by torch itself, in each released layout.

    python -m tests.helpers.make_checkpoint_fixtures        # needs torch (CPU) and safetensors

The weights are those of the stored reference folders (tests/data/reference), so a release read
through jaxser's restricted unpickler must give exactly the encoder the converted folder gives.
Beside them, `tensors_*.pt` hold every dtype, views, offsets, strides and shared storages, and
`tensors_expected.safetensors` what `torch.load(weights_only=True)` returned for them (bfloat16
as its raw uint16 bits), so the reader is checked bit for bit without torch.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "tests" / "data" / "reference"
OUT = ROOT / "tests" / "data" / "checkpoints"


def _state(folder: Path):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def tensor_cases():
    """name -> tensor, covering what a checkpoint can hold."""
    import torch

    g = torch.Generator().manual_seed(0)
    base = torch.randn(6, 8, generator=g)
    return {
        "f32": base, "f64": torch.randn(3, generator=g, dtype=torch.float64),
        "f16": torch.randn(4, 5, generator=g).half(), "bf16": torch.randn(7, generator=g).to(torch.bfloat16),
        "i64": torch.arange(-5, 5), "i32": torch.arange(6, dtype=torch.int32).reshape(2, 3),
        "i16": torch.tensor([-3, 7], dtype=torch.int16), "i8": torch.tensor([-1, 2], dtype=torch.int8),
        "u8": torch.tensor([0, 255], dtype=torch.uint8), "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 4),
        "view_offset": base[2:, 1:5],          # shares base's storage, with an offset
        "view_strided": base[:, ::3],          # non-unit stride
        "view_transposed": base.t(),           # permuted strides
        "shared_again": base,                  # the same tensor twice
    }


def expected_arrays(loaded) -> dict[str, np.ndarray]:
    import torch

    out = {}
    for k, v in loaded.items():
        v = v.contiguous()
        out[k] = v.view(torch.int16).numpy() if v.dtype == torch.bfloat16 else v.numpy()
    return {k: np.array(v, order="C") for k, v in out.items()}  # ascontiguousarray would make 0-d 1-d


def write(out: Path = OUT) -> None:
    import argparse as ap

    import torch
    from safetensors.numpy import save_file

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    cases = tensor_cases()
    torch.save(cases, out / "tensors_zip.pt")
    torch.save(cases, out / "tensors_legacy.pt", _use_new_zipfile_serialization=False)
    for name in ("tensors_zip.pt", "tensors_legacy.pt"):
        loaded = torch.load(out / name, weights_only=True)
        assert expected_arrays(loaded).keys() == cases.keys()
    expected = expected_arrays(torch.load(out / "tensors_zip.pt", weights_only=True))
    save_file(expected, str(out / "tensors_expected.safetensors"),  # safetensors keeps no 0-d shape
              metadata={"shapes": json.dumps({k: list(v.shape) for k, v in expected.items()})})

    # transformers' layouts, with the stored wav2vec2-base reference's weights
    w2v = REFERENCE / "wav2vec2-base"
    state = _state(w2v)
    bin_only = out / "wav2vec2-bin"
    bin_only.mkdir()
    shutil.copy(w2v / "config.json", bin_only / "config.json")
    torch.save(state, bin_only / "pytorch_model.bin")  # what save_pretrained wrote before safetensors
    sharded = out / "wav2vec2-sharded-bin"
    sharded.mkdir()
    shutil.copy(w2v / "config.json", sharded / "config.json")
    keys = sorted(state)
    halves = {"pytorch_model-00001-of-00002.bin": keys[: len(keys) // 2],
              "pytorch_model-00002-of-00002.bin": keys[len(keys) // 2:]}
    for fname, ks in halves.items():
        torch.save({k: state[k] for k in ks}, sharded / fname)
    index = {"metadata": {"total_size": sum(v.numel() * v.element_size() for v in state.values())},
             "weight_map": {k: f for f, ks in halves.items() for k in ks}}
    (sharded / "pytorch_model.bin.index.json").write_text(json.dumps(index, indent=2) + "\n")

    # SpeechBrain's x-vector release: hyperparams.yaml + embedding_model.ckpt + mean_var_norm_emb.ckpt
    from jaxser.encoders.xvector import EMB_MEAN_KEY

    xv = REFERENCE / "xvector"
    state = _state(xv)
    sb = out / "xvector-speechbrain"
    sb.mkdir()
    shutil.copy(xv / "hyperparams.yaml", sb / "hyperparams.yaml")
    mean = state.pop(EMB_MEAN_KEY)
    for k in [k for k in state if k.endswith("running_mean")]:  # BatchNorm's counter, as SpeechBrain saves it
        state[k[: -len("running_mean")] + "num_batches_tracked"] = torch.tensor(1000)
    torch.save(state, sb / "embedding_model.ckpt")
    torch.save({"count": 1000, "glob_mean": mean, "glob_std": torch.ones_like(mean), "spk_dict_mean": {},
                "spk_dict_std": {}, "spk_dict_count": {}}, sb / "mean_var_norm_emb.ckpt")

    # emotion2vec: FunASR's model.pt ({"model": state}) and fairseq's checkpoint with its training state
    e2v = REFERENCE / "emotion2vec-release"
    state = _state(e2v)
    funasr = out / "emotion2vec-funasr"
    funasr.mkdir()
    for f in ("config.yaml", "tokens.txt"):
        shutil.copy(e2v / f, funasr / f)
    torch.save({"model": state}, funasr / "model.pt")
    fairseq = out / "emotion2vec-fairseq"
    fairseq.mkdir()
    conf = json.loads((e2v / "model_conf.json").read_text())
    torch.save({"cfg": {"model": conf, "common": {"seed": 1}}, "model": state,
                "args": ap.Namespace(arch="data2vec_multi", seed=1),
                "optimizer_history": [{"criterion_name": "ModelCriterion", "num_updates": 100000,
                                       "best": np.float64(0.25)}],
                "extra_state": {"epoch": 5, "best": np.float32(0.5), "steps": np.int64(100000)}},
               fairseq / "emotion2vec_base.pt")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    write(parser.parse_args(argv).out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
