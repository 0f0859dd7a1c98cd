"""Registry adapters: backbones, heads and losses."""

from . import backbones, heads, losses
