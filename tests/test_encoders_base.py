"""The batched encoder base: one ladder, one planner, one set of settings checks for every JAX family."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxser import encoders
from jaxser.encoders.base import (BATCH_STRETCH, BUCKET_RATIO, BatchedEncoder, EncoderError, bucket_length,
                                  geometric_buckets, plan_batches)

LADDER = geometric_buckets()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 40 * 16_000), min_size=1, max_size=80), st.sampled_from([1, 2, 5, 16]),
       st.sampled_from([1.0, BATCH_STRETCH, 1.5]))
def test_plan_covers_every_utterance_once_within_its_bounds(lengths, max_batch, stretch):
    plan = plan_batches(lengths, LADDER, batch_samples=32 * 16_000, max_batch=max_batch, stretch=stretch)
    assert sorted(i for idx, _ in plan for i in idx) == list(range(len(lengths)))
    top = LADDER[-1]
    for idx, blen in plan:
        assert len(idx) <= max_batch and len(idx) & (len(idx) - 1) == 0  # powers of two, no dummy rows
        assert blen in LADDER or blen % top == 0
        for i in idx:
            own = bucket_length(lengths[i], LADDER)
            assert lengths[i] <= own <= blen <= own * stretch  # padding bounded by the reach


def test_one_ladder_in_samples_and_frames():
    from jaxser.encoders import w2v_bert

    assert all(b % 320 == 0 for b in LADDER) and LADDER[0] == 8000 and LADDER[-1] >= 30 * 16_000
    assert np.allclose(np.diff(np.log(LADDER[5:])), np.log(BUCKET_RATIO), atol=0.02)
    assert w2v_bert.frame_buckets() == tuple(b // 320 for b in LADDER)  # 20 ms encoder frames


@pytest.mark.parametrize("name", ["random-wav2vec2", "random-emotion2vec", "random-w2v-bert", "random-whisper"])
def test_every_batched_family_checks_its_settings_alike(name):
    enc = encoders.load(name)
    assert isinstance(enc, BatchedEncoder) and enc.compilations == 0 and enc.padding_waste == 0.0
    with pytest.raises(EncoderError, match="dtype must be 'float32' or 'bfloat16', got 'float16'"):
        encoders.load(name, dtype="float16")
    with pytest.raises(EncoderError, match="max_batch must be >= 1, got 0"):
        encoders.load(name, max_batch=0)
    if name != "random-whisper":  # whisper's one bucket is its 30 s window
        with pytest.raises(EncoderError, match=r"buckets must be increasing positive (samples|frames) counts"):
            encoders.load(name, buckets=(16_000, 8_000))
        with pytest.raises(EncoderError, match="batch_stretch must be at least 1.0"):
            encoders.load(name, batch_stretch=0.5)
    with pytest.raises(ValueError, match="layer 99 out of range"):
        enc.embed_frames([np.zeros(16_000, np.float32)], layer=99)
