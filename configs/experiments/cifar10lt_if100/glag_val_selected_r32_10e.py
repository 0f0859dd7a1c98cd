# GLAG's stage two with the settings validation chose on the seed-0 GraLoss
# trunk (tools/select_settings.py with
# experiments/selection/glag_stage_two_wide.py; record:
# results/cifar10lt_if100_ablation/selection/glag_wide/): afg_kd_r32_10e.py
# with the tail set to the classes under 100 images, k = 2 donors and the
# distillation weight at 0 (beta_max 0: KD off). The 'selected' row of
# experiments/cifar10lt_if100_ablation.py (test 71.12 +- 0.01 on seeds 0-2).
_base_ = ['./afg_kd_r32_10e.py']
model = dict(head=dict(tail_threshold=100, num_donors=2))
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='StageOneCheckpointHook'),
    dict(type='AFGHook'),
    dict(type='GLAGDistillHook', beta_max=0.0),
]
