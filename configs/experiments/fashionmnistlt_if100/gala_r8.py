# Stage one with GALA (gradient-aware logit adjustment), the paper's default
# lambdas; the test evaluator also reports GALA's prediction re-balancing.
_base_ = ['./_base_/stage_one_r8_8e.py']
model = dict(
    head=dict(
        loss=dict(type='GALALoss', num_classes=10, lambda1=1.0, lambda2=1.0)
    )
)
