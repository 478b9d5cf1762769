"""Tiny trees of IEMOCAP and the multilingual seed-study corpora (URDU, BAVED, AESDD, ShEMO, SUBESCO,
CaFE) with their releases' real file names (and IEMOCAP's real EmoEvaluation/transcription line
formats), short WAVs at each corpus' native rate. Shared by the loader, audio and card tests."""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from jaxser import audio


def tone(path: Path, sr: int, secs: float = 0.2, freq: float | None = None) -> Path:
    """A short sine; its pitch depends on the file name so no two fixture files are identical."""
    if freq is None:
        freq = 100.0 + zlib.crc32(Path(path).name.encode()) % 100_000 / 200
    t = np.arange(int(secs * sr)) / sr
    return audio.write(path, 0.3 * np.sin(2 * np.pi * freq * t), sr)


def by_utt(ds) -> dict[str, dict]:
    return {r["id"].split("/", 1)[1]: r for r in ds}


# ---------------------------------------------------------------- IEMOCAP

EVAL_HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"


def eval_block(start, end, utt, code, vad=("2.5000", "2.5000", "2.5000")):
    return (f"[{start} - {end}]\t{utt}\t{code}\t[{vad[0]}, {vad[1]}, {vad[2]}]\n"
            "C-E2:\tNeutral;\t()\nC-E3:\tNeutral;\t()\nA-E3:\tval 3; act 2; dom  2;\t()\n\n")


IEMOCAP_UTTS = {  # utterance -> (session folder, code)
    "Ses01F_impro01_F000": ("Session1", "neu"),
    "Ses01F_impro01_M001": ("Session1", "fru"),
    "Ses01F_impro01_M002": ("Session1", "ang"),
    "Ses01F_impro01_F003": ("Session1", "sad"),
    "Ses02M_script01_1_F003": ("Session2", "hap"),
    "Ses02M_script01_1_M004": ("Session2", "exc"),
    "Ses02M_script01_1_M005": ("Session2", "xxx"),
    "Ses02M_script01_1_F006": ("Session2", "sur"),
}


def make_iemocap(root: Path, *, extra_lines: str = "", skip_wav: str | None = None) -> Path:
    dialogs: dict[tuple[str, str], list[str]] = {}
    for i, (utt, (sess, code)) in enumerate(IEMOCAP_UTTS.items()):
        dialog = utt.rsplit("_", 1)[0]
        dialogs.setdefault((sess, dialog), []).append(eval_block(f"{2 * i + 0.5:.4f}", f"{2 * i + 1.9:.4f}", utt, code,
                                                                  (f"{1.5 + i % 3:.4f}", "3.0000", "2.5000")))
        if utt != skip_wav:
            tone(root / sess / "sentences" / "wav" / dialog / f"{utt}.wav", 16_000, freq=200 + 10 * i)
    for (sess, dialog), blocks in dialogs.items():
        ev = root / sess / "dialog" / "EmoEvaluation" / f"{dialog}.txt"
        ev.parent.mkdir(parents=True, exist_ok=True)
        ev.write_text(EVAL_HEADER + "".join(blocks) + extra_lines)
        # per-rater files in sub-folders must be ignored
        cat = ev.parent / "Categorical" / f"{dialog}_e2_cat.txt"
        cat.parent.mkdir(exist_ok=True)
        cat.write_text(f"{dialog}_F000 :Neutral state; ()\n")
        trn = root / sess / "dialog" / "transcriptions" / f"{dialog}.txt"
        trn.parent.mkdir(parents=True, exist_ok=True)
        trn.write_text("".join(f"{u} [{2 * i:07.4f}-{2 * i + 1:07.4f}]: words of {u}.\n"
                               for i, u in enumerate(IEMOCAP_UTTS) if u.startswith(dialog)))
        tone(root / sess / "dialog" / "wav" / f"{dialog}.wav", 16_000, secs=0.5)  # whole dialogue: ignored
    tone(root / "Session1" / "sentences" / "wav" / "Ses01F_impro01" / "._Ses01F_impro01_F000.wav", 16_000)  # macOS fork
    return root


# ---------------------------------------------------------------- URDU

def make_urdu(root: Path) -> Path:
    for folder, name in [("Angry", "SM1_F10_A010"), ("Angry", "SM1_F1_A01"), ("Happy", "SF5_F1_H021"),
                         ("Neutral", "SM5_F72_N0100"), ("Sad", "SF10_F2_S02"), ("Sad", "SM6_F4_S0100")]:
        tone(root / folder / f"{name}.wav", 44_100)
    return root


# ---------------------------------------------------------------- BAVED

def make_baved(root: Path) -> Path:
    for name in ["0-m-21-0-0-1", "0-m-21-0-1-2", "0-m-21-0-2-3", "56-f-40-2-0-628", "56-f-40-2-1-637",
                 "56-f-40-2-2-657"]:
        tone(root / name.split("-")[3] / f"{name}.wav", 16_000)
    return root


# ---------------------------------------------------------------- AESDD

def make_aesdd(root: Path) -> Path:
    for folder, name in [("anger", "a01 (1)"), ("disgust", "d04 (5)b"), ("disgust", "d04 (5)"),
                         ("fear", "f12 (01)"), ("happiness", "h20 (3)"), ("sadness", "s01 (2)")]:
        tone(root / "Acted Emotional Speech Dynamic Database" / folder / f"{name}.wav", 44_100)
    return root


# ---------------------------------------------------------------- ShEMO

def make_shemo(root: Path) -> Path:
    for folder, name in [("female", "F01A01"), ("female", "F01F02"), ("female", "F12W03"), ("male", "M01N03"),
                         ("male", "M12H10"), ("male", "M07S01")]:
        tone(root / folder / f"{name}.wav", 44_100)
    return root


# ---------------------------------------------------------------- SUBESCO
# Real names of the Zenodo release (SUBESCO.zip unpacks to SUBESCO/*.wav).

SUBESCO_FILES = ("F_02_MONIKA_S_1_NEUTRAL_5", "F_02_MONIKA_S_10_ANGRY_1", "M_01_BASHIR_S_3_SURPRISE_2",
                 "M_10_EVAN_S_7_DISGUST_4", "F_09_CHAITY_S_2_FEAR_3", "M_01_BASHIR_S_3_HAPPY_1",
                 "F_02_MONIKA_S_4_SAD_2")


#: The one file of the release with a stray "]" after the take number.

SUBESCO_QUIRK = "F_02_MONIKA_S_2_SURPRISE_3]"


def make_subesco(root: Path, quirk: bool = False) -> Path:
    for name in SUBESCO_FILES + ((SUBESCO_QUIRK,) if quirk else ()):
        tone(root / "SUBESCO" / f"{name}.wav", 48_000)
    return root


# ---------------------------------------------------------------- CaFE

def make_cafe(root: Path) -> Path:
    for rel in ["Colère/Faible/01-C-1-1.wav", "Colère/Fort/02-C-2-6.wav", "Dégoût/Faible/03-D-1-2.wav",
                "Joie/Fort/04-J-2-3.wav", "Neutre/11-N-1-4.wav", "Peur/Faible/12-P-1-5.wav",
                "Surprise/Fort/05-S-2-1.wav", "Tristesse/Faible/06-T-1-2.wav"]:
        tone(root / "CaFE_48k" / rel, 48_000)
    return root
