"""JAX Whisper encoder vs transformers' PyTorch WhisperModel (the reference, tests only).

A tiny random config, every parameter perturbed from its init, saved with save_pretrained
(safetensors) and loaded through the same path a user takes (`jaxser.encoders.load(folder)`).
Even a tiny config processes the full 3000 mel frames / 1500 positions of a 30 s window. The
reference outputs are stored in tests/data/reference/whisper (tests/helpers/make_reference_fixtures.py);
with torch and transformers installed they are also regenerated live and must match what is stored.
"""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import jaxser.encoders as encoders
from jaxser.encoders import whisper
from jaxser.encoders.base import EncoderError
from tests.helpers import reference_fixtures as fixtures
from tests.helpers.make_reference_fixtures import MEL_FRAMES_STEP

from tests.helpers.corpus_fixtures import voiced_wave  # noqa: E402

SR = 16_000
ATOL = 1e-4
D = 32  # the tiny checkpoint's d_model


def _wave(n, seed):
    return voiced_wave(n, seed, SR)


@pytest.fixture(params=fixtures.SOURCES)
def checkpoint(request):
    """The saved tiny WhisperModel and the reference's outputs on the stored waves."""
    return fixtures.load("whisper", request.param)


def test_stored_reference_is_what_the_generator_writes():
    fixtures.assert_same_case(fixtures.stored("whisper"), fixtures.live("whisper"))


@pytest.mark.parametrize("n_mels", [80, 128])
def test_log_mel_matches_feature_extractor(checkpoint, n_mels):
    np.testing.assert_allclose(whisper.mel_filters(n_mels), checkpoint.ref[f"mel_filters_{n_mels}"], rtol=1e-6,
                               atol=1e-9)
    enc = whisper.load("random", num_mel_bins=n_mels, d_model=32, encoder_layers=1, encoder_attention_heads=2,
                       encoder_ffn_dim=32)
    waves = checkpoint.waves("mel_wave_")  # tiny, short with digital silence, exactly 30 s, cut
    assert [w.size for w in waves] == [1, 12_345, 480_000, 500_000]
    got = enc.log_mel(waves)
    assert got.shape == (4, n_mels, 3000)
    ref = checkpoint.ref[f"log_mel_{n_mels}"]  # every MEL_FRAMES_STEP-th frame
    assert ref.shape == (4, n_mels, -(-3000 // MEL_FRAMES_STEP))
    assert np.abs(got[..., ::MEL_FRAMES_STEP] - ref).max() <= ATOL
    if checkpoint.source == "live" and importlib.util.find_spec("transformers"):  # every frame
        import transformers

        full = transformers.WhisperFeatureExtractor(feature_size=n_mels)(waves, sampling_rate=SR,
                                                                        return_tensors="np").input_features
        assert np.abs(got - full).max() <= ATOL


def test_matches_reference_every_layer_batched(checkpoint, tmp_path):
    path = checkpoint.path
    enc = encoders.load(str(path))
    assert isinstance(enc, whisper.WhisperEncoder) and enc.num_layers == 3 and enc.dim == D
    waves = checkpoint.waves()
    lens = [w.size for w in waves]
    assert lens == [7_000, 23_456, 40_001]
    got = enc.embed(waves)
    assert got.shape == (3, 3, D) and got.dtype == np.float32
    for i in range(len(waves)):
        err = np.abs(got[i] - checkpoint.ref["ref"][i]).max(axis=1)
        assert err.max() <= ATOL, f"utterance {i}: per-layer max abs error {err}"
    # batch invariance: alone == in a batch, and batch sizes stay powers of two
    for i, w in enumerate(waves):
        np.testing.assert_allclose(enc.embed([w])[0], got[i], atol=1e-5, rtol=0)
    assert enc.compilations == 2  # batch shapes 2 and 1 (3 = 2 + 1, no dummy rows)
    frames = enc.embed_frames(waves[:2], layer=-1)
    assert [f.shape[0] for f in frames] == [whisper.encoder_frames(n) for n in lens[:2]] == [22, 74]
    np.testing.assert_allclose(frames[1].mean(0), got[1, -1], atol=1e-5)
    # a WhisperForConditionalGeneration-style file (model.encoder. / model.decoder. keys) loads alike
    other = tmp_path / "whisper-cg"
    other.mkdir()
    (other / "config.json").write_text((path / "config.json").read_text())
    save_file({f"model.{k}": v for k, v in load_file(str(path / "model.safetensors")).items()},
              str(other / "model.safetensors"))
    enc2 = encoders.load(str(other))
    np.testing.assert_array_equal(enc2.embed(waves[:1]), got[:1])
    assert enc2.fingerprint == enc.fingerprint


def _broken(path, tmp_path, edit):
    tensors = load_file(str(path / "model.safetensors"))
    edit(tensors)
    tmp_path.mkdir()
    (tmp_path / "config.json").write_text((path / "config.json").read_text())
    save_file(tensors, str(tmp_path / "model.safetensors"))
    return str(tmp_path)


def test_missing_or_misshaped_encoder_key(tmp_path):
    path = fixtures.stored("whisper").path
    with pytest.raises(EncoderError, match=r"missing 1 keys.*layers\.1\.fc1\.bias"):
        encoders.load(_broken(path, tmp_path / "a", lambda t: t.pop("encoder.layers.1.fc1.bias")))
    with pytest.raises(EncoderError, match=r"embed_positions\.weight has shape \(1500, 20\)"):
        encoders.load(_broken(path, tmp_path / "b", lambda t: t.update(
            {"encoder.embed_positions.weight": t["encoder.embed_positions.weight"][:, :20].copy()})))
    with pytest.raises(EncoderError, match=r"unexpected 1 keys.*layers\.2\.fc1\.bias"):
        encoders.load(_broken(path, tmp_path / "c", lambda t: t.update(
            {"encoder.layers.2.fc1.bias": np.zeros(64, np.float32)})))
    # decoder keys are ignored deliberately: dropping one does not matter
    encoders.load(_broken(path, tmp_path / "d", lambda t: t.pop("decoder.layers.0.fc1.bias")))
    cfg = json.loads((path / "config.json").read_text())
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "config.json").write_text(json.dumps({**cfg, "d_model": 64}))
    (tmp_path / "e" / "model.safetensors").write_bytes((path / "model.safetensors").read_bytes())
    with pytest.raises(EncoderError, match="conv1.weight has shape"):
        encoders.load(str(tmp_path / "e"))


def test_longer_than_30_seconds(checkpoint):
    """The reference ran each 30 s window alone; the port weights windows by their frames."""
    enc = encoders.load(str(checkpoint.path))
    (w,) = checkpoint.waves("long_")
    n = w.size
    assert n == 480_000 + 24_000  # 31.5 s: a full window + 1.5 s
    r1, r2 = checkpoint.ref["long_ref_windows"]
    n1, n2 = (int(x) for x in checkpoint.ref["long_window_frames"])
    assert (n1, n2) == (1500, 75) and enc.frames(n) == 1575
    expected = (n1 * r1 + n2 * r2) / (n1 + n2)
    got = enc.embed([w, w[:16_000]])
    assert np.abs(got[0] - expected).max() <= ATOL
    frames = enc.embed_frames([w], layer=0)[0]
    assert frames.shape == (1575, D)
    np.testing.assert_allclose(frames.mean(0), got[0, 0], atol=1e-5)


def test_random_presets_and_dtype():
    a = whisper.load("random", d_model=32, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=32)
    b = whisper.load("random", d_model=32, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=32, seed=1)
    c = whisper.load("random", d_model=32, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=32,
                     dtype="bfloat16")
    assert a.fingerprint != b.fingerprint and a.fingerprint != c.fingerprint
    w = [_wave(8_000, 0)]
    ea, ec = a.embed(w), c.embed(w)
    assert ea.shape == ec.shape == (1, 2, 32) and ec.dtype == np.float32
    assert np.abs(ea - ec).max() < 0.1 * np.abs(ea).max()  # bfloat16 is close, not equal
    assert whisper.PRESETS["tiny"]["d_model"] == 384 and whisper.PRESETS["base"]["encoder_layers"] == 6
    with pytest.raises(EncoderError, match="unknown preset"):
        whisper.load("random", preset="huge")
