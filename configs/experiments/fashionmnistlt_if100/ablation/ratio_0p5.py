# One-factor ablation of GLAG's stage two
# (experiments/fashionmnistlt_if100_ablation.py): afg_kd_r8.py with 0.5
# generated features per real one instead of 1 only.
_base_ = ['../afg_kd_r8.py']
model = dict(head=dict(generation_ratio=0.5))
