"""Throughput of jaxser's JAX wav2vec2 encoder vs the transformers PyTorch reference, side by side.

Both sides run the wav2vec2-base architecture with the SAME random weights (the PyTorch model is
built from its config, saved with save_pretrained, and loaded into jaxser through the normal
path) on the same batch of audio (lengths uniform in 2-8 s), computing the same thing: every
hidden state, mean-pooled over each utterance's valid frames.

  jaxser: length buckets (ratio 2^(1/6), a batch reaching one bucket down), one jitted forward per
          batch shape, batch-invariant; float32 and bfloat16 (bf16 x bf16 -> f32 dots).
  torch:  the usual Hugging Face way -- batches of --batch-size utterances in corpus order,
          zero-padded to the longest, with attention_mask, under torch.inference_mode; float32,
          and bfloat16 under torch.autocast("cpu"), one utterance at a time (no padding: its best
          case), until --torch-bf16-budget seconds have passed (on a CPU without bf16
          instructions oneDNN's bf16 kernels are over 100x slower than its float32 ones, so the
          rate is measured over the utterances done within the budget, which are reported).

Timing: after a warm-up (compiles every batch shape; the count and compile time are reported),
--rounds rounds alternate the sides (so background load hits all alike); each side's best round
counts. bf16 accuracy: cosine of every hidden state (pooled) against jaxser float32, minimum over
utterances and layers. The last line printed is one JSON object.

    python benchmarks/encoder_throughput.py           # ~1-3 min on a 2-core CPU
    python benchmarks/encoder_throughput.py --quick   # a smoke run
    python benchmarks/encoder_throughput.py --model w2v-bert-small   # w2v-BERT 2.0 layout, small sizes
    python benchmarks/encoder_throughput.py --extract # cold extraction, four synthetic corpora (~2-5 min)
    python benchmarks/encoder_throughput.py --extract --quick  # two of them

--extract: random-wav2vec2 (preset "small", float32) over the four synthetic corpora through
jaxser.embed (an empty temporary cache), each batching policy in a fresh process: "bucketwise"
(the 2^(1/8) ladder, one bucket per batch) and "default" (the 2^(1/6) ladder, a batch reaching one
bucket down). Reports distinct compiled shapes, padding waste, compile time (tracing + lowering
+ XLA compilation) and wall time; embeddings of both policies are compared.

--model w2v-bert-small compares jaxser's w2v-BERT port (preset "small": 256 wide, 4 Conformer
layers, facebook/w2v-bert-2.0's flags) with SeamlessM4TFeatureExtractor + Wav2Vec2BertModel,
both sides including their filterbank front end (the feature extraction time is printed apart).
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="few short utterances, one round")
    ap.add_argument("--n", type=int, default=None, help="number of utterances (default 48; quick 8)")
    ap.add_argument("--rounds", type=int, default=None, help="alternating timed rounds (default 2; quick 1)")
    ap.add_argument("--batch-size", type=int, default=8, help="torch batch size (HF-style padded batches)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", choices=("wav2vec2-base", "w2v-bert-small"), default="wav2vec2-base",
                    help="architecture on both sides (random weights)")
    ap.add_argument("--torch-bf16-budget", type=float, default=20.0,
                    help="seconds torch bfloat16 may run (0: skip it)")
    ap.add_argument("--extract", action="store_true",
                    help="cold extraction over the synthetic corpora: shapes, padding, compile time per policy")
    ap.add_argument("--extract-policy", choices=("bucketwise", "default"), help=argparse.SUPPRESS)
    ap.add_argument("--single-thread", action="store_true",
                    help="one thread per side (torch.set_num_threads(1), XLA without intra-op threads): "
                         "CPU-time comparison that background load on a shared machine distorts least")
    args = ap.parse_args()
    if args.single_thread:  # must precede jax's backend initialisation
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()
    n = args.n or (8 if args.quick else 48)
    rounds = args.rounds or (1 if args.quick else 2)
    if args.extract_policy:
        return extract_one(args.extract_policy, args.quick)
    if args.extract:
        return run_extract(args)

    import torch

    if args.single_thread:
        torch.set_num_threads(1)
    if args.model == "w2v-bert-small":
        return run_w2v_bert(args, n, rounds)
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    from jaxser.encoders import wav2vec2

    cfg = Wav2Vec2Config(**{k: v for k, v in wav2vec2.PRESETS["base"].items() if k != "model_type"})
    torch.manual_seed(args.seed)
    model = Wav2Vec2Model(cfg).eval()
    rng = np.random.default_rng(args.seed)
    lengths = rng.uniform(2.0, 8.0, size=n) * 16_000
    waves = [(0.1 * rng.standard_normal(int(m))).astype(np.float32) for m in lengths]
    audio_s = sum(w.size for w in waves) / 16_000

    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        enc = wav2vec2.load(tmp)
        enc_bf = wav2vec2.load(tmp, dtype="bfloat16")
    compile_s = CompileClock()
    print(f"machine: {platform.machine()} {cpu_name()}, {os.cpu_count()} CPU cores; "
          f"torch {torch.__version__} threads={torch.get_num_threads()} cpu={torch.backends.cpu.get_cpu_capability()}; "
          f"load average {os.getloadavg()[0]:.1f}" + (" (single-thread mode)" if args.single_thread else ""))
    print(f"model: wav2vec2-base architecture (random weights), {n} utterances, {audio_s:.1f} s of audio "
          f"(2-8 s each)")

    def torch_embed(ws, budget=None, batch_size=args.batch_size):
        """HF-style: padded batches in corpus order, attention_mask, pooled over valid frames.
        With a budget (seconds), stops after the batch that crosses it."""
        out, t0 = [], time.perf_counter()
        with torch.inference_mode():
            for i in range(0, len(ws), batch_size):
                chunk = ws[i: i + batch_size]
                top = max(w.size for w in chunk)
                x = torch.zeros(len(chunk), top)
                mask = torch.zeros(len(chunk), top, dtype=torch.long)
                for r, w in enumerate(chunk):
                    x[r, : w.size] = torch.from_numpy(w)
                    mask[r, : w.size] = 1
                hs = torch.stack(model(x, attention_mask=mask, output_hidden_states=True).hidden_states, 1)
                frames = model._get_feat_extract_output_lengths(mask.sum(-1))
                valid = (torch.arange(hs.shape[2])[None, :] < frames[:, None]).to(hs.dtype)
                out.append((torch.einsum("bltd,bt->bld", hs, valid).float() / frames[:, None, None]).numpy())
                if budget is not None and time.perf_counter() - t0 > budget:
                    break
        return np.concatenate(out)

    # correctness first: jaxser == reference run alone; the padded torch batch is not (group norm)
    first = min(args.batch_size, n)
    probe = [int(np.argmin(lengths[:first])), int(np.argmax(lengths))]  # shortest of torch's first batch
    with torch.inference_mode():
        alone = np.stack([torch.stack([h[0].mean(0) for h in model(torch.from_numpy(waves[i])[None],
                                                                     output_hidden_states=True).hidden_states]).numpy()
                          for i in probe])
    t0, c0 = time.perf_counter(), compile_s.total
    ours = enc.embed(waves)  # warm-up: compiles every batch shape this set needs
    warm, warm_compile = time.perf_counter() - t0, compile_s.total - c0
    t0, c0 = time.perf_counter(), compile_s.total
    ours_bf = enc_bf.embed(waves)
    warm_bf, warm_compile_bf = time.perf_counter() - t0, compile_s.total - c0
    compilations = enc.compilations
    n_shapes = len({t[1:] for t in enc.traces})
    batched = torch_embed(waves[:first])
    err_ours = float(np.abs(ours[probe] - alone).max())
    err_torch = float(np.abs(batched[probe[0]] - alone[0]).max())
    cos = np.sum(ours_bf * ours, -1) / (np.linalg.norm(ours_bf, axis=-1) * np.linalg.norm(ours, axis=-1))
    print(f"check: jaxser vs reference run alone, max abs diff {err_ours:.2e}; torch padded batch vs alone "
          f"(shortest utterance of its batch) {err_torch:.2e}")
    print(f"check: jaxser bfloat16 vs float32, cosine per utterance and layer: min {cos.min():.5f}, "
          f"per layer min {np.round(cos.min(0), 4).tolist()}")
    print(f"jaxser warm-up (compiles {n_shapes} shapes + one pass): float32 {warm:.1f} s (compile "
          f"{warm_compile:.1f} s), bfloat16 {warm_bf:.1f} s (compile {warm_compile_bf:.1f} s)")

    t_jax, t_bf, t_torch = [], [], []
    for r in range(rounds):
        enc.valid_units = enc.padded_units = 0
        t0 = time.perf_counter()
        enc.embed(waves)
        t_jax.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        enc_bf.embed(waves)
        t_bf.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        torch_embed(waves)
        t_torch.append(time.perf_counter() - t0)
        print(f"round {r + 1}: jaxser float32 {t_jax[-1]:.1f} s, jaxser bfloat16 {t_bf[-1]:.1f} s, "
              f"torch float32 {t_torch[-1]:.1f} s (wall; load average {os.getloadavg()[0]:.1f})")
    assert enc.compilations == compilations, "timed rounds must not compile"

    torch_bf_rate, torch_bf_audio = None, 0.0
    if args.torch_bf16_budget > 0:
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            done = torch_embed(waves, budget=args.torch_bf16_budget, batch_size=1)
        t_tbf = time.perf_counter() - t0
        torch_bf_audio = sum(w.size for w in waves[: len(done)]) / 16_000
        torch_bf_rate = torch_bf_audio / t_tbf
        print(f"torch bfloat16 (autocast, one utterance at a time, no padding): {len(done)} utterances "
              f"({torch_bf_audio:.1f} s of audio) in {t_tbf:.1f} s")

    torch_pad = sum(max(w.size for w in waves[i: i + args.batch_size]) * len(waves[i: i + args.batch_size])
                    for i in range(0, n, args.batch_size))
    jax_rate, bf_rate, torch_rate = audio_s / min(t_jax), audio_s / min(t_bf), audio_s / min(t_torch)
    result = {"jax_audio_s_per_s": round(jax_rate, 2), "jax_bf16_audio_s_per_s": round(bf_rate, 2),
              "bf16_speedup": round(bf_rate / jax_rate, 3), "bf16_min_cosine": round(float(cos.min()), 5),
              "torch_audio_s_per_s": round(torch_rate, 2),
              "torch_bf16_audio_s_per_s": None if torch_bf_rate is None else round(torch_bf_rate, 3),
              "torch_bf16_audio_s": round(torch_bf_audio, 1),
              "ratio": round(jax_rate / torch_rate, 3),
              "ratio_bf16": None if torch_bf_rate is None else round(bf_rate / torch_bf_rate, 2),
              "padding_waste": round(enc.padding_waste, 4), "compilations": compilations, "n_shapes": n_shapes,
              "compile_s": round(warm_compile, 2), "compile_bf16_s": round(warm_compile_bf, 2),
              "load_avg": round(os.getloadavg()[0], 2), "cpu": cpu_name(), "cpu_bf16": cpu_has_bf16()}
    print(f"jaxser (JAX, length buckets): float32 {jax_rate:.1f} audio-s/s, bfloat16 {bf_rate:.1f} audio-s/s "
          f"({bf_rate / jax_rate:.2f}x), padding waste {enc.padding_waste:.1%}, {n_shapes} shapes")
    print(f"torch (padded batches of {args.batch_size} + attention_mask): float32 {torch_rate:.1f} audio-s/s"
          + ("" if torch_bf_rate is None else f", bfloat16 {torch_bf_rate:.2f} audio-s/s")
          + f", padding waste {1 - sum(w.size for w in waves) / torch_pad:.1%}")
    print(f"ratio jaxser / torch: float32 {jax_rate / torch_rate:.2f}"
          + ("" if torch_bf_rate is None else f", bfloat16 {bf_rate / torch_bf_rate:.1f}"))
    print(json.dumps(result))


class CompileClock:
    """Seconds jax spent tracing, lowering and compiling (its own duration events), since creation."""

    EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration",
              "/jax/core/compile/backend_compile_duration")

    def __init__(self):
        import jax

        self.total = 0.0

        def listen(event, seconds, **_):
            if event in self.EVENTS:
                self.total += seconds

        jax.monitoring.register_event_duration_secs_listener(listen)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cpu_has_bf16() -> str:
    """The CPU's bf16 matrix features as /proc/cpuinfo lists them ("none" if it lists none)."""
    try:
        flags = next(l for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("flags")).split()
    except (OSError, StopIteration):
        return "unknown"
    found = [f for f in ("avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
    return ",".join(found) or "none"


POLICIES = {"bucketwise": dict(buckets="fine", batch_stretch=1.0), "default": {}}


def run_extract(args) -> None:
    """Each policy in a fresh process (nothing compiled yet), same corpora, same cache-less start."""
    import subprocess

    from jaxser.corpora import synthetic

    synthetic.load_all()  # generate the corpora once, outside the timings
    print(f"machine: {platform.machine()} {cpu_name()}, {os.cpu_count()} CPU cores; "
          f"load average {os.getloadavg()[0]:.1f}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in POLICIES:
            r = subprocess.run([sys.executable, __file__, "--extract-policy", name]
                               + (["--quick"] if args.quick else []),
                               capture_output=True, text=True, check=False,
                               env={**os.environ, "JAXSER_EXTRACT_OUT": tmp})
            if r.returncode:
                sys.exit(f"{name} failed:\n{r.stderr[-3000:]}")
            results[name] = json.loads(r.stdout.strip().splitlines()[-1])
            x = results[name]
            print(f"{name:10s}: {x['n_shapes']} shapes, padding waste {x['padding_waste']:.1%}, compile "
                  f"{x['compile_s']:.1f} s of {x['wall_s']:.1f} s wall (load average {x['load_avg']:.1f})")
        a, b = (np.load(Path(tmp) / f"{k}.npy") for k in POLICIES)
    diff = float(np.abs(a - b).max())
    print(f"embeddings, bucketwise vs default policy: max abs diff {diff:.2e}")
    d = results["default"]
    print(json.dumps({"mode": "extract", "n_shapes": d["n_shapes"], "padding_waste": d["padding_waste"],
                      "compile_s": d["compile_s"], "wall_s": d["wall_s"], "max_abs_diff": diff,
                      "before": results["bucketwise"], "after": d}))


def extract_one(policy: str, quick: bool) -> None:
    """One policy's cold extraction (all four corpora; with quick, the first two)."""
    from jaxser import embed, encoders
    from jaxser.corpora import synthetic

    opts = dict(POLICIES[policy])
    if opts.get("buckets") == "fine":
        from jaxser.encoders.base import geometric_buckets

        opts["buckets"] = geometric_buckets(ratio=2 ** (1 / 8))
    compile_s = CompileClock()
    enc = encoders.load("random-wav2vec2", **opts)
    out = []
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        for name, ds in sorted(synthetic.load_all().items())[: 2 if quick else None]:
            out.append(embed.embed(enc, ds, cache=cache, progress=False).x)
        wall = time.perf_counter() - t0
    np.save(Path(os.environ["JAXSER_EXTRACT_OUT"]) / f"{policy}.npy", np.concatenate(out))
    print(json.dumps({"policy": policy, "n_shapes": len({t[1:] for t in enc.traces}),
                      "padding_waste": round(enc.padding_waste, 4), "compile_s": round(compile_s.total, 2),
                      "wall_s": round(wall, 2), "load_avg": round(os.getloadavg()[0], 2)}))


def run_w2v_bert(args, n: int, rounds: int) -> None:
    """The same comparison for w2v-BERT 2.0: features + Conformer encoder on both sides."""
    import torch
    from transformers import (
        SeamlessM4TFeatureExtractor,
        Wav2Vec2BertConfig,
        Wav2Vec2BertModel,
    )

    from jaxser.encoders import w2v_bert

    preset = {k: v for k, v in w2v_bert.PRESETS["small"].items() if k != "model_type"}
    torch.manual_seed(args.seed)
    model = Wav2Vec2BertModel(Wav2Vec2BertConfig(**preset)).eval()
    fe = SeamlessM4TFeatureExtractor()
    rng = np.random.default_rng(args.seed)
    lengths = rng.uniform(2.0, 8.0, size=n) * 16_000
    waves = [(0.1 * rng.standard_normal(int(m))).astype(np.float32) for m in lengths]
    audio_s = sum(w.size for w in waves) / 16_000
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        enc = w2v_bert.load(tmp)
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPU cores; "
          f"torch {torch.__version__} threads={torch.get_num_threads()}; load average {os.getloadavg()[0]:.1f}"
          + (" (single-thread mode)" if args.single_thread else ""))
    print(f"model: w2v-BERT 2.0 layout, preset 'small' (random weights), {n} utterances, {audio_s:.1f} s of audio "
          f"(2-8 s each)")

    def torch_embed(ws, timing=None):
        """HF-style: feature extractor on padded batches in corpus order, attention_mask, pooled."""
        out = []
        with torch.inference_mode():
            for i in range(0, len(ws), args.batch_size):
                t0 = time.perf_counter()
                f = fe(ws[i: i + args.batch_size], sampling_rate=16_000, return_tensors="pt")
                if timing is not None:
                    timing.append(time.perf_counter() - t0)
                hs = torch.stack(model(f.input_features, attention_mask=f.attention_mask,
                                       output_hidden_states=True).hidden_states, 1)
                m = f.attention_mask.float()
                out.append((torch.einsum("bltd,bt->bld", hs, m) / m.sum(1)[:, None, None]).numpy())
        return out

    t0 = time.perf_counter()
    ours = enc.embed(waves)
    warm = time.perf_counter() - t0
    compilations = enc.compilations
    first = torch_embed(waves[: min(args.batch_size, n)])[0]
    err = float(np.abs(ours[: first.shape[0]] - first).max())
    print(f"check: jaxser vs torch padded batch, max abs diff {err:.2e}")
    print(f"jaxser warm-up (compiles {compilations} shapes + one pass): {warm:.1f} s")
    t_jax, t_torch = [], []
    for r in range(rounds):
        enc.valid_units = enc.padded_units = 0
        t0 = time.perf_counter()
        enc.embed(waves)
        t_jax.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        enc.features(waves)
        f_jax = time.perf_counter() - t0
        fe_times: list[float] = []
        t0 = time.perf_counter()
        torch_embed(waves, fe_times)
        t_torch.append(time.perf_counter() - t0)
        print(f"round {r + 1}: jaxser {t_jax[-1]:.1f} s wall (front end {f_jax:.2f} s), "
              f"torch {t_torch[-1]:.1f} s wall (feature extractor {sum(fe_times):.2f} s)")
    assert enc.compilations == compilations, "timed rounds must not compile"
    jax_rate, torch_rate = audio_s / min(t_jax), audio_s / min(t_torch)
    result = {"model": args.model, "jax_audio_s_per_s": round(jax_rate, 2),
              "torch_audio_s_per_s": round(torch_rate, 2), "ratio": round(jax_rate / torch_rate, 3),
              "padding_waste": round(enc.padding_waste, 4), "compilations": compilations, "check_max_abs": err}
    print(f"ratio jaxser / torch: {jax_rate / torch_rate:.2f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
