"""Reading a full-size `pytorch_model.bin`: jaxser's restricted reader vs `torch.load`, side by side.

Writes the weights of a full-size architecture (seeded random values; reading does not depend
on them) with `torch.save`, as the Hub's pickle-only releases are, and the same tensors as
`model.safetensors`. Each measurement runs in a fresh subprocess (peak RSS from
`resource.getrusage`, the interpreter and each case's own imports included: the encoder cases
import jax, `read_torch` imports torch), best of --rounds:

- `read_ours`: `torch_pickle.load` + a float32 copy of every tensor (what the encoders need);
- `read_torch`: `torch.load(weights_only=True, mmap=True)` + `.float().numpy()` copies (the reference);
- `read_safetensors`: `safetensors.numpy.load_file` (the same tensors in safetensors);
- `encoder_bin` / `encoder_safetensors`: `jaxser.encoders.load(folder)` of each layout, whole
  (read, convert, digest the weights: the disk and memory a study needs per checkpoint).

    python benchmarks/checkpoint_load.py --preset base       # wav2vec2-base size (95 M parameters)
    python benchmarks/checkpoint_load.py --preset large      # wav2vec2-large / XLS-R 300M / MMS 300M size

Needs torch (CPU) to write the pickle and run the reference. The last line printed is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORK = {
    "read_ours": """
from jaxser.encoders import torch_pickle
import numpy as np
sd = torch_pickle.load(FOLDER / "pytorch_model.bin")
out = {k: np.array(v, dtype=np.float32) for k, v in sd.items()}
""",
    "read_torch": """
import torch
sd = torch.load(FOLDER / "pytorch_model.bin", weights_only=True, mmap=True)
out = {k: v.float().numpy().copy() for k, v in sd.items()}
""",
    "read_safetensors": """
from safetensors.numpy import load_file
out = load_file(str(FOLDER / "st" / "model.safetensors"))
""",
    "encoder_bin": """
from jaxser import encoders
out = encoders.load(str(FOLDER))
""",
    "encoder_safetensors": """
from jaxser import encoders
out = encoders.load(str(FOLDER / "st"))
""",
}


def _one(kind: str, folder: Path) -> dict:
    code = ("import time, resource\nfrom pathlib import Path\nFOLDER = Path(%r)\nt0 = time.perf_counter()\n"
            % str(folder)
            + WORK[kind] + "\nimport json\nprint(json.dumps({'s': time.perf_counter() - t0, 'rss_mib': "
            "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="base", choices=["small", "base", "large"])
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args(argv)
    import torch
    from safetensors.torch import save_file

    from jaxser.encoders import wav2vec2

    config = {**wav2vec2.PRESETS[a.preset]}
    arch = wav2vec2.arch_from_config(config, a.preset)
    weights = wav2vec2.random_weights(arch, 0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "st").mkdir()
        for f in (folder, folder / "st"):
            (f / "config.json").write_text(json.dumps(config))
        state = {k: torch.from_numpy(v) for k, v in weights.items()}
        torch.save(state, folder / "pytorch_model.bin")
        save_file(state, str(folder / "st" / "model.safetensors"))
        size = (folder / "pytorch_model.bin").stat().st_size
        out = {"preset": a.preset, "parameters": int(sum(v.size for v in weights.values())),
               "bin_mib": round(size / 2**20, 1), "cpu": platform.processor() or platform.machine()}
        try:
            out["cpu"] = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                              if line.startswith("model name"))
        except (OSError, StopIteration):
            pass
        for kind in WORK:
            runs = [_one(kind, folder) for _ in range(a.rounds)]
            out[f"{kind}_s"] = round(min(r["s"] for r in runs), 3)
            out[f"{kind}_rss_mib"] = round(min(r["rss_mib"] for r in runs), 1)
            print(f"{kind}: {out[f'{kind}_s']} s, peak RSS {out[f'{kind}_rss_mib']} MiB", flush=True)
        out["ratio_read"] = round(out["read_torch_s"] / out["read_ours_s"], 2)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
