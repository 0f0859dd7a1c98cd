"""A fresh clone: ``make demo``'s data, then the README's quick start.

The quick start's commands are read from README.md (the code blocks of its
"Quick start" section) and run unchanged, in a copy of the repository (its
tracked and not ignored files), each paragraph of a block in one ``bash``
(so ``. .venv/bin/activate`` holds for the lines after it, and a paragraph
after a blank line starts without it). The copy's ``.venv`` is the
environment running the tests, seen through links (nothing is installed:
``make -q venv`` must find it up to date first), and ``PYTHONPATH`` is the
copy, as the editable install of a clone points at the clone.

The data come as ``make demo`` gets them: its data step (``make demo-data``)
runs as the Makefile writes it, from a stand-in of the Debian package's
gzipped files (``FASHION_MNIST_SYSTEM_DIR``): the suite's learnable 28x28
images, as many a class as the demo's long-tailed subset (imbalance factor
100) keeps at 100 for the largest class, 100 down to 1 (242 images), plus
``HELD_OUT`` more in every other class for the configs' held-out validation
split, and 2 test images a class, so that the demo's 8-epoch schedule at
batch 128 is 16 iterations. ``make demo``'s table run (``tools/demo.py``)
is covered in process by ``tests/test_demo.py``; here ``make -n demo``
shows it reads the folder the data step fills, the one the quick start's
configs read.
"""

import gzip
import hashlib
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mmengine.config import Config
from test_docs import _parse_args
from test_tools import write_fashion_mnist

from glag_mm.datasets import long_tail_counts
from glag_mm.safe_load import load_checkpoint_file

REPO = Path(__file__).resolve().parents[1]
MAKE = shutil.which('make')
GIT = shutil.which('git')
SHELL_FENCES = ('', 'sh', 'bash', 'shell', 'console')
TOOL = re.compile(r'^(?:\S*/)?python (tools/(?:train|test)\.py)\s(.*)$')
N_MAX = 100  # the smallest n_max at which IF 100 keeps 1 image a class
TEST_PER_CLASS = 2
HELD_OUT = 3  # images a class (but the largest) beyond what the subset keeps
FILES = (
    'train-images-idx3-ubyte',
    'train-labels-idx1-ubyte',
    't10k-images-idx3-ubyte',
    't10k-labels-idx1-ubyte',
)

pytestmark = pytest.mark.skipif(
    MAKE is None or GIT is None, reason='needs make and git'
)


# ------------------------------------------------------- the README's text
def readme_section(heading: str) -> str:
    """The ``## heading...`` section of README.md, up to the next one."""
    text = (REPO / 'README.md').read_text(encoding='utf-8')
    found = [
        part
        for part in re.split(r'^(?=## )', text, flags=re.M)
        if part.startswith(f'## {heading}')
    ]
    assert len(found) == 1, f'README.md needs one "## {heading}" section'
    return found[0]


def shell_blocks(markdown: str):
    """Code blocks: indented ones, and fenced ones of a shell (or of no
    language); each one string, blank lines inside kept."""
    blocks, indented, fence, blank = [], None, None, True
    for line in markdown.splitlines() + ['']:
        if fence is not None:
            if line.startswith('```'):
                if fence[0] in SHELL_FENCES:
                    blocks.append(fence[1])
                fence = None
            else:
                fence[1].append(line)
        elif line.startswith('```'):
            fence, indented = (line[3:].strip(), []), None
        elif line.startswith('    ') and (indented is not None or blank):
            if indented is None:
                indented = []
                blocks.append(indented)
            indented.append(line[4:])
        elif not line.strip() and indented is not None:
            indented.append('')
        else:
            indented = None
        blank = not line.strip()
    return [b for b in ('\n'.join(b).strip('\n') for b in blocks) if b]


def sessions(block: str):
    """A block's paragraphs, each a list of commands (``\\`` lines joined):
    one shell each."""
    found = []
    for paragraph in re.split(r'\n\s*\n', block):
        joined = re.sub(r'\\\n\s*', ' ', paragraph.strip())
        found.append([line.strip() for line in joined.splitlines()])
    return found


# ------------------------------------------------------------ a fresh clone
def copy_repository(dest: Path) -> None:
    """The files a clone would hold: tracked and not ignored."""
    listed = subprocess.run(
        [GIT, 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b'\0')
    for name in filter(None, listed):
        source = REPO / os.fsdecode(name)
        if source.is_file():  # a tracked file deleted here is skipped
            target = dest / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def link_environment(clone: Path) -> None:
    """``clone/.venv``: links to the running environment's folders and the
    Makefile's stamp, newer than what it depends on."""
    if sys.prefix == sys.base_prefix:
        pytest.skip('the tests run outside a virtual environment')
    venv = clone / '.venv'
    venv.mkdir()
    for entry in Path(sys.prefix).iterdir():
        if not entry.name.startswith('.'):
            (venv / entry.name).symlink_to(entry)
    makefile = (clone / 'Makefile').read_text()
    stamp = re.search(r'^STAMP := \$\(VENV\)/(\S+)$', makefile, re.M)
    assert stamp, 'the Makefile names no STAMP := $(VENV)/...'
    (venv / stamp.group(1)).touch()


def user_environment(clone: Path, system_dir: Path) -> dict:
    """A user's shell: no environment active, the clone importable."""
    env = {k: v for k, v in os.environ.items() if k != 'VIRTUAL_ENV'}
    path = env.get('PATH', '').split(os.pathsep)
    path = [p for p in path if p and not (Path(p) / 'activate').is_file()]
    env.update(
        PATH=os.pathsep.join(path),
        PYTHONPATH=str(clone),
        OMP_NUM_THREADS='1',
        FASHION_MNIST_SYSTEM_DIR=str(system_dir),
    )
    return env


def make(clone: Path, env: dict, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MAKE, '--no-print-directory', *args],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def written_counts() -> list:
    """Images a class in the stand-in: the largest class is kept whole
    (it sets n_max); every other class has ``HELD_OUT`` images the
    long-tailed subset leaves for the held-out validation split."""
    kept = long_tail_counts(10, N_MAX, 100)
    return [kept[0]] + [n + HELD_OUT for n in kept[1:]]


@pytest.fixture(scope='module')
def clone(tmp_path_factory):
    """A copy of the repository after ``make demo-data``."""
    root = tmp_path_factory.mktemp('quickstart')
    clone = root / 'glag_mm'
    copy_repository(clone)
    link_environment(clone)
    raw = Path(
        write_fashion_mnist(root / 'raw', written_counts(), TEST_PER_CLASS)
    )
    system_dir = root / 'system'
    system_dir.mkdir()
    for name in FILES:
        with gzip.open(system_dir / f'{name}.gz', 'wb') as f:
            f.write((raw / name).read_bytes())
    env = user_environment(clone, system_dir)
    # never install into the running environment: the stamp must be current
    assert make(clone, env, '-q', 'venv').returncode == 0
    first = make(clone, env, 'demo-data')
    return dict(clone=clone, env=env, raw=raw, first=first)


def fashion_mnist_roots(node) -> set:
    """data_root of every FashionMNIST dataset of a config."""
    if isinstance(node, dict):
        roots = (
            {node['data_root']}
            if node.get('type') == 'FashionMNIST'
            else set()
        )
        return roots.union(*map(fashion_mnist_roots, node.values()))
    if isinstance(node, (list, tuple)):
        return set().union(*map(fashion_mnist_roots, node))
    return set()


def quick_start():
    """The README's quick start: a list of commands a shell session."""
    blocks = shell_blocks(readme_section('Quick start'))
    assert blocks, 'the quick start shows no command'
    return [s for block in blocks for s in sessions(block)]


def tool_commands(monkeypatch):
    """(tool, parsed arguments, command) of each train / test command."""
    monkeypatch.setenv('LOCAL_RANK', '0')  # the tools' parsers set it
    found = []
    for session in quick_start():
        for command in session:
            match = TOOL.match(command.split('  #')[0].strip())
            if match:
                tool, rest = match.groups()
                args = _parse_args(tool)(shlex.split(rest, comments=True))
                found.append((tool, args, command))
    return found


# ------------------------------------------------------------------ tests
def test_make_demo_data_step(clone, monkeypatch):
    """``make demo-data`` (the first step of ``make demo``) unpacks the four
    files where the quick start's configs read them, once."""
    first, env, root = clone['first'], clone['env'], clone['clone']
    assert first.returncode == 0, first.stderr
    steps = make(root, env, '-n', 'demo').stdout.splitlines()
    assert len(steps) == 2, steps
    fetch, demo = (shlex.split(s) for s in steps)
    assert fetch[:2] == ['bash', 'tools/get_fashion_mnist.sh']
    data = fetch[2]
    assert demo == ['.venv/bin/python', 'tools/demo.py', '--data-root', data]
    written = root / data
    assert sorted(p.name for p in written.iterdir()) == sorted(FILES)
    for name in FILES:
        assert digest(written / name) == digest(clone['raw'] / name), name
    # the quick start's configs read that folder and no other data
    configs = {args.config for _, args, _ in tool_commands(monkeypatch)}
    for config in configs:
        roots = fashion_mnist_roots(
            Config.fromfile(str(root / config)).to_dict()
        )
        assert roots == {data}, (config, roots)
    # a second run keeps the files as they are
    before = {p.name: p.stat().st_mtime_ns for p in written.iterdir()}
    assert make(root, env, 'demo-data').returncode == 0
    assert {p.name: p.stat().st_mtime_ns for p in written.iterdir()} == before


FAKE_APT = """#!/bin/sh
echo "$*" >> {calls}
echo "E: no network" >&2
exit 100
"""


@pytest.mark.parametrize(
    'uid, calls',
    [
        ('0', ['install', 'update', 'install']),  # root: apt-get install
        ('1000', ['download']),  # otherwise: apt-get download, dpkg-deb
    ],
)
def test_demo_data_without_the_package(tmp_path, uid, calls):
    """Offline, with the package neither installed nor downloadable, the
    data step stops with what to do, having made no folder."""
    fake = tmp_path / 'bin'
    fake.mkdir()
    record = tmp_path / 'calls.txt'
    (fake / 'apt-get').write_text(FAKE_APT.format(calls=record))
    (fake / 'id').write_text(f'#!/bin/sh\necho {uid}\n')
    for tool in fake.iterdir():
        tool.chmod(0o755)
    dest = tmp_path / 'data' / 'fashion-mnist'
    result = subprocess.run(
        ['bash', str(REPO / 'tools' / 'get_fashion_mnist.sh'), str(dest)],
        env=dict(
            os.environ,
            PATH=f'{fake}{os.pathsep}{os.environ["PATH"]}',
            FASHION_MNIST_SYSTEM_DIR=str(tmp_path / 'not_installed'),
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    verb = calls[-1]
    assert (
        f'cannot {verb} the Debian package dataset-fashion-mnist; install '
        f'it (apt-get install dataset-fashion-mnist) or put the four files '
        f'in {dest}'
    ) in result.stderr
    made = [line.split()[0] for line in record.read_text().splitlines()]
    assert made == calls
    assert not (tmp_path / 'data').exists()


def run_session(commands, clone: Path, env: dict, logs: Path):
    """Run the commands in one bash, each one's output to its own log, up
    to the first that fails; return [(command, exit status, log)]."""
    logs.mkdir(parents=True, exist_ok=True)
    script = ['cd ' + shlex.quote(str(clone))]
    for i, command in enumerate(commands):
        log, rc = (shlex.quote(str(logs / f'{i}.{e}')) for e in ('log', 'rc'))
        script += ['{', command, f'}} > {log} 2>&1', f'echo $? > {rc}']
        script.append(f'[ "$(cat {rc})" = 0 ] || exit 1')
    subprocess.run(['bash', '-c', '\n'.join(script)], env=env, timeout=600)
    ran = []
    for i, command in enumerate(commands):
        if not (logs / f'{i}.rc').exists():
            break
        status = int((logs / f'{i}.rc').read_text())
        ran.append((command, status, (logs / f'{i}.log').read_text()))
    return ran


@pytest.mark.slow
def test_quick_start_as_written(clone, monkeypatch, tmp_path):
    root, env = clone['clone'], clone['env']
    assert clone['first'].returncode == 0, clone['first'].stderr
    outputs = {}
    for n, session in enumerate(quick_start()):
        ran = run_session(session, root, env, tmp_path / str(n))
        for command, status, log in ran:
            assert status == 0, f'{command}\n{log[-3000:]}'
            outputs[command] = log
        assert len(ran) == len(session)
    commands = tool_commands(monkeypatch)
    tools = [tool for tool, _, _ in commands]
    assert 'tools/train.py' in tools and 'tools/test.py' in tools
    counts = long_tail_counts(10, N_MAX, 100)
    trained = set()
    for tool, args, command in commands:
        log = outputs[command]
        stem = Path(args.config).stem
        work_dir = root / (args.work_dir or f'work_dirs/{stem}')
        cfg = Config.fromfile(str(root / args.config))
        epochs = cfg.train_cfg.max_epochs
        if tool == 'tools/train.py':
            # the long-tailed subset of the files make demo-data unpacked
            kept = f'kept {sum(counts)} of {sum(written_counts())} images'
            assert f'LongTailDataset (train): {kept}' in log
            checkpoint = work_dir / f'epoch_{epochs}.pth'
            meta = load_checkpoint_file(str(checkpoint))['meta']
            iters = epochs * math.ceil(
                sum(counts) / cfg.train_dataloader.batch_size
            )
            assert (meta['epoch'], meta['iter']) == (epochs, iters)
            last = (work_dir / 'last_checkpoint').read_text().strip()
            assert Path(root / last).resolve() == checkpoint.resolve()
            trained.add(checkpoint.resolve())
            continue
        # test: the checkpoint a train command above wrote, and its top-1
        # printed as the metrics file of the run records it
        assert (root / args.checkpoint).resolve() in trained, command
        assert f'Load checkpoint from {args.checkpoint}' in log
        printed = re.findall(r'Epoch\(test\).*?lt/top1: ([\d.]+)', log)
        assert len(printed) == 1, log[-3000:]
        (written,) = [
            p
            for p in work_dir.glob('*/*.json')
            if '"lt/top1"' in p.read_text()
        ]
        recorded = re.search(r'"lt/top1": ([\d.]+)', written.read_text())
        top1 = float(printed[0])
        assert top1 == pytest.approx(float(recorded[1]), 1e-4)
        # a percentage of the stand-in's test images
        correct = top1 / 100 * 10 * TEST_PER_CLASS
        assert correct == pytest.approx(round(correct), abs=1e-3)
        assert 0 <= round(correct) <= 10 * TEST_PER_CLASS
