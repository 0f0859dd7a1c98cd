# LWS's settings: the same knobs and budget as cRT (crt.py), e.g. for
# configs/experiments/fashionmnistlt_if100/lws_r8.py.

from os.path import dirname, join
from runpy import run_path

_crt = run_path(join(dirname(__file__), 'crt.py'))
search, max_runs, criterion = _crt['search'], _crt['max_runs'], 'lt/top1'
grid = _crt['grid']
