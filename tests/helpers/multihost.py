"""Test helpers for real multi-process runs: N jax.distributed CPU processes on localhost
(what a multi-host launch looks like to jaxser), and the small training cell that the
pod-slice test trains both in the pod and on one device."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def run_processes(script: str, args: list[str], workdir: Path, *, n: int = 2, local_devices: int | None = None,
                  timeout: float = 300) -> list[str]:
    """Run `python -c script *args` as n processes joined by jax.distributed (coordinator on a
    free localhost port, found through JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES /
    JAX_PROCESS_ID as `sharding.initialize_distributed()` reads them), each with
    `local_devices` CPU devices. Output goes to files, not pipes: a full pipe would block a
    process inside jax's shutdown barrier and hang the others. Returns each process's output;
    fails with it when one exits non-zero."""
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    procs, logs = [], [workdir / f"process{i}.log" for i in range(n)]
    for i in range(n):
        env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COORDINATOR_ADDRESS": f"localhost:{port}",
               "JAX_NUM_PROCESSES": str(n), "JAX_PROCESS_ID": str(i),
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        if local_devices:
            env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={local_devices}"
        with open(logs[i], "w") as log:
            procs.append(subprocess.Popen([sys.executable, "-c", script, *map(str, args)], env=env, cwd=ROOT,
                                          stdout=log, stderr=subprocess.STDOUT))
    try:
        for i, p in enumerate(procs):
            p.wait(timeout=timeout)
            assert p.returncode == 0, f"process {i} failed:\n{logs[i].read_text()[-4000:]}"
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return [log.read_text() for log in logs]


def train_args(x, emotions):
    """One small training cell from embeddings and their emotion labels."""
    from jaxser.heads import HeadConfig
    from jaxser.train import TrainConfig

    y = np.array([sorted(set(emotions)).index(e) for e in emotions], np.int32)
    args = (x[:14], y[:14], x[14:19], y[14:19], {"t": x[19:]})
    kw = dict(n_classes=int(y.max()) + 1, head=HeadConfig(kind="fcn", hidden=(16,)),
              config=TrainConfig(max_epochs=6, patience=None, batch_size=8), seeds=[0, 1, 2])
    return args, kw
