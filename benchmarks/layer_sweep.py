"""Every hidden state in one program vs one layer at a time, same data, same trainer.

The embedded default's cross-corpus training sets (4 synthetic corpora, the four core
classes: one model per source corpus, tested on the other three) on random-wav2vec2's
hidden states, FCN head, 5 seeds. (a) ``jaxser.layers.train_layers``: the layers x seeds of
each model as one program; (b) ``jaxser.train.train`` once per layer (seeds vmapped, one
program per layer call). Both use the study's shared row capacity, train with the default's
schedule (30 epochs, patience 5) and predict every test set. Each path runs once to compile
(cold) and then ``--repeat`` more times warm (best of the repeats, paths alternated); the JSON
last line reports the warm times. Everything is built through the public API (corpora,
encoders, embed, protocol, train).

    python benchmarks/layer_sweep.py [--seeds 5 --repeat 2 --encoder random-wav2vec2]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from jaxser import corpora, encoders, protocol  # noqa: E402
from jaxser.embed import embed  # noqa: E402
from jaxser.heads import HeadConfig  # noqa: E402
from jaxser.layers import train_layers  # noqa: E402
from jaxser.train import ModelData, TrainConfig, capacity, train  # noqa: E402

CORPORA = ("synth-alba", "synth-bruna", "synth-corva", "synth-duna")


def cross_models(encoder_name: str) -> tuple[list[ModelData], int, int]:
    """The cross-corpus models of the embedded default, their shared row capacity and the
    encoder's hidden-state count."""
    enc = encoders.load(encoder_name)
    corpus, groups, emotion, ids, xs = [], [], [], [], []
    for name in CORPORA:
        ds = corpora.load(name)
        emb = embed(enc, ds)
        corpus += list(ds["corpus"])
        groups += list(corpora.fold_groups(ds))
        emotion += list(ds["emotion"])
        ids += list(ds["id"])
        xs.append(emb.take(list(ds["id"])))
    x = np.concatenate(xs)
    emotion = np.asarray(emotion)
    cells = protocol.make_cells(corpus, groups, emotion, settings=["cross"], labels=protocol.DEFAULT_CROSS_LABELS,
                                seed=0)
    by_key: dict[str, list] = {}
    for c in cells:
        by_key.setdefault(c.train_key, []).append(c)
    models = []
    for cs in by_key.values():
        lab = {v: i for i, v in enumerate(cs[0].labels)}
        y = np.array([lab.get(v, -1) for v in emotion], np.int32)
        models.append(ModelData(x[cs[0].fit], y[cs[0].fit], x[cs[0].val], y[cs[0].val],
                                {c.name: x[c.test] for c in cs}, n_classes=len(cs[0].labels)))
    rows = max(max(len(c.fit), len(c.val)) for c in cells)
    return models, capacity(rows), enc.num_layers


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--encoder", default="random-wav2vec2")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--repeat", type=int, default=2)
    a = p.parse_args(argv)
    models, rows, n_layers = cross_models(a.encoder)
    head, config = HeadConfig(kind="fcn"), TrainConfig(max_epochs=30, patience=5)
    seeds = list(range(a.seeds))
    kw = dict(head=head, config=config, seeds=seeds, rows=rows)

    def sweep():
        return train_layers(models, **kw)

    def loop():
        return [train(models, **{**kw, "config": replace(config, layer=layer)}) for layer in range(n_layers)]

    cold, warm, out = {}, {"sweep": [], "loop": []}, {}
    for name, fn in (("sweep", sweep), ("loop", loop)):
        t = time.perf_counter()
        out[name] = fn()
        cold[name] = time.perf_counter() - t
    for _ in range(a.repeat):
        for name, fn in (("sweep", sweep), ("loop", loop)):
            t = time.perf_counter()
            out[name] = fn()
            warm[name].append(time.perf_counter() - t)
    # the two paths must agree: the same selection per model, layer and seed
    same_epochs = all(np.array_equal(out["sweep"][m][layer].best_epoch, out["loop"][layer][m].best_epoch)
                      for m in range(len(models)) for layer in range(n_layers))
    max_dp = max(float(np.abs(out["sweep"][m][layer].probs[n] - out["loop"][layer][m].probs[n]).max())
                 for m in range(len(models)) for layer in range(n_layers) for n in models[m].tests)
    load = os.getloadavg()
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"{len(models)} models x {n_layers} layers x {len(seeds)} seeds, rows {rows}")
    print(f"cold: sweep {cold['sweep']:.2f} s, loop {cold['loop']:.2f} s; warm runs: sweep "
          f"{[round(t, 2) for t in warm['sweep']]}, loop {[round(t, 2) for t in warm['loop']]}; "
          f"same best epochs: {same_epochs}, max |dp| {max_dp:.2g}")
    sweep_s, loop_s = min(warm["sweep"]), min(warm["loop"])
    res = {"sweep_s": round(sweep_s, 3), "loop_s": round(loop_s, 3), "ratio": round(loop_s / sweep_s, 2),
           "layers": n_layers, "models": len(models)}
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
