"""Dimensional ratings (arousal, valence, dominance) in the unified schema: the float columns and
their declared ranges, IEMOCAP's, MSP-Podcast's and MSP-IMPROV's releases (tiny trees in their
real formats), manifest columns, and the synthetic voices' targets."""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxser import audio
from jaxser import corpora
from jaxser.corpora import CorpusError, UnknownLabelError
from jaxser.corpora import msppodcast
from jaxser.corpora import synthetic as S
from jaxser.corpora.schema import COLUMNS, DIMENSIONS, build_dataset, dimension_value
from jaxser.study import config as study_config
from tests.helpers.corpus_release_trees import by_utt, make_iemocap, tone
from tests.helpers.dimensional_trees import IMPROV, MSPP_ROWS, improv_block, make_msppodcast, make_mspimprov
from tests.helpers.emobox_b_trees import write_csv

#: EmoBox's data/msppodcast/label_map.json (EmoClass code -> EmoBox class).
EMOBOX_MSPPODCAST = {"U": "Surprise", "F": "Fear", "D": "Disgust", "A": "Angry", "S": "Sad", "X": "No-agreement",
                     "C": "Contempt", "N": "Neutral", "O": "Other", "H": "Happy"}


# ------------------------------------------------------------------ schema

def _rec(tmp_path, name, **kw):
    return {"utt": name, "path": str(tone(tmp_path / f"{name}.wav", 16_000)), "speaker": "s1", "gender": "female",
            "language": "en", "emotion": "neutral", "raw_label": "n", "text": "", **kw}


def test_dimension_columns_follow_the_unified_ones(tmp_path):
    recs = [_rec(tmp_path, "a", arousal="2.5", valence=3, dominance=None),
            _rec(tmp_path, "b", emotion="", raw_label="", valence="4.0", session="x"),
            _rec(tmp_path, "c", session="y")]
    recs[0]["session"] = "z"
    ds = build_dataset("toy", tmp_path, recs, dimensions={d: (1.0, 5.0) for d in DIMENSIONS})
    assert tuple(ds.column_names) == COLUMNS + DIMENSIONS + ("session",)
    assert all(ds.features[d].dtype == "float64" for d in DIMENSIONS)
    rows = by_utt(ds)
    assert (rows["a"]["arousal"], rows["a"]["valence"]) == (2.5, 3.0) and math.isnan(rows["a"]["dominance"])
    assert rows["b"]["emotion"] == "" and rows["b"]["valence"] == 4.0 and math.isnan(rows["b"]["arousal"])
    assert all(math.isnan(rows["c"][d]) for d in DIMENSIONS) and rows["c"]["emotion"] == "neutral"
    # no dimension anywhere: the categorical schema exactly as before
    plain = build_dataset("toy", tmp_path, [_rec(tmp_path, "d")])
    assert tuple(plain.column_names) == COLUMNS and corpora.dimension_ranges(plain) == {}


def test_dimension_errors(tmp_path):
    dims = {d: (1.0, 5.0) for d in DIMENSIONS}
    with pytest.raises(CorpusError, match=r"arousal '5.5' is outside the corpus' range \[1, 5\]"):
        build_dataset("toy", tmp_path, [_rec(tmp_path, "a", arousal="5.5")], dimensions=dims)
    with pytest.raises(CorpusError, match="valence 'high' is not a number"):
        build_dataset("toy", tmp_path, [_rec(tmp_path, "a", valence="high")], dimensions=dims)
    with pytest.raises(CorpusError, match="no emotion and no arousal/valence/dominance"):
        build_dataset("toy", tmp_path, [_rec(tmp_path, "a", emotion="", arousal="")], dimensions=dims)
    with pytest.raises(CorpusError, match="no emotion and no"):  # no dimensions: an emotion is required
        build_dataset("toy", tmp_path, [_rec(tmp_path, "a", emotion="")])
    with pytest.raises(CorpusError, match="declares no range for it"):
        build_dataset("toy", tmp_path, [_rec(tmp_path, "a", dominance="2")], dimensions={"arousal": (1.0, 5.0)})


@settings(max_examples=200, deadline=None)
@given(lo=st.floats(-10, 10), width=st.floats(0.01, 10), x=st.floats(allow_nan=True, allow_infinity=True),
       as_text=st.booleans())
def test_dimension_value_accepts_exactly_the_declared_range(lo, width, x, as_text):
    hi = lo + width
    value = repr(x) if as_text else x
    if math.isnan(x):
        assert math.isnan(dimension_value("toy", "arousal", value, "here", {"arousal": (lo, hi)}))
    elif lo <= x <= hi:
        assert dimension_value("toy", "arousal", value, "here", {"arousal": (lo, hi)}) == x
    else:
        with pytest.raises(CorpusError, match="outside the corpus' range"):
            dimension_value("toy", "arousal", value, "here", {"arousal": (lo, hi)})


# ------------------------------------------------------------------ IEMOCAP

def test_iemocap_dimensions(tmp_path):
    root = make_iemocap(tmp_path / "IEMOCAP_full_release")
    rows = by_utt(corpora.load("iemocap", root))
    r = rows["Ses01F_impro01_F000"]  # summary line [1.5000, 3.0000, 2.5000] = valence, activation, dominance
    assert (r["valence"], r["arousal"], r["dominance"]) == (1.5, 3.0, 2.5)
    assert rows["Ses01F_impro01_M002"]["valence"] == 3.5
    assert corpora.dimension_ranges("iemocap") == {d: (1.0, 5.0) for d in DIMENSIONS}
    assert corpora.dimension_ranges(corpora.load("iemocap", root)) == {d: (1.0, 5.0) for d in DIMENSIONS}
    # all_rated keeps the turns classification leaves out (fru, exc, xxx) with their ratings
    excluded = Counter()
    every = by_utt(corpora.load("iemocap", root, all_rated=True, excluded=excluded))
    assert set(every) - set(rows) == {"Ses01F_impro01_M001", "Ses02M_script01_1_M004", "Ses02M_script01_1_M005"}
    assert every["Ses01F_impro01_M001"]["emotion"] == "" and every["Ses01F_impro01_M001"]["raw_label"] == "fru"
    assert every["Ses01F_impro01_M001"]["valence"] == 2.5 and not excluded


def test_iemocap_rating_outside_the_scale(tmp_path):
    from tests.helpers.corpus_release_trees import eval_block

    root = make_iemocap(tmp_path / "a", extra_lines=eval_block("90.0", "91.0", "Ses01F_impro01_F009", "neu",
                                                               ("2.0000", "6.0000", "2.0000")))
    with pytest.raises(CorpusError, match=r"Ses01F_impro01\.txt line \d+: arousal '6.0000' is outside"):
        corpora.load("iemocap", root)


# ------------------------------------------------------------------ MSP-Podcast

def test_msppodcast_release(tmp_path):
    root = make_msppodcast(tmp_path / "MSP-Podcast")
    ds = corpora.load("msp-podcast", root)
    rows = by_utt(ds)
    assert set(rows) == {r[0][:-4] for r in MSPP_ROWS}
    r = rows["MSP-PODCAST_0001_0008"]
    assert (r["path"], r["speaker"], r["gender"], r["emotion"], r["raw_label"], r["split"]) == (
        "Audios/MSP-PODCAST_0001_0008.wav", "msppodcast/127", "female", "neutral", "N", "Test1")
    assert (r["arousal"], r["valence"], r["dominance"]) == (4.2, 4.4, 4.6)
    x = rows["MSP-PODCAST_0002_0031"]
    assert (x["emotion"], x["speaker"], x["gender"], x["split"]) == (
        "no-agreement", "msppodcast/unknown-0002", "unknown", "Development")
    assert sorted(set(ds["split"])) == ["Development", "Test1", "Test2", "Train"]
    assert corpora.dimension_ranges("msppodcast") == {d: (1.0, 7.0) for d in DIMENSIONS}
    # EmoBox's class set for MSP-Podcast: the same ten codes and classes
    assert {k: v.capitalize() for k, v in msppodcast.LABEL_MAP.items()} == EMOBOX_MSPPODCAST
    assert abs(r["duration"] - 0.2) < 1e-3


def test_msppodcast_older_release_names(tmp_path):
    """Older releases: `labels_concensus.csv`, `Audio/`, and `Validation` for the development set."""
    rows = [r[:7] + ["Validation" if r[7] == "Development" else r[7]] for r in MSPP_ROWS]
    root = make_msppodcast(tmp_path / "old", rows=rows, labels="labels_concensus.csv", audio="Audio")
    ds = corpora.load("msppodcast", root)
    assert by_utt(ds)["MSP-PODCAST_0002_0031"]["split"] == "Development"
    assert by_utt(ds)["MSP-PODCAST_0001_0008"]["path"] == "Audio/MSP-PODCAST_0001_0008.wav"


def test_msppodcast_errors(tmp_path):
    bad = [MSPP_ROWS[0][:2] + ["7.5"] + MSPP_ROWS[0][3:]]
    with pytest.raises(CorpusError, match=r"labels_consensus.csv line 2: arousal '7.5' is outside .*\[1, 7\]"):
        corpora.load("msppodcast", make_msppodcast(tmp_path / "a", rows=bad))
    bad = [MSPP_ROWS[0][:1] + ["Z"] + MSPP_ROWS[0][2:]]
    with pytest.raises(UnknownLabelError, match="'Z'"):
        corpora.load("msppodcast", make_msppodcast(tmp_path / "b", rows=bad))
    with pytest.raises(CorpusError, match="line 3: no MSP-PODCAST_0001_0012.wav"):
        corpora.load("msppodcast", make_msppodcast(tmp_path / "c", missing=("MSP-PODCAST_0001_0012.wav",)))
    bad = [MSPP_ROWS[0][:7] + ["Test9"]]
    with pytest.raises(CorpusError, match="Split_Set 'Test9'"):
        corpora.load("msppodcast", make_msppodcast(tmp_path / "d", rows=bad))
    errors = []
    recs = msppodcast.records(make_msppodcast(tmp_path / "e", missing=("MSP-PODCAST_0001_0012.wav",)), errors=errors)
    assert len(recs) == len(MSPP_ROWS) - 1 and len(errors) == 1
    withheld = MSPP_ROWS + [["MSP-PODCAST_0005_0001.wav", "", "", "", "", "Unknown", "Unknown", "Test3"]]
    with pytest.warns(UserWarning, match="1 row\\(s\\) carry neither a class nor a rating"):
        ds = corpora.load("msppodcast", make_msppodcast(tmp_path / "f", rows=withheld))
    assert len(ds) == len(MSPP_ROWS)
    partly = MSPP_ROWS + [["MSP-PODCAST_0005_0001.wav", "", "3.0", "", "", "Unknown", "Unknown", "Test3"]]
    row = by_utt(corpora.load("msppodcast", make_msppodcast(tmp_path / "g", rows=partly)))["MSP-PODCAST_0005_0001"]
    assert (row["emotion"], row["arousal"], row["split"]) == ("", 3.0, "Test3")


# ------------------------------------------------------------------ MSP-IMPROV

def test_mspimprov_release(tmp_path):
    unlabelled = []
    with pytest.warns(UserWarning, match="1 WAV file"):
        ds = corpora.load("msp-improv", make_mspimprov(tmp_path / "MSP-IMPROV"), unlabelled=unlabelled)
    rows = by_utt(ds)
    assert set(rows) == {f"MSP-IMPROV-{n}" for n in IMPROV}
    r = rows["MSP-IMPROV-S01A-M01-T-MF01"]
    assert (r["speaker"], r["gender"], r["session"], r["recording"], r["acted"], r["text"]) == (
        "mspimprov/M01", "male", "session1", "T", "angry", "S01")
    assert (r["emotion"], r["arousal"], r["valence"], r["dominance"]) == ("angry", 4.2, 1.8, 4.0)
    assert r["path"] == "Audio/session1/S01A/T/MSP-IMPROV-S01A-M01-T-MF01.wav"
    assert math.isnan(rows["MSP-IMPROV-S03S-M02-S-MF03"]["dominance"])  # NaN in Evaluation.txt
    assert rows["MSP-IMPROV-S04N-F02-P-FM04"]["emotion"] == "no-agreement"
    assert rows["MSP-IMPROV-S05A-M02-T-MF05"]["emotion"] == "other"
    assert sorted(set(corpora.fold_groups(ds))) == ["mspimprov/session01", "mspimprov/session02"]
    assert corpora.dimension_ranges("mspimprov") == {d: (1.0, 5.0) for d in DIMENSIONS}
    assert [p.rsplit("/", 1)[1] for p in unlabelled] == ["MSP-IMPROV-S06H-F03-R-FM06.wav"]


def test_mspimprov_errors(tmp_path):
    with pytest.raises(CorpusError, match=r"Evaluation.txt line \d+: cannot parse summary line"):
        corpora.load("mspimprov", make_mspimprov(tmp_path / "a", extra="UTD-IMPROV-S01A-F01-P-FM09.avi; N; A:3\n"))
    with pytest.raises(CorpusError, match=r"valence '5.500000' is outside"):
        corpora.load("mspimprov", make_mspimprov(tmp_path / "b", spare=False,
                                                 extra=improv_block("S07A-F01-P-FM07", "A", v="5.500000")))
    with pytest.raises(CorpusError, match="no MSP-IMPROV-S02H-F01-R-FM02.wav.*session1/S02H/R/"):
        corpora.load("mspimprov", make_mspimprov(tmp_path / "c", missing=("S02H-F01-R-FM02",), spare=False))
    with pytest.raises(CorpusError, match="rated again, differently"):
        corpora.load("mspimprov", make_mspimprov(tmp_path / "d", extra=improv_block("S01A-F01-P-FM01", "H"),
                                                 spare=False))
    with pytest.raises(CorpusError, match="not an MSP-IMPROV name"):
        corpora.load("mspimprov", make_mspimprov(tmp_path / "e", extra=improv_block("S01A-F01-Q-FM01", "N"),
                                                 spare=False))


# ------------------------------------------------------------------ manifest

def test_manifest_dimensions(tmp_path):
    for i in range(3):
        tone(tmp_path / f"clip{i}.wav", 16_000)
    write_csv(tmp_path / "rated.csv", ["path", "speaker", "arousal", "valence", "dominance"],
              [["clip0.wav", "a", "1", "7", ""], ["clip1.wav", "b", "4.5", "", ""], ["clip2.wav", "b", "", "", "2"]])
    ds = corpora.load("manifest", tmp_path / "rated.csv", dimension_range=(1, 7))
    rows = by_utt(ds)
    assert set(ds["emotion"]) == {""} and rows["clip0"]["valence"] == 7.0 and math.isnan(rows["clip0"]["dominance"])
    assert corpora.dimension_ranges("manifest", dimension_range=(1, 7)) == {d: (1.0, 7.0) for d in DIMENSIONS}
    per = {"arousal": [0, 10], "valence": [0, 10], "dominance": [1, 2]}
    assert corpora.dimension_ranges("manifest", dimension_range=per)["dominance"] == (1.0, 2.0)
    per_ds = corpora.load("manifest", tmp_path / "rated.csv", dimension_range=per)
    assert by_utt(per_ds)["clip2"]["dominance"] == 2.0
    # the dataset carries the scales it was checked against, also through select/filter
    assert corpora.dimension_ranges(per_ds.select([0, 1])) == {"arousal": (0.0, 10.0), "valence": (0.0, 10.0),
                                                               "dominance": (1.0, 2.0)}
    assert corpora.dimension_ranges(ds) == {d: (1.0, 7.0) for d in DIMENSIONS}
    with pytest.raises(CorpusError, match="rated: not a registry corpus.*pass its dataset"):
        corpora.dimension_ranges(ds[0]["corpus"])
    # the dimensional task maps the manifest's targets to [0, 1] by the scale it was loaded with
    from jaxser import dimensional

    got = dimensional.corpus_targets(per_ds, "rated", ["arousal", "dominance"])
    np.testing.assert_allclose(got[[0, 1]], [[0.1, np.nan], [0.45, np.nan]])
    assert got[2, 1] == 1.0
    with pytest.raises(CorpusError, match="dimension_range=\\(lo, hi\\)"):
        corpora.load("manifest", tmp_path / "rated.csv")
    with pytest.raises(CorpusError, match=r"rated.csv line 3: arousal '4.5' is outside"):
        corpora.load("manifest", tmp_path / "rated.csv",
                     dimension_range={"arousal": (1, 4), "valence": (1, 7), "dominance": (1, 7)})
    with pytest.raises(CorpusError, match="lo < hi"):
        corpora.dimension_ranges("manifest", dimension_range=(5, 1))
    with pytest.raises(CorpusError, match="names \\['energy'\\]"):
        corpora.dimension_ranges("manifest", dimension_range={"energy": (0, 1)})
    # JSON Lines: numbers, null for a missing rating, emotion beside the ratings
    (tmp_path / "m.jsonl").write_text('{"path": "clip0.wav", "speaker": "a", "emotion": "sad", "arousal": 0.25, '
                                      '"valence": null}\n{"path": "clip1.wav", "speaker": "b", "valence": 0.5}\n'
                                      '{"path": "clip2.wav", "speaker": "b", "emotion": ""}\n')
    with pytest.raises(CorpusError, match="line 3: missing or empty required field\\(s\\) \\['emotion'\\]"):
        corpora.load("manifest", tmp_path / "m.jsonl", dimension_range=(0, 1))
    (tmp_path / "m.jsonl").write_text("\n".join((tmp_path / "m.jsonl").read_text().splitlines()[:2]) + "\n")
    rows = by_utt(corpora.load("manifest", tmp_path / "m.jsonl", dimension_range=(0, 1)))
    assert (rows["clip0"]["emotion"], rows["clip0"]["arousal"]) == ("sad", 0.25)
    assert math.isnan(rows["clip0"]["valence"])
    assert (rows["clip1"]["emotion"], rows["clip1"]["valence"]) == ("", 0.5)


# ------------------------------------------------------------------ synthetic voices

@pytest.fixture(scope="module")
def synth():
    """From the session's synthetic cache (generated once, shared with the study tests)."""
    return {n: corpora.load(n) for n in ("synth-alba", "synth-corva")}


def test_synthetic_targets_follow_the_cues(synth):
    for name, ds in synth.items():
        assert corpora.dimension_ranges(name) == corpora.dimension_ranges(ds) == {d: (0.0, 1.0) for d in DIMENSIONS}
        v = {d: np.array(ds[d]) for d in DIMENSIONS}
        assert all(((x > 0) & (x < 1)).all() for x in v.values())
        emo = np.array(ds["emotion"])
        mean = {(d, e): v[d][emo == e].mean() for d in DIMENSIONS for e in set(emo)}
        assert mean["arousal", "angry"] > mean["arousal", "neutral"] > mean["arousal", "sad"]
        assert mean["valence", "happy"] > mean["valence", "neutral"] > mean["valence", "sad"]
        assert mean["dominance", "angry"] > mean["dominance", "neutral"] > mean["dominance", "sad"]
        # valence has a part no cue carries: it varies within an acted category more than arousal
        assert v["valence"][emo == "neutral"].std() > v["arousal"][emo == "neutral"].std()
        # deterministic: loading again gives the same targets
        again = corpora.load(name)
        assert all(again[d] == ds[d] for d in DIMENSIONS)


def test_synthetic_arousal_tracks_the_measured_energy(synth):
    """In synth-alba (no loudness normalisation) arousal rises with the level of the audio itself."""
    from scipy.stats import spearmanr

    ds = synth["synth-alba"]
    level = [20 * np.log10(np.sqrt(np.mean(audio.load(p) ** 2))) for p in ds["audio"]]
    rho = spearmanr(level, ds["arousal"]).statistic
    assert rho > 0.6, rho


# ------------------------------------------------------------------ shipped configs

def test_dimensional_configs_load():
    """The shipped dimensional configs: the embedded one on the synthetic voices, the real one on
    the three rated corpora."""
    from tests.test_study_config import EXPERIMENT_CONFIGS

    cfg = study_config.load_config("dimensional")
    study_config.validate(cfg)
    assert cfg.task == "dimensional" and set(cfg.corpora) == set(S.CORPORA)
    assert cfg.dimensions == ["arousal", "valence", "dominance"]
    real = study_config.load_config(EXPERIMENT_CONFIGS / "dimensional.toml")
    assert set(real.corpora) == {"iemocap", "mspimprov", "msppodcast"} and "emotion2vec-base" in real.encoders
    assert real.corpus_options["iemocap"] == {"all_rated": True}


def test_msppodcast_matches_emobox(tmp_path):
    """EmoBox's MSP-Podcast lists (`data/msppodcast/fold_1/*.jsonl`: its test and validation
    files; paths `downloads/msppodcast/Audio/<FileName>`): every name is a release FileName,
    every code one of the ten, its label map ours; a sampled tree with a consensus table made from
    its rows loads to the same files and labels. Skips without an EmoBox checkout."""
    import json

    from tests.helpers.emobox_lists import compare, emobox_root, release_path, sample

    root = emobox_root()
    folds = root / "data" / "msppodcast" / "fold_1" if root else None
    if folds is None or not folds.is_dir():
        pytest.skip("no EmoBox checkout with data/msppodcast (set JAXSER_EMOBOX)")
    label_map = json.loads((root / "data" / "msppodcast" / "label_map.json").read_text(encoding="utf-8"))
    assert {k: v.lower() for k, v in label_map.items()} == msppodcast.LABEL_MAP
    rows = [json.loads(line) for f in sorted(folds.glob("*.jsonl"))
            for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert rows and all(msppodcast._NAME_RE.match(release_path("msppodcast", r).removeprefix("Audio/"))
                        for r in rows)
    assert {r["emo"] for r in rows} <= set(msppodcast.LABEL_MAP)
    picked = sample(rows, 2)
    table = [[release_path("msppodcast", r)[len("Audio/"):], r["emo"], "4.0", "4.0", "4.0", "1", "Female", "Test1"]
             for r in picked]
    tree = make_msppodcast(tmp_path / "msppodcast", rows=table, audio="Audio")
    compare("msppodcast", corpora.load("msppodcast", tree), tree, picked, label_map)
