# cRT started from the stage-one classifier instead of a re-initialised one
# (an ablation: does keeping what stage one learnt help the re-training?).
_base_ = ['./crt_r32_10e.py']
model = dict(head=dict(init_cfg=dict(type='StageOne', prefix='head.')))
