# The demo's short schedule: SGD, momentum 0.9, weight decay 5e-4, lr 0.1 at
# batch 128, cosine annealing per iteration over 8 epochs.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))

param_scheduler = dict(
    type='CosineAnnealingLR',
    T_max=8,
    eta_min=0.0,
    by_epoch=True,
    begin=0,
    end=8,
    convert_to_iter_based=True)

train_cfg = dict(by_epoch=True, max_epochs=8, val_interval=8)
val_cfg = dict()
test_cfg = dict()

auto_scale_lr = dict(base_batch_size=128)
