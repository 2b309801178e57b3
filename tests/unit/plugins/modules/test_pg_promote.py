"""pgha.cluster.pg_promote against a scripted cursor: promotion, idempotence,
check mode and every failure path."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import psycopg2
import pytest

from ansible_collections.pgha.cluster.plugins.module_utils import pgha_pg
from ansible_collections.pgha.cluster.plugins.modules import pg_promote

STATE = r'checkpoint_timeline'
RECEIVER = r'FROM pg_stat_wal_receiver'
PRIVILEGE = r'has_function_privilege'
PROMOTE = r'pg_promote\(wait'
IN_RECOVERY = r'AS in_recovery$'
PRIMARY_TLI = r'pg_walfile_name'

STANDBY_STATE = [dict(in_recovery=True, receive_lsn='0/367CEA0', replay_lsn='0/367CE00', checkpoint_timeline=1,
                      min_recovery_timeline=1)]
PRIMARY_STATE = [dict(in_recovery=False, receive_lsn=None, replay_lsn=None, checkpoint_timeline=1,
                      min_recovery_timeline=0)]
STREAMING = [dict(status='streaming', received_tli=1, sender_host='10.89.0.2', sender_port=5432,
                  slot_name='pg2', flushed_lsn='0/367CEA0', latest_end_lsn='0/367CEA0')]
CAN_PROMOTE = [dict(can_promote=True, who='postgres')]


class PgError(psycopg2.Error):
    pgcode = None


class InsufficientPrivilege(PgError):
    pgcode = '42501'


class NotInRecovery(PgError):
    pgcode = '55000'


def standby_script(promote=None, after_tli='00000002', **over):
    script = [
        (STATE, over.get('state', STANDBY_STATE)),
        (RECEIVER, over.get('receiver', STREAMING)),
        (PRIVILEGE, over.get('privilege', CAN_PROMOTE)),
        (PROMOTE, [dict(promoted=True)] if promote is None else promote),
        (IN_RECOVERY, over.get('in_recovery', [dict(in_recovery=False)])),
        (PRIMARY_TLI, [dict(tli_hex=after_tli, current_lsn='0/367CED0')]),
    ]
    return script


@pytest.fixture
def run_module(module_harness, set_module_args, fake_db, monkeypatch):
    exit_exc, fail_exc = module_harness
    cursor_cls, conn_cls = fake_db

    def run(script, **args):
        cursor = cursor_cls(script)
        conn = conn_cls()
        monkeypatch.setattr(pg_promote, 'connect', lambda module, application_name=None: (conn, cursor))
        with set_module_args(args):
            with pytest.raises((exit_exc, fail_exc)) as err:
                pg_promote.main()
        assert conn.closed or not cursor.executed
        return err.value.result, cursor
    return run


def test_promotes_a_standby(run_module):
    result, cursor = run_module(standby_script(), wait_seconds=30)
    assert result['changed'] is True
    assert 'failed' not in result
    assert result['was_in_recovery'] is True
    assert result['timeline_before'] == 1
    assert result['timeline_after'] == 2
    assert result['receive_lsn_before'] == '0/367CEA0'
    assert result['replay_lsn_before'] == '0/367CE00'
    assert result['current_lsn_after'] == '0/367CED0'
    assert isinstance(result['elapsed'], float) and result['elapsed'] >= 0
    assert result['msg'].startswith('Promoted: timeline 1 -> 2 in ')
    assert '0/367CED0' in result['msg']
    promote = [(s, a) for s, a in cursor.executed if 'pg_promote(wait' in s]
    assert promote == [('SELECT pg_promote(wait => true, wait_seconds => %(wait_seconds)s) AS promoted',
                        {'wait_seconds': 30})]


def test_default_wait_is_60_seconds(run_module):
    result, cursor = run_module(standby_script())
    assert [a for s, a in cursor.executed if 'pg_promote(wait' in s] == [{'wait_seconds': 60}]


def test_already_a_primary_changes_nothing(run_module):
    script = [(STATE, PRIMARY_STATE), (PRIMARY_TLI, [dict(tli_hex='00000003', current_lsn='0/5000000')])]
    result, cursor = run_module(script)
    assert result['changed'] is False
    assert result['was_in_recovery'] is False
    assert result['timeline_before'] == result['timeline_after'] == 3
    assert result['current_lsn_after'] == '0/5000000'
    assert result['elapsed'] == 0.0
    assert 'Already a primary' in result['msg'] and 'nothing to do' in result['msg']
    assert not cursor.ran('pg_promote')
    assert not cursor.ran(PRIVILEGE)


def test_check_mode_on_a_standby_reports_and_changes_nothing(run_module):
    result, cursor = run_module(standby_script(), _ansible_check_mode=True)
    assert result['changed'] is True
    assert result['msg'].startswith('Would promote this standby (timeline 1, receive LSN 0/367CEA0, replay LSN 0/367CE00)')
    assert result['timeline_after'] is None and result['current_lsn_after'] is None
    assert not cursor.ran(r'pg_promote\(wait')


def test_check_mode_on_a_primary(run_module):
    script = [(STATE, PRIMARY_STATE), (PRIMARY_TLI, [dict(tli_hex='00000001', current_lsn='0/5000000')])]
    result, cursor = run_module(script, _ansible_check_mode=True)
    assert result['changed'] is False
    assert not cursor.ran('pg_promote')


def test_check_mode_predicts_a_missing_privilege(run_module):
    result, cursor = run_module(standby_script(privilege=[dict(can_promote=False, who='app')]),
                                _ansible_check_mode=True)
    assert result['failed'] is True
    assert 'may not execute pg_promote()' in result['msg']


def test_timeline_before_without_streaming_comes_from_the_control_file(run_module):
    state = [dict(STANDBY_STATE[0], checkpoint_timeline=1, min_recovery_timeline=2)]
    result, cursor = run_module(standby_script(state=state, receiver=[], after_tli='00000003'))
    assert result['timeline_before'] == 2
    assert result['timeline_after'] == 3


def test_missing_privilege_fails_before_promoting(run_module):
    result, cursor = run_module(standby_script(privilege=[dict(can_promote=False, who='app')]))
    assert result['failed'] is True
    msg = result['msg']
    assert 'role "app" may not execute pg_promote()' in msg
    assert 'superuser' in msg
    assert 'GRANT EXECUTE ON FUNCTION pg_catalog.pg_promote(boolean, integer) TO "app"' in msg
    assert 'unix socket /var/run/postgresql/.s.PGSQL.5432' in msg
    assert 'Nothing was changed' in msg
    assert not cursor.ran(r'pg_promote\(wait')


def test_privilege_error_from_the_server(run_module):
    err = InsufficientPrivilege('permission denied for function pg_promote')
    result, cursor = run_module(standby_script(promote=err), login_host='db2', login_user='app')
    assert result['failed'] is True
    assert 'may not execute pg_promote()' in result['msg']
    assert 'host db2 port 5432' in result['msg']


def test_timeout_says_promotion_may_still_complete(run_module):
    script = standby_script(promote=[dict(promoted=False)], in_recovery=[dict(in_recovery=True)])
    result, cursor = run_module(script, wait_seconds=5)
    assert result['failed'] is True
    msg = result['msg']
    assert 'did not complete within wait_seconds=5' in msg
    assert 'may still complete promotion' in msg
    assert 'SELECT pg_is_in_recovery()' in msg
    assert result['was_in_recovery'] is True and result['timeline_after'] is None
    assert not cursor.ran(PRIMARY_TLI)


def test_false_from_pg_promote_but_out_of_recovery_counts_as_promoted(run_module):
    script = standby_script(promote=[dict(promoted=False)], in_recovery=[dict(in_recovery=False)])
    result, cursor = run_module(script)
    assert result['changed'] is True and 'failed' not in result
    assert result['timeline_after'] == 2


def test_promoted_by_someone_else_meanwhile(run_module):
    script = standby_script(promote=NotInRecovery('recovery is not in progress'),
                            in_recovery=[dict(in_recovery=False)])
    result, cursor = run_module(script)
    assert result['changed'] is False and 'failed' not in result
    assert 'promoted by someone else' in result['msg']
    assert result['timeline_after'] == 2


def test_other_server_errors_fail_with_the_server_message(run_module):
    result, cursor = run_module(standby_script(promote=PgError('could not write to file "pg_wal/xlogtemp"')))
    assert result['failed'] is True
    assert result['msg'] == ('pg_promote() failed at unix socket /var/run/postgresql/.s.PGSQL.5432 '
                             '(login_user postgres, login_db postgres): could not write to file "pg_wal/xlogtemp"')


def test_error_while_reading_the_state(run_module):
    result, cursor = run_module([(STATE, PgError('canceling statement due to conflict with recovery'))])
    assert result['failed'] is True
    assert result['msg'].startswith('PostgreSQL error at unix socket')
    assert 'conflict with recovery' in result['msg']


def test_wait_seconds_must_be_positive(run_module):
    result, cursor = run_module(standby_script(), wait_seconds=0)
    assert result['failed'] is True and 'wait_seconds must be at least 1' in result['msg']
    assert cursor.executed == []


def test_unreachable_server(module_harness, set_module_args, monkeypatch):
    """No mock of connect(): psycopg2 itself refuses."""
    exit_exc, fail_exc = module_harness

    def refuse(**kw):
        assert kw['host'] == '/nonexistent' and kw['port'] == 5499
        raise psycopg2.OperationalError('connection to server on socket "/nonexistent/.s.PGSQL.5499" failed: '
                                        'No such file or directory')
    monkeypatch.setattr(pgha_pg.psycopg2, 'connect', refuse)
    with set_module_args(dict(login_unix_socket='/nonexistent', login_port=5499)):
        with pytest.raises(fail_exc) as err:
            pg_promote.main()
    msg = err.value.result['msg']
    assert msg.startswith('Cannot connect to PostgreSQL at unix socket /nonexistent/.s.PGSQL.5499 (login_user postgres')
    assert 'No such file or directory' in msg


def test_password_is_not_logged():
    spec = pgha_pg.pgha_argument_spec()
    assert spec['login_password']['no_log'] is True


# --- wait_for_replay_lsn: promote only once the old primary's last WAL is replayed -------------------------

REPLAY = r'^SELECT pg_last_wal_replay_lsn\(\)::text AS replay_lsn$'


def replaying(*positions):
    """Answers the replay query with each position in turn (the last one repeats)."""
    left = list(positions)

    def answer(sql, args):
        return [dict(replay_lsn=left.pop(0) if len(left) > 1 else left[0])]
    return answer


@pytest.fixture
def clocked(monkeypatch, fake_clock):
    monkeypatch.setattr(pg_promote, 'time', fake_clock)
    return fake_clock


def test_waits_for_the_replay_then_promotes(run_module, clocked):
    script = [(REPLAY, replaying('0/367CE00', '0/367CE00', '0/367CF10'))] + standby_script()
    result, cursor = run_module(script, wait_for_replay_lsn='0/367cf10')
    assert result['changed'] is True and 'failed' not in result
    assert result['replay_lsn_before'] == '0/367CF10'
    assert result['replay_wait'] == pytest.approx(0.1)
    assert clocked.sleeps == [0.05, 0.05]
    # it asked for the replay position before promoting, never after
    order = [s for s, a in cursor.executed]
    first_promote = next(i for i, s in enumerate(order) if 'pg_promote(wait' in s)
    replays = [i for i, s in enumerate(order) if s == 'SELECT pg_last_wal_replay_lsn()::text AS replay_lsn']
    assert len(replays) == 3 and max(replays) < first_promote


def test_does_not_promote_when_the_replay_never_arrives(run_module, clocked):
    script = [(REPLAY, replaying('0/367CE00'))] + standby_script()
    result, cursor = run_module(script, wait_for_replay_lsn='0/367CF10', replay_timeout=1)
    assert result['failed'] is True and result['changed'] is False
    assert result['msg'].startswith('Not promoted: this standby did not replay up to 0/367CF10 within '
                                    'replay_timeout=1.0s (replayed 0/367CE00)')
    assert not cursor.ran(r'pg_promote\(wait')


def test_a_primary_ignores_the_replay_wait(run_module):
    script = [(STATE, PRIMARY_STATE), (PRIMARY_TLI, [dict(tli_hex='00000002', current_lsn='0/5000000')])]
    result, cursor = run_module(script, wait_for_replay_lsn='0/367CF10')
    assert result['changed'] is False and 'Already a primary' in result['msg']
    assert not cursor.ran(REPLAY)


def test_check_mode_does_not_wait(run_module):
    script = [(REPLAY, replaying('0/1'))] + standby_script()
    result, cursor = run_module(script, wait_for_replay_lsn='0/367CF10', _ansible_check_mode=True)
    assert result['changed'] is True and 'check mode' in result['msg']
    assert not cursor.ran(REPLAY) and not cursor.ran(r'pg_promote\(wait')


def test_a_malformed_replay_lsn_is_refused(run_module):
    result, cursor = run_module(standby_script(), wait_for_replay_lsn='0/XYZ')
    assert result['failed'] is True and result['msg'].startswith('wait_for_replay_lsn: ')
    assert not cursor.executed
