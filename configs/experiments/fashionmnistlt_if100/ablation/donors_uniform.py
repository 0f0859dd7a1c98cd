# One-factor ablation of GLAG's stage two
# (experiments/fashionmnistlt_if100_ablation.py): afg_kd_r8.py with uniform
# donor weights (w_i proportional to 1 / distance) instead of n_i / distance
# only.
_base_ = ['../afg_kd_r8.py']
model = dict(head=dict(donor_weighting='uniform'))
