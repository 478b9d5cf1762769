"""End-to-end wall time of the embedded default, cold and warm.

Cold: empty cache (corpora synthesised, every embedding extracted). Warm: the same study
into a new run directory with the cache kept (embeddings reused; training and report
rerun). Prints each stage's time; the last line is one JSON object with cold_s and warm_s.

    python benchmarks/end_to_end.py [--config experiments/configs/default.toml]
Targets (issue 7): cold <= 180 s and warm <= 30 s on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--config", default=None)
    p.add_argument("--workdir", default=None, help="where cache and runs go (default: a temp folder)")
    a = p.parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="jaxser-e2e-"))
    os.environ["JAXSER_CACHE"] = str(work / "cache")  # before jaxser reads it
    from experiments import cross_corpus

    def one(tag: str) -> tuple[float, dict]:
        argv = ["--out", str(work / f"run-{tag}")] + (["--config", a.config] if a.config else [])
        cfg = cross_corpus.parse_args(argv)
        t0 = time.perf_counter()
        out = cross_corpus.run(cfg, log=lambda *m: None)
        wall = time.perf_counter() - t0
        timings = json.loads((out / "manifest.json").read_text())["timings"]
        return wall, timings

    cold, t_cold = one("cold")
    warm, t_warm = one("warm")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}")
    print(f"{'stage':32s} {'cold s':>9s} {'warm s':>9s}")
    for k in t_cold:
        print(f"{k:32s} {t_cold[k]:9.1f} {t_warm.get(k, float('nan')):9.1f}")
    print(f"{'wall (incl. imports/jit)':32s} {cold:9.1f} {warm:9.1f}")
    print(json.dumps({"cold_s": round(cold, 2), "warm_s": round(warm, 2),
                      "stages_cold": {k: round(v, 2) for k, v in t_cold.items()},
                      "stages_warm": {k: round(v, 2) for k, v in t_warm.items()}}))


if __name__ == "__main__":
    main()
