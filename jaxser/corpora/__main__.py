"""`python -m jaxser.corpora describe NAME=ROOT [NAME=ROOT ...]` prints each corpus' card;
`python -m jaxser.corpora list` (`jaxser corpora`) lists every corpus jaxser loads.

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


def listing() -> str:
    """One line per registry corpus: name, language and its loader's CARD (published size, licence, source)."""
    from jaxser import corpora
    from jaxser.corpora.synthetic import CORPORA

    lines = [f"{'name':<16}{'language':<10}{'utterances':>11}{'hours':>8}  {'speakers':<22}licence; source"]
    for name in corpora.available():
        if name in CORPORA:
            lines.append(f"{name:<16}{'synthetic':<10}{'':>11}{'':>8}  {'':<22}generated, no download")
            continue
        mod = corpora.module(name)
        card = getattr(mod, "CARD", None) or {}
        lang = getattr(mod, "LANGUAGE", "") or ("yours" if name == "manifest" else "")
        lines.append(f"{name:<16}{lang:<10}{str(card.get('utterances', '')):>11}{str(card.get('hours', '')):>8}  "
                     f"{str(card.get('speakers', '')):<22}" + ("; ".join(str(card[k]) for k in ("licence", "source")
                                                                         if card.get(k)) or "see docs/corpora.md"))
    return "\n".join(lines)


def main(argv=None) -> int:
    from jaxser.corpora import available, canonical_name
    from jaxser.corpora.card import describe, render, to_jsonable, write_csv
    from jaxser.corpora.manifest import find_manifest
    from jaxser.corpora.schema import CorpusError
    from jaxser.errors import add_debug_option, debug

    ap = argparse.ArgumentParser(allow_abbrev=False, prog="python -m jaxser.corpora")
    sub = ap.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", prog="jaxser corpora", help="every corpus jaxser loads: name, language, size, licence",
                   description="List every corpus jaxser loads (registry names), with what its owners publish "
                               "where the loader records it: size, hours, speakers, licence, where to get it.")
    d = sub.add_parser("describe", prog="jaxser describe",
                       help="corpus card: counts, speakers, durations, sample rates, problems",
                       description="Print each corpus' card: counts, speakers, durations, sample rates, problems.")
    d.add_argument("corpora", nargs="+", metavar="NAME=ROOT", help="registry name and folder (synthetic: NAME)")
    d.add_argument("-o", "--option", action="append", metavar="NAME.key=value", help="loader option")
    d.add_argument("--no-decode", action="store_true", help="read headers only (faster; misses all-zero files)")
    d.add_argument("--no-hash", action="store_true", help="skip the duplicate-content check")
    d.add_argument("--json", metavar="PATH", help="also write all cards as JSON ('-' for stdout, replaces text)")
    d.add_argument("--csv-dir", metavar="DIR", help="also write every table as DIR/<corpus>_<table>.csv")
    d.add_argument("--max-rows", type=int, default=20, metavar="N",
                   help="rows per table in the text output (default 20)")
    d.add_argument("--strict", action="store_true", help="exit 1 when any problem is found")
    for p in (ap, ls, d):
        add_debug_option(p)
    args = ap.parse_args(argv)
    for flag, value in (("--json", getattr(args, "json", None)), ("--csv-dir", getattr(args, "csv_dir", None))):
        if value == "":
            d.error(f"{flag} needs a path (got an empty one)")
    if args.command == "list":
        print(listing())
        return 0

    opts = _parse_options(args.option, d)
    cards, any_problem = {}, False
    for spec in args.corpora:
        name, sep, root = spec.partition("=")
        key = canonical_name(name)
        options = opts.get(key, {})
        if key not in available() and sep and os.path.exists(os.path.expanduser(root)):
            try:  # any other name with a manifest: your own corpus, as `jaxser run --corpus NAME=PATH` takes it
                find_manifest(os.path.expanduser(root))
                key, options = "manifest", {"name": name, **options}
            except CorpusError:
                pass
        try:
            card = describe(key, os.path.expanduser(root) if sep else None, decode=not args.no_decode,
                            hashes=not args.no_hash, **options)
        except (CorpusError, TypeError) as e:
            if debug():
                raise
            print(f"error: {spec}: {e}", file=sys.stderr)
            return 2
        label = card["summary"].iloc[0]["corpus"]
        cards[label] = card
        any_problem |= not card["problems"].empty
        if args.json != "-":
            print(render(card, max_rows=args.max_rows), end="\n\n")
        if args.csv_dir is not None:
            write_csv(card, args.csv_dir, label)
    if args.json is not None:
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
