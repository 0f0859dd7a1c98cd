"""Registry adapters: backbones, heads, losses and the stage-two model."""

from . import backbones, heads, losses
from .stage_two_classifier import StageTwoClassifier
