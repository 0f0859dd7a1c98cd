_base_ = ['./ce_r8_fmnistlt.py']

# The demo's GraLoss row: the CE config with the loss line changed.
model = dict(head=dict(loss=dict(type='GradualBalancedLoss', num_classes=10)))
