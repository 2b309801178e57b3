"""Roles meet through public names: a role's "__<role>_" variables are read (and set) only inside that
role. Everything that several roles or the runbooks need is public: the _common role's pgha_* names
(its vars/main.yml), a role's documented variables, and a role's documented results (registered or set
facts without the two underscores)."""

import glob
import os
import re

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
ROLES = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, 'roles', '*')) if os.path.isdir(p))
PRIVATE = re.compile(r'\b__([a-z0-9_]+)')
#: Where the collection's own YAML and templates live (tests and benchmarks read the hosts, not the roles).
SOURCES = ['roles', 'playbooks', 'plugins', 'awx', 'molecule', 'inventories', 'meta']


def owner_of(name):
    """The role a private name belongs to (its prefix), or None for a name of no role's."""
    for role in sorted(ROLES, key=len, reverse=True):
        if name.startswith(role.lstrip('_') + '_'):
            return role
    return None


def private_reads():
    found = []
    for top in SOURCES:
        for path in glob.glob(os.path.join(ROOT, top, '**', '*'), recursive=True):
            if not os.path.isfile(path) or not path.endswith(('.yml', '.yaml', '.j2', '.py')):
                continue
            rel = os.path.relpath(path, ROOT)
            if rel.startswith('molecule/') and '/tests/' in rel:
                continue
            here = rel.split('/')[1] if rel.startswith('roles/') else None
            with open(path) as f:
                text = f.read()
            for n, line in enumerate(text.splitlines(), 1):
                for m in PRIVATE.finditer(line):
                    role = owner_of(m.group(1))
                    if role is not None and role != here:
                        found.append('%s:%d reads __%s (private to role %s)' % (rel, n, m.group(1), role))
    return found


def test_no_role_or_runbook_reads_another_roles_private_names():
    assert private_reads() == []


def test_the_check_finds_a_read_it_is_shown(tmp_path, monkeypatch):
    """The check itself: a runbook line reading a role's private name is named, with file and line."""
    (tmp_path / 'playbooks').mkdir()
    (tmp_path / 'roles' / 'backup').mkdir(parents=True)
    (tmp_path / 'playbooks' / 'x.yml').write_text('- debug: {msg: "{{ __backup_wrapper }} {{ __runbook_members }}"}\n')
    (tmp_path / 'roles' / 'backup' / 'a.yml').write_text('- debug: {msg: "{{ __backup_wrapper }}"}\n')
    monkeypatch.setattr(__import__(__name__), 'ROOT', str(tmp_path))
    monkeypatch.setattr(__import__(__name__), 'ROLES', ['backup'])
    assert private_reads() == ['playbooks/x.yml:1 reads __backup_wrapper (private to role backup)']
