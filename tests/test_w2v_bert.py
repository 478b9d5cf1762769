"""JAX w2v-BERT 2.0 vs transformers' SeamlessM4TFeatureExtractor + Wav2Vec2BertModel (the reference,
tests only).

Tiny random configs with facebook/w2v-bert-2.0's flags (relative_key positions clipped at 64 left /
8 right, depthwise kernel 31, swish), every parameter perturbed from its init, saved with
save_pretrained (safetensors) and loaded through the user's path (`jaxser.encoders.load(folder)`).
Each utterance of a padded, bucketed batch must equal the reference run on it alone. The reference
outputs are stored in tests/data/reference (tests/helpers/make_reference_fixtures.py); with torch and
transformers installed they are also regenerated live and must match what is stored.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import jaxser.encoders as encoders
from jaxser.encoders import w2v_bert
from jaxser.encoders.base import EncoderError
from tests.helpers import reference_fixtures as fixtures

from tests.helpers.corpus_fixtures import voiced_wave  # noqa: E402

SR = 16_000
ATOL = 1e-4
#: 35 ms (one frame), odd and even filterbank frame counts, one past the 64-frame left clip
LENGTHS = (560, 7_000, 12_345, 40_001)


@pytest.fixture(params=fixtures.SOURCES)
def source(request):
    return request.param


@pytest.mark.parametrize("name", ["w2v-bert", "w2v-bert-ctc-adapter"])
def test_stored_reference_is_what_the_generator_writes(name):
    fixtures.assert_same_case(fixtures.stored(name), fixtures.live(name))


def _split(rows, counts):
    return np.split(rows, np.cumsum(counts)[:-1])


def test_features_match_feature_extractor(source):
    case = fixtures.load("w2v-bert", source)
    # float64 tables: stored outputs agree to rounding (libm's results differ by a few ulp across CPUs)
    np.testing.assert_allclose(w2v_bert.mel_filters(), case.ref["mel_filters"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(w2v_bert.povey_window(), case.ref["window"], rtol=0, atol=1e-12)
    waves = case.waves()
    assert tuple(w.size for w in waves) == LENGTHS
    enc = w2v_bert.load("random")
    got = enc.features(waves)
    counts = case.ref["feature_frames"]
    for i, (g, w, ref) in enumerate(zip(got, waves, _split(case.ref["features"], counts), strict=True)):
        assert g.shape == (counts[i], 160) == (enc.frames(w.size), 160)
        err = np.abs(g - ref).max()
        assert err <= 1e-5, f"utterance {i}: features max abs error {err}"
    assert [g.shape[0] for g in got] == [1, 21, 37, 124]


def test_matches_reference_every_layer_batched(source):
    case = fixtures.load("w2v-bert", source)
    enc = encoders.load(str(case.path), buckets=(128,))  # one bucket: all four padded into one batch
    assert isinstance(enc, w2v_bert.W2VBertEncoder) and enc.num_layers == 3 and enc.dim == 32
    waves = case.waves()
    got = enc.embed(waves)
    assert got.shape == (4, 3, 32) and got.dtype == np.float32
    assert enc.compilations == 1  # one batch shape [4, 128, 160]
    for i, ref in enumerate(case.ref["ref"]):
        err = np.abs(got[i] - ref).max(axis=1)
        assert err.max() <= ATOL, f"utterance {i}: per-layer max abs error {err}"
    # batch invariance: in the padded batch == alone
    for i, w in enumerate(waves):
        np.testing.assert_allclose(enc.embed([w])[0], got[i], atol=1e-5, rtol=0)
    assert enc.compilations == 2  # plus the shape [1, 128, 160]
    # frame level, first and last hidden state
    counts = [enc.frames(w.size) for w in waves]
    for layer, key in ((0, "frames_first"), (-1, "frames_last")):
        frames = enc.embed_frames(waves, layer=layer)
        for i, ref_frames in enumerate(_split(case.ref[key], counts)):
            assert frames[i].shape == ref_frames.shape
            assert np.abs(frames[i] - ref_frames).max() <= ATOL


def test_task_checkpoint_with_adapter(source):
    """A CTC fine-tuning layout (`wav2vec2_bert.` prefix, lm_head, adapter, intermediate FFN): the
    hidden states never include the adapter, so they match the reference's."""
    case = fixtures.load("w2v-bert-ctc-adapter", source)
    assert case.json("config.json")["add_adapter"] is True
    enc = encoders.load(str(case.path))
    got = enc.embed(case.waves())
    for i, ref in enumerate(case.ref["ref"]):
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


def test_checkpoint_errors_name_the_key_or_setting(tmp_path):
    path = fixtures.stored("w2v-bert").path
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
    with pytest.raises(EncoderError, match=r"config\.json.*\*\.safetensors.* of facebook/w2v-bert-2\.0@[0-9a-f]{40}.*"
                                           r"jaxser fetch facebook/w2v-bert-2\.0@.*folder"):
        encoders.load("w2v-bert-2.0")


def test_random_presets_and_dtype():
    a = encoders.load("random-w2v-bert")
    b = w2v_bert.load("random", seed=1)
    c = w2v_bert.load("random", dtype="bfloat16")
    assert a.fingerprint != b.fingerprint and a.fingerprint != c.fingerprint
    assert a.fingerprint == w2v_bert.load("random").fingerprint
    w = [voiced_wave(8_000, 0, SR)]
    ea, ec = a.embed(w), c.embed(w)
    assert ea.shape == ec.shape == (1, 3, 32) and ec.dtype == np.float32
    assert np.abs(ea - ec).max() < 0.1 * np.abs(ea).max()  # bfloat16 is close, not equal
    # the "large" preset is the reference's default configuration (= facebook/w2v-bert-2.0's sizes)
    case = fixtures.stored("w2v-bert")
    ref = dict(zip(case.ref["large_keys"].tolist(), map(json.loads, case.ref["large_values"].tolist()), strict=True))
    assert set(ref) == set(w2v_bert.PRESETS["large"])
    for k, v in w2v_bert.PRESETS["large"].items():
        assert ref[k] == v, k
    with pytest.raises(EncoderError, match="unknown preset"):
        w2v_bert.load("random", preset="huge")
