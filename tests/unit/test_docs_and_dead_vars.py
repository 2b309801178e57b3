"""Every runbook option is documented in the README, and no registered result
or fact is left unread (a variable nobody reads is a check nobody makes)."""

import glob
import os
import re

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
SOURCES = sorted(glob.glob(os.path.join(ROOT, 'playbooks', '**', '*.yml'), recursive=True)
                 + glob.glob(os.path.join(ROOT, 'playbooks', '**', '*.j2'), recursive=True)
                 + glob.glob(os.path.join(ROOT, 'roles', '**', '*.yml'), recursive=True)
                 + glob.glob(os.path.join(ROOT, 'roles', '**', '*.j2'), recursive=True)
                 + glob.glob(os.path.join(ROOT, 'plugins', '**', '*.py'), recursive=True))
TEXT = dict((p, open(p).read()) for p in SOURCES)
PLAYBOOKS = sorted(glob.glob(os.path.join(ROOT, 'playbooks', '*.yml')))


def _walk(node):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def _registered_and_facts():
    names = set()
    for path, text in TEXT.items():
        if not path.endswith('.yml'):
            continue
        for item in _walk(yaml.safe_load(text)):
            if isinstance(item.get('register'), str):
                names.add((item['register'], path))
            fact = item.get('ansible.builtin.set_fact')
            if isinstance(fact, dict):
                # (ansible_*: connection variables, which Ansible itself reads)
                names.update((k, path) for k in fact if k != 'cacheable' and not k.startswith('ansible_'))
    return names


#: Variables of the collection's roles (documented with each role, not as runbook options).
ROLE_PREFIXES = ('postgresql_', 'keepalived_', 'backup_', 'logical_', 'pgpool_', 'monitoring_')


def runbook_options():
    """What an operator can pass with -e: the plays' own variables (not private, not
    ansible_*), and names read with '| default(' that no task registers or sets."""
    assigned = set(pair[0] for pair in _registered_and_facts())
    options = set()
    for path in PLAYBOOKS:
        for play in yaml.safe_load(open(path)) or []:
            # a role's own variables set by a play (site.yml's subscribers) are not options
            options.update(k for k in (play.get('vars') or {}) if not k.startswith(('__', 'ansible_') + ROLE_PREFIXES))
        options.update(n for n in re.findall(r"(?<!\| )(?<![.\w\]'])([a-z][a-z0-9_]+) \| default\(", open(path).read())
                       if n not in assigned and not n.startswith(('__', 'ansible_', 'hostvars') + ROLE_PREFIXES))
    for path in glob.glob(os.path.join(ROOT, 'playbooks', 'tasks', '*.yml')):
        options.update(n for n in re.findall(r'\b((?:pgha|runbook)_[a-z0-9_]+) \| default\(', open(path).read())
                       if n not in assigned)
    return sorted(options)


def test_options_are_found():
    found = runbook_options()
    for name in ('promote_force', 'rejoin_split_brain_confirm', 'runbook_connect_timeout', 'restore_confirm'):
        assert name in found


@pytest.mark.parametrize('option', runbook_options())
def test_every_runbook_option_is_in_the_readme(option):
    with open(os.path.join(ROOT, 'README.md')) as f:
        readme = f.read()
    assert '`%s' % option in readme, '%s is a runbook option the README does not document' % option


@pytest.mark.parametrize('name,path', sorted(_registered_and_facts()))
def test_every_registered_result_and_fact_is_read(name, path):
    pattern = re.compile(r'\b%s\b' % re.escape(name))
    uses = 0
    for other, text in TEXT.items():
        uses += len(pattern.findall(text))
    tests = ''.join(open(p).read() for p in glob.glob(os.path.join(ROOT, 'molecule', '**', '*.py'), recursive=True))
    # the assignment itself counts once; anything more is a reader (a template, a test, a condition)
    assert uses > 1 or pattern.search(tests), '%s (%s) is set but never read' % (name, os.path.relpath(path, ROOT))
