"""The documentation stays true: README.md and docs/*.md.

Every relative link and image resolves (anchors included); every path of
the repository named in backticks exists; every ``python tools/X.py ...``
command named parses with that tool's own argument parser; the scalar
names docs/tools.md lists are the ones a short two-stage run logs; and
nothing cites a specification file the repository does not ship.
"""

import importlib.util
import os
import os.path as osp
import re
import shlex
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted([REPO / 'README.md', *(REPO / 'docs').glob('*.md')])
LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)\)')
SPAN = re.compile(r'`([^`]+)`')
PATH = re.compile(
    r'(?<![\w./-])((?:configs|tools|glag_mm|benchmarks|results|experiments'
    r'|tests|docs)/[^\s`\'",;:()\[\]]*)'
)
PLACEHOLDER = re.compile(r'[<>*{}…|]|\.\.\.')
# Paths that exist only in a built wheel (setup.py copies tools/ and
# configs/ there), not in the repository.
BUILT = ('glag_mm/.mim',)
COMMAND = re.compile(r'^(?:\.venv/bin/)?python (tools/\w+\.py)(\s.*)?$')


def _text(path: Path) -> str:
    return path.read_text(encoding='utf-8')


def spans(text: str):
    """Inline code spans, outside fenced blocks (a span may wrap)."""
    return SPAN.findall(re.sub(r'```.*?```', '', text, flags=re.S))


def _name(path: Path) -> str:
    return str(path.relative_to(REPO))


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped,
    spaces to hyphens (letters such as the Greek tau are kept)."""
    text = re.sub(r'[`*_]', '', heading.strip().lower())
    text = re.sub(r'[^\w\- ]', '', text)
    return text.replace(' ', '-')


def anchors(path: Path) -> set:
    heads = re.findall(r'^#{1,6} (.+)$', _text(path), flags=re.M)
    return {slug(h) for h in heads}


def code_lines(text: str):
    """Lines of indented code blocks and of fenced blocks."""
    fenced = False
    for line in text.splitlines():
        if line.startswith('```'):
            fenced = not fenced
            continue
        if fenced:
            yield line.strip()
        elif line.startswith('    '):
            yield line.strip()


def commands(text: str):
    """``python tools/X.py ...`` commands of code blocks (continuation
    lines joined) and of inline code spans (which may wrap a line)."""
    found, pending = [], ''
    for line in code_lines(text):
        line = pending + line
        pending = ''
        if line.endswith('\\'):
            pending = line[:-1] + ' '
            continue
        found.append(line.split('  #')[0].split(' # ')[0].strip())
    found += [' '.join(s.split()) for s in spans(text)]
    return [c for c in found if COMMAND.match(c)]


def test_the_docs_exist_and_the_readme_is_a_landing_page():
    names = {_name(p) for p in DOCS}
    for name in (
        'docs/README.md',
        'docs/method.md',
        'docs/getting_data.md',
        'docs/configs.md',
        'docs/tools.md',
        'docs/results.md',
        'docs/architecture.md',
    ):
        assert name in names
    assert len(_text(REPO / 'README.md').splitlines()) <= 250


@pytest.mark.parametrize('doc', DOCS, ids=_name)
def test_links_and_images_resolve(doc):
    broken = []
    for target in LINK.findall(_text(doc)):
        if re.match(r'[a-z]+:', target):
            continue  # http(s), mailto: not checked offline
        file_part, _, anchor = target.partition('#')
        path = (doc.parent / file_part).resolve() if file_part else doc
        if not path.exists():
            broken.append(f'{target} (no file {path.relative_to(REPO)})')
        elif anchor and path.suffix == '.md' and anchor not in anchors(path):
            broken.append(f'{target} (no heading #{anchor})')
    assert not broken, f'{_name(doc)}: {broken}'


@pytest.mark.parametrize('doc', DOCS, ids=_name)
def test_named_repository_paths_exist(doc):
    missing = []
    for span in spans(_text(doc)):
        for path in PATH.findall(span):
            path = path.rstrip('.')
            if PLACEHOLDER.search(path) or path.startswith(BUILT):
                continue
            if not (REPO / path).exists():
                missing.append(path)
    assert not missing, f'{_name(doc)} names paths that do not exist'


def _parse_args(tool: str):
    spec = importlib.util.spec_from_file_location(
        'docs_' + Path(tool).stem, REPO / tool
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.parse_args


def test_named_tool_commands_parse(monkeypatch):
    named = {}
    for doc in DOCS:
        for command in commands(_text(doc)):
            named.setdefault(command, _name(doc))
    tools = {COMMAND.match(c).group(1) for c in named}
    # the commands a user is shown first are among them
    assert {
        'tools/train.py',
        'tools/test.py',
        'tools/export.py',
        'tools/select_settings.py',
        'tools/feature_spread.py',
        'tools/run_experiments.py',
        'tools/make_report.py',
    } <= tools
    parsers = {tool: _parse_args(tool) for tool in sorted(tools)}
    environ = dict(os.environ)
    failed = []
    for command, doc in named.items():
        tool, rest = COMMAND.match(command).groups()
        argv = [a.strip('[]') for a in shlex.split(rest or '') if a != '...']
        try:
            parsers[tool](argv)
        except SystemExit as exc:
            failed.append(f'{doc}: {command} (exit {exc.code})')
    os.environ.clear()
    os.environ.update(environ)  # train.py's parser sets LOCAL_RANK
    assert not failed, failed


def _documented_scalars():
    """The first column of the table under docs/tools.md's "What a run
    logs" heading."""
    text = _text(REPO / 'docs' / 'tools.md')
    section = text.split('## What a run logs', 1)[1].split('\n## ', 1)[0]
    rows = [r for r in section.splitlines() if r.startswith('| `')]
    return [SPAN.findall(r.split('|')[1]) for r in rows]


def _run_scalars(tmp_path):
    """Every key of scalars.json of a short GraLoss stage one, an FBL
    stage one and a GLAG stage two (AFG + KD, confidence updates)."""
    from test_stage_two import (
        _scalars,
        _write,
        stage_one_cfg,
        stage_two_cfg,
    )

    from glag_tools import run_stages

    one = stage_one_cfg()
    one['train_cfg']['max_epochs'] = 1
    one['model']['head']['loss'] = dict(
        type='GradualBalancedLoss', num_classes=4
    )
    fbl = stage_one_cfg()
    fbl['train_cfg']['max_epochs'] = 1
    fbl['model']['head'] = dict(
        type='FBLHead', num_classes=4, in_channels=16, curriculum='convex'
    )
    two = stage_two_cfg()
    two['train_cfg']['max_epochs'] = 2
    stages = dict(
        stages=[
            dict(name='stage1', config=_write(tmp_path / 's1.py', one)),
            dict(name='fbl', config=_write(tmp_path / 'fbl.py', fbl)),
            dict(
                name='stage2',
                config=_write(tmp_path / 's2.py', two),
                init_from='stage1',
            ),
        ]
    )
    top = _write(tmp_path / 'top.py', stages)
    run_stages(top, work_dir=str(tmp_path / 'run'))
    keys = set()
    for stage in ('stage1', 'fbl', 'stage2'):
        for record in _scalars(str(tmp_path / 'run' / stage)):
            keys.update(record)
    return keys


@pytest.mark.slow
def test_documented_scalars_are_the_logged_ones(tmp_path):
    documented = _documented_scalars()
    assert len(documented) >= 6
    logged = _run_scalars(tmp_path)
    for names in documented:
        for name in names:
            pattern = re.escape(name).replace(re.escape('<c>'), r'\d+')
            assert any(re.fullmatch(pattern, k) for k in logged), (
                f'docs/tools.md lists {name!r}; the run logged '
                f'{sorted(logged)}'
            )


def test_no_citation_of_a_file_the_repository_does_not_ship():
    out = subprocess.run(
        ['grep', '-rn', 'METHOD.md', 'glag_mm', 'README.md', 'docs'],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1, out.stdout  # grep: 1 = no line matched
    assert osp.isfile(REPO / 'docs' / 'method.md')
