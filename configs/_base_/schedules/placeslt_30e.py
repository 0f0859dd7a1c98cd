# Places-LT stage one. The GLAG paper gives no Places-LT recipe; this follows
# the decoupling / OLTR literature: an ImageNet-pretrained ResNet-152
# fine-tuned for 30 epochs, the trunk at a tenth of the classifier's lr
# [ours: the 0.1 ratio, lr 0.2 at batch 512 and cosine annealing, chosen to
# match the other recipes]. SGD, momentum 0.9, weight decay 5e-4.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.2, momentum=0.9, weight_decay=5e-4),
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}))

param_scheduler = dict(
    type='CosineAnnealingLR',
    T_max=30,
    eta_min=0.0,
    by_epoch=True,
    begin=0,
    end=30,
    convert_to_iter_based=True)

train_cfg = dict(by_epoch=True, max_epochs=30, val_interval=1)
val_cfg = dict()
test_cfg = dict()

auto_scale_lr = dict(base_batch_size=512)
