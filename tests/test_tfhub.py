"""TF-Hub encoder: a tiny SavedModel with TRILLsson's exact signature, loaded the way users do.

The fake model mirrors what TRILLsson does inside (short clips symmetric-padded, framing, a
small network, mean over time, 1024-d 'embedding'), so padding-sensitivity, batching, windows,
signature checks, handle resolution and the download path are all exercised without network.
"""
from __future__ import annotations

import hashlib
import io
import tarfile
import urllib.error

import numpy as np
import pytest

from jaxser.encoders.handcrafted import preload_opensmile  # noqa: E402

# Importing TensorFlow here, at collection, would precede every other test file's use of
# openSMILE, which then crashes the process; jaxser's own TF import does the same first.
preload_opensmile()
tf = pytest.importorskip("tensorflow", reason="TF-Hub encoders need TensorFlow (pip install 'jaxser[tf]')")

import jaxser.encoders as encoders  # noqa: E402
from jaxser.encoders import tfhub  # noqa: E402
from jaxser.encoders.base import EncoderError  # noqa: E402

MIN_SAMPLES = 3200  # the fake's "2 s" (TRILLsson pads clips under 32000 samples symmetrically)


def _module(seed: int, *, pad: bool = True, key: str = "embedding", rank3: bool = False):
    rng = np.random.default_rng(seed)

    class FakeTrillsson(tf.Module):
        def __init__(self):
            super().__init__()
            self.w1 = tf.Variable(rng.normal(size=(400, 16)).astype(np.float32) * 0.2)
            self.w2 = tf.Variable(rng.normal(size=(16, 1024)).astype(np.float32) * 0.2)

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32)])
        def __call__(self, audio):
            if pad:
                n = tf.shape(audio)[1]
                audio = tf.cond(n < MIN_SAMPLES,
                                lambda: tf.pad(audio, [[0, 0], [0, MIN_SAMPLES - n]], mode="SYMMETRIC"),
                                lambda: audio)
            frames = tf.signal.frame(audio, 400, 160)  # [B, T, 400]
            h = tf.nn.relu(tf.einsum("btf,fd->btd", frames, self.w1))
            if rank3:
                return {key: tf.einsum("btd,de->bte", h, self.w2)}
            return {key: tf.reduce_mean(h, axis=1) @ self.w2}

    return FakeTrillsson()


def _save(module, path):
    tf.saved_model.save(module, str(path))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfhub")
    return {
        "trill": _save(_module(0), root / "trill"),
        "trill_b": _save(_module(1), root / "trill_b"),
        "xla_ok": _save(_module(2, pad=False), root / "xla_ok"),
    }


def _direct(path, waves):
    m = tf.saved_model.load(str(path))
    return np.stack([m(tf.constant(w[None]))["embedding"].numpy()[0] for w in waves])


def _waves(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-0.8, 0.8, n).astype(np.float32) for n in lengths]


def test_load_path_matches_direct_call(models):
    enc = encoders.load(str(models["trill"]))
    assert isinstance(enc, tfhub.TFHubEncoder)
    assert (enc.num_layers, enc.dim, enc.sample_rate) == (1, 1024, 16000)
    waves = _waves([2000, 8000, 2000, 5000, 8000])  # includes clips the model pads itself
    out = enc.embed(waves)
    assert out.shape == (5, 1, 1024) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0], _direct(models["trill"], waves), rtol=1e-5, atol=1e-5)
    # padding WOULD change the result: the reason utterances are never zero-padded together
    padded = np.zeros(8000, np.float32)
    padded[:5000] = waves[3]
    assert np.abs(_direct(models["trill"], [padded]) - out[3, 0]).max() > 1e-3


def test_keras_export_runs_in_inference_mode(tmp_path):
    """TRILLsson was exported from a tf.keras Model (models.py: Input 'audio_samples', dict output
    'embedding'); such a SavedModel traces call() for training True and False. Batch norm and
    dropout must run in inference mode, or outputs would depend on the batch."""
    keras = pytest.importorskip("tf_keras", reason="the Keras-export check needs tf-keras")
    inp = keras.Input((None,), name="audio_samples")
    h = keras.layers.Lambda(lambda a: tf.signal.frame(a, 400, 160))(inp)
    h = keras.layers.Dropout(0.5)(keras.layers.BatchNormalization()(keras.layers.Dense(16)(h)))
    h = keras.layers.Lambda(lambda z: tf.reduce_mean(z, axis=1))(h)
    model = keras.Model(inputs=[inp], outputs={"embedding": keras.layers.Dense(1024)(h)})
    model.save(str(tmp_path / "keras"), save_format="tf")
    enc = encoders.load(str(tmp_path / "keras"))
    waves = _waves([6000, 6000, 9000], seed=7)
    out = enc.embed(waves)[:, 0]
    expected = np.concatenate([model(w[None], training=False)["embedding"].numpy() for w in waves])
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(enc.embed(waves[:1])[0, 0], out[0], rtol=1e-5, atol=1e-6)
    assert "False" in enc.signature


def test_batch_invariance(models):
    enc = tfhub.load(str(models["trill"]), batch_seconds=0.6)  # forces several calls
    waves = _waves([4000, 4000, 7000, 4000, 2500], seed=3)
    together = enc.embed(waves)
    alone = np.concatenate([enc.embed([w]) for w in waves])
    reordered = enc.embed(waves[::-1])[::-1]
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(together, reordered, rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(together))
    assert np.abs(together[0] - together[1]).max() > 1e-3  # different inputs differ


def test_windows_average_fixed_windows(models):
    enc = tfhub.load(str(models["trill"]), window_seconds=0.5, batch_seconds=1.0)  # 8000-sample windows
    waves = _waves([12000, 3000, 8000, 20000], seed=5)
    out = enc.embed(waves)[:, 0]
    # the reference, written out by hand: windows [0:8000] + end-aligned [4000:12000]; a short clip
    # mirrored to 8000 samples; one exact window; windows at 0, 8000 and the last 8000 samples
    w0, w1, w2, w3 = waves
    short = np.concatenate([w1, w1[::-1], w1[:2000]])
    expected = [
        _direct(models["trill"], [w0[:8000], w0[4000:]]).mean(0),
        _direct(models["trill"], [short])[0],
        _direct(models["trill"], [w2])[0],
        _direct(models["trill"], [w3[:8000], w3[8000:16000], w3[12000:]]).mean(0),
    ]
    np.testing.assert_allclose(out, np.stack(expected), rtol=1e-5, atol=1e-5)
    alone = np.concatenate([enc.embed([w])[:, 0] for w in waves])
    np.testing.assert_allclose(out, alone, rtol=1e-5, atol=1e-6)
    assert tfhub.window_starts(8000, 8000) == [0] and tfhub.window_starts(20000, 8000) == [0, 8000, 12000]


def test_xla_and_fallback(models):
    enc = tfhub.load(str(models["xla_ok"]), window_seconds=0.5, jit_compile=True)
    plain = tfhub.load(str(models["xla_ok"]), window_seconds=0.5, jit_compile=False)
    waves = _waves([9000, 16000])
    np.testing.assert_allclose(enc.embed(waves), plain.embed(waves), rtol=1e-4, atol=1e-5)
    assert enc.xla and not plain.xla
    # TRILLsson-style tf.cond + symmetric pad cannot compile with static shapes: falls back, same result
    fb = tfhub.load(str(models["trill"]), window_seconds=0.5, jit_compile=True)
    np.testing.assert_allclose(fb.embed(waves)[:, 0], tfhub.load(str(models["trill"]), window_seconds=0.5,
                                                               jit_compile=False).embed(waves)[:, 0], atol=1e-5)
    assert fb.xla is False


def test_fingerprint(models):
    a1 = tfhub.load(str(models["trill"]))
    a2 = tfhub.load(str(models["trill"]), batch_seconds=3.0)  # batching never changes outputs
    b = tfhub.load(str(models["trill_b"]))
    w = tfhub.load(str(models["trill"]), window_seconds=2.0)
    assert a1.fingerprint == a2.fingerprint
    assert len({a1.fingerprint, b.fingerprint, w.fingerprint}) == 3


@pytest.mark.parametrize("kind, match", [
    ("key", r"'emb'"),
    ("rank3", r"rank-2 'embedding'.*float32\[None, None, 1024\]"),
    ("input", r"float32\[None\]"),
])
def test_wrong_signature_is_refused(tmp_path, kind, match):
    if kind == "input":
        class OneD(tf.Module):
            @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
            def __call__(self, audio):
                return {"embedding": tf.reshape(tf.reduce_mean(audio), [1, 1])}
        module = OneD()
    else:
        module = _module(0, key="emb" if kind == "key" else "embedding", rank3=kind == "rank3")
    _save(module, tmp_path / "bad")
    with pytest.raises(EncoderError, match=match) as err:
        encoders.load(str(tmp_path / "bad"))
    assert "TRILLsson's signature" in str(err.value) and str(tmp_path / "bad") in str(err.value)


def test_not_a_savedmodel(tmp_path):
    (tmp_path / "x.txt").write_text("no model")
    with pytest.raises(EncoderError, match="saved_model.pb"):
        tfhub.load(str(tmp_path))


HANDLE = "https://tfhub.dev/google/trillsson3/1"


def test_offline_handle_names_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "cache"))

    def offline(url):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(tfhub, "_urlopen", offline)
    target = tmp_path / "cache" / hashlib.sha1(HANDLE.encode()).hexdigest()
    for call in (lambda: encoders.load("trillsson3"), lambda: tfhub.load(HANDLE, download=False)):
        with pytest.raises(EncoderError) as err:
            call()
        msg = str(err.value)
        assert HANDLE in msg and str(target) in msg and "tf-hub-format=compressed" in msg


def test_handle_from_cache_and_download(models, tmp_path, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "cache"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:  # the layout of a TF-Hub compressed model
        for f in sorted(models["trill"].rglob("*")):
            tar.add(f, arcname=str(f.relative_to(models["trill"])), recursive=False)
    urls = []

    def fake_urlopen(url):
        urls.append(url)
        return io.BytesIO(buf.getvalue())
    monkeypatch.setattr(tfhub, "_urlopen", fake_urlopen)
    waves = _waves([5000, 3000])
    enc = encoders.load("trillsson3")
    assert urls == [HANDLE + "?tf-hub-format=compressed"]
    assert (tfhub.module_dir(HANDLE) / "saved_model.pb").exists()
    np.testing.assert_allclose(enc.embed(waves)[:, 0], _direct(models["trill"], waves), rtol=1e-5, atol=1e-5)
    again = tfhub.load(HANDLE)  # found in the cache: no second download
    assert len(urls) == 1 and again.fingerprint == enc.fingerprint
    assert enc.fingerprint != tfhub.load(str(models["trill"])).fingerprint  # the handle is part of it
