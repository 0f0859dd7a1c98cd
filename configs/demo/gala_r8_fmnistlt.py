_base_ = ['./ce_r8_fmnistlt.py']

# The demo's GALA row: gradient-aware logit adjustment in place of CE, the
# paper's default lambdas.
model = dict(
    head=dict(
        loss=dict(type='GALALoss', num_classes=10, lambda1=1.0, lambda2=1.0)
    )
)
