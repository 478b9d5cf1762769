"""Study configuration: TOML, shipped configs by name, command-line overrides, validation and
the fingerprint that keys a run directory."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from jaxser.study import config as study_config
from jaxser.study import ConfigError, StudyConfig, load_config, parse_args, validate

EXPERIMENT_CONFIGS = Path(__file__).resolve().parents[1] / "experiments" / "configs"


def test_config_errors_are_clear(tmp_path):
    from jaxser.study.run import main

    bad = tmp_path / "bad.toml"
    bad.write_text("[run]\nseedz = [1]\n")
    with pytest.raises(ConfigError, match="unknown \\[run\\] keys"):
        load_config(bad)
    cfg = load_config("default")
    cfg.labels = ["angry", "furious"]
    with pytest.raises(ConfigError, match="not known labels"):
        validate(cfg)
    with pytest.raises(ConfigError, match="not found.*default"):
        load_config(tmp_path / "missing.toml")
    assert main(["--config", str(tmp_path / "missing.toml")]) == 2


def test_shipped_configs_parse():
    files = [*study_config.CONFIG_DIR.glob("*.toml"), *EXPERIMENT_CONFIGS.glob("*.toml")]
    assert {f.name for f in files} >= {"default.toml", "paper.toml"}
    for f in files:
        cfg = load_config(f)
        validate(cfg)
        assert cfg.encoders and cfg.corpora


def test_config_by_shipped_name_or_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no repository on the path: the default ships with the package
    default = load_config("default")
    assert load_config("default.toml") == default == load_config(study_config.DEFAULT_CONFIG)
    assert default.out_dir == "runs/default" and default.split == "speaker"
    assert parse_args([]) == default
    assert parse_args(["--config", "default"]) == default


def test_the_default_fingerprint_is_unchanged_by_the_split_option():
    """Studies defined before `split` existed keep their fingerprint (and resume): the default
    split is not part of it; another split is."""
    cfg = load_config("default")
    assert cfg.fingerprint() == "ac19fcce53b2"
    assert "split" not in cfg.study()
    cfg.split = "speaker+text"
    assert cfg.study()["split"] == "speaker+text" and cfg.fingerprint() != "ac19fcce53b2"


def test_split_from_toml_and_command_line(tmp_path):
    f = tmp_path / "text.toml"
    f.write_text('[run]\nsplit = "speaker+text"\n[corpora]\nsynth-alba = ""\nsynth-bruna = ""\n'
                 '[models]\nencoders = ["mfcc"]\n')
    assert load_config(f).split == "speaker+text"
    assert parse_args(["--config", str(f), "--split", "speaker"]).split == "speaker"
    assert parse_args(["--split", "speaker+text"]).split == "speaker+text"
    with pytest.raises(ConfigError, match="split 'sentence'.*speaker\\+text"):
        parse_args(["--split", "sentence"])


def test_command_line_overrides():
    cfg = parse_args(["--corpus", "synth-alba=", "--corpus", "synth-bruna=/x", "--encoder", "mfcc", "--head", "fcn",
                      "--seeds", "3,4", "--labels", "angry,sad", "--settings", "same,cross", "--k-folds", "3",
                      "--bootstrap", "0", "--out", "o", "--workers", "2", "--skip-errors"])
    assert cfg == StudyConfig(out_dir="o", corpora={"synth-alba": "", "synth-bruna": "/x"}, encoders=["mfcc"],
                              heads=["fcn"], layers=["last"], seeds=[3, 4], settings=["same", "cross"],
                              labels=["angry", "sad"], k_folds=3, bootstrap=0, head=cfg.head, train=cfg.train,
                              skip_errors=True, workers=2)
    with pytest.raises(ConfigError, match="--workers 0"):
        parse_args(["--workers", "0"])
    # where the results are written and how fast does not define the study
    assert cfg.fingerprint() == parse_args(["--corpus", "synth-alba=", "--corpus", "synth-bruna=/x", "--encoder",
                                            "mfcc", "--head", "fcn", "--seeds", "3,4", "--labels", "angry,sad",
                                            "--settings", "same,cross", "--k-folds", "3"]).fingerprint()


def test_bad_values_are_config_errors(tmp_path):
    f = tmp_path / "v.toml"
    for text, match in [('[run]\nseeds = "ab"\n', "seeds"), ("[run]\nk_folds = 1.5\n", "k_folds"),
                        ('[models]\nencoders = "mfcc"\n', "encoders"), ("[train]\nmax_epoch = 3\n", "\\[train\\]"),
                        ("[train]\nlayer = 2\n", "\\[models\\] layers"), ("[head.cnn]\npool = 0\n", "\\[head.cnn\\]")]:
        f.write_text(text)
        with pytest.raises(ConfigError, match=match):
            cfg = load_config(f)
            cfg.corpora, cfg.encoders = {"synth-alba": "", "synth-bruna": ""}, cfg.encoders or ["mfcc"]
            validate(cfg)
    with pytest.raises(ConfigError, match="--seeds"):
        parse_args(["--seeds", "0,x"])


def test_wrong_types_and_unknown_keys_name_file_section_key_type_and_value(tmp_path):
    f = tmp_path / "study.toml"
    for text, message in [
            ('[train]\nmax_epochs = "ten"\n', '[train] max_epochs = "ten": expected a whole number, found a string'),
            ("[train]\nlr = true\n", "[train] lr = true: expected a number, found true or false"),
            ("[train]\npatience = 2.5\n", "[train] patience = 2.5: expected a whole number, found a number"),
            ('[train]\nstandardize = "yes"\n', '[train] standardize = "yes": expected true or false, found a string'),
            ('[head.fcn]\nhidden = [64, "x"]\n', '[head.fcn] hidden = [64, "x"]: expected a list of whole numbers'),
            ("[train]\nmax_epoch = 3\n", "unknown [train] keys ['max_epoch']; known: optimizer, lr"),
            ("[head.fcn]\nwidth = 3\n", "unknown [head.fcn] keys ['width']"),
            ("[head.mlp]\nhidden = [3]\n", "[head.mlp]: not a head kind")]:
        f.write_text(text)
        with pytest.raises(ConfigError) as e:
            load_config(f)
        assert str(e.value).startswith(f"{f}: ") and message in str(e.value), (text, str(e.value))
    f.write_text('[train]\nlr = 1\nmax_epochs = 3\npatience = 2\n[head.cnn]\nconv_channels = [8, 16]\n')
    cfg = load_config(f)
    assert (cfg.train.lr, cfg.train.max_epochs, cfg.train.patience) == (1, 3, 2)  # a whole number is a number
    assert cfg.study()["train"] == {"lr": 1, "max_epochs": 3, "patience": 2}


def test_wait_is_how_a_run_waits_not_what_it_computes():
    assert parse_args(["--wait"]).wait and not parse_args([]).wait
    assert parse_args(["--wait"]).fingerprint() == parse_args([]).fingerprint()


def test_save_models():
    assert load_config("default").save_models == ["cross", "loco"]
    assert parse_args(["--save-models", "all"]).save_models == ["same", "cross", "loco"]
    assert parse_args(["--save-models", "none"]).save_models == []
    assert parse_args(["--save-models", "loco"]).save_models == ["loco"]
    with pytest.raises(ConfigError, match="--save-models"):
        parse_args(["--save-models", "some"])
    # which models are saved does not change a result
    assert parse_args(["--save-models", "none"]).fingerprint() == load_config("default").fingerprint()


def test_a_changed_study_without_out_gets_its_own_directory():
    cfg = parse_args(["--corpus", "synth-alba=", "--corpus", "synth-bruna="])
    assert cfg.out_dir == f"runs/default-{cfg.fingerprint()}"
    assert parse_args(["--bootstrap", "10"]).out_dir == "runs/default"   # the same study
    assert parse_args(["--seeds", "1", "--out", "o"]).out_dir == "o"


def test_study_diff_names_the_settings():
    a = load_config("default")
    b = load_config("default")
    b.train = dataclasses.replace(b.train, max_epochs=3)
    b.seeds = [0]
    b.split = "speaker+text"
    assert study_config.study_diff(a.study(), b.study()) == [
        "seeds: [0, 1, 2, 3, 4] -> [0]", 'split: "speaker" -> "speaker+text"', "train.max_epochs: 30 -> 3"]
    assert study_config.study_diff(a.study(), a.study()) == []


def test_emobox_all_names_every_emobox_corpus_jaxser_loads():
    """The shipped intra-corpus config lists every registry corpus (EmoBox's names) except the two
    single-speaker ones, which have no speaker-independent same-corpus folds."""
    from jaxser import corpora
    from jaxser.corpora.synthetic import CORPORA as synthetic

    cfg = load_config("emobox-all")
    real = set(corpora.available()) - {"manifest"} - set(synthetic)
    assert set(cfg.corpora) == real - {"emns", "pavoque"}
    assert cfg.settings == ["same"] and cfg.labels is None
    assert all(root == f"downloads/{name}" for name, root in cfg.corpora.items())


def test_the_dimensional_task_from_toml_and_command_line(tmp_path):
    default = load_config("default")
    fp = default.fingerprint()
    assert "task" not in default.study() and "dimensions" not in default.study()  # categorical studies keep theirs
    cfg = parse_args(["--task", "dimensional", "--dimensions", "valence,arousal"])
    assert cfg.task == "dimensional" and cfg.dimensions == ["arousal", "valence"]
    assert cfg.fingerprint() != fp and cfg.study()["task"] == "dimensional" and "labels" not in cfg.study()
    toml = tmp_path / "dim.toml"
    toml.write_text('[run]\ntask = "dimensional"\ndimensions = ["dominance"]\n[corpora]\na = ""\nb = ""\n'
                    '[models]\nencoders = ["mfcc"]\n[train]\nloss = "mse"\n')
    cfg = load_config(toml)
    validate(cfg)
    assert cfg.dimensions == ["dominance"] and cfg.train.loss == "mse"
    assert cfg.train_config("last").loss == "mse"


@pytest.mark.parametrize("argv,match", [
    (["--task", "dimensional", "--dimensions", "arousal,joy"], "dimensions"),
    (["--task", "dimensional", "--layer", "best"], "layer sweeps"),
])
def test_bad_dimensional_settings_are_config_errors(argv, match):
    with pytest.raises(ConfigError, match=match):
        parse_args(argv)


def test_a_loss_without_the_dimensional_task_is_refused(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('[corpora]\na = ""\nb = ""\n[models]\nencoders = ["mfcc"]\n[train]\nloss = "ccc"\n')
    with pytest.raises(ConfigError, match="cross-entropy"):
        validate(load_config(toml))
    toml.write_text('[run]\ntask = "dimensional"\n[corpora]\na = ""\nb = ""\n[models]\nencoders = ["mfcc"]\n'
                    '[train]\nloss = "huber"\n')
    with pytest.raises(ConfigError, match="loss"):
        validate(load_config(toml))
