"""Scale-out and placement: one device mesh API for a CPU, a GPU, a TPU VM and a TPU pod slice.

Why a separate module: the encoders (data-parallel extraction), `embed` (one shard of the
corpus per host) and `train` (one queue of (model, seed) units per device) all need the same
ideas -- a mesh and its named axes, a batch padded to a multiple of the device count, host
arrays placed on (and gathered back from) devices that may belong to several processes, and
"which part is mine" on a multi-host run -- and each must degrade to exactly the
single-device behaviour when there is one device.

Multi-host model: every host runs the same command (`gcloud compute tpus tpu-vm ssh
--worker=all --command=...`); `initialize_distributed()` connects them; each host extracts
its own share of a corpus on its *local* devices (`resolve_mesh("auto")`, `local_mesh()`),
and training meshes span all devices (`resolve_mesh("auto", devices="all")`, `data_mesh()`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

#: environment variables of an explicitly configured multi-process launch: jax itself reads
#: only the coordinator address; jaxser passes the other two as num_processes / process_id
DISTRIBUTED_ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
#: further variables that switch `initialize_distributed` on (see there)
TRIGGER_ENV = ("JAXSER_DISTRIBUTED", "TPU_PROCESS_ADDRESSES", "TPU_WORKER_HOSTNAMES")


#: mesh axis names: rows of a batch (extraction); the trainer's meshes, over seeds and over the
#: models of a stack (its queues of units are split over every axis alike, so the names only
#: label them)
DATA_AXIS = "data"
SEED_AXIS = "seed"
MODEL_AXIS = "model"
#: ``pad_rows`` fill policy that repeats the last row (any other fill is a constant)
REPEAT_LAST = "repeat_last"


def data_mesh(devices: Sequence | None = None, axis: str = DATA_AXIS) -> Mesh:
    """A 1-D mesh named `axis` over `devices` (default: every device of every process)."""
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("data_mesh: no devices given")
    return Mesh(np.array(devices, dtype=object), (axis,))


def local_mesh(axis: str = DATA_AXIS) -> Mesh:
    """A 1-D mesh over this process's own devices: what per-host extraction uses (its arrays
    are then fully addressable, so results can be read back with `np.asarray`)."""
    return data_mesh(jax.local_devices(), axis)


def resolve_mesh(mesh, *, axis: str = DATA_AXIS, devices: str = "local") -> Mesh | None:
    """The mesh a `mesh=` argument asks for: None -> None (plain single-device jit); a Mesh ->
    itself; "auto" -> a 1-D mesh named `axis` over `devices` when those are more than one
    device, else None.

    devices: "local" (this process's devices: per-host extraction, whose results every host
    reads back itself) or "all" (every device of every process: one program spanning a pod
    slice, e.g. the trainer's seeds)."""
    if mesh is None or isinstance(mesh, Mesh):
        return mesh
    if devices not in ("local", "all"):
        raise ValueError(f"resolve_mesh: devices={devices!r}; expected 'local' or 'all'")
    if mesh == "auto":
        devs = jax.local_devices() if devices == "local" else jax.devices()
        return data_mesh(devs, axis) if len(devs) > 1 else None
    raise ValueError(f"mesh={mesh!r}; expected None, 'auto' or a jax.sharding.Mesh")


def axis_size(mesh: Mesh | None, axis: str) -> int:
    """Devices along `axis` of `mesh`; 1 when there is no mesh or no such axis."""
    return mesh.shape[axis] if mesh is not None and axis in mesh.axis_names else 1


def pad_rows(x: np.ndarray, multiple: int, *, fill) -> np.ndarray:
    """Pad the leading axis to a multiple of `multiple` (returns `x` itself when it is one).

    fill: REPEAT_LAST repeats the last row -- a real row keeps padded inputs numerically
    benign where a zero-length utterance would divide by zero in mean pooling or trip NaN
    checks; or a constant (0 for inputs whose padding is masked out, -1 for labels that mark
    a row as padding)."""
    x = np.asarray(x)
    n = x.shape[0]
    extra = -n % multiple
    if fill == REPEAT_LAST:
        if n == 0:
            raise ValueError("pad_rows: an empty batch has no last row to repeat")
        return x if extra == 0 else np.concatenate([x, np.repeat(x[-1:], extra, axis=0)], axis=0)
    if isinstance(fill, str):
        raise ValueError(f"pad_rows: fill={fill!r}; expected {REPEAT_LAST!r} or a number")
    return x if extra == 0 else np.concatenate([x, np.full((extra,) + x.shape[1:], fill, x.dtype)], axis=0)


def place(x, sharding: NamedSharding) -> jax.Array:
    """A host array placed with `sharding`. Every process passes the same whole array and
    keeps the pieces its own devices hold, so this works for a mesh that spans the devices of
    several hosts (where `jax.device_put` of a host array does not)."""
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def to_host(tree):
    """numpy copies of a tree of arrays. An array spread over devices of several processes (a
    pod slice) is gathered first, so every process gets the whole value; every process must
    make the same calls, which identical code on every host does."""
    def one(a):
        if isinstance(a, jax.Array) and not a.is_fully_addressable:
            from jax.experimental import multihost_utils
            return np.asarray(multihost_utils.process_allgather(a, tiled=True))
        return np.asarray(a)
    return jax.tree.map(one, tree)


@dataclass(frozen=True)
class LanePlacement:
    """How the trainer lays out its work: ``lanes`` queues of units, one per device of the mesh
    (1 without one); ``lane`` puts an array with a leading lane axis split over every mesh
    axis, ``rep`` puts an array whole on every device (both ``jnp.asarray`` without a mesh)."""

    lanes: int
    devices: int
    lane: Callable
    rep: Callable


def lane_placement(mesh: Mesh | None) -> LanePlacement:
    """The trainer's ``LanePlacement`` on ``mesh`` (None: the default device)."""
    if mesh is None:
        return LanePlacement(1, 1, jnp.asarray, jnp.asarray)
    lane_sh = NamedSharding(mesh, P(tuple(mesh.axis_names)))
    rep_sh = NamedSharding(mesh, P())
    n = int(mesh.devices.size)
    return LanePlacement(n, n, lambda a: place(a, lane_sh), lambda a: place(a, rep_sh))


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
    return [jax.device_put(pad_rows(a, mesh.devices.size, fill=REPEAT_LAST), sh) for a in arrays], n


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
