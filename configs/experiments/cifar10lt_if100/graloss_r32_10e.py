# Stage one with the Gradual Balanced Loss (convex, tau_max = 1) on a short
# schedule: graloss_r32_30e.py cut to 10 epochs (1 warm-up epoch from lr / 5,
# then cosine to 0 at epoch 10). GraLoss's progress u = iter / (max_iters - 1)
# reads the runner's own total, so tau reaches tau_max at the last iteration
# of epoch 10 with nothing else to change.
_base_ = ['./graloss_r32_30e.py']
train_cfg = dict(max_epochs=10, val_interval=5)
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.2,
        by_epoch=True,
        begin=0,
        end=1,
        convert_to_iter_based=True,
    ),
    dict(
        type='CosineAnnealingLR',
        T_max=9,
        eta_min=0.0,
        by_epoch=True,
        begin=1,
        end=10,
        convert_to_iter_based=True,
    ),
]
