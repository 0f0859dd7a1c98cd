_base_ = ['../ce/ce_r32_cifar100lt_if100.py']

# GALA (gradient-aware logit adjustment) in place of CE; lambda1 / lambda2 of
# the authors' CIFAR-100-LT IF100 run.
model = dict(
    head=dict(
        loss=dict(type='GALALoss', num_classes=100, lambda1=1.2, lambda2=0.9)
    )
)
