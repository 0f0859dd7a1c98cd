# cRT: re-initialised linear classifier on class-aware batches.
_base_ = ['../_base_/cifar10lt_if100_lite0_stage_two_10e.py']
