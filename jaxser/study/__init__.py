"""A cross-corpus SER study as a library: its configuration, run directory, schedule and stages.

    from jaxser.study import load_config, validate
    from jaxser.study.run import run

    cfg = load_config("default")        # a shipped name or a TOML path
    cfg.out_dir = "runs/mine"
    validate(cfg)
    run(cfg)                            # corpora -> embeddings -> cells -> train -> report

`jaxser.study.config` (StudyConfig, TOML + command-line overrides, fingerprint),
`jaxser.study.artifacts` (every run-directory file: name, schema, writer, verified reader),
`jaxser.study.schedule` (which models, where, how many at once), `jaxser.study.run` (the
stages and the `jaxser run` command line). Importing this package imports no JAX.
"""
from jaxser.study.config import (CONFIG_DIR, DEFAULT_CONFIG, ConfigError, StudyConfig, load_config, parse_args,
                                 validate)

__all__ = ["CONFIG_DIR", "DEFAULT_CONFIG", "ConfigError", "StudyConfig", "load_config", "parse_args", "validate"]
