# One-factor ablation of GLAG's stage two
# (experiments/fashionmnistlt_if100_ablation.py): afg_kd_r8.py with donor
# weights sqrt(n_i) / distance instead of n_i / distance only.
_base_ = ['../afg_kd_r8.py']
model = dict(head=dict(donor_weighting='sqrt_count_distance'))
