"""The `jaxser` command: `jaxser run | embed | describe | corpora | predict | fetch`, each with its own `--help`.

Every sub-command reports a problem the user can fix as one line, `error: <what> — <what to
do>`, on stderr with exit status 2 (`jaxser.errors.report`); `--debug` (or JAXSER_DEBUG=1)
shows the traceback instead.
"""
from __future__ import annotations

import argparse
import importlib
import sys

#: sub-command -> (module whose main(argv) runs it, one-line summary)
COMMANDS = {
    "run": ("jaxser.study.run", "run (or resume) a cross-corpus benchmark study; the default is the embedded "
                                "synthetic study"),
    "embed": ("jaxser.embed", "extract and cache the embeddings of corpora"),
    "describe": ("jaxser.corpora.__main__", "print a corpus card: counts, speakers, durations, problems"),
    "corpora": ("jaxser.corpora.__main__", "list every corpus jaxser loads (names, languages, sizes, licences)"),
    "predict": ("jaxser.predict", "predict the emotion of audio files with a model a study saved"),
    "fetch": ("jaxser.fetch", "download and verify the checkpoints of a study's encoders (for offline compute nodes)"),
}


def parser() -> argparse.ArgumentParser:
    from jaxser import __version__
    from jaxser.errors import add_debug_option

    p = argparse.ArgumentParser(
        allow_abbrev=False, prog="jaxser", description="Cross-corpus speech emotion recognition benchmarks in JAX.",
        epilog="`jaxser COMMAND --help` lists a command's options. Errors are one line on stderr (exit 2); "
               "--debug or JAXSER_DEBUG=1 shows the traceback.")
    p.add_argument("--version", action="version", version=f"jaxser {__version__}")
    add_debug_option(p)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True, help="what to do")
    for name, (_, summary) in COMMANDS.items():
        sub.add_parser(name, help=summary, add_help=False)  # the command's own parser gives its help
    return p


def main(argv=None) -> int:
    from jaxser.errors import report

    argv = list(sys.argv[1:] if argv is None else argv)
    # options before the command belong to jaxser; everything after it to the command
    at = next((i for i, a in enumerate(argv) if a in COMMANDS), len(argv))
    if at == len(argv) and not {"-h", "--help", "--version"} & set(argv):
        parser().print_help(sys.stderr)  # no command: show them all, as a usage error
        return 2
    a = parser().parse_args(argv[:at + 1])  # --debug takes effect here
    rest = argv[at + 1:]
    if a.command == "describe":
        rest = ["describe", *rest]
    elif a.command == "corpora":
        rest = ["list", *rest]
    module = COMMANDS[a.command][0]
    return report(lambda args: importlib.import_module(module).main(args), rest)


if __name__ == "__main__":
    sys.exit(main())
