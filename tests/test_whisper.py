"""Flax/JAX Whisper encoder vs transformers' PyTorch WhisperModel (the reference, tests only).

Tiny random configs, every parameter perturbed from its init, saved with save_pretrained
(safetensors) and loaded through the same path a user takes (`jaxser.encoders.load(folder)`).
Even a tiny config processes the full 3000 mel frames / 1500 positions of a 30 s window.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the reference WhisperModel needs torch (pip install 'jaxser[torch]')")
transformers = pytest.importorskip("transformers", reason="the reference WhisperModel needs transformers")

from safetensors.numpy import load_file, save_file  # noqa: E402

import jaxser.encoders as encoders  # noqa: E402
from jaxser.encoders import whisper  # noqa: E402
from jaxser.encoders.base import EncoderError  # noqa: E402

from corpus_fixtures import voiced_wave  # noqa: E402

SR = 16_000
ATOL = 1e-4


def _wave(n, seed):
    return voiced_wave(n, seed, SR)


def _tiny_config(n_mels=80):
    return transformers.WhisperConfig(
        d_model=48, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=96,
        decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=32, vocab_size=64,
        num_mel_bins=n_mels, max_source_positions=1500, max_target_positions=16,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
        suppress_tokens=[], begin_suppress_tokens=[])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A saved WhisperModel with every parameter moved away from its initialisation."""
    torch.manual_seed(0)
    model = transformers.WhisperModel(_tiny_config()).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    path = tmp_path_factory.mktemp("whisper-tiny")
    model.save_pretrained(str(path), safe_serialization=True)
    return path, model


def _reference(model, wave, n_mels=80):
    """Pooled hidden states [L + 1, D] of the reference on one window (valid-frame rule)."""
    fe = transformers.WhisperFeatureExtractor(feature_size=n_mels)
    feats = fe(wave, sampling_rate=SR, return_tensors="pt").input_features
    with torch.no_grad():
        out = model.encoder(feats, output_hidden_states=True)
    hs = torch.stack(out.hidden_states)[:, 0].numpy()  # [L + 1, 1500, D]
    assert np.array_equal(hs[-1], out.last_hidden_state[0].numpy())  # last entry carries the final norm
    n = whisper.encoder_frames(min(wave.size, 480_000))
    return hs[:, :n].mean(axis=1), n


@pytest.mark.parametrize("n_mels", [80, 128])
def test_log_mel_matches_feature_extractor(n_mels):
    fe = transformers.WhisperFeatureExtractor(feature_size=n_mels)
    np.testing.assert_allclose(whisper.mel_filters(n_mels), fe.mel_filters.astype(np.float32), rtol=1e-6, atol=1e-9)
    enc = whisper.load("random", num_mel_bins=n_mels, d_model=32, encoder_layers=1, encoder_attention_heads=2,
                       encoder_ffn_dim=32)
    waves = [_wave(n, i) for i, n in enumerate([1, 12_345, 480_000, 500_000])]  # tiny, short, exactly 30 s, cut
    waves[1][:4000] = 0.0  # digital silence inside the valid part
    ref = fe(waves, sampling_rate=SR, return_tensors="np").input_features
    got = enc.log_mel(waves)
    assert got.shape == ref.shape == (4, n_mels, 3000)
    assert np.abs(got - ref).max() <= ATOL


def test_matches_reference_every_layer_batched(checkpoint):
    path, model = checkpoint
    enc = encoders.load(str(path))
    assert isinstance(enc, whisper.WhisperEncoder) and enc.num_layers == 3 and enc.dim == 48
    lens = [7_000, 23_456, 40_001]
    waves = [_wave(n, i) for i, n in enumerate(lens)]
    got = enc.embed(waves)
    assert got.shape == (3, 3, 48) and got.dtype == np.float32
    for i, w in enumerate(waves):
        ref, _ = _reference(model, w)
        err = np.abs(got[i] - ref).max(axis=1)
        assert err.max() <= ATOL, f"utterance {i}: per-layer max abs error {err}"
    # batch invariance: alone == in a batch, and batch sizes stay powers of two
    for i, w in enumerate(waves):
        np.testing.assert_allclose(enc.embed([w])[0], got[i], atol=1e-5, rtol=0)
    assert enc.compilations == 2  # batch shapes 2 and 1 (3 = 2 + 1, no dummy rows)
    frames = enc.embed_frames(waves[:2], layer=-1)
    assert [f.shape[0] for f in frames] == [whisper.encoder_frames(n) for n in lens[:2]] == [22, 74]
    np.testing.assert_allclose(frames[1].mean(0), got[1, -1], atol=1e-5)
    # a WhisperForConditionalGeneration-style file (model.encoder. / model.decoder. keys) loads alike
    other = path.parent / "whisper-cg"
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


def test_missing_or_misshaped_encoder_key(checkpoint, tmp_path):
    path, _ = checkpoint
    with pytest.raises(EncoderError, match=r"missing 1 keys.*layers\.1\.fc1\.bias"):
        encoders.load(_broken(path, tmp_path / "a", lambda t: t.pop("encoder.layers.1.fc1.bias")))
    with pytest.raises(EncoderError, match=r"embed_positions\.weight has shape \(1500, 40\)"):
        encoders.load(_broken(path, tmp_path / "b", lambda t: t.update(
            {"encoder.embed_positions.weight": t["encoder.embed_positions.weight"][:, :40].copy()})))
    with pytest.raises(EncoderError, match=r"unexpected 1 keys.*layers\.2\.fc1\.bias"):
        encoders.load(_broken(path, tmp_path / "c", lambda t: t.update(
            {"encoder.layers.2.fc1.bias": np.zeros(96, np.float32)})))
    # decoder keys are ignored deliberately: dropping one does not matter
    encoders.load(_broken(path, tmp_path / "d", lambda t: t.pop("decoder.layers.0.fc1.bias")))
    cfg = json.loads((path / "config.json").read_text())
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "config.json").write_text(json.dumps({**cfg, "d_model": 64}))
    (tmp_path / "e" / "model.safetensors").write_bytes((path / "model.safetensors").read_bytes())
    with pytest.raises(EncoderError, match="conv1.weight has shape"):
        encoders.load(str(tmp_path / "e"))


def test_longer_than_30_seconds(checkpoint):
    path, model = checkpoint
    enc = encoders.load(str(path))
    n = 480_000 + 24_000  # 31.5 s: a full window + 1.5 s
    w = _wave(n, 7)
    r1, n1 = _reference(model, w[:480_000])
    r2, n2 = _reference(model, w[480_000:])
    assert (n1, n2) == (1500, 75) and enc.frames(n) == 1575
    expected = (n1 * r1 + n2 * r2) / (n1 + n2)
    got = enc.embed([w, w[:16_000]])
    assert np.abs(got[0] - expected).max() <= ATOL
    frames = enc.embed_frames([w], layer=0)[0]
    assert frames.shape == (1575, 48)
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
