# The "stage-one model" on the frozen Lite0 trunk: a linear probe (the
# LinearClsHead of the base, cross-entropy) trained on instance-balanced
# batches for 10 epochs on the cached features. LWS reuses its classifier,
# AFG + KD distils from it.
_base_ = ['../_base_/cifar10lt_if100_lite0_stage_two_10e.py']
model = dict(backbone=dict(init_cfg=None))  # the trunk from the wheel
train_dataloader = dict(
    sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True)
)
