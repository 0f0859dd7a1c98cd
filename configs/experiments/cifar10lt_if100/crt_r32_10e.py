# cRT: re-initialised linear classifier on the frozen stage-one trunk.
_base_ = ['../_base_/cifar10lt_if100_stage_two_10e.py']
