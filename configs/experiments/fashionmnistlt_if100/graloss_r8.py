# Stage one with the Gradual Balanced Loss (convex schedule, tau_max = 1).
_base_ = ['./_base_/stage_one_r8_8e.py']
model = dict(
    head=dict(
        loss=dict(type='GradualBalancedLoss', num_classes=10, loss_weight=1.0)
    )
)
