"""Writes tests/data/reference/: tiny random checkpoints, their input waves, and every hidden layer the
reference implementations compute from them (transformers' PyTorch models; the PyTorch re-typings of
SpeechBrain's x-vector and FunASR's emotion2vec in tests/).

The parity tests read these, so they check jaxser's ports without torch installed; where torch is
installed they also regenerate each case and fail if the stored one differs. Needs torch and
transformers (`pip install -e ".[reference]"`, see docs/encoders.md). From the repository root:

    python -m tests.helpers.make_reference_fixtures            # every case
    python -m tests.helpers.make_reference_fixtures wavlm-base # some cases (the manifest is rewritten)
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from jaxser.io import atomic_write, atomic_write_json, publish_dir, sha256_file, temp_sibling
from tests.helpers.corpus_fixtures import voiced_wave
from tests.helpers.reference_fixtures import MANIFEST, STORED, pack_waves

SR = 16_000


def pcm16(w) -> np.ndarray:
    """`w` rounded to 16-bit PCM levels (as float32): such waves are stored as int16, half the size."""
    return (np.round(np.clip(w, -1.0, 1.0 - 2.0 ** -15) * 32768.0) / 32768.0).astype(np.float32)


def wave(n: int, seed: int) -> np.ndarray:
    """A voiced-like test signal of n samples at 16-bit PCM levels."""
    return pcm16(voiced_wave(n, seed, SR))


def _converted_from_name(folder: Path) -> None:
    """Converters record the source path; a temporary folder's name would differ on every run."""
    cfg = json.loads((folder / "config.json").read_text())
    if "converted_from" in cfg:
        atomic_write_json(folder / "config.json", {**cfg, "converted_from": Path(cfg["converted_from"]).name})


def _save_npz(path: Path, arrays: dict) -> None:
    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    atomic_write(path, write)


def _perturb(model, scale=0.1, seed=0, buffers=False):
    """Move every parameter (and batch-norm statistic) away from its trivial init."""
    import torch

    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))
        if buffers:
            for name, b in model.named_buffers():
                if "running" in name:
                    b.add_(0.2 * torch.rand_like(b))
    return model.eval()


# ------------------------------------------------------------------ wav2vec2 family (transformers)
W2V_LENGTHS = (1234, 5600, 2717)  # clearly different lengths, padded together in one bucket
W2V_TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                conv_dim=(16, 16, 16), conv_kernel=(10, 3, 2), conv_stride=(5, 2, 2),
                num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)


def noise_waves(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [pcm16(0.3 * rng.standard_normal(n) + 0.05) for n in lengths]


def normalized(waves):
    """wav2vec2's do_normalize: zero mean, unit variance per utterance."""
    return [((w - w.mean()) / np.sqrt(w.var() + 1e-7)).astype(np.float32) for w in waves]


def _w2v_model(kind, stable=False, task=False, seed=0, **extra):
    import torch
    import transformers as tf

    variant = dict(do_stable_layer_norm=stable, feat_extract_norm="layer" if stable else "group", conv_bias=stable)
    if kind == "wav2vec2":
        cfg, cls = tf.Wav2Vec2Config(**W2V_TINY, **variant, **extra), tf.Wav2Vec2ForCTC if task else tf.Wav2Vec2Model
    elif kind == "hubert":
        cfg, cls = tf.HubertConfig(**W2V_TINY, **variant, **extra), tf.HubertModel
    elif kind == "wavlm":  # few buckets so that short test inputs reach the logarithmic buckets
        cfg, cls = tf.WavLMConfig(**W2V_TINY, **variant, num_buckets=20, max_bucket_distance=40, **extra), tf.WavLMModel
    elif kind == "unispeech-sat":
        cfg, cls = tf.UniSpeechSatConfig(**W2V_TINY, **variant, **extra), tf.UniSpeechSatModel
    elif kind == "data2vec-audio":
        cfg = tf.Data2VecAudioConfig(**{**W2V_TINY, "num_conv_pos_embeddings": 3}, conv_pos_kernel_size=5,
                                     conv_bias=True)
        cls = tf.Data2VecAudioModel
    else:
        raise ValueError(kind)
    torch.manual_seed(seed)
    return _perturb(cls(cfg), seed=seed, buffers=True)


def _w2v_reference(model, waves):
    """Every hidden state, mean over frames, of each utterance run alone (batch of one, no padding)."""
    import torch

    base = getattr(model, "wav2vec2", model)
    out = []
    with torch.inference_mode():
        for w in waves:
            hs = base(torch.from_numpy(w)[None], output_hidden_states=True).hidden_states
            out.append(torch.stack([h[0].mean(0) for h in hs]).numpy())
    return np.stack(out)


def _w2v_case(kind, stable=False, with_normalized=False, **model_args):
    def make(path: Path):
        model = _w2v_model(kind, stable, **model_args)
        model.save_pretrained(str(path))
        waves = noise_waves(W2V_LENGTHS)
        arrays = {**pack_waves("wave_", waves), "ref": _w2v_reference(model, waves)}
        if with_normalized:
            arrays["ref_normalized"] = _w2v_reference(model, normalized(waves))
        return arrays
    return make


# ------------------------------------------------------------------ Whisper (transformers)
WHISPER_LENGTHS = (7_000, 23_456, 40_001)
#: waves of 30 s and more are one period tiled, so the fixture stays small
PERIOD = 16_001
LONG = 480_000 + 24_000  # 31.5 s: a full window + 1.5 s
MEL_FRAMES_STEP = 60  # the stored log-mel keeps every 60th of the 3000 frames


def tiled(n, seed):
    return np.tile(wave(PERIOD, seed), -(-n // PERIOD))[:n].copy()


def whisper_mel_waves():
    """Tiny, short (with digital silence), exactly 30 s, cut at 30 s."""
    waves = [wave(1, 0), wave(12_345, 1), tiled(480_000, 2), tiled(500_000, 3)]
    waves[1][:4000] = 0.0
    return waves


def _whisper(path: Path):
    import torch
    import transformers

    from jaxser.encoders import whisper

    cfg = transformers.WhisperConfig(
        d_model=32, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=64,
        decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=32, vocab_size=64,
        num_mel_bins=80, max_source_positions=1500, max_target_positions=16,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
        suppress_tokens=[], begin_suppress_tokens=[])
    torch.manual_seed(0)
    model = _perturb(transformers.WhisperModel(cfg))
    model.save_pretrained(str(path), safe_serialization=True)
    fe = transformers.WhisperFeatureExtractor(feature_size=80)

    def pooled(wave):
        """Pooled hidden states [L + 1, D] on one window (frames that hold audio only)."""
        feats = fe(wave, sampling_rate=SR, return_tensors="pt").input_features
        with torch.no_grad():
            out = model.encoder(feats, output_hidden_states=True)
        hs = torch.stack(out.hidden_states)[:, 0].numpy()  # [L + 1, 1500, D]
        assert np.array_equal(hs[-1], out.last_hidden_state[0].numpy())  # the last entry carries the final norm
        n = whisper.encoder_frames(min(wave.size, 480_000))
        return hs[:, :n].mean(axis=1), n

    waves = [wave(n, i) for i, n in enumerate(WHISPER_LENGTHS)]
    arrays = {**pack_waves("wave_", waves), "ref": np.stack([pooled(w)[0] for w in waves])}
    long = tiled(LONG, 7)
    (r1, n1), (r2, n2) = pooled(long[:480_000]), pooled(long[480_000:])
    arrays |= {**pack_waves("long_", [long], {0: long[:PERIOD]}), "long_ref_windows": np.stack([r1, r2]),
               "long_window_frames": np.array([n1, n2], np.int64)}
    mel_waves = whisper_mel_waves()
    arrays |= pack_waves("mel_wave_", mel_waves, {2: mel_waves[2][:PERIOD], 3: mel_waves[3][:PERIOD]})
    for n_mels in (80, 128):
        fe_n = transformers.WhisperFeatureExtractor(feature_size=n_mels)
        arrays[f"mel_filters_{n_mels}"] = fe_n.mel_filters.astype(np.float32)
        log_mel = fe_n(mel_waves, sampling_rate=SR, return_tensors="np").input_features
        arrays[f"log_mel_{n_mels}"] = log_mel[..., ::MEL_FRAMES_STEP].astype(np.float32)
    return arrays


# ------------------------------------------------------------------ w2v-BERT 2.0 (transformers)
#: 35 ms (one frame), odd and even filterbank frame counts, one past the 64-frame left clip
W2V_BERT_LENGTHS = (560, 7_000, 12_345, 40_001)
W2V_BERT_TASK_LENGTHS = (9_000, 20_000)


def w2v_bert_waves(lengths=W2V_BERT_LENGTHS):
    waves = [wave(n, i) for i, n in enumerate(lengths)]
    if len(waves) > 2:
        waves[2][:4000] = 0.0  # digital silence inside the valid part
    return waves


def _w2v_bert_config(**extra):
    import transformers

    from jaxser.encoders import w2v_bert

    cfg = {k: v for k, v in w2v_bert.PRESETS["tiny"].items() if k != "model_type"}
    return transformers.Wav2Vec2BertConfig(**{**cfg, **extra})


def _w2v_bert_reference(model, waves):
    """Per utterance, run alone through feature extractor + model: pooled [n, L + 1, D], and the
    frames of the first and last hidden state (concatenated over utterances)."""
    import torch
    import transformers

    fe = transformers.SeamlessM4TFeatureExtractor()
    base = getattr(model, "wav2vec2_bert", model)
    pooled, first, last = [], [], []
    for w in waves:
        f = fe(w, sampling_rate=SR, return_tensors="pt")
        with torch.inference_mode():
            hs = base(f.input_features, attention_mask=f.attention_mask, output_hidden_states=True).hidden_states
        t = int(f.attention_mask.sum())
        frames = torch.stack([h[0, :t] for h in hs]).numpy()
        pooled.append(frames.mean(axis=1))
        first.append(frames[0])
        last.append(frames[-1])
    return {"ref": np.stack(pooled), "frames_first": np.concatenate(first), "frames_last": np.concatenate(last)}


def _w2v_bert(path: Path):
    import torch
    import transformers

    from jaxser.encoders import w2v_bert

    torch.manual_seed(0)
    model = _perturb(transformers.Wav2Vec2BertModel(_w2v_bert_config()))
    model.save_pretrained(str(path))
    waves = w2v_bert_waves()
    fe = transformers.SeamlessM4TFeatureExtractor()
    feats = fe(waves, sampling_rate=SR, return_tensors="np")  # one padded batch
    valid = feats["attention_mask"].sum(axis=1).astype(np.int64)
    defaults = transformers.Wav2Vec2BertConfig().to_dict()
    return {**pack_waves("wave_", waves), **_w2v_bert_reference(model, waves),
            "features": np.concatenate([feats["input_features"][i, :t]
                                        for i, t in enumerate(valid)]).astype(np.float32),
            "feature_frames": valid, "mel_filters": np.asarray(fe.mel_filters), "window": np.asarray(fe.window),
            # the reference's default configuration, for the "large" preset (facebook/w2v-bert-2.0's sizes)
            "large_keys": np.array(sorted(w2v_bert.PRESETS["large"])),
            "large_values": np.array([json.dumps(defaults[k]) for k in sorted(w2v_bert.PRESETS["large"])])}


def _w2v_bert_task(path: Path):
    """A CTC fine-tuning layout (`wav2vec2_bert.` prefix, lm_head, adapter, intermediate FFN)."""
    import torch
    import transformers

    torch.manual_seed(1)
    cfg = _w2v_bert_config(vocab_size=12, add_adapter=True, num_adapter_layers=1,
                           use_intermediate_ffn_before_adapter=True)
    model = _perturb(transformers.Wav2Vec2BertForCTC(cfg), seed=1)
    model.save_pretrained(str(path))
    waves = w2v_bert_waves(W2V_BERT_TASK_LENGTHS)
    return {**pack_waves("wave_", waves), "ref": _w2v_bert_reference(model, waves)["ref"]}


# ------------------------------------------------------------------ x-vector (SpeechBrain re-typed)
#: the released layout (24 mels, 5 TDNN blocks, statistics pooling) at a small width
XVECTOR = dict(n_mels=24, channels=(32, 32, 32, 32, 64), lin=32)
XVECTOR_LENGTHS = (480, 4_000, 23_456, 40_001)  # the shortest input (4 frames), sub-second, two buckets
XVECTOR_NOISE_WAVE = (12_000, 3)


def xvector_waves():
    waves = [wave(n, i) for i, n in enumerate(XVECTOR_LENGTHS)]
    waves[2][:4_000] = 0.0  # digital silence: the 1e-10 floor and the 80 dB clip
    return waves


def xvector_speechbrain_folder(path: Path):
    """(SpeechBrain-layout folder with torch pickles, the reference model)."""
    from tests.helpers import xvector_reference as ref

    model = ref.perturbed_xvector(seed=0, **XVECTOR)
    return ref.save_speechbrain_folder(path, model, **XVECTOR), model


def _xvector(path: Path):
    import torch

    from jaxser.encoders import xvector_convert
    from tests.helpers import xvector_reference as ref

    with tempfile.TemporaryDirectory() as tmp:
        sb, model = xvector_speechbrain_folder(Path(tmp) / "speechbrain")
        xvector_convert.convert(sb, path)
    _converted_from_name(path)
    waves = xvector_waves()
    arrays = {**pack_waves("wave_", waves), "filterbank": ref.Filterbank(XVECTOR["n_mels"]).matrix().numpy()}
    for i, w in enumerate(waves):
        f, pooled, emb = ref.reference(model, w, n_mels=XVECTOR["n_mels"])
        arrays |= {f"fbank_{i}": f, f"layers_{i}": np.concatenate([pooled, emb[None]])}
    n, seed = XVECTOR_NOISE_WAVE
    w = wave(n, seed)
    torch.manual_seed(0)  # SpeechBrain's pooling noise, drawn three times
    arrays |= {**pack_waves("noise_wave_", [w]),
               "noise_drawn": np.stack([ref.reference(model, w, n_mels=XVECTOR["n_mels"], noise=None)[2]
                                        for _ in range(3)])}
    return arrays


# ------------------------------------------------------------------ emotion2vec (FunASR re-typed)
E2V_LENGTHS = W2V_LENGTHS
#: released flags at a tiny width: 10 extra tokens, conv_pos_width 95 / depth 5 (kernel 19)
E2V_RELEASE_FLAGS = dict(extra_tokens=10, conv_pos_width=95, conv_pos_depth=5, conv_pos_groups=4)
E2V_VARIANTS = {
    # GroupNorm conv stack, pre-LN positional encoder, even positional kernel (16 // 4), per-layer ALiBi
    # scales, 3 of 4 heads with ALiBi (non-power-of-two slopes)
    "default-extractor": dict(extractor_mode="default", conv_pos_pre_ln=True, conv_pos_width=16, conv_pos_depth=4,
                              per_layer_scale=True, num_alibi_heads=3, normalize=False, extra_tokens=2),
    # pre-LN blocks with the final LayerNorm (and no context-encoder norm), no extra tokens
    "layer-norm-first": dict(layer_norm_first=True, extra_tokens=0, prenet_depth=1),
}


def emotion2vec_release_model():
    """(reference model, FunASR model_conf) with the released flags."""
    from tests.helpers import emotion2vec_reference as ref

    conf = ref.model_conf(**E2V_RELEASE_FLAGS)
    return ref.build(conf, seed=0), conf


def _e2v_reference(model, waves):
    from tests.helpers import emotion2vec_reference as ref

    pooled, emb = zip(*(ref.utterance_reference(model, w) for w in waves))
    return {"ref": np.stack(pooled), "emb": np.stack(emb)}


def _emotion2vec_release(path: Path):
    import torch

    from jaxser.encoders import emotion2vec_convert
    from tests.helpers import emotion2vec_reference as ref

    model, conf = emotion2vec_release_model()
    with tempfile.TemporaryDirectory() as tmp:
        src = ref.save_funasr_folder(Path(tmp) / "emotion2vec_plus_tiny", model, conf)
        emotion2vec_convert.convert(src, path)
    _converted_from_name(path)
    atomic_write_json(path / "model_conf.json", conf)
    waves = noise_waves(E2V_LENGTHS)
    src_t = torch.nn.functional.layer_norm(torch.from_numpy(waves[0]), (waves[0].size,))
    with torch.no_grad():
        frames = model.extract_features(src_t.view(1, -1))["x"][0].numpy()  # FunASR's granularity="frame"
    return {**pack_waves("wave_", waves), **_e2v_reference(model, waves), "frames_0": frames}


def _emotion2vec_variant(variant):
    def make(path: Path):
        from safetensors.numpy import save_file

        from tests.helpers import emotion2vec_reference as ref

        conf = ref.model_conf(**E2V_VARIANTS[variant])
        model = ref.build(conf, seed=1)
        path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path / "model_conf.json", conf)
        from jaxser.encoders.emotion2vec import IGNORED  # the pre-training decoder etc.: never read

        weights = {k: v.numpy() for k, v in model.state_dict().items() if not k.startswith(IGNORED)}
        atomic_write(path / "weights.safetensors", lambda tmp: save_file(weights, tmp))
        waves = noise_waves(E2V_LENGTHS[1:], seed=2)
        return {**pack_waves("wave_", waves), **_e2v_reference(model, waves)}
    return make


CASES = {
    "wav2vec2-base": _w2v_case("wav2vec2"),
    "wav2vec2-stable": _w2v_case("wav2vec2", True, with_normalized=True),
    "hubert-base": _w2v_case("hubert"),
    "hubert-stable": _w2v_case("hubert", True),
    "wavlm-base": _w2v_case("wavlm"),
    "wavlm-stable": _w2v_case("wavlm", True),
    "unispeech-sat-base": _w2v_case("unispeech-sat"),
    "unispeech-sat-stable": _w2v_case("unispeech-sat", True),
    "data2vec-audio-base": _w2v_case("data2vec-audio"),
    "hubert-bn-pos-conv": _w2v_case("hubert", conv_pos_batch_norm=True),
    "wav2vec2-ctc": _w2v_case("wav2vec2", task=True, vocab_size=12),
    "whisper": _whisper,
    "w2v-bert": _w2v_bert,
    "w2v-bert-ctc-adapter": _w2v_bert_task,
    "xvector": _xvector,
    "emotion2vec-release": _emotion2vec_release,
    **{f"emotion2vec-{v}": _emotion2vec_variant(v) for v in E2V_VARIANTS},
}


def build_case(name: str, root: Path) -> Path:
    """Generate case `name` into root/name (replacing it whole once complete)."""
    root.mkdir(parents=True, exist_ok=True)
    target = root / name
    folder = temp_sibling(target, "new")
    try:
        arrays = CASES[name](folder)
        _save_npz(folder / "reference.npz", arrays)
        publish_dir(folder, target, is_complete=lambda _: False)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return target


def write_manifest(root: Path) -> None:
    """sha256 of every case file, so a damaged or hand-edited fixture is refused when read."""
    files = {f"{d.name}/{f.name}": sha256_file(f) for d in sorted(root.iterdir()) if d.is_dir()
             for f in sorted(d.iterdir()) if f.is_file()}
    atomic_write_json(root / MANIFEST, {"generator": "tests/helpers/make_reference_fixtures.py", "files": files})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cases", nargs="*", metavar="CASE", help=f"default: all of {', '.join(CASES)}")
    ap.add_argument("--out", type=Path, default=STORED)
    args = ap.parse_args(argv)
    unknown = sorted(set(args.cases) - set(CASES))
    if unknown:
        ap.error(f"unknown cases {unknown}; choose from {', '.join(CASES)}")
    for name in args.cases or CASES:
        build_case(name, args.out)
        print(f"{args.out / name}")
    for d in args.out.iterdir():  # cases no longer generated
        if d.is_dir() and d.name not in CASES and not d.name.startswith("."):
            shutil.rmtree(d)
    write_manifest(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
