# CIFAR-LT stage one (docs/method.md, the paper's training recipes): SGD,
# momentum 0.9, weight decay 5e-4, batch 128, lr 0.1, 200 epochs, a linear
# warm-up over the first 5 epochs (from lr / 5, as the LDAM / Balanced
# Softmax code bases) then cosine annealing to 0, both per iteration.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4)
)

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.2,
        by_epoch=True,
        begin=0,
        end=5,
        convert_to_iter_based=True,
    ),
    dict(
        type='CosineAnnealingLR',
        T_max=195,
        eta_min=0.0,
        by_epoch=True,
        begin=5,
        end=200,
        convert_to_iter_based=True,
    ),
]

train_cfg = dict(by_epoch=True, max_epochs=200, val_interval=5)
val_cfg = dict()
test_cfg = dict()

# lr 0.1 is for a total batch of 128; --auto-scale-lr rescales it.
auto_scale_lr = dict(base_batch_size=128)
