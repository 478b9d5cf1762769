"""Checkpoints as the Hub publishes them, read without torch and without running pickle code.

tests/data/checkpoints holds files torch itself wrote (tests/helpers/make_checkpoint_fixtures.py)
in each released layout; the reader must equal torch's own load bit for bit. Hub layouts are
served by a fake `snapshot_download` that copies those folders into a Hub-style cache. Hostile
pickles are built here with the standard library, and each must be refused with one line and
without any side effect.
"""
from __future__ import annotations

import fnmatch
import json
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from jaxser import encoders
from jaxser.encoders import hf, torch_pickle
from jaxser.encoders.base import EncoderError
from jaxser.encoders.torch_pickle import CheckpointError

DATA = Path(__file__).parent / "data" / "checkpoints"
REFERENCE = Path(__file__).parent / "data" / "reference"


def _expected() -> dict[str, np.ndarray]:
    from safetensors import safe_open

    with safe_open(str(DATA / "tensors_expected.safetensors"), "np") as f:
        shapes = json.loads(f.metadata()["shapes"])
        return {k: f.get_tensor(k).reshape(shapes[k]) for k in f.keys()}


@pytest.mark.parametrize("name", ["tensors_zip.pt", "tensors_legacy.pt"])
def test_reader_equals_torch_bit_for_bit(name):
    got = torch_pickle.load(DATA / name)
    expected = _expected()
    assert sorted(got) == sorted(expected)
    for k, want in expected.items():
        g = got[k].view(np.int16) if k == "bf16" else got[k]
        assert g.dtype == want.dtype and g.shape == want.shape, k
        np.testing.assert_array_equal(g, want, err_msg=k)
        assert not got[k].flags.writeable  # views over the file, never written through
    assert str(got["bf16"].dtype) == "bfloat16"
    assert got["shared_again"] is got["f32"] or np.shares_memory(got["shared_again"], got["f32"])


def test_reader_equals_live_torch_load():
    torch = pytest.importorskip("torch", reason="the live comparison needs torch (the stored one does not)")
    for name in ("tensors_zip.pt", "tensors_legacy.pt", "wav2vec2-bin/pytorch_model.bin",
                 "xvector-speechbrain/embedding_model.ckpt", "emotion2vec-funasr/model.pt"):
        ref = torch.load(DATA / name, weights_only=True)
        got = torch_pickle.load(DATA / name)
        ref = ref.get("model", ref)
        got = got.get("model", got)
        for k, v in ref.items():
            if not hasattr(v, "numpy"):
                continue
            want = v.view(torch.int16).numpy() if v.dtype == torch.bfloat16 else v.numpy()
            g = got[k].view(np.int16) if v.dtype == torch.bfloat16 else got[k]
            np.testing.assert_array_equal(g, want, err_msg=f"{name}: {k}")


def test_memory_mapped_storages():
    got = torch_pickle.load(DATA / "tensors_zip.pt")
    base = got["f32"]
    while base.base is not None and not isinstance(base, np.memmap):
        base = base.base
    assert isinstance(base, np.memmap)


def test_training_state_is_inert_or_refused():
    f = DATA / "emotion2vec-fairseq" / "emotion2vec_base.pt"
    with pytest.raises(CheckpointError, match=r"refused to load global 'argparse\.Namespace'"):
        torch_pickle.load(f)
    ckpt = torch_pickle.load(f, inert=("argparse.Namespace",))
    assert isinstance(ckpt["args"], torch_pickle.Record) and ckpt["args"].get("seed") == 1
    assert ckpt["extra_state"]["steps"] == 100000 and ckpt["optimizer_history"][0]["best"] == 0.25
    assert isinstance(ckpt["model"]["modality_encoders.AUDIO.extra_tokens"], np.ndarray)


# ----------------------------------------------------------------------------- hostile files

class _Reduce:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


class _ReduceEx:
    def __reduce_ex__(self, protocol):
        return eval, ("open('MARKER', 'w')",)


def _torch_zip(path: Path, payload: bytes, storages: dict[str, bytes] | None = None, compress=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compress) as z:
        z.writestr("archive/data.pkl", payload)
        z.writestr("archive/version", "3\n")
        for k, v in (storages or {}).items():
            z.writestr(f"archive/data/{k}", v)
    return path


def _hostile_payloads(marker: Path) -> dict[str, bytes]:
    import builtins
    import subprocess

    return {
        "os.system": pickle.dumps({"w": _Reduce(os.system, (f"touch {marker}",))}, protocol=2),
        "builtins.exec": pickle.dumps(_Reduce(builtins.exec, (f"open({str(marker)!r}, 'w')",)), protocol=2),
        "subprocess.Popen": pickle.dumps(_Reduce(subprocess.Popen, (["touch", str(marker)],)), protocol=2),
        "eval": pickle.dumps(_ReduceEx(), protocol=2).replace(b"MARKER", str(marker).encode()),
        "other module": pickle.dumps({"when": __import__("datetime").date(2024, 1, 1)}, protocol=2),
    }


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_hostile_pickles_are_refused_without_side_effects(tmp_path, fmt):
    marker = tmp_path / "pwned"
    for what, payload in _hostile_payloads(marker).items():
        f = tmp_path / f"{what.replace(' ', '_')}.pt"
        if fmt == "zip":
            _torch_zip(f, payload)
        else:
            f.write_bytes(pickle.dumps(torch_pickle._LEGACY_MAGIC, protocol=2)
                          + pickle.dumps(torch_pickle._LEGACY_PROTOCOL, protocol=2)
                          + pickle.dumps({"little_endian": True}, protocol=2) + payload)
        with pytest.raises(CheckpointError, match=r"refused to load global '[\w.]+'") as e:
            torch_pickle.load(f)
        assert "\n" not in str(e.value) and str(f) in str(e.value), what
        assert not marker.exists(), f"{what}: the pickle ran code"


def test_damaged_files_are_one_line_errors(tmp_path):
    good = (DATA / "tensors_zip.pt").read_bytes()
    cases = {"truncated.pt": good[: len(good) // 2], "empty.pt": b"", "text.pt": b"not a checkpoint\n"}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(CheckpointError) as e:
            torch_pickle.load(tmp_path / name)
        assert "\n" not in str(e.value) and name in str(e.value)


def test_storage_bounds_are_checked(tmp_path):
    with zipfile.ZipFile(DATA / "tensors_zip.pt") as z:
        names = z.namelist()
        prefix = names[0].split("/")[0]
        pkl = z.read(f"{prefix}/data.pkl")
        # the f32 tensor [6, 8] reads storage '0' from offset 0: move its offset past the data
        raw = {n: z.read(n) for n in names}
    # BININT1 0 after the persistent id of the first tensor is its storage offset; set it to 45
    i = pkl.index(b"Q") + 1
    assert pkl[i:i + 2] == b"K\x00"
    raw[f"{prefix}/data.pkl"] = pkl[:i] + b"K\x2d" + pkl[i + 2:]
    bad = tmp_path / "offset.pt"
    with zipfile.ZipFile(bad, "w") as z:
        for n, v in raw.items():
            z.writestr(n, v)
    with pytest.raises(CheckpointError, match="storage offset past its data"):
        torch_pickle.load(bad)
    # a storage shorter than its tensors need
    raw[f"{prefix}/data.pkl"] = pkl
    raw[f"{prefix}/data/0"] = raw[f"{prefix}/data/0"][:-4]
    with zipfile.ZipFile(bad, "w") as z:
        for n, v in raw.items():
            z.writestr(n, v)
    with pytest.raises(CheckpointError, match="holds 188 bytes, its tensors need 192"):
        torch_pickle.load(bad)


def test_zip_bomb_is_refused_before_inflating(tmp_path, monkeypatch):
    monkeypatch.setattr(torch_pickle, "MAX_PICKLE_BYTES", 1 << 20)
    payload = pickle.dumps({"pad": b"\0" * (8 << 20)}, protocol=2)  # 8 MiB deflating to a few KiB
    f = _torch_zip(tmp_path / "bomb.pt", payload, compress=zipfile.ZIP_DEFLATED)
    assert f.stat().st_size < 100_000
    with pytest.raises(CheckpointError, match="refusing to inflate"):
        torch_pickle.load(f)


# ----------------------------------------------------------------------------- releases through the encoders

@pytest.mark.parametrize("release, converted", [
    ("wav2vec2-bin", REFERENCE / "wav2vec2-base"),
    ("wav2vec2-sharded-bin", REFERENCE / "wav2vec2-base"),
    ("xvector-speechbrain", REFERENCE / "xvector"),
    ("emotion2vec-funasr", REFERENCE / "emotion2vec-release"),
    ("emotion2vec-fairseq", REFERENCE / "emotion2vec-release"),  # no config.yaml: the checkpoint's cfg.model
])
def test_releases_load_as_published(release, converted):
    """A pickle release loads directly (no torch, no flag, no conversion step) into exactly the
    encoder its safetensors conversion gives: same fingerprint, same embeddings."""
    a, b = encoders.load(str(DATA / release)), encoders.load(str(converted))
    assert a.fingerprint == b.fingerprint
    wave = [np.sin(np.linspace(0, 300, 16_000)).astype(np.float32)]
    np.testing.assert_array_equal(a.embed(wave), b.embed(wave))
    assert set(a.provenance["sha256"]) and all(len(h) == 64 for h in a.provenance["sha256"].values())


def test_allow_pickle_is_accepted_and_ignored():
    with pytest.warns(DeprecationWarning, match="allow_pickle is no longer needed"):
        enc = encoders.load(str(DATA / "wav2vec2-bin"), allow_pickle=True)
    assert enc.fingerprint == encoders.load(str(DATA / "wav2vec2-bin")).fingerprint


# ----------------------------------------------------------------------------- the Hub, faked

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A fake `snapshot_download` serving repos from folders, into a Hub-style cache; records calls."""
    import huggingface_hub

    repos: dict[str, Path] = {}
    calls: list[tuple] = []
    cache = tmp_path / "hf-cache"

    def snapshot_download(repo_id, *, revision=None, allow_patterns=None, **kw):
        calls.append((repo_id, revision, tuple(allow_patterns or ())))
        if repo_id not in repos:
            raise huggingface_hub.errors.RepositoryNotFoundError(f"404 Client Error: {repo_id} not found")
        if revision not in (None, "main", COMMIT):
            raise huggingface_hub.errors.RevisionNotFoundError(f"Invalid rev id: {revision}")
        snap = cache / ("models--" + repo_id.replace("/", "--")) / "snapshots" / COMMIT
        snap.mkdir(parents=True, exist_ok=True)
        for f in repos[repo_id].iterdir():
            if any(fnmatch.fnmatch(f.name, p) for p in allow_patterns or ["*"]):
                shutil.copy(f, snap / f.name)
        return str(snap)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return repos, calls


def _both(tmp_path) -> Path:
    both = tmp_path / "both"
    shutil.copytree(DATA / "wav2vec2-bin", both)
    shutil.copy(REFERENCE / "wav2vec2-base" / "model.safetensors", both)
    return both


def test_hub_layouts_resolve_as_released(hub, tmp_path):
    repos, calls = hub
    repos["org/st-only"] = REFERENCE / "wav2vec2-base"
    repos["org/bin-only"] = DATA / "wav2vec2-bin"
    repos["org/sharded"] = DATA / "wav2vec2-sharded-bin"
    repos["org/both"] = _both(tmp_path)
    fps = {}
    for repo in repos:
        enc = encoders.load(repo)
        fps[repo] = enc.fingerprint
        assert enc.provenance["repo"] == repo and enc.provenance["revision"] == COMMIT
    assert len(set(fps.values())) == 1
    snap = Path(hf.resolve("org/both"))
    assert (snap / "model.safetensors").exists() and not (snap / "pytorch_model.bin").exists()  # safetensors first
    assert encoders.load("org/bin-only").provenance["sha256"] == {
        "pytorch_model.bin": __import__("jaxser.io", fromlist=["sha256_file"]).sha256_file(
            DATA / "wav2vec2-bin" / "pytorch_model.bin")}


def test_revisions_are_pinned_and_passed(hub):
    repos, calls = hub
    repos["microsoft/wavlm-base-plus"] = DATA / "wav2vec2-bin"  # any small checkpoint stands in for the repo
    with pytest.raises(EncoderError, match=r"wavlm-base-plus@.*jaxser fetch"):
        encoders.load("wavlm-base-plus")  # pinned to a commit the fake does not have
    assert calls and all(c[1] == encoders.REVISIONS["microsoft/wavlm-base-plus"] for c in calls)
    calls.clear()
    enc = encoders.load(f"wavlm-base-plus@{COMMIT}")
    assert enc.provenance["revision"] == COMMIT and all(c[1] == COMMIT for c in calls)
    for entry in encoders.REVISIONS.values():
        assert len(entry) == 40 and int(entry, 16) >= 0


def test_offline_miss_names_file_revision_and_fetch(hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EncoderError) as e:
        hf.resolve("org/missing@abc123")
    msg = str(e.value)
    assert "\n" not in msg and "org/missing@abc123" in msg and "config.json" in msg
    assert "HF_HUB_OFFLINE is set" in msg and "jaxser fetch org/missing@abc123" in msg


def test_fetch_command_verifies_and_lists_every_problem(hub, capsys, tmp_path):
    from jaxser.cli import main

    repos, _ = hub
    repos["org/bin-only"] = DATA / "wav2vec2-bin"
    broken = tmp_path / "broken"
    shutil.copytree(DATA / "wav2vec2-bin", broken)
    (broken / "pytorch_model.bin").write_bytes(b"\x80\x02}q\x00.")  # an empty dict: keys missing
    assert main(["fetch", "org/bin-only", "random-wav2vec2"]) == 0
    out = capsys.readouterr().out
    assert f"org/bin-only: ok, org/bin-only@{COMMIT}, 1 weight file(s)" in out
    assert main(["fetch", "org/nope", str(broken), "org/bin-only"]) == 2
    err = capsys.readouterr().err
    assert "2 of 3 encoders cannot be had" in err and "org/nope" in err and str(broken) in err


def test_study_reports_every_missing_encoder_and_corpus_before_any_work(hub, capsys, tmp_path):
    from jaxser.cli import main

    cfg = tmp_path / "s.toml"
    cfg.write_text('[corpora]\nsynth-alba = ""\nemodb = "/no/such/EmoDB"\n'
                   '[models]\nencoders = ["egemaps", "org/nope", "wavlm-base-pls", "xvector"]\n')
    assert main(["run", "--config", str(cfg), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "3 of 4 encoders and 1 of 2 corpora" in err
    for what in ("org/nope", "did you mean wavlm-base-plus", "speechbrain/spkrec-xvect-voxceleb",
                 "/no/such/EmoDB"):
        assert what in err, what
    assert not (tmp_path / "run").exists()  # nothing claimed, nothing computed


def test_unpinned_repos_stay_at_their_first_commit(tmp_path, monkeypatch):
    """A repo the registry does not pin is used at the commit it was first fetched at: a later
    re-upload to main changes nothing until `jaxser fetch --update` moves the pin."""
    import huggingface_hub

    from jaxser.cli import main

    first, second = "1" * 40, "2" * 40
    state = {"main": first}
    folders = {first: DATA / "wav2vec2-bin", second: REFERENCE / "wav2vec2-base"}
    cache = tmp_path / "cache"
    monkeypatch.setattr(hf, "pins_file", lambda: cache / "jaxser-pins.json")

    def snapshot_download(repo_id, *, revision=None, allow_patterns=None, **kw):
        commit = state["main"] if revision in (None, "main") else revision
        if commit not in folders:
            raise huggingface_hub.errors.RevisionNotFoundError(f"Invalid rev id: {revision}")
        snap = cache / ("models--" + repo_id.replace("/", "--")) / "snapshots" / commit
        snap.mkdir(parents=True, exist_ok=True)
        for f in folders[commit].iterdir():
            if any(fnmatch.fnmatch(f.name, p) for p in allow_patterns or ["*"]):
                shutil.copy(f, snap / f.name)
        return str(snap)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    assert encoders.load("org/unpinned").provenance["revision"] == first
    assert hf.read_pins() == {"org/unpinned": first}
    state["main"] = second  # the publisher re-uploads
    assert encoders.load("org/unpinned").provenance["revision"] == first
    assert main(["fetch", "--update", "org/unpinned"]) == 0
    assert hf.read_pins() == {"org/unpinned": second}
    assert encoders.load("org/unpinned").provenance["revision"] == second
    assert encoders.load(f"org/unpinned@{first}").provenance["revision"] == first  # an explicit revision wins
    assert hf.read_pins() == {"org/unpinned": second}


def test_a_build_opcode_cannot_turn_a_storage_into_objects(tmp_path):
    """BUILD on a storage stand-in (setting its element type to `object`) is refused, so no array of
    Python object pointers can be made from file bytes."""
    payload = (b"\x80\x02" + b"ctorch._utils\n_rebuild_tensor_v2\n" + b"(("
               + b"X\x07\x00\x00\x00storage" + b"ctorch\nFloatStorage\n"
               + b"}X\x05\x00\x00\x00dtypeX\x06\x00\x00\x00object"
               + b"s" + b"b"  # {"dtype": "object"} set onto the storage type by BUILD
               + b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x02tQK\x00K\x02\x85K\x01\x85\x89}tR.")
    f = _torch_zip(tmp_path / "objects.pt", payload, {"0": b"\0" * 8})
    with pytest.raises(CheckpointError, match="refused element type 'object'"):
        torch_pickle.load(f)
