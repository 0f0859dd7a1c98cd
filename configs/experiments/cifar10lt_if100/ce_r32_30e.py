# Stage one with cross-entropy (the baseline).
_base_ = ['../_base_/cifar10lt_if100_r32_30e.py']
