"""Throughput of jaxser's JAX wav2vec2 encoder vs the transformers PyTorch reference, side by side.

Both sides run the wav2vec2-base architecture with the SAME random weights (the PyTorch model is
built from its config, saved with save_pretrained, and loaded into jaxser through the normal
path) on the same batch of audio (lengths uniform in 2-8 s), computing the same thing: every
hidden state, mean-pooled over each utterance's valid frames.

  jaxser: length buckets (ratio 2^(1/8)), one jitted forward per bucket shape, batch-invariant.
  torch:  the usual Hugging Face way -- batches of --batch-size utterances in corpus order,
          zero-padded to the longest, with attention_mask, under torch.inference_mode.

Timing: after a warm-up (compiles every bucket shape; the count is reported), --rounds rounds
alternate the two sides (so background load hits both alike); each side's best round counts.
The last line printed is one JSON object.

    python benchmarks/encoder_throughput.py           # ~20-60 s per side on a 2-core CPU
    python benchmarks/encoder_throughput.py --quick   # a smoke run
    python benchmarks/encoder_throughput.py --model w2v-bert-small   # w2v-BERT 2.0 layout, small sizes

--model w2v-bert-small compares jaxser's w2v-BERT port (preset "small": 256 wide, 4 Conformer
layers, facebook/w2v-bert-2.0's flags) with SeamlessM4TFeatureExtractor + Wav2Vec2BertModel,
both sides including their filterbank front end (the feature extraction time is printed apart).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import sys
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
    ap.add_argument("--single-thread", action="store_true",
                    help="one thread per side (torch.set_num_threads(1), XLA without intra-op threads): "
                         "CPU-time comparison that background load on a shared machine distorts least")
    args = ap.parse_args()
    if args.single_thread:  # must precede jax's backend initialisation
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()
    n = args.n or (8 if args.quick else 48)
    rounds = args.rounds or (1 if args.quick else 2)

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
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPU cores; "
          f"torch {torch.__version__} threads={torch.get_num_threads()}; load average {os.getloadavg()[0]:.1f}"
          + (" (single-thread mode)" if args.single_thread else ""))
    print(f"model: wav2vec2-base architecture (random weights), {n} utterances, {audio_s:.1f} s of audio "
          f"(2-8 s each)")

    def torch_embed(ws):
        """HF-style: padded batches in corpus order, attention_mask, pooled over valid frames."""
        out = []
        with torch.inference_mode():
            for i in range(0, len(ws), args.batch_size):
                chunk = ws[i: i + args.batch_size]
                top = max(w.size for w in chunk)
                x = torch.zeros(len(chunk), top)
                mask = torch.zeros(len(chunk), top, dtype=torch.long)
                for r, w in enumerate(chunk):
                    x[r, : w.size] = torch.from_numpy(w)
                    mask[r, : w.size] = 1
                hs = torch.stack(model(x, attention_mask=mask, output_hidden_states=True).hidden_states, 1)
                frames = model._get_feat_extract_output_lengths(mask.sum(-1))
                valid = (torch.arange(hs.shape[2])[None, :] < frames[:, None]).float()
                out.append((torch.einsum("bltd,bt->bld", hs, valid) / frames[:, None, None]).numpy())
        return np.concatenate(out)

    # correctness first: jaxser == reference run alone; the padded torch batch is not (group norm)
    first = min(args.batch_size, n)
    probe = [int(np.argmin(lengths[:first])), int(np.argmax(lengths))]  # shortest of torch's first batch
    with torch.inference_mode():
        alone = np.stack([torch.stack([h[0].mean(0) for h in model(torch.from_numpy(waves[i])[None],
                                                                     output_hidden_states=True).hidden_states]).numpy()
                          for i in probe])
    t0 = time.perf_counter()
    ours = enc.embed(waves)  # warm-up: compiles every bucket shape this batch needs
    warm = time.perf_counter() - t0
    compilations = enc.compilations
    batched = torch_embed(waves[:first])
    err_ours = float(np.abs(ours[probe] - alone).max())
    err_torch = float(np.abs(batched[probe[0]] - alone[0]).max())
    print(f"check: jaxser vs reference run alone, max abs diff {err_ours:.2e}; torch padded batch vs alone "
          f"(shortest utterance of its batch) {err_torch:.2e}")
    print(f"jaxser warm-up (compiles {compilations} shapes + one pass): {warm:.1f} s")

    t_flax, t_torch = [], []
    for r in range(rounds):
        enc.stats = {"samples": 0, "padded_samples": 0}
        t0, c0 = time.perf_counter(), time.process_time()
        enc.embed(waves)
        t_flax.append(time.perf_counter() - t0)
        c_flax = time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        torch_embed(waves)
        t_torch.append(time.perf_counter() - t0)
        c_torch = time.process_time() - c0
        print(f"round {r + 1}: jaxser {t_flax[-1]:.1f} s wall ({c_flax:.1f} s CPU), "
              f"torch {t_torch[-1]:.1f} s wall ({c_torch:.1f} s CPU)")
    assert enc.compilations == compilations, "timed rounds must not compile"

    torch_pad = sum(max(w.size for w in waves[i: i + args.batch_size]) * len(waves[i: i + args.batch_size])
                    for i in range(0, n, args.batch_size))
    flax_rate, torch_rate = audio_s / min(t_flax), audio_s / min(t_torch)
    result = {"flax_audio_s_per_s": round(flax_rate, 2), "torch_audio_s_per_s": round(torch_rate, 2),
              "ratio": round(flax_rate / torch_rate, 3), "padding_waste": round(enc.padding_waste, 4),
              "compilations": compilations}
    print(f"jaxser (JAX, float32, length buckets): {flax_rate:.1f} audio-s/s, padding waste "
          f"{enc.padding_waste:.1%}, {compilations} compilations")
    print(f"torch (padded batches of {args.batch_size} + attention_mask): {torch_rate:.1f} audio-s/s, padding "
          f"waste {1 - sum(w.size for w in waves) / torch_pad:.1%}")
    print(f"ratio jaxser / torch: {flax_rate / torch_rate:.2f}")
    print(json.dumps(result))


def run_w2v_bert(args, n: int, rounds: int) -> None:
    """The same comparison for w2v-BERT 2.0: features + Conformer encoder on both sides."""
    import torch
    from transformers import SeamlessM4TFeatureExtractor, Wav2Vec2BertConfig, Wav2Vec2BertModel

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
    t_flax, t_torch = [], []
    for r in range(rounds):
        enc.stats = {"frames": 0, "padded_frames": 0}
        t0 = time.perf_counter()
        enc.embed(waves)
        t_flax.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        enc.features(waves)
        f_flax = time.perf_counter() - t0
        fe_times: list[float] = []
        t0 = time.perf_counter()
        torch_embed(waves, fe_times)
        t_torch.append(time.perf_counter() - t0)
        print(f"round {r + 1}: jaxser {t_flax[-1]:.1f} s wall (front end {f_flax:.2f} s), "
              f"torch {t_torch[-1]:.1f} s wall (feature extractor {sum(fe_times):.2f} s)")
    assert enc.compilations == compilations, "timed rounds must not compile"
    flax_rate, torch_rate = audio_s / min(t_flax), audio_s / min(t_torch)
    result = {"model": args.model, "flax_audio_s_per_s": round(flax_rate, 2),
              "torch_audio_s_per_s": round(torch_rate, 2), "ratio": round(flax_rate / torch_rate, 3),
              "padding_waste": round(enc.padding_waste, 4), "compilations": compilations, "check_max_abs": err}
    print(f"ratio jaxser / torch: {flax_rate / torch_rate:.2f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
