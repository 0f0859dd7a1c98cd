# ImageNet-LT stage one (docs/method.md, the paper's training recipes): SGD,
# momentum 0.9, weight decay 5e-4, cosine annealing over 200 epochs (per
# iteration); batch 512 and lr 0.2 as the decoupling literature.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.2, momentum=0.9, weight_decay=5e-4)
)

param_scheduler = dict(
    type='CosineAnnealingLR',
    T_max=200,
    eta_min=0.0,
    by_epoch=True,
    begin=0,
    end=200,
    convert_to_iter_based=True,
)

train_cfg = dict(by_epoch=True, max_epochs=200, val_interval=5)
val_cfg = dict()
test_cfg = dict()

# lr 0.2 is for a total batch of 512 (8 GPUs x 64); --auto-scale-lr rescales.
auto_scale_lr = dict(base_batch_size=512)
