_base_ = [
    '../_base_/models/resnet8_fmnist.py',
    '../_base_/datasets/fashion_mnist_lt.py',
    '../_base_/schedules/demo_fmnist.py',
    '../_base_/default_runtime.py',
]

# The demo (tools/demo.py): Fashion-MNIST-LT, imbalance factor 100, stage
# one. No validation during training (it would begin after epoch 10**6): the
# demo tests the final model once. The validation split, 100 held-out
# training images per class, is there for tools/test.py to choose a post-hoc
# tau on (--cfg-options val_evaluator.posthoc_tau=val
# test_evaluator.posthoc_tau=val), never on the test split.
val_dataloader = dict(dataset={{_base_.heldout_val_dataset}})
train_cfg = dict(val_begin=10**6)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=8, save_best=None, rule=None),
)
randomness = dict(seed=0)
model = dict(head=dict(loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
