"""One small study run for the command-line and prediction tests: two synthetic corpora, MFCC,
an FCN head, two seeds, cross-corpus cells only, a few epochs (seconds on a CPU). Run once
per test session, through `jaxser run`, with the training bars recorded."""
from __future__ import annotations

from pathlib import Path

CONFIG = """\
[run]
seeds = [0, 1]
settings = ["cross"]
labels = ["angry", "happy", "neutral", "sad"]
bootstrap = 20
[corpora]
synth-alba = ""
synth-bruna = ""
[models]
encoders = ["mfcc"]
heads = ["fcn"]
[train]
max_epochs = 4
patience = 2
"""

_done: dict = {}


class RecordingBar:
    """Stands in for the training bar: records its total, updates and postfixes."""
    bars: list["RecordingBar"] = []

    def __init__(self, total):
        self.total, self.n, self.postfixes = total, 0, []
        RecordingBar.bars.append(self)

    def update(self, n=1):
        self.n += n

    def set_postfix_str(self, s, refresh=True):
        self.postfixes.append(s)

    def close(self):
        pass


def tiny_study(tmp_path_factory) -> dict:
    """{"out": run dir, "config": config path, "stdout": what `jaxser run` printed, "bars": the
    recorded bars}; the study runs once per session."""
    if not _done:
        import contextlib
        import io

        from jaxser.cli import main
        from jaxser.study import run

        base = tmp_path_factory.mktemp("tiny-study")
        config = base / "tiny.toml"
        config.write_text(CONFIG)
        out = base / "run"
        buf = io.StringIO()
        real = run.training_bar
        run.training_bar = RecordingBar
        try:
            with contextlib.redirect_stdout(buf):
                rc = main(["run", "--config", str(config), "--out", str(out)])
        finally:
            run.training_bar = real
        assert rc == 0, buf.getvalue()
        _done.update(out=Path(out), config=config, stdout=buf.getvalue(),
                     bars=list(RecordingBar.bars))
    return _done
