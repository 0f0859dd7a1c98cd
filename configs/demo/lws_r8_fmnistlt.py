_base_ = ['./crt_r8_fmnistlt.py']

# The demo's LWS (Kang et al. 2020) stage two: the cRT setting with the
# stage-one classifier kept frozen and one learnable scale per class.
model = dict(
    head=dict(type='LWSHead', init_cfg=dict(type='StageOne', prefix='head.'))
)
