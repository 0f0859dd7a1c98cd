_base_ = ['../ce/ce_r50_imagenetlt.py']

# GALA (gradient-aware logit adjustment) in place of CE; the paper's default
# lambdas.
model = dict(
    head=dict(
        loss=dict(type='GALALoss', num_classes=1000, lambda1=1.0, lambda2=1.0)
    )
)
