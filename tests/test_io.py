"""jaxser.io writes files atomically with the mode a plain open() gives (0666 minus the umask),
and the writers that rename files into place (TF-Hub downloads, x-vector conversion) do too."""
from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile

import numpy as np
import pytest

from jaxser import io as jio


@pytest.fixture(params=[(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)], ids=["022", "027"])
def mask(request):
    old = os.umask(request.param[0])
    yield request.param[1:]
    os.umask(old)


def _mode(p):
    return oct(stat.S_IMODE(os.stat(p).st_mode))


def test_atomic_writes_honour_the_umask(tmp_path, mask):
    fmode, _ = mask
    assert jio.file_mode() == fmode
    for p in (jio.atomic_write_text(tmp_path / "a.txt", "x"), jio.atomic_write_json(tmp_path / "d" / "b.json", {}),
              jio.atomic_write_bytes(tmp_path / "c.bin", b"\0")):
        assert _mode(p) == oct(fmode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "c.bin", "d"]  # no temporary files left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    p = jio.atomic_write_text(tmp_path / "f.txt", "old")

    def boom(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        jio.atomic_write(p, boom)
    assert p.read_text() == "old" and [q.name for q in tmp_path.iterdir()] == ["f.txt"]
    assert jio.sha256_file(p) == hashlib.sha256(b"old").hexdigest()


def test_tfhub_download_honours_the_umask(tmp_path, monkeypatch, mask):
    from jaxser.encoders import tfhub

    fmode, dmode = mask
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:  # an archive whose modes are private
        for name, data in (("saved_model.pb", b"graph"), ("variables/variables.index", b"idx")):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, io.BytesIO(data))
    monkeypatch.setattr(tfhub, "_urlopen", lambda url: io.BytesIO(buf.getvalue()))
    target = tmp_path / "hub" / "model"
    tfhub._download("https://example.org/model/1", target)
    assert _mode(target / "saved_model.pb") == _mode(target / "variables" / "variables.index") == oct(fmode)
    assert _mode(target) == _mode(target / "variables") == oct(dmode)


def test_xvector_conversion_honours_the_umask(tmp_path, monkeypatch, mask):
    from jaxser.encoders import xvector

    fmode, _ = mask
    src = tmp_path / "sb"
    src.mkdir()
    (src / "hyperparams.yaml").write_text("x: 1\n")
    monkeypatch.setattr(xvector, "read_speechbrain",
                        lambda path, allow_pickle=False: ({"model_type": xvector.MODEL_TYPE}, {"w": np.ones(3)}))
    dst = xvector.convert(src, tmp_path / "out")
    assert sorted(p.name for p in dst.iterdir()) == ["config.json", "hyperparams.yaml", "model.safetensors"]
    assert {_mode(p) for p in dst.iterdir()} == {oct(fmode)}


def test_synthetic_corpus_files_honour_the_umask(tmp_path, monkeypatch, mask):
    import dataclasses

    from jaxser.corpora import synthetic as S

    fmode, dmode = mask
    base = S.CORPORA["synth-alba"]
    four = ("angry", "happy", "neutral", "sad")
    spec = dataclasses.replace(base, name="synth-tiny", population=S.Population(1, 1), n_sentences=1, emotions=four,
                               label_map=tuple((c, e) for c, e in base.label_map if e in four))
    monkeypatch.setitem(S.CORPORA, "synth-tiny", spec)
    folder = S.generate("synth-tiny", tmp_path / "t")
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert (folder / S.MARKER) in files and {_mode(p) for p in files} == {oct(fmode)}
    assert {_mode(p) for p in [folder, *(p for p in folder.rglob("*") if p.is_dir())]} == {oct(dmode)}
