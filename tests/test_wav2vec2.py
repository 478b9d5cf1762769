"""Parity of jaxser's JAX wav2vec2 family with transformers' PyTorch models (the reference).

Tiny random configs of every model type and both norm variants, perturbed away from their trivial
init and saved with `save_pretrained` (safetensors), are loaded through the user's code path. Each
utterance of a padded, bucketed batch must equal the reference run on it ALONE. The reference
outputs are stored in tests/data/reference (tests/helpers/make_reference_fixtures.py); with torch and
transformers installed every case is also regenerated live and must match what is stored.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from jaxser import encoders
from jaxser.encoders import EncoderError, wav2vec2
from tests.helpers import reference_fixtures as fixtures

LENGTHS = (1234, 5600, 2717)  # clearly different lengths, padded together in one bucket
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
            conv_dim=(16, 16, 16), conv_kernel=(10, 3, 2), conv_stride=(5, 2, 2),
            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
ATOL = 1e-4


def _waves(lengths=LENGTHS, seed=0):
    rng = np.random.default_rng(seed)
    return [(0.3 * rng.standard_normal(n) + 0.05).astype(np.float32) for n in lengths]


CASES = [("wav2vec2", False), ("wav2vec2", True), ("hubert", False), ("hubert", True), ("wavlm", False),
         ("wavlm", True), ("unispeech-sat", False), ("unispeech-sat", True), ("data2vec-audio", False)]
NAMES = [f"{k}-{'stable' if s else 'base'}" for k, s in CASES]
ALL = [*NAMES, "hubert-bn-pos-conv", "wav2vec2-ctc"]


@pytest.fixture(params=fixtures.SOURCES)
def source(request):
    return request.param


@pytest.mark.parametrize("name", NAMES)
def test_parity_with_reference_run_alone(name, source):
    case = fixtures.load(name, source)
    waves = case.waves()
    assert [w.size for w in waves] == list(LENGTHS)
    enc = encoders.load(str(case.path))
    assert isinstance(enc, wav2vec2.Wav2Vec2Encoder)
    got = enc.embed(waves)
    ref = case.ref["ref"]
    assert got.shape == ref.shape == (3, TINY["num_hidden_layers"] + 1, TINY["hidden_size"])
    err = np.abs(got - ref).max(axis=(1, 2))
    assert err.max() <= ATOL, f"{name}: max abs error per utterance {err}"
    # the family module's own entry point gives the same encoder
    enc2 = wav2vec2.load(str(case.path))
    assert enc2.fingerprint == enc.fingerprint and enc2.arch == enc.arch


def test_hubert_batch_norm_positional_conv_and_task_checkpoint(source):
    bn = fixtures.load("hubert-bn-pos-conv", source)
    assert json.loads((bn.path / "config.json").read_text())["conv_pos_batch_norm"] is True
    np.testing.assert_allclose(wav2vec2.load(bn.path).embed(bn.waves()), bn.ref["ref"], atol=ATOL)
    # a task checkpoint (wav2vec2.* + lm_head.*) loads as its bare model
    ctc = fixtures.load("wav2vec2-ctc", source)
    from safetensors.numpy import load_file

    keys = load_file(str(ctc.path / "model.safetensors")).keys()
    assert any(k.startswith("lm_head.") for k in keys) and any(k.startswith("wav2vec2.") for k in keys)
    np.testing.assert_allclose(wav2vec2.load(ctc.path).embed(ctc.waves()), ctc.ref["ref"], atol=ATOL)


@pytest.mark.parametrize("name", ALL)
def test_stored_reference_is_what_the_generator_writes(name):
    fixtures.assert_same_case(fixtures.stored(name), fixtures.live(name))


def test_weight_g_weight_v_names(tmp_path):
    from safetensors.numpy import load_file, save_file

    case = fixtures.stored("wav2vec2-base")
    w = load_file(str(case.path / "model.safetensors"))
    assert "encoder.pos_conv_embed.conv.parametrizations.weight.original0" in w  # what transformers 5 writes
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text((case.path / "config.json").read_text())
    ren = {k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1",
                                                                               "weight_v"): v for k, v in w.items()}
    save_file(ren, str(old / "model.safetensors"))
    np.testing.assert_allclose(wav2vec2.load(old).embed(case.waves()[:2]), case.ref["ref"][:2], atol=ATOL)


def test_pickle_weights_load_as_released(tmp_path):
    """pickle weights (pytorch_model.bin, what many Hub repos ship) load without any opt-in, through the
    restricted reader, into the encoder the safetensors weights give (live torch.save here; the stored
    fixtures of tests/test_checkpoints.py cover CI)."""
    torch = pytest.importorskip("torch", reason="writing a pickle checkpoint needs torch")
    from safetensors.numpy import load_file

    case = fixtures.stored("wav2vec2-base")
    (tmp_path / "pkl").mkdir()
    (tmp_path / "pkl" / "config.json").write_text((case.path / "config.json").read_text())
    state = {k: torch.from_numpy(v) for k, v in load_file(str(case.path / "model.safetensors")).items()}
    torch.save(state, tmp_path / "pkl" / "pytorch_model.bin")
    waves = case.waves()[:2]
    np.testing.assert_allclose(wav2vec2.load(tmp_path / "pkl").embed(waves), case.ref["ref"][:2], atol=ATOL)


def test_checkpoint_errors_are_clear(tmp_path):
    from safetensors.numpy import load_file, save_file

    ok_path = fixtures.stored("wavlm-base").path
    cfg = (ok_path / "config.json").read_text()
    w = load_file(str(ok_path / "model.safetensors"))

    def folder(name, weights, config=cfg):
        d = tmp_path / name
        d.mkdir()
        (d / "config.json").write_text(config)
        if weights is not None:
            save_file(weights, str(d / "model.safetensors"))
        return d

    missing = {k: v for k, v in w.items() if k != "encoder.layers.1.attention.gru_rel_pos_const"}
    with pytest.raises(EncoderError, match=r"missing 1 keys.*gru_rel_pos_const"):
        wav2vec2.load(folder("missing", missing))
    extra = {**w, "encoder.layers.7.attention.q_proj.weight": np.zeros((32, 32), np.float32)}
    with pytest.raises(EncoderError, match=r"unexpected 1 keys.*layers\.7"):
        wav2vec2.load(folder("extra", extra))
    # training-only keys are ignored deliberately
    ok = {**w, "quantizer.codevectors": np.zeros((1, 4, 2), np.float32),
          "project_q.weight": np.zeros((2, 2), np.float32)}
    wav2vec2.load(folder("train_keys", ok))
    bad = {**w, "feature_projection.projection.weight": np.zeros((32, 17), np.float32)}
    with pytest.raises(EncoderError, match=r"feature_projection\.projection\.weight has shape \(32, 17\)"):
        wav2vec2.load(folder("shape", bad))
    with pytest.raises(EncoderError, match=r"no weights \(model\.safetensors or pytorch_model\.bin\)"):
        wav2vec2.load(folder("empty", None))
    with pytest.raises(EncoderError, match="model_type 'bert'"):
        wav2vec2.load(folder("bert", w, json.dumps({**json.loads(cfg), "model_type": "bert"})))
    with pytest.raises(EncoderError, match="needs at least 30 "):  # receptive field of the tiny conv stack
        wav2vec2.load(ok_path).embed([np.zeros(29, np.float32)])


def test_do_normalize_from_preprocessor_config(tmp_path, source):
    """The reference was run on each utterance normalised to zero mean and unit variance."""
    case = fixtures.load("wav2vec2-stable", source)
    for f in ("config.json", "model.safetensors"):
        (tmp_path / f).write_bytes((case.path / f).read_bytes())
    waves = case.waves()
    assert wav2vec2.load(tmp_path).normalize is False
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"do_normalize": True, "sampling_rate": 16000}))
    enc = wav2vec2.load(tmp_path)
    assert enc.normalize is True
    got = enc.embed(waves)
    np.testing.assert_allclose(got, case.ref["ref_normalized"], atol=ATOL)
    # normalisation over each utterance's own samples: gain and offset no longer matter
    np.testing.assert_allclose(enc.embed([3.0 * w - 0.2 for w in waves]), got, atol=1e-4)
    assert wav2vec2.load(tmp_path, normalize=False).normalize is False


def test_random_presets_shapes_frames_and_fingerprint():
    enc = encoders.load("random-wav2vec2")
    assert (enc.dim, enc.num_layers) == (256, 5)
    lengths = (14800, 16000)  # one bucket, one batch: a single compiled shape per function
    waves = _waves(lengths)
    out = enc.embed(waves)
    assert out.shape == (2, 5, 256) and out.dtype == np.float32 and np.isfinite(out).all()
    frames = enc.embed_frames(waves, layer=2)
    assert [f.shape for f in frames] == [(enc.frames(n), 256) for n in lengths] == [(46, 256), (49, 256)]
    np.testing.assert_allclose(np.stack([f.mean(0) for f in frames]), out[:, 2], atol=1e-5)
    assert enc.compilations == 2
    again = wav2vec2.load("random", preset="small")
    other = wav2vec2.load("random", preset="small", seed=1)
    assert again.fingerprint == enc.fingerprint != other.fingerprint
    base = wav2vec2.load("random", preset="base")
    assert (base.dim, base.num_layers, base.arch.stable, base.arch.feat_norm) == (768, 13, False, "group")
    large = wav2vec2.arch_from_config(wav2vec2.PRESETS["large"])  # 315M parameters: shapes only
    assert (large.hidden, large.layers + 1, large.stable, large.feat_norm) == (1024, 25, True, "layer")
    n_params = sum(int(np.prod(s)) for s in wav2vec2.expected_shapes(large).values())
    assert 310e6 < n_params < 320e6
    with pytest.raises(EncoderError, match="unknown preset"):
        wav2vec2.load("random", preset="huge")


def test_bfloat16_runs_and_is_close():
    path = fixtures.stored("wavlm-base").path
    waves = _waves(LENGTHS[:2])
    f32 = wav2vec2.load(path).embed(waves)
    enc = wav2vec2.load(path, dtype="bfloat16")
    bf = enc.embed(waves)
    assert bf.dtype == np.float32 and bf.shape == f32.shape and enc.fingerprint != wav2vec2.load(path).fingerprint
    rel = np.linalg.norm(bf - f32, axis=-1) / np.linalg.norm(f32, axis=-1)
    assert rel.max() < 0.1, rel.max()


def test_bucketing_bounds_shapes_and_reports_waste():
    tiny = {**TINY, "conv_dim": [16] * 3, "conv_kernel": [10, 3, 2], "conv_stride": [5, 2, 2]}
    enc = wav2vec2.load("random", preset="small", model_type="wavlm", num_buckets=20, max_bucket_distance=40,
                        buckets=(4800, 9600), max_batch=4, **tiny)
    waves = _waves((4000, 4100, 4700, 9000, 12000, 800))
    out = enc.embed(waves)
    alone = np.concatenate([enc.embed([w]) for w in waves])
    np.testing.assert_allclose(out, alone, atol=2e-5)  # batch invariance, whatever the neighbours
    assert 0 < enc.padding_waste < 0.5
    # shapes: (4, 4800), (1, 9600), (1, 19200) for the batch, then (1, 4800) alone
    assert sorted(t[1:] for t in enc.traces) == [(1, 4800), (1, 9600), (1, 19200), (4, 4800)]
