"""Audio that is not usable: refused by `jaxser.audio.load` with the file named, and, with
`skip_errors=True`, kept by every corpus loader (duration NaN) so the extraction can skip and
list it; without it, the loaders stop with the same one-line error as before."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from jaxser import audio, corpora
from jaxser.audio import AudioError

from tests.helpers import corpus_fixtures as fx
from tests.helpers.corpus_release_trees import (make_aesdd, make_baved, make_cafe, make_iemocap, make_shemo,
                                               make_subesco, make_urdu)


def _float_wav(path: Path, wave: np.ndarray, sr: int = 16_000) -> Path:
    return audio.write(path, wave, sr, subtype="FLOAT")


@pytest.mark.parametrize("value,why", [(1e25, "not a waveform"), (5e3, "not a waveform"),
                                       (np.nan, "NaN or Inf"), (np.inf, "NaN or Inf")])
def test_load_refuses_samples_that_are_not_a_waveform(tmp_path, value, why):
    w = 0.1 * np.sin(np.arange(3200) / 7.0)
    w[100:110] = value
    p = _float_wav(tmp_path / "bad.wav", w)
    with pytest.raises(AudioError, match=why) as e:
        audio.load(p)
    assert e.value.path == str(p) and "\n" not in str(e.value)


def test_load_accepts_float_overshoot(tmp_path):
    """Unclipped float files may exceed full scale a little; that is still a waveform."""
    w = 0.1 * np.sin(np.arange(3200) / 7.0)
    w[50] = 8.0
    assert audio.load(_float_wav(tmp_path / "loud.wav", w)).max() > 1.0


# ----------------------------------------------------------------------------- skip_errors in every loader

def _manifest(root: Path, kind: str) -> Path:
    paths = fx.write_tree(root, ["a/1.wav", "a/2.wav", "b/3.wav"], 22_050)
    if kind == "csv":
        (root / "manifest.csv").write_text("path,speaker,emotion\n" + "".join(
            f"{p.relative_to(root)},{p.parent.name},angry\n" for p in paths))
    else:
        import json

        (root / "manifest.jsonl").write_text("".join(
            json.dumps({"path": str(p), "speaker": p.parent.name, "emotion": "sad"}) + "\n" for p in paths))
    return root


BUILDERS = {
    "cremad": fx.cremad, "ravdess": fx.ravdess, "tess": fx.tess, "emodb": fx.emodb, "savee": fx.savee,
    "emovo": fx.emovo, "iemocap": make_iemocap, "urdu": make_urdu, "baved": make_baved, "aesdd": make_aesdd,
    "shemo": make_shemo, "subesco": make_subesco, "cafe": make_cafe,
    "manifest": lambda root: _manifest(root, "csv"), "manifest-jsonl": lambda root: _manifest(root, "jsonl"),
}


@pytest.mark.parametrize("case", sorted(BUILDERS))
def test_unreadable_files_kept_with_nan_duration_under_skip_errors(tmp_path, case):
    name = case.split("-")[0]
    root = tmp_path / case
    root.mkdir()
    BUILDERS[case](root)
    clean = corpora.load(name, root)
    junk, empty = clean["audio"][0], clean["audio"][-1]
    Path(junk).write_bytes(np.random.default_rng(0).bytes(4096))
    Path(empty).write_bytes(b"")
    with pytest.raises(AudioError) as e:
        corpora.load(name, root)
    assert e.value.path in (junk, empty) and "\n" not in str(e.value)
    ds = corpora.load(name, root, skip_errors=True)
    assert ds["id"] == clean["id"]
    dur = dict(zip(ds["audio"], ds["duration"]))
    assert math.isnan(dur[junk]) and math.isnan(dur[empty])
    assert all(d > 0 for p, d in dur.items() if p not in (junk, empty))


def test_synthetic_corpora_are_not_passed_the_flag(monkeypatch):
    from jaxser.corpora import synthetic

    seen = {}
    monkeypatch.setattr(synthetic, "load", lambda name, root, **kw: seen.update(name=name, kw=kw) or "ds")
    name = next(iter(synthetic.CORPORA))
    assert corpora.load(name, skip_errors=True) == "ds"
    assert seen == {"name": name, "kw": {}}


# ----------------------------------------------------------------------------- the corpus card

def test_card_lists_unreadable_files_of_header_reading_loaders(tmp_path):
    """TESS and the manifest loader read headers while loading; the card must still list every
    file, the broken ones as problems with their paths."""
    from jaxser.corpora.card import describe

    for name in ("tess", "manifest"):
        root = tmp_path / name
        root.mkdir()
        BUILDERS[name](root)
        n = len(corpora.load(name, root))
        bad = corpora.load(name, root)["audio"][1]
        Path(bad).write_bytes(b"RIFF junk")
        card = describe(name, root)
        probs = card["problems"]
        assert probs[["kind", "path"]].values.tolist() == [["unreadable", bad]], probs
        assert card["summary"]["utterances"][0] == n


@pytest.mark.parametrize("make_root", ["missing", "empty"])
def test_cli_describe_missing_root_or_no_audio_exits_2(tmp_path, capsys, make_root):
    from jaxser.corpora import __main__ as cli

    root = tmp_path / "emodb"
    if make_root == "empty":
        root.mkdir()
        (root / "README.txt").write_text("no audio here")
    assert cli.entry(["describe", f"emodb={root}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(root) in err
    assert ("does not exist" if make_root == "missing" else "no .wav files") in err


def test_cli_reports_user_errors_as_one_line(tmp_path, capsys, monkeypatch):
    from jaxser.corpora import __main__ as cli
    from jaxser.corpora import card

    def broken(*a, **kw):
        raise AudioError(tmp_path / "x.wav", "unreadable audio (test)")

    monkeypatch.setattr(card, "describe", broken)
    monkeypatch.delenv("JAXSER_DEBUG", raising=False)
    assert cli.entry(["describe", f"emodb={tmp_path}"]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'x.wav'}: unreadable audio (test)\n"
