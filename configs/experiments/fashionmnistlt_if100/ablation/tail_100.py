# One-factor ablation of GLAG's stage two
# (experiments/fashionmnistlt_if100_ablation.py): afg_kd_r8.py with
# tail_threshold 100 images, the many-shot bound (tail: the one class of 60
# images; KD's head classes follow) only.
_base_ = ['../afg_kd_r8.py']
model = dict(head=dict(tail_threshold=100))
