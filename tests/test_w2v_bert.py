"""JAX w2v-BERT 2.0 vs transformers' SeamlessM4TFeatureExtractor + Wav2Vec2BertModel (the reference,
tests only).

Tiny random configs with facebook/w2v-bert-2.0's flags (relative_key positions clipped at 64 left /
8 right, depthwise kernel 31, swish), every parameter perturbed from its init, saved with
save_pretrained (safetensors) and loaded through the user's path (`jaxser.encoders.load(folder)`).
Each utterance of a padded, bucketed batch must equal the reference run on it alone.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the reference Wav2Vec2BertModel needs torch (pip install 'jaxser[torch]')")
transformers = pytest.importorskip("transformers", reason="the reference Wav2Vec2BertModel needs transformers")

from safetensors.numpy import load_file, save_file  # noqa: E402

import jaxser.encoders as encoders  # noqa: E402
from jaxser.encoders import w2v_bert  # noqa: E402
from jaxser.encoders.base import EncoderError  # noqa: E402

from corpus_fixtures import voiced_wave  # noqa: E402

SR = 16_000
ATOL = 1e-4
#: 35 ms (one frame), odd and even filterbank frame counts, one past the 64-frame left clip
LENGTHS = (560, 7_000, 12_345, 40_001)


def _waves(lengths=LENGTHS):
    waves = [voiced_wave(n, i, SR) for i, n in enumerate(lengths)]
    if len(waves) > 2:
        waves[2][:4000] = 0.0  # digital silence inside the valid part
    return waves


def _config(**extra):
    cfg = {k: v for k, v in w2v_bert.PRESETS["tiny"].items() if k != "model_type"}
    return transformers.Wav2Vec2BertConfig(**{**cfg, **extra})


def _perturbed(model, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():  # away from trivial init: unit gains, zero biases
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = _perturbed(transformers.Wav2Vec2BertModel(_config()))
    path = tmp_path_factory.mktemp("w2v-bert-tiny")
    model.save_pretrained(str(path))
    return path, model


def _reference(model, waves):
    """Per utterance, run alone through feature extractor + model: ([L + 1, D] pooled, [L + 1, T, D])."""
    fe = transformers.SeamlessM4TFeatureExtractor()
    base = getattr(model, "wav2vec2_bert", model)
    out = []
    for w in waves:
        f = fe(w, sampling_rate=SR, return_tensors="pt")
        with torch.inference_mode():
            hs = base(f.input_features, attention_mask=f.attention_mask, output_hidden_states=True).hidden_states
        t = int(f.attention_mask.sum())
        frames = torch.stack([h[0, :t] for h in hs]).numpy()
        out.append((frames.mean(axis=1), frames))
    return out


def test_features_match_feature_extractor():
    fe = transformers.SeamlessM4TFeatureExtractor()
    np.testing.assert_array_equal(w2v_bert.mel_filters(), fe.mel_filters)
    np.testing.assert_array_equal(w2v_bert.povey_window(), fe.window)
    waves = _waves()
    enc = w2v_bert.load("random")
    got = enc.features(waves)
    ref = fe(waves, sampling_rate=SR, return_tensors="np")  # one padded batch
    for i, (g, w) in enumerate(zip(got, waves)):
        t = int(ref["attention_mask"][i].sum())
        assert g.shape == (t, 160) == (enc.frames(w.size), 160)
        err = np.abs(g - ref["input_features"][i, :t]).max()
        assert err <= 1e-5, f"utterance {i}: features max abs error {err}"
    assert [g.shape[0] for g in got] == [1, 21, 37, 124]


def test_matches_reference_every_layer_batched(checkpoint):
    path, model = checkpoint
    enc = encoders.load(str(path), buckets=(128,))  # one bucket: all four padded into one batch
    assert isinstance(enc, w2v_bert.W2VBertEncoder) and enc.num_layers == 3 and enc.dim == 32
    waves = _waves()
    got = enc.embed(waves)
    assert got.shape == (4, 3, 32) and got.dtype == np.float32
    assert enc.compilations == 1  # one batch shape [4, 128, 160]
    refs = _reference(model, waves)
    for i, (ref, _) in enumerate(refs):
        err = np.abs(got[i] - ref).max(axis=1)
        assert err.max() <= ATOL, f"utterance {i}: per-layer max abs error {err}"
    # batch invariance: in the padded batch == alone
    for i, w in enumerate(waves):
        np.testing.assert_allclose(enc.embed([w])[0], got[i], atol=1e-5, rtol=0)
    assert enc.compilations == 2  # plus the shape [1, 128, 160]
    # frame level, first and last hidden state
    for layer in (0, -1):
        frames = enc.embed_frames(waves, layer=layer)
        for i, (_, ref_frames) in enumerate(refs):
            assert frames[i].shape == ref_frames[layer].shape
            assert np.abs(frames[i] - ref_frames[layer]).max() <= ATOL


def test_task_checkpoint_with_adapter(tmp_path):
    """A CTC fine-tuning layout (`wav2vec2_bert.` prefix, lm_head, adapter, intermediate FFN): the
    hidden states never include the adapter, so they match the reference's."""
    torch.manual_seed(1)
    cfg = _config(vocab_size=12, add_adapter=True, num_adapter_layers=1, use_intermediate_ffn_before_adapter=True)
    model = _perturbed(transformers.Wav2Vec2BertForCTC(cfg), seed=1)
    model.save_pretrained(str(tmp_path))
    enc = encoders.load(str(tmp_path))
    waves = _waves((9_000, 20_000))
    got = enc.embed(waves)
    for i, (ref, _) in enumerate(_reference(model, waves)):
        assert np.abs(got[i] - ref).max() <= ATOL


def _broken(path, tmp_path, edit=None, config=None, files=None):
    tensors = load_file(str(path / "model.safetensors"))
    if edit:
        edit(tensors)
    tmp_path.mkdir()
    cfg = json.loads((path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, **(config or {})}))
    save_file(tensors, str(tmp_path / "model.safetensors"))
    for name, text in (files or {}).items():
        (tmp_path / name).write_text(text)
    return str(tmp_path)


def test_checkpoint_errors_name_the_key_or_setting(checkpoint, tmp_path):
    path, _ = checkpoint
    dist = "encoder.layers.1.self_attn.distance_embedding.weight"
    with pytest.raises(EncoderError, match=r"missing 1 keys.*layers\.1\.self_attn\.distance_embedding"):
        encoders.load(_broken(path, tmp_path / "a", lambda t: t.pop(dist)))
    with pytest.raises(EncoderError, match=r"distance_embedding\.weight has shape \(70, 8\)"):
        encoders.load(_broken(path, tmp_path / "b", lambda t: t.update({dist: t[dist][:70].copy()})))
    with pytest.raises(EncoderError, match=r"unexpected 1 keys.*layers\.2\.ffn1"):
        encoders.load(_broken(path, tmp_path / "c", lambda t: t.update(
            {"encoder.layers.2.ffn1.output_dense.bias": np.zeros(32, np.float32)})))
    with pytest.raises(EncoderError, match=r"config\.json.*position_embeddings_type 'rotary' is not implemented"):
        encoders.load(_broken(path, tmp_path / "d", config={"position_embeddings_type": "rotary"}))
    with pytest.raises(EncoderError, match=r"preprocessor_config\.json.*stride"):
        encoders.load(_broken(path, tmp_path / "e", files={"preprocessor_config.json": json.dumps(
            {"feature_extractor_type": "SeamlessM4TFeatureExtractor", "stride": 3})}))
    with pytest.raises(EncoderError, match="at least 560"):
        encoders.load(str(path)).embed([np.zeros(559, np.float32)])


def test_missing_checkpoint_says_what_to_download(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EncoderError, match=r"facebook/w2v-bert-2\.0.*config\.json \+ model\.safetensors.*folder"):
        encoders.load("w2v-bert-2.0")


def test_random_presets_and_dtype():
    a = encoders.load("random-w2v-bert")
    b = w2v_bert.load("random", seed=1)
    c = w2v_bert.load("random", dtype="bfloat16")
    assert a.fingerprint != b.fingerprint and a.fingerprint != c.fingerprint
    assert a.fingerprint == w2v_bert.load("random").fingerprint
    w = _waves((8_000,))
    ea, ec = a.embed(w), c.embed(w)
    assert ea.shape == ec.shape == (1, 3, 32) and ec.dtype == np.float32
    assert np.abs(ea - ec).max() < 0.1 * np.abs(ea).max()  # bfloat16 is close, not equal
    # the "large" preset is the reference's default configuration (= facebook/w2v-bert-2.0's sizes)
    ref = transformers.Wav2Vec2BertConfig()
    for k, v in w2v_bert.PRESETS["large"].items():
        assert getattr(ref, k) == v, k
    with pytest.raises(EncoderError, match="unknown preset"):
        w2v_bert.load("random", preset="huge")
