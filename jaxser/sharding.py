"""Scale-out helpers: one device mesh API for a CPU, a GPU, a TPU VM and a TPU pod slice.

Why a separate module: the encoders (data-parallel extraction), `embed` (one shard of the
corpus per host) and `train` (seeds over devices) all need the same three ideas -- a 1-D mesh,
a batch padded to a multiple of the device count, and "which part is mine" on a multi-host
job -- and each must degrade to exactly the single-device behaviour when there is one device.

Multi-host model: every host runs the same command (`gcloud compute tpus tpu-vm ssh
--worker=all --command=...`); `initialize_distributed()` connects them; each host extracts
its own share of a corpus on its *local* devices (`local_mesh()`), and training meshes span
all devices (`data_mesh()`).
"""
from __future__ import annotations

import os
from typing import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

#: environment variables of an explicitly configured multi-process launch: jax itself reads
#: only the coordinator address; jaxser passes the other two as num_processes / process_id
DISTRIBUTED_ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
#: further variables that switch `initialize_distributed` on (see there)
TRIGGER_ENV = ("JAXSER_DISTRIBUTED", "TPU_PROCESS_ADDRESSES", "TPU_WORKER_HOSTNAMES")


def data_mesh(devices: Sequence | None = None, axis: str = "data") -> Mesh:
    """A 1-D mesh named `axis` over `devices` (default: every device of every process)."""
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("data_mesh: no devices given")
    return Mesh(np.array(devices, dtype=object), (axis,))


def local_mesh(axis: str = "data") -> Mesh:
    """A 1-D mesh over this process's own devices: what per-host extraction uses (its arrays
    are then fully addressable, so results can be read back with `np.asarray`)."""
    return data_mesh(jax.local_devices(), axis)


def resolve_mesh(mesh) -> Mesh | None:
    """None -> None (plain single-device jit); "auto" -> `local_mesh()` when this process has
    more than one device, else None; a Mesh -> itself."""
    if mesh is None or isinstance(mesh, Mesh):
        return mesh
    if mesh == "auto":
        return local_mesh() if jax.local_device_count() > 1 else None
    raise ValueError(f"mesh={mesh!r}; expected None, 'auto' or a jax.sharding.Mesh")


def pad_rows(x: np.ndarray, multiple: int) -> np.ndarray:
    """Pad the leading axis to a multiple of `multiple` by repeating the last row.

    Repeating a real row (not zeros) keeps padding rows numerically benign: a zero-length
    utterance would divide by zero in mean pooling and could trip NaN checks."""
    x = np.asarray(x)
    n = x.shape[0]
    if n == 0:
        raise ValueError("pad_rows: empty batch")
    extra = -n % multiple
    if extra == 0:
        return x
    return np.concatenate([x, np.repeat(x[-1:], extra, axis=0)], axis=0)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading axis split over every mesh axis, the rest replicated."""
    return NamedSharding(mesh, P(tuple(mesh.axis_names)))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def shard_batch(mesh: Mesh | None, *arrays: np.ndarray) -> tuple[list, int]:
    """Put host arrays on the mesh, split along their (shared) leading axis.

    Returns (device arrays, real row count): rows beyond the real count are padding that the
    caller drops with `unpad`. With mesh=None the arrays go to the default device unpadded."""
    n = int(np.shape(arrays[0])[0])
    if any(int(np.shape(a)[0]) != n for a in arrays):
        raise ValueError(f"shard_batch: leading axes differ: {[np.shape(a) for a in arrays]}")
    if mesh is None:
        return [jax.device_put(np.asarray(a)) for a in arrays], n
    sh = batch_sharding(mesh)
    return [jax.device_put(pad_rows(a, mesh.devices.size), sh) for a in arrays], n


def replicate(mesh: Mesh | None, tree):
    """Every leaf of `tree` copied to every device of the mesh (data-parallel parameters)."""
    if mesh is None:
        return tree
    return jax.device_put(tree, replicated(mesh))


def fsdp(mesh: Mesh | None, tree, min_size: int = 1 << 14, stacked: bool = False):
    """Fully-sharded parameters: each leaf of at least `min_size` elements is split along its
    largest axis that the device count divides; smaller leaves (biases, norms) are replicated.
    stacked=True: the leaves carry a leading layer axis that a `lax.scan` walks; it is never
    the split axis (each scan step would otherwise gather the whole stacked weight).
    XLA (GSPMD) inserts the all-gathers inside the jitted forward pass, so each device stores
    only ~1/N of the large matrices -- for models whose weights do not fit one device; it costs
    communication on every call, so data-parallel replication is the default."""
    if mesh is None:
        return tree
    n, axis = mesh.devices.size, tuple(mesh.axis_names)

    def place(a):
        shape = np.shape(a)
        dims = [d for d in np.argsort(shape)[::-1] if shape[d] % n == 0 and shape[d] >= n and not (stacked and d == 0)]
        if int(np.prod(shape, dtype=np.int64)) < min_size or not dims:
            return jax.device_put(a, replicated(mesh))
        spec = [None] * len(shape)
        spec[int(dims[0])] = axis
        return jax.device_put(a, NamedSharding(mesh, P(*spec)))

    return jax.tree.map(place, tree)


def unpad(x, n: int) -> np.ndarray:
    """Device result -> host numpy, padding rows dropped."""
    return np.asarray(x)[:n]


# ----------------------------------------------------------------------------- multi-host
def _cloud_tpu_multihost() -> bool:
    """True when TPU_PROCESS_ADDRESSES or TPU_WORKER_HOSTNAMES lists more than one worker (the
    variables jax's own GKE TPU detection reads; one entry on a single-host slice). On a
    plain Cloud TPU VM pod slice jax finds its workers from the GCE metadata server instead,
    which is not queried here: set JAXSER_DISTRIBUTED=1 there."""
    for var in ("TPU_PROCESS_ADDRESSES", "TPU_WORKER_HOSTNAMES"):
        hosts = os.environ.get(var, "")
        if hosts.strip():
            return len([h for h in hosts.split(",") if h.strip()]) > 1
    return False


def initialize_distributed(**kwargs) -> bool:
    """Call `jax.distributed.initialize(**kwargs)` only when this is a multi-process launch.

    Multi-process means one of (checked in this order):
      * JAX_COORDINATOR_ADDRESS ("host:port" of process 0) is set -- GPU clusters, several CPU
        processes, any manual launch. jax reads that variable itself; jaxser passes
        JAX_NUM_PROCESSES and JAX_PROCESS_ID as num_processes / process_id (jax would
        otherwise need SLURM / Open MPI / Kubernetes auto-detection to find them);
      * JAXSER_DISTRIBUTED=1 -- e.g. on a Cloud TPU VM pod slice, where jax auto-detects
        coordinator, process count and id from the TPU VM metadata;
      * TPU_PROCESS_ADDRESSES / TPU_WORKER_HOSTNAMES list more than one worker (TPU on GKE);
      * keyword arguments were given (passed through unchanged).
    Otherwise (a laptop, one GPU machine, a single-host TPU VM, Colab) it does nothing, so
    the same script runs everywhere. Returns whether it initialized; calling it twice is safe.
    Must run before anything touches a device (jax fixes its backends on first use).
    """
    forced = os.environ.get("JAXSER_DISTRIBUTED", "").strip().lower() in ("1", "true", "yes")
    if not (kwargs or forced or os.environ.get("JAX_COORDINATOR_ADDRESS") or _cloud_tpu_multihost()):
        return False
    if jax.distributed.is_initialized():
        return True
    for key, env in (("num_processes", "JAX_NUM_PROCESSES"), ("process_id", "JAX_PROCESS_ID")):
        if key not in kwargs and os.environ.get(env, "").strip():
            try:
                kwargs[key] = int(os.environ[env])
            except ValueError:
                raise ValueError(f"{env}={os.environ[env]!r} is not an integer") from None
    jax.distributed.initialize(**kwargs)
    return True


def process_info() -> tuple[int, int]:
    """(process_index, process_count) of this host; (0, 1) when not distributed."""
    return jax.process_index(), jax.process_count()


def host_shard(ds, index: int | None = None, count: int | None = None):
    """This process's part of a `datasets.Dataset`: contiguous blocks, the same boundaries as
    `datasets.distributed.split_dataset_by_node` / `ds.shard(count, index, contiguous=True)`
    (sizes differ by at most one, the first `len % count` blocks are one row longer), but
    also valid when there are more hosts than rows (those hosts get an empty Dataset, where
    `datasets` raises). Deterministic, no shuffling: every row belongs to exactly one host.
    index/count default to `jax.process_index()` / `jax.process_count()`."""
    if index is None or count is None:
        pi, pc = process_info()
        index = pi if index is None else index
        count = pc if count is None else count
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"host_shard: process index {index} is outside 0..{count - 1}")
    if count == 1:
        return ds
    div, mod = divmod(len(ds), count)
    start = div * index + min(index, mod)
    size = div + (index < mod)
    return ds.select(range(start, start + size) if size else [])  # datasets refuses an empty range at the end
