"""jaxser's head training vs a plain PyTorch training loop doing the same work.

The embedded default's models on one cheap encoder (default ``egemaps``): one model per train
key of its settings (same: 4 corpora x 5 speaker folds; cross: one per source corpus, tested on the
other three; loco: one per held-out corpus; 20 + 4 + 4 = 28 models), its heads (FCN; the default's
lighter CNN), its TrainConfig (Adam, lr 1e-3, batch 32, at most 30 epochs, patience 5 on
source-validation UAR), 5 seeds, and every model's test sets predicted with the kept parameters.
Data are built through the public API
(jaxser.study.config for the default's settings, jaxser.corpora, jaxser.encoders, jaxser.embed,
jaxser.protocol); the embeddings come from the cache ($JAXSER_CACHE) and loading them is not
timed.

(a) jaxser: ``jaxser.train.train`` per head, with the study's shared row capacity. *Cold*: in a
    fresh Python process with the persistent compilation cache disabled (and its folder an
    empty temporary one), timed from just before the first ``train`` call, so tracing and
    compilation are included; *warm*: the same call again in that process, programs compiled.
(b) PyTorch: the same head architecture (layer sizes, ReLU, dropout, SAME-padded 1-D convs and
    max-pooling, LeCun-normal kernels and zero biases as Flax initialises them), Adam (AdamW
    when the config has weight decay) with the same lr, minibatches of 32 over a fresh
    permutation each epoch (the last one partial), z-scoring with fit-split statistics, one
    model per seed, validation UAR after every epoch, early stopping with the same patience
    (strict improvement), the best-validation parameters kept, then validation and test
    probabilities from them. Minibatches are taken by indexing the fit tensor (no DataLoader,
    whose per-row collation would only slow the loop down).

Seed-epochs: jaxser trains a stack's models x seeds through a queue of a few slots (a seed
that stopped hands its slot to the next one), so it computes slots x loop iterations
seed-epochs per stack (``ModelResult.slot_epochs``, the idle tail included); independent runs
need, per seed, its own stopping epoch: the trainer stops a seed once ``patience`` epochs in a
row did not improve on its best, i.e. after ``min(best_epoch + patience, max_epochs)`` epochs
(checked below against each model's ``epochs_run`` and ``val_uar_history``). The PyTorch
loop's own seed-epochs (its initialisation and shuffling differ, so its stopping epochs do too)
are printed alongside, with the time per seed-epoch of each path.

    python benchmarks/peer_train.py [--quick] [--heads fcn,cnn] [--encoder egemaps] [--torch-threads N]

The last line is JSON: jaxser_warm_s, jaxser_cold_s, torch_s, ratio_warm (torch / jaxser
warm), ratio_cold, seed_epochs, seed_epochs_needed, compile_cpu_s (the cold calls' tracing,
lowering and XLA compilation, CPU seconds summed over the program threads: what a cold run adds
to a warm one), models, seeds, heads, torch_threads, load (the 1-minute load average: on a
shared machine, read the times with it).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

QUICK_MODELS = 4   # --quick: the cross-corpus models only (4 train keys)


# ----------------------------------------------------------------------------- data (public API)

def default_models(encoder_name: str, quick: bool):
    """The embedded default's models on one encoder: (cfg, [(train key, ModelData)], rows cap)."""
    from jaxser import corpora, encoders, protocol
    from jaxser.embed import embed
    from jaxser.study.config import load_config
    from jaxser.train import ModelData

    cfg = load_config("default")
    enc = encoders.load(encoder_name)
    corpus, groups, emotion, xs = [], [], [], []
    for name, root in cfg.corpora.items():
        ds = corpora.load(name, root or None)
        emb = embed(enc, ds)
        corpus += list(ds["corpus"])
        groups += list(corpora.fold_groups(ds))
        emotion += list(ds["emotion"])
        xs.append(emb.take(list(ds["id"])))
    x = np.concatenate(xs).astype(np.float32)
    emotion = np.asarray(emotion)
    settings = ["cross"] if quick else list(cfg.settings)
    cells = protocol.make_cells(corpus, groups, emotion, settings=settings, k=cfg.k_folds, labels=cfg.labels, seed=0)
    rows_cap = max(max(len(c.fit), len(c.val)) for c in cells)   # the study's shared row capacity
    by_key: dict[str, list] = {}
    for c in cells:
        by_key.setdefault(c.train_key, []).append(c)
    models = []
    for key, cs in by_key.items():
        lab = {v: i for i, v in enumerate(cs[0].labels)}
        y = np.array([lab.get(v, -1) for v in emotion], np.int32)
        models.append((key, ModelData(x[cs[0].fit], y[cs[0].fit], x[cs[0].val], y[cs[0].val],
                                      {c.name: x[c.test] for c in cs}, n_classes=len(cs[0].labels))))
    if quick:
        models = models[:QUICK_MODELS]
    return cfg, models, rows_cap


def configs(cfg, kind: str):
    return cfg.head_config(kind), cfg.train_config("last")


# ----------------------------------------------------------------------------- (a) jaxser

def jaxser_child(a) -> None:
    """Runs in a fresh process: per head, the cold ``train`` call, then the warm one. The cold
    call's tracing, lowering and XLA compilation are summed from jax.monitoring's events (over
    the program threads: CPU seconds, not wall time)."""
    import threading

    import jax

    from jaxser.study.run import COMPILE_EVENTS
    from jaxser.train import train

    # the study's compile clock's events (trace, lowering, XLA), each summed on its own here
    names = dict(zip(COMPILE_EVENTS, ("trace", "lower", "xla")))
    spent, lock = {v: 0.0 for v in names.values()}, threading.Lock()

    def listen(event, duration, **_):
        if event in names:
            with lock:
                spent[names[event]] += duration
    jax.monitoring.register_event_duration_secs_listener(listen)

    cfg, models, rows = default_models(a.encoder, a.quick)
    data = [m for _, m in models]
    seeds = list(cfg.seeds)
    out = {}
    for kind in a.heads.split(","):
        head, config = configs(cfg, kind)
        for k in spent:
            spent[k] = 0.0
        t = time.perf_counter()
        train(data, head=head, config=config, seeds=seeds, rows=rows)
        cold = time.perf_counter() - t
        compile_s = dict(spent)
        t = time.perf_counter()
        res = train(data, head=head, config=config, seeds=seeds, rows=rows)
        warm = time.perf_counter() - t
        out[kind] = dict(cold_s=cold, warm_s=warm, compile_s=compile_s,
                         epochs_run=[r.epochs_run for r in res],
                         best_epoch=[np.asarray(r.best_epoch).tolist() for r in res],
                         history_len=[int(np.asarray(r.val_uar_history).shape[0]) for r in res],
                         val_uar=[float(np.mean(r.val_uar)) for r in res],
                         stack_sizes=sorted({int(r.stack_size) for r in res}),
                         slot_epochs=round(sum(r.slot_epochs / r.stack_size for r in res)),
                         patience=config.patience, max_epochs=config.max_epochs)
    print(json.dumps(out))


def run_jaxser(a) -> dict:
    """The jaxser child process with an empty, disabled persistent compilation cache."""
    with tempfile.TemporaryDirectory(prefix="jaxser-xla-") as tmp:
        env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=tmp, JAX_ENABLE_COMPILATION_CACHE="false")
        cmd = [sys.executable, str(Path(__file__).resolve()), "--jaxser-child", "--heads", a.heads,
               "--encoder", a.encoder] + (["--quick"] if a.quick else [])
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        left = os.listdir(tmp)
    if p.returncode:
        sys.stderr.write(p.stderr)
        raise SystemExit(f"jaxser child failed (exit {p.returncode})")
    if left:
        raise SystemExit(f"the jaxser child wrote {len(left)} files to its compilation cache: not a cold run")
    return json.loads(p.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- (b) PyTorch

def torch_head(head, n_classes: int, dim: int):
    """The jaxser head (jaxser.heads) as a torch module, with Flax's initialisation."""
    import torch
    from torch import nn

    def dense_stack(width_in):
        layers = []
        for w in head.hidden:
            layers += [nn.Linear(width_in, w), nn.ReLU(), nn.Dropout(head.dropout)]
            width_in = w
        return layers + [nn.Linear(width_in, n_classes)]

    if head.kind == "fcn":
        net = nn.Sequential(*dense_stack(dim))
    elif head.kind == "cnn":
        layers, c_in, t = [nn.Unflatten(1, (1, dim))], 1, dim
        for ch in head.conv_channels:
            layers += [nn.Conv1d(c_in, ch, head.kernel_size, padding="same"), nn.ReLU()]
            if t >= head.pool:   # too short to pool: conv only (as jaxser.heads.CNNHead)
                layers.append(nn.MaxPool1d(head.pool))
                t //= head.pool
            c_in = ch
        net = nn.Sequential(*layers, nn.Flatten(), *dense_stack(c_in * t))
    else:
        net = nn.Sequential(nn.Linear(dim, n_classes))

    with torch.no_grad():   # flax: lecun_normal (truncated normal, fan-in scaling) kernels, zero biases
        for m in net.modules():
            if isinstance(m, (nn.Linear, nn.Conv1d)):
                fan_in = m.weight[0].numel()
                std = math.sqrt(1.0 / fan_in) / 0.87962566103423978
                nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
                nn.init.zeros_(m.bias)
    return net


def torch_uar(pred, y, n_classes: int) -> float:
    """Mean recall over the classes present in y (as jaxser's)."""
    import torch

    count = torch.bincount(y, minlength=n_classes).float()
    hit = torch.bincount(y[pred == y], minlength=n_classes).float()
    present = count > 0
    return float((hit[present] / count[present]).sum() / present.sum())


def torch_train_model(model, head, config, seeds):
    """One model, one independent early-stopped run per seed; returns (per-seed stopping
    epochs, per-seed best val UAR, per-seed test probabilities)."""
    import torch
    import torch.nn.functional as F

    x_fit = np.asarray(model.x_fit, np.float32)
    x_fit = x_fit[:, config.layer] if x_fit.ndim == 3 else x_fit
    mean = x_fit.mean(axis=0, dtype=np.float64)
    std = x_fit.std(axis=0, dtype=np.float64)
    std = np.where(std > 1e-8 * np.maximum(1.0, np.abs(mean)), std, 1.0)   # constant features: centred only

    def norm(x):
        x = np.asarray(x, np.float32)
        x = x[:, config.layer] if x.ndim == 3 else x
        return torch.from_numpy(((x - mean) / std).astype(np.float32))

    xf, yf = norm(model.x_fit), torch.from_numpy(np.asarray(model.y_fit, np.int64))
    xv, yv = norm(model.x_val), torch.from_numpy(np.asarray(model.y_val, np.int64))
    tests = {k: norm(v) for k, v in model.tests.items()}
    c = model.n_classes
    weight = None
    if config.class_weights == "balanced":
        counts = torch.bincount(yf, minlength=c).float()
        weight = torch.where(counts > 0, len(yf) / (c * counts.clamp(min=1)), torch.ones(c))
    patience = config.patience if config.patience is not None else config.max_epochs + 1
    n = len(xf)
    stops, uars, probs = [], [], []
    for seed in seeds:
        torch.manual_seed(seed)
        g = torch.Generator().manual_seed(seed)
        net = torch_head(head, c, xf.shape[1])
        if config.optimizer == "adam":
            opt = (torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
                   if config.weight_decay else torch.optim.Adam(net.parameters(), lr=config.lr))
        else:
            opt = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
        best_uar, best_state, wait, epoch = -1.0, None, 0, 0
        while epoch < config.max_epochs and wait < patience:
            net.train()
            perm = torch.randperm(n, generator=g)
            for i in range(0, n, config.batch_size):
                b = perm[i:i + config.batch_size]
                loss = F.cross_entropy(net(xf[b]), yf[b], weight=weight)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            epoch += 1
            net.eval()
            with torch.no_grad():
                u = torch_uar(net(xv).argmax(1), yv, c)
            if u > best_uar:
                best_uar, best_state, wait = u, copy.deepcopy(net.state_dict()), 0
            else:
                wait += 1
        net.load_state_dict(best_state)
        net.eval()
        with torch.no_grad():
            torch.softmax(net(xv), 1)   # validation probabilities of the kept parameters
            probs.append({k: torch.softmax(net(v), 1).numpy() for k, v in tests.items()})
        stops.append(epoch)
        uars.append(best_uar)
    return stops, uars, probs


# ----------------------------------------------------------------------------- main

def main(argv=None) -> dict | None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run: the cross-corpus models only")
    p.add_argument("--heads", default="fcn,cnn", help="comma-separated head kinds (default fcn,cnn)")
    p.add_argument("--encoder", default="egemaps", help="an encoder of the default (cheap: egemaps, mfcc)")
    p.add_argument("--torch-threads", type=int, default=os.cpu_count() or 1,
                   help="torch.set_num_threads (default: the machine's cores). On a machine shared with other "
                        "work, more threads than idle cores make torch's small ops spin and wait: 1 can be faster")
    p.add_argument("--jaxser-child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.jaxser_child:
        jaxser_child(a)
        return None

    import torch

    heads = a.heads.split(",")
    cfg, models, rows = default_models(a.encoder, a.quick)   # also fills the embedding cache
    seeds = list(cfg.seeds)
    dim = np.asarray(models[0][1].x_fit).shape[-1]
    n_fit = [len(m.y_fit) for _, m in models]
    print(f"{platform.machine()}, {os.cpu_count()} CPUs; torch {torch.__version__}; encoder {a.encoder} (D={dim}), "
          f"{len(models)} models ({'quick: cross only' if a.quick else ', '.join(cfg.settings)}), fit rows "
          f"{min(n_fit)}-{max(n_fit)}, shared row capacity {rows}; heads {heads}, seeds {seeds}")

    jx = run_jaxser(a)

    torch.set_num_threads(a.torch_threads)
    tr = {}
    for kind in heads:
        head, config = configs(cfg, kind)
        t = time.perf_counter()
        stops, uars = [], []
        for _, m in models:
            s, u, _ = torch_train_model(m, head, config, seeds)
            stops.append(s)
            uars.append(u)
        tr[kind] = dict(s=time.perf_counter() - t, stops=stops, uars=uars)

    tot = dict(warm=0.0, cold=0.0, torch=0.0, se=0, need=0, torch_se=0, compile=0.0)
    for kind in heads:
        j, t = jx[kind], tr[kind]
        pat, max_e = j["patience"], j["max_epochs"]
        need = [[min(b + pat, max_e) for b in bs] for bs in j["best_epoch"]]
        # the trainer's own record agrees: a model runs until its last seed stops
        assert all(max(n) == e == h for n, e, h in zip(need, j["epochs_run"], j["history_len"])), (
            "stopping epochs disagree with the trainer's epochs_run / val_uar_history")
        se = j["slot_epochs"]
        nd = sum(map(sum, need))
        tse = sum(map(sum, t["stops"]))
        print(f"{kind}: jaxser cold {j['cold_s']:.2f} s, warm {j['warm_s']:.2f} s (stacks of {j['stack_sizes']}); "
              f"torch {t['s']:.2f} s -> torch/jaxser {t['s'] / j['warm_s']:.2f}x warm, "
              f"{t['s'] / j['cold_s']:.2f}x cold")
        c = j["compile_s"]
        print(f"{kind}: the cold call's compilation (CPU s, summed over threads): trace {c['trace']:.2f}, "
              f"lower {c['lower']:.2f}, XLA {c['xla']:.2f}; total {sum(c.values()):.2f}")
        print(f"{kind}: seed-epochs jaxser ran {se} (queued slots), independent runs need {nd} "
              f"({se / nd:.2f}x); torch ran {tse}; per seed-epoch: jaxser warm {1e3 * j['warm_s'] / se:.2f} ms, "
              f"torch {1e3 * t['s'] / tse:.2f} ms")
        print(f"{kind}: mean best validation UAR jaxser {np.mean(j['val_uar']):.4f}, "
              f"torch {np.mean([np.mean(u) for u in t['uars']]):.4f}")
        tot["warm"] += j["warm_s"]
        tot["cold"] += j["cold_s"]
        tot["compile"] += sum(j["compile_s"].values())
        tot["torch"] += t["s"]
        tot["se"] += se
        tot["need"] += nd
        tot["torch_se"] += tse
    load = os.getloadavg()
    print(f"total: jaxser warm {tot['warm']:.2f} s, cold {tot['cold']:.2f} s, torch {tot['torch']:.2f} s "
          f"({tot['torch_se']} seed-epochs, {a.torch_threads} threads); "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    res = {"jaxser_warm_s": round(tot["warm"], 3), "jaxser_cold_s": round(tot["cold"], 3),
           "torch_s": round(tot["torch"], 3), "ratio_warm": round(tot["torch"] / tot["warm"], 3),
           "ratio_cold": round(tot["torch"] / tot["cold"], 3), "seed_epochs": tot["se"],
           "seed_epochs_needed": tot["need"], "compile_cpu_s": round(tot["compile"], 2), "models": len(models),
           "seeds": len(seeds), "heads": heads, "torch_threads": a.torch_threads, "load": round(load[0], 2)}
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
