"""JAX emotion2vec vs a PyTorch re-typing of FunASR's forward pass (tests/helpers/emotion2vec_reference.py).

Reference models are tiny but carry the released flags (layer-norm conv stack, 95-wide 5-deep
positional encoder, 10 extra tokens, per-head ALiBi scales, post-LN blocks, input normalisation),
with every parameter perturbed. They are saved in the released layouts (FunASR config.yaml +
model.pt holding {"model": state_dict}; fairseq emotion2vec_base.pt), converted, and loaded the way
a user would. Each utterance of a padded batch must equal the reference run on it ALONE. The
converted folders and the reference outputs are stored in tests/data/reference
(tests/helpers/make_reference_fixtures.py); with torch installed they are also regenerated live and
must match what is stored.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import jaxser.encoders as encoders
from jaxser.encoders import emotion2vec, emotion2vec_convert
from jaxser.encoders.base import EncoderError
from jaxser.errors import report
from tests.helpers import reference_fixtures as fixtures
from tests.helpers.make_reference_fixtures import E2V_VARIANTS

ROOT = Path(__file__).resolve().parents[1]
LENGTHS = (1234, 5600, 2717)  # clearly different lengths, padded together in one bucket
ATOL = 1e-4
#: files of a stored case that are not part of the converted folder
FIXTURE_FILES = ("model_conf.json", "reference.npz")


def _waves(lengths=LENGTHS, seed=0):
    rng = np.random.default_rng(seed)
    return [(0.3 * rng.standard_normal(n) + 0.05).astype(np.float32) for n in lengths]


def _check_parity(enc, case):
    """Every layer of every utterance of one padded batch vs the reference run alone."""
    waves = case.waves()
    got = enc.embed(waves)
    assert got.shape == (len(waves), enc.num_layers, enc.dim) and got.dtype == np.float32
    for i, (pooled, emb) in enumerate(zip(case.ref["ref"], case.ref["emb"], strict=True)):
        assert pooled.shape == got[i].shape
        err = np.abs(got[i] - pooled).max(axis=1)
        assert err.max() <= ATOL, f"utterance {i}: per-layer max abs error {err}"
        assert np.abs(got[i, -1] - emb).max() <= ATOL  # the authors' utterance embedding
    return got


def _cli(*args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "jaxser.encoders.emotion2vec_convert", *map(str, args)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=180)


@pytest.fixture(params=fixtures.SOURCES)
def release(request):
    """The converted release folder (+ model_conf.json) and the reference's outputs."""
    return fixtures.load("emotion2vec-release", request.param)


@pytest.fixture(scope="module")
def funasr(tmp_path_factory):
    """(FunASR release folder with the torch pickle, the folder the CLI converts it to, model, conf): needs torch."""
    pytest.importorskip("torch", reason="the FunASR reference and pickle checkpoints need torch "
                                        "(pip install -e '.[reference]')")
    from tests.helpers import emotion2vec_reference as ref
    from tests.helpers.make_reference_fixtures import emotion2vec_release_model

    model, conf = emotion2vec_release_model()
    root = tmp_path_factory.mktemp("emotion2vec")
    src = ref.save_funasr_folder(root / "emotion2vec_plus_tiny", model, conf)
    res = _cli(src, root / "converted")
    assert res.returncode == 0, res.stderr
    return src, root / "converted", model, conf


@pytest.mark.parametrize("name", ["emotion2vec-release", *(f"emotion2vec-{v}" for v in E2V_VARIANTS)])
def test_stored_reference_is_what_the_generator_writes(name):
    fixtures.assert_same_case(fixtures.stored(name), fixtures.live(name))


def test_release_layout_converts_every_encoder_tensor(funasr):
    import torch

    src, conv, _, _ = funasr
    ckpt = torch.load(src / "model.pt", weights_only=True)
    assert list(ckpt) == ["model"]  # the released nesting
    keys = set(ckpt["model"])
    for k in ("modality_encoders.AUDIO.local_encoder.conv_layers.0.0.weight",
              "modality_encoders.AUDIO.local_encoder.conv_layers.0.2.1.weight",
              "modality_encoders.AUDIO.project_features.2.weight",
              "modality_encoders.AUDIO.relative_positional_encoder.5.0.weight",
              "modality_encoders.AUDIO.context_encoder.blocks.1.attn.qkv.weight",
              "modality_encoders.AUDIO.context_encoder.norm.weight", "modality_encoders.AUDIO.extra_tokens",
              "modality_encoders.AUDIO.alibi_scale", "modality_encoders.AUDIO.decoder.blocks.0.0.weight",
              "blocks.1.mlp.fc2.bias", "proj.weight"):
        assert k in keys, k
    assert sorted(p.name for p in conv.iterdir()) == ["config.json", "config.yaml", "model.safetensors", "tokens.txt"]
    # round trip: every tensor but the pre-training decoder, bit for bit, and the stored folder is this one
    saved = load_file(str(conv / "model.safetensors"))
    kept = {k for k in keys if not k.startswith("modality_encoders.AUDIO.decoder.")}
    assert set(saved) == kept
    for k in kept:
        np.testing.assert_array_equal(saved[k], ckpt["model"][k].numpy(), err_msg=k)
    stored = fixtures.stored("emotion2vec-release").path
    assert load_file(str(stored / "model.safetensors")).keys() == saved.keys()
    cfg = json.loads((conv / "config.json").read_text())
    assert cfg.pop("converted_from") == str(src / "model.pt")
    assert cfg == {k: v for k, v in json.loads((stored / "config.json").read_text()).items() if k != "converted_from"}


def test_release_matches_reference(release):
    conv = release.path
    assert sorted(p.name for p in conv.iterdir() if p.name not in FIXTURE_FILES) == [
        "config.json", "config.yaml", "model.safetensors", "tokens.txt"]
    cfg = release.json("config.json")
    assert cfg["model_type"] == "emotion2vec" and cfg["num_extra_tokens"] == 10 and cfg["normalize"] is True
    assert cfg["feature_encoder_spec"] == [[16, 10, 5], [16, 3, 2], [16, 3, 2], [16, 2, 2]]
    enc = encoders.load(str(conv), buckets=(6400,))
    assert isinstance(enc, emotion2vec.Emotion2VecEncoder)
    assert (enc.num_layers, enc.dim, enc.normalize) == (1 + 2 + 2, 32, True)
    waves = release.waves()
    assert tuple(w.size for w in waves) == LENGTHS
    got = _check_parity(enc, release)
    assert enc.compilations == 2  # one bucket: padded batches of two and one
    for i, w in enumerate(waves):  # batch invariance
        np.testing.assert_allclose(enc.embed([w])[0], got[i], atol=1e-5, rtol=0)
    # frame-level output of the last layer = FunASR's granularity="frame" features
    frames = enc.embed_frames(waves[:1])[0]
    x = release.ref["frames_0"]
    assert frames.shape == x.shape == (enc.frames(LENGTHS[0]), 32)
    np.testing.assert_allclose(frames, x, atol=ATOL)


def test_fairseq_checkpoint_reads_as_released(funasr, tmp_path, capsys):
    import torch

    from tests.helpers import emotion2vec_reference as ref

    _, conv, model, conf = funasr
    fs = ref.save_fairseq_folder(tmp_path / "emotion2vec_base", model, conf)
    # the fairseq layout (state dict under "model" beside "cfg" and optimizer history) converts alike
    assert report(emotion2vec_convert.main, [str(fs / "emotion2vec_base.pt"), str(tmp_path / "fs")]) == 0
    a, b = encoders.load(str(tmp_path / "fs")), encoders.load(str(conv))
    assert a.fingerprint == b.fingerprint
    direct = emotion2vec.load(str(fs))  # reading the release directly: no opt-in, no code runs
    assert direct.fingerprint == b.fingerprint
    for x, y in zip(jax.tree.leaves(direct.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # training-time modules outside the encoder are dropped (and listed); unknown keys inside it are errors
    ckpt = torch.load(fs / "emotion2vec_base.pt", weights_only=True)
    ckpt["model"]["_ema"] = {"blocks.0.attn.qkv.weight": torch.zeros(3)}
    ckpt["model"]["recon_proj.weight"] = torch.zeros(2, 2)
    torch.save(ckpt, fs / "emotion2vec_base.pt")
    cfg, _ = emotion2vec_convert.read_release(fs)
    assert cfg["dropped_keys"] == ["recon_proj.weight"]
    ckpt["model"]["blocks.9.attn.qkv.weight"] = torch.zeros(96, 32)
    torch.save(ckpt, fs / "emotion2vec_base.pt")
    with pytest.raises(EncoderError, match=r"unexpected 1 keys.*blocks\.9\.attn\.qkv\.weight"):
        emotion2vec_convert.read_release(fs)
    del ckpt["model"]["blocks.9.attn.qkv.weight"]
    torch.save(ckpt, fs / "emotion2vec_base.pt")
    # without config.yaml, a fairseq checkpoint's own cfg.model gives the architecture
    (fs / "config.yaml").unlink()
    cfg, _ = emotion2vec_convert.read_release(fs)
    assert cfg["embed_dim"] == 32 and cfg["prenet_depth"] == 2


@pytest.mark.parametrize("source", fixtures.SOURCES)
@pytest.mark.parametrize("variant", list(E2V_VARIANTS))
def test_config_variants_match_reference(variant, source):
    case = fixtures.load(f"emotion2vec-{variant}", source)
    conf = case.json("model_conf.json")
    cfg = emotion2vec.config_from_model_conf(conf)
    arch = emotion2vec.arch_from_config(cfg)
    params = emotion2vec.convert_params(arch, load_file(str(case.path / "weights.safetensors")))
    enc = emotion2vec.Emotion2VecEncoder(arch, params, config=cfg, name=variant, fingerprint="-",
                                         normalize=arch.normalize, buckets=(6400,))
    assert tuple(w.size for w in case.waves()) == LENGTHS[1:]
    _check_parity(enc, case)  # one padded batch of two
    assert enc.compilations == 1


def _edited(conv, dst, edit=None, config=None):
    dst.mkdir()
    tensors = load_file(str(conv / "model.safetensors"))
    if edit:
        edit(tensors)
    save_file(tensors, str(dst / "model.safetensors"))
    cfg = json.loads((conv / "config.json").read_text())
    (dst / "config.json").write_text(json.dumps({**cfg, **(config or {})}))
    return str(dst)


def test_clear_errors(tmp_path, monkeypatch):
    stored = fixtures.stored("emotion2vec-release")
    conv, conf = stored.path, stored.json("model_conf.json")
    blk = "modality_encoders.AUDIO.context_encoder.blocks.1.attn.proj.bias"
    with pytest.raises(EncoderError, match=rf"missing 1 keys.*{blk.replace('.', '[.]')}"):
        emotion2vec.load(_edited(conv, tmp_path / "a", lambda t: t.pop(blk)))
    with pytest.raises(EncoderError, match=r"unexpected 1 keys.*blocks\.9\.attn\.qkv\.weight"):
        emotion2vec.load(_edited(conv, tmp_path / "b",
                                 lambda t: t.update({"blocks.9.attn.qkv.weight": t["blocks.0.attn.qkv.weight"]})))
    with pytest.raises(EncoderError,
                       match=r"relative_positional_encoder\.1\.0\.weight has shape \(32, 8, 19\).*\(32, 8, 9\)"):
        emotion2vec.load(_edited(conv, tmp_path / "c", config={"conv_pos_width": 45}))
    with pytest.raises(EncoderError, match="model_type 'wav2vec2'"):
        emotion2vec.load(_edited(conv, tmp_path / "d", config={"model_type": "wav2vec2"}))
    bad = {**conf, "modalities": {"audio": {**conf["modalities"]["audio"], "learned_alibi": True}}}
    with pytest.raises(EncoderError, match="learned_alibi"):
        emotion2vec.config_from_model_conf(bad)
    with pytest.raises(EncoderError, match="feature_encoder_spec"):  # the spec is parsed, never eval()'d
        emotion2vec.parse_spec("__import__('os').getcwd()")
    assert emotion2vec.parse_spec("[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] + [(512,2,2)]")[-1] == (512, 2, 2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(EncoderError, match=r"no emotion2vec weights: expected a release \(config\.yaml \+ model\.pt"):
        emotion2vec.load(str(tmp_path / "empty"))
    with pytest.raises(EncoderError, match="not a directory"):
        emotion2vec.load(str(tmp_path / "nowhere"))

    def offline(*a, **k):
        raise OSError("no network")

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(EncoderError, match=r"config\.yaml.*\*\.pt.* of emotion2vec/emotion2vec_plus_large.*"
                                           r"jaxser fetch emotion2vec/emotion2vec_plus_large"):
        encoders.load("emotion2vec-plus-large")
    with pytest.raises(EncoderError, match="needs at least 60 "):  # the tiny conv stack's receptive field
        encoders.load(str(conv)).embed([np.zeros(59, np.float32)])


def test_random_presets_registry_and_normalisation():
    enc = encoders.load("random-emotion2vec")
    assert (enc.dim, enc.num_layers, enc.arch.extra, enc.arch.pos_kernel) == (64, 5, 10, 19)
    waves = _waves((14800, 16000))  # one bucket, one batch
    out = enc.embed(waves)
    assert out.shape == (2, 5, 64) and np.isfinite(out).all()
    frames = enc.embed_frames(waves, layer=2)
    assert [f.shape[0] for f in frames] == [enc.frames(n) for n in (14800, 16000)] == [46, 49]
    np.testing.assert_allclose(np.stack([f.mean(0) for f in frames]), out[:, 2], atol=1e-5)
    # the input layer norm makes gain and offset irrelevant
    np.testing.assert_allclose(enc.embed([3.0 * w - 0.2 for w in waves]), out, atol=1e-4)
    bf = emotion2vec.load("random", dtype="bfloat16")
    assert bf.fingerprint != enc.fingerprint
    rel = np.linalg.norm(bf.embed(waves) - out, axis=-1) / np.linalg.norm(out, axis=-1)
    assert rel.max() < 0.1, rel.max()
    other = emotion2vec.load("random", seed=1)
    assert other.fingerprint != enc.fingerprint == emotion2vec.load("random").fingerprint
    assert emotion2vec.load("random", normalize=False).fingerprint != enc.fingerprint
    base = emotion2vec.arch_from_config(emotion2vec.PRESETS["base"])  # emotion2vec_base sizes: shapes only
    n_params = sum(int(np.prod(s)) for s in emotion2vec.expected_shapes(base).values())
    assert (base.embed, 1 + base.blocks, base.min_samples) == (768, 13, 400) and 90e6 < n_params < 95e6
    for name, hub in (("emotion2vec-base", "emotion2vec/emotion2vec_base"),
                      ("emotion2vec-plus-seed", "emotion2vec/emotion2vec_plus_seed"),
                      ("emotion2vec-plus-base", "emotion2vec/emotion2vec_plus_base"),
                      ("emotion2vec-plus-large", "emotion2vec/emotion2vec_plus_large")):
        assert encoders.REGISTRY[name] == ("emotion2vec", {"source": hub})
    with pytest.raises(EncoderError, match="unknown preset"):
        emotion2vec.load("random", preset="huge")
