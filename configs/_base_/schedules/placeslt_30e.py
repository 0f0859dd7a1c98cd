# Places-LT stage one. The GLAG paper gives no Places-LT recipe; this follows
# the decoupling / OLTR literature: an ImageNet-pretrained ResNet-152
# fine-tuned for 30 epochs, the trunk at a tenth of the classifier's lr
# [ours: the 0.1 ratio, lr 0.2 at batch 512 and cosine annealing, chosen to
# match the other recipes]. SGD, momentum 0.9, weight decay 5e-4, validation
# after every epoch.
_base_ = ['./imagenetlt_200e.py']

optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)})
)
param_scheduler = dict(T_max=30, end=30)
train_cfg = dict(max_epochs=30, val_interval=1)
