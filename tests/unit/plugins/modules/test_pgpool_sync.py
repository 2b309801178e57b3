# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgha.cluster.pgpool_sync against a simulated pgpool-II: it searches for the primary
after a primary is detached or any node attached, as pgpool does, and, as pgpool's pcp
does, answers 'Command Successful' whatever happens."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible.module_utils import basic
from ansible_collections.pgha.cluster.plugins.modules import pgpool_sync


class FakePgpool(object):
    def __init__(self, nodes, truth, answers=True, searches=True):
        # nodes: [(status, role)] as pgpool shows them; truth: the servers' real roles
        self.nodes = [list(n) for n in nodes]
        self.truth = truth
        self.answers = answers
        self.searches = searches
        self.calls = []

    def search(self):
        if not self.searches:
            return
        for node in self.nodes:
            node[1] = 'standby'
        for i, node in enumerate(self.nodes):
            if node[0] != 'down' and self.truth[i] == 'primary':
                node[1] = 'primary'

    def run(self, argv, environ_update=None):
        command = argv[0].rsplit('/', 1)[-1]
        assert environ_update == {'PCPPASSFILE': '/root/.pcppass'}
        assert argv[1:8] == ['-h', 'localhost', '-p', '9898', '-U', 'pgha_pcp', '-w']
        self.calls.append(' '.join([command] + argv[8:]))
        if not self.answers:
            return 1, '', 'ERROR: connection to socket "/run/postgresql/.s.PGSQL.9898" failed'
        if command == 'pcp_node_info':
            return 0, ''.join('10.0.0.%d 5432 2 0.333333 %s up %s %s 0 none none 2026-12-04 08:00:00\n'
                              % (11 + i, s, r, self.truth[i]) for i, (s, r) in enumerate(self.nodes)), ''
        node = int(argv[-1])
        if command == 'pcp_detach_node':
            was_primary = self.nodes[node][1] == 'primary'
            self.nodes[node][0] = 'down'
            if was_primary:
                self.search()
        elif command == 'pcp_attach_node':
            self.nodes[node][0] = 'up'
            self.search()
        return 0, 'pcp_%s -- Command Successful\n' % command, ''


@pytest.fixture
def run_module(module_harness, set_module_args, monkeypatch):
    exit_exc, fail_exc = module_harness
    clock = [1000.0]
    monkeypatch.setattr(pgpool_sync.time, 'time', lambda: clock[0])
    monkeypatch.setattr(pgpool_sync.time, 'sleep', lambda s: clock.__setitem__(0, clock[0] + s))

    def run(pgpool, desired, check_mode=False, timeout=60):
        monkeypatch.setattr(basic.AnsibleModule, 'run_command',
                            lambda self, argv, environ_update=None, **kw: pgpool.run(argv, environ_update))
        monkeypatch.setattr(basic.AnsibleModule, 'get_bin_path', lambda self, name, required=False: '/usr/sbin/' + name)
        args = dict(desired=desired, pcp_user='pgha_pcp', pcp_passfile='/root/.pcppass', timeout=timeout,
                    _ansible_check_mode=check_mode)
        with set_module_args(args):
            with pytest.raises((exit_exc, fail_exc)) as err:
                pgpool_sync.main()
        return err.value.args[0]
    return run


def want(*roles):
    return [{'id': i, 'role': r, 'name': 'pg%d' % (i + 1)} for i, r in enumerate(roles)]


def test_in_line_changes_nothing(run_module):
    pgpool = FakePgpool([('up', 'primary'), ('up', 'standby')], ['primary', 'standby'])
    result = run_module(pgpool, want('primary', 'standby'))
    assert not result.get('failed') and result['changed'] is False and result['actions'] == []
    assert result['lines'] == ['0 pg1 up primary (server: up primary)', '1 pg2 up standby (server: up standby)']
    assert [c.split()[0] for c in pgpool.calls] == ['pcp_node_info']


def test_after_a_failover_the_dead_primary_goes_and_pgpool_finds_the_new_one(run_module):
    pgpool = FakePgpool([('up', 'primary'), ('up', 'standby'), ('up', 'standby')], ['down', 'primary', 'standby'])
    result = run_module(pgpool, want('down', 'primary', 'standby'))
    assert result['changed'] is True and result['actions'] == ['detach 0']
    assert [(n['status'], n['role']) for n in result['after']] == [('down', 'standby'), ('up', 'primary'),
                                                                   ('up', 'standby')]


def test_a_switchover_behind_pgpools_back_is_put_right(run_module):
    pgpool = FakePgpool([('up', 'primary'), ('up', 'standby')], ['standby', 'primary'])
    result = run_module(pgpool, want('standby', 'primary'))
    assert result['actions'] == ['detach 0', 'attach 0']
    assert [(n['status'], n['role']) for n in result['after']] == [('up', 'standby'), ('up', 'primary')]


def test_when_pgpool_gave_up_its_search_the_primary_is_detached_and_attached_after_a_grace(run_module):
    pgpool = FakePgpool([('down', 'standby'), ('up', 'standby'), ('up', 'standby')], ['down', 'primary', 'standby'])
    result = run_module(pgpool, want('down', 'primary', 'standby'))
    assert result['actions'] == ['detach 1', 'attach 1']
    assert [n['role'] for n in result['after']] == ['standby', 'primary', 'standby']
    # pgpool's own search got its grace first
    assert [c.split()[0] for c in pgpool.calls].count('pcp_node_info') > 5


def test_check_mode_only_says_what_it_would_do(run_module):
    pgpool = FakePgpool([('up', 'primary'), ('up', 'standby')], ['down', 'primary'])
    result = run_module(pgpool, want('down', 'primary'), check_mode=True)
    assert result['changed'] is True and result['actions'] == ['detach 0']
    assert [c.split()[0] for c in pgpool.calls] == ['pcp_node_info']
    assert pgpool.nodes[0] == ['up', 'primary']


def test_pcp_lies_so_a_pgpool_that_never_comes_in_line_fails_naming_the_nodes(run_module):
    pgpool = FakePgpool([('up', 'primary'), ('up', 'standby')], ['standby', 'primary'], searches=False)
    result = run_module(pgpool, want('standby', 'primary'), timeout=30)
    assert result['failed'] and 'still out of line after 30s' in result['msg']
    assert 'node 1 shows' in result['msg'] and 'should be primary' in result['msg']


def test_pcp_that_does_not_answer_fails_with_its_error(run_module):
    pgpool = FakePgpool([('up', 'primary')], ['primary'], answers=False)
    result = run_module(pgpool, want('primary'), timeout=5)
    assert result['failed'] and 'pcp_node_info did not answer within 5s' in result['msg']
    assert 's.PGSQL.9898' in result['msg']


@pytest.mark.parametrize('desired, words', [
    ([{'id': 0, 'role': 'leader'}], 'is not {id, role: primary|standby|down}'),
    ([{'id': 0, 'role': 'primary'}, {'id': 1, 'role': 'primary'}], 'more than one primary'),
])
def test_bad_desired_state_is_refused(run_module, desired, words):
    pgpool = FakePgpool([('up', 'primary'), ('up', 'standby')], ['primary', 'primary'])
    result = run_module(pgpool, desired)
    assert result['failed'] and words in result['msg']
    assert pgpool.calls == []
