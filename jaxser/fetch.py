"""`jaxser fetch`: download and verify every checkpoint a study (or a list of encoders) needs.

Run it where the Hub can be reached; compute nodes sharing the same caches (`HF_HOME`,
`TFHUB_CACHE_DIR`) then run the study with `HF_HUB_OFFLINE=1`. Each encoder is loaded the way a
run loads it (weights read, keys and shapes checked against its config), so a file that is
missing or damaged shows up here rather than hours into a run. Every problem is listed, not
only the first.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def fetch(names: list[str], log=print, *, update: bool = False) -> list[str]:
    """Load each encoder once (downloading what is missing); the problems, one line each.
    `update`: repos the registry does not pin resolve `main` again and their recorded commit moves."""
    import contextlib

    from jaxser import encoders
    from jaxser.encoders import hf

    problems = []
    for name in dict.fromkeys(names):
        try:
            with hf.updating_pins() if update else contextlib.nullcontext():
                enc = encoders.load(name)
        except encoders.EncoderError as e:
            problems.append(f"{name}: {e}")
            log(f"{name}: FAILED")
            continue
        prov = enc.provenance or {}
        where = (f"{prov['repo']}@{prov['revision']}" if prov.get("repo") else prov.get("handle")
                 or prov.get("folder") or "built in (nothing to download)")
        files = prov.get("sha256") or {}
        size = sum(Path(prov["folder"], f).stat().st_size for f in files) / 2**20 if files else 0
        log(f"{name}: ok, {where}" + (f", {len(files)} weight file(s), {size:,.0f} MiB" if files else ""))
        del enc
    return problems


def main(argv=None) -> int:
    from jaxser.errors import UserError, add_debug_option

    p = argparse.ArgumentParser(prog="jaxser fetch", allow_abbrev=False,
                                description="Download and verify the checkpoints of a study's encoders (or of the "
                                            "encoders named), so that compute nodes can run with HF_HUB_OFFLINE=1.")
    p.add_argument("encoders", nargs="*", metavar="ENCODER",
                   help="registry names, Hub ids (owner/name[@revision]), TF-Hub handles or folders")
    p.add_argument("--config", help="a study config (a path, or a shipped name such as paper): fetch its encoders")
    p.add_argument("--update", action="store_true",
                   help="repos without a pinned revision: fetch their current main and record its commit "
                        "(without it, such a repo stays at the commit it was first fetched at)")
    add_debug_option(p)
    args = p.parse_args(argv)
    names = list(args.encoders)
    if args.config is not None:
        from jaxser.study.config import load_config

        names = list(load_config(args.config).encoders) + names
    if not names:
        p.error("name encoders or give --config")
    problems = fetch(names, update=args.update)
    if problems:
        raise UserError(f"{len(problems)} of {len(set(names))} encoders cannot be had:\n  " + "\n  ".join(problems))
    return 0


if __name__ == "__main__":
    from jaxser.errors import report

    sys.exit(report(main))
