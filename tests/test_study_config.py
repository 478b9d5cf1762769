"""Study configuration: TOML, shipped configs by name, command-line overrides, validation and
the fingerprint that keys a run directory."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

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


# ----------------------------------------------------------------------------- typed tables and --set

def test_set_overrides_any_key_typed_against_its_dataclass():
    cfg = parse_args(["--set", "train.lr=3e-4", "--set", "head.cnn.conv_channels=[8, 16]", "--set", "run.k_folds=3",
                      "--set", "encoders.dtype=bfloat16", "--set", "devices.mesh=auto",
                      "--set", 'models.heads=["cnn"]', "--set", "train.class_weights=balanced",
                      "--set", "run.labels=shared"])
    assert cfg.train.lr == 3e-4 and cfg.train.class_weights == "balanced"
    assert cfg.head["cnn"].conv_channels == (8, 16) and cfg.head["cnn"].pool == 4  # the config's other keys stay
    assert (cfg.k_folds, cfg.encoder_dtype, cfg.mesh, cfg.heads, cfg.labels) == (3, "bfloat16", "auto", ["cnn"], None)
    # the specific options still work, and win over --set
    assert parse_args(["--set", "run.k_folds=3", "--k-folds", "4"]).k_folds == 4


@pytest.mark.parametrize("assignment,message", [
    ("train.lrr=1", "--set train.lrr: unknown key (did you mean train.lr?)"),
    ("head.cnn.channels=64", "(did you mean head.cnn.conv_channels?)"),
    ("run.seedz=[1]", "(did you mean run.seeds?)"),
    ("trian.lr=1", "(did you mean train.lr?)"),
    ("train.max_epochs=ten", "--set train.max_epochs=ten: expected a whole number"),
    ("run.k_folds=1.5", "--set run.k_folds = 1.5: expected a whole number, found a number"),
    ("head.cnn.conv_channels=64", "--set head.cnn.conv_channels = 64: expected a list of whole numbers"),
    ("head.fcn.pool=2", "--set head.fcn.pool: a key of cnn heads only; a fcn head takes hidden, dropout"),
    ("head.linear.hidden=[8]", "a key of fcn, cnn heads only; a linear head takes no keys"),
    ("head.mlp.hidden=[8]", "--set head.mlp: not a head kind"),
    ("train.layer=2", "--set train.layer: set by [models] layers"),
    ("train.lr=-1", "--set train"),
    ("encoders.dtype=float16", "dtype 'float16' ([encoders] dtype"),
    ("devices.mesh=all", "mesh 'all' ([devices] mesh"),
    ("k_folds", "expected KEY=VALUE"),
])
def test_set_errors_are_one_line_naming_key_type_and_value(assignment, message):
    with pytest.raises(ConfigError) as e:
        parse_args(["--set", assignment])
    assert message in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_a_key_of_another_head_kind_is_an_error_naming_the_kinds(tmp_path):
    from jaxser.heads import HeadConfig

    f = tmp_path / "h.toml"
    f.write_text('[corpora]\na = ""\nb = ""\n[models]\nencoders = ["mfcc"]\n[head.fcn]\nconv_channels = [8]\n')
    with pytest.raises(ConfigError, match=r"h.toml: \[head.fcn\] conv_channels: a key of cnn heads only; a fcn head "
                                          r"takes hidden, dropout"):
        load_config(f)
    assert HeadConfig.fields_of("cnn") == ("hidden", "dropout", "conv_channels", "kernel_size", "pool")
    assert HeadConfig.fields_of("linear") == () and HeadConfig.kinds_of("pool") == ("cnn",)


def test_every_override_given_is_applied_not_ignored():
    """An option given with a falsy value (0, "") is applied and then refused by validation."""
    for argv, match in [(["--k-folds", "0"], "k_folds 0"), (["--k-folds", "1"], "k_folds 1"),
                        (["--seeds", ""], "seeds must be distinct and non-empty"),
                        (["--settings", ""], "no settings"), (["--out", ""], "out_dir"),
                        (["--labels", ""], "--labels"), (["--split", ""], "split ''"),
                        (["--bootstrap", "-1"], "bootstrap -1"), (["--workers", "0"], "--workers 0"),
                        (["--dimensions", "", "--task", "dimensional"], "dimensions")]:
        with pytest.raises(ConfigError, match=match):
            parse_args(argv)


def test_the_fingerprint_records_what_a_table_spells_out(tmp_path):
    """As before the tables were typed: a [train] / [head.<kind>] key spelled out is recorded
    even at its default value (so such studies keep their fingerprint), a value changed in
    Python is recorded too, and --set writes what the same key in the file writes."""
    from jaxser.train import TrainConfig

    base = '[corpora]\na = ""\nb = ""\n[models]\nencoders = ["mfcc"]\n'
    f = tmp_path / "s.toml"
    f.write_text(base)
    bare = load_config(f)
    assert bare.study()["train"] == {} and bare.study()["head"] == {}
    f.write_text(base + f"[train]\nlr = {TrainConfig().lr}\n[head.fcn]\n")
    spelled = load_config(f)
    assert spelled.study()["train"] == {"lr": TrainConfig().lr} and spelled.study()["head"] == {"fcn": {}}
    assert spelled.fingerprint() != bare.fingerprint()
    f.write_text(base)
    assert parse_args(["--config", str(f), "--set", f"train.lr={TrainConfig().lr}", "--set", "head.fcn.dropout=0.3",
                       "--out", "o"]).study() == {**spelled.study(), "head": {"fcn": {"dropout": 0.3}}}
    changed = load_config(f)
    changed.train = dataclasses.replace(changed.train, max_epochs=7)
    assert changed.study()["train"] == {"max_epochs": 7}


def test_dtype_changes_the_fingerprint_and_mesh_does_not():
    default = parse_args([])
    fp = default.fingerprint()
    assert "encoder_dtype" not in default.study()
    assert parse_args(["--set", "encoders.dtype=float32"]).fingerprint() == fp  # the default, spelled out
    assert parse_args(["--set", "devices.mesh=auto"]).fingerprint() == fp  # results equal the one-device ones
    bf16 = parse_args(["--set", "encoders.dtype=bfloat16"])
    assert bf16.study()["encoder_dtype"] == "bfloat16" and bf16.fingerprint() != fp
    assert bf16.out_dir == f"runs/default-{bf16.fingerprint()}"
    assert study_config.study_diff(default.study(), bf16.study()) == ['encoder_dtype: "float32" -> "bfloat16"']


def test_dtype_and_mesh_reach_the_encoders(monkeypatch):
    """[encoders] dtype and [devices] mesh go to the JAX encoders' loaders; the others (handcrafted
    features) get neither. The encoder is built for real, then extraction is stopped."""
    from jaxser import encoders, sharding
    from jaxser.study import run as run_mod

    assert run_mod.encoder_options("random-wav2vec2", "float32", "none") == {}
    assert run_mod.encoder_options("mfcc", "bfloat16", "auto") == {}
    assert run_mod.encoder_options("random-wav2vec2", "bfloat16", "auto") == {"dtype": "bfloat16", "mesh": "auto"}
    built = []
    real = encoders.load

    class Stop(Exception):
        pass

    def load(name, **options):
        built.append(real(name, **options))
        raise Stop

    monkeypatch.setattr(encoders, "load", load)
    cfg = parse_args(["--encoder", "random-wav2vec2", "--set", "encoders.dtype=bfloat16", "--set", "devices.mesh=auto"])
    with pytest.raises(Stop):
        run_mod.extract_embeddings(cfg, {}, lambda *a: None, {})
    [enc] = built
    assert enc.dtype == "bfloat16" and enc.mesh is sharding.resolve_mesh("auto")
    assert enc.fingerprint != real("random-wav2vec2").fingerprint  # a cache of its own


@settings(max_examples=25, deadline=None)
@given(st.dictionaries(st.sampled_from(["lr", "weight_decay", "batch_size", "max_epochs", "patience", "standardize",
                                        "optimizer"]), st.integers(1, 9), min_size=1))
def test_a_train_table_and_set_are_one_path(tmp_path_factory, values):
    """The same keys given in the config file's [train] table or as --set train.KEY=VALUE
    give the same config and the same fingerprint."""
    values = {k: (v % 2 == 0 if k == "standardize" else ["adam", "sgd"][v % 2] if k == "optimizer"
                  else v / 1000 if k in ("lr", "weight_decay") else v) for k, v in values.items()}
    base = '[corpora]\na = ""\nb = ""\n[models]\nencoders = ["mfcc"]\n'
    f = tmp_path_factory.mktemp("t") / "t.toml"
    f.write_text(base)
    toml = "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
    g = f.with_name("g.toml")
    g.write_text(base + "[train]\n" + toml)
    by_set = parse_args(["--config", str(f), "--out", "o", *[a for k, v in values.items()
                                                             for a in ("--set", f"train.{k}={json.dumps(v)}")]])
    in_file = parse_args(["--config", str(g), "--out", "o"])
    assert by_set.train == in_file.train and by_set.study() == in_file.study()


def test_every_config_key_is_documented():
    """A new option is a dataclass field plus its line in docs/configuration.md."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    missing = [key for key in study_config.settable_keys() if f"`{key.rsplit('.', 1)[1]}`" not in doc]
    assert not missing, missing
