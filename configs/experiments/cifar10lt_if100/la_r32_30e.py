# Stage one with the fixed logit-adjusted loss (tau = 1 from the start).
_base_ = ['../_base_/cifar10lt_if100_r32_30e.py']
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
