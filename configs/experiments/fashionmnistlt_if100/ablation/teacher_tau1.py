# One-factor ablation of GLAG's stage two
# (experiments/fashionmnistlt_if100_ablation.py): afg_kd_r8.py with the
# teacher's logits logit-adjusted by tau = 1 (log prior) before distillation
# only (custom_hooks restated: a list replaces the base's whole).
_base_ = ['../afg_kd_r8.py']
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='StageOneCheckpointHook'),
    dict(type='AFGHook'),
    dict(
        type='GLAGDistillHook',
        teacher_tau=1.0,
    ),
]
