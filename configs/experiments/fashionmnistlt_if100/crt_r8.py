# cRT: re-initialised linear classifier on the frozen stage-one trunk.
_base_ = ['./_base_/stage_two_r8.py']
