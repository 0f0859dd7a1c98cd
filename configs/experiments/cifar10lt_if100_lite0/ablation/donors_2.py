# One-factor ablation of GLAG's stage two
# (experiments/cifar10lt_if100_lite0_ablation.py): afg_kd_lite0_10e.py with k = 2
# donors instead of 3 only.
_base_ = ['../afg_kd_lite0_10e.py']
model = dict(head=dict(num_donors=2))
