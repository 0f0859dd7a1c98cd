# cRT's settings (learning rate, epochs), chosen on the validation split by
# tools/select_settings.py with about the budget of glag_stage_two.py. E.g.
#
#   python tools/select_settings.py \
#       configs/experiments/fashionmnistlt_if100/crt_r8.py \
#       --spec experiments/selection/crt.py \
#       --cfg-options stage_one_checkpoint=STAGE_ONE.pth
#
# Grid search: 3 x 2 = 6 training runs of 10 or 20 epochs (GLAG's 8 runs
# are of 10). The epochs axis changes the cosine schedule's length with it
# (configs whose param_scheduler is one dict). Also used for LWS (lws.py).

from glag_tools.experiments.spec import schedule_options

search = 'grid'
max_runs = 8
criterion = 'lt/top1'
grid = {
    'optim_wrapper.optimizer.lr': [0.1, 0.03, 0.3],
    'epochs': [schedule_options(10), schedule_options(20)],
}
