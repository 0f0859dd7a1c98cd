_base_ = [
    '../_base_/models/resnet8_fmnist.py',
    '../_base_/datasets/fashion_mnist_lt.py',
    '../_base_/schedules/demo_fmnist.py',
    '../_base_/default_runtime.py',
]

# The demo (tools/demo.py): Fashion-MNIST-LT, imbalance factor 100, stage
# one. No validation during training: the demo tests the final model once.
val_dataloader = None
val_cfg = None
val_evaluator = None
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=8, save_best=None, rule=None))
randomness = dict(seed=0)
model = dict(head=dict(loss=dict(type='GradualBalancedLoss', loss_weight=1.0)))
