"""jaxser.io writes files atomically with the mode a plain open() gives (0666 minus the umask),
publishes folders with the "a concurrent writer won" rule, and the writers that put files or
folders into place (TF-Hub downloads, x-vector conversion, synthetic corpora) honour the umask."""
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


def _folder(path, complete=True):
    path.mkdir(parents=True)
    (path / ("done" if complete else "half")).write_text(str(path.name))
    return path


def _done(folder):
    return (folder / "done").is_file()


def test_publish_dir_renames_into_place(tmp_path):
    target = tmp_path / "corpus"
    tmp = _folder(jio.temp_sibling(target, "tmp"))
    assert jio.temp_sibling_owner(tmp, target) == os.getpid()
    assert jio.publish_dir(tmp, target, _done)
    assert (target / "done").read_text() == tmp.name and [p.name for p in tmp_path.iterdir()] == ["corpus"]


def test_publish_dir_keeps_a_complete_folder_and_replaces_a_stale_one(tmp_path):
    target = _folder(tmp_path / "corpus")
    first = (target / "done").read_text()
    assert not jio.publish_dir(_folder(jio.temp_sibling(target, "tmp")), target, _done)
    assert (target / "done").read_text() == first  # the earlier writer's complete folder is kept
    (target / "done").unlink()  # damaged: no longer complete, so the next writer replaces it
    (target / "stale").write_text("x")
    tmp = _folder(jio.temp_sibling(target, "tmp"))
    assert jio.publish_dir(tmp, target, _done)
    assert sorted(p.name for p in target.iterdir()) == ["done"]
    assert [p.name for p in tmp_path.iterdir()] == ["corpus"]  # no build or retired folder left


@pytest.mark.parametrize("winner_complete", [True, False])
def test_publish_dir_loses_a_race_to_a_complete_folder_only(tmp_path, monkeypatch, winner_complete):
    """Another process renames its folder into place between our check and our rename: a complete
    one is kept; an incomplete one is no winner, so the failed rename is reported."""
    target = tmp_path / "corpus"
    real = os.replace

    def racing(src, dst):
        if str(dst) == str(target) and not target.exists():
            _folder(target, winner_complete)
        return real(src, dst)

    monkeypatch.setattr(os, "replace", racing)
    tmp = _folder(jio.temp_sibling(target, "tmp"))
    if winner_complete:
        assert not jio.publish_dir(tmp, target, _done) and _done(target)
    else:
        with pytest.raises(OSError):
            jio.publish_dir(tmp, target, _done)
    assert not tmp.exists()


def test_temp_sibling_owner_reads_only_its_own_names(tmp_path):
    target = tmp_path / "t"
    assert jio.temp_sibling_owner(tmp_path / ".t.tmp-123-abcd1234", target) == 123
    assert jio.temp_sibling_owner(tmp_path / ".t.old-45-ff", target) == 45
    for other in (".t.tmp-x-1", ".u.tmp-123-ab", "t", ".tt.tmp-1-ab", ".t.tmp"):
        assert jio.temp_sibling_owner(tmp_path / other, target) is None


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
    from jaxser.encoders import xvector, xvector_convert

    fmode, _ = mask
    src = tmp_path / "sb"
    src.mkdir()
    (src / "hyperparams.yaml").write_text("x: 1\n")
    monkeypatch.setattr(xvector_convert, "read_speechbrain",
                        lambda path, allow_pickle=False: ({"model_type": xvector.MODEL_TYPE}, {"w": np.ones(3)}))
    dst = xvector_convert.convert(src, tmp_path / "out")
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
