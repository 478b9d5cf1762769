"""PyTorch reference for the x-vector parity tests: SpeechBrain's eval-mode pipeline re-typed from its
published source (SpeechBrain itself needs torchaudio and is not a jaxser dependency).

Followed: speechbrain/lobes/features.py (Fbank), speechbrain/processing/features.py (STFT,
spectral_magnitude, Filterbank, InputNormalization), speechbrain/nnet/CNN.py (Conv1d, get_padding_elem),
speechbrain/nnet/normalization.py (BatchNorm1d), speechbrain/nnet/linear.py (Linear),
speechbrain/nnet/pooling.py (StatisticsPooling) and speechbrain/lobes/models/Xvector.py (Xvector).
Module nesting mirrors SpeechBrain's, so `state_dict()` has its key names (blocks.0.conv.weight,
blocks.2.norm.running_mean, blocks.16.w.weight, ...), and the files are saved the way its checkpointer
does (torch.save of the state dict into embedding_model.ckpt).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

HYPERPARAMS = """\
# ############################################################################
# Model: xvector for speaker verification (layout of speechbrain/spkrec-xvect-voxceleb)
# ############################################################################

# Feature parameters
n_mels: {n_mels}

# Pretrain folder (HuggingFace)
pretrained_path: speechbrain/spkrec-xvect-voxceleb

# Output parameters
out_n_neurons: 7205

# Model params
compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: !ref <n_mels>

mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False

embedding_model: !new:speechbrain.lobes.models.Xvector.Xvector
    in_channels: !ref <n_mels>
    activation: !name:torch.nn.LeakyReLU
    tdnn_blocks: 5
    tdnn_channels: {channels}
    tdnn_kernel_sizes: [5, 3, 3, 1, 1]
    tdnn_dilations: [1, 2, 3, 1, 1]
    lin_neurons: {lin}

classifier: !new:speechbrain.lobes.models.Xvector.Classifier
    input_shape: [null, null, {lin}]
    activation: !name:torch.nn.LeakyReLU
    lin_blocks: 1
    lin_neurons: {lin}
    out_neurons: !ref <out_n_neurons>

mean_var_norm_emb: !new:speechbrain.processing.features.InputNormalization
    norm_type: global
    std_norm: False

modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
    mean_var_norm_emb: !ref <mean_var_norm_emb>
    classifier: !ref <classifier>

label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder

pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
        mean_var_norm_emb: !ref <mean_var_norm_emb>
        classifier: !ref <classifier>
        label_encoder: !ref <label_encoder>
    paths:
        embedding_model: !ref <pretrained_path>/embedding_model.ckpt
        mean_var_norm_emb: !ref <pretrained_path>/mean_var_norm_emb.ckpt
        classifier: !ref <pretrained_path>/classifier.ckpt
        label_encoder: !ref <pretrained_path>/label_encoder.txt
"""


# ----------------------------------------------------------------------------- features
class STFT(nn.Module):
    def __init__(self, sample_rate=16000, win_length=25, hop_length=10, n_fft=400):
        super().__init__()
        self.n_fft = n_fft
        self.win_length = int(round((sample_rate / 1000.0) * win_length))
        self.hop_length = int(round((sample_rate / 1000.0) * hop_length))
        self.window = torch.hamming_window(self.win_length)

    def forward(self, x):
        stft = torch.stft(x, self.n_fft, self.hop_length, self.win_length, self.window, True, "constant", False, True,
                          return_complex=True)
        return torch.view_as_real(stft).transpose(2, 1)  # (batch, time, freq, 2)


def spectral_magnitude(stft, power=1, eps=1e-14):
    spectr = stft.pow(2).sum(-1)
    if power < 1:
        spectr = spectr + eps
    return spectr.pow(power)


class Filterbank(nn.Module):
    """Frozen triangular filterbank with SpeechBrain's log/amin/top_db conventions."""

    def __init__(self, n_mels=40, f_min=0, f_max=8000, n_fft=400, sample_rate=16000, amin=1e-10, ref_value=1.0,
                 top_db=80.0):
        super().__init__()
        self.amin, self.top_db, self.multiplier = amin, top_db, 10  # power_spectrogram=2
        self.db_multiplier = math.log10(max(amin, ref_value))
        mel = torch.linspace(self._to_mel(f_min), self._to_mel(f_max), n_mels + 2)
        hz = self._to_hz(mel)
        band = hz[1:] - hz[:-1]
        self.band = band[:-1]
        self.f_central = hz[1:-1]
        all_freqs = torch.linspace(0, sample_rate // 2, n_fft // 2 + 1)
        self.all_freqs_mat = all_freqs.repeat(self.f_central.shape[0], 1)

    @staticmethod
    def _to_mel(hz):
        return 2595 * math.log10(1 + hz / 700)

    @staticmethod
    def _to_hz(mel):
        return 700 * (10 ** (mel / 2595) - 1)

    def matrix(self):
        f_central_mat = self.f_central.repeat(self.all_freqs_mat.shape[1], 1).transpose(0, 1)
        band_mat = self.band.repeat(self.all_freqs_mat.shape[1], 1).transpose(0, 1)
        slope = (self.all_freqs_mat - f_central_mat) / band_mat
        left_side = slope + 1.0
        right_side = -slope + 1.0
        return torch.max(torch.zeros(1), torch.min(left_side, right_side)).transpose(0, 1)

    def forward(self, spectrogram):
        fbanks = torch.matmul(spectrogram, self.matrix())
        x_db = self.multiplier * torch.log10(torch.clamp(fbanks, min=self.amin))
        x_db -= self.multiplier * self.db_multiplier
        new_x_db_max = x_db.amax(dim=(-2, -1)) - self.top_db
        return torch.max(x_db, new_x_db_max.view(x_db.shape[0], 1, 1))


class Fbank(nn.Module):
    def __init__(self, n_mels=40, sample_rate=16000, n_fft=400, win_length=25, hop_length=10):
        super().__init__()
        self.compute_STFT = STFT(sample_rate, win_length, hop_length, n_fft)
        self.compute_fbanks = Filterbank(n_mels=n_mels, f_max=sample_rate / 2, n_fft=n_fft, sample_rate=sample_rate)

    def forward(self, wav):
        return self.compute_fbanks(spectral_magnitude(self.compute_STFT(wav)))


def sentence_mean_norm(x, lengths, eps=1e-10):
    """InputNormalization(norm_type="sentence", std_norm=False) in eval mode."""
    max_len = x.size(1)
    mask = (torch.arange(max_len).unsqueeze(0) < (lengths * max_len - 1e-6).unsqueeze(1)).unsqueeze(2)
    n = mask.sum(1, keepdim=True)
    mean = (x * mask).sum(1, keepdim=True) / n
    std = torch.ones_like(mean)
    return (x - mean) / std.clamp(min=eps)


# ----------------------------------------------------------------------------- x-vector
def get_padding_elem(L_in, stride, kernel_size, dilation):
    if stride > 1:
        return [math.floor(kernel_size / 2), math.floor(kernel_size / 2)]
    L_out = math.floor((L_in - dilation * (kernel_size - 1) - 1) / stride) + 1
    return [math.floor((L_in - L_out) / 2), math.floor((L_in - L_out) / 2)]


class Conv1d(nn.Module):
    def __init__(self, out_channels, kernel_size, in_channels, dilation=1, padding_mode="reflect"):
        super().__init__()
        self.kernel_size, self.dilation, self.padding_mode = kernel_size, dilation, padding_mode
        self.in_channels = in_channels
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride=1, dilation=dilation, padding=0)

    def forward(self, x):
        x = x.transpose(1, -1)
        x = F.pad(x, get_padding_elem(self.in_channels, 1, self.kernel_size, self.dilation), mode=self.padding_mode)
        return self.conv(x).transpose(1, -1)


class BatchNorm1d(nn.Module):
    def __init__(self, input_size, eps=1e-05, momentum=0.1):
        super().__init__()
        self.norm = nn.BatchNorm1d(input_size, eps=eps, momentum=momentum)

    def forward(self, x):
        return self.norm(x.transpose(-1, 1)).transpose(1, -1)


class Linear(nn.Module):
    def __init__(self, n_neurons, input_size, bias=True):
        super().__init__()
        self.w = nn.Linear(input_size, n_neurons, bias=bias)

    def forward(self, x):
        return self.w(x)


class StatisticsPooling(nn.Module):
    """As SpeechBrain: the noise is added to the mean in eval mode too. `noise=None` draws it like
    SpeechBrain; a float adds that constant instead (the JAX port adds its expectation, 5e-5)."""

    def __init__(self, noise=None):
        super().__init__()
        self.eps = 1e-5
        self.noise = noise

    def forward(self, x, lengths=None):
        mean, std = [], []
        for snt_id in range(x.shape[0]):
            actual_size = int(torch.round(lengths[snt_id] * x.shape[1]))
            mean.append(torch.mean(x[snt_id, 0:actual_size, ...], dim=0))
            std.append(torch.std(x[snt_id, 0:actual_size, ...], dim=0))
        mean, std = torch.stack(mean), torch.stack(std)
        mean = mean + (self._get_gauss_noise(mean.size()) if self.noise is None else self.noise)
        std = std + self.eps
        return torch.cat((mean, std), dim=1).unsqueeze(1)

    def _get_gauss_noise(self, shape_of_tensor):
        gnoise = torch.randn(shape_of_tensor)
        gnoise -= torch.min(gnoise)
        gnoise /= torch.max(gnoise)
        return self.eps * ((1 - 9) * gnoise + 9)


class Xvector(nn.Module):
    def __init__(self, activation=nn.LeakyReLU, tdnn_blocks=5, tdnn_channels=(512, 512, 512, 512, 1500),
                 tdnn_kernel_sizes=(5, 3, 3, 1, 1), tdnn_dilations=(1, 2, 3, 1, 1), lin_neurons=512, in_channels=40):
        super().__init__()
        self.blocks = nn.ModuleList()
        for b in range(tdnn_blocks):
            out_channels = tdnn_channels[b]
            self.blocks.extend([
                Conv1d(out_channels, tdnn_kernel_sizes[b], in_channels, dilation=tdnn_dilations[b]),
                activation(),
                BatchNorm1d(input_size=out_channels),
            ])
            in_channels = tdnn_channels[b]
        self.blocks.append(StatisticsPooling())
        self.blocks.append(Linear(input_size=out_channels * 2, n_neurons=lin_neurons, bias=True))

    def forward(self, x, lens=None):
        for layer in self.blocks:
            try:
                x = layer(x, lengths=lens)
            except TypeError:
                x = layer(x)
        return x


# ----------------------------------------------------------------------------- helpers for the tests
def perturbed_xvector(seed=0, n_mels=24, channels=(512, 512, 512, 512, 1500), lin=512):
    """A SpeechBrain-layout Xvector with every parameter and BatchNorm statistic moved off its init."""
    torch.manual_seed(seed)
    model = Xvector(tdnn_channels=list(channels), lin_neurons=lin, in_channels=n_mels).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(0.05 * torch.randn_like(p) * (p.abs().mean() + 0.1))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.copy_(0.3 * torch.randn_like(m.running_mean))
                m.running_var.copy_(0.5 + torch.rand_like(m.running_var))
                m.num_batches_tracked.fill_(1234)
    return model


def reference(model, wave, *, n_mels=24, noise=5e-5):
    """(Fbank features [T, n_mels], pooled block outputs [n_blocks - 1, C], x-vector [lin]) of ONE
    utterance, as EncoderClassifier.encode_batch computes it (wav_lens = 1)."""
    fb = Fbank(n_mels=n_mels)
    pool = model.blocks[-2]
    pool.noise = noise
    captured = []
    hooks = [model.blocks[3 * b + 2].register_forward_hook(lambda m, i, o: captured.append(o))
             for b in range(len(model.blocks) // 3 - 1)]
    try:
        with torch.no_grad():
            wav = torch.as_tensor(wave, dtype=torch.float32)[None]
            lens = torch.ones(1)
            feats = fb(wav)
            emb = model(sentence_mean_norm(feats, lens), lens)
    finally:
        for h in hooks:
            h.remove()
        pool.noise = None
    pooled = torch.stack([c[0].mean(0) for c in captured])  # blocks 1 .. n - 1, averaged over all frames
    return feats[0].numpy(), pooled.numpy(), emb[0, 0].numpy()


def save_speechbrain_folder(path, model, *, n_mels=24, channels=(512, 512, 512, 512, 1500), lin=512, seed=0):
    """hyperparams.yaml + embedding_model.ckpt + mean_var_norm_emb.ckpt (+ classifier.ckpt and
    label_encoder.txt, which the x-vector does not use) as SpeechBrain's model folder holds them."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "hyperparams.yaml").write_text(HYPERPARAMS.format(n_mels=n_mels, channels=list(channels), lin=lin))
    torch.save(model.state_dict(), path / "embedding_model.ckpt")
    g = torch.Generator().manual_seed(seed + 1)
    torch.save({"count": 1000, "glob_mean": torch.randn(lin, generator=g), "glob_std": torch.ones(lin)},
               path / "mean_var_norm_emb.ckpt")
    torch.save({"out.w.weight": torch.zeros(3, lin)}, path / "classifier.ckpt")
    (path / "label_encoder.txt").write_text("'id10001' => 0\n")
    return path
