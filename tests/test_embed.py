"""The embedding cache: correct assembly, atomic chunks, resume after a crash (whatever the
chunk size), damaged and non-finite files healed, one extraction per entry (lock), bad audio,
file modes, the CLI."""
from __future__ import annotations

import logging
import multiprocessing
import os
import stat

import numpy as np
import pytest

from jaxser import audio, embed as embed_mod
from jaxser.corpora.schema import build_dataset
from jaxser.encoders.base import digest
from jaxser.errors import UserError
from tests.helpers.embed_fixtures import FrameStats, toy_corpus


def test_embeddings_match_direct_calls_and_are_cached(tmp_path):
    ds = toy_corpus(tmp_path)
    enc = FrameStats()
    e = embed_mod.embed(enc, ds, cache=tmp_path / "cache", chunk_size=5, progress=False)
    assert e.ids == list(ds["id"]) and e.x.shape == (len(ds), 2, 4)
    direct = enc.embed([audio.load(p) for p in ds["audio"]])
    np.testing.assert_allclose(e.x, direct, rtol=1e-6, atol=1e-6)
    calls = enc.calls
    again = embed_mod.embed(enc, ds, cache=tmp_path / "cache", chunk_size=5, progress=False)
    assert enc.calls == calls  # served from the cache
    np.testing.assert_array_equal(again.x, e.x)
    assert not list(e.path.parent.glob("chunk-*"))  # chunks folded into the final file


def test_interrupted_extraction_resumes_to_the_same_result(tmp_path):
    ds = toy_corpus(tmp_path)
    clean = embed_mod.embed(FrameStats(), ds, cache=tmp_path / "clean", chunk_size=4, progress=False)
    enc = FrameStats()
    with pytest.raises(KeyboardInterrupt):
        embed_mod.embed(enc, ds, cache=tmp_path / "crash", chunk_size=4, progress=False, stop_after_chunks=3)
    out_dir = embed_mod.cache_dir_for(enc, ds, tmp_path / "crash")
    assert len(list(out_dir.glob("chunk-*.npz"))) == 3 and not (out_dir / "embeddings.npz").exists()
    # a half-written temp file left by a kill must not be mistaken for a chunk
    (out_dir / ".chunk-00003.npz.abc.tmp").write_bytes(b"garbage")
    enc2 = FrameStats()
    resumed = embed_mod.embed(enc2, ds, cache=tmp_path / "crash", chunk_size=4, progress=False)
    assert enc2.calls > 0
    assert resumed.ids == clean.ids
    np.testing.assert_array_equal(resumed.x, clean.x)
    assert not list(out_dir.glob(".*.tmp"))  # removed under the entry's lock


def test_bad_audio_fails_loudly_or_is_listed(tmp_path):
    ds = toy_corpus(tmp_path, n=8, bad=5)
    with pytest.raises(audio.AudioError, match="u005.wav: all samples are zero"):
        embed_mod.embed(FrameStats(), ds, cache=tmp_path / "a", progress=False)
    e = embed_mod.embed(FrameStats(), ds, cache=tmp_path / "b", progress=False, skip_errors=True)
    assert "toy/u005" in e.skipped and "toy/u005" not in e.ids and len(e.ids) == 7
    with pytest.raises(KeyError, match="no embedding"):
        e.take(["toy/u005"])


def test_changed_corpus_file_invalidates_cache(tmp_path):
    ds = toy_corpus(tmp_path, n=6)
    enc = FrameStats()
    d1 = embed_mod.cache_dir_for(enc, ds, tmp_path / "c1")
    p = ds[0]["audio"]
    audio.write(p, 0.2 * np.ones(8000) * np.sin(np.arange(8000)), 16000)
    assert embed_mod.cache_dir_for(enc, ds, tmp_path / "c1") != d1


def test_audio_validation_errors(tmp_path):
    (tmp_path / "junk.wav").write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(audio.AudioError, match="junk.wav: unreadable"):
        audio.load(tmp_path / "junk.wav")
    with pytest.raises(audio.AudioError, match="NaN"):
        audio.validate(np.array([0.1, np.nan] * 1000), "x.wav")
    with pytest.raises(audio.AudioError, match="empty"):
        audio.validate(np.zeros(0), "x.wav")
    with pytest.raises(audio.AudioError, match="absurdly long"):
        audio.load(audio.write(tmp_path / "long.wav", 0.1 * np.ones(16000 * 3), 16000), max_seconds=2)
    stereo = np.stack([np.sin(np.arange(8000) / 5), np.cos(np.arange(8000) / 5)], 1) * 0.3
    import soundfile as sf
    sf.write(tmp_path / "st.wav", stereo, 8000)
    w = audio.load(tmp_path / "st.wav")
    assert w.ndim == 1 and w.dtype == np.float32 and abs(len(w) - 16000) <= 1
    waves, errs = audio.load_many([tmp_path / "junk.wav", tmp_path / "st.wav"], skip_errors=True)
    assert waves[0] is None and len(errs) == 1


# --- resume, verification and healing -------------------------------------------------------

@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A 23-utterance corpus and its embeddings from one uninterrupted run (the reference)."""
    root = tmp_path_factory.mktemp("toy")
    ds = toy_corpus(root)
    return ds, embed_mod.embed(FrameStats(), ds, cache=root / "ref", chunk_size=4, progress=False)


def _same(e, ref):
    assert e.ids == ref.ids and e.skipped == ref.skipped
    np.testing.assert_array_equal(e.x, ref.x)  # bit-identical


def _crash(ds, cache, chunk_size=4, chunks=3):
    with pytest.raises(KeyboardInterrupt):
        embed_mod.embed(FrameStats(), ds, cache=cache, chunk_size=chunk_size, progress=False,
                        stop_after_chunks=chunks)
    return embed_mod.cache_dir_for(FrameStats(), ds, cache)


@pytest.mark.parametrize("new_size", [5, 256])
def test_resume_with_another_chunk_size_reuses_what_was_extracted(toy, tmp_path, new_size, caplog):
    ds, ref = toy
    out_dir = _crash(ds, tmp_path / "c", chunk_size=4, chunks=3)  # 12 utterances in 3 chunk files
    enc = FrameStats()
    with caplog.at_level(logging.WARNING, "jaxser.embed"):
        e = embed_mod.embed(enc, ds, cache=tmp_path / "c", chunk_size=new_size, progress=False)
    _same(e, ref)
    assert enc.utts == len(ds) - 12  # only what was lost
    assert "reusing 12 embeddings" in caplog.text and "chunk size 4" in caplog.text
    assert not list(out_dir.glob("chunk-*"))
    assert embed_mod.embed(FrameStats(), ds, cache=tmp_path / "c", progress=False).ids == ref.ids


def test_incomplete_final_file_is_not_trusted(toy, tmp_path, caplog):
    """A final file missing utterances (as an older version left it after a resume with another
    chunk size) keeps what it has; the rest is computed."""
    ds, ref = toy
    e = embed_mod.embed(FrameStats(), ds, cache=tmp_path / "c", chunk_size=4, progress=False)
    embed_mod._write_file(e.path, e.ids[:10], e.x[:10], {})
    enc = FrameStats()
    with caplog.at_level(logging.WARNING, "jaxser.embed"):
        again = embed_mod.embed(enc, ds, cache=tmp_path / "c", progress=False)
    _same(again, ref)
    assert enc.utts == len(ds) - 10
    assert str(e.path) in caplog.text and "13 of the corpus's 23 utterances missing" in caplog.text


def _damage(path, how):
    b = bytearray(path.read_bytes())
    if how == "truncated":
        b = b[: len(b) // 2]
    elif how == "garbage":
        b = bytearray(b"not an npz file at all " * 10)
    else:  # one flipped bit, in the middle (the embeddings' bytes)
        b[len(b) // 2] ^= 0x10
    path.write_bytes(bytes(b))


@pytest.mark.parametrize("how", ["truncated", "garbage", "bitflip"])
def test_damaged_final_file_is_named_and_recomputed(toy, tmp_path, how, caplog):
    ds, ref = toy
    final = embed_mod.embed(FrameStats(), ds, cache=tmp_path / "c", chunk_size=4, progress=False).path
    _damage(final, how)
    enc = FrameStats()
    with caplog.at_level(logging.WARNING, "jaxser.embed"):
        e = embed_mod.embed(enc, ds, cache=tmp_path / "c", chunk_size=4, progress=False)
    _same(e, ref)
    assert f"{final}: damaged embedding cache file" in caplog.text
    assert enc.utts == len(ds)
    caplog.clear()
    enc = FrameStats()  # healed for good: the next run reads it silently
    with caplog.at_level(logging.WARNING, "jaxser.embed"):
        _same(embed_mod.embed(enc, ds, cache=tmp_path / "c", progress=False), ref)
    assert enc.calls == 0 and not caplog.text


@pytest.mark.parametrize("how", ["truncated", "garbage", "bitflip"])
def test_damaged_chunk_file_is_named_and_recomputed(toy, tmp_path, how, caplog):
    ds, ref = toy
    out_dir = _crash(ds, tmp_path / "c")
    chunk = out_dir / "chunk-4-00001.npz"
    _damage(chunk, how)
    enc = FrameStats()
    with caplog.at_level(logging.WARNING, "jaxser.embed"):
        e = embed_mod.embed(enc, ds, cache=tmp_path / "c", chunk_size=4, progress=False)
    _same(e, ref)
    assert f"{chunk}: damaged embedding cache file" in caplog.text
    assert enc.utts == len(ds) - 8  # the two intact chunks are reused


@pytest.mark.parametrize("sidecar", ["kept", "removed"])
def test_non_finite_cached_embedding_is_named_and_recomputed(toy, tmp_path, sidecar, caplog):
    """A well-formed file holding a NaN (a buggy writer; "removed": one from before checksums)."""
    ds, ref = toy
    e = embed_mod.embed(FrameStats(), ds, cache=tmp_path / "c", chunk_size=4, progress=False)
    x = e.x.copy()
    x[7, 1, 2] = np.nan
    embed_mod._write_file(e.path, e.ids, x, {})
    if sidecar == "removed":
        embed_mod._sidecar(e.path).unlink()
    enc = FrameStats()
    with caplog.at_level(logging.WARNING, "jaxser.embed"):
        again = embed_mod.embed(enc, ds, cache=tmp_path / "c", progress=False)
    _same(again, ref)
    assert enc.utts == 1 and e.ids[7] in caplog.text and "non-finite" in caplog.text


def test_file_without_checksum_is_adopted_when_it_loads_cleanly(toy, tmp_path):
    ds, ref = toy
    e = embed_mod.embed(FrameStats(), ds, cache=tmp_path / "c", chunk_size=4, progress=False)
    embed_mod._sidecar(e.path).unlink()
    enc = FrameStats()
    _same(embed_mod.embed(enc, ds, cache=tmp_path / "c", progress=False), ref)
    assert enc.calls == 0 and embed_mod._sidecar(e.path).exists()


def test_cache_skipped_with_skip_errors_still_fails_without(tmp_path):
    ds = toy_corpus(tmp_path, n=8, bad=5)
    e = embed_mod.embed(FrameStats(), ds, cache=tmp_path / "c", progress=False, skip_errors=True)
    assert list(e.skipped) == ["toy/u005"]
    with pytest.raises(audio.AudioError, match="u005.wav: all samples are zero"):
        embed_mod.embed(FrameStats(), ds, cache=tmp_path / "c", progress=False)
    assert not list(e.path.parent.glob("chunk-*"))  # failed before rewriting anything
    assert embed_mod.embed(FrameStats(), ds, cache=tmp_path / "c", progress=False, skip_errors=True).skipped == \
        e.skipped


# --- bad audio reaching the encoder ---------------------------------------------------------

class Fragile(FrameStats):
    """An encoder whose float32 arithmetic overflows on loud (if still valid) audio."""

    def __init__(self):
        super().__init__()
        self.fingerprint = digest({"enc": "fragile"})

    def _embed(self, waves):
        out = super()._embed(waves)
        out[:, 0, 0] = [np.float32(np.abs(w).max()) ** 16 for w in waves]  # inf once the peak passes ~250
        return out


def test_non_finite_embedding_names_the_file_or_is_skipped(tmp_path):
    ds = toy_corpus(tmp_path, n=8)
    loud = ds[3]["audio"]  # a float WAV with samples far outside [-1, 1]
    audio.write(loud, 500 * np.sin(np.arange(8000) / 7), 16000, subtype="FLOAT")
    ds = _corpus_from(tmp_path, ds)
    with np.errstate(all="ignore"):
        with pytest.raises(audio.AudioError, match="u003.wav: .*not finite.*--skip-errors") as err:
            embed_mod.embed(Fragile(), ds, cache=tmp_path / "a", progress=False)
        assert isinstance(err.value, UserError)
        e = embed_mod.embed(Fragile(), ds, cache=tmp_path / "b", progress=False, skip_errors=True)
    assert list(e.skipped) == ["toy/u003"] and "toy/u003" not in e.ids and len(e.ids) == 7
    assert e.skipped["toy/u003"].startswith(f"{loud}: ") and "not finite" in e.skipped["toy/u003"]
    assert np.isfinite(e.x).all()


def _corpus_from(tmp_path, ds, **override):
    """`ds` rebuilt from its files (after a test changed one), record fields overridden by id."""
    recs = []
    for r in ds:
        rec = dict(utt=r["id"].split("/", 1)[1], path=r["audio"], speaker=r["speaker"], gender=r["gender"],
                   language=r["language"], emotion=r["emotion"], raw_label=r["raw_label"], text=r["text"])
        recs.append({**rec, **override.get(r["id"], {})})
    return build_dataset("toy", tmp_path / "c", recs)


def test_nan_duration_reaches_decode_and_is_skipped(tmp_path):
    """A file whose header could not be read (duration NaN) is decoded like any other, and its
    AudioError names it."""
    ds = toy_corpus(tmp_path, n=6)
    junk = tmp_path / "c" / "u004.wav"
    junk.write_bytes(b"RIFF0000WAVEjunk")
    ds = _corpus_from(tmp_path, ds, **{"toy/u004": {"duration": float("nan")}})
    assert np.isnan(ds[4]["duration"])
    with pytest.raises(audio.AudioError, match="u004.wav: unreadable"):
        embed_mod.embed(FrameStats(), ds, cache=tmp_path / "a", progress=False)
    e = embed_mod.embed(FrameStats(), ds, cache=tmp_path / "b", progress=False, skip_errors=True)
    assert list(e.skipped) == ["toy/u004"] and str(junk) in e.skipped["toy/u004"] and len(e.ids) == 5


# --- one extraction per cache entry ---------------------------------------------------------

def _extract_in_child(ds, cache, held, release, busy, results):
    """A separate process: with `held`, it signals once it holds the entry's lock and keeps it
    until `release`; with `busy`, it signals when it finds the lock taken."""
    if held is not None:
        def on_held(_):
            held.set()
            release.wait(120)
        embed_mod._on_lock_held = on_held
    if busy is not None:
        embed_mod._on_lock_busy = lambda _: busy.set()
    enc = FrameStats()
    e = embed_mod.embed(enc, ds, cache=cache, chunk_size=4, progress=False)
    results.put((held is not None, enc.calls, enc.utts, e.ids, e.x))


def test_second_process_waits_for_the_first_and_reuses_its_result(toy, tmp_path):
    ds, ref = toy
    ctx = multiprocessing.get_context("spawn")
    held, release, busy, results = ctx.Event(), ctx.Event(), ctx.Event(), ctx.Queue()
    cache = tmp_path / "shared"
    out_dir = embed_mod.cache_dir_for(FrameStats(), ds, cache)
    a = ctx.Process(target=_extract_in_child, args=(ds, cache, held, release, None, results))
    b = ctx.Process(target=_extract_in_child, args=(ds, cache, None, None, busy, results))
    a.start()
    try:
        assert held.wait(120), "process A never took the lock"
        b.start()
        assert busy.wait(120), "process B did not find the lock taken"
        assert sorted(p.name for p in out_dir.iterdir()) == [".lock"]  # B wrote nothing (nor did A yet)
        release.set()
        got = {}
        for _ in range(2):
            first, calls, utts, ids, x = results.get(timeout=120)
            got[first] = (calls, utts, ids, x)
    finally:
        release.set()
        a.join(60)
        b.join(60)
    assert a.exitcode == 0 and b.exitcode == 0
    assert got[True][1] == len(ds) and got[False][:2] == (0, 0)  # B computed nothing
    for calls, utts, ids, x in got.values():
        assert ids == ref.ids
        np.testing.assert_array_equal(x, ref.x)


# --- file modes and the CLI -----------------------------------------------------------------

@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o027, 0o640)])
def test_cache_files_honour_the_umask(toy, tmp_path, mask, mode):
    ds, _ = toy
    old = os.umask(mask)
    try:
        out_dir = _crash(ds, tmp_path / "c", chunks=2)
        files = sorted(p for p in out_dir.iterdir() if p.name != ".lock")
        assert {p.name for p in files} >= {"info.json", "chunk-4-00000.npz", "chunk-4-00000.npz.sha256.json"}
        e = embed_mod.embed(FrameStats(), ds, cache=tmp_path / "c", chunk_size=4, progress=False)
        files += [e.path, embed_mod._sidecar(e.path), out_dir / ".lock"]
    finally:
        os.umask(old)
    assert {p.name: oct(stat.S_IMODE(os.stat(p).st_mode)) for p in files if p.exists()} == \
        {p.name: oct(mode) for p in files if p.exists()}


def test_cli_help_and_one_line_user_errors(capsys):
    with pytest.raises(SystemExit) as ex:
        embed_mod.main(["--help"])
    assert ex.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--chunk-size CHUNK_SIZE utterances per checkpoint file" in out
    assert embed_mod.main(["--encoder", "no-such-encoder", "--corpus", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown encoder 'no-such-encoder'") and err.count("\n") == 1
