"""Synthetic corpora: determinism, schema, caching, atomicity, speech-likeness, corpus shift and
emotion learnability (within and across corpora).

The four default corpora are generated once per session into a temporary folder (a few
seconds); acoustic checks use plain numpy features (MFCC statistics, an autocorrelation
pitch tracker, LPC) computed on the 16 kHz waveforms `jaxser.audio.load` returns, i.e. the
path every encoder takes.
"""
from __future__ import annotations

import csv
import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxser import audio
from jaxser import corpora as registry
from jaxser.corpora import synthetic as S
from jaxser.corpora.synthetic import cache as synthetic_cache
from jaxser.corpora.schema import CANONICAL_EMOTIONS, COLUMNS, DIMENSIONS, CorpusError, UnknownLabelError

FOUR = ("angry", "happy", "neutral", "sad")
SR = audio.SAMPLE_RATE


# ------------------------------------------------------------------ fixtures and features

@pytest.fixture(scope="session")
def cache(tmp_path_factory):
    """A JAXSER_CACHE folder holding the generated default set."""
    base = tmp_path_factory.mktemp("cache")
    S.generate_all(base / "synthetic" / f"v{S.VERSION}")
    return base


@pytest.fixture(scope="session")
def root(cache):
    return cache / "synthetic" / f"v{S.VERSION}"


@pytest.fixture(scope="session")
def datasets(root):
    return S.load_all(root)


@pytest.fixture(scope="session")
def waves(datasets):
    return {name: [audio.load(p) for p in ds["audio"]] for name, ds in datasets.items()}


@pytest.fixture
def tiny(monkeypatch):
    """A registered 8-utterance corpus, for the cache/atomicity tests (fast to regenerate)."""
    base = S.CORPORA["synth-alba"]
    spec = dataclasses.replace(base, name="synth-tiny", population=S.Population(1, 1), n_sentences=1,
                               emotions=FOUR, label_map=tuple((c, e) for c, e in base.label_map if e in FOUR))
    monkeypatch.setitem(S.CORPORA, "synth-tiny", spec)
    return spec


def _mel_dct(n_fft=512, n_mels=26, n_ceps=13):
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    pts = 700 * (10 ** (np.linspace(mel(50.0), mel(7600.0), n_mels + 2) / 2595) - 1)
    bins = np.fft.rfftfreq(n_fft, 1 / SR)
    fb = np.stack([np.clip(np.minimum((bins - lo) / (c - lo), (hi - bins) / (hi - c)), 0, None)
                   for lo, c, hi in zip(pts, pts[1:], pts[2:])])
    k = np.arange(n_mels)
    return fb, np.cos(np.pi / n_mels * (k[None, :] + 0.5) * np.arange(n_ceps)[:, None])


FB, DCT = _mel_dct()


def pitch(x):
    """Per-frame F0 (Hz) and normalised autocorrelation peak: 40 ms frames, 10 ms hop, 70-500
    Hz; only local maxima count (low-pass noise decays monotonically), frames more than 25 dB
    below the loudest get peak 0."""
    fr = np.lib.stride_tricks.sliding_window_view(x, 640)[::160]
    fr = fr - fr.mean(1, keepdims=True)
    ac = np.fft.irfft(np.abs(np.fft.rfft(fr * np.hanning(640), 1024)) ** 2, 1024)[:, :240]  # lags < 240
    ac = ac / (ac[:, :1] + 1e-12)
    lo, hi = SR // 500, SR // 70
    seg = ac[:, lo:hi]
    is_peak = (seg[:, 1:-1] > seg[:, :-2]) & (seg[:, 1:-1] >= seg[:, 2:])
    val = np.where(is_peak, seg[:, 1:-1], -1.0)
    lag = lo + 1 + val.argmax(1)
    peak = np.maximum(val.max(1), 0.0)
    e = (fr ** 2).mean(1)
    return SR / lag, np.where(e > e.max() * 10 ** -2.5, peak, 0.0)


def features(x):
    """MFCC mean/std/delta statistics, log-energy percentiles, active fraction, log-F0 stats."""
    fr = np.lib.stride_tricks.sliding_window_view(x, 400)[::160] * np.hamming(400)
    p = np.abs(np.fft.rfft(fr, 512)) ** 2
    e = np.log(p.sum(1) + 1e-10)
    act = e > e.max() - 6.9
    m = (np.log(p @ FB.T + 1e-10) @ DCT.T)[act]
    f0, pk = pitch(x)
    lf = np.log(f0[pk > 0.5]) if (pk > 0.5).sum() > 3 else np.log(np.full(4, 150.0))
    return np.concatenate([m.mean(0), m.std(0), np.abs(np.diff(m, axis=0)).mean(0),
                           np.percentile(e[act], [10, 50, 90]), [act.mean()],
                           [lf.mean(), lf.std(), np.percentile(lf, 90) - np.percentile(lf, 10), (pk > 0.5).mean()]])


@pytest.fixture(scope="session")
def raw_feats(waves):
    return {name: np.stack([features(w) for w in ws]) for name, ws in waves.items()}


@pytest.fixture(scope="session")
def feats(datasets, raw_feats):
    """Per-corpus (speaker-normalised features, emotions, speakers): speaker normalisation is
    the standard SER practice (Schuller et al. 2010) and removes speaker/channel offsets."""
    out = {}
    for name, ds in datasets.items():
        X = raw_feats[name].copy()
        spk = np.array(ds["speaker"])
        for s in set(spk):
            X[spk == s] = (X[spk == s] - X[spk == s].mean(0)) / (X[spk == s].std(0) + 1e-9)
        out[name] = (X, np.array(ds["emotion"]), spk)
    return out


def _clf():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=1000))


# ------------------------------------------------------------------ the corpus set

def test_four_corpora_as_specified():
    assert len(S.CORPORA) == 4
    for name, spec in S.CORPORA.items():
        assert name.startswith("synth-") and spec.name == name
        assert spec.language_tag.startswith("x-")
        assert set(FOUR) <= set(spec.emotions) <= set(CANONICAL_EMOTIONS) and 4 <= len(spec.emotions) <= 6
        n_spk = spec.population.n_female + spec.population.n_male
        assert 8 <= n_spk <= 12 and spec.population.n_female and spec.population.n_male
        assert 150 <= spec.n_utterances <= 250
        assert sorted(e for _, e in spec.label_map) == sorted(spec.emotions)
    assert len({s.sample_rate for s in S.CORPORA.values()}) >= 3
    assert len({s.language_tag for s in S.CORPORA.values()}) == 4
    assert set(S.CORPORA) <= set(registry.available())


def test_default_root_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("JAXSER_CACHE", str(tmp_path))
    assert S.default_root() == tmp_path / "synthetic" / f"v{S.VERSION}"
    monkeypatch.delenv("JAXSER_CACHE")
    assert S.default_root() == Path.home() / ".cache" / "jaxser" / "synthetic" / f"v{S.VERSION}"


# ------------------------------------------------------------------ schema

def test_schema(datasets, root):
    for name, ds in datasets.items():
        spec = S.CORPORA[name]
        assert tuple(ds.column_names) == COLUMNS + DIMENSIONS  # categorical columns, then the A/V/D targets
        assert len(ds) == spec.n_utterances
        assert len(set(ds["id"])) == len(ds) and all(i.startswith(name + "/") for i in ds["id"])
        assert set(ds["corpus"]) == {name} and set(ds["language"]) == {spec.language_tag}
        assert all(s.startswith(name + "/") for s in ds["speaker"])
        assert set(ds["gender"]) == {"female", "male"}
        assert set(ds["emotion"]) == set(spec.emotions)
        codes = dict(spec.label_map)
        assert all(codes[r] == e for r, e in zip(ds["raw_label"], ds["emotion"]))
        assert set(ds["text"]) == {f"s{i + 1:02d}" for i in range(spec.n_sentences)}
        dur = np.array(ds["duration"])
        assert dur.min() >= 1.0 and dur.max() <= 2.5
        for p, d in list(zip(ds["audio"], ds["duration"]))[::37]:
            info = audio.info(p)
            assert info.sample_rate == spec.sample_rate and info.channels == 1
            assert abs(info.duration - d) < 1e-3
        # every speaker records every emotion and sentence: a balanced, fully crossed design
        per = {(s, e) for s, e in zip(ds["speaker"], ds["emotion"])}
        assert len(per) == len(set(ds["speaker"])) * len(spec.emotions)
    # the registry path a user takes gives the same rows
    via = registry.load("synth-duna", root / "synth-duna")
    assert via["id"] == datasets["synth-duna"]["id"]


def test_default_load_uses_the_cache(cache, root, monkeypatch):
    """`jaxser.corpora.load("synth-...")` with no root: generated once into $JAXSER_CACHE, then
    reused (nothing is rewritten)."""
    monkeypatch.setenv("JAXSER_CACHE", str(cache))
    marker = root / "synth-corva" / S.MARKER
    before = marker.stat().st_mtime_ns
    ds = registry.load("synth-corva")
    assert ds[0]["audio"].startswith(str((root / "synth-corva").resolve()))
    assert marker.stat().st_mtime_ns == before


def test_fold_groups_are_speakers(datasets):
    ds = datasets["synth-alba"]
    assert registry.fold_groups(ds) == ds["speaker"]


def test_unknown_label_and_options_refused(root, tmp_path):
    spec = S.CORPORA["synth-alba"]
    with pytest.raises(CorpusError, match="no options"):
        S.load("synth-alba", root / "synth-alba", emotions=FOUR)
    with pytest.raises(CorpusError, match="unknown synthetic corpus"):
        S.generate("synth-nope", tmp_path / "x")
    folder = tmp_path / "copy"
    folder.mkdir()
    rows = list(csv.DictReader(open(root / "synth-alba" / S.METADATA)))
    rows[3]["label"] = "XYZ"
    with open(folder / S.METADATA, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=S.METADATA_FIELDS)
        w.writeheader()
        w.writerows(rows)
    with pytest.raises(UnknownLabelError, match="XYZ"):
        S.records(spec, folder)


# ------------------------------------------------------------------ determinism, cache, atomicity

def test_cache_keys_are_stable():
    """The cache folder of each corpus is keyed by VERSION and its declaration's hash: a change
    here means every user regenerates, so it must come with a VERSION bump and new values."""
    assert S.VERSION == 1
    assert {name: spec.config_hash() for name, spec in S.CORPORA.items()} == {
        "synth-alba": "39943d1e0eedde6a", "synth-bruna": "8d4934badea37674",
        "synth-corva": "1ff065983c5726c4", "synth-duna": "689bc7259d9cbc60"}


def test_deterministic_bytes(root, tmp_path):
    again = S.generate("synth-alba", tmp_path / "again")
    first = root / "synth-alba"
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (first / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_cached_not_rewritten(tiny, tmp_path):
    folder = S.generate("synth-tiny", tmp_path / "t")
    stamp = {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in folder.rglob("*")}
    assert S.generate("synth-tiny", tmp_path / "t") == folder
    assert {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in folder.rglob("*")} == stamp
    assert len(S.load("synth-tiny", folder)) == 8


def test_stale_or_damaged_cache_is_regenerated(tiny, tmp_path):
    folder = S.generate("synth-tiny", tmp_path / "t")
    wav = next(folder.rglob("*.wav"))
    good = wav.read_bytes()
    wav.write_bytes(good[:100])  # truncated file: the marker's sizes no longer match
    assert not S.is_complete(folder, tiny)
    S.generate("synth-tiny", folder)
    assert wav.read_bytes() == good
    # a different configuration (e.g. a new synthesiser version) replaces the folder
    changed = dataclasses.replace(tiny, acting=0.5)
    S.CORPORA["synth-tiny"] = changed
    assert not S.is_complete(folder, changed)
    S.generate("synth-tiny", folder)
    assert S.is_complete(folder, changed)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp/trash left


def test_interrupted_generation_leaves_nothing_complete(tiny, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = synthetic_cache.apply_channel

    def failing(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt("simulated interruption")
        return real(*a, **k)

    monkeypatch.setattr(synthetic_cache, "apply_channel", failing)
    with pytest.raises(KeyboardInterrupt):
        S.generate("synth-tiny", tmp_path / "t")
    assert not (tmp_path / "t").exists()
    assert list(tmp_path.iterdir()) == []  # the partial build folder was removed
    monkeypatch.setattr(synthetic_cache, "apply_channel", real)
    assert S.is_complete(S.generate("synth-tiny", tmp_path / "t"), tiny)


def test_killed_generation_is_cleaned_and_never_taken_as_complete(tiny, tmp_path):
    # a process killed mid-way leaves its build folder (named after its pid) behind
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftover = tmp_path / f".t.tmp-{dead.pid}-abcd1234"
    (leftover / "f01").mkdir(parents=True)
    (leftover / "f01" / "half.wav").write_bytes(b"RIFF")
    folder = S.generate("synth-tiny", tmp_path / "t")
    assert not leftover.exists() and S.is_complete(folder, tiny)
    # a folder without a marker is not ours: refused, never overwritten
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "metadata.csv").write_text("path\n")
    with pytest.raises(CorpusError, match="refusing to overwrite"):
        S.generate("synth-tiny", foreign)
    assert not S.is_complete(foreign, tiny)


# ------------------------------------------------------------------ speech-likeness

def test_voiced_frames_are_periodic_at_the_generated_f0(root, datasets, waves):
    """Harmonic source: in most active frames the autocorrelation peaks strongly at one period,
    and the tracked F0 agrees with the generator's own F0 (metadata) to within a semitone or
    two (band-limited telephone speech is harder to track)."""
    for name, ds in datasets.items():
        with open(root / name / S.METADATA) as f:
            truth = {r["path"]: float(r["f0_hz"]) for r in csv.DictReader(f)}
        errs, voiced = [], []
        for i in range(0, len(ds), 7):
            f0, pk = pitch(waves[name][i])
            v = pk > 0.5
            voiced.append(v.sum() / max((pk > 0).sum(), 1))
            ratio = np.median(f0[v]) / truth[ds["path"][i]]
            if S.CORPORA[name].channel.telephone:  # no fundamental below 300 Hz: the tracker may
                ratio /= max(1, round(ratio))  # lock onto a harmonic, an integer multiple of F0
            errs.append(abs(12 * np.log2(ratio)))
        tol = 3.0 if S.CORPORA[name].channel.telephone else 2.0
        assert np.median(voiced) > 0.5, (name, np.median(voiced))
        assert np.mean(np.array(errs) < tol) > 0.85, (name, np.round(errs, 1))


def test_formant_structure(waves):
    """Vocal-tract resonances, not bare tones: LPC of voiced frames shows at least two sharp
    resonances (bandwidth < 400 Hz) between 200 and 3500 Hz, and voiced spectra carry many
    harmonics below 3.5 kHz within 40 dB of the strongest one."""
    from scipy.linalg import solve_toeplitz

    for name, ws in waves.items():
        n_res, hf = [], []
        for x in ws[::15]:
            f0, pk = pitch(x)
            fr = np.lib.stride_tricks.sliding_window_view(x, 640)[::160]
            for frame, p, f in zip(fr[pk > 0.7], pk[pk > 0.7], f0[pk > 0.7]):
                y = np.append(frame[0], frame[1:] - 0.9 * frame[:-1]) * np.hamming(640)
                r = np.correlate(y, y, "full")[639:639 + 19]
                a = solve_toeplitz(r[:18], r[1:19])  # order 18 = 2 + kHz rule of thumb
                roots = np.roots(np.r_[1, -a])
                roots = roots[np.imag(roots) > 0]
                freq = np.angle(roots) * SR / (2 * np.pi)
                bw = -np.log(np.abs(roots)) * SR / np.pi
                n_res.append(np.sum((freq > 200) & (freq < 3500) & (bw < 400)))
                spec = 10 * np.log10(np.abs(np.fft.rfft(frame * np.hanning(640), 4096)) ** 2 + 1e-12)
                k = np.arange(1, int(3500 // f) + 1)  # harmonic peaks: max within +-F0/4 of k*F0
                idx = (k[:, None] * f + np.linspace(-f / 4, f / 4, 9)[None, :]) * 4096 / SR
                harm = spec[np.round(idx).astype(int)].max(1)
                hf.append(np.sum(harm > harm.max() - 40))
        assert np.mean(np.array(n_res) >= 2) > 0.75, (name, np.bincount(n_res))
        assert np.median(hf) >= 5, (name, np.median(hf))  # a pure tone would give 1


# ------------------------------------------------------------------ corpora differ

def test_corpora_differ(datasets, waves, raw_feats):
    from sklearn.model_selection import GroupKFold, cross_val_score

    # native sample rates and band limits differ
    rates = {name: audio.info(ds["audio"][0]).sample_rate for name, ds in datasets.items()}
    assert len(set(rates.values())) >= 3
    hf = {}
    for name, ws in waves.items():
        spec = np.mean([np.abs(np.fft.rfft(w[:16000], 16000)) ** 2 for w in ws[::10] if w.size >= 16000], axis=0)
        hf[name] = spec[3700:7500].sum() / spec[300:3300].sum()
    assert hf["synth-duna"] < 0.1 * min(v for k, v in hf.items() if k != "synth-duna"), hf  # telephone band
    # every corpus is recognisable from raw (un-normalised) features: a real domain shift
    X = np.concatenate(list(raw_feats.values()))
    y = np.concatenate([[name] * len(f) for name, f in raw_feats.items()])
    g = np.concatenate([datasets[name]["speaker"] for name in raw_feats])
    acc = cross_val_score(_clf(), X, y, groups=g, cv=GroupKFold(4)).mean()
    assert acc > 0.9, acc
    # speaker populations differ in mean F0 (generator truth, per gender)
    means = {}
    for name, ds in datasets.items():
        tracks = [pitch(w) for w in waves[name][::9]]
        f0 = np.array([np.median(f[p > 0.5]) for f, p in tracks])
        gen = np.array(ds["gender"][::9])
        means[name] = (np.median(f0[gen == "female"]), np.median(f0[gen == "male"]))
    fem = sorted(m[0] for m in means.values())
    assert fem[-1] / fem[0] > 1.1, means


# ------------------------------------------------------------------ emotion is learnable

def test_emotion_learnable_within_corpus(feats):
    """Speaker-independent 5-fold CV (speakers never shared between train and test)."""
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import GroupKFold, cross_val_predict

    for name, (X, y, g) in feats.items():
        uar = balanced_accuracy_score(y, cross_val_predict(_clf(), X, y, groups=g, cv=GroupKFold(5)))
        chance = 1 / len(set(y))
        assert uar > max(0.6, 2.5 * chance), (name, uar)


def test_emotion_transfers_across_corpora(feats):
    """Train on corpus A (angry/happy/neutral/sad), test on all of corpus B, for every ordered
    pair: above chance on average and for most pairs, clearly below same-corpus level (the
    channel, language and acting-style shift is real)."""
    from sklearn.metrics import balanced_accuracy_score

    names = list(feats)
    uar = {}
    for a in names:
        Xa, ya, _ = feats[a]
        m = np.isin(ya, FOUR)
        clf = _clf().fit(Xa[m], ya[m])
        for b in names:
            if a != b:
                Xb, yb, _ = feats[b]
                mb = np.isin(yb, FOUR)
                uar[a, b] = balanced_accuracy_score(yb[mb], clf.predict(Xb[mb]))
    vals = np.array(list(uar.values()))
    assert vals.mean() > 0.4, uar  # chance is 0.25
    assert (vals > 0.3).sum() >= 8, uar
