"""The one training loop used by every stage, with its checkpoints and schedules."""

from whitebox.training.device import resolve_device
from whitebox.training.interrupt import TrainingInterrupted
from whitebox.training.loop import EpochRecord, TrainingDiverged, TrainSettings, fit

__all__ = ["EpochRecord", "TrainSettings", "TrainingDiverged", "TrainingInterrupted", "fit",
           "resolve_device"]
