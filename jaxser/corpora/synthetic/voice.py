"""The formant synthesiser: who speaks (speakers), what (sentences), how (per-corpus and per-take
emotion cues), and the source-filter synthesis of one take (before the recording chain).

Synthesis, per utterance:
  * a sentence (fixed per corpus, the same text in every emotion, as in acted corpora) is a
    syllable sequence drawn from the language's phonotactics; each phone has a duration,
    formant targets (vowels, consonant loci), voicing, aspiration and frication settings;
  * an F0 contour = speaker mean x emotion level, declination, pitch accents on stressed
    syllables, a phrase-final fall or rise, micro-prosody, tremor; per-cycle jitter/shimmer;
  * a Rosenberg/LF-like glottal-flow-derivative pulse train (open quotient, spectral tilt)
    plus aspiration and place-dependent frication noise;
  * time-varying formant filtering (Klatt resonators, five to six formants scaled by the
    speaker's vocal-tract length) applied frame-wise in the STFT domain, which vectorises
    the whole utterance (no per-sample Python loops).

Every random draw comes from a generator seeded by `stable_seed` from corpus, speaker, emotion
and sentence names, so each utterance is reproducible on its own.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from jaxser.corpora.synthetic.channel import bandpass_sos
from jaxser.corpora.synthetic.specs import (ADDITIVE_CUES, CONSONANT_DURATIONS, CONSONANTS, EMOTION_CUES, SCHWA,
                                            VOWELS, CorpusSpec, Cues, Language, stable_seed)

# ----------------------------------------------------------------------------------------
# Corpus plan: speakers, sentences, per-corpus cue profiles
# ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Speaker:
    code: str
    gender: str
    f0: float  # mean F0, Hz
    vtl: float  # formant scaling (shorter vocal tract: > 1)
    jitter: float
    shimmer: float
    breath: float
    oq: float
    rate: float
    expressive: float  # speaker-specific strength of emotional expression


def speakers(s: CorpusSpec) -> list[Speaker]:
    """The corpus' speakers, drawn from its population (the same on every generation)."""
    rng = np.random.default_rng(stable_seed(s.name, "speakers"))
    p = s.population
    genders = ["female"] * p.n_female + ["male"] * p.n_male
    order = rng.permutation(len(genders))  # interleave genders across speaker numbers
    out = []
    for i, gi in enumerate(order, start=1):
        g = genders[gi]
        mu, sd = p.f0_female if g == "female" else p.f0_male
        out.append(Speaker(
            code=s.speaker_fmt.format(g=g[0], i=i),
            gender=g,
            f0=float(np.clip(rng.normal(mu, sd), 0.75 * mu, 1.3 * mu)),
            vtl=float((1.17 if g == "female" else 1.0) * np.exp(rng.normal(0, 0.04))),
            jitter=float(p.jitter * np.exp(rng.normal(0, 0.25))),
            shimmer=float(p.shimmer * np.exp(rng.normal(0, 0.25))),
            breath=float((0.05 if g == "female" else 0.03) * np.exp(rng.normal(0, 0.3))),
            oq=float((0.65 if g == "female" else 0.58) + rng.normal(0, 0.03)),
            rate=float(np.exp(rng.normal(0, 0.07))),
            expressive=float(rng.uniform(0.75, 1.25)),
        ))
    return out


def _syllable(lang: Language, rng) -> tuple[list[str], str, list[str], bool]:
    pats = [p for p, _ in lang.patterns]
    w = np.array([w for _, w in lang.patterns], dtype=float)
    pat = pats[rng.choice(len(pats), p=w / w.sum())]
    vpos = pat.index("V")
    n_on, n_co = vpos, len(pat) - vpos - 1
    if n_on == 2 and lang.clusters:
        onset = list(lang.clusters[rng.integers(len(lang.clusters))])
    else:
        onset = [lang.consonants[rng.integers(len(lang.consonants))] for _ in range(n_on)]
    codas = lang.codas or lang.consonants
    coda = [codas[rng.integers(len(codas))] for _ in range(n_co)]
    vowel = lang.vowels[rng.integers(len(lang.vowels))]
    long = bool(rng.random() < lang.long_vowels)
    return onset, vowel, coda, long


def sentences(s: CorpusSpec) -> list[list[tuple]]:
    """Each sentence: syllables (onset, vowel, coda, long, stressed), 5-8 syllables in 2-4 words."""
    rng = np.random.default_rng(stable_seed(s.name, "sentences"))
    lang = s.language
    out = []
    for _ in range(s.n_sentences):
        while True:
            words = [int(rng.integers(1, 4)) for _ in range(int(rng.integers(2, 5)))]
            if 5 <= sum(words) <= 8:
                break
        sent = []
        for n in words:
            stress_at = {"initial": 0, "final": n - 1, "penultimate": max(n - 2, 0)}[lang.stress]
            for j in range(n):
                onset, vowel, coda, long = _syllable(lang, rng)
                sent.append((onset, vowel, coda, long, j == stress_at))
        out.append(sent)
    return out


def corpus_cues(s: CorpusSpec) -> dict[str, Cues]:
    """The table's cues scaled by the corpus' acting strength, each deviation from neutral
    perturbed by a corpus-specific factor: the same emotion is expressed somewhat differently
    in every corpus (one source of cross-corpus shift)."""
    rng = np.random.default_rng(stable_seed(s.name, "cues"))
    neutral = asdict(Cues())
    out = {}
    for emo in s.emotions:
        c = asdict(EMOTION_CUES[emo])
        new = {}
        for k in sorted(c):
            f = s.acting * float(np.exp(rng.normal(0, s.cue_spread)))
            if k in ADDITIVE_CUES:
                new[k] = neutral[k] + f * (c[k] - neutral[k])
            else:
                new[k] = float(np.exp(f * np.log(c[k] / neutral[k]))) * neutral[k]
        out[emo] = Cues(**new)
    return out


def utterance_cues(c: Cues, spk: Speaker, rng) -> Cues:
    """Speaker expressiveness and per-take variation (no two takes are alike)."""
    d = asdict(c)
    neutral = asdict(Cues())
    e = spk.expressive
    out = {}
    for k in sorted(d):
        if k in ADDITIVE_CUES:
            out[k] = neutral[k] + e * (d[k] - neutral[k])
        else:
            out[k] = float(np.exp(e * np.log(d[k] / neutral[k]))) * neutral[k]
    out["level_st"] += rng.normal(0, 0.8)
    out["loud_db"] += rng.normal(0, 1.5)
    out["final_st"] += rng.normal(0, 0.8)
    out["oq"] += rng.normal(0, 0.02)
    for k, sd in (("range", 0.15), ("rate", 0.06), ("tilt", 0.12), ("jitter", 0.2), ("shimmer", 0.2),
                  ("breath", 0.2)):
        out[k] *= float(np.exp(rng.normal(0, sd)))
    return Cues(**out)


def take_cues(s: CorpusSpec, spk: Speaker, cues: dict[str, Cues], emotion: str, sentence: str):
    """(cues, generator) of one take: its generator is seeded by corpus, speaker, emotion and
    sentence id, and the per-take cue variation is its first draw -- so the dimensional
    targets (`dimensions.py`) recompute exactly the cues the audio was made with."""
    rng = np.random.default_rng(stable_seed(s.name, spk.code, emotion, sentence))
    return utterance_cues(cues[emotion], spk, rng), rng


# ----------------------------------------------------------------------------------------
# Synthesis
# ----------------------------------------------------------------------------------------

@dataclass
class _Seg:
    dur: float
    kind: str  # vowel | plosive-closure | burst | aspiration | fricative | nasal | approximant | aspirate | silence
    formants: np.ndarray  # F1..F3 (Hz, before speaker scaling)
    av: float = 0.0  # voicing amplitude
    asp: float = 0.0  # aspiration amplitude (through the vocal tract)
    fric: float = 0.0  # frication amplitude (parallel branch)
    fric_cf: float = 4000.0
    fric_bw: float = 1.0
    stressed: bool = False
    syllable: int = -1


def _plan(sentence, lang: Language, cues: Cues, rng) -> list[_Seg]:
    """Phone segments with durations (s) for one take of a sentence."""
    segs: list[_Seg] = []
    n_syl = len(sentence)
    for si, (onset, vowel, coda, long, stressed) in enumerate(sentence):
        vf = np.array(VOWELS[vowel], dtype=np.float64)
        prec = cues.precision
        vdur = 0.11
        if lang.rhythm == "stress":
            vdur *= 1.6 if stressed else 0.6
            if not stressed:
                prec *= 0.6
        elif lang.rhythm == "syllable":
            vdur *= 1.15 if stressed else 1.0
        if long:
            vdur *= 2.0
        if si == n_syl - 1:
            vdur *= 1.35 * cues.final_len
        vf = SCHWA + prec * (vf - SCHWA)
        vamp = 1.0 if stressed else 0.7
        for ph in onset:
            segs.extend(_consonant(ph, lang, si, vamp))
        segs.append(_Seg(vdur, "vowel", vf, av=vamp, stressed=stressed, syllable=si))
        for ph in coda:
            segs.extend(_consonant(ph, lang, si, vamp))
    for sg in segs:
        sg.dur *= float(np.exp(rng.normal(0, 0.1)))
    return segs


def _consonant(ph: str, lang: Language, si: int, vamp: float) -> list[_Seg]:
    c = CONSONANTS[ph]
    loci = np.array(c.loci, dtype=np.float64)
    a = 10 ** (c.amp_db / 20)
    d = CONSONANT_DURATIONS[c.kind]
    if c.kind == "plosive":
        out = [_Seg(d, "closure", loci, av=0.08 if c.voiced else 0.0, syllable=si),
               _Seg(0.012, "burst", loci, av=0.0, fric=a * 1.5, fric_cf=c.noise[0], fric_bw=c.noise[1], syllable=si)]
        if lang.aspirated and not c.voiced:
            out.append(_Seg(0.035, "aspiration", loci, asp=0.3 * vamp, syllable=si))
        return out
    if c.kind == "fricative":
        return [_Seg(d, "fricative", loci, av=0.35 if c.voiced else 0.0, fric=a, fric_cf=c.noise[0],
                     fric_bw=c.noise[1], syllable=si)]
    if c.kind == "aspirate":
        return [_Seg(d, "aspirate", loci, asp=a * 3.0, syllable=si)]
    kind_av = {"nasal": 0.3, "approximant": 0.55}[c.kind]
    return [_Seg(d, c.kind, loci, av=kind_av * vamp * (a / 10 ** (-6 / 20)) ** 0.5, syllable=si)]


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Moving average with a Hann kernel along axis 0 (edges held): coarticulation, ramps."""
    if width <= 1:
        return x
    from scipy.ndimage import convolve1d

    k = np.hanning(width + 2)[1:-1]
    return convolve1d(x, k / k.sum(), axis=0, mode="nearest")


def _factors(m: int) -> list[int]:
    out, p = [1], 2
    while m > 1:
        while m % p == 0:
            out.append(p)
            m //= p
        p += 1
    return out


def _glottal(frac: np.ndarray, oq: float) -> np.ndarray:
    """Rosenberg-C glottal flow derivative over one normalised period (LF-like: gradual
    opening, abrupt closure at t = oq, closed phase after)."""
    tp = 0.65 * oq
    tn = oq - tp
    out = np.zeros_like(frac)
    op = frac < tp
    cl = (frac >= tp) & (frac < oq)
    out[op] = (np.pi / (2 * tp)) * np.sin(np.pi * frac[op] / tp)
    out[cl] = -(np.pi / (2 * tn)) * np.sin(0.5 * np.pi * (frac[cl] - tp) / tn)
    return out


def synthesize(s: CorpusSpec, spk: Speaker, sentence, cues: Cues, rng) -> tuple[np.ndarray, float]:
    """One take: returns (float waveform at s.sample_rate before the channel, mean F0 in Hz)."""
    from scipy import fft as sfft  # lazy: `import jaxser.corpora` must stay cheap
    from scipy.signal import lfilter, sosfilt

    sr = s.sample_rate
    lang = s.language
    segs = _plan(sentence, lang, cues, rng)
    # rescale the intrinsic durations to the language's syllable rate (x speaker, emotion),
    # keeping the relative timing (long vowels, clusters, stress, final lengthening)
    speech = sum(sg.dur for sg in segs)
    want = len(sentence) / (lang.rate * cues.rate * spk.rate)
    lead, trail = float(rng.uniform(0.08, 0.18)), float(rng.uniform(0.10, 0.22))
    want = float(np.clip(want, 1.02 - lead - trail, 2.45 - lead - trail))  # 1.0-2.5 s files
    scale = want / speech
    for sg in segs:
        sg.dur *= scale
    total = lead + want + trail
    n = int(round(total * sr))

    # --- frame grid for the filter: 4-6 ms hop (a power of two), Hann windows 4 hops long,
    # FFT size with room for 20 ms of filter tail: bandwidths >= 80 Hz decay by 1/e in
    # 1/(pi B) = 4 ms, so 20 ms is > 40 dB down ---
    hop = 1 << int(np.ceil(np.log2(0.004 * sr)))
    win = 4 * hop
    m = int(np.ceil((win + 0.020 * sr) / hop))
    while max(_factors(m)) > 5:  # an FFT-friendly size (2, 3, 5-smooth)
        m += 1
    nfft = m * hop
    n_frames = (n + 2 * win) // hop + 1
    tf = (np.arange(n_frames) * hop + win / 2 - win) / sr  # frame centres, seconds

    # --- segment tracks at frame rate ---
    bounds = lead + np.cumsum([0.0] + [sg.dur for sg in segs])
    idx = np.searchsorted(bounds, tf, side="right") - 1
    inside = (idx >= 0) & (idx < len(segs))
    idx_c = np.clip(idx, 0, len(segs) - 1)
    table = np.array([[*sg.formants, sg.av, sg.asp, sg.fric, sg.fric_cf, sg.fric_bw] for sg in segs])
    tr = table[idx_c]
    # outside speech: formants held at the neighbouring segment, no excitation
    tr[~inside, 3:6] = 0.0
    form = _smooth(tr[:, :3], max(3, int(round(0.030 * sr / hop))))
    amps = _smooth(tr[:, 3:6], 3)
    av, asp = amps[:, 0], amps[:, 1]

    # --- F0 contour (semitones re the speaker/emotion level) ---
    t0, t1 = lead, lead + want
    rel = np.clip((tf - t0) / max(t1 - t0, 1e-3), 0, 1)
    contour = cues.range * 3.0 * (0.5 - rel)  # declination
    vowel_ids = [i for i, sg in enumerate(segs) if sg.kind == "vowel" and sg.stressed]
    for i in vowel_ids:
        c = 0.5 * (bounds[i] + bounds[i + 1])
        w = 0.6 * segs[i].dur + 0.03
        h = cues.range * float(rng.uniform(1.5, 3.5))
        contour = contour + h * np.exp(-0.5 * ((tf - c) / w) ** 2)
    last = [i for i, sg in enumerate(segs) if sg.kind == "vowel"][-1]
    fs_ = bounds[last]
    contour = contour + cues.final_st * np.clip((tf - fs_) / max(bounds[last + 1] - fs_, 1e-3), 0, 1) ** 1.5 \
        * (1.0 if cues.final_st > 0 else min(cues.range, 1.5))
    micro = _smooth(rng.standard_normal(n_frames), max(3, int(round(0.06 * sr / hop))))
    contour = contour + 0.35 * micro / (micro.std() + 1e-9)
    if cues.tremor_st:
        contour = contour + cues.tremor_st * np.sin(2 * np.pi * rng.uniform(5, 7) * tf + rng.uniform(0, 6.28))
    f0_level = spk.f0 * 2 ** (cues.level_st / 12)
    f0_f = np.clip(f0_level * 2 ** (contour / 12), 55.0, 650.0)

    # --- sample-rate source ---
    ts = np.arange(n) / sr
    f0 = np.interp(ts, tf, f0_f)
    phase0 = np.cumsum(f0 / sr)
    n_cyc = int(phase0[-1]) + 3
    jit = np.clip(rng.standard_normal(n_cyc), -3, 3) * spk.jitter * cues.jitter
    f0j = f0 * (1 + jit[phase0.astype(np.int64)])
    phase = np.cumsum(f0j / sr) + rng.uniform(0, 1)
    cyc = phase.astype(np.int64)
    frac = phase - cyc
    shim = np.clip(1 + spk.shimmer * cues.shimmer * rng.standard_normal(cyc[-1] + 2), 0.3, 2.0)
    oq = float(np.clip(spk.oq + cues.oq, 0.35, 0.85))
    av_s = np.interp(ts, tf, av)
    voiced = _glottal(frac, oq) * shim[cyc] * av_s
    fc = 1400.0 * cues.tilt * (1.15 if spk.gender == "female" else 1.0)
    a = float(np.exp(-2 * np.pi * min(fc, 0.45 * sr) / sr))
    voiced = lfilter([1 - a], [1, -a], voiced)
    if np.any(av_s > 0.5):
        voiced /= np.sqrt(np.mean(voiced[av_s > 0.5] ** 2)) + 1e-9
    breath = spk.breath * cues.breath
    pulse_mod = 0.5 + 0.5 * (frac < oq)  # aspiration is stronger while the glottis is open
    asp_s = np.interp(ts, tf, asp) + breath * av_s * pulse_mod
    noise_a = rng.standard_normal(n) * asp_s
    white = rng.standard_normal(n)

    # --- time-varying vocal-tract filter in the STFT domain ---
    vt = spk.vtl * cues.formants
    F = np.empty((n_frames, 6))
    F[:, :3] = form * vt
    F[:, 3] = 3500.0 * vt
    F[:, 4] = 4500.0 * vt
    F[:, 5] = 5500.0 * vt
    B = np.array([80.0, 100.0, 150.0, 220.0, 280.0, 350.0])
    B = B * (1 + 0.5 * (vt - 1))
    Bt = np.broadcast_to(B, F.shape).copy()
    Bt[:, 0] += 150.0 * breath  # breathy voice widens F1 (glottal losses)
    keep = F.max(axis=0) < 0.45 * sr
    F, Bt = F[:, keep], Bt[:, keep]
    frames = _frames(voiced + noise_a, hop, win, n_frames)
    active = frames.any(axis=1)  # silent frames (pauses, closures) need no filtering
    r = np.exp(-np.pi * Bt[active] / sr)
    c = 2 * r * np.cos(2 * np.pi * F[active] / sr)
    # each frame's all-pole polynomial A(z) = prod_k (1 - c_k z^-1 + r_k^2 z^-2), evaluated on
    # the FFT grid with one batched rfft; H = A(1) / A(z): Klatt resonators, unity gain at DC
    poly = np.zeros((len(r), 2 * F.shape[1] + 1))
    poly[:, 0] = 1.0
    for k in range(F.shape[1]):
        prev = poly.copy()
        poly[:, 1:] -= c[:, k, None] * prev[:, :-1]
        poly[:, 2:] += (r[:, k] ** 2)[:, None] * prev[:, :-2]
    # (float64 FFT: the product polynomial's coefficients span a wide range)
    H = (poly.sum(axis=1)[:, None] / sfft.rfft(poly, nfft, axis=1)).astype(np.complex64)
    y = _ola_filter(frames, active, H, hop, win, nfft, n)

    # frication (parallel branch): for each place of articulation in the sentence, band-pass
    # noise gated by that place's amplitude track, at its level re the vowels' RMS
    vowel_rms = np.sqrt(np.mean(y[av_s > 0.5] ** 2)) if np.any(av_s > 0.5) else 1.0
    places = sorted({(sg.fric_cf, sg.fric_bw) for sg in segs if sg.fric > 0})
    for cf, bw in places:
        gate = np.array([sg.fric if (sg.fric_cf, sg.fric_bw) == (cf, bw) else 0.0 for sg in segs])[idx_c]
        gate[~inside] = 0.0
        gate = np.interp(ts, tf, _smooth(gate, 3))
        cf = cf * spk.vtl ** 0.5
        lo, hi = cf * 2 ** (-bw / 2), min(cf * 2 ** (bw / 2), 0.45 * sr)
        if lo >= 0.8 * hi:
            continue  # the band lies above this corpus' Nyquist frequency
        band = sosfilt(bandpass_sos(2, float(lo), float(hi), sr), white)
        y += band / (np.sqrt(np.mean(band ** 2)) + 1e-12) * gate * (0.5 * vowel_rms)
    voiced_mask = av_s > 0.5
    f0_mean = float(np.exp(np.mean(np.log(f0j[voiced_mask])))) if np.any(voiced_mask) else float("nan")

    # --- level: speech RMS set by the emotion's intensity (dB re the corpus' neutral level) ---
    span = slice(int(lead * sr), int((lead + want) * sr))
    y = y / (np.sqrt(np.mean(y[span] ** 2)) + 1e-12)
    y *= 10 ** ((s.channel.level_db + cues.loud_db) / 20)
    return y, f0_mean


def _frames(x: np.ndarray, hop: int, win: int, n_frames: int) -> np.ndarray:
    """Periodic-Hann-windowed frames of x (padded by one window at the start), 75 % overlap."""
    xp = np.zeros((n_frames - 1) * hop + win, dtype=np.float32)
    xp[win:win + x.size] = x
    window = np.hanning(win + 1)[:-1].astype(np.float32)  # sums to 2 at 75 % overlap
    return np.lib.stride_tricks.sliding_window_view(xp, win)[::hop][:n_frames] * window


def _ola_filter(frames: np.ndarray, active: np.ndarray, H: np.ndarray, hop: int, win: int, nfft: int,
                n: int) -> np.ndarray:
    """Time-varying filtering: each active frame times its frequency response H[i] (zero-padded
    to nfft so the filter tail does not wrap around), then overlap-added; Hann frames at 75 %
    overlap add up to a constant 2."""
    from scipy import fft as sfft

    n_frames = frames.shape[0]
    m = nfft // hop
    yf = np.zeros((n_frames, nfft), dtype=np.float32)
    yf[active] = sfft.irfft(sfft.rfft(frames[active], nfft, axis=1) * H, nfft, axis=1)
    out = np.zeros((n_frames + m) * hop, dtype=np.float64)
    for j in range(m):  # overlap-add as m shifted slabs, each one vectorised
        out[j * hop:j * hop + n_frames * hop] += yf[:, j * hop:(j + 1) * hop].reshape(-1)
    return out[win:win + n] / 2.0
