"""Every role has a README.md naming each entry point the collection uses.

An entry point is a tasks file some playbook or role includes with
``include_role``/``import_role`` (``tasks_from``; ``main`` when a playbook
lists the role under ``roles:``). A role whose README forgets one of them (or
that has no README) fails here, so the READMEs stay true as steps are added.
"""
import pathlib
import re

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (ROOT / 'roles').iterdir() if (p / 'tasks').is_dir())
INCLUDES = ('ansible.builtin.include_role', 'ansible.builtin.import_role', 'include_role', 'import_role')


def _walk(node, found):
    if isinstance(node, dict):
        for key in INCLUDES:
            spec = node.get(key)
            if isinstance(spec, dict) and str(spec.get('name', '')).startswith('pgha.cluster.'):
                found.add((spec['name'].split('.')[-1], spec.get('tasks_from', 'main')))
        roles = node.get('roles')
        if isinstance(roles, list):
            for item in roles:
                name = item.get('role', item.get('name')) if isinstance(item, dict) else item
                if str(name).startswith('pgha.cluster.'):
                    found.add((name.split('.')[-1], 'main'))
        for value in node.values():
            _walk(value, found)
    elif isinstance(node, list):
        for value in node:
            _walk(value, found)


def entry_points():
    found = set()
    files = list((ROOT / 'playbooks').glob('*.yml')) + list((ROOT / 'roles').glob('*/tasks/*.yml'))
    for path in files:
        _walk(yaml.safe_load(path.read_text()), found)
    return found


def test_the_scan_finds_the_runbooks_steps():
    found = entry_points()
    assert ('runbook', 'survey') in found
    assert ('postgresql', 'preflight') in found
    assert ('postgresql', 'main') in found


def test_every_role_has_a_readme_with_its_entry_points():
    missing = []
    for role, step in sorted(entry_points()):
        readme = ROOT / 'roles' / role / 'README.md'
        if not readme.exists():
            missing.append(f'{role}: no README.md')
            continue
        if not re.search(r'`%s`' % re.escape(step), readme.read_text()):
            missing.append(f'{role}: entry point {step} not in README.md')
    for role in ROLES:
        if not (ROOT / 'roles' / role / 'README.md').exists():
            missing.append(f'{role}: no README.md')
    assert not missing, '\n'.join(sorted(set(missing)))


def test_every_readme_names_a_public_interface():
    for role in ROLES:
        text = (ROOT / 'roles' / role / 'README.md').read_text()
        assert '## Public interface' in text, role
        assert '## Entry points' in text, role
