# Stage two on CIFAR-10-LT (IF 100) from the CIFAR-10 JPEG tree, on the
# shortened schedule of the CPU experiments: 10 epochs of cosine annealing
# (the paper's 40 "generation epochs" scaled down), batch 128, lr 0.1. The
# cRT setting of configs/glag/crt_r32_cifar10lt_if100.py: frozen stage-one
# trunk (features cached once), re-initialised classifier, class-aware
# sampling, held-out validation (100 left-over training images per class),
# test on the 10,000 test images.
_base_ = ['../../glag/crt_r32_cifar10lt_if100.py']

data_root = 'data/cifar10'
data_preprocessor = dict(to_rgb=True)  # as stage one: cv2 decodes to BGR
jpg_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]

# the JPEG tree in place of the CIFAR10 pickles, under the long-tail
# wrappers of training and held-out validation, and for the test
__tree = dict(
    _delete_=True,
    type='CustomDataset',
    data_root=data_root,
    pipeline=jpg_pipeline,
)
train_dataloader = dict(
    num_workers=1, dataset=dict(dataset=dict(__tree, data_prefix='train'))
)
val_dataloader = dict(
    num_workers=1, dataset=dict(dataset=dict(__tree, data_prefix='train'))
)
test_dataloader = dict(num_workers=1, dataset=dict(__tree, data_prefix='test'))
test_evaluator = dict(type='LongTailAccuracy', rebalance_tau=1.0)

train_cfg = dict(max_epochs=10, val_interval=1)
param_scheduler = dict(T_max=10, end=10)
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=-1))
