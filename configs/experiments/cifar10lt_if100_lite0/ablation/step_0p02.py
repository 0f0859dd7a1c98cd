# One-factor ablation of GLAG's stage two
# (experiments/cifar10lt_if100_lite0_ablation.py): afg_kd_lite0_10e.py with a step of
# 0.02 per s_c update instead of 0.05 only.
_base_ = ['../afg_kd_lite0_10e.py']
model = dict(head=dict(confidence_step=0.02))
