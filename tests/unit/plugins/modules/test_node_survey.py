"""pgha.cluster.node_survey: the addresses parsed from ip's output (pure), and the module against a
scripted cursor: a standby, a primary, PostgreSQL down, a fence marker, the facts it returns."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import psycopg2
import pytest

from ansible_collections.pgha.cluster.plugins.modules import node_survey

ADDR = """\
1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
2: eth0    inet 10.89.60.11/24 brd 10.89.60.255 scope global eth0\\       valid_lft forever preferred_lft forever
2: eth0    inet 10.89.60.100/24 scope global secondary eth0\\       valid_lft forever preferred_lft forever
3: eth1@if9    inet 192.168.5.3/24 brd 192.168.5.255 scope global eth1\\       valid_lft forever preferred_lft forever
"""
ROUTE = 'default via 10.89.60.1 dev eth0 proto static \n'


def test_addresses_and_default_route():
    held, default = node_survey.parse_addresses(ADDR, ROUTE)
    assert held == ['10.89.60.11', '10.89.60.100', '192.168.5.3']
    # the VIP is secondary: never the host's own address
    assert default == {'interface': 'eth0', 'address': '10.89.60.11'}


def test_default_route_with_src_and_without_route():
    default = node_survey.parse_addresses(ADDR, 'default via 192.168.5.1 dev eth1 src 192.168.5.3 metric 5\n')[1]
    assert default == {'interface': 'eth1', 'address': '192.168.5.3'}
    held, default = node_survey.parse_addresses(ADDR, '')
    assert default == {} and len(held) == 3
    # a VIP-only interface has no primary address to offer
    default = node_survey.parse_addresses(
        '2: eth0    inet 10.0.0.100/24 scope global secondary eth0\\ x\n', 'default via 10.0.0.1 dev eth0\n')[1]
    assert default == {}


STANDBY_SCRIPT = [
    (r'checkpoint_timeline', [dict(in_recovery=True, system_identifier='7311', receive_lsn='0/5000148',
                                   replay_lsn='0/5000148', checkpoint_timeline=1, min_recovery_timeline=1)]),
    (r'FROM pg_stat_wal_receiver', [dict(status='streaming', received_tli=2, sender_host='10.89.60.11',
                                         sender_port=5432, slot_name='pg2', flushed_lsn='0/5000148',
                                         latest_end_lsn='0/5000148')]),
    (r'pg_last_xact_replay_timestamp', [dict(last_replay_timestamp=None, replay_delay=None)]),
    (r'pg_get_wal_replay_pause_state', [dict(pause_state='not paused')]),
    (r'pg_read_file', [dict(content='1\t0/3000148\tno recovery target specified\n')]),
]


@pytest.fixture
def run_module(module_harness, set_module_args, fake_db, monkeypatch):
    exit_exc, fail_exc = module_harness
    cursor_cls, conn_cls = fake_db

    def run(script=None, refuse=None, **args):
        cursor = cursor_cls(script or [])
        conn = conn_cls()
        conn.server_version = 150010

        def open_connection(params, application_name=None):
            if refuse:
                raise psycopg2.OperationalError(refuse)
            assert application_name == 'pgha.cluster.node_survey'
            return conn, cursor
        monkeypatch.setattr(node_survey, 'open_connection', open_connection)
        monkeypatch.setattr(node_survey, 'read_addresses', lambda module: node_survey.parse_addresses(ADDR, ROUTE))
        with set_module_args(args):
            with pytest.raises((exit_exc, fail_exc)) as err:
                node_survey.main()
        assert conn.closed or refuse
        return err.value.result
    return run


def test_a_streaming_standby(run_module, tmp_path):
    result = run_module(STANDBY_SCRIPT, fence_marker=str(tmp_path / 'fenced'))
    assert 'failed' not in result and result['changed'] is False
    assert result['running'] is True and result['error'] is None and result['fenced'] is False
    rep = result['replication']
    assert rep['role'] == 'standby' and rep['timeline'] == 2
    assert rep['wal_receiver']['sender_host'] == '10.89.60.11'
    assert rep['timeline_history'] == [{'timeline': 1, 'switchpoint': '0/3000148',
                                        'reason': 'no recovery target specified'}]
    assert result['ansible_facts']['all_ipv4_addresses'] == ['10.89.60.11', '10.89.60.100', '192.168.5.3']
    assert result['ansible_facts']['default_ipv4'] == {'interface': 'eth0', 'address': '10.89.60.11'}


def test_postgresql_down_and_fenced_is_reported_not_failed(run_module, tmp_path):
    marker = tmp_path / 'fenced'
    marker.write_text('{"by": "promote.yml"}')
    result = run_module(refuse='connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" failed:\n'
                               '\tNo such file or directory', fence_marker=str(marker))
    assert 'failed' not in result
    assert result['running'] is False and result['replication'] == {} and result['fenced'] is True
    assert result['error'].startswith('connection to server on socket') and '\n' not in result['error']
    # the addresses are known even with PostgreSQL down
    assert '10.89.60.100' in result['ansible_facts']['all_ipv4_addresses']


def test_without_fence_marker_option(run_module):
    assert run_module(STANDBY_SCRIPT)['fenced'] is False


def test_a_query_error_is_reported(run_module):
    class Boom(psycopg2.Error):
        pgcode = '57P03'

    script = [(r'checkpoint_timeline', Boom('the database system is starting up'))]
    result = run_module(script)
    assert result['running'] is False and 'starting up' in result['error']


def test_service_state_and_markers(tmp_path):
    assert node_survey.parse_service_state('ActiveState=activating\nSubState=auto-restart\nNRestarts=2\n'
                                           'Result=signal\n') == {'active_state': 'activating',
                                                                  'sub_state': 'auto-restart', 'restarts': 2,
                                                                  'result': 'signal'}
    assert node_survey.parse_service_state('')['restarts'] is None
    marker = tmp_path / 'm'
    assert node_survey.read_marker(str(marker)) is None and node_survey.read_marker(None) is None
    marker.write_text('{"crashes": 4}')
    assert node_survey.read_marker(str(marker)) == {'crashes': 4}
    marker.write_text('not json')
    assert node_survey.read_marker(str(marker)) == {}
