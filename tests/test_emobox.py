"""EmoBox's partitions: tiny EmoBox data folders in its record schemas (per-corpus lists, label
maps, fold files, track2 lists) next to tiny release trees, through the code a run uses."""
from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxser import corpora, emobox
from jaxser.study import artifacts
from jaxser.study.run import study_metadata
from spec.checks import check_emobox, check_protocol
from tests.helpers.corpus_fixtures import tone
from tests.helpers.emobox_lists import emobox_root

RAV_EMO = {"01": "Neutral", "03": "Happy", "04": "Sad", "05": "Angry"}  # RAVDESS code -> EmoBox's emo
RAV_MAP = {"Angry": "Angry", "Surprised": "Surprise", "Sad": "Sad", "Disgust": "Disgust", "Happy": "Happy",
           "Calm": "Calm", "Neutral": "Neutral", "Fearful": "Fear"}  # EmoBox's data/ravdess/label_map.json
SAV_MAP = {"a": "Angry", "d": "Disgust", "f": "Fear", "h": "Happy", "n": "Neutral", "sa": "Sad", "su": "Surprise"}
RAV_ACTORS, SAV_SPEAKERS = ("01", "02", "03", "04"), ("DC", "JE", "JK", "KL")


def write_wav(path: Path, sr: int) -> Path:
    """A short WAV whose content depends on the whole path (SAVEE repeats a01.wav per speaker,
    and a run keeps one copy of identical recordings)."""
    from jaxser import audio

    return audio.write(path, tone(sr, zlib.crc32(str(path.relative_to(path.parents[2])).encode())), sr)


def rav_name(actor: str, code: str, take: int) -> str:
    return f"03-01-{code}-01-0{take}-01-{actor}.wav"


def make_trees(root: Path) -> dict[str, Path]:
    """RAVDESS in its zip's folder (Audio_Speech_Actors_01-24/Actor_XX) and SAVEE's release
    (AudioData/<speaker>/<code><nn>.wav): 4 speakers x 4 classes x 2 takes each."""
    rav, sav = root / "ravdess", root / "savee"
    for a in RAV_ACTORS:
        for code in RAV_EMO:
            for take in (1, 2):
                write_wav(rav / "Audio_Speech_Actors_01-24" / f"Actor_{a}" / rav_name(a, code, take), 48_000)
    for s in SAV_SPEAKERS:
        for code in ("a", "h", "n", "sa"):
            for k in (1, 2):
                write_wav(sav / "AudioData" / s / f"{code}{k:02d}.wav", 44_100)
    return {"ravdess": rav, "savee": sav}


def _record(corpus: str, key: str, wav: str, emo: str, sr: int) -> dict:
    return {"key": f"{corpus}-{key}", "dataset": corpus, "wav": f"downloads/{corpus}/{wav}", "type": "raw",
            "sample_rate": sr, "num_frame": 0.2 * sr, "task": "category", "length": 0.2, "emo": emo, "channel": 1}


def _write_jsonl(path: Path, recs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def make_emobox(root: Path, *, savee_valid: bool = False) -> Path:
    """An EmoBox checkout's data/: RAVDESS two folds by actor, SAVEE two folds by speaker (fold 1
    optionally with a valid file, as EmoBox has for MELD), and both track2 lists."""
    data = root / "data"
    rav = {a: [_record("ravdess", rav_name(a, c, t)[:-4],
                       f"audio/Audio_Speech_Actors_01-24/Actor_{a}/{rav_name(a, c, t)}", e, 48_000)
               for c, e in RAV_EMO.items() for t in (1, 2)] for a in RAV_ACTORS}
    sav = {s: [_record("savee", f"{s}-{c}{k:02d}", f"{s}_{c}{k:02d}.wav", c, 44_100)
               for c in ("a", "h", "n", "sa") for k in (1, 2)] for s in SAV_SPEAKERS}
    for corpus, by_spk, lm in (("ravdess", rav, RAV_MAP), ("savee", sav, SAV_MAP)):
        (data / corpus).mkdir(parents=True)
        (data / corpus / "label_map.json").write_text(json.dumps(lm, indent=4))
        _write_jsonl(data / corpus / f"{corpus}.jsonl", [r for rs in by_spk.values() for r in rs])
        spk = list(by_spk)
        for n, test_spk in ((1, spk[:2]), (2, spk[2:])):
            train_spk = [s for s in spk if s not in test_spk]
            d = data / corpus / f"fold_{n}"
            _write_jsonl(d / f"{corpus}_test_fold_{n}.jsonl", [r for s in test_spk for r in by_spk[s]])
            if corpus == "savee" and savee_valid and n == 1:
                _write_jsonl(d / f"{corpus}_train_fold_{n}.jsonl", by_spk[train_spk[0]])
                _write_jsonl(d / f"{corpus}_valid_fold_{n}.jsonl", by_spk[train_spk[1]])
            else:
                _write_jsonl(d / f"{corpus}_train_fold_{n}.jsonl", [r for s in train_spk for r in by_spk[s]])
    track = data / "track2"
    _write_jsonl(track / "RAVDESS_selected_balenced.jsonl",
                 [{"wav_filename": f"Actor_{a}/{rav_name(a, c, 1)}", "label": e.lower(), "speaker": a}
                  for a in RAV_ACTORS[:2] for c, e in RAV_EMO.items()])
    _write_jsonl(track / "SAVEE_selected_balenced.jsonl",
                 [{"wav_filename": f"{s}/{c}01.wav", "label": SAV_MAP[c].lower(), "speaker": s}
                  for s in SAV_SPEAKERS[:2] for c in ("a", "h", "n", "sa")])
    return root


def load_meta(roots: dict[str, Path]) -> pd.DataFrame:
    datasets = {c: corpora.load(c, str(r)) for c, r in roots.items()}
    meta, _, _ = study_metadata(datasets, {}, lambda *_: None)
    return meta


@pytest.fixture
def setup(tmp_path):
    roots = make_trees(tmp_path / "corpora")
    box = make_emobox(tmp_path / "EmoBox")
    return roots, box, load_meta(roots)


def _ids(meta, rows) -> set:
    return set(meta["id"].to_numpy()[rows])


def test_folds_are_the_partition_files(setup):
    roots, box, meta = setup
    study = emobox.Study(meta, box)
    cells = study.cells(["same"])
    study.check(print)  # the tiny trees agree with the lists: nothing to report
    assert [c.name for c in cells] == ["same:ravdess->ravdess/fold1", "same:ravdess->ravdess/fold2",
                                       "same:savee->savee/fold1", "same:savee->savee/fold2"]
    for c in cells:
        assert c.split == "emobox" and c.labels == ("neutral", "happy", "sad", "angry")
        test_spk = {m for m in meta["speaker"].to_numpy()[c.test]}
        train_spk = {m for m in meta["speaker"].to_numpy()[np.concatenate([c.fit, c.val])]}
        assert len(test_spk) == 2 and len(train_spk) == 2 and not test_spk & train_spk
        assert len(c.test) == 16 and len(c.fit) + len(c.val) == 16
        assert c.val_speaker_disjoint and c.meta["validation"].startswith("speaker-disjoint")
    # fold 1 of RAVDESS tests actors 01 and 02, exactly as its test file lists them
    want = {f"ravdess/{rav_name(a, c, t)[:-4]}" for a in ("01", "02") for c in RAV_EMO for t in (1, 2)}
    assert _ids(meta, cells[0].test) == want
    rep = study.report()
    assert rep["commit"] is None and set(rep["sha256"]) >= {"ravdess/fold_1/ravdess_test_fold_1.jsonl",
                                                            "savee/label_map.json", "savee/savee.jsonl"}
    assert rep["corpora"]["savee"]["records"] == 32 and rep["corpora"]["savee"]["missing"]["count"] == 0


def test_validation_file_is_used_where_emobox_has_one(tmp_path):
    roots = make_trees(tmp_path / "corpora")
    box = make_emobox(tmp_path / "EmoBox", savee_valid=True)
    meta = load_meta(roots)
    cells = emobox.Study(meta, box).cells(["same"])
    c = next(c for c in cells if c.name == "same:savee->savee/fold1")
    assert c.meta["validation"] == "EmoBox's validation file"
    assert {s.split("/")[1] for s in meta["speaker"].to_numpy()[c.val]} == {"KL"}
    assert {s.split("/")[1] for s in meta["speaker"].to_numpy()[c.fit]} == {"JK"}


def test_track2_cells_test_the_balanced_lists(setup):
    _, box, meta = setup
    cells = emobox.Study(meta, box).cells(["cross"], labels=list(emobox.TRACK_LABELS))
    assert [c.name for c in cells] == ["cross:ravdess->savee", "cross:savee->ravdess"]
    r2s, s2r = cells
    # SAVEE's list: DC and JE, take 01 of each class (flat JE/a01.wav names resolved to the release tree)
    assert _ids(meta, r2s.test) == {f"savee/{s}_{c}01" for s in ("DC", "JE") for c in ("a", "h", "n", "sa")}
    # the source's own track2 list stays out of training
    own = emobox.Study(meta, box).track("ravdess")
    assert len(own) == 8 and not set(own) & set(np.concatenate([r2s.fit, r2s.val]))
    assert len(r2s.fit) + len(r2s.val) == 32 - 8 and r2s.excluded == 32 - 8


def test_mismatches_are_counted_listed_and_stop_the_run(setup, tmp_path):
    roots, box, _ = setup
    (roots["ravdess"] / "Audio_Speech_Actors_01-24" / "Actor_01" / rav_name("01", "05", 1)).unlink()
    write_wav(roots["savee"] / "AudioData" / "KL" / "h03.wav", 44_100)  # a file EmoBox does not list
    lm = box / "data" / "savee" / "label_map.json"
    lm.write_text(json.dumps({**SAV_MAP, "h": "Sad"}))  # EmoBox and the loader now disagree on `h`
    meta = load_meta(roots)
    study = emobox.Study(meta, box)
    study.cells(["same"])
    logged = []
    with pytest.raises(emobox.EmoBoxError, match=r"disagree .*emobox_mismatch = \"warn\""):
        study.check(logged.append)
    rep = study.report()["corpora"]
    assert rep["ravdess"]["missing"] == {"count": 1, "examples": [
        f"audio/Audio_Speech_Actors_01-24/Actor_01/{rav_name('01', '05', 1)}"]}
    assert rep["savee"]["unlisted"]["count"] == 0  # h03 is happy, outside EmoBox's (edited) classes
    assert rep["savee"]["label"]["count"] == 8
    assert "EmoBox sad (h), jaxser happy" in rep["savee"]["label"]["examples"][0]
    assert any("1 EmoBox records without a file" in line for line in logged)
    # warn: reported, and the run goes on with the utterances that match
    warn = emobox.Study(meta, box, mismatch="warn")
    cells = warn.cells(["same"])
    warn.check(logged.append)
    assert sum(len(c.test) for c in cells if c.source == "ravdess") == 31


def test_unlisted_files_in_emobox_classes_are_reported(setup):
    roots, box, _ = setup
    write_wav(roots["savee"] / "AudioData" / "KL" / "h03.wav", 44_100)
    study = emobox.Study(load_meta(roots), box, mismatch="warn")
    study.cells(["same"])
    assert study.report()["corpora"]["savee"]["unlisted"] == {"count": 1, "examples": ["AudioData/KL/h03.wav"]}


def test_meld_names_resolved_by_split_label_and_speaker(tmp_path):
    """MELD's dia/utt names repeat across its splits; track2 names them `audio/<name>.wav`."""
    data = tmp_path / "data"
    _write_jsonl(data / "track2" / "MELD_selected_balenced.jsonl", [
        {"wav_filename": "audio/dia1_utt0.wav", "label": "sad", "speaker": "Ross"},      # label decides: dev
        {"wav_filename": "audio/dia2_utt3.wav", "label": "angry", "speaker": "Monica"},  # speaker decides: test
        {"wav_filename": "audio/dia5_utt1.wav", "label": "happy", "speaker": "Joey"},    # ambiguous
        {"wav_filename": "audio/dia9_utt9.wav", "label": "happy", "speaker": "Joey"},    # no such clip
    ])
    (data / "meld").mkdir()
    (data / "meld" / "label_map.json").write_text("{}")
    rows = [("train_splits/dia1_utt0", "neutral", "Ross"), ("dev_splits_complete/dia1_utt0", "sad", "Ross"),
            ("train_splits/dia2_utt3", "angry", "Chandler"),
            ("output_repeated_splits_test/dia2_utt3", "angry", "Monica"),
            ("train_splits/dia5_utt1", "happy", "Joey"), ("output_repeated_splits_test/dia5_utt1", "happy", "Joey")]
    meta = pd.DataFrame({"id": [f"meld/{i}" for i in range(len(rows))], "corpus": "meld",
                         "path": [f"MELD.Raw/{p}.mp4" for p, _, _ in rows], "emotion": [e for _, e, _ in rows],
                         "speaker": [f"meld/{s}" for _, _, s in rows], "group": [f"meld/{s}" for _, _, s in rows]})
    study = emobox.Study(meta, tmp_path, mismatch="warn")
    assert study.track("meld").tolist() == [1, 3]
    rep = study.report()["corpora"]["meld"]
    assert rep["ambiguous"]["count"] == 1 and "dia5_utt1" in rep["ambiguous"]["examples"][0]
    assert rep["missing"]["examples"] == ["track2 audio/dia9_utt9.wav"]
    # EmoBox's own MELD paths and the release's share the split folder and file name
    assert emobox._key("meld", emobox.release_path("meld", "downloads/meld/train/train_splits/dia0_utt0.mp4")) == \
        emobox._key("meld", "MELD.Raw/train_splits/dia0_utt0.mp4")
    # ESD's older copies put split folders below the emotion
    assert emobox._key("esd", emobox.release_path("esd", "downloads/esd/0005/Neutral/0005_000001.wav")) == \
        emobox._key("esd", "Emotion Speech Dataset/0005/Neutral/train/0005_000001.wav")


def test_bad_emobox_files_are_one_line_errors(tmp_path):
    with pytest.raises(emobox.EmoBoxError, match="not an EmoBox checkout"):
        emobox.data_dir(tmp_path)
    box = make_emobox(tmp_path / "EmoBox")
    f = box / "data" / "savee" / "fold_2" / "savee_test_fold_2.jsonl"
    f.write_text(f.read_text() + "{not json\n")
    with pytest.raises(emobox.EmoBoxError, match=r"savee_test_fold_2.jsonl:17: not a JSON record"):
        emobox.read_jsonl(f)
    (box / "data" / "savee" / "fold_2" / "savee_train_fold_2.jsonl").unlink()
    with pytest.raises(emobox.EmoBoxError, match="no savee_train_fold_2.jsonl"):
        emobox.partition(box / "data", "savee")
    with pytest.raises(emobox.EmoBoxError, match="EmoBox has no partition of it"):
        emobox.partition(box / "data", "baved")


def test_dry_run_writes_the_protocol_and_spec_checks_it(setup, tmp_path):
    from jaxser.study.run import main

    roots, box, _ = setup
    out = tmp_path / "run"
    rc = main(["--dry-run", "--split", "emobox", "--emobox", str(box), "--corpus", f"ravdess={roots['ravdess']}",
               "--corpus", f"savee={roots['savee']}", "--encoder", "mfcc", "--settings", "same,cross",
               "--labels", "angry,happy,neutral,sad", "--out", str(out)])
    assert rc == 0
    assert not (out / artifacts.PREDICTIONS_DIR).exists() and not (out / "report.md").exists()
    meta = artifacts.read_metadata(out)
    assert meta.set_index("id").loc["savee/JE_sa02", "path"] == "AudioData/JE/sa02.wav"
    splits = artifacts.read_splits(out)
    cells = artifacts.read_cells(out)
    assert len(cells) == 6
    test_rows = splits[splits["role"] == "test"]
    assert set(test_rows["cell"]) == {c["name"] for c in cells}
    assert (splits.loc[splits["role"] != "test", "cell"] == "").all()
    manifest = artifacts.read_manifest(out)
    assert manifest["dry_run"] and manifest["protocol"]["split"] == "emobox"
    assert "track2/SAVEE_selected_balenced.jsonl" in manifest["emobox"]["sha256"]
    assert check_protocol(out) == [] and check_emobox(out) == []
    # a fold that does not follow its partition file is caught
    bad = splits.copy()
    i = bad.index[(bad["role"] == "test") & (bad["cell"] == "same:savee->savee/fold1")][0]
    bad = bad.drop(i)
    bad.to_parquet(out / artifacts.SPLITS_FILE, index=False)
    problems = check_emobox(out)
    assert any("EmoBox's test file lists 16" in p for p in problems)


def test_config_needs_the_checkout_and_refuses_loco():
    from jaxser.study.config import ConfigError, parse_args

    with pytest.raises(ConfigError, match="needs the EmoBox checkout"):
        parse_args(["--split", "emobox", "--encoder", "mfcc"])
    with pytest.raises(ConfigError, match="no leave-one-corpus-out"):
        parse_args(["--split", "emobox", "--emobox", "x", "--encoder", "mfcc", "--settings", "same,loco"])


@pytest.mark.skipif(emobox_root() is None, reason="no EmoBox checkout (JAXSER_EMOBOX or emobox/ beside the repo)")
def test_real_checkout_partitions_read():
    """Every corpus of a real checkout whose fold files are all there reads: label maps into
    jaxser's labels, folds numbered as EmoBox numbers them (EmoDB's doubled file names included)."""
    data = emobox.data_dir(emobox_root())
    folds = {}
    for lm in sorted(data.glob("*/label_map.json")):
        try:
            folds[lm.parent.name] = [f.number for f in emobox.partition(data, lm.parent.name).folds]
        except emobox.EmoBoxError as e:  # a checkout without its large files
            assert "lacks a partition file" in str(e)
    assert folds["iemocap"] == [1, 2, 3, 4, 5] and folds["ravdess"] == [1, 2, 3, 4, 5, 6]
    assert folds["savee"] == [1, 2, 3, 4] and folds["emodb"] == [1, 2, 3, 4, 5]
    meld = emobox.partition(data, "meld")
    assert set(meld.folds[0].files) == {"train", "test", "valid"}
    assert emobox.partition(data, "emodb").folds[0].files["test"].name == "emodb_test_fold_1.jsonl"


def test_iemocap_track_names_carry_the_label_folder(tmp_path):
    """IEMOCAP's track2 names are `<label>/<utterance>.wav`; the release keeps utterances by dialogue."""
    _write_jsonl(tmp_path / "data" / "track2" / "IEMOCAP_selected_balenced.jsonl",
                 [{"wav_filename": "happy/Ses02F_impro03_F019.wav", "label": "happy", "speaker": "02F"}])
    (tmp_path / "data" / "iemocap").mkdir()
    (tmp_path / "data" / "iemocap" / "label_map.json").write_text("{}")
    paths = ["Session2/sentences/wav/Ses02F_impro03/Ses02F_impro03_F019.wav",
             "Session2/sentences/wav/Ses02F_impro03/Ses02F_impro03_F020.wav"]
    meta = pd.DataFrame({"id": ["iemocap/a", "iemocap/b"], "corpus": "iemocap", "path": paths,
                         "emotion": ["happy", "sad"], "speaker": ["iemocap/Ses02F"] * 2,
                         "group": ["iemocap/Session2"] * 2})
    assert emobox.Study(meta, tmp_path).track("iemocap").tolist() == [0]


def test_shipped_cross_config_runs_dry_on_the_track(setup, tmp_path):
    from jaxser.study.run import main

    roots, box, _ = setup
    out = tmp_path / "run"
    assert main(["--config", "emobox-cross", "--dry-run", "--emobox", str(box / "data"), "--out", str(out),
                 "--corpus", f"ravdess={roots['ravdess']}", "--corpus", f"savee={roots['savee']}"]) == 0
    cells = artifacts.read_cells(out)
    assert {c["name"] for c in cells} == {"cross:ravdess->savee", "cross:savee->ravdess"}
    assert all(c["n_test"] == 8 and c["split"] == "emobox" for c in cells)
    assert check_emobox(out) == []


@settings(max_examples=20, deadline=None)
@given(n_spk=st.integers(2, 6), n_folds=st.integers(1, 3), per=st.integers(1, 3), valid=st.booleans(),
       root=st.sampled_from(["same", "above", "below"]), seed=st.integers(0, 2**16))
def test_cells_follow_any_partition(n_spk, n_folds, per, valid, root, seed):
    """Whatever the folds and wherever the corpus root sits relative to EmoBox's downloads/<name>
    (the same folder, one above it, one below it), each fold tests exactly its test file, trains
    and selects exactly on its train (+ valid) file, and nothing sits on two sides."""
    import tempfile

    rng = np.random.default_rng(seed)
    codes = ["Angry", "Happy", "Neutral", "Sad"]
    utts = [(f"Actor_{s:02d}", f"u{s}_{c}_{k}", c) for s in range(n_spk) for c in codes for k in range(per)]
    fold_of = {f"Actor_{s:02d}": int(rng.integers(0, n_folds)) for s in range(n_spk)}
    emobox_prefix, disk_prefix = {"same": ("", ""), "above": ("", "top/"), "below": ("audio/", "")}[root]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        (data / "ravdess").mkdir(parents=True)
        (data / "ravdess" / "label_map.json").write_text(json.dumps(RAV_MAP))
        recs = {u: _record("ravdess", u[1], f"{emobox_prefix}{u[0]}/{u[1]}.wav", u[2], 48_000) for u in utts}
        expected = {}
        for n in range(1, n_folds + 1):
            test = [u for u in utts if fold_of[u[0]] == n - 1]
            train = [u for u in utts if fold_of[u[0]] != n - 1]
            cut = len(train) // 4 if valid else 0
            d = data / "ravdess" / f"fold_{n}"
            _write_jsonl(d / f"ravdess_test_fold_{n}.jsonl", [recs[u] for u in test])
            _write_jsonl(d / f"ravdess_train_fold_{n}.jsonl", [recs[u] for u in train[cut:]])
            if valid:
                _write_jsonl(d / f"ravdess_valid_fold_{n}.jsonl", [recs[u] for u in train[:cut]])
            expected[n] = ({f"ravdess/{u[1]}" for u in test}, {f"ravdess/{u[1]}" for u in train[cut:]},
                           {f"ravdess/{u[1]}" for u in train[:cut]})
        meta = pd.DataFrame({"id": [f"ravdess/{f}" for _, f, _ in utts], "corpus": "ravdess",
                             "path": [f"{disk_prefix}{a}/{f}.wav" for a, f, _ in utts],
                             "emotion": [RAV_MAP[c].lower() for *_, c in utts],
                             "speaker": [f"ravdess/{a}" for a, _, _ in utts]})
        meta["group"] = meta["speaker"]
        study = emobox.Study(meta, tmp)
        if any(not test or not (train | val) for test, train, val in expected.values()):
            with pytest.raises(emobox.EmoBoxError, match="no (training|test) utterance"):
                study.cells(["same"])
            return
        cells = study.cells(["same"])
        study.check(print)  # every record has its file, every file its record
        ids = meta["id"].to_numpy()
        assert [c.fold for c in cells] == list(range(1, n_folds + 1))
        for c in cells:
            fit, val, test = (set(ids[x]) for x in (c.fit, c.val, c.test))
            want_test, want_train, want_val = expected[c.fold]
            assert test == want_test and fit | val == want_train | want_val
            assert not (fit & val or fit & test or val & test)
            if valid and want_val:
                assert val == want_val


def test_cli_mismatch_is_one_line_and_recorded(setup, tmp_path, capsys):
    from jaxser.study.run import main

    roots, box, _ = setup
    (roots["savee"] / "AudioData" / "KL" / "h01.wav").unlink()
    out = tmp_path / "run"
    argv = ["--dry-run", "--split", "emobox", "--emobox", str(box), "--corpus", f"ravdess={roots['ravdess']}",
            "--corpus", f"savee={roots['savee']}", "--encoder", "mfcc", "--settings", "same", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "savee: 1 EmoBox records without a file" in err[0]
    assert artifacts.read_manifest(out)["emobox"]["corpora"]["savee"]["missing"]["examples"] == ["KL_h01.wav"]
    assert main([*argv, "--emobox-mismatch", "warn"]) == 0
    assert sum(c["n_test"] for c in artifacts.read_cells(out) if c["source"] == "savee") == 31


@pytest.mark.skipif(emobox_root() is None, reason="no EmoBox checkout (JAXSER_EMOBOX or emobox/ beside the repo)")
def test_real_lists_resolve_against_release_layouts():
    """EmoBox's real RAVDESS and SAVEE lists, folds and track2 lists against the paths their
    loaders give for the release layouts (RAVDESS's Actor_XX/ folders, SAVEE's AudioData/XX/):
    every record matches one file and every track2 name one utterance."""
    data = emobox.data_dir(emobox_root())
    rows = []
    for corpus in ("ravdess", "savee"):
        lm = json.loads((data / corpus / "label_map.json").read_text())
        for rec in emobox.read_jsonl(data / corpus / f"{corpus}.jsonl"):
            name = rec["wav"].split("/")[-1]
            path = (f"Actor_{name[-6:-4]}/{name}" if corpus == "ravdess"
                    else "AudioData/{}/{}".format(*name.split("_", 1)))
            spk = path.split("/")[-2].removeprefix("Actor_")
            rows.append({"id": f"{corpus}/{name[:-4]}", "corpus": corpus, "path": path,
                         "emotion": lm[rec["emo"]].lower(), "speaker": f"{corpus}/{spk}", "group": f"{corpus}/{spk}"})
    meta = pd.DataFrame(rows)
    study = emobox.Study(meta, emobox_root())
    cells = study.cells(["same", "cross"], labels=list(emobox.TRACK_LABELS))
    study.check(print)  # nothing to report: every record has its file and every name one utterance
    assert {len(study.track(c)) for c in ("ravdess", "savee")} == {240}
    assert [c.fold for c in cells if c.source == "ravdess" and c.setting == "same"] == [1, 2, 3, 4, 5, 6]
    assert study.counts["ravdess"] == {"records": 1440, "matched": 1440, "utterances": 1440}


def test_segments_match_by_file_and_start(tmp_path):
    """PAVOQUE's utterances are spans of one recording per style: EmoBox lists each with its
    start_time, jaxser's rows carry `start`; both the cells and the spec match on it."""
    data = tmp_path / "data" / "pavoque"
    data.mkdir(parents=True)
    (data / "label_map.json").write_text(json.dumps({"angry": "Angry", "neutral": "Neutral", "sad": "Sad",
                                                     "happy": "Happy", "poker": "Poker"}))
    spans = [(style, round(2.5 * k, 2)) for style in ("angry", "happy") for k in range(6)]

    def rec(style, t0):
        return {**_record("pavoque", f"{style}_{t0}", f"pavoque-{style}.flac", style, 44_100),
                "start_time": t0, "end_time": t0 + 2.0}
    _write_jsonl(data / "fold_1" / "pavoque_train_fold_1.jsonl", [rec(s, t) for s, t in spans if t < 10])
    _write_jsonl(data / "fold_1" / "pavoque_test_fold_1.jsonl", [rec(s, t) for s, t in spans if t >= 10])
    meta = pd.DataFrame({"id": [f"pavoque/{s}-{t}" for s, t in spans], "corpus": "pavoque",
                         "path": [f"pavoque-{s}.flac" for s, _ in spans], "start": [t for _, t in spans],
                         "emotion": [s for s, _ in spans], "speaker": "pavoque/spk", "group": "pavoque/spk"})
    study = emobox.Study(meta, tmp_path)
    (cell,) = study.cells(["same"])
    study.check(print)
    assert sorted(meta["id"].to_numpy()[cell.test]) == ["pavoque/angry-10.0", "pavoque/angry-12.5",
                                                         "pavoque/happy-10.0", "pavoque/happy-12.5"]
    assert not cell.val_speaker_disjoint and len(cell.fit) + len(cell.val) == 8  # one speaker: by utterance
    run = tmp_path / "run"
    run.mkdir()
    meta.to_parquet(run / artifacts.METADATA_FILE, index=False)
    artifacts.write_cells(run, [cell])
    artifacts.write_splits(run, [cell], meta["id"].to_numpy())
    artifacts.write_manifest(run, {"config": {}, "fingerprint": "f" * 12, "emobox": study.report()})
    assert check_emobox(run) == []
    cell.test = cell.test[:-1]  # one segment of the test file left out
    artifacts.write_cells(run, [cell])
    artifacts.write_splits(run, [cell], meta["id"].to_numpy())
    assert any("EmoBox's test file lists 4" in p for p in check_emobox(run))


def test_a_whole_emobox_run_passes_the_spec(setup, tmp_path):
    """Trained end to end on EmoBox's folds and track (MFCC, one seed, a few epochs): the spec's
    run checks hold (check_emobox included), the report scores EmoBox's way."""
    from jaxser.study.run import main
    from spec.checks import check_run

    roots, box, _ = setup
    cfg = tmp_path / "study.toml"
    cfg.write_text(f'''
[run]
seeds = [0]
settings = ["same", "cross"]
labels = ["angry", "happy", "neutral", "sad"]
split = "emobox"
emobox = "{box}"
bootstrap = 50
[corpora]
ravdess = "{roots['ravdess']}"
savee = "{roots['savee']}"
[models]
encoders = ["mfcc"]
heads = ["fcn"]
[train]
max_epochs = 3
patience = 2
''')
    out = tmp_path / "run"
    assert main(["--config", str(cfg), "--out", str(out), "--cache", str(tmp_path / "cache")]) == 0
    assert check_run(out) == []
    manifest = artifacts.read_manifest(out)
    assert manifest["emobox"]["corpora"]["ravdess"]["matched"] == 32
    folds = pd.read_csv(out / "emobox_folds.csv", dtype={"fold": str})
    assert list(folds.loc[folds["source"] == "savee", "fold"]) == ["1", "2", "mean"]
    text = (out / "report.md").read_text()
    assert "No published number" in text  # MFCC is not in the paper
    assert "Same-corpus: EmoBox's folds" in text and "test on all of the target" not in text


def test_provenance_is_the_commit_of_a_checkout_else_digests(tmp_path):
    import hashlib
    import subprocess

    box = make_emobox(tmp_path / "EmoBox")
    lm = box / "data" / "savee" / "label_map.json"
    rep = emobox.provenance(box / "data", [lm])
    assert rep["commit"] is None
    assert rep["sha256"] == {"savee/label_map.json": hashlib.sha256(lm.read_bytes()).hexdigest()}

    def git(*args):
        return subprocess.run(["git", "-C", str(box), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              check=True, capture_output=True, text=True).stdout.strip()
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "lists")
    head = git("rev-parse", "HEAD")
    assert emobox.provenance(box / "data", [lm]) == {"data": str((box / "data").resolve()), "commit": head}
    git("pack-refs", "--all")  # the branch's ref now lives in packed-refs only
    assert emobox.git_commit(box / "data") == head


def test_two_records_claiming_one_file_are_ambiguous(tmp_path):
    """Oréau's two sessions share file names: a root inside one of them must not let the other
    session's records match its files."""
    data = tmp_path / "data" / "oreau"
    data.mkdir(parents=True)
    (data / "label_map.json").write_text(json.dumps({"J": "Happy", "T": "Sad"}))
    recs = [_record("oreau", f"{s}-{n}", f"{s}/f/sessj/{n}", n[5], 48_000)
            for s in ("OreauFR_01", "OreauFR_02") for n in ("10a01Ja.wav", "10a01Ta.wav")]
    _write_jsonl(data / "fold_1" / "oreau_train_fold_1.jsonl", recs[:2])
    _write_jsonl(data / "fold_1" / "oreau_test_fold_1.jsonl", recs[2:])
    meta = pd.DataFrame({"id": ["oreau/a", "oreau/b"], "corpus": "oreau",
                         "path": ["f/sessj/10a01Ja.wav", "f/sessj/10a01Ta.wav"],  # the root: OreauFR_01
                         "emotion": ["happy", "sad"], "speaker": "oreau/10", "group": "oreau/10"})
    study = emobox.Study(meta, tmp_path, mismatch="warn")
    with pytest.raises(emobox.EmoBoxError, match="no test utterance"):
        study.cells(["same"])
    rep = study.report()["corpora"]["oreau"]
    assert rep["ambiguous"]["count"] == 2 and "OreauFR_02/f/sessj/10a01Ja.wav and" in rep["ambiguous"]["examples"][0]


def test_cafe_garbled_folders_and_decomposed_accents_match(tmp_path):
    """EmoBox's CaFE list garbles Colère/Dégoût (CP437 read as Windows-1252); a disk may store
    Oréau's accented folder decomposed (NFD). Both still match, by rule and by NFC."""
    import unicodedata

    data = tmp_path / "data"
    for corpus, lm, wavs in (("cafe", {"c": "Angry", "d": "Disgust"},
                              [("CaFE_48k/ColŠre/Fort/01-C-2-1.wav", "c"),
                               ("CaFE_48k/D‚go–t/Faible/02-D-1-3.wav", "d")]),
                             ("oreau", {"J": "Happy", "T": "Sad"},
                              [("OréauFR_01/f/sessj/10a01Ja.wav", "J"), ("OréauFR_01/m/sesst/11a01Ta.wav", "T")])):
        (data / corpus).mkdir(parents=True)
        (data / corpus / "label_map.json").write_text(json.dumps(lm))
        recs = [_record(corpus, str(i), w, code, 48_000) for i, (w, code) in enumerate(wavs)]
        _write_jsonl(data / corpus / "fold_1" / f"{corpus}_train_fold_1.jsonl", recs[:1])
        _write_jsonl(data / corpus / "fold_1" / f"{corpus}_test_fold_1.jsonl", recs[1:])
    paths = ["CaFE_48k/Colère/Fort/01-C-2-1.wav", "CaFE_48k/Dégoût/Faible/02-D-1-3.wav",
             unicodedata.normalize("NFD", "OréauFR_01/f/sessj/10a01Ja.wav"),
             unicodedata.normalize("NFD", "OréauFR_01/m/sesst/11a01Ta.wav")]
    meta = pd.DataFrame({"id": [f"x/{i}" for i in range(4)], "corpus": ["cafe", "cafe", "oreau", "oreau"],
                         "path": paths, "emotion": ["angry", "disgust", "happy", "sad"],
                         "speaker": ["cafe/01", "cafe/02", "oreau/10", "oreau/11"]})
    meta["group"] = meta["speaker"]
    study = emobox.Study(meta, tmp_path)
    cells = study.cells(["same"])
    study.check(print)
    assert [meta["id"].to_numpy()[c.test].tolist() for c in cells] == [["x/1"], ["x/3"]]
