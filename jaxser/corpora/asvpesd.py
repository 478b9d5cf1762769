"""ASVP-ESD, the Audio, Speech and Vision Processing Lab Emotional Sound database (Landry, He &
Xie; South China University of Technology; zenodo.org/record/7132783, `ASVP-ESD-Update.zip`):
speech and non-speech emotional sounds collected from films, TV shows, YouTube and sound
websites, non-scripted and in several languages, 16 kHz. Files sit in `Audio/actor_<n>/`
(and `Bonus/actor_<n>/`, which adds babies' voices) and are named with RAVDESS-like numeric
fields separated by `-`:

    03-<vocal channel>-<emotion>-<intensity>-<statement>-<actor>-<age>-<source>[-<language>][-...].wav

e.g. `03-01-06-01-02-12-02-01-01-16.wav`. Modality 03 = audio only; vocal channel 01 = speech,
02 = non-speech (kept in the extra column `vocal_channel`, "speech" or "non-speech", so
either part can be selected); actor: odd numbers female, even male (README); age 01 above
65, 02 20-64, 03 under 20, 04 baby (`age` column, "" for other values). The trailing fields
vary in number (eight to twelve fields occur) and are not used.

Emotions (README): 01 boredom/sigh, 02 neutral/calm, 03 happy/laugh, 04 sad/cry, 05 angry/
grunt/frustration, 06 fearful/scream/panic, 07 disgust/dislike/contempt, 08 surprised/gasp/
amazed, 09 excited, 10 pleasure, 11 pain/groan, 12 disappointment/disapproval, 13 breath.
Beyond the nine canonical emotions they take EmoBox's class names: excited, pleasure,
"pain, groan", "disappointment, disapproval", breath.

Quirks of the release, handled on purpose:
- one file, `Bonus/actor_200/03-01-17-01-02-200-05-02-01-12.wav`, carries emotion code 17,
  which the README does not define; EmoBox's label map calls it UnKnown. It is left out by
  default and counted (`excluded=Counter()`, the card's excluded table): a one-utterance class
  of no emotion would only disturb same-corpus folds. `include_unknown=True` keeps it as
  `unknown`, as EmoBox does.
- the actor folder and the actor field disagree for a few files (e.g.
  `actor_119/03-02-07-01-20-110-02-02-17.wav`), and 171 files sit in a folder named `actor_`
  with no number; the speaker is the actor field of the name, never the folder.
- some fields carry a trailing space (`...-14 -...`); fields are read as numbers.
The language field is not reliable across the release, so `language` is "und" (undetermined).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from jaxser.corpora.schema import CorpusError, find_audio, map_label, parse_files

NAME = "asvpesd"
LANGUAGE = "und"
SAMPLE_RATE = 16_000
LABEL_MAP = {"01": "boredom", "02": "neutral", "03": "happy", "04": "sad", "05": "angry", "06": "fear",
             "07": "disgust", "08": "surprise", "09": "excited", "10": "pleasure", "11": "pain, groan",
             "12": "disappointment, disapproval", "13": "breath", "17": "unknown"}
#: Codes outside the README, left out unless asked for (`include_unknown=True`).
UNDOCUMENTED = ("17",)
CHANNELS = {"01": "speech", "02": "non-speech"}
AGES = {"01": "above 65", "02": "20-64", "03": "under 20", "04": "baby"}
#: Size and hours as EmoBox's list of the release counts them; speakers, licence, source from the owners.
CARD = {"utterances": 13964, "hours": 17.98, "speakers": "about 130 actor numbers (collected, not recruited)",
         "licence": "? (see the Zenodo record)", "source": "zenodo.org/record/7132783 (ASVP-ESD-Update.zip)"}


def label_map(*, include_unknown: bool = False) -> dict[str, str]:
    """The code -> emotion map in force (code 17 only with `include_unknown`)."""
    return {k: v for k, v in LABEL_MAP.items() if include_unknown or k not in UNDOCUMENTED}


def parse(path: Path, mapping: dict | None = None) -> dict | str:
    """The record of one file, or its emotion code when the map in force leaves it out."""
    fields = [f.strip() for f in path.stem.split("-")]
    if not 8 <= len(fields) <= 12 or not all(f.isdigit() for f in fields):
        raise CorpusError(f"{NAME}: {path} does not follow ASVP-ESD naming: 8 to 12 numeric fields separated by '-' "
                          "(e.g. 03-01-06-01-02-12-02-01-01-16.wav)")
    modality, channel, code, _intensity, _statement, actor, age = fields[:7]
    if modality != "03":
        raise CorpusError(f"{NAME}: {path}: modality {modality!r} is not 03 (audio only)")
    if channel not in CHANNELS:
        raise CorpusError(f"{NAME}: {path}: vocal channel {channel!r} is not 01 (speech) or 02 (non-speech)")
    mapping = LABEL_MAP if mapping is None else mapping
    if code in UNDOCUMENTED and code not in mapping:
        return code
    emotion = map_label(NAME, code, mapping, path)
    spk = str(int(actor))
    return {"utt": path.stem, "path": str(path), "speaker": spk, "gender": "female" if int(actor) % 2 else "male",
            "language": LANGUAGE, "emotion": emotion, "raw_label": code, "text": "",
            "vocal_channel": CHANNELS[channel], "age": AGES.get(age, "")}


def records(root, *, include_unknown: bool = False, errors: list | None = None,
            excluded: Counter | None = None) -> list[dict]:
    """One record per WAV below root (code 17 only with `include_unknown`); `errors` collects
    per-file CorpusErrors instead of raising, `excluded` counts the codes left out."""
    mapping = label_map(include_unknown=include_unknown)
    return parse_files(find_audio(root, NAME), lambda p: parse(p, mapping), errors, excluded)
