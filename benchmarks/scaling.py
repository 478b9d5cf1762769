"""Extraction throughput (audio seconds per wall second) of jaxser's wav2vec2 encoder as the
device count grows: 1, 2, 4 host (CPU) devices, and an accelerator when one is present.

Architecture: the random-wav2vec2 presets (seeded random weights, the real loading path);
throughput does not depend on the weights. Every configuration runs in its own subprocess,
because XLA_FLAGS=--xla_force_host_platform_device_count=N is read when jax starts. Each
worker: loads the encoder with mesh="auto" (batches split over every local device,
parameters replicated), runs the utterances once to compile every bucket shape, then times
--rounds passes and keeps the best.

CPU host devices are a way to exercise the sharded code path, not a way to go faster: N
"devices" share the same cores (2 on the machine this was written on), so expect ratios near
(or below) 1. The accelerator part (wav2vec2-base and -large in bfloat16, one process, every
local device) runs only when jax finds a GPU or TPU; its ratio is to the 1-device CPU figure
of the same preset when that was measured, else null.

    python benchmarks/scaling.py --quick        # small preset, short audio: ~1-2 min on 2 cores
    python benchmarks/scaling.py                # small + base presets on CPU, then the accelerator

The last line printed is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing


def worker(a) -> None:
    """One configuration in this process: print one JSON line."""
    import jax
    import numpy as np

    from jaxser.encoders import wav2vec2

    rng = np.random.default_rng(a.seed)
    secs = rng.uniform(a.min_seconds, a.max_seconds, a.n)
    waves = [0.1 * rng.standard_normal(int(s * 16000)).astype(np.float32) for s in secs]
    kw = {} if a.max_batch is None else {"max_batch": a.max_batch}
    enc = wav2vec2.load("random", preset=a.preset, dtype=a.dtype, mesh="auto", **kw)
    t0 = time.perf_counter()
    enc.embed(waves)  # compiles every bucket shape
    warm = time.perf_counter() - t0
    best = float("inf")
    for _ in range(a.rounds):
        t0 = time.perf_counter()
        out = enc.embed(waves)
        best = min(best, time.perf_counter() - t0)
    assert np.all(np.isfinite(out))
    print(json.dumps({"preset": a.preset, "dtype": a.dtype, "platform": jax.default_backend(),
                      "devices": jax.local_device_count(), "device_kind": jax.local_devices()[0].device_kind,
                      "audio_s": round(float(secs.sum()), 2), "wall_s": round(best, 3),
                      "throughput": round(float(secs.sum()) / best, 2), "warmup_s": round(warm, 2),
                      "compilations": enc.compilations}))


def run_worker(a, preset: str, dtype: str, env_extra: dict) -> dict:
    args = [sys.executable, __file__, "--worker", "--preset", preset, "--dtype", dtype, "--n", str(a.n),
            "--rounds", str(a.rounds), "--min-seconds", str(a.min_seconds), "--max-seconds", str(a.max_seconds),
            "--seed", str(a.seed)] + ([] if a.max_batch is None else ["--max-batch", str(a.max_batch)])
    env = {**os.environ, **env_extra}
    p = subprocess.run(args, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"worker {preset}/{dtype}/{env_extra} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def accelerator() -> str | None:
    """'gpu' / 'tpu' when jax (with its default platform choice) finds one, else None."""
    code = "import jax; print(jax.default_backend())"
    env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    backend = p.stdout.strip().splitlines()[-1] if p.returncode == 0 and p.stdout.strip() else "cpu"
    return backend if backend in ("gpu", "tpu", "cuda", "rocm") else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small preset only, 16 utterances of 1-3 s, 1 round")
    ap.add_argument("--presets", default=None, help="comma-separated CPU presets (default small,base; quick small)")
    ap.add_argument("--devices", default="1,2,4", help="CPU host-device counts")
    ap.add_argument("--n", type=int, default=None, help="utterances (default 32; quick 16)")
    ap.add_argument("--rounds", type=int, default=None, help="timed passes, best kept (default 2; quick 1)")
    ap.add_argument("--min-seconds", type=float, default=None)
    ap.add_argument("--max-seconds", type=float, default=None)
    ap.add_argument("--max-batch", type=int, default=None, help="encoder max_batch (default: the encoder's)")
    ap.add_argument("--no-accelerator", action="store_true", help="skip the GPU/TPU part")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--preset", default="small", help=argparse.SUPPRESS)
    ap.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
    a = ap.parse_args()
    q = a.quick
    a.n = a.n or (16 if q else 32)
    a.rounds = a.rounds or (1 if q else 2)
    a.min_seconds = a.min_seconds if a.min_seconds is not None else (1.0 if q else 2.0)
    a.max_seconds = a.max_seconds if a.max_seconds is not None else (3.0 if q else 8.0)
    if a.worker:
        return worker(a)

    presets = (a.presets or ("small" if q else "small,base")).split(",")
    counts = [int(c) for c in a.devices.split(",")]
    result = {"machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
              "n": a.n, "seconds": [a.min_seconds, a.max_seconds], "rounds": a.rounds, "cpu": {}, "accelerator": {}}
    for preset in presets:
        rows = {}
        for d in counts:
            r = run_worker(a, preset, "float32", {"JAX_PLATFORMS": "cpu",
                                                  "XLA_FLAGS": f"--xla_force_host_platform_device_count={d}"})
            rows[d] = r
        base = rows[counts[0]]["throughput"]
        for d, r in rows.items():
            r["ratio"] = round(r["throughput"] / base, 3)
            print(f"cpu  {preset:6s} {d} device(s): {r['throughput']:8.2f} audio-s/s  "
                  f"(x{r['ratio']:.2f} vs {counts[0]}; wall {r['wall_s']}s, warm-up {r['warmup_s']}s)")
        result["cpu"][preset] = {str(d): r for d, r in rows.items()}
    acc = None if a.no_accelerator else accelerator()
    result["accelerator_backend"] = acc
    if acc is None:
        print("no GPU/TPU found by jax: accelerator part skipped")
    else:
        env = {"JAX_PLATFORMS": ""}
        for preset in ("base", "large"):
            r = run_worker(a, preset, "bfloat16", env)
            cpu1 = result["cpu"].get(preset, {}).get("1")
            r["ratio_to_cpu_1"] = round(r["throughput"] / cpu1["throughput"], 2) if cpu1 else None
            print(f"{acc:4s} {preset:6s} bf16 {r['devices']} device(s) {r['device_kind']}: "
                  f"{r['throughput']:8.2f} audio-s/s (x{r['ratio_to_cpu_1']} vs 1 CPU device, float32)")
            result["accelerator"][preset] = r
    print(json.dumps(result))


if __name__ == "__main__":
    main()
