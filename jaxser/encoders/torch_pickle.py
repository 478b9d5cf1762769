"""Read PyTorch checkpoints without torch and without running any code from them.

`torch.save` writes a pickle whose tensors point at raw storages: in the zip format
(`<archive>/data.pkl` + `<archive>/data/<key>`) or the legacy format (five pickles and the
storages back to back in one file). Unpickling such a file with `pickle`/`torch.load` runs
whatever callables the file names. This reader resolves every global through an allow-list
of jaxser's own functions: tensors are rebuilt from their storages into numpy arrays
(memory-mapped where the zip stores them uncompressed; views, offsets, strides and shared
storages honoured, bounds checked), numpy scalars and dtypes become plain numpy values, and
any other global is refused with one line naming it — before anything is called. Checkpoints
that carry training state beside their weights (fairseq's `cfg`, FunASR's metadata) can name
module prefixes whose objects are kept as inert `Record`s: their arguments are stored, nothing
of theirs is imported or run.
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from jaxser.encoders.base import EncoderError

#: torch storage class -> numpy dtype (bfloat16 through ml_dtypes, which jax already needs)
_STORAGES = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16", "BFloat16Storage": "bfloat16",
    "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16", "CharStorage": "int8",
    "ByteStorage": "uint8", "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128", "UntypedStorage": "uint8",
}
#: torch dtype objects (`torch.float32`, ...) as _rebuild_tensor_v3 names them
_TORCH_DTYPES = {"float32": "float32", "float": "float32", "float64": "float64", "double": "float64",
                 "float16": "float16", "half": "float16", "bfloat16": "bfloat16", "int64": "int64", "long": "int64",
                 "int32": "int32", "int": "int32", "int16": "int16", "short": "int16", "int8": "int8",
                 "uint8": "uint8", "bool": "bool", "complex64": "complex64", "complex128": "complex128"}
_KNOWN_DTYPES = frozenset(_STORAGES.values()) | frozenset(_TORCH_DTYPES.values())
#: the largest pickle stream read (a state dict's pickle is kilobytes; this bounds a zip bomb)
MAX_PICKLE_BYTES = 256 << 20
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


class CheckpointError(EncoderError):
    """A checkpoint that cannot be read safely, or is damaged."""


def _dtype(name) -> np.dtype:
    if name not in _KNOWN_DTYPES:  # a stand-in's attribute rewritten by a BUILD opcode, say
        raise CheckpointError(f"refused element type {str(name)[:40]!r}: only numeric tensors are read")
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


class _StorageType:
    """What a storage global (`torch.FloatStorage`) stands for: its element type."""

    def __init__(self, dtype: str):
        self.dtype = dtype


class _TorchDType(_StorageType):
    pass


class Record:
    """An object of an allowed data-only namespace (e.g. fairseq's training state), kept inert:
    its constructor arguments and pickled state are stored, nothing of its class is imported."""

    args: tuple = ()
    state: Any = None

    def __init__(self, *args):
        self.args = args

    def __setstate__(self, state):
        self.state = state

    def get(self, key, default=None):
        """Dict-like access to the pickled attributes (an argparse.Namespace's, say)."""
        return self.state.get(key, default) if isinstance(self.state, dict) else default

    def __repr__(self) -> str:
        return f"Record({type(self).__qualname__})"


def _record_type(qualname: str) -> type:
    return type(qualname.rsplit(".", 1)[-1], (Record,), {"__qualname__": qualname})


def _latin1_bytes(text, encoding="latin1"):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise CheckpointError("malformed bytes literal in a protocol-2 pickle")
    return text.encode("latin1")


def _reconstruct(cls, *args):
    """copyreg's `_reconstructor` / `__newobj__` for protocol 0-1 pickles: Records only."""
    if not (isinstance(cls, type) and issubclass(cls, Record)):
        raise CheckpointError(f"refused to construct {cls!r}: only inert records are rebuilt")
    return cls()


class _Source:
    """The raw bytes of one checkpoint's storages, by key."""

    def __init__(self, path: Path):
        self.path = path
        self.storages: dict[str, np.ndarray] = {}

    def storage(self, key: str, dtype: np.dtype, numel: int) -> np.ndarray:
        raise NotImplementedError


class _ZipSource(_Source):
    def __init__(self, path: Path, zf: zipfile.ZipFile, prefix: str):
        super().__init__(path)
        self.zf, self.prefix = zf, prefix
        order = self._read(prefix + "byteorder", 16) if prefix + "byteorder" in zf.namelist() else b"little"
        self.big_endian = order.strip() == b"big"

    def _read(self, name: str, limit: int) -> bytes:
        info = self.zf.getinfo(name)
        if info.file_size > limit:
            raise CheckpointError(f"{self.path}: {name} declares {info.file_size} bytes (more than {limit}); "
                                  "refusing to inflate it")
        with self.zf.open(info) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise CheckpointError(f"{self.path}: {name} inflates past {limit} bytes; refusing it")
        return data

    def pickle_bytes(self) -> bytes:
        return self._read(self.prefix + "data.pkl", MAX_PICKLE_BYTES)

    def storage(self, key: str, dtype: np.dtype, numel: int) -> np.ndarray:
        if key in self.storages:
            return self.storages[key]
        name = f"{self.prefix}data/{key}"
        try:
            info = self.zf.getinfo(name)
        except KeyError:
            raise CheckpointError(f"{self.path}: storage {key!r} is missing from the archive") from None
        nbytes = numel * dtype.itemsize
        if info.file_size != nbytes:
            raise CheckpointError(f"{self.path}: storage {key!r} holds {info.file_size} bytes, its tensors "
                                  f"need {nbytes} ({numel} x {dtype})")
        if info.compress_type == zipfile.ZIP_STORED and nbytes:
            with open(self.path, "rb") as f:  # the local header gives where the data starts
                f.seek(info.header_offset)
                head = f.read(30)
            if len(head) < 30 or head[:4] != b"PK\x03\x04":
                raise CheckpointError(f"{self.path}: damaged zip entry {name}")
            name_len, extra_len = struct.unpack("<HH", head[26:30])
            start = info.header_offset + 30 + name_len + extra_len
            if start + nbytes > self.path.stat().st_size:
                raise CheckpointError(f"{self.path}: storage {key!r} runs past the end of the file (truncated?)")
            raw = np.memmap(self.path, dtype=np.uint8, mode="r", offset=start, shape=(nbytes,))
        else:
            raw = np.frombuffer(self._read(name, nbytes), dtype=np.uint8)
        arr = raw.view(dtype.newbyteorder(">") if self.big_endian and dtype.itemsize > 1 else dtype)
        self.storages[key] = arr
        return arr


class _LegacySource(_Source):
    """The non-zip format: storages follow the pickles, each an int64 element count + its bytes,
    in the order of the storage-key list pickled after the object."""

    def __init__(self, path: Path):
        super().__init__(path)
        self.declared: dict[str, tuple[np.dtype, int]] = {}

    def storage(self, key: str, dtype: np.dtype, numel: int) -> np.ndarray:
        if key in self.declared and self.declared[key] != (dtype, numel):
            raise CheckpointError(f"{self.path}: storage {key!r} is declared twice with different types")
        self.declared[key] = (dtype, numel)
        return _Pending(key)

    def fill(self, f, keys: list) -> None:
        for key in keys:
            if key not in self.declared:
                raise CheckpointError(f"{self.path}: storage key {key!r} listed but not used by any tensor")
            dtype, numel = self.declared[key]
            head = f.read(8)
            if len(head) < 8:
                raise CheckpointError(f"{self.path}: truncated before storage {key!r}")
            (count,) = struct.unpack("<q", head)
            if count != numel:
                raise CheckpointError(f"{self.path}: storage {key!r} holds {count} elements, expected {numel}")
            data = f.read(numel * dtype.itemsize)
            if len(data) < numel * dtype.itemsize:
                raise CheckpointError(f"{self.path}: truncated inside storage {key!r}")
            self.storages[key] = np.frombuffer(data, dtype=dtype)


class _Pending:
    """A legacy storage whose bytes come after the pickle; tensors over it are built afterwards."""

    def __init__(self, key: str):
        self.key = key


class _LazyTensor:
    def __init__(self, key, view, offset, size, stride):
        self.key, self.view, self.offset, self.size, self.stride = key, view, offset, size, stride


def _strided(path: Path, storage: np.ndarray, offset: int, size, stride) -> np.ndarray:
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if len(size) != len(stride) or offset < 0 or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise CheckpointError(f"{path}: a tensor has an invalid layout (size {size}, stride {stride}, "
                              f"offset {offset})")
    if 0 in size:
        empty = np.zeros(size, dtype=storage.dtype)
        empty.flags.writeable = False
        return empty
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= storage.size:
        raise CheckpointError(f"{path}: a tensor reaches element {last} of a storage of {storage.size} "
                              "(storage offset past its data)")
    item = storage.dtype.itemsize
    return np.lib.stride_tricks.as_strided(storage[offset:], shape=size, strides=tuple(s * item for s in stride),
                                           writeable=False)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, path: Path, source: _Source, inert: tuple[str, ...]):
        super().__init__(file)
        self.path, self.source, self.inert = path, source, inert

    # --- globals: only jaxser's own stand-ins ever come back
    def find_class(self, module: str, name: str):
        full = f"{module}.{name}"
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3"):
            return self._rebuild_tensor
        if module == "torch._utils" and name in ("_rebuild_parameter", "_rebuild_parameter_with_state"):
            return lambda data, *rest: data
        if module == "torch" and name in _STORAGES:
            return _StorageType(_STORAGES[name])
        if module == "torch" and name in _TORCH_DTYPES:
            return _TorchDType(_TORCH_DTYPES[name])
        if module == "torch" and name == "Size":
            return tuple
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "scalar":
            return self._numpy_scalar
        if module == "numpy" and name == "dtype":
            return _NumpyDType
        if module == "builtins" and name in ("set", "frozenset", "slice", "complex"):
            return {"set": set, "frozenset": frozenset, "slice": slice, "complex": complex}[name]
        if module == "_codecs" and name == "encode":  # how protocol 2 spells bytes (numpy scalars)
            return _latin1_bytes
        if module == "copyreg" and name in ("_reconstructor", "__newobj__"):
            return _reconstruct
        if self.inert and (module.startswith(self.inert) or full in self.inert):
            return _record_type(full)
        raise CheckpointError(f"{self.path}: refused to load global {full!r}: a checkpoint is read as tensors "
                              "and plain data only, and jaxser never runs code from one")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] in ("storage", b"storage")):
            raise CheckpointError(f"{self.path}: unsupported persistent reference {str(pid)[:80]} "
                                  "(only tensor storages are read)")
        if isinstance(self.source, _LegacySource):
            if len(pid) != 6:
                raise CheckpointError(f"{self.path}: malformed storage reference {str(pid)[:80]}")
            _, stype, key, _loc, numel, view = pid
        else:
            if len(pid) != 5:
                raise CheckpointError(f"{self.path}: malformed storage reference {str(pid)[:80]}")
            _, stype, key, _loc, numel = pid
            view = None
        if not isinstance(stype, _StorageType) or not isinstance(numel, int) or numel < 0:
            raise CheckpointError(f"{self.path}: malformed storage reference {str(pid)[:80]}")
        key = key.decode("ascii") if isinstance(key, bytes) else str(key)
        dt = _dtype(stype.dtype)
        st = self.source.storage(key, dt, numel)
        if view is not None:
            vkey, voff, vsize = view
            return ("view", st, int(voff), int(vsize))
        return st

    def _rebuild_tensor(self, storage, offset, size, stride, *rest):
        if len(rest) >= 3 and isinstance(rest[2], _TorchDType) and isinstance(storage, np.ndarray):
            storage = storage.view(_dtype(rest[2].dtype))  # v3: an untyped storage and the dtype
        view = None
        if isinstance(storage, tuple) and storage and storage[0] == "view":
            _, storage, voff, vsize = storage
            view = (voff, vsize)
        if isinstance(storage, _Pending):
            return _LazyTensor(storage.key, view, int(offset), size, stride)
        if not isinstance(storage, np.ndarray):
            raise CheckpointError(f"{self.path}: a tensor's storage is not a storage reference")
        return _strided(self.path, storage, int(offset), size, stride)

    def _numpy_scalar(self, dtype, data=None):
        if not isinstance(dtype, _NumpyDType) or not isinstance(data, bytes):
            raise CheckpointError(f"{self.path}: malformed numpy scalar")
        dt = dtype.resolve(self.path)
        if len(data) != dt.itemsize:
            raise CheckpointError(f"{self.path}: a numpy scalar of {dt} holds {len(data)} bytes")
        return np.frombuffer(data, dtype=dt)[0]


class _NumpyDType:
    """`numpy.dtype(code, align, copy)` + its pickled state, resolved to plain numeric dtypes only."""

    def __init__(self, code, align=False, copy=True):
        self.code, self.order = code, "="

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "|", "="):
            self.order = state[1]

    def resolve(self, path: Path) -> np.dtype:
        code = self.code.decode() if isinstance(self.code, bytes) else self.code
        try:
            dt = np.dtype(code)
        except TypeError:
            raise CheckpointError(f"{path}: unsupported numpy dtype {code!r}") from None
        if dt.kind not in "biufc":
            raise CheckpointError(f"{path}: refused numpy dtype {code!r} (only numbers are read)")
        return dt.newbyteorder(self.order) if self.order in "<>" else dt


def _resolve_lazy(obj: Any, source: _LegacySource, path: Path, seen: dict) -> Any:
    """Replace the legacy format's placeholder tensors (built before their bytes were read)."""
    if isinstance(obj, _LazyTensor):
        st = source.storages[obj.key]
        if obj.view is not None:
            voff, vsize = obj.view
            if voff < 0 or voff + vsize > st.size:
                raise CheckpointError(f"{path}: a storage view runs past its storage")
            st = st[voff:voff + vsize]
        return _strided(path, st, obj.offset, obj.size, obj.stride)
    if id(obj) in seen:
        return seen[id(obj)]
    if isinstance(obj, dict):
        out = type(obj)() if isinstance(obj, collections.OrderedDict) else {}
        seen[id(obj)] = out
        for k, v in obj.items():
            out[k] = _resolve_lazy(v, source, path, seen)
        return out
    if isinstance(obj, list):
        return [_resolve_lazy(v, source, path, seen) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_resolve_lazy(v, source, path, seen) for v in obj)
    return obj


def load(path: str | os.PathLike, *, inert: Iterable[str] = ()) -> Any:
    """The object `torch.save` wrote to `path`, with every tensor a (read-only) numpy array.

    `inert`: module prefixes (or `module.Name`s) whose objects are kept as `Record`s instead of
    being refused (e.g. `("fairseq.", "omegaconf.", "argparse.Namespace")` for fairseq checkpoints).
    """
    path = Path(path)
    inert = tuple(inert)
    try:
        if zipfile.is_zipfile(path):
            return _load_zip(path, inert)
        with open(path, "rb") as f:
            return _load_legacy(path, f, inert)
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, EOFError, pickle.UnpicklingError, struct.error, ValueError, TypeError,
            IndexError, KeyError, AttributeError, RecursionError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''}); re-download it") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror or e})") from None


def _load_zip(path: Path, inert: tuple) -> Any:
    with zipfile.ZipFile(path) as zf:
        pkls = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            raise CheckpointError(f"{path}: a zip archive without exactly one <name>/data.pkl "
                                  "(not a torch.save checkpoint; a TorchScript archive is not supported)")
        source = _ZipSource(path, zf, pkls[0][: -len("data.pkl")])
        return _Unpickler(io.BytesIO(source.pickle_bytes()), path, source, inert).load()


def _load_legacy(path: Path, f, inert: tuple) -> Any:
    def header(what):  # the legacy headers are plain ints and dicts: no global is allowed
        return _Unpickler(f, path, _LegacySource(path), ()).load()

    if header("magic") != _LEGACY_MAGIC:
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (neither a torch.save zip nor the legacy format)")
    if header("protocol") != _LEGACY_PROTOCOL:
        raise CheckpointError(f"{path}: unsupported legacy checkpoint protocol")
    info = header("sys_info")
    if isinstance(info, dict) and info.get("little_endian") is False:
        raise CheckpointError(f"{path}: a big-endian legacy checkpoint is not supported")
    source = _LegacySource(path)
    obj = _Unpickler(f, path, source, inert).load()
    keys = _Unpickler(f, path, source, ()).load()
    if not isinstance(keys, list):
        raise CheckpointError(f"{path}: malformed legacy checkpoint (no storage key list)")
    source.fill(f, [k.decode("ascii") if isinstance(k, bytes) else str(k) for k in keys])
    return _resolve_lazy(obj, source, path, {})


def state_dict(obj: Any, path: Path, keys: tuple[str, ...] = ("state_dict", "model_state_dict", "model")) -> dict:
    """The tensors of a checkpoint: the object itself, or the dict nested under one of `keys`
    (training checkpoints), with a DataParallel `module.` prefix removed."""
    for key in keys:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{path}: expected a state dict (or a checkpoint holding one under "
                              f"{' / '.join(repr(k) for k in keys)}), got {type(obj).__name__}")
    if all(str(k).startswith("module.") for k in obj):
        obj = {str(k)[len("module."):]: v for k, v in obj.items()}
    return obj
