"""Shared by tests/test_pod_slice.py and the processes it launches: one small training cell
built from embeddings, so the pod run and the single-device reference train the same thing."""
import numpy as np


def train_args(x, emotions):
    from jaxser.heads import HeadConfig
    from jaxser.train import TrainConfig

    y = np.array([sorted(set(emotions)).index(e) for e in emotions], np.int32)
    args = (x[:14], y[:14], x[14:19], y[14:19], {"t": x[19:]})
    kw = dict(n_classes=int(y.max()) + 1, head=HeadConfig(kind="fcn", hidden=(16,)),
              config=TrainConfig(max_epochs=6, patience=None, batch_size=8), seeds=[0, 1, 2])
    return args, kw
