# One-factor ablation of GLAG's stage two
# (experiments/cifar10lt_if100_lite0_ablation.py): afg_kd_lite0_10e.py with s_c
# starting at 0.2 instead of 0.6 only.
_base_ = ['../afg_kd_lite0_10e.py']
model = dict(head=dict(init_confidence=0.2))
