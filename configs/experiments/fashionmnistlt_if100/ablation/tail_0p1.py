# One-factor ablation of GLAG's stage two
# (experiments/fashionmnistlt_if100_ablation.py): afg_kd_r8.py with
# tail_threshold 0.1 of n_max (tail: the five classes of 464 images or fewer;
# KD's head classes follow) only.
_base_ = ['../afg_kd_r8.py']
model = dict(head=dict(tail_threshold=0.1))
