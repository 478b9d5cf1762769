"""`jaxser` command: `jaxser embed ...`, `jaxser describe ...`, `jaxser run ...`."""
from __future__ import annotations

import sys


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {
        "embed": "jaxser.embed",
        "describe": "jaxser.corpora.__main__",
        "run": "jaxser.study.run",
    }
    if not argv or argv[0] not in commands:
        print("usage: jaxser {embed|describe|run} ...\n"
              "  embed     extract and cache embeddings (python -m jaxser.embed)\n"
              "  describe  corpus card (python -m jaxser.corpora describe)\n"
              "  run       the cross-corpus benchmark (a study; --help lists its options)", file=sys.stderr)
        return 2
    import importlib

    from jaxser.errors import report

    rest = argv[1:]
    if argv[0] == "describe":
        rest = ["describe", *rest]
    # every sub-command's user errors (corpus, audio, encoder, cache, run directory, config) are
    # one line on stderr and exit 2, also where a sub-command does not report them itself
    return report(lambda a: importlib.import_module(commands[argv[0]]).main(a), rest)


if __name__ == "__main__":
    sys.exit(main())
