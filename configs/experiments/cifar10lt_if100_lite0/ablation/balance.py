# One-factor ablation of GLAG's stage two
# (experiments/cifar10lt_if100_lite0_ablation.py): afg_kd_lite0_10e.py with the paper's
# 'balance' rule (every tail class topped up to n_max over an epoch) on the
# same class-aware batches, instead of 'ratio' only.
_base_ = ['../afg_kd_lite0_10e.py']
model = dict(head=dict(generation='balance'))
