"""A pod slice in miniature: two jax.distributed CPU processes on localhost, each with two
devices (four in all), run what a TPU pod-slice job runs -- each host extracts its strided
share of a corpus with a JAX encoder data-parallel over its *own* devices, process 0
assembles the shared cache, then one training program shards the seeds over the devices of
*both* hosts (outputs gathered back to every host) -- and must give the single-device result.

Cross-process collectives on CPU go through gloo (jax's default); the processes find each
other through JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID, exactly as
`sharding.initialize_distributed()` reads them on a real multi-host launch.
"""
from __future__ import annotations

import json
import textwrap

import numpy as np

from jaxser import embed as embed_mod


POD_SCRIPT = textwrap.dedent(r'''
    import json, sys
    from jaxser import sharding
    assert sharding.initialize_distributed()
    import jax
    import numpy as np
    from datasets import load_from_disk
    from jaxser import embed
    from jaxser.encoders import wav2vec2
    from tests.helpers.multihost import train_args

    info = {"index": jax.process_index(), "count": jax.process_count(), "devices": jax.device_count(),
            "local": jax.local_device_count()}
    enc = wav2vec2.load("random", preset="small", mesh="auto")  # this host's two devices
    info["encoder_mesh"] = int(enc.mesh.devices.size)
    e = embed.embed(enc, load_from_disk(sys.argv[1]), cache=sys.argv[2], chunk_size=4, progress=False,
                    barrier_timeout=240)
    from jaxser.train import ModelData, train
    args, kw = train_args(e.x, [load_from_disk(sys.argv[1])["emotion"][i] for i in range(len(e.ids))])
    n_classes = kw.pop("n_classes")
    r = train([ModelData(*args, n_classes)], mesh="auto", **kw)[0]  # seeds over the 4 devices of both hosts
    info.update(ids=e.ids, x=e.x.tolist(), probs=r.probs["t"].tolist(), val_uar=r.val_uar.tolist(),
                best_epoch=r.best_epoch.tolist(), n_devices=r.n_devices)
    # results as JSON files: the process output also carries gloo and jax messages
    with open(f"{sys.argv[3]}/result{jax.process_index()}.json", "w") as f:
        json.dump(info, f)
''')


def test_two_hosts_two_devices_each_equal_one_device(tmp_path):
    from tests.helpers.multihost import run_processes, train_args
    from tests.helpers.embed_fixtures import toy_corpus as _corpus

    from jaxser.encoders import wav2vec2
    from jaxser.train import ModelData, train

    ds = _corpus(tmp_path, n=24)
    ref = embed_mod.embed(wav2vec2.load("random", preset="small"), ds, cache=tmp_path / "ref", chunk_size=4,
                          progress=False)
    args, kw = train_args(ref.x, list(ds["emotion"]))
    n_classes = kw.pop("n_classes")
    ref_r = train([ModelData(*args, n_classes)], **kw)[0]
    ds.save_to_disk(str(tmp_path / "ds"))

    run_processes(POD_SCRIPT, [tmp_path / "ds", tmp_path / "shared", tmp_path], tmp_path, local_devices=2)
    outs = [json.loads((tmp_path / f"result{i}.json").read_text()) for i in range(2)]
    assert sorted(o["index"] for o in outs) == [0, 1]
    for o in outs:
        assert (o["count"], o["devices"], o["local"], o["encoder_mesh"], o["n_devices"]) == (2, 4, 2, 2, 4)
        assert o["ids"] == ref.ids
        # data parallel over a host's devices, chunks from two hosts: the single-device embeddings
        np.testing.assert_allclose(np.asarray(o["x"], np.float32), ref.x, atol=1e-5)
        # seeds sharded over both hosts' devices: the single-device training result
        assert o["best_epoch"] == ref_r.best_epoch.tolist()
        np.testing.assert_allclose(o["val_uar"], ref_r.val_uar, atol=1e-6)
        np.testing.assert_allclose(np.asarray(o["probs"]), ref_r.probs["t"], atol=1e-4)
