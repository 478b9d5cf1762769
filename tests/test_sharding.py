"""Scale-out: data-parallel extraction and seed-sharded training equal their single-device
results on 4 simulated CPU devices; corpora split over hosts cover every row exactly once.

XLA_FLAGS=--xla_force_host_platform_device_count=4 is read when jax initialises its backend,
so the multi-device checks run in one fresh subprocess (this pytest process keeps 1 device).
Multi-host `embed` is tested twice: two real jax.distributed CPU processes on localhost, and
three simulated hosts (threads with explicit process_index / process_count).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from jaxser import embed as embed_mod, sharding

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(r'''
    import json
    import jax
    import numpy as np
    from jaxser import sharding
    from jaxser.encoders import wav2vec2, whisper

    assert jax.device_count() == 4, jax.devices()
    mesh = sharding.data_mesh()
    out = {}
    rng = np.random.default_rng(0)
    # 7 utterances: batches of 4, 2, 1 rows -> 4 (no padding), 2 -> 4 and 1 -> 4 (padded)
    waves = [0.1 * rng.standard_normal(int(n)).astype(np.float32)
             for n in (4000, 5200, 6100, 7000, 8000, 9100, 12000)]
    one = wav2vec2.load("random", preset="small")
    many = wav2vec2.load("random", preset="small", mesh=mesh)
    a, b = one.embed(waves), many.embed(waves)
    sh = many.params["fp"]["w"].sharding
    out["w2v_err"] = float(np.max(np.abs(a - b)))
    out["w2v_shape"] = list(b.shape)
    out["w2v_param_replicated"] = bool(sh.is_fully_replicated and len(sh.device_set) == 4)
    fa, fb = one.embed_frames(waves[:3]), many.embed_frames(waves[:3])
    out["w2v_frames_err"] = float(max(np.max(np.abs(x - y)) for x, y in zip(fa, fb)))
    assert wav2vec2.load("random", preset="small", mesh="auto").mesh.devices.size == 4
    fs = wav2vec2.load("random", preset="small", mesh=mesh, shard_params=True)
    ff = fs.params["layers"][0]["ff1_w"]  # [256, 1024]
    out["fsdp_split"] = [list(sh) for sh in {tuple(s.data.shape) for s in ff.addressable_shards}]
    out["fsdp_err"] = float(np.max(np.abs(a[:4] - fs.embed(waves[:4]))))
    # a stacked [layers, ...] leaf whose only axis divisible by 4 is the layer axis: split it
    # only when it is not stacked (a scan over a split layer axis would gather it whole)
    odd = {"w": np.zeros((4, 6, 1026), np.float32)}
    out["fsdp_plain_spec"] = str(sharding.fsdp(mesh, odd)["w"].sharding.spec)
    out["fsdp_stacked_replicated"] = bool(sharding.fsdp(mesh, odd, stacked=True)["w"].sharding.is_fully_replicated)

    kw = dict(d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64, max_batch=4)
    w1, w4 = whisper.load("random", **kw), whisper.load("random", mesh=mesh, **kw)
    ww = [0.1 * rng.standard_normal(n).astype(np.float32) for n in (8000, 16000, 24000)]
    wsh = w4.params["ln"]["g"].sharding
    out["whisper_param_replicated"] = bool(wsh.is_fully_replicated and len(wsh.device_set) == 4)
    out["whisper_err"] = float(np.max(np.abs(w1.embed(ww) - w4.embed(ww))))
    out["whisper_frames_err"] = float(max(np.max(np.abs(x - y)) for x, y in
                                          zip(w1.embed_frames(ww, 1), w4.embed_frames(ww, 1))))
    # fully sharded: wide enough that the FFN weights reach fsdp's 16k-element threshold
    big = dict(kw, d_model=64, encoder_ffn_dim=256)
    b1, bs = whisper.load("random", **big), whisper.load("random", mesh=mesh, shard_params=True, **big)
    fc1 = bs.params["layers"]["fc1_w"]  # [2 layers, 64, 256]
    out["whisper_fsdp_split"] = [list(sh) for sh in {tuple(s.data.shape) for s in fc1.addressable_shards}]
    out["whisper_fsdp_front_replicated"] = bool(bs.front["filters"].sharding.is_fully_replicated)
    out["whisper_fsdp_same_fingerprint"] = bs.fingerprint == b1.fingerprint
    out["whisper_fsdp_err"] = float(np.max(np.abs(b1.embed(ww) - bs.embed(ww))))

    from jaxser.heads import HeadConfig
    from jaxser.train import ModelData, TrainConfig, train
    x = rng.standard_normal((60, 2, 8)).astype(np.float32)
    y = rng.integers(0, 3, 60).astype(np.int32)
    model = ModelData(x[:40], y[:40], x[40:50], y[40:50], {"t": x[50:]}, 3)
    cfg = dict(head=HeadConfig(kind="fcn", hidden=(16,)), config=TrainConfig(max_epochs=3, batch_size=16),
               seeds=[0, 1, 2])
    r1 = train([model], **cfg)[0]
    r4 = train([model], **cfg, mesh=mesh)[0]
    def flat(r):
        return np.concatenate([np.ravel(np.asarray(r.probs["t"], np.float64)), np.ravel(r.val_uar)])
    out["train_err"] = float(np.max(np.abs(flat(r1) - flat(r4))))
    # "auto": this process's devices for extraction, every process's for training
    out["auto_local"] = list(sharding.resolve_mesh("auto").shape.items())
    out["auto_all"] = list(sharding.resolve_mesh("auto", axis=sharding.SEED_AXIS, devices="all").shape.items())
    out["n_devices"] = r4.n_devices
    print("RESULT " + json.dumps(out))
''')


@pytest.fixture(scope="module")
def four_devices():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    line = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
    assert p.returncode == 0 and line, f"subprocess failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return json.loads(line[-1][len("RESULT "):])


def test_wav2vec2_data_parallel_equals_single_device(four_devices):
    assert four_devices["w2v_shape"] == [7, 5, 256]
    assert four_devices["w2v_param_replicated"]
    assert four_devices["w2v_err"] < 1e-5
    assert four_devices["w2v_frames_err"] < 1e-5


def test_wav2vec2_fully_sharded_parameters_equal_single_device(four_devices):
    assert four_devices["fsdp_split"] == [[256, 256]]  # the 1024 axis split 4 ways
    assert four_devices["fsdp_err"] < 1e-5
    assert four_devices["fsdp_plain_spec"] == "P('data', None, None)"  # the layer axis, when not stacked
    assert four_devices["fsdp_stacked_replicated"]


def test_whisper_data_parallel_equals_single_device(four_devices):
    assert four_devices["whisper_param_replicated"]
    assert four_devices["whisper_err"] < 1e-5
    assert four_devices["whisper_frames_err"] < 1e-5


def test_whisper_fully_sharded_parameters_equal_single_device(four_devices):
    assert four_devices["whisper_fsdp_split"] == [[2, 64, 64]]  # the 256 axis split 4 ways, layers whole
    assert four_devices["whisper_fsdp_front_replicated"]
    assert four_devices["whisper_fsdp_same_fingerprint"]  # placement never changes the cache identity
    assert four_devices["whisper_fsdp_err"] < 1e-5


def test_training_on_mesh_equals_unsharded(four_devices):
    assert four_devices["train_err"] < 1e-5 and four_devices["n_devices"] == 4


def test_auto_mesh_names_its_axis(four_devices):
    assert four_devices["auto_local"] == [["data", 4]]
    assert four_devices["auto_all"] == [["seed", 4]]


def test_resolve_mesh_on_one_device():
    assert sharding.resolve_mesh(None) is None
    assert sharding.resolve_mesh("auto") is None  # one device: plain jit, no mesh
    assert sharding.resolve_mesh("auto", axis=sharding.SEED_AXIS, devices="all") is None
    mesh = sharding.data_mesh()
    assert sharding.resolve_mesh(mesh) is mesh
    assert sharding.axis_size(mesh, "data") == 1 and sharding.axis_size(mesh, "model") == 1
    assert sharding.axis_size(None, "model") == 1
    with pytest.raises(ValueError, match="devices"):
        sharding.resolve_mesh("auto", devices="global")
    with pytest.raises(ValueError, match="mesh="):
        sharding.resolve_mesh("all")


def test_pad_and_unpad_rows():
    x = np.arange(10).reshape(5, 2)
    p = sharding.pad_rows(x, 4, fill=sharding.REPEAT_LAST)
    assert p.shape == (8, 2) and (p[5:] == x[-1]).all() and (p[:5] == x).all()
    assert sharding.pad_rows(x, 5, fill=sharding.REPEAT_LAST) is x
    z = sharding.pad_rows(x, 4, fill=-1)
    assert z.shape == (8, 2) and (z[5:] == -1).all() and (z[:5] == x).all() and z.dtype == x.dtype
    assert sharding.pad_rows(x, 5, fill=0) is x
    assert sharding.pad_rows(x[:0], 4, fill=0).shape == (0, 2)
    with pytest.raises(ValueError, match="empty"):
        sharding.pad_rows(x[:0], 4, fill=sharding.REPEAT_LAST)
    with pytest.raises(ValueError, match="fill"):
        sharding.pad_rows(x, 4, fill="edge")
    (a,), n = sharding.shard_batch(sharding.data_mesh(), x)
    assert n == 5 and np.array_equal(sharding.unpad(a, n), x)


def test_lane_placement():
    place = sharding.lane_placement(None)
    assert (place.lanes, place.devices) == (1, 1) and place.lane is place.rep
    x = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(sharding.to_host({"x": place.rep(x)})["x"], x)
    mesh = sharding.data_mesh()
    place = sharding.lane_placement(mesh)
    assert place.lanes == place.devices == mesh.devices.size
    lanes = np.arange(place.lanes * 2).reshape(place.lanes, 2)
    np.testing.assert_array_equal(sharding.to_host(place.lane(lanes)), lanes)


@pytest.mark.parametrize("n,count", [(10, 3), (7, 4), (3, 5), (1, 1)])
def test_host_shard_covers_every_row_once(n, count):
    from datasets import Dataset

    ds = Dataset.from_dict({"id": [f"u{i}" for i in range(n)]})
    parts = [list(sharding.host_shard(ds, i, count)["id"]) for i in range(count)]
    assert sum(parts, []) == list(ds["id"])  # contiguous, in order, disjoint, complete
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    if n >= count:  # same boundaries as datasets' own split (which refuses n < count)
        from datasets.distributed import split_dataset_by_node

        assert parts == [list(split_dataset_by_node(ds, rank=i, world_size=count)["id"]) for i in range(count)]
    with pytest.raises(ValueError, match="outside"):
        sharding.host_shard(ds, count, count)


def test_initialize_distributed_is_a_no_op_on_one_host(monkeypatch):
    for k in sharding.DISTRIBUTED_ENV + sharding.TRIGGER_ENV:
        monkeypatch.delenv(k, raising=False)
    assert sharding.initialize_distributed() is False
    monkeypatch.setenv("TPU_WORKER_HOSTNAMES", "10.0.0.2")  # a single-host slice
    assert sharding.initialize_distributed() is False
    monkeypatch.setenv("TPU_WORKER_HOSTNAMES", "10.0.0.2,10.0.0.3")
    assert sharding._cloud_tpu_multihost()


def test_embed_multi_host_split_and_assembly(tmp_path):
    """Three simulated hosts (threads, shared cache folder): each writes only its chunks,
    process 0 assembles; every host returns the single-process result."""
    from tests.helpers.embed_fixtures import FrameStats, toy_corpus as _corpus

    ds = _corpus(tmp_path, n=23)
    ref = embed_mod.embed(FrameStats(), ds, cache=tmp_path / "ref", chunk_size=4, progress=False)
    encs = [FrameStats() for _ in range(3)]
    results, errors = {}, []

    def host(i):
        try:
            results[i] = embed_mod.embed(encs[i], ds, cache=tmp_path / "multi", chunk_size=4, progress=False,
                                         process_index=i, process_count=3, barrier_timeout=60)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=host, args=(i,)) for i in (2, 1, 0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    # 23 rows / chunks of 4 = 6 chunks: hosts 0, 1, 2 own chunks {0, 3}, {1, 4}, {2, 5}
    assert [e.calls for e in encs] == [2, 2, 2]
    for i in range(3):
        assert results[i].ids == ref.ids
        np.testing.assert_array_equal(results[i].x, ref.x)
    assert not list(results[0].path.parent.glob("chunk-*"))


def test_embed_barrier_times_out_with_a_clear_error(tmp_path):
    from tests.helpers.embed_fixtures import FrameStats, toy_corpus as _corpus

    ds = _corpus(tmp_path, n=9)
    with pytest.raises(TimeoutError, match="chunks \\[1\\]"):
        embed_mod.embed(FrameStats(), ds, cache=tmp_path / "c", chunk_size=5, progress=False,
                        process_index=0, process_count=2, barrier_timeout=1.5)


DIST_SCRIPT = textwrap.dedent(r'''
    import json, sys
    from jaxser import sharding
    assert sharding.initialize_distributed() is True
    import jax
    from datasets import load_from_disk
    from jaxser import embed
    from tests.helpers.embed_fixtures import FrameStats
    enc = FrameStats()
    e = embed.embed(enc, load_from_disk(sys.argv[1]), cache=sys.argv[2], chunk_size=4, progress=False,
                    barrier_timeout=60)
    print("RESULT " + json.dumps({"index": jax.process_index(), "count": jax.process_count(), "calls": enc.calls,
                                  "ids": e.ids, "x": e.x.tolist()}))
''')


def test_embed_with_two_real_jax_distributed_processes(tmp_path):
    """Two CPU processes joined by jax.distributed on localhost (JAX_COORDINATOR_ADDRESS /
    JAX_NUM_PROCESSES / JAX_PROCESS_ID), sharing one cache folder."""
    from tests.helpers.multihost import run_processes
    from tests.helpers.embed_fixtures import FrameStats, toy_corpus as _corpus

    ds = _corpus(tmp_path, n=15)
    ref = embed_mod.embed(FrameStats(), ds, cache=tmp_path / "ref", chunk_size=4, progress=False)
    ds.save_to_disk(str(tmp_path / "ds"))
    logs = run_processes(DIST_SCRIPT, [tmp_path / "ds", tmp_path / "shared"], tmp_path, timeout=120)
    outs = [json.loads([line for line in log.splitlines() if line.startswith("RESULT ")][-1][len("RESULT "):])
            for log in logs]
    assert sorted(o["index"] for o in outs) == [0, 1] and all(o["count"] == 2 for o in outs)
    assert sorted(o["calls"] for o in outs) == [2, 2]  # 15 rows / 4 = 4 chunks: two per process
    for o in outs:
        assert o["ids"] == ref.ids
        np.testing.assert_allclose(np.asarray(o["x"], np.float32), ref.x, rtol=0, atol=0)
