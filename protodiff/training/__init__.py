"""Training, split by concern.

- ``devices``: where a run computes (CUDA or CPU) and in which precision (bf16 where native);
- ``distributed``: this process's rank in a ``torchrun`` job;
- ``optim``: AdamW, the learning-rate schedule, the EMA of the weights;
- ``batches``: the seeded, resumable order of training batches (small splits read once);
- ``trainer``: the loop, checkpoints and resume; :func:`train` is the front door.
"""

from protodiff.devices import Precision, native_bf16, resolve_device, resolve_precision
from protodiff.training.optim import ema_with_warmup, lr_lambda, parameter_groups, total_steps
from protodiff.training.trainer import LOG_FILE, Trainer, TrainingInterrupted, train

__all__ = [
    "LOG_FILE",
    "Precision",
    "Trainer",
    "TrainingInterrupted",
    "ema_with_warmup",
    "lr_lambda",
    "native_bf16",
    "parameter_groups",
    "resolve_device",
    "resolve_precision",
    "total_steps",
    "train",
]
