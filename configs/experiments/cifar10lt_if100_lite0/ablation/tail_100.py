# One-factor ablation of GLAG's stage two
# (experiments/cifar10lt_if100_lite0_ablation.py): afg_kd_lite0_10e.py with
# tail_threshold 100 images, the many-shot bound (tail: the two classes of 83
# and 50 images; KD's head classes follow) only.
_base_ = ['../afg_kd_lite0_10e.py']
model = dict(head=dict(tail_threshold=100))
