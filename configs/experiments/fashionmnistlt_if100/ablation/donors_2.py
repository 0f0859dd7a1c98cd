# One-factor ablation of GLAG's stage two
# (experiments/fashionmnistlt_if100_ablation.py): afg_kd_r8.py with k = 2
# donors instead of 3 only.
_base_ = ['../afg_kd_r8.py']
model = dict(head=dict(num_donors=2))
