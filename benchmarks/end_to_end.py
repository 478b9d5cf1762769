"""End-to-end wall time of the embedded default, cold and warm.

Cold: empty cache (corpora synthesised, every embedding extracted, every XLA program
compiled). Warm: the same study, in a new process, into a new run directory with the cache
kept (embeddings and compiled programs reused from disk; training and report rerun).
Prints each stage's time; the last line is one JSON object with cold_s and warm_s.

    python benchmarks/end_to_end.py [--config NAME_OR_PATH]   (default: the shipped default)
Targets: cold <= 90 s and warm <= 20 s on 2 CPU cores (docs/speed.md says where the time goes).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--config", default=None)
    p.add_argument("--workdir", default=None, help="where cache and runs go (default: a temp folder)")
    a = p.parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="jaxser-e2e-"))
    env = {**os.environ, "JAXSER_CACHE": str(work / "cache")}
    root = Path(__file__).resolve().parents[1]

    def one(tag: str) -> tuple[float, dict]:
        """One run as a user runs it: a fresh process (so 'warm' means cached embeddings and
        cached XLA programs on disk, nothing kept in memory)."""
        argv = [sys.executable, "-m", "jaxser.cli", "run", "--out", str(work / f"run-{tag}")]
        argv += ["--config", a.config] if a.config else []
        t0 = time.perf_counter()
        r = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if r.returncode:
            sys.exit(f"{tag} run failed ({r.returncode}):\n{r.stderr[-4000:]}")
        timings = json.loads((work / f"run-{tag}" / "manifest.json").read_text())["timings"]
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
