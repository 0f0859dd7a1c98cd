"""Losses: the Gradual Balanced Loss and its published relatives."""

from .gradual_balanced_loss import GradualBalancedLoss

__all__ = ['GradualBalancedLoss']
