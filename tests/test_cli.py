"""The `jaxser` command line: help and version, every user mistake as one `error:` line and
exit 2 (a traceback only with --debug), the refused --out naming what differs, stage timings
and the training bar's count."""
from __future__ import annotations

import json

import pytest

from jaxser.cli import main
from tests.helpers.tiny_study import tiny_study


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return tiny_study(tmp_path_factory)


def _error(capsys, argv, entry=main) -> str:
    """Run a command line that must fail on the user's mistake: exit 2, one line on stderr."""
    assert entry(argv) == 2
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _config(tmp_path, text: str, name="c.toml"):
    base = ('[corpora]\nsynth-alba = ""\nsynth-bruna = ""\n[models]\nencoders = ["mfcc"]\nheads = ["fcn"]\n'
            '[run]\nsettings = ["cross"]\nseeds = [0]\n')
    path = tmp_path / name
    path.write_text(base + text if not text.startswith("[run]") else text)
    return str(path)


def test_help_and_version_exit_0(capsys):
    import jaxser

    for argv in (["--help"], ["--version"], ["run", "--help"], ["predict", "--help"], ["embed", "--help"],
                 ["describe", "--help"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 0, argv
    out = capsys.readouterr().out
    assert f"jaxser {jaxser.__version__}" in out
    assert all(cmd in out for cmd in ("run", "embed", "describe", "predict"))


def test_every_option_has_help():
    from jaxser.predict import argument_parser as predict_parser
    from jaxser.study.config import argument_parser as run_parser
    from jaxser.cli import parser

    for p in (run_parser(), predict_parser(), parser()):
        for action in p._actions:
            assert action.help, (p.prog, action.option_strings or action.dest)


def test_no_command_is_a_usage_error(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert all(c in err for c in ("run", "embed", "describe", "predict"))


def test_missing_config_file(capsys, tmp_path):
    line = _error(capsys, ["run", "--config", str(tmp_path / "nope.toml")])
    assert "nope.toml not found" in line


def test_unknown_config_key(capsys, tmp_path):
    line = _error(capsys, ["run", "--config", _config(tmp_path, "[run]\nseedz = [1]\n")])
    assert "unknown [run] keys ['seedz']" in line


@pytest.mark.parametrize("text, where", [
    ("[run]\nseeds = \"ab\"\n", "seeds"),
    ("[train]\nmax_epoch = 3\n", "[train]"),
    ("[train]\nlr = -1\n", "[train]"),
    ("[head.fcn]\nhidden = [-1]\n", "[head.fcn]"),
    ("[head.fnc]\nhidden = [8]\n", "[head.fnc]"),
])
def test_bad_config_values(capsys, tmp_path, text, where):
    line = _error(capsys, ["run", "--config", _config(tmp_path, text), "--out", str(tmp_path / "r")])
    assert where in line


def test_bad_command_line_value(capsys, tmp_path):
    line = _error(capsys, ["run", "--seeds", "0,x", "--out", str(tmp_path / "r")])
    assert "--seeds" in line and "'x'" in line


def test_unknown_corpus(capsys, tmp_path):
    line = _error(capsys, ["run", "--config", _config(tmp_path, ""), "--corpus", "nosuch=", "--corpus", "synth-alba=",
                           "--out", str(tmp_path / "r")])
    assert "unknown corpus 'nosuch'" in line
    assert "unknown corpus" in _error(capsys, ["describe", "nosuch"])
    assert "unknown corpus" in _error(capsys, ["embed", "--encoder", "mfcc", "--corpus", "nosuch"])


def test_missing_corpus_root(capsys, tmp_path):
    line = _error(capsys, ["run", "--config", _config(tmp_path, ""), "--corpus", f"emodb={tmp_path / 'no'}",
                           "--corpus", "synth-alba=", "--out", str(tmp_path / "r")])
    assert "does not exist" in line
    assert "does not exist" in _error(capsys, ["describe", f"emodb={tmp_path / 'no'}"])


def test_a_failed_run_does_not_claim_its_directory(capsys, tmp_path):
    """A run stopped by a bad corpus root leaves nothing to protect: the corrected command
    may use the same --out (here it stops on the next mistake, not on the directory)."""
    out = str(tmp_path / "r")
    _error(capsys, ["run", "--config", _config(tmp_path, ""), "--corpus", f"emodb={tmp_path / 'no'}", "--corpus",
                    "synth-alba=", "--out", out])
    line = _error(capsys, ["run", "--config", _config(tmp_path, ""), "--encoder", "nosuch", "--out", out])
    assert "unknown encoder 'nosuch'" in line


def test_unknown_encoder_and_missing_checkpoint(capsys, tmp_path):
    line = _error(capsys, ["run", "--config", _config(tmp_path, ""), "--encoder", "nosuch", "--out",
                           str(tmp_path / "r")])
    assert "unknown encoder 'nosuch'" in line
    line = _error(capsys, ["embed", "--encoder", str(tmp_path / "no-model"), "--corpus", "synth-alba"])
    assert "does not exist" in line


def test_corrupt_wav(capsys, tmp_path):
    d = tmp_path / "c"
    d.mkdir()
    (d / "a.wav").write_bytes(b"RIFF" + bytes(range(256)) * 4)
    (d / "manifest.csv").write_text("path,emotion,speaker\na.wav,angry,s1\n")
    line = _error(capsys, ["embed", "--encoder", "mfcc", "--corpus", f"manifest={d}"])
    assert "a.wav" in line


def test_layer_out_of_range(capsys, tmp_path):
    line = _error(capsys, ["run", "--config", _config(tmp_path, ""), "--layer", "5", "--out", str(tmp_path / "r")])
    assert "layer 5" in line and "out of range for mfcc" in line


def test_bad_paths(capsys, tmp_path):
    afile = tmp_path / "file"
    afile.write_text("")
    line = _error(capsys, ["run", "--config", _config(tmp_path, ""), "--out", str(afile / "r")])
    assert "--out" in line and "cannot create" in line
    line = _error(capsys, ["run", "--config", _config(tmp_path, ""), "--out", str(tmp_path / "r"),
                           "--cache", str(afile / "c")])
    assert "cache" in line


def test_reused_out_lists_what_differs(capsys, study):
    line = _error(capsys, ["run", "--config", str(study["config"]), "--out", str(study["out"]), "--seeds", "0",
                           "--settings", "cross"])
    assert "seeds: [0, 1] -> [0]" in line and "--out" in line


def test_experiments_entry_point_reports_errors(capsys, tmp_path):
    from experiments.cross_corpus import main as experiments_main

    line = _error(capsys, ["--config", str(tmp_path / "nope.toml")], entry=experiments_main)
    assert "not found" in line


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    from jaxser.study import ConfigError

    # --debug sets JAXSER_DEBUG for the process; monkeypatch puts back the original on teardown
    monkeypatch.setenv("JAXSER_DEBUG", "0")
    with pytest.raises(ConfigError):
        main(["--debug", "run", "--config", str(tmp_path / "nope.toml")])
    monkeypatch.setenv("JAXSER_DEBUG", "0")
    with pytest.raises(ConfigError):
        main(["run", "--debug", "--config", str(tmp_path / "nope.toml")])
    monkeypatch.setenv("JAXSER_DEBUG", "1")
    with pytest.raises(ConfigError):
        main(["run", "--config", str(tmp_path / "nope.toml")])


def test_run_prints_stage_timings_and_counts_models(study):
    manifest = json.loads((study["out"] / "manifest.json").read_text())
    timings = manifest["timings"]
    assert {"corpora_s", "extract_s", "train_s", "report_s", "total_s"} <= set(timings)
    # how much of extraction and training was making executables (none when this process had
    # already compiled the same programs for another test)
    assert timings["compile_extract_s"] >= 0 and timings["compile_train_s"] >= 0
    out = study["stdout"]
    time_line = next(x for x in out.splitlines() if x.startswith("time: "))
    assert all(s in time_line for s in ("corpora ", "extract ", "(mfcc ", "train ", "report ", "total "))
    assert "compiling " in time_line
    assert "models: 2 saved" in out
    # the bar counts every model to train (2 cross-corpus models), one by one, with those in flight
    [bar] = study["bars"]
    assert bar.total == bar.n == 2
    assert any(p.endswith("in flight") and not p.startswith("0") for p in bar.postfixes)
    assert bar.postfixes[-1] == "0 in flight"


def test_compile_clock_counts_making_executables():
    """The clock behind manifest.json's compile_*_s: tracing, lowering and compiling a new
    function adds to it; calling the compiled function again adds nothing."""
    import jax
    import jax.numpy as jnp

    from jaxser.study.run import compile_clock

    clock = compile_clock()
    assert compile_clock() is clock   # one listener per process
    f = jax.jit(lambda x: jnp.sin(x) * 3.0 + 1.0)
    before = clock.total
    f(jnp.ones(7)).block_until_ready()
    made = clock.total
    assert made > before
    f(jnp.ones(7)).block_until_ready()
    assert clock.total == made


def test_abbreviated_options_are_refused(capsys, tmp_path):
    """`--seed 0,1` is not silently taken as `--seeds` (argparse's prefix matching is off)."""
    with pytest.raises(SystemExit) as e:
        main(["run", "--seed", "0,1", "--out", str(tmp_path / "r")])
    assert e.value.code == 2 and "unrecognized arguments: --seed" in capsys.readouterr().err


def test_embed_and_describe_take_a_manifest_under_any_name(capsys, tmp_path):
    """`jaxser embed` and `jaxser describe` name a manifest corpus as `jaxser run` does (NAME=PATH)."""
    import numpy as np
    import soundfile as sf

    for i in range(2):
        sf.write(tmp_path / f"u{i}.wav", np.sin(np.linspace(0, 400, 16_000)).astype(np.float32) * 0.1, 16_000)
    (tmp_path / "mine.csv").write_text("path,speaker,emotion\nu0.wav,s1,angry\nu1.wav,s2,sad\n")
    assert main(["describe", f"mine={tmp_path / 'mine.csv'}", "--no-hash"]) == 0
    assert "== mine" in capsys.readouterr().out
    assert main(["embed", "--encoder", "mfcc", "--corpus", f"mine={tmp_path / 'mine.csv'}",
                 "--cache", str(tmp_path / "cache")]) == 0
    assert "mfcc x mine: (2, 1, 160)" in capsys.readouterr().out


def test_corpora_lists_every_loader(capsys):
    from jaxser import corpora

    assert main(["corpora"]) == 0
    out = capsys.readouterr().out
    names = {line.split()[0] for line in out.splitlines()[1:]}
    assert names == set(corpora.available())
    assert "turevdb" in out and "synthetic" in out


def test_debug_is_one_option_every_command_takes(tmp_path, monkeypatch):
    """`--debug` after any command (and `python -m jaxser.study.run --debug`) shows the traceback."""
    from jaxser.errors import UserError
    from jaxser.study.run import main as run_main

    for argv, entry in [(["--debug", "--config", str(tmp_path / "nope.toml")], run_main),
                        (["predict", "--debug", "--model", str(tmp_path / "nope"), str(tmp_path)], main),
                        (["embed", "--debug", "--encoder", "mfcc", "--corpus", "nosuch"], main),
                        (["fetch", "--debug", "--config", str(tmp_path / "nope.toml")], main),
                        (["describe", "--debug", "nosuch"], main)]:
        monkeypatch.setenv("JAXSER_DEBUG", "0")
        with pytest.raises(UserError):
            entry(argv)


def test_describe_refuses_empty_output_paths(capsys):
    for flag in ("--csv-dir", "--json"):
        with pytest.raises(SystemExit) as e:
            main(["describe", "synth-alba", flag, ""])
        assert e.value.code == 2 and f"{flag} needs a path" in capsys.readouterr().err


def test_set_errors_are_one_line(capsys, tmp_path):
    line = _error(capsys, ["run", "--config", _config(tmp_path, ""), "--set", "train.lrr=1", "--out", str(tmp_path)])
    assert "train.lrr: unknown key (did you mean train.lr?)" in line
    line = _error(capsys, ["run", "--k-folds", "0", "--out", str(tmp_path / "r")])
    assert "k_folds 0" in line
