"""Hard faults: a full disk, a read-only folder, a quota, permissions, too many open files, an
interrupt, a kill -9, two runners on one run directory. Each is one line naming the path and
what to do (exit 2; 130 / 143 for an interrupt), leaves no temporary file behind, and the same
command then resumes to the results of an uninterrupted run.

Disk-full and read-only faults run on a real small tmpfs where the test may mount one (as
root), and by injecting the OSError at the write call everywhere, so they always run."""
from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxser import embed as embed_mod
from jaxser import io as jio
from jaxser.errors import INTERRUPTED, Interrupted, StorageError, report
from tests.helpers.embed_fixtures import FrameStats, toy_corpus
from tests.helpers.small_fs import remount, tmpfs
from tests.helpers.tiny_study import tiny_study

ROOT = Path(__file__).resolve().parents[1]
#: the errors a user on a shared machine meets, and a word each message must carry
FAULTS = {errno.ENOSPC: "free space", errno.EDQUOT: "quota", errno.EROFS: "you can write",
          errno.EACCES: "you can write", errno.EMFILE: "ulimit -n"}


def _temps(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*.tmp"))


def _one_error_line(err: str) -> str:
    """The error line, checked to be the one message (progress bars aside) and the last."""
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith(("train:", "extract"))]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == lines[0], err
    return lines[0]


def _inject(monkeypatch, code: int, hit) -> list[str]:
    """Make the rename of a finished temporary file fail with `code` for targets `hit(dst)`
    accepts (the temporary file is then complete on disk: what a full disk leaves)."""
    real, hits = os.replace, []

    def replace(src, dst, *a, **kw):
        if str(src).endswith(".tmp") and hit(Path(dst)):
            hits.append(str(dst))
            raise OSError(code, os.strerror(code))
        return real(src, dst, *a, **kw)
    monkeypatch.setattr(os, "replace", replace)
    return hits


# ----------------------------------------------------------------------------- jaxser.io and the error line

@settings(max_examples=25, deadline=None)
@given(code=st.sampled_from(sorted(FAULTS)), data=st.binary(max_size=3000), old=st.booleans())
def test_a_failed_write_names_the_target_removes_its_temporary_and_keeps_the_old_file(tmp_path_factory, code, data,
                                                                                       old):
    d = tmp_path_factory.mktemp("w")
    target = d / "sub" / "f.bin"
    if old:
        jio.atomic_write_bytes(target, b"old")
    with pytest.MonkeyPatch.context() as mp:
        _inject(mp, code, lambda dst: dst == target)
        with pytest.raises(StorageError) as e:
            jio.atomic_write_bytes(target, data)
    msg = str(e.value)
    assert msg.startswith(f"{target}: {os.strerror(code)}") and FAULTS[code] in msg and "\n" not in msg
    assert e.value.errno == code and isinstance(e.value, OSError)
    assert _temps(d) == [] and (target.read_bytes() == b"old" if old else not target.exists())


def test_disk_full_and_read_only_on_a_real_file_system(tmp_path):
    with tmpfs(tmp_path / "fs", "64k") as fs:
        jio.atomic_write_bytes(fs / "kept.bin", b"old")
        with pytest.raises(StorageError, match=rf"^{fs}/kept.bin: No space left on device; free space there"):
            jio.atomic_write_bytes(fs / "kept.bin", os.urandom(256 * 1024))
        assert (fs / "kept.bin").read_bytes() == b"old" and _temps(fs) == []
        remount(fs, "ro")
        with pytest.raises(StorageError, match=rf"^{fs}/new.json: Read-only file system; give --out / --cache"):
            jio.atomic_write_json(fs / "new.json", {})
        with pytest.raises(StorageError, match=rf"^{fs}/.lock: Read-only file system"):
            with jio.exclusive_lock(fs / ".lock"):
                pass


def test_report_prints_one_line_and_exits_2_or_130_143(capsys, monkeypatch):
    def fail(e):
        def main(argv):
            raise e
        return main

    monkeypatch.delenv("JAXSER_DEBUG", raising=False)
    assert report(fail(PermissionError(errno.EACCES, "Permission denied", "/srv/x/results.csv"))) == 2
    assert "/srv/x/results.csv: Permission denied; give --out / --cache a folder you can write" in \
        _one_error_line(capsys.readouterr().err)
    assert report(fail(OSError(errno.EMFILE, "Too many open files"))) == 2
    assert "ulimit -n" in _one_error_line(capsys.readouterr().err)
    for exc, status in ((KeyboardInterrupt(), 130), (Interrupted(signal.SIGTERM), 143)):
        assert report(fail(exc)) == status
        assert capsys.readouterr().err == INTERRUPTED + "\n"
    monkeypatch.setenv("JAXSER_DEBUG", "1")
    with pytest.raises(PermissionError):
        report(fail(PermissionError(errno.EACCES, "Permission denied", "/x")))


# ----------------------------------------------------------------------------- signals and kill -9 (real processes)

#: a command line holding a lock and writing one file through jaxser.io that blocks mid-write,
#: after writing `marker`, until a signal arrives: the parent sends it once the marker exists
_BLOCKED_WRITER = textwrap.dedent("""
    import signal, sys
    from pathlib import Path
    from jaxser import io

    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as in a terminal, whoever started us
    from jaxser.errors import report

    target, marker, lock = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])

    def write(tmp):
        Path(tmp).write_bytes(b"half a file")
        marker.write_text("writing")
        while True:
            signal.pause()

    def main(argv):
        with io.exclusive_lock(lock):
            io.atomic_write(target, write)
    sys.exit(report(main))
""")


def _wait_for_file(path: Path, proc: subprocess.Popen, limit: float = 300.0) -> None:
    """Bounded poll for a marker a child writes (the child's progress is the event)."""
    t0 = time.monotonic()
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the child exited ({proc.returncode}) before {path.name}: "
                                 f"{proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() - t0 > limit:
            proc.kill()
            raise AssertionError(f"no {path.name} after {limit:.0f}s")
        time.sleep(0.02)


def _child(args: list[str], **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAXSER_DEBUG": ""}
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGKILL, -9)])
def test_a_signal_mid_write_leaves_nothing_and_a_killed_writer_is_swept_at_the_next_start(tmp_path, sig, status):
    target, marker = tmp_path / "run" / "predictions" / "m.parquet", tmp_path / "marker"
    target.parent.mkdir(parents=True)
    lock = tmp_path / "run" / ".lock"
    p = _child(["-c", _BLOCKED_WRITER, str(target), str(marker), str(lock)])
    _wait_for_file(marker, p)
    assert [jio.temp_owner(t) for t in _temps(tmp_path)] == [(p.pid, socket.gethostname())]
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == status, err
    assert not target.exists()
    if sig == signal.SIGKILL:  # nothing could run: its temporary file stays until a next start
        left = _temps(tmp_path)
        assert len(left) == 1 and jio.sweep_temps(tmp_path / "run") == left and _temps(tmp_path) == []
        with jio.exclusive_lock(lock, on_busy=pytest.fail):  # its lock died with it
            pass
    else:
        assert err == INTERRUPTED + "\n" and _temps(tmp_path) == []


def test_sweep_keeps_live_and_foreign_temporaries_unless_alone(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    host = socket.gethostname()
    names = {"dead": f".a.{dead.pid}@{host}.x1y2z3w4.tmp", "live": f".b.{os.getppid()}@{host}.x1y2z3w4.tmp",
             "other_host": f".c.{dead.pid}@elsewhere.x1y2z3w4.tmp", "old_format": ".d.x1y2z3w4.tmp"}
    for n in names.values():
        (tmp_path / "sub").mkdir(exist_ok=True)
        (tmp_path / "sub" / n).write_bytes(b"")
    assert [p.name for p in jio.sweep_temps(tmp_path)] == [names["dead"]]
    assert sorted(p.name for p in jio.sweep_temps(tmp_path, alone=True)) == sorted(
        names[k] for k in ("live", "other_host", "old_format"))


# ----------------------------------------------------------------------------- the embedding cache

def test_a_full_cache_disk_is_one_line_and_the_extraction_resumes_identically(tmp_path, capsys):
    ds = toy_corpus(tmp_path)
    clean = embed_mod.embed(FrameStats(), ds, cache=tmp_path / "clean", chunk_size=4, progress=False)
    with tmpfs(tmp_path / "fs", "24k") as fs:
        rc = report(lambda _: embed_mod.embed(FrameStats(), ds, cache=fs, chunk_size=4, progress=False))
        line = _one_error_line(capsys.readouterr().err)
        assert rc == 2 and f"error: {fs}/embeddings/" in line and "No space left on device" in line, line
        assert _temps(fs) == []
        remount(fs, "size=4m")
        again = embed_mod.embed(FrameStats(), ds, cache=fs, chunk_size=4, progress=False)
    assert again.ids == clean.ids
    np.testing.assert_array_equal(again.x, clean.x)


def test_an_injected_quota_error_in_the_cache_names_the_chunk_and_resumes_identically(tmp_path, monkeypatch):
    ds = toy_corpus(tmp_path)
    clean = embed_mod.embed(FrameStats(), ds, cache=tmp_path / "clean", chunk_size=4, progress=False)
    hits = _inject(monkeypatch, errno.EDQUOT, lambda dst: dst.name == "chunk-4-00002.npz")
    with pytest.raises(StorageError, match=r"chunk-4-00002.npz: Disk quota exceeded; free space within your quota"):
        embed_mod.embed(FrameStats(), ds, cache=tmp_path / "c", chunk_size=4, progress=False)
    assert hits and _temps(tmp_path / "c") == []
    monkeypatch.undo()
    enc = FrameStats()
    again = embed_mod.embed(enc, ds, cache=tmp_path / "c", chunk_size=4, progress=False)
    assert enc.utts < len(ds)  # the chunks written before the fault were kept
    np.testing.assert_array_equal(again.x, clean.x)


# ----------------------------------------------------------------------------- the run directory

@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """The tiny study run without faults: what every resumed run must equal."""
    pytest.importorskip("opensmile")
    return tiny_study(tmp_path_factory)


def _run(clean, out, *extra) -> int:
    from jaxser.cli import main

    return main(["run", "--config", str(clean["config"]), "--out", str(out), *extra])


def _same_results(a: Path, b: Path) -> None:
    assert (a / "results.csv").read_bytes() == (b / "results.csv").read_bytes()
    preds = sorted(p.name for p in (a / "predictions").glob("*.parquet"))
    assert preds and preds == sorted(p.name for p in (b / "predictions").glob("*.parquet"))
    for name in preds:
        assert (a / "predictions" / name).read_bytes() == (b / "predictions" / name).read_bytes(), name


def _snapshot(d: Path) -> dict:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file() and p.name != ".lock"}


def test_a_full_run_directory_disk_is_one_line_and_the_run_resumes_identically(clean, tmp_path, capsys):
    with tmpfs(tmp_path / "fs", "900k") as fs:  # room for the first saved model, not the second
        out = fs / "run"
        assert _run(clean, out) == 2
        line = _one_error_line(capsys.readouterr().err)
        assert line.startswith(f"error: {out}/") and "No space left on device; free space there" in line, line
        assert _temps(fs) == []
        remount(fs, "size=16m")
        assert _run(clean, out) == 0
        _same_results(out, clean["out"])


def test_an_injected_full_disk_at_a_predictions_write_is_one_line(clean, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    hits = _inject(monkeypatch, errno.ENOSPC, lambda dst: dst.parent.name == "predictions")
    assert _run(clean, out) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert hits and line == f"error: {hits[0]}: No space left on device; free space there, or give --out / --cache " \
                            "a folder on another file system; then re-run the same command to resume"
    assert _temps(out) == [] and not list((out / "predictions").glob("*.parquet"))


def test_a_read_only_run_directory_is_one_line_and_stays_intact(clean, tmp_path, capsys):
    with tmpfs(tmp_path / "fs", "4m") as fs:
        (fs / "empty").mkdir()
        shutil.copytree(clean["out"], fs / "finished")
        before = _snapshot(fs / "finished")
        remount(fs, "ro")
        for out in (fs / "empty", fs / "finished"):
            assert _run(clean, out) == 2
            line = _one_error_line(capsys.readouterr().err)
            assert line.startswith(f"error: {out}/.lock: Read-only file system; give --out / --cache a folder you "
                                   "can write"), line
        assert list((fs / "empty").iterdir()) == [] and _snapshot(fs / "finished") == before


def test_an_unwritable_run_directory_is_one_line(clean, tmp_path, capsys, monkeypatch):
    """Injected: root may write anywhere, so a permission error cannot be made with chmod."""
    real_open = open

    def refusing_open(path, *a, **kw):
        if Path(path).name == ".lock":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *a, **kw)
    monkeypatch.setattr(jio, "open", refusing_open, raising=False)
    assert _run(clean, tmp_path / "run") == 2
    assert f"error: {tmp_path / 'run' / '.lock'}: Permission denied; give --out" in \
        _one_error_line(capsys.readouterr().err)


def test_a_refused_study_changes_nothing_in_the_run_directory(clean, tmp_path, capsys):
    d = tmp_path / "run"
    shutil.copytree(clean["out"], d)
    (d / "study.json").unlink()
    before = _snapshot(d)
    other = tmp_path / "other.toml"
    other.write_text(clean["config"].read_text().replace("max_epochs = 4", "max_epochs = 3"))
    from jaxser.cli import main

    assert main(["run", "--config", str(other), "--out", str(d)]) == 2
    assert "predictions of another study" in _one_error_line(capsys.readouterr().err)
    assert _snapshot(d) == before  # no study.json, the old manifest.json


#: `jaxser run` that stops, holding its run directory, when its first predictions file is being
#: written (after writing `marker`), until a signal arrives
_BLOCKED_RUN = textwrap.dedent("""
    import signal, sys
    from pathlib import Path
    import pyarrow.parquet as pq

    marker = Path(sys.argv[1])
    real = pq.write_table

    def write_table(table, where, *a, **kw):
        real(table, where, *a, **kw)
        if Path(str(where)).parent.name == "predictions":
            marker.write_text("training")
            while True:
                signal.pause()
    pq.write_table = write_table
    from jaxser.cli import main
    sys.exit(main(sys.argv[2:]))
""")


def test_sigterm_during_training_and_a_second_runner(clean, tmp_path, capsys):
    out, marker = tmp_path / "run", tmp_path / "marker"
    p = _child(["-c", _BLOCKED_RUN, str(marker), "run", "--config", str(clean["config"]), "--out", str(out),
                "--workers", "1"])
    try:
        _wait_for_file(marker, p)
        assert len(_temps(out / "predictions")) == 1
        # a second runner on the same --out stops at once, naming the first
        assert _run(clean, out) == 2
        line = _one_error_line(capsys.readouterr().err)
        assert f"--out {out} is in use by another jaxser run ({socket.gethostname()} pid {p.pid})" in line
        assert "--wait" in line
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 143 and err.strip().splitlines()[-1] == INTERRUPTED and "Traceback" not in err, err
    assert _temps(out) == [] and not list((out / "predictions").glob("*.parquet"))
    assert _run(clean, out) == 0
    _same_results(out, clean["out"])


_LOCK_HOLDER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from jaxser.study.run import run_dir_lock

    with run_dir_lock(Path(sys.argv[1]), wait=False, log=print):
        Path(sys.argv[2]).write_text("held")
        sys.stdin.readline()
""")


def test_wait_waits_for_the_holder_and_a_killed_holder_blocks_nobody(clean, tmp_path, capsys, monkeypatch):
    from jaxser.study import run as run_mod

    d = tmp_path / "run"
    shutil.copytree(clean["out"], d)
    for p in (d / "predictions").glob("*.parquet"):  # one model to retrain on resume
        p.unlink()
        break
    marker = tmp_path / "held"
    holder = _child(["-c", _LOCK_HOLDER, str(d), str(marker)], stdin=subprocess.PIPE)
    _wait_for_file(marker, holder)
    busy = threading.Event()

    def on_busy(_):  # --wait found the holder: let it go
        busy.set()
        holder.stdin.write("done\n")
        holder.stdin.flush()
    monkeypatch.setattr(run_mod, "_on_run_lock_busy", on_busy)
    assert _run(clean, d, "--wait") == 0 and busy.is_set()
    assert holder.wait(60) == 0
    _same_results(d, clean["out"])
    assert "waiting for it to finish (--wait)" in capsys.readouterr().out

    # a holder killed with -9 mid-write: its lock is gone with it, its temporary file swept
    marker.unlink()
    for p in (d / "predictions").glob("*.parquet"):
        p.unlink()
        break
    writer = _child(["-c", _BLOCKED_WRITER, str(d / "predictions" / "x.parquet"), str(marker), str(d / ".lock")])
    _wait_for_file(marker, writer)
    writer.kill()
    writer.wait(60)
    assert len(_temps(d)) == 1 and f"pid {writer.pid}" in (d / ".lock").read_text()
    assert _run(clean, d) == 0
    assert _temps(d) == []
    _same_results(d, clean["out"])


def test_a_system_error_reading_a_file_back_is_not_taken_for_damage(clean, tmp_path, capsys, monkeypatch):
    """Too many open files while checking predictions on resume: one line, and the file is not
    set aside (it is not damaged), nor its model retrained."""
    import pyarrow.parquet as pq

    d = tmp_path / "run"
    shutil.copytree(clean["out"], d)
    before = _snapshot(d)
    real = pq.read_table

    def read_table(where, *a, **kw):
        if Path(str(where)).parent.name == "predictions":
            raise OSError(errno.EMFILE, "Too many open files")
        return real(where, *a, **kw)
    monkeypatch.setattr(pq, "read_table", read_table)
    assert _run(clean, d) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "/predictions/" in line and "Too many open files; raise the open-file limit (ulimit -n)" in line, line
    results = {k: v for k, v in before.items() if k.startswith(("predictions/", "models/"))}
    assert results and {k: v for k, v in _snapshot(d).items() if k.startswith(("predictions/", "models/"))} == results
