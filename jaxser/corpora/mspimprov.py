"""MSP-IMPROV (Busso et al. 2017): six dyadic sessions of two actors each (F01/M01 ... F06/M06)
improvising scenarios built around target sentences, rated by crowd workers on categories and
on arousal, valence and dominance; WAV audio.

Layout of the release: the audio `session1/S01A/P/MSP-IMPROV-S01A-F01-P-FM01.wav` (under an
`Audio/` folder in some copies; the videos are `.avi` and not read) and `Evaluation.txt`,
which holds per utterance one summary line followed by the raters' lines:

    UTD-IMPROV-S01A-F01-P-FM01.avi; N; A:3.000000; V:3.200000; D:3.000000 ; N:3.400000;
    rater01; Neutral; Neutral; A:3.000000; V:3.000000; D:3.000000; N:3.000000;

The summary gives the consensus category (A angry, H happy, S sad, N neutral, O other, X no
agreement; O and X kept under EmoBox's names `other` and `no-agreement`) and the mean ratings
on the five-point scales: A arousal, V valence, D dominance, N naturalness (NaN where missing).

The file name says `S<sentence><intended emotion>-<F|M><session>-<recording>-<pair>`: the
speaker is `F01`..`M06` (gender from its letter), the session is its number (the fold unit:
both actors of a session share its dialogues), the recording type is R (target sentence read),
T (target sentence within the improvisation), S (other turns of the improvisation) or
P (natural interaction between takes); `acted` is the emotion the scenario asked for.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path

from jaxser.corpora.schema import CorpusError, dimension_value, find_audio, find_file, map_label

NAME = "mspimprov"
LANGUAGE = "en"
LABEL_MAP = {"A": "angry", "H": "happy", "S": "sad", "N": "neutral", "O": "other", "X": "no-agreement"}
#: The raters' five-point scales of the summary line's A, V and D.
DIMENSIONS = {"arousal": (1.0, 5.0), "valence": (1.0, 5.0), "dominance": (1.0, 5.0)}
RECORDINGS = {"R": "read", "T": "target", "S": "improvised", "P": "natural"}
CARD = dict(utterances=8438, hours=9.0, speakers=12,
            licence="academic licence agreement with The University of Texas at Dallas (MSP lab)",
            source="https://www.lab-msp.com/MSP/MSP-Improv.html")
_NUM = r"(\d+(?:\.\d+)?|NaN)"
_SUMMARY_RE = re.compile(rf"^UTD-IMPROV-([A-Z0-9-]+)\.avi\s*;\s*([A-Z])\s*;\s*A:\s*{_NUM}\s*;\s*V:\s*{_NUM}\s*;"
                         rf"\s*D:\s*{_NUM}\s*;\s*N:\s*{_NUM}\s*;?\s*$")
_UTT_RE = re.compile(r"^MSP-IMPROV-S(\d{2})([AHSN])-([FM])(0[1-6])-([RTSP])-([A-Z0-9]+)$")


def fold_group(speaker: str) -> str:
    """Sessions are the fold unit: both actors of a session appear in its dialogues."""
    return f"session{speaker[1:]}"


def parse_utterance(utt: str, where) -> dict:
    m = _UTT_RE.match(utt)
    if not m:
        raise CorpusError(f"{NAME}: {where}: {utt!r} is not an MSP-IMPROV name "
                          "(MSP-IMPROV-S<NN><A|H|S|N>-<F|M><0N>-<R|T|S|P>-<pair>, e.g. MSP-IMPROV-S01A-F01-P-FM01)")
    sentence, acted, g, session, rec, _ = m.groups()
    return dict(sentence=f"S{sentence}", acted=LABEL_MAP[acted], speaker=f"{g}{session}",
                gender="female" if g == "F" else "male", session=f"session{int(session)}", recording=rec)


def read_evaluation(path) -> list[tuple[str, str, tuple[str, str, str, str], int]]:
    """(utterance, category, (A, V, D, N), line number) of each summary line of Evaluation.txt."""
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, start=1):
            line = line.strip()
            if not line.startswith("UTD-IMPROV-"):
                continue  # rater lines, blank lines
            m = _SUMMARY_RE.match(line)
            if not m:
                raise CorpusError(f"{NAME}: {path} line {n}: cannot parse summary line {line!r} (expected "
                                  "'UTD-IMPROV-<name>.avi; <category>; A:<a>; V:<v>; D:<d> ; N:<n>;')")
            name, code, a, v, d, nat = m.groups()
            out.append((f"MSP-IMPROV-{name}", code, (a, v, d, nat), n))
    return out


def records(root, *, errors: list | None = None, unlabelled: list | None = None) -> list[dict]:
    """One record per summary line of Evaluation.txt (its WAV must exist). WAVs that no
    summary line rates are not used: counted in a warning, listed in `unlabelled`."""
    ev = find_file(root, NAME, "Evaluation.txt")
    audio: dict[str, list[Path]] = {}
    for p in find_audio(root, NAME):
        audio.setdefault(p.stem, []).append(p)
    out, seen = [], {}
    for utt, code, (a, v, d, nat), n in read_evaluation(ev):
        where = f"{ev} line {n}"
        try:
            info = parse_utterance(utt, where)
            if utt in seen:
                if seen[utt][1:] == (code, a, v, d, nat):
                    continue  # the release repeats some blocks verbatim
                raise CorpusError(f"{NAME}: {where}: {utt} is rated again, differently (first at line {seen[utt][0]})")
            seen[utt] = (n, code, a, v, d, nat)
            emotion = map_label(NAME, code, LABEL_MAP, where)
            dims = {k: dimension_value(NAME, k, x, where, DIMENSIONS)
                    for k, x in (("arousal", a), ("valence", v), ("dominance", d))}
            found = audio.get(utt, [])
            if len(found) != 1:
                raise CorpusError(f"{NAME}: {where}: " + (
                    f"no {utt}.wav below {root} (expected session{int(utt[17:19])}/{utt[11:15]}/{info['recording']}/)"
                    if not found else f"{utt}.wav found {len(found)} times ({', '.join(map(str, found))})"))
            out.append(dict(utt=utt, path=str(found[0].resolve()), speaker=info["speaker"], gender=info["gender"],
                            language=LANGUAGE, emotion=emotion, raw_label=code, text=info["sentence"],
                            session=info["session"], recording=info["recording"], acted=info["acted"],
                            naturalness=nat, **dims))
        except CorpusError as e:
            if errors is None:
                raise
            errors.append(e)
    spare = sorted(str(p) for stem, ps in audio.items() if stem not in seen for p in ps)
    if unlabelled is not None:
        unlabelled.extend(spare)
    if spare:
        warnings.warn(f"{NAME}: {len(spare)} WAV file(s) have no summary line in {ev} and are not used "
                      f"(e.g. {spare[0]})", stacklevel=2)
    return out
