"""Padding waste and compiled shapes of length-bucket ladders x batch plans, without a model.

`python benchmarks/bucket_plans.py` plans the batches every batched encoder would run for two
length distributions, exactly as an extraction hands them over (`jaxser.embed`: length-sorted
chunks of 256, groups of at most 32 utterances / 60 s of padded audio, each group through
`base.plan_batches`), and counts what the encoder would compute:

- `synthetic`: the embedded default's four synthetic corpora (their `duration` column; generated
  and cached on first use);
- `cremad-like`: 7,442 simulated clip lengths shaped like CREMA-D (about 1.3-5 s, median about
  2.5 s): log-normal with median 2.5 s and sigma 0.2, clipped to [1.3, 5.0] s, seed 0.

Compiled shapes are distinct (rows, padded length) pairs (each one XLA compilation per jitted
function); padding waste is the fraction of computed samples that were padding. The last line
is JSON.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jaxser.embed import _batches as embed_groups  # noqa: E402
from jaxser.encoders.base import geometric_buckets, plan_batches  # noqa: E402

SR = 16_000
#: (ladder name, buckets, batch_stretch); stretch 1.0 = one bucket per batch
CANDIDATES = {
    "2^(1/8) from 0.5 s, one bucket per batch": (geometric_buckets(SR, ratio=2 ** (1 / 8)), 1.0),
    "2^(1/8) from 0.5 s, reach two steps": (geometric_buckets(SR, ratio=2 ** (1 / 8)), 2 ** (2 / 8) * 1.001),
    "2^(1/6) from 0.5 s, one bucket per batch": (geometric_buckets(SR, ratio=2 ** (1 / 6)), 1.0),
    "2^(1/6) from 0.5 s, reach one step (1.2)": (geometric_buckets(SR, ratio=2 ** (1 / 6)), 1.2),
    "2^(1/4) from 1 s, one bucket per batch": (geometric_buckets(SR, 1.0, 26.9, 2 ** (1 / 4)), 1.0),
    "2^(1/4) from 1 s, reach one step (1.2)": (geometric_buckets(SR, 1.0, 26.9, 2 ** (1 / 4)), 1.2),
}


def synthetic_lengths() -> np.ndarray:
    from jaxser.corpora import synthetic

    return np.concatenate([np.round(np.asarray(ds["duration"], np.float64) * SR).astype(np.int64)
                           for _, ds in sorted(synthetic.load_all().items())])


def cremad_like_lengths(n: int = 7442, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    sec = np.clip(2.5 * np.exp(0.2 * rng.standard_normal(n)), 1.3, 5.0)
    return np.round(sec * SR).astype(np.int64)


def plan_corpus(lengths: np.ndarray, buckets, stretch: float, *, chunk: int = 256, batch_seconds: float = 32.0,
                max_batch: int = 16) -> dict:
    """What an encoder computes for one corpus extracted the way `jaxser.embed` hands it over."""
    order = sorted(range(len(lengths)), key=lambda i: (int(lengths[i]), i))
    shapes, valid, padded = set(), 0, 0
    for c in range(0, len(order), chunk):
        ids = order[c: c + chunk]
        for group in embed_groups(ids, {i: int(lengths[i]) for i in ids}, 60 * SR, 32):
            glen = [int(lengths[i]) for i in group]
            for idx, blen in plan_batches(glen, buckets, batch_samples=int(batch_seconds * SR), max_batch=max_batch,
                                          stretch=stretch):
                shapes.add((len(idx), blen))
                valid += sum(glen[i] for i in idx)
                padded += len(idx) * blen
    return {"shapes": len(shapes), "padding_waste": round(1 - valid / padded, 4)}


def main() -> None:
    corpora = {"synthetic": synthetic_lengths(), "cremad-like": cremad_like_lengths()}
    for name, x in corpora.items():
        print(f"{name}: {len(x)} utterances, {np.min(x) / SR:.2f}-{np.max(x) / SR:.2f} s, "
              f"median {np.median(x) / SR:.2f} s")
    rows = {}
    print(f"{'ladder, batch reach':44s} " + "  ".join(f"{n:>22s}" for n in corpora))
    for cand, (buckets, stretch) in CANDIDATES.items():
        rows[cand] = {n: plan_corpus(x, buckets, stretch) for n, x in corpora.items()}
        print(f"{cand:44s} " + "  ".join(f"{r['shapes']:>8d} shapes {r['padding_waste']:>6.1%}"
                                           for r in rows[cand].values()))
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
