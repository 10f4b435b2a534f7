"""The one training loop used by every stage, with its hooks, checkpoints and schedules."""

from whitebox.training.device import resolve_device
from whitebox.training.interrupt import TrainingInterrupted
from whitebox.training.loop import EpochRecord, TrainingDiverged, fit
from whitebox.training.settings import TrainSettings

__all__ = ["EpochRecord", "TrainSettings", "TrainingDiverged", "TrainingInterrupted", "fit",
           "resolve_device"]
