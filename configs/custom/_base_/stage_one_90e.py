# Stage one on your own data: SGD, momentum 0.9, weight decay 5e-4, cosine
# per iteration over 90 epochs, lr 0.1 for a total batch of 256
# (--auto-scale-lr rescales it for yours). A small dataset gets few
# iterations per epoch: raise max_epochs (and T_max, end) so that training
# runs some thousands of iterations.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4)
)
param_scheduler = dict(
    type='CosineAnnealingLR',
    T_max=90,
    eta_min=0.0,
    by_epoch=True,
    begin=0,
    end=90,
    convert_to_iter_based=True,
)
train_cfg = dict(by_epoch=True, max_epochs=90, val_interval=5)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=256)
