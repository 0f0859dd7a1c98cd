# One-factor ablation of GLAG's stage two
# (experiments/cifar10lt_if100_lite0_ablation.py): afg_kd_lite0_10e.py with stage two's
# learning rate 0.03 (cRT's validation choice) instead of 0.1 only.
_base_ = ['../afg_kd_lite0_10e.py']
optim_wrapper = dict(optimizer=dict(lr=0.03))
