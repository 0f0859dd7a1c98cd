"""Losses: the Gradual Balanced Loss and its published relatives."""

from .gala_loss import GALALoss
from .gradual_balanced_loss import GradualBalancedLoss
