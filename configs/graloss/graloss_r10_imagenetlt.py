_base_ = ['../ce/ce_r10_imagenetlt.py']

# GraLoss (GLAG stage one): the CE config with the loss line changed.
model = dict(
    head=dict(loss=dict(type='GradualBalancedLoss', num_classes=1000))
)
