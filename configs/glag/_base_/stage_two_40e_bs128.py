# Stage two on CIFAR-LT: the schedule of stage_two_40e_bs512.py (40 epochs,
# SGD, cosine annealing per iteration, validation after every epoch) at lr
# 0.1 for batch 128, no warm-up [ours].
_base_ = ['./stage_two_40e_bs512.py']

optim_wrapper = dict(optimizer=dict(lr=0.1))
auto_scale_lr = dict(base_batch_size=128)
