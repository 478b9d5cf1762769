"""PyTorch reference for the emotion2vec parity tests: FunASR's `Emotion2vec` inference path re-typed
from its published source (funasr/models/emotion2vec/{model,audio,base,modules,fairseq_modules,
timm_modules}.py, itself the data2vec 2.0 `Data2VecMultiModel` of github.com/ddlBoJack/emotion2vec).
FunASR is not installed for the tests: it pulls modelscope, librosa/numba, umap and hydra.

Only eval-mode feature extraction is kept (`extract_features(source, padding_mask=None, mask=False)`:
no masking, dropout or layer drop), with the same module nesting, so `state_dict()` has the released
key names (modality_encoders.AUDIO.local_encoder.conv_layers.0.0.weight, ...context_encoder.blocks.0.
attn.qkv.weight, blocks.7.mlp.fc2.bias, ...). The decoder (pre-training only) and the emotion
classification head `proj` are built too, so saved checkpoints hold every key the released ones do.

`layer_states` additionally returns every block's output (extra tokens removed): the computation is
the one `forward` does, only recorded along the way.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class Conf(dict):
    """Attribute access over a nested dict, standing in for the OmegaConf object FunASR builds."""

    def __getattr__(self, k):
        v = self.get(k)
        return Conf(v) if isinstance(v, dict) else v


# ------------------------------------------------------------------ fairseq_modules.py
def LayerNorm(normalized_shape, eps=1e-5, elementwise_affine=True):
    return nn.LayerNorm(normalized_shape, eps, elementwise_affine)


class SamePad(nn.Module):
    def __init__(self, kernel_size):
        super().__init__()
        self.remove = 1 if kernel_size % 2 == 0 else 0

    def forward(self, x):
        return x[:, :, : -self.remove] if self.remove > 0 else x


class TransposeLast(nn.Module):
    def forward(self, x):
        return x.transpose(-2, -1)


class Fp32LayerNorm(nn.LayerNorm):
    def forward(self, x):
        return F.layer_norm(x.float(), self.normalized_shape, self.weight.float(), self.bias.float(),
                            self.eps).type_as(x)


class Fp32GroupNorm(nn.GroupNorm):
    def forward(self, x):
        return F.group_norm(x.float(), self.num_groups, self.weight.float(), self.bias.float(), self.eps).type_as(x)


class ConvFeatureExtractionModel(nn.Module):
    def __init__(self, conv_layers, mode="default", conv_bias=False):
        super().__init__()
        assert mode in {"default", "layer_norm"}

        def block(n_in, n_out, k, stride, is_layer_norm, is_group_norm):
            conv = nn.Conv1d(n_in, n_out, k, stride=stride, bias=conv_bias)
            if is_layer_norm:
                return nn.Sequential(conv, nn.Dropout(0.0),
                                     nn.Sequential(TransposeLast(), Fp32LayerNorm(n_out, elementwise_affine=True),
                                                   TransposeLast()),
                                     nn.GELU())
            if is_group_norm:
                return nn.Sequential(conv, nn.Dropout(0.0), Fp32GroupNorm(n_out, n_out, affine=True), nn.GELU())
            return nn.Sequential(conv, nn.Dropout(0.0), nn.GELU())

        in_d = 1
        self.conv_layers = nn.ModuleList()
        for i, (dim, k, stride) in enumerate(conv_layers):
            self.conv_layers.append(block(in_d, dim, k, stride, mode == "layer_norm", mode == "default" and i == 0))
            in_d = dim

    def forward(self, x):
        x = x.unsqueeze(1)
        for conv in self.conv_layers:
            x = conv(x)
        return x


# ------------------------------------------------------------------ timm_modules.py / modules.py
class Mlp(nn.Module):
    def __init__(self, in_features, hidden_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class AltAttention(nn.Module):
    def __init__(self, dim, num_heads=8, qkv_bias=False):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, padding_mask=None, alibi_bias=None):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        dtype = q.dtype
        q = q * self.scale
        attn = q @ k.transpose(-2, -1)
        if alibi_bias is not None:
            attn = attn.type_as(alibi_bias)
            attn[:, : alibi_bias.size(1)] += alibi_bias
        if padding_mask is not None and padding_mask.any():
            attn = attn.masked_fill(padding_mask.unsqueeze(1).unsqueeze(2).to(torch.bool), float("-inf"))
        attn = attn.softmax(dim=-1, dtype=torch.float32).to(dtype=dtype)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class AltBlock(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, qkv_bias=False, norm_layer=nn.LayerNorm,
                 layer_norm_first=True):
        super().__init__()
        self.layer_norm_first = layer_norm_first
        self.norm1 = norm_layer(dim)
        self.attn = AltAttention(dim, num_heads=num_heads, qkv_bias=qkv_bias)
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x, padding_mask=None, alibi_bias=None):
        if self.layer_norm_first:
            x = x + self.attn(self.norm1(x), padding_mask, alibi_bias)
            r = x = self.mlp(self.norm2(x))  # (sic: the released code adds the MLP output to itself)
            x = r + x
        else:
            x = x + self.attn(x, padding_mask, alibi_bias)
            r = x = self.norm1(x)
            x = self.mlp(x)
            x = self.norm2(r + x)
        return x, x


class BlockEncoder(nn.Module):
    def __init__(self, blocks, norm_layer, layer_norm_first):
        super().__init__()
        self.blocks = blocks
        self.norm = norm_layer
        self.layer_norm_first = layer_norm_first

    def forward(self, x, padding_mask, alibi_bias, alibi_scale, record=None):
        if self.norm is not None and not self.layer_norm_first:
            x = self.norm(x)
        if record is not None:
            record.append(x)
        for i, blk in enumerate(self.blocks):
            ab = alibi_bias
            if ab is not None and alibi_scale is not None:
                scale = alibi_scale[i] if alibi_scale.size(0) > 1 else alibi_scale.squeeze(0)
                ab = ab * scale.type_as(ab)
            x, _ = blk(x, padding_mask, ab)
            if record is not None:
                record.append(x)
        if self.norm is not None and self.layer_norm_first:
            x = self.norm(x)
        return x


class Decoder1d(nn.Module):
    """Pre-training decoder: built only so that state dicts carry its (ignored) keys."""

    def __init__(self, cfg, input_dim):
        super().__init__()

        def make_block(in_dim):
            return nn.Sequential(
                nn.Conv1d(in_dim, cfg.decoder_dim, kernel_size=cfg.decoder_kernel, padding=cfg.decoder_kernel // 2,
                          groups=cfg.decoder_groups),
                SamePad(cfg.decoder_kernel), TransposeLast(),
                LayerNorm(cfg.decoder_dim, elementwise_affine=False), TransposeLast(), nn.GELU())

        self.blocks = nn.Sequential(*[make_block(input_dim if i == 0 else cfg.decoder_dim)
                                      for i in range(cfg.decoder_layers)])
        self.proj = nn.Linear(cfg.decoder_dim, input_dim)


# ------------------------------------------------------------------ base.py (ALiBi)
def get_alibi(max_positions, attention_heads):
    def get_slopes(n):
        def get_slopes_power_of_2(n):
            start = 2 ** (-(2 ** -(math.log2(n) - 3)))
            ratio = start
            return [start * ratio**i for i in range(n)]

        if math.log2(n).is_integer():
            return get_slopes_power_of_2(n)
        closest_power_of_2 = 2 ** math.floor(math.log2(n))
        return (get_slopes_power_of_2(closest_power_of_2)
                + get_slopes(2 * closest_power_of_2)[0::2][: n - closest_power_of_2])

    slopes = torch.Tensor(get_slopes(attention_heads))
    pos_bias = torch.abs(torch.arange(max_positions).unsqueeze(0) - torch.arange(max_positions).unsqueeze(1)) * -1
    return slopes.unsqueeze(1).unsqueeze(1) * pos_bias.unsqueeze(0).expand(attention_heads, -1, -1)


def get_alibi_bias(batch_size, time_steps, heads, dtype):
    b = get_alibi(time_steps, heads).to(dtype=dtype).repeat(batch_size, 1, 1)
    return b.view(batch_size, heads, time_steps, time_steps)


# ------------------------------------------------------------------ audio.py + base.py
class AudioEncoder(nn.Module):
    def __init__(self, modality_cfg, embed_dim, make_block, norm_layer, layer_norm_first):
        super().__init__()
        self.modality_cfg = modality_cfg
        self.feature_enc_layers = [tuple(c) for c in modality_cfg.feature_encoder_spec]
        feature_embed_dim = self.feature_enc_layers[-1][0]
        self.local_encoder = ConvFeatureExtractionModel(self.feature_enc_layers, mode=modality_cfg.extractor_mode,
                                                        conv_bias=False)
        self.project_features = nn.Sequential(TransposeLast(), nn.LayerNorm(feature_embed_dim),
                                              nn.Linear(feature_embed_dim, embed_dim))
        num_pos_layers = modality_cfg.conv_pos_depth
        k = max(3, modality_cfg.conv_pos_width // num_pos_layers)
        positional_encoder = nn.Sequential(
            TransposeLast(),
            *[nn.Sequential(nn.Conv1d(embed_dim, embed_dim, kernel_size=k, padding=k // 2,
                                      groups=modality_cfg.conv_pos_groups),
                            SamePad(k), TransposeLast(), LayerNorm(embed_dim, elementwise_affine=False),
                            TransposeLast(), nn.GELU())
              for _ in range(num_pos_layers)],
            TransposeLast())
        if modality_cfg.conv_pos_pre_ln:
            positional_encoder = nn.Sequential(LayerNorm(embed_dim), positional_encoder)
        self.relative_positional_encoder = positional_encoder
        self.context_encoder = BlockEncoder(
            nn.ModuleList(make_block() for _ in range(modality_cfg.prenet_depth)),
            norm_layer(embed_dim) if not layer_norm_first else None, layer_norm_first)
        self.decoder = Decoder1d(modality_cfg.decoder, embed_dim) if modality_cfg.decoder is not None else None
        self.extra_tokens = None
        if modality_cfg.num_extra_tokens > 0:
            self.extra_tokens = nn.Parameter(torch.zeros(1, modality_cfg.num_extra_tokens, embed_dim))
        self.use_alibi = bool(modality_cfg.use_alibi_encoder)
        self.alibi_scale = None
        if self.use_alibi:
            self.alibi_scale = nn.Parameter(torch.full(
                ((modality_cfg.prenet_depth + modality_cfg.model_depth)
                 if modality_cfg.learned_alibi_scale_per_layer else 1,
                 1, modality_cfg.num_alibi_heads if modality_cfg.learned_alibi_scale_per_head else 1, 1, 1),
                modality_cfg.alibi_scale, dtype=torch.float))

    def convert_padding_mask(self, x, padding_mask):
        input_lengths = (1 - padding_mask.long()).sum(-1)
        for _, k, s in self.feature_enc_layers:
            input_lengths = torch.floor((input_lengths - k) / s + 1)
        output_lengths = input_lengths.to(torch.long)
        if padding_mask.any():
            padding_mask = torch.zeros(x.shape[:2], dtype=x.dtype, device=x.device)
            padding_mask[(torch.arange(padding_mask.shape[0]), output_lengths - 1)] = 1
            padding_mask = (1 - padding_mask.flip([-1]).cumsum(-1).flip([-1])).bool()
        else:
            padding_mask = torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device)
        return padding_mask

    def forward(self, features, padding_mask, record=None):
        x = self.project_features(self.local_encoder(features))
        if padding_mask is not None:
            padding_mask = self.convert_padding_mask(x, padding_mask)
        orig_B, orig_T, _ = x.shape
        x = x + self.relative_positional_encoder(x)
        masked_padding_mask = padding_mask
        alibi_bias, alibi_scale = None, self.alibi_scale
        if self.use_alibi:
            alibi_bias = get_alibi_bias(orig_B, orig_T, self.modality_cfg.num_alibi_heads, torch.float32)
            alibi_scale = alibi_scale.clamp_min(0)
            if alibi_scale.size(0) == 1:
                alibi_bias = alibi_bias * alibi_scale.squeeze(0).type_as(alibi_bias)
                alibi_scale = None
        if self.extra_tokens is not None:
            num = self.extra_tokens.size(1)
            x = torch.cat([self.extra_tokens.expand(x.size(0), -1, -1), x], dim=1)
            if masked_padding_mask is not None:
                masked_padding_mask = F.pad(masked_padding_mask, (num, 0))
            if alibi_bias is not None:
                alibi_bias = F.pad(alibi_bias, (num, 0, num, 0))
        prenet = self.modality_cfg.prenet_depth
        x = self.context_encoder(x, masked_padding_mask, alibi_bias,
                                 alibi_scale[:prenet] if alibi_scale is not None else None, record)
        return {"x": x, "padding_mask": masked_padding_mask, "alibi_bias": alibi_bias,
                "alibi_scale": alibi_scale[prenet:] if alibi_scale is not None and alibi_scale.size(0) > 1
                else alibi_scale}


# ------------------------------------------------------------------ model.py
class Emotion2vec(nn.Module):
    def __init__(self, model_conf: dict, vocab_size: int = -1):
        super().__init__()
        cfg = Conf(model_conf)
        self.cfg = cfg

        def make_layer_norm(dim):
            return nn.LayerNorm(dim, eps=cfg.norm_eps, elementwise_affine=cfg.norm_affine)

        def make_block(dim=None, heads=None):
            return AltBlock(cfg.embed_dim if dim is None else dim, cfg.num_heads if heads is None else heads,
                            cfg.mlp_ratio, qkv_bias=True, norm_layer=make_layer_norm,
                            layer_norm_first=cfg.layer_norm_first)

        self.modality_encoders = nn.ModuleDict()
        self.modality_encoders["AUDIO"] = AudioEncoder(cfg.modalities.audio, cfg.embed_dim, make_block,
                                                       make_layer_norm, cfg.layer_norm_first)
        self.blocks = nn.ModuleList([make_block() for _ in range(cfg.depth)])
        self.norm = make_layer_norm(cfg.embed_dim) if cfg.layer_norm_first else None
        self.proj = nn.Linear(cfg.embed_dim, vocab_size) if vocab_size > 0 else None

    def _forward(self, source, padding_mask=None, record=None):
        enc = self.modality_encoders["AUDIO"]
        out = enc(source, padding_mask, record)
        x, pm = out["x"], out["padding_mask"]
        ab, alibi_scale = out["alibi_bias"], out["alibi_scale"]
        for i, blk in enumerate(self.blocks):
            b = ab
            if b is not None and alibi_scale is not None:
                scale = alibi_scale[i] if alibi_scale.size(0) > 1 else alibi_scale.squeeze(0)
                b = b * scale.type_as(b)
            x, _ = blk(x, padding_mask=pm, alibi_bias=b)
            if record is not None:
                record.append(x)
        if self.norm is not None:
            x = self.norm(x)
            if record is not None:
                record[-1] = x
        num = enc.modality_cfg.num_extra_tokens
        return x[:, num:], (pm[:, num:] if pm is not None else None)

    @torch.no_grad()
    def extract_features(self, source, padding_mask=None):
        x, pm = self._forward(source, padding_mask)
        return {"x": x, "padding_mask": pm}

    @torch.no_grad()
    def layer_states(self, source):
        """Every state `forward` passes through, extra tokens removed: the prenet's input, each prenet
        block's output, each block's output (the last one after the final norm when there is one)."""
        record: list[torch.Tensor] = []
        x, _ = self._forward(source, None, record)
        num = self.modality_encoders["AUDIO"].modality_cfg.num_extra_tokens
        return [r[:, num:] for r in record], x


def utterance_reference(model: Emotion2vec, wave: np.ndarray):
    """(every layer mean-pooled [L, D], the authors' utterance embedding [D]) of one waveform, as
    FunASR's `inference(granularity="utterance")` computes it (input layer norm when cfg.normalize)."""
    source = torch.from_numpy(np.asarray(wave, np.float32))
    if model.cfg.normalize:
        source = F.layer_norm(source, source.shape)
    states, x = model.layer_states(source.view(1, -1))
    pooled = torch.stack([s[0].mean(0) for s in states]).numpy()
    return pooled, x[0].mean(0).numpy()


# ------------------------------------------------------------------ configs and files
def model_conf(embed_dim=32, depth=2, num_heads=4, prenet_depth=2, extra_tokens=3, spec=None,
               extractor_mode="layer_norm",
               conv_pos_width=15, conv_pos_depth=5, conv_pos_groups=4, conv_pos_pre_ln=False, layer_norm_first=False,
               per_layer_scale=False, normalize=True, num_alibi_heads=None) -> dict:
    """A FunASR `model_conf` with the released flags at a tiny size (the released values: embed_dim 768,
    depth 8, num_heads 12, prenet_depth 4, 10 extra tokens, conv_pos_width 95 / depth 5 / groups 16)."""
    spec = spec or "[(16, 10, 5)] + [(16, 3, 2)] * 2 + [(16, 2, 2)]"
    return {
        "loss_beta": 0.0, "loss_scale": None, "depth": depth, "start_drop_path_rate": 0.0, "end_drop_path_rate": 0.0,
        "num_heads": num_heads, "norm_eps": 1e-05, "norm_affine": True, "encoder_dropout": 0.1, "post_mlp_drop": 0.1,
        "attention_dropout": 0.1, "activation_dropout": 0.0, "dropout_input": 0.0, "layerdrop": 0.05,
        "embed_dim": embed_dim, "mlp_ratio": 4.0, "layer_norm_first": layer_norm_first, "average_top_k_layers": depth,
        "end_of_block_targets": False, "clone_batch": 8, "extractor_mode": extractor_mode,
        "supported_modality": "AUDIO", "cls_loss": 1.0, "d2v_loss": 1.0, "cls_type": "chunk", "normalize": normalize,
        "modalities": {"audio": {
            "type": "AUDIO", "prenet_depth": prenet_depth, "prenet_layerdrop": 0.05, "prenet_dropout": 0.1,
            "start_drop_path_rate": 0.0, "end_drop_path_rate": 0.0, "num_extra_tokens": extra_tokens,
            "init_extra_token_zero": True, "mask_noise_std": 0.01, "mask_prob_min": None, "mask_prob": 0.5,
            "inverse_mask": False, "mask_prob_adjust": 0.05, "keep_masked_pct": 0.0, "mask_length": 5,
            "add_masks": False, "remove_masks": False, "mask_dropout": 0.0, "encoder_zero_mask": True,
            "mask_channel_prob": 0.0, "mask_channel_length": 64, "ema_local_encoder": False, "local_grad_mult": 1.0,
            "use_alibi_encoder": True, "alibi_scale": 1.0, "learned_alibi": False, "alibi_max_pos": None,
            "learned_alibi_scale": True, "learned_alibi_scale_per_head": True,
            "learned_alibi_scale_per_layer": per_layer_scale, "num_alibi_heads": num_alibi_heads or num_heads,
            "model_depth": depth,
            "decoder": {"decoder_dim": 16, "decoder_groups": 4, "decoder_kernel": 7, "decoder_layers": 2,
                        "input_dropout": 0.1, "add_positions_masked": False, "add_positions_all": False,
                        "decoder_residual": True, "projection_layers": 1, "projection_ratio": 2.0},
            "extractor_mode": extractor_mode, "feature_encoder_spec": spec, "conv_pos_width": conv_pos_width,
            "conv_pos_groups": conv_pos_groups, "conv_pos_depth": conv_pos_depth, "conv_pos_pre_ln": conv_pos_pre_ln,
        }},
    }


def _eval_spec(spec):
    """The authors eval() the spec string; the tests' specs are plain literals + and * (checked here)."""
    import ast

    tree = ast.parse(spec, mode="eval")
    allowed = (ast.Expression, ast.BinOp, ast.Add, ast.Mult, ast.List, ast.Tuple, ast.Constant, ast.Load)
    assert all(isinstance(n, allowed) for n in ast.walk(tree)), spec
    return eval(compile(tree, "<spec>", "eval"), {"__builtins__": {}})  # noqa: S307 (checked literal arithmetic)


def build(conf: dict, seed: int = 0, vocab_size: int = 9) -> Emotion2vec:
    """A reference model with every parameter perturbed away from its trivial init (unit gains, zero biases,
    zero extra tokens, unit ALiBi scales), some ALiBi scales negative to exercise the clamp."""
    conf = {**conf, "modalities": {"audio": {**conf["modalities"]["audio"]}}}
    audio = conf["modalities"]["audio"]
    audio["feature_encoder_spec"] = _eval_spec(audio["feature_encoder_spec"])
    torch.manual_seed(seed)
    model = Emotion2vec(conf, vocab_size=vocab_size).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("alibi_scale"):
                p.copy_(torch.linspace(-0.2, 1.5, p.numel()).reshape(p.shape))
            else:
                p.add_(0.1 * torch.randn_like(p))
    return model


def funasr_yaml(conf: dict) -> str:
    """config.yaml as FunASR's model folders hold it."""
    import yaml

    return "# network architecture\n" + yaml.safe_dump({"model": "Emotion2vec", "model_conf": conf}, sort_keys=False)


def save_funasr_folder(path, model: Emotion2vec, conf: dict):
    """emotion2vec_plus_* layout: config.yaml + model.pt (torch.save of {"model": state_dict})."""
    from pathlib import Path

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.yaml").write_text(funasr_yaml(conf))
    (path / "tokens.txt").write_text("\n".join(["angry", "disgusted", "fearful", "happy", "neutral", "other", "sad",
                                                "surprised", "<unk>"]) + "\n")
    torch.save({"model": model.state_dict()}, path / "model.pt")
    return path


def save_fairseq_folder(path, model: Emotion2vec, conf: dict):
    """emotion2vec_base layout: config.yaml + emotion2vec_base.pt, a fairseq checkpoint (the state dict under
    "model", the training config under "cfg", optimizer history beside)."""
    from pathlib import Path

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.yaml").write_text(funasr_yaml(conf))
    ckpt = {"args": None, "cfg": {"model": {"_name": "data2vec_multi", **conf}, "task": {"normalize": True}},
            "model": model.state_dict(), "criterion": None,
            "optimizer_history": [{"criterion_name": "ModelCriterion", "optimizer_name": "FairseqAdam",
                                   "num_updates": 100000}],
            "task_state": {}, "extra_state": {"epoch": 1}, "last_optimizer_state": None}
    torch.save(ckpt, path / "emotion2vec_base.pt")
    return path
