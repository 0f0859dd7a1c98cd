# One-factor ablation of GLAG's stage two
# (experiments/cifar10lt_if100_lite0_ablation.py): afg_kd_lite0_10e.py with 0.25
# generated features per real one instead of 1 only.
_base_ = ['../afg_kd_lite0_10e.py']
model = dict(head=dict(generation_ratio=0.25))
