"""One source for the cluster's layout: no role or runbook spells a version-derived path, a
service name, a package name or a member's address itself. They come from the filter
pgha.cluster.pg_layout (as the postgresql role's pgha_layout) and the filter
pgha.cluster.cluster_members / member_address; a second PostgreSQL version, Debian release or
cluster name is then one change."""

import glob
import os
import re

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
FILES = sorted(p for pattern in ('roles/**/*', 'playbooks/**/*')
               for p in glob.glob(os.path.join(ROOT, pattern), recursive=True)
               if os.path.isfile(p) and p.endswith(('.yml', '.j2', '.py', '.sh')))

FORBIDDEN = [
    (re.compile(r'/usr/lib/postgresql/'), 'the bin directory (pgha_layout.bin_dir)'),
    (re.compile(r'/etc/postgresql/'), 'the configuration directory (pgha_layout.conf_dir)'),
    (re.compile(r'/var/lib/postgresql/'), 'a path under the data directories (pgha_layout)'),
    (re.compile(r'/var/run/postgresql'), 'the socket directory (pgha_layout.socket_dir)'),
    (re.compile(r'postgresql@'), 'the service name (pgha_layout.service)'),
    (re.compile(r"postgresql-(\{\{|' ~|\d)"), 'a package name (pgha_layout.server_packages / cron_package)'),
    (re.compile(r'postgresql_version \| default'), 'a second default of postgresql_version'),
    (re.compile(r'postgresql_cluster_name \| default'), 'a second default of postgresql_cluster_name'),
    (re.compile(r"default_ipv4'?\]?\[?'?\.?address"), "a member's address (filter member_address)"),
]
# Not a cluster member's address: the backup host's own (it is no member).
ALLOWED = {
    ('roles/backup/defaults/main.yml', "a member's address (filter member_address)"),
    ('roles/backup/vars/main.yml', "a member's address (filter member_address)"),
}


def _code_lines(path):
    with open(path) as f:
        for number, line in enumerate(f, 1):
            stripped = line.strip()
            if stripped.startswith('#') or stripped.startswith('{#'):
                continue
            yield number, line


def test_the_scan_sees_the_roles_and_the_runbooks():
    names = [os.path.relpath(p, ROOT) for p in FILES]
    assert 'roles/postgresql/vars/main.yml' in names and 'playbooks/promote.yml' in names
    assert 'roles/keepalived/files/pgha_vip_state.py' in names


@pytest.mark.parametrize('path', FILES, ids=lambda p: os.path.relpath(p, ROOT))
def test_no_layout_outside_its_source(path):
    rel = os.path.relpath(path, ROOT)
    found = []
    for number, line in _code_lines(path):
        for pattern, what in FORBIDDEN:
            if pattern.search(line) and (rel, what) not in ALLOWED:
                found.append('%s:%d spells %s itself: %s' % (rel, number, what, line.strip()))
    assert not found, '\n'.join(found)


def test_the_patterns_catch_what_they_should():
    samples = ['__backup_pg_bin: /usr/lib/postgresql/{{ v }}/bin', "name: postgresql@{{ v }}-main",
               "['postgresql-' ~ v]", 'postgresql-15-cron', "{{ postgresql_version | default(15) }}",
               "hostvars[h]['ansible_facts']['default_ipv4']['address']", 'login_unix_socket: /var/run/postgresql']
    for sample in samples:
        assert any(pattern.search(sample) for pattern, what in FORBIDDEN), sample
    assert not any(pattern.search('path: /etc/postgresql-common/createcluster.conf') for pattern, what in FORBIDDEN)
