# Distillation alone (an ablation of GLAG's stage two): cRT's re-initialised
# classifier plus GLAGDistillHook from the linear probe on the head classes
# (n_c >= 0.2 n_max, as the AFG configs), nothing generated.
_base_ = ['./crt_lite0_10e.py']
model = dict(head=dict(type='DistilledLinearClsHead'))  # takes the teacher
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='StageOneCheckpointHook'),
    dict(type='GLAGDistillHook', tail_threshold=0.2),
]
