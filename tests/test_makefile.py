"""The Makefile picks the first of python3.11, 3.12, 3.13 (or PYTHON=).

Fake interpreters on an otherwise empty PATH record how they are called;
none builds a venv, so ``make venv`` stops right after choosing one.
"""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAKE = shutil.which('make')

# -c (the version check) exits with the fake's verdict; anything else (the
# venv creation) is recorded and fails, so make stops there.
FAKE = """#!/bin/sh
echo "${{0##*/}} $*" >> {record}
case "$1" in -c) exit {check} ;; esac
exit 1
"""


def _make(tmp_path, pythons, *args):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    record = tmp_path / 'calls.txt'
    for name, supported in pythons.items():
        path = bin_dir / name
        path.write_text(
            FAKE.format(record=record, check=0 if supported else 1)
        )
        path.chmod(0o755)
    result = subprocess.run(
        [MAKE, '-C', str(REPO), 'venv', f'VENV={tmp_path / "venv"}', *args],
        env={'PATH': str(bin_dir), 'HOME': str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    calls = record.read_text().splitlines() if record.exists() else []
    return result, calls


pytestmark = pytest.mark.skipif(MAKE is None, reason='make is not installed')


def test_first_supported_python_is_used(tmp_path):
    result, calls = _make(tmp_path, {'python3.13': True, 'python3.12': True})
    assert result.returncode != 0  # the fake cannot build a venv
    venv = tmp_path / 'venv'
    assert calls[-1] == f'python3.12 -m venv {venv}'
    assert all(c.startswith('python3.12 ') for c in calls)


def test_python311_preferred(tmp_path):
    _, calls = _make(
        tmp_path,
        {'python3.13': True, 'python3.11': True, 'python3.12': True},
    )
    assert calls[-1].startswith('python3.11 -m venv ')


def test_no_python_found(tmp_path):
    result, calls = _make(tmp_path, {'python3.10': True})
    assert result.returncode != 0
    assert calls == []
    assert 'no python3.11 python3.12 python3.13 on PATH' in result.stderr
    assert 'make PYTHON=' in result.stderr


def test_python_override_checked(tmp_path):
    result, calls = _make(
        tmp_path,
        {'python3.12': True, 'python3.10': False},
        f'PYTHON={tmp_path / "bin" / "python3.10"}',
    )
    assert result.returncode != 0
    assert 'is not Python 3.11, 3.12 or 3.13' in result.stderr
    assert [c.split()[0] for c in calls] == ['python3.10']
