# iNaturalist 2018 stage one (docs/method.md, the paper's training recipes): the
# ImageNet-LT recipe (SGD, momentum 0.9, weight decay 5e-4, lr 0.2 at batch
# 512, cosine annealing per iteration) over 90 epochs.
_base_ = ['./imagenetlt_200e.py']

param_scheduler = dict(T_max=90, end=90)
train_cfg = dict(max_epochs=90)
