# One-factor ablation of GLAG's stage two
# (experiments/fashionmnistlt_if100_ablation.py): afg_kd_r8.py with s_c
# starting at 0.2 instead of 0.6 only.
_base_ = ['../afg_kd_r8.py']
model = dict(head=dict(init_confidence=0.2))
