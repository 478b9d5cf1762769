"""The cross-corpus SER benchmark: `python -m experiments.cross_corpus [options]`.

With no arguments it runs the embedded default (jaxser/study/configs/default.toml):
synthetic corpora, encoders that need no download, FCN and CNN heads, 5 seeds, same-corpus
folds, every ordered cross-corpus pair and leave-one-corpus-out, and writes a run directory
(manifest.json, predictions/, results.csv/json, report.md, figures/, table.tex).
`--config experiments/configs/paper.toml` runs the paper's study. The study itself lives in
`jaxser.study`; this is the same command line as `jaxser run`.
"""
from __future__ import annotations

import sys

from jaxser.study.run import main as run_main

PROG = "python -m experiments.cross_corpus"


def main(argv=None) -> int:
    return run_main(argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
