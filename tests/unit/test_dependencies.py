"""The collections galaxy.yml declares are the ones the roles and playbooks use, and no others.

A used but undeclared collection breaks an outside user's install from the tarball; a declared but
unused one is a download for nothing. Besides modules, filters and module_defaults groups, a
collection counts as used when the README tells users to load one of its plugins by its full name
(status.yml read by a script: ANSIBLE_STDOUT_CALLBACK=ansible.posix.json).
"""
import pathlib
import re

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
OWN = {'ansible.builtin', 'pgha.cluster'}
# keywords of a task that are not its action
KEYWORDS = {'name', 'when', 'loop', 'vars', 'register', 'tags', 'notify', 'become', 'become_user', 'delegate_to',
            'run_once', 'changed_when', 'failed_when', 'check_mode', 'ignore_errors', 'environment', 'loop_control',
            'no_log', 'listen', 'block', 'rescue', 'always', 'module_defaults', 'until', 'retries', 'delay', 'args',
            'async', 'poll', 'diff', 'throttle', 'any_errors_fatal', 'local_action', 'connection', 'timeout'}
FILTER = re.compile(r'(?:\||\bis\b|\b(?:lookup|query|map|select|reject)\(\s*[\'"])\s*([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)\.[a-z][a-z0-9_]*')

CALLBACK = re.compile(r'ANSIBLE_STDOUT_CALLBACK=([a-z][a-z0-9_]*\.[a-z][a-z0-9_]*)\.[a-z][a-z0-9_]*')


def _yaml_files():
    for top in ('roles', 'playbooks'):
        for path in sorted((ROOT / top).rglob('*.yml')):
            if '/molecule/' not in str(path):
                yield path


def _actions(node):
    if isinstance(node, list):
        for item in node:
            yield from _actions(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, str) and key.count('.') == 2 and key not in KEYWORDS and re.match(r'^[a-z0-9_.]+$', key):
                yield key
            if key == 'module_defaults' and isinstance(value, dict):
                for group in value:
                    if str(group).startswith('group/') and str(group).count('.') >= 1:
                        yield str(group)[len('group/'):]
            yield from _actions(value)


def used_collections():
    used = {}
    for path in _yaml_files():
        text = path.read_text()
        names = list(_actions(yaml.safe_load(text)))
        names += ['%s.%s.x' % m for m in FILTER.findall(text)]
        for name in names:
            coll = '.'.join(name.split('.')[:2])
            if coll not in OWN:
                used.setdefault(coll, str(path.relative_to(ROOT)))
    for match in CALLBACK.finditer((ROOT / 'README.md').read_text()):
        used.setdefault(match.group(1), 'README.md')
    return used


def declared_collections():
    return set((yaml.safe_load((ROOT / 'galaxy.yml').read_text()).get('dependencies') or {}).keys())


def test_every_collection_used_is_declared():
    used = used_collections()
    missing = {c: where for c, where in used.items() if c not in declared_collections()}
    assert not missing, 'used but not in galaxy.yml dependencies: %s' % missing


def test_every_collection_declared_is_used():
    assert declared_collections() - set(used_collections()) == set()


def test_the_scan_sees_the_dependencies_it_must():
    # the scan itself: modules, module_defaults groups and filters are found
    used = used_collections()
    assert {'community.postgresql', 'community.general', 'community.crypto', 'ansible.posix'} <= set(used), used


def test_the_json_callback_the_tests_use_is_the_one_the_readme_names():
    # ansible-core has no json callback: a bare "json" resolves only while ansible.posix is installed
    lib = (ROOT / 'tests' / 'lib' / 'pgha_testlib.py').read_text()
    assert "ANSIBLE_STDOUT_CALLBACK='ansible.posix.json'" in lib
    assert 'ANSIBLE_STDOUT_CALLBACK=ansible.posix.json' in (ROOT / 'README.md').read_text()
