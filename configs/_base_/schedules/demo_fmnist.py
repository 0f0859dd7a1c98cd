# The demo's short schedule: the ImageNet-LT recipe's SGD (momentum 0.9,
# weight decay 5e-4) and per-iteration cosine annealing, at lr 0.1 for batch
# 128, over 8 epochs.
_base_ = ['./imagenetlt_200e.py']

optim_wrapper = dict(optimizer=dict(lr=0.1))
param_scheduler = dict(T_max=8, end=8)
train_cfg = dict(max_epochs=8, val_interval=8)
auto_scale_lr = dict(base_batch_size=128)
