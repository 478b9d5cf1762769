"""IEMOCAP (Busso et al. 2008): 5 dyadic sessions, one female and one male actor each, 16 kHz.

Labels come from the evaluation files, not from file names: every
`Session*/dialog/EmoEvaluation/<dialog>.txt` holds one summary line per turn,

    [6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]

(start - end seconds, utterance id, majority category, mean valence/activation/dominance),
followed by the individual raters' lines (C-E1:, A-E3:, ...) which are skipped here. The audio
of that turn is `Session*/sentences/wav/<dialog>/<utterance>.wav`; transcripts are in
`Session*/dialog/transcriptions/<dialog>.txt` as `Ses01F_impro01_F000 [006.2901-008.2357]: text`.

Speaker: the session plus the gender letter of the utterance's own speaker, i.e. the last
F/M before the index (`Ses01F_impro01_M003` is the male actor of session 1), not the `F`/`M`
after `Ses01`, which only says who wore the motion-capture markers. `fold_group` makes the
protocol's speaker-independent folds leave-one-session-out.

Categories (`neu hap sad ang exc fru sur fea dis oth xxx`): seven have a canonical
counterpart. `exc` (excited) maps to happy only with `merge_excited=True` (the common
4-class practice); otherwise it is excluded, like `fru` (frustrated, not canonical), `oth`
(other) and `xxx` (no majority). Excluded utterances are counted (pass `excluded=Counter()`),
never silently relabelled. Any other code is an error.

The mean valence, activation and dominance of the summary line (the raters' 1-5 scales) are
the float columns `valence`, `arousal` (IEMOCAP's "activation") and `dominance`. With
`all_rated=True` the utterances excluded from classification are kept too, with emotion ""
and their ratings (a dimensional study uses every rated turn).
"""
from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

from jaxser.corpora.schema import CorpusError, UnknownLabelError, dimension_value, find_audio

NAME = "iemocap"
LANGUAGE = "en"
SAMPLE_RATE = 16_000
#: The evaluators' scales for the summary line's mean ratings (Busso et al. 2008: 1 to 5).
DIMENSIONS = {"arousal": (1.0, 5.0), "valence": (1.0, 5.0), "dominance": (1.0, 5.0)}
#: Codes with a canonical counterpart (exc is added by merge_excited=True).
LABEL_MAP = {"neu": "neutral", "hap": "happy", "sad": "sad", "ang": "angry", "sur": "surprise",
             "fea": "fear", "dis": "disgust"}
#: Every category code the IEMOCAP release documents, with its meaning.
CODES = {"neu": "neutral", "hap": "happiness", "sad": "sadness", "ang": "anger", "exc": "excited",
         "fru": "frustration", "sur": "surprise", "fea": "fear", "dis": "disgust", "oth": "other",
         "xxx": "no majority agreement"}

_LINE_RE = re.compile(r"^\[\s*(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)\s*\]\s+(\S+)\s+(\S+)\s+\[([^\]]*)\]\s*$")
_UTT_RE = re.compile(r"^Ses(0[1-9])[FM]_((?:impro|script)[0-9A-Za-z_]*?)_([FM])([0-9X]{2,}[0-9]?)$")
_TRN_RE = re.compile(r"^(\S+)\s+\[[\d.]+\s*-\s*[\d.]+\]:\s?(.*)$")


def label_map(*, merge_excited: bool = False) -> dict[str, str]:
    """The code -> canonical map in force for these options (excluded codes are absent)."""
    return {**LABEL_MAP, "exc": "happy"} if merge_excited else dict(LABEL_MAP)


def fold_group(speaker: str) -> str:
    """Sessions are the fold unit: `Ses01F` and `Ses01M` share dialogues and their audio."""
    return speaker[:5]


def parse_utterance(utt: str, where) -> dict:
    """Session, dialog, speaker, gender and improvised/scripted of an utterance id."""
    m = _UTT_RE.match(utt)
    if not m:
        raise CorpusError(f"{NAME}: {where}: {utt!r} is not an IEMOCAP utterance id "
                          "(Ses0<n><F|M>_<impro|script><dialog>_<F|M><index>, e.g. Ses01F_impro01_F000)")
    session, _dialog_part, g, _index = m.groups()
    dialog = utt.rsplit("_", 1)[0]
    return {"session": f"Ses{session}", "dialog": dialog, "speaker": f"Ses{session}{g}",
            "gender": "female" if g == "F" else "male",
            "improvised": "true" if _dialog_part.startswith("impro") else "false"}


def _walk(root, want_dir: tuple[str, str]) -> list[Path]:
    """Text files directly inside folders `<a>/<b>` (e.g. dialog/EmoEvaluation) anywhere below root."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__MACOSX")
        p = Path(dirpath)
        if (p.parent.name, p.name) == want_dir:
            out += [p / f for f in sorted(filenames) if f.endswith(".txt") and not f.startswith(".")]
    return out


def read_evaluation(path) -> list[tuple[str, str, tuple[str, str, str], int]]:
    """(utterance, code, (valence, activation, dominance), line number) of each summary line."""
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line.startswith("["):
                continue  # header, blank and per-rater (C-E1:, A-F1:, ...) lines
            m = _LINE_RE.match(line)
            if not m:
                raise CorpusError(f"{NAME}: {path} line {n}: cannot parse evaluation line {line!r} (expected "
                                  "'[start - end]<TAB>utterance<TAB>code<TAB>[val, act, dom]')")
            _, _, utt, code, vad = m.groups()
            dims = [v.strip() for v in vad.split(",")]
            if len(dims) != 3:
                raise CorpusError(f"{NAME}: {path} line {n}: expected 3 dimensional values, got {vad!r}")
            out.append((utt, code, tuple(dims), n))
    return out


def read_transcripts(root) -> dict[str, str]:
    """Utterance id -> transcript from every dialog/transcriptions/*.txt below root."""
    text = {}
    for path in _walk(root, ("dialog", "transcriptions")):
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = _TRN_RE.match(line.strip())
                if m:
                    text[m.group(1)] = m.group(2).strip()
    return text


def _audio_index(root) -> dict[str, Path]:
    """Utterance wav by stem. Prefer sentences/wav/ (dialog/wav/ holds whole dialogues)."""
    index: dict[str, Path] = {}
    for p in find_audio(root, NAME):
        prev = index.get(p.stem)
        if prev is None or ("sentences" in p.parts and "sentences" not in prev.parts):
            index[p.stem] = p
        elif ("sentences" in p.parts) == ("sentences" in prev.parts):
            raise CorpusError(f"{NAME}: utterance {p.stem} has two audio files: {prev} and {p}")
    return index


def records(root, *, merge_excited: bool = False, transcripts: bool = True, all_rated: bool = False,
            errors: list | None = None, excluded: Counter | None = None) -> list[dict]:
    """One record per labelled utterance with a canonical label.

    `errors`: a list to collect per-utterance CorpusErrors in (those utterances are skipped)
    instead of raising the first. `excluded`: a Counter that receives the codes of utterances
    left out by design (xxx, oth, fru, and exc unless merge_excited); with `all_rated` they are
    kept instead, with emotion "" (rated only dimensionally), and not counted.
    """
    mapping = label_map(merge_excited=merge_excited)
    evals = _walk(root, ("dialog", "EmoEvaluation"))
    if not evals:
        raise CorpusError(f"{NAME}: no Session*/dialog/EmoEvaluation/*.txt found below {root}; IEMOCAP labels "
                          "come from those files (unpack the full release, not only the wav files)")
    audio = _audio_index(root)
    text = read_transcripts(root) if transcripts else {}
    out, seen = [], {}
    for ev in evals:
        try:
            lines = read_evaluation(ev)
        except CorpusError as e:
            if errors is None:
                raise
            errors.append(e)
            continue
        for utt, code, (val, act, dom), n in lines:
            where = f"{ev} line {n}"
            try:
                if code not in CODES:
                    raise UnknownLabelError(NAME, code, where, CODES)
                info = parse_utterance(utt, where)
                if utt in seen:
                    raise CorpusError(f"{NAME}: {utt} is labelled twice: {seen[utt]} and {where}")
                seen[utt] = where
                dims = {k: dimension_value(NAME, k, x, where, DIMENSIONS)
                        for k, x in (("arousal", act), ("valence", val), ("dominance", dom))}
                if code not in mapping and not (all_rated and any(v == v for v in dims.values())):
                    if excluded is not None:
                        excluded[code] += 1
                    continue
                if utt not in audio:
                    raise CorpusError(f"{NAME}: {where} labels {utt} but no {utt}.wav exists below {root} "
                                      f"(expected Session*/sentences/wav/{info['dialog']}/{utt}.wav)")
            except CorpusError as e:
                if errors is None:
                    raise
                errors.append(e)
                continue
            out.append({"utt": utt, "path": str(audio[utt]), "speaker": info["speaker"], "gender": info["gender"],
                        "language": LANGUAGE, "emotion": mapping.get(code, ""), "raw_label": code,
                        "text": text.get(utt, ""), "session": info["session"], "dialog": info["dialog"],
                        "improvised": info["improvised"], **dims})
    return out
