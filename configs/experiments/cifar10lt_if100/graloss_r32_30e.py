# Stage one with the Gradual Balanced Loss (convex schedule, tau_max = 1).
_base_ = ['../_base_/cifar10lt_if100_r32_30e.py']
model = dict(head=dict(loss=dict(type='GradualBalancedLoss', num_classes=10)))
