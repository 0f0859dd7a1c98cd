"""Run every case of the bad-input table (docs/reliability.md) and count
how each ends.

Each in-process case gives a bad input to the piece that reads it and
collects what the user sees (the error, or the warning of a file that is
rebuilt). Its outcome is

* clear: the message names the input and says what to change (every
  expected fragment present, no forbidden one such as the full-unpickling
  opt-in for a damaged file);
* partly: a message of glag_mm that misses a fragment;
* raw: an error of another library (torch, Python) or a payload that ran;
* silent: nothing said, the bad input used.

Cases that need a whole training run (NaN, automatic resume, the
stage-one placeholder) run their test with pytest (``--runs``); a passing
test counts as clear. Run::

    OMP_NUM_THREADS=1 python benchmarks/bad_inputs.py [--runs]

It prints one line per case and the four counts; it exits 1 unless raw
and silent are both 0.
"""

import argparse
import contextlib
import io
import logging
import os
import os.path as osp
import subprocess
import sys
import tempfile
from typing import Callable, List, Optional, Tuple

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path[:0] = [ROOT, osp.join(ROOT, 'benchmarks')]

import bad_input_settings  # noqa: E402, F401  (registers its cases)
from bad_input_cases import CASES  # noqa: E402

#: table rows shown by a training run: (row, pytest node)
RUN_TESTS = [
    (
        'NaN / Inf in features, logits or losses',
        'tests/test_bad_inputs.py::test_nan_features_stop_training',
    ),
    (
        '--resume with an unreadable latest checkpoint',
        'tests/test_bad_inputs.py::'
        'test_auto_resume_skips_an_unreadable_latest_checkpoint',
    ),
    (
        'unreadable load_from leaves the work_dir alone',
        'tests/test_bad_inputs.py::'
        'test_unreadable_load_from_leaves_the_work_dir_alone',
    ),
    (
        "older stage-two config's placeholder without a stage-one checkpoint",
        'tests/test_tools.py::test_stage_one_placeholder_errors',
    ),
    (
        'shipped stage-two config without stage_one_checkpoint',
        'tests/test_mmpretrain_tools.py::'
        'test_mmpretrain_train_py_names_the_key_when_missing',
    ),
    (
        'relabelled feature cache: rebuilt, same head as computing it',
        'tests/test_stage_two_files.py::'
        'test_relabelled_cache_is_rebuilt_not_used',
    ),
]


def classify(
    case: Callable[[str], Optional[str]],
    expect: Tuple[str, ...],
    forbid: Tuple[str, ...],
    folder: str,
) -> Tuple[str, str]:
    """(outcome, message) of one case run in ``folder``."""
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    logging.getLogger().addHandler(handler)
    try:
        with contextlib.redirect_stdout(log):
            said = case(folder)
    except Exception as error:  # what the user would see
        said = f'{type(error).__module__}.{type(error).__name__}: {error}'
    finally:
        logging.getLogger().removeHandler(handler)
    if said is None:
        return 'silent', '(nothing said)'
    text = said + log.getvalue()
    if 'PAYLOAD RAN' in text:
        return 'raw', text
    if all(e in text for e in expect) and not any(f in text for f in forbid):
        return 'clear', said
    ours = 'glag_mm' in text or any(e in text for e in expect[:1])
    return ('partly' if ours else 'raw'), said


def run_tests(nodes: List[str]) -> dict:
    """pytest node -> passed, in one pytest process."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run(
        [
            sys.executable,
            '-m',
            'pytest',
            '-q',
            '-rA',
            '-p',
            'no:cacheprovider',
            *nodes,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    ).stdout
    # a parametrised test passes where one case passed and none failed
    return {
        n: f'PASSED {n}' in out
        and f'FAILED {n}' not in out
        and f'ERROR {n}' not in out
        for n in nodes
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--runs', action='store_true', help='also the training-run cases'
    )
    args = parser.parse_args()
    counts = dict(clear=0, partly=0, raw=0, silent=0)
    for name, case, expect, forbid in CASES:
        with tempfile.TemporaryDirectory() as folder:
            outcome, said = classify(case, expect, forbid, folder)
        counts[outcome] += 1
        first = said.strip().splitlines()[0] if said.strip() else said
        print(f'{outcome:7} {name}\n        {first[:150]}')
    if args.runs:
        passed = run_tests([node for _, node in RUN_TESTS])
        for name, node in RUN_TESTS:
            outcome = 'clear' if passed[node] else 'raw'
            counts[outcome] += 1
            print(f'{outcome:7} {name}\n        ({node})')
    total = sum(counts.values())
    print(
        f'{total} cases: '
        + ', '.join(
            f'{counts[k]} {k}' for k in ('clear', 'partly', 'raw', 'silent')
        )
    )
    return 0 if counts['raw'] == counts['silent'] == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
