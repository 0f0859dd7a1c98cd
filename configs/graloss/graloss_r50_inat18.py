_base_ = ['../ce/ce_r50_inat18.py']

# GraLoss (GLAG stage one): the CE config with the loss line changed.
model = dict(
    head=dict(loss=dict(type='GradualBalancedLoss', num_classes=8142))
)
