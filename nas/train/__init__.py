"""Training: one loop (:func:`fit`) used by the supernet, standalone and distributed trainers.

    train_supernet(TrainConfig(space="mixnet_300m", epochs=1), "runs/sn")   # nas supernet train
    load_supernet("runs/sn")                                                # for search, export
    retrain(RetrainConfig(arch=str(arch), epochs=5), "runs/mynet")          # nas train
"""

from .calibration import calibration_inputs, heldout_batches
from .distributed import Dist
from .loop import LoopConfig, data_splits, fit, resolve_device
from .optim import create_optimizer, create_schedule
from .standalone import RetrainConfig, arch_from_export, retrain
from .supernet import (
                       CHECKPOINT_FORMAT,
                       SAMPLERS,
                       ArchSampler,
                       SupernetRun,
                       TrainConfig,
                       check_resolution,
                       load_supernet,
                       quick_report,
                       train_supernet,
)

__all__ = ["calibration_inputs", "heldout_batches", "Dist", "LoopConfig", "data_splits", "fit",
           "resolve_device", "create_optimizer", "create_schedule", "RetrainConfig",
           "arch_from_export", "retrain",
           "CHECKPOINT_FORMAT", "SAMPLERS", "ArchSampler", "SupernetRun", "TrainConfig",
           "check_resolution", "load_supernet", "quick_report", "train_supernet"]
