"""`python -m jaxser.corpora describe NAME=ROOT [NAME=ROOT ...]` prints each corpus' card.

A synthetic corpus is named alone (no `=ROOT`). Loader options: `-o NAME.key=value` (value
parsed as JSON when it can be, e.g. `-o iemocap.merge_excited=true -o baved.level_map=strict`).
Exit status: 0, or 1 with `--strict` when any card lists problems, 2 on usage errors and on a
corpus root that does not exist or holds no audio (one line on stderr).
"""
from __future__ import annotations

import argparse
import json
import os
import sys


def _parse_options(items, ap: argparse.ArgumentParser) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        name, dot, opt = key.partition(".")
        if not sep or not dot or not name or not opt:
            ap.error(f"-o {item!r}: expected NAME.key=value, e.g. -o iemocap.merge_excited=true")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        out.setdefault(name.strip().lower(), {})[opt] = parsed
    return out


def main(argv=None) -> int:
    from jaxser.corpora import canonical_name
    from jaxser.corpora.card import describe, render, to_jsonable, write_csv
    from jaxser.corpora.schema import CorpusError

    ap = argparse.ArgumentParser(allow_abbrev=False, prog="python -m jaxser.corpora")
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("describe", prog="jaxser describe",
                       help="corpus card: counts, speakers, durations, sample rates, problems",
                       description="Print each corpus' card: counts, speakers, durations, sample rates, problems.")
    d.add_argument("corpora", nargs="+", metavar="NAME=ROOT", help="registry name and folder (synthetic: NAME)")
    d.add_argument("-o", "--option", action="append", metavar="NAME.key=value", help="loader option")
    d.add_argument("--no-decode", action="store_true", help="read headers only (faster; misses all-zero files)")
    d.add_argument("--no-hash", action="store_true", help="skip the duplicate-content check")
    d.add_argument("--json", metavar="PATH", help="also write all cards as JSON ('-' for stdout, replaces text)")
    d.add_argument("--csv-dir", metavar="DIR", help="also write every table as DIR/<corpus>_<table>.csv")
    d.add_argument("--max-rows", type=int, default=20, metavar="N", help="rows per table in the text output (default 20)")
    d.add_argument("--strict", action="store_true", help="exit 1 when any problem is found")
    args = ap.parse_args(argv)

    opts = _parse_options(args.option, d)
    cards, any_problem = {}, False
    for spec in args.corpora:
        name, sep, root = spec.partition("=")
        key = canonical_name(name)
        try:
            card = describe(key, os.path.expanduser(root) if sep else None, decode=not args.no_decode,
                            hashes=not args.no_hash, **opts.get(key, {}))
        except (CorpusError, TypeError) as e:
            print(f"error: {spec}: {e}", file=sys.stderr)
            return 2
        label = card["summary"].iloc[0]["corpus"]
        cards[label] = card
        any_problem |= not card["problems"].empty
        if args.json != "-":
            print(render(card, max_rows=args.max_rows), end="\n\n")
        if args.csv_dir:
            write_csv(card, args.csv_dir, label)
    if args.json:
        payload = json.dumps({k: to_jsonable(v) for k, v in cards.items()}, indent=1, ensure_ascii=False)
        if args.json == "-":
            print(payload)
        else:
            from jaxser.io import atomic_write_text

            try:
                atomic_write_text(args.json, payload + "\n")
            except OSError as e:
                print(f"error: --json {args.json}: cannot write it ({e.strerror or e}); choose a writable path",
                      file=sys.stderr)
                return 2
    return 1 if (args.strict and any_problem) else 0


def entry(argv=None) -> int:
    """`main` with user errors reported as one line and exit 2 (`jaxser.errors.report`)."""
    from jaxser.errors import report

    return report(main, argv)


if __name__ == "__main__":
    sys.exit(entry())
