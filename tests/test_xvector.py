"""JAX x-vector vs a PyTorch re-typing of SpeechBrain's eval pipeline (tests/helpers/xvector_reference.py).

The reference model has the released layout (24 mels, five TDNN blocks, statistics pooling) at a
small width, with every parameter and BatchNorm statistic perturbed; it is saved as SpeechBrain's
folder holds it (hyperparams.yaml + torch.save'd embedding_model.ckpt + mean_var_norm_emb.ckpt),
converted with `python -m jaxser.encoders.xvector_convert`, and loaded through
`jaxser.encoders.load(folder)` as a user would. The converted folder and the reference outputs are
stored in tests/data/reference/xvector (tests/helpers/make_reference_fixtures.py); with torch
installed they are also regenerated live and must match what is stored.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import jaxser.encoders as encoders
from jaxser.encoders import xvector, xvector_convert
from jaxser.encoders.base import EncoderError
from tests.helpers import reference_fixtures as fixtures
from tests.helpers.make_reference_fixtures import XVECTOR

from tests.helpers.corpus_fixtures import voiced_wave  # noqa: E402

SR = 16_000
ROOT = Path(__file__).resolve().parents[1]
#: Fbank features are dB values up to ~50 in magnitude: float32 FFTs (pocketfft in torch, XLA's in JAX)
#: differ by ~1e-6 relative, i.e. ~3e-5 dB. 1e-4 absolute is still < 3e-6 relative at that scale.
ATOL = 1e-4
CHANNELS, LIN = list(XVECTOR["channels"]), XVECTOR["lin"]


def _wave(n, seed):
    return voiced_wave(n, seed, SR)


def _cli(*args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "jaxser.encoders.xvector_convert", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(params=fixtures.SOURCES)
def case(request):
    """The converted folder and the reference's outputs."""
    return fixtures.load("xvector", request.param)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """(SpeechBrain folder with torch pickles, the folder the CLI converts it to): needs torch."""
    pytest.importorskip("torch", reason="the SpeechBrain reference and pickle checkpoints need torch "
                                        "(pip install -e '.[reference]')")
    from tests.helpers.make_reference_fixtures import xvector_speechbrain_folder

    root = tmp_path_factory.mktemp("xvector")
    sb, _ = xvector_speechbrain_folder(root / "speechbrain")
    res = _cli(sb, root / "converted")
    assert res.returncode == 0, res.stderr
    return sb, root / "converted"


def test_stored_reference_is_what_the_generator_writes():
    fixtures.assert_same_case(fixtures.stored("xvector"), fixtures.live("xvector"))


def test_cli_converts_to_the_stored_folder(folders):
    _, conv = folders
    stored = fixtures.stored("xvector").path
    assert sorted(p.name for p in conv.iterdir()) == ["config.json", "hyperparams.yaml", "model.safetensors"]
    assert (conv / "hyperparams.yaml").read_text() == (stored / "hyperparams.yaml").read_text()
    cfg = json.loads((conv / "config.json").read_text())
    assert cfg.pop("converted_from") == str(folders[0])
    assert cfg == {k: v for k, v in json.loads((stored / "config.json").read_text()).items() if k != "converted_from"}
    a, b = load_file(str(conv / "model.safetensors")), load_file(str(stored / "model.safetensors"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_fbank_and_every_layer_match_reference(case):
    conv = case.path
    cfg = case.json("config.json")
    assert cfg["n_mels"] == 24 and cfg["tdnn_channels"] == CHANNELS
    assert cfg["input_norm"] == {"norm_type": "sentence", "mean_norm": True, "std_norm": False}
    assert not any(k.endswith("num_batches_tracked") for k in load_file(str(conv / "model.safetensors")))
    enc = encoders.load(str(conv))
    assert isinstance(enc, xvector.XVectorEncoder) and (enc.num_layers, enc.dim) == (5, LIN)
    # the filterbank matrix is bit-identical to SpeechBrain's (float32 torch ops)
    np.testing.assert_array_equal(xvector.filterbank(enc.arch), case.ref["filterbank"])
    waves = case.waves()  # the shortest input (4 frames), sub-second, two buckets; digital silence in #2
    lens = [w.size for w in waves]
    assert lens == [480, 4_000, 23_456, 40_001] and not waves[2][:4_000].any()
    got = enc.embed(waves)
    feats = enc.fbank(waves)
    assert got.shape == (4, 5, LIN) and got.dtype == np.float32
    for i in range(len(waves)):
        f, layers = case.ref[f"fbank_{i}"], case.ref[f"layers_{i}"]
        assert feats[i].shape == f.shape == (1 + lens[i] // 160, 24)
        assert np.abs(feats[i] - f).max() <= ATOL, f"utterance {i}: fbank error {np.abs(feats[i] - f).max()}"
        err = np.abs(got[i] - layers).max(axis=1)
        assert err.max() <= ATOL, f"utterance {i}: per-layer max abs error {err}"
    # batch invariance: each utterance alone == inside the batch
    for i, w in enumerate(waves):
        np.testing.assert_allclose(enc.embed([w])[0], got[i], atol=1e-5, rtol=0)


def test_deterministic_noise_convention(case):
    """SpeechBrain adds noise in [1e-5, 9e-5] to the pooled mean; the port adds its expectation 5e-5, so
    it is deterministic and within 4e-5 * |W_mean| of any SpeechBrain draw."""
    enc = encoders.load(str(case.path))
    (w,) = case.waves("noise_wave_")
    a, b = enc.embed([w]), enc.embed([w])
    np.testing.assert_array_equal(a, b)
    lin = load_file(str(case.path / "model.safetensors"))["blocks.16.w.weight"]
    bound = 4e-5 * np.abs(lin[:, :CHANNELS[-1]]).sum(axis=1).max() + ATOL
    for drawn in case.ref["noise_drawn"]:
        assert np.abs(a[0, -1] - drawn).max() <= bound


def test_speechbrain_folder_reads_as_released(folders, tmp_path):
    """The SpeechBrain release (torch pickles) loads directly, no opt-in, into the converted encoder."""
    sb, conv = folders
    direct = encoders.load(str(sb))
    converted = encoders.load(str(conv))
    assert direct.fingerprint == converted.fingerprint
    w = [_wave(8_000, 1)]
    np.testing.assert_array_equal(direct.embed(w), converted.embed(w))


def test_convert_in_process_and_its_errors(folders, tmp_path, capsys):
    """`xvector_convert.main` (what `python -m jaxser.encoders.xvector_convert` runs) in-process:
    the same files as the command line, and a folder that is not a release is one error line."""
    sb, conv = folders
    assert xvector_convert.main([str(sb), str(tmp_path / "again")]) == 0
    for name in ("config.json", "model.safetensors", "hyperparams.yaml"):
        assert (tmp_path / "again" / name).is_file()
    assert load_file(str(tmp_path / "again" / "model.safetensors")).keys() == load_file(
        str(conv / "model.safetensors")).keys()
    capsys.readouterr()
    (tmp_path / "empty").mkdir()
    assert xvector_convert.main([str(tmp_path / "empty"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and str(tmp_path / "empty") in err


def test_embedding_normalisation(folders):
    import torch

    sb, conv = folders
    plain = encoders.load(str(conv))
    normed = encoders.load(str(conv), normalize_embedding=True)
    assert normed.fingerprint != plain.fingerprint
    glob_mean = torch.load(sb / "mean_var_norm_emb.ckpt")["glob_mean"].numpy()
    w = [_wave(9_000, 2)]
    a, b = plain.embed(w), normed.embed(w)
    np.testing.assert_array_equal(a[:, :4], b[:, :4])
    np.testing.assert_allclose(b[0, 4], a[0, 4] - glob_mean, atol=1e-6)


def _edited(conv, dst, edit=None, config=None):
    dst.mkdir()
    tensors = load_file(str(conv / "model.safetensors"))
    if edit:
        edit(tensors)
    save_file(tensors, str(dst / "model.safetensors"))
    cfg = json.loads((conv / "config.json").read_text())
    (dst / "config.json").write_text(json.dumps({**cfg, **(config or {})}))
    return str(dst)


def test_clear_errors_on_bad_folders(tmp_path):
    conv = fixtures.stored("xvector").path
    (tmp_path / "empty").mkdir()
    with pytest.raises(EncoderError, match="neither a converted x-vector folder"):
        xvector.load(str(tmp_path / "empty"))
    with pytest.raises(EncoderError, match=r"missing 1 keys.*blocks\.5\.norm\.running_var"):
        xvector.load(_edited(conv, tmp_path / "a", lambda t: t.pop("blocks.5.norm.running_var")))
    with pytest.raises(EncoderError, match=r"unexpected 1 keys.*blocks\.17\.w\.weight"):
        xvector.load(_edited(conv, tmp_path / "b", lambda t: t.update({"blocks.17.w.weight": np.zeros(3, np.float32)})))
    with pytest.raises(EncoderError, match=rf"blocks\.0\.conv\.weight has shape \({CHANNELS[0]}, 24, 5\).*"
                                           rf"\({CHANNELS[0]}, 40, 5\)"):
        xvector.load(_edited(conv, tmp_path / "c", config={"n_mels": 40}))
    with pytest.raises(EncoderError, match="model_type 'wav2vec2'"):
        xvector.load(_edited(conv, tmp_path / "d", config={"model_type": "wav2vec2"}))
    with pytest.raises(EncoderError, match="not a directory"):
        xvector.load(str(tmp_path / "nowhere"))


def test_unsupported_speechbrain_hyperparams_are_refused(folders, tmp_path):
    """hyperparams the port does not implement are refused, naming the entry."""
    sb, _ = folders
    bad = tmp_path / "sb-std"
    bad.mkdir()
    (bad / "embedding_model.ckpt").write_bytes((sb / "embedding_model.ckpt").read_bytes())
    text = (sb / "hyperparams.yaml").read_text()
    (bad / "hyperparams.yaml").write_text(text.replace("norm_type: sentence\n    std_norm: False",
                                                       "norm_type: sentence\n    std_norm: True"))
    with pytest.raises(EncoderError, match="input_norm"):
        xvector.load(str(bad))
    (bad / "hyperparams.yaml").write_text(text.replace("n_mels: !ref <n_mels>",
                                                       "n_mels: !ref <n_mels>\n    deltas: True"))
    with pytest.raises(EncoderError, match="compute_features.deltas"):
        xvector.load(str(bad))
    (bad / "hyperparams.yaml").unlink()
    with pytest.raises(EncoderError, match="no hyperparams.yaml"):
        xvector.load(str(bad))


def test_random_weights_and_inputs():
    a = encoders.load("random-xvector")
    b = xvector.load("random", seed=1)
    assert a.fingerprint != b.fingerprint and (a.num_layers, a.dim) == (5, 512)
    small = xvector.load("random", tdnn_channels=[32, 32, 32, 32, 48], lin_neurons=32)
    out = small.embed([_wave(3_000, 0), _wave(20_000, 1)])
    assert out.shape == (2, 5, 32) and np.all(np.isfinite(out))
    with pytest.raises(ValueError, match="at least 480"):
        small.embed([_wave(479, 0)])
    with pytest.raises(EncoderError, match="mean_var_norm_emb statistics"):
        xvector.load("random", normalize_embedding=True)
    with pytest.raises(EncoderError, match="must equal lin_neurons"):
        xvector.load("random", tdnn_channels=[32, 16, 32, 32, 48], lin_neurons=32)
    # bounded compilations: one per (bucket, power-of-two batch size)
    small.embed([_wave(n, i) for i, n in enumerate([5_000, 6_000, 7_000])])  # bucket 1 s: batches of 2 and 1
    assert small.compilations == 3  # (1, 1 s) and (1, 1.42 s) from the first call, then only (2, 1 s)
