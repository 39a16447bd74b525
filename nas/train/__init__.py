"""Training: one loop (:func:`fit`) used by the supernet, standalone and distributed trainers.

    train_supernet(TrainConfig(space="mixnet_300m", epochs=1), "runs/sn")   # nas supernet train
    load_supernet("runs/sn")                                                # for search, export
    retrain(RetrainConfig(arch=str(arch), epochs=5), "runs/mynet")          # nas train
"""

from .calibration import calibration_inputs, heldout_batches
from .distributed import Dist
from .loop import (
    DATA_SETTINGS,
    LoopConfig,
    data_settings,
    data_splits,
    fit,
    load_data,
    recipe_of,
    resolve_device,
)
from .optim import create_optimizer, create_schedule
from .standalone import RetrainConfig, arch_from_export, metrics_lines, retrain, retrain_config
from .supernet import (
    ARCH_SAMPLING_RULES,
    SUPERNET_CHECKPOINT_FORMAT,
    ArchSampler,
    QuickReport,
    QuickReportConfig,
    SupernetRun,
    TrainConfig,
    check_resolution,
    load_supernet,
    quick_report,
    resume_or_new,
    train_supernet,
)

__all__ = ["calibration_inputs", "heldout_batches", "Dist", "LoopConfig", "DATA_SETTINGS",
           "data_settings", "data_splits", "fit", "load_data", "recipe_of", "resolve_device",
           "create_optimizer", "create_schedule", "RetrainConfig", "arch_from_export", "retrain",
           "SUPERNET_CHECKPOINT_FORMAT", "ARCH_SAMPLING_RULES", "ArchSampler", "SupernetRun",
           "TrainConfig", "QuickReportConfig", "check_resolution", "load_supernet",
           "quick_report", "QuickReport", "train_supernet", "retrain_config", "metrics_lines",
           "resume_or_new"]
