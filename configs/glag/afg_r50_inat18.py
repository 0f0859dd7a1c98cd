_base_ = ['./crt_r50_inat18.py']

# GLAG stage two, ResNet-50 on iNaturalist 2018: the cRT config plus the head
# line (Adaptive Feature Generator) and the hook line (statistics pass,
# adaptive confidence, distillation from the stage-one model); the README
# ("Using the plugin from your own mmpretrain config") says what they set.
# iNaturalist 2018 has no validation split of its own (its val set is the
# test set), so the adaptive confidence is not updated: s_c stays at
# init_confidence. With a held-out validation list, drop
# update_confidence=False (never validate on the test set).
model = dict(head=dict(type='AFGHead', generation='ratio'))
custom_hooks = [
    dict(type='ClassCountsHook'),
    dict(type='StageOneCheckpointHook'),
    dict(type='AFGHook', update_confidence=False),
    dict(type='GLAGDistillHook'),
]
