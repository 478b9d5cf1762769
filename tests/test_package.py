"""Package-level promises: light imports, registries, CLI entry points."""
import subprocess
import sys

import pytest


def test_import_is_light():
    code = ("import sys, jaxser, jaxser.corpora, jaxser.encoders, jaxser.protocol; "
            "print(sorted(m for m in ('jax', 'tensorflow', 'torch', 'datasets', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_registries():
    from jaxser import corpora, encoders

    names = corpora.available()
    for n in ("cremad", "ravdess", "tess", "emodb", "savee", "emovo", "iemocap", "urdu", "baved", "aesdd",
              "shemo", "subesco", "cafe", "manifest", "synth-alba"):
        assert n in names
    for n in ("wav2vec2-base", "wavlm-base-plus", "xls-r-300m", "mms-300m", "hubert-base", "whisper-base",
              "trillsson3", "xvector", "egemaps", "mfcc", "random-wav2vec2"):
        assert n in encoders.available()
    with pytest.raises(corpora.CorpusError, match="unknown corpus"):
        corpora.load("nope", "/tmp")
    with pytest.raises(encoders.EncoderError, match="unknown encoder"):
        encoders.load("definitely-not-a-model")


def test_missing_checkpoint_names_where_to_put_it(monkeypatch):
    from jaxser import encoders

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(encoders.EncoderError, match="folder"):
        encoders.load("wav2vec2-base")


def test_cli_usage():
    r = subprocess.run([sys.executable, "-m", "jaxser.cli"], capture_output=True, text=True)
    assert r.returncode == 2 and "embed" in r.stderr
    r = subprocess.run([sys.executable, "-m", "experiments.cross_corpus", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--corpus" in r.stdout


def test_encoder_names_route_to_their_family(monkeypatch, tmp_path):
    """A missing local folder is named as such (not sent to the Hub); a Hub id reaches its family
    through its own config files (config.json's model_type, a FunASR config.yaml, a SpeechBrain
    hyperparams.yaml), fetched first; offline, the error names the id and `jaxser fetch`."""
    import json

    import huggingface_hub

    from jaxser import encoders

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for missing in ("/no/such/models/my-xlsr", "./no-such-dir/model", str(tmp_path / "gone")):
        with pytest.raises(encoders.EncoderError, match="does not exist"):
            encoders.load(missing)
    with pytest.raises(encoders.EncoderError, match=r"org/unknown.*jaxser fetch org/unknown"):
        encoders.load("org/unknown")
    repos = {"org/a-bert": {"config.json": json.dumps({"model_type": "wav2vec2-bert"})},
             "org/b-whisper": {"config.json": json.dumps({"model_type": "whisper"})},
             "org/c-w2v": {"config.json": json.dumps({"model_type": "wavlm"})},
             "org/d-e2v": {"config.yaml": "model: Emotion2vec\n"},
             "org/e-sb": {"hyperparams.yaml": "n_mels: 24\n"}}

    def snapshot_download(repo_id, revision=None, allow_patterns=None, **kw):
        snap = tmp_path / "hub" / repo_id.replace("/", "--")
        snap.mkdir(parents=True, exist_ok=True)
        for name, text in repos[repo_id].items():
            (snap / name).write_text(text)
        return str(snap)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    families = {"org/a-bert": "w2v_bert", "org/b-whisper": "whisper", "org/c-w2v": "wav2vec2",
                "org/d-e2v": "emotion2vec", "org/e-sb": "xvector"}
    for repo, family in families.items():
        assert encoders.family(repo) == family, repo
    release = tmp_path / "e2v"
    release.mkdir()
    (release / "config.yaml").write_text("model_conf: {}\n")
    (release / "model.pt").write_bytes(b"")
    assert encoders._family_for_path(release) == "emotion2vec"
