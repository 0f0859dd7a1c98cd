# Stage one with the fixed logit-adjusted loss (tau = 1 from the first step).
_base_ = ['./_base_/stage_one_r8_8e.py']
model = dict(
    head=dict(
        loss=dict(
            type='GradualBalancedLoss',
            num_classes=10,
            schedule='constant',
            tau_max=1.0,
        )
    )
)
