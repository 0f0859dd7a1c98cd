# Stage two on CIFAR-LT (METHOD.md, the paper's training recipes): only the
# classifier trains, for 40 "generation epochs" [paper], with SGD, momentum
# 0.9, weight decay 5e-4 and cosine annealing to 0 per iteration [paper];
# lr 0.1 at batch 128, no warm-up [ours]. Validation after every epoch: the
# adaptive confidence of AFG is updated from it.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))

param_scheduler = dict(
    type='CosineAnnealingLR',
    T_max=40,
    eta_min=0.0,
    by_epoch=True,
    begin=0,
    end=40,
    convert_to_iter_based=True)

train_cfg = dict(by_epoch=True, max_epochs=40, val_interval=1)
val_cfg = dict()
test_cfg = dict()

auto_scale_lr = dict(base_batch_size=128)
