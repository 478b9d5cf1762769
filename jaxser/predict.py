"""Apply a model a study trained to new audio: `jaxser predict --model RUN/models/<name> FILE_OR_DIR ...`.

A run saves its cross-corpus and leave-one-corpus-out models (`--save-models`) as
`RUN/models/<name>/` (`jaxser.study.artifacts.write_model`). Predicting repeats what the run
did to its test sets: the same encoder (refused when its fingerprint differs from the one the
model was trained on, since other weights give other embeddings), the same layer choice and
fit-split standardisation (`jaxser.train.model_inputs`) and the same jitted prediction
program (`jaxser.trainer.Trainer.predict_probs`); the seeds' probabilities are averaged.

    from jaxser.predict import load_model
    model = load_model("runs/mine/models/<name>")
    preds = model.predict(["a.wav", "b.wav"])      # paths or 16 kHz float waveforms
    preds.emotions, preds.probs                     # [N] labels, [N, C] mean over seeds

A dimensional model (a study with task = "dimensional") predicts its dimensions instead: `probs`
[N, K] are arousal/valence/dominance on the corpus-free [0, 1] scale (the seeds' mean), and the
CSV has one column per dimension.
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from jaxser.errors import UserError, add_debug_option, report
from jaxser.study import artifacts

#: audio per encoder call: bounds padded batch memory, as the embedding cache does
MAX_BATCH = 16
MAX_BATCH_SECONDS = 60.0


class PredictError(UserError, ValueError):
    """Inputs `jaxser predict` cannot use (no audio found, an encoder that differs from the model's)."""


@dataclasses.dataclass
class Predictions:
    """Predictions of N inputs: `probs` [N, C] the seeds' mean, `seed_probs` [S, N, C], over `labels`."""
    labels: tuple[str, ...]
    probs: np.ndarray
    seed_probs: np.ndarray
    names: list[str]
    task: str = "categorical"   # "dimensional": labels are dimensions, probs their values in [0, 1]

    @property
    def emotions(self) -> list[str]:
        """The predicted emotion of each input (highest mean probability)."""
        if self.task == "dimensional":
            raise PredictError("a dimensional model predicts " + ", ".join(self.labels) + ", not emotions: read .probs")
        return [self.labels[i] for i in self.probs.argmax(-1)]

    def to_csv(self) -> str:
        """`file,emotion,p_<label>...`, one row per input."""
        import csv

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        if self.task == "dimensional":  # `file,<dimension>...` on the [0, 1] scale
            w.writerow(["file", *self.labels])
            for name, p in zip(self.names, self.probs):
                w.writerow([name, *(repr(float(v)) for v in p)])
            return buf.getvalue()
        w.writerow(["file", "emotion", *(f"p_{lab}" for lab in self.labels)])
        for name, emo, p in zip(self.names, self.emotions, self.probs):
            w.writerow([name, emo, *(repr(float(v)) for v in p)])
        return buf.getvalue()


class Model:
    """A saved model, ready to predict (get one with `load_model`)."""

    def __init__(self, saved: artifacts.SavedModel):
        import jax.numpy as jnp
        from jax import tree

        from jaxser.heads import HeadConfig
        from jaxser.train import TrainConfig
        from jaxser.trainer import Trainer

        info = saved.info
        self.path = saved.path
        self.info = info
        self.labels = tuple(info["labels"])
        self.seeds = tuple(info["seeds"])
        self.encoder_name = info["encoder"]["name"]
        self.encoder_fingerprint = info["encoder"]["fingerprint"]
        self.layer = info["layer_index"]
        self.mean, self.std = saved.mean, saved.std
        head = HeadConfig(**info["head"])
        n_layers = info["encoder"]["layers"] if self.layer == "weighted" else None
        dim = info["encoder"]["dim"]
        feat_shape = (n_layers, dim) if n_layers else (dim,)
        # prediction does not depend on the optimiser settings: the trainer's defaults build the
        # same prediction program the run used
        self.task = info.get("task", "categorical")
        self.y_mean, self.y_std = saved.y_mean, saved.y_std
        self._trainer = Trainer(head, TrainConfig(), len(self.labels), n_layers, feat_shape, self.task)
        self._params = tree.map(jnp.asarray, saved.params)
        self._encoder = None

    def __repr__(self) -> str:
        return (f"Model({self.path}, encoder={self.encoder_name}, layer={self.info['layer']}, "
                f"labels={list(self.labels)}, seeds={list(self.seeds)})")

    def encoder(self):
        """The encoder the model was trained on, loaded by name; refused when it now gives
        other embeddings (another fingerprint: other weights, version or pooling)."""
        if self._encoder is None:
            from jaxser import encoders

            dtype = self.info["encoder"].get("dtype")  # recorded when the study set [encoders] dtype
            self._encoder = self.check_encoder(encoders.load(self.encoder_name, **({"dtype": dtype} if dtype else {})))
        return self._encoder

    def check_encoder(self, enc):
        if enc.fingerprint != self.encoder_fingerprint:
            raise PredictError(f"{self.path}: trained on encoder {self.encoder_name} with fingerprint "
                               f"{self.encoder_fingerprint}, but it loads now with fingerprint {enc.fingerprint} "
                               "(other weights or jaxser version give other embeddings); use the checkpoint and "
                               "jaxser version the study used, or retrain")
        return enc

    def seed_probs_of_embeddings(self, x: np.ndarray) -> np.ndarray:
        """[S, N, C] probabilities of encoder embeddings x [N, layers, dim] (dimensional: [S, N, K]
        values on the [0, 1] scale)."""
        from jaxser.train import model_inputs

        x = np.asarray(x, np.float32)
        want = (self.info["encoder"]["layers"], self.info["encoder"]["dim"])
        if x.ndim != 3 or x.shape[1:] != want:
            raise PredictError(f"embeddings of shape {x.shape}; {self.path} takes [N, {want[0]}, {want[1]}] "
                               f"({self.encoder_name})")
        out = self._trainer.predict_probs(self._params, model_inputs(x, self.layer, self.mean, self.std))
        return out if self.y_mean is None else out * self.y_std + self.y_mean

    def embed(self, inputs: Sequence, encoder=None) -> np.ndarray:
        """Embeddings [N, layers, dim] of audio paths or 16 kHz float waveforms."""
        from jaxser import audio

        enc = self.check_encoder(encoder) if encoder is not None else self.encoder()
        waves = [audio.load(w, sample_rate=enc.sample_rate) if isinstance(w, (str, Path)) else np.asarray(w, np.float32)
                 for w in inputs]
        out = np.zeros((len(waves), enc.num_layers, enc.dim), np.float32)
        order = sorted(range(len(waves)), key=lambda i: len(waves[i]))  # little padding per batch
        budget = int(MAX_BATCH_SECONDS * enc.sample_rate)
        batch: list[int] = []
        for i in order + [None]:
            if batch and (i is None or len(batch) >= MAX_BATCH or len(waves[i]) * (len(batch) + 1) > budget):
                out[batch] = enc.embed([waves[j] for j in batch])
                batch = []
            if i is not None:
                batch.append(i)
        return out

    def predict(self, inputs: Sequence, *, encoder=None, names: Sequence[str] | None = None) -> Predictions:
        """Predict audio paths or 16 kHz float waveforms (`encoder`: an already loaded one,
        checked against the model's fingerprint)."""
        inputs = list(inputs)
        seed_probs = self.seed_probs_of_embeddings(self.embed(inputs, encoder))
        if names is None:
            names = [str(w) if isinstance(w, (str, Path)) else f"#{i}" for i, w in enumerate(inputs)]
        return Predictions(self.labels, seed_probs.mean(axis=0), seed_probs, list(names), self.task)


def load_model(path) -> Model:
    """A saved model folder (`RUN/models/<name>`), verified (checksums, fields, shapes)."""
    return Model(artifacts.read_model(Path(path)))


def audio_files(paths: Sequence[str]) -> list[Path]:
    """The audio files named, folders searched recursively (sorted), in the order given."""
    from jaxser.corpora.schema import AUDIO_EXTENSIONS

    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS and f.is_file())
            if not found:
                raise PredictError(f"{p}: no audio files in it ({', '.join(AUDIO_EXTENSIONS)})")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise PredictError(f"{p}: no such file or folder; pass audio files or folders holding them")
    return out


def argument_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(allow_abbrev=False, prog="jaxser predict",
                                description="Predict the emotion of audio files with a "
                                "model a study saved (RUN/models/<name>).")
    p.add_argument("--model", required=True, metavar="DIR", help="a saved model folder, RUN/models/<name>")
    p.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR", help="audio files, or folders searched recursively")
    p.add_argument("--out", metavar="CSV", help="write the predictions here (default: print them)")
    add_debug_option(p)
    return p


def _main(argv=None) -> int:
    from jaxser import io as jio

    a = argument_parser().parse_args(argv)
    model = load_model(a.model)
    files = audio_files(a.inputs)
    preds = model.predict(files)
    if a.out is not None:
        jio.atomic_write_text(a.out, preds.to_csv())
        print(f"{len(files)} files -> {a.out}", file=sys.stderr)
    else:
        sys.stdout.write(preds.to_csv())
    return 0


def main(argv=None) -> int:
    """The CLI: a user error prints one line and exits 2 (jaxser.errors.report)."""
    return report(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
