"""glag_mm extends mmengine / mmpretrain through registered components, not
by reassigning attributes of objects it did not build or reading private
members. An AST scan of the package lists every such place; the ones left
from before the registered stage-two components are named in KNOWN (each
with the component meant to replace it), so a new one fails here and a
removed one must leave the list."""

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

# (file, what): to go, each for a registered component (docs/architecture.md)
KNOWN = {
    # a registered loop over a features dataloader
    ('engine/feature_cache_hook.py', 'assigns loop.dataloader'),
    ('engine/feature_cache_hook.py', 'assigns loop.dataloader_iterator'),
    # FrozenBackbone / a data preprocessor that serves cached features
    ('engine/feature_cache_hook.py', 'assigns model.extract_feat'),
    ('engine/feature_cache_hook.py', 'assigns pre.forward'),
    # public runner.train_loop / val_loop where they cannot build a loop
    ('engine/afg_hook.py', 'reads runner._train_loop'),
    ('engine/class_counts_hook.py', 'reads runner._train_loop'),
    ('engine/posthoc_tau_hook.py', 'reads runner._val_loop'),
    ('engine/posthoc_tau_hook.py', 'reads runner._test_loop'),
    ('engine/runner_defaults.py', 'reads self._hooks'),
}


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
    return found


def test_scan_sees_a_patch(tmp_path):
    """The scan itself, on a file with every kind of finding."""
    (tmp_path / 'm.py').write_text(
        'model.extract_feat = f\n'
        'loop.dataloader_iterator = it\n'
        'self.loss = own  # its own attribute: fine\n'
        'x = runner._train_loop\n'
        'y = loop._max_epochs\n'
    )
    assert findings(tmp_path) == {
        ('m.py', 'assigns model.extract_feat'),
        ('m.py', 'assigns loop.dataloader_iterator'),
        ('m.py', 'reads runner._train_loop'),
        ('m.py', 'reads loop._max_epochs'),
    }


def test_no_new_patches():
    found = findings()
    new = sorted(found - KNOWN)
    assert not new, f'new patches of objects glag_mm did not build: {new}'
    gone = sorted(KNOWN - found)
    assert not gone, f'removed, take them off KNOWN: {gone}'
