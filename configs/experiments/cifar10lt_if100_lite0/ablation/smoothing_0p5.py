# One-factor ablation of GLAG's stage two
# (experiments/cifar10lt_if100_lite0_ablation.py): afg_kd_lite0_10e.py with s_c
# compared on a moving average of acc_c (beta 0.5) instead of the raw acc_c
# only.
_base_ = ['../afg_kd_lite0_10e.py']
model = dict(head=dict(confidence_smoothing=0.5))
