# One-factor ablation of GLAG's stage two
# (experiments/cifar10lt_if100_lite0_ablation.py): afg_kd_lite0_10e.py with donor
# weights sqrt(n_i) / distance instead of n_i / distance only.
_base_ = ['../afg_kd_lite0_10e.py']
model = dict(head=dict(donor_weighting='sqrt_count_distance'))
