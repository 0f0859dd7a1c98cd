"""glag_mm extends mmengine / mmpretrain through registered components, not
by reassigning attributes of objects it did not build or reading private
members. An AST scan of the package finds every such place (an assignment
to a patched name of another object, ``runner._x`` / ``loop._x``, or the
same through ``getattr(obj, '_x')``); there must be none. That no
checkpoint is rewritten is tested on a run in tests/test_stage_two_loops.py.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / 'glag_mm'
PATCHED = {
    'extract_feat',
    'forward',
    'loss',
    'distiller',
    'dataloader',
    'dataloader_iterator',
}
PRIVATE_OWNERS = {'runner', 'loop'}


def _name(node):
    return node.id if isinstance(node, ast.Name) else type(node).__name__


def findings(root=PACKAGE):
    found = set()
    for path in sorted(root.rglob('*.py')):
        rel = str(path.relative_to(root))
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                targets = [node.target]
            for target in targets:
                if (
                    isinstance(target, ast.Attribute)
                    and target.attr in PATCHED
                    and _name(target.value) != 'self'
                ):
                    what = f'assigns {_name(target.value)}.{target.attr}'
                    found.add((rel, what))
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith('_')
                and not node.attr.startswith('__')
                and isinstance(node.value, ast.Name)
                and (
                    node.value.id in PRIVATE_OWNERS
                    or (node.value.id == 'self' and node.attr == '_hooks')
                )
            ):
                found.add((rel, f'reads {node.value.id}.{node.attr}'))
            if (
                isinstance(node, ast.Call)
                and _name(node.func) == 'getattr'
                and len(node.args) >= 2
                and isinstance(node.args[0], ast.Name)
                and node.args[0].id in PRIVATE_OWNERS
                and isinstance(node.args[1], ast.Constant)
                and str(node.args[1].value).startswith('_')
            ):
                attr = node.args[1].value
                found.add((rel, f'reads {node.args[0].id}.{attr}'))
    return found


def test_scan_sees_a_patch(tmp_path):
    """The scan itself, on a file with every kind of finding."""
    (tmp_path / 'm.py').write_text(
        'model.extract_feat = f\n'
        'loop.dataloader_iterator = it\n'
        'self.loss = own  # its own attribute: fine\n'
        'x = runner._train_loop\n'
        'y = loop._max_epochs\n'
        "z = getattr(runner, '_val_loop', None)\n"
    )
    assert findings(tmp_path) == {
        ('m.py', 'assigns model.extract_feat'),
        ('m.py', 'assigns loop.dataloader_iterator'),
        ('m.py', 'reads runner._train_loop'),
        ('m.py', 'reads loop._max_epochs'),
        ('m.py', 'reads runner._val_loop'),
    }


def test_no_patches():
    found = sorted(findings())
    assert not found, f'patches of objects glag_mm did not build: {found}'
