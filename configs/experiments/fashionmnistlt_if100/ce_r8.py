# Stage one with cross-entropy (the baseline).
_base_ = ['./_base_/stage_one_r8_8e.py']
model = dict(head=dict(loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
