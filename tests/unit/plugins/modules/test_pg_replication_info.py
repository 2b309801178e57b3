"""pgha.cluster.pg_replication_info: result shaping (pure functions) and the
module against a scripted cursor, on a primary and on a standby, with the
wait_for_lsn and max_lag_bytes gates."""

import datetime
import re

import psycopg2
import pytest

from ansible_collections.pgha.cluster.plugins.module_utils import pgha_replication as rep
from ansible_collections.pgha.cluster.plugins.modules import pg_replication_info as mod

STATE = r'checkpoint_timeline'
RECEIVER = r'FROM pg_stat_wal_receiver'
STANDBYS = r'FROM pg_stat_replication'
SLOTS = r'FROM pg_replication_slots\s+ORDER BY slot_name'
PRIMARY_WAL = r'pg_current_wal_insert_lsn'
REPLAY = r'pg_last_xact_replay_timestamp'
PAUSE = r'pg_get_wal_replay_pause_state'
POSITIONS = r'AS replay_lsn\s*$'
HISTORY = r'pg_read_file'
HISTORY_ROW = [dict(content='1\t0/3000148\tno recovery target specified\n')]

UTC = datetime.timezone.utc


def standby_row(name='pg2', lsn='0/5000148', **over):
    row = dict(pid=100, application_name=name, client_addr='10.89.0.3', state='streaming', sync_state='async',
               sent_lsn=lsn, write_lsn=lsn, flush_lsn=lsn, replay_lsn=lsn,
               write_lag=datetime.timedelta(microseconds=412), flush_lag=datetime.timedelta(microseconds=980),
               replay_lag=None, slot_name=name)
    row.update(over)
    return row


def slot_row(name='pg2', restart_lsn='0/5000000', active=True, slot_type='physical', **over):
    row = dict(slot_name=name, slot_type=slot_type, active=active, restart_lsn=restart_lsn, wal_status='reserved',
               safe_wal_size=10754195456)
    row.update(over)
    return row


PRIMARY_STATE = [dict(in_recovery=False, receive_lsn=None, replay_lsn=None, checkpoint_timeline=1,
                      min_recovery_timeline=0)]
PRIMARY_WAL_ROW = [dict(insert_lsn='0/5000160', write_lsn='0/5000148', flush_lsn='0/5000148', tli_hex='00000001')]
STANDBY_STATE = [dict(in_recovery=True, receive_lsn='0/5000148', replay_lsn='0/5000100', checkpoint_timeline=1,
                      min_recovery_timeline=1)]
STREAMING = [dict(status='streaming', received_tli=2, sender_host='10.89.0.2', sender_port=5432, slot_name='pg2',
                  flushed_lsn='0/5000148', latest_end_lsn='0/5000148')]
REPLAY_ROW = [dict(last_replay_timestamp=datetime.datetime(2026, 11, 25, 12, 21, 57, 656734, tzinfo=UTC),
                   replay_delay=datetime.timedelta(seconds=3, microseconds=520000))]


def primary_script(standbys=None, slots=None, wal=None, positions=None):
    return [
        (POSITIONS, positions or [dict(in_recovery=False, receive_lsn=None, replay_lsn=None)]),
        (STATE, PRIMARY_STATE),
        (STANDBYS, [standby_row()] if standbys is None else standbys),
        (SLOTS, [slot_row()] if slots is None else slots),
        (PRIMARY_WAL, wal or PRIMARY_WAL_ROW),
        (HISTORY, HISTORY_ROW),
    ]


def standby_script(state=None, receiver=None, positions=None):
    state = state or STANDBY_STATE
    return [
        (POSITIONS, positions or [dict((k, state[0][k]) for k in ('in_recovery', 'receive_lsn', 'replay_lsn'))]),
        (STATE, state),
        (RECEIVER, STREAMING if receiver is None else receiver),
        (REPLAY, REPLAY_ROW),
        (PAUSE, [dict(pause_state='not paused')]),
        (HISTORY, HISTORY_ROW),
    ]


def replace(script, pattern, answer):
    """The script with the answer to pattern replaced."""
    return [(p, answer if p == pattern else a) for p, a in script]


def sequence(answers):
    """An answer that gives each of answers in turn, then repeats the last."""
    answers = list(answers)
    return lambda sql, args: answers.pop(0) if len(answers) > 1 else answers[0]


@pytest.fixture
def run_module(module_harness, set_module_args, fake_db, fake_clock, monkeypatch):
    exit_exc, fail_exc = module_harness
    cursor_cls, conn_cls = fake_db
    monkeypatch.setattr(mod, 'time', fake_clock)

    def run(script, server_version=150020, **args):
        cursor = cursor_cls(script)
        conn = conn_cls(server_version)
        monkeypatch.setattr(mod, 'connect', lambda module, application_name=None: (conn, cursor))
        with set_module_args(args):
            with pytest.raises((exit_exc, fail_exc)) as err:
                mod.main()
        return err.value.result, cursor
    return run


# --- shaping ------------------------------------------------------------------------------

def test_shape_standby_lag_bytes_and_seconds():
    row = standby_row(sent_lsn='0/5000148', write_lsn='0/5000100', flush_lsn='0/5000000', replay_lsn=None)
    entry = rep.shape_standby(row, '0/5000148')
    assert entry == dict(
        application_name='pg2', client_addr='10.89.0.3', state='streaming', sync_state='async', slot_name='pg2',
        sent_lsn='0/5000148', write_lsn='0/5000100', flush_lsn='0/5000000', replay_lsn=None,
        sent_lag_bytes=0, write_lag_bytes=0x48, flush_lag_bytes=0x148, replay_lag_bytes=None,
        write_lag=0.000412, flush_lag=0.00098, replay_lag=None)


def test_shape_slot_retained_bytes():
    assert rep.shape_slot(slot_row(restart_lsn='0/4000000', active=False), '0/5000148') == dict(
        slot_name='pg2', slot_type='physical', active=False, restart_lsn='0/4000000', wal_status='reserved',
        safe_wal_size=10754195456, retained_bytes=0x1000148)
    assert rep.shape_slot(slot_row(restart_lsn=None, wal_status=None), '0/5000148')['retained_bytes'] is None


def test_shape_receiver():
    assert rep.shape_receiver(None) is None
    assert rep.shape_receiver(STREAMING[0]) == dict(status='streaming', sender_host='10.89.0.2', sender_port=5432,
                                                    slot_name='pg2', received_tli=2, flushed_lsn='0/5000148',
                                                    latest_end_lsn='0/5000148')


@pytest.mark.parametrize('receive, replay, lag', [
    ('0/5000148', '0/5000100', 0x48),
    ('0/5000148', '0/5000148', 0),
    ('0/3000000', '0/367D0A0', 0),     # replay ahead (WAL read from pg_wal after a restart)
    (None, '0/5000100', 0),            # nothing streamed since start
])
def test_receive_replay_lag(receive, replay, lag):
    assert rep.receive_replay_lag(receive, replay) == lag


def primary_info(standbys, slots, current='0/5000148'):
    return dict(role='primary', timeline=1, current_lsn=current,
                standbys=[rep.shape_standby(r, current) for r in standbys],
                slots=[rep.shape_slot(r, current) for r in slots])


def test_primary_lag_entries_connected_and_disconnected():
    info = primary_info(
        [standby_row('pg2', '0/5000100'), standby_row('pg3', '0/5000148', slot_name='pg3')],
        [slot_row('pg2'), slot_row('pg3'), slot_row('pg4', '0/4000000', active=False),
         slot_row('cdc', '0/1000000', active=False, slot_type='logical'), slot_row('new', None, active=False)])
    entries = mod.primary_lag_entries(info)
    assert entries == [
        dict(name='pg2', state='streaming', lag_bytes=0x48, position='replay_lsn 0/5000100'),
        dict(name='pg3', state='streaming', lag_bytes=0, position='replay_lsn 0/5000148'),
        dict(name='pg4', state='disconnected (slot inactive)', lag_bytes=0x1000148, position='restart_lsn 0/4000000'),
        dict(name='new', state='disconnected (slot inactive)', lag_bytes=None, position='restart_lsn None'),
    ]


def test_primary_lag_entries_limited_to_names():
    info = primary_info([standby_row('pg2'), standby_row('pg3', slot_name='pg3')],
                        [slot_row('pg2'), slot_row('pg3'), slot_row('pg4', '0/4000000', active=False)])
    names = [e['name'] for e in mod.primary_lag_entries(info, ['pg3', 'pg4', 'pg9'])]
    assert names == ['pg3', 'pg4', 'pg9']
    missing = mod.primary_lag_entries(info, ['pg9'])[0]
    assert missing == dict(name='pg9', state='not connected, no slot', lag_bytes=None, position=None)


def test_standby_streaming_without_its_slot_also_flags_the_idle_slot():
    info = primary_info([standby_row('pg2', slot_name=None)], [slot_row('pg2', '0/4000000', active=False)])
    assert [(e['name'], e['state']) for e in mod.primary_lag_entries(info)] == [
        ('pg2', 'streaming'), ('pg2', 'disconnected (slot inactive)')]


def test_lag_message_is_a_table():
    info = primary_info([standby_row('pg2', '0/5000100')], [slot_row('pg2'), slot_row('pg4', '0/4000000', active=False)])
    entries = mod.primary_lag_entries(info)
    msg = mod.lag_message(info, entries, 100)
    lines = msg.splitlines()
    assert lines[0] == ('Replication lag over max_lag_bytes=100 on this primary (lag measured against current_lsn '
                        '0/5000148, timeline 1): 1 of 2 over the limit.')
    assert lines[1].split() == ['name', 'state', 'lag_bytes', 'position', 'verdict']
    assert lines[2].split() == ['pg2', 'streaming', '72', 'replay_lsn', '0/5000100', 'ok']
    assert lines[3].split() == ['pg4', 'disconnected', '(slot', 'inactive)', '16777544', 'restart_lsn', '0/4000000',
                                'OVER']


def test_wait_pending_primary():
    rows = [standby_row('pg2', '0/5000100'), standby_row('pg2', None, state='backup'),
            standby_row('pg3', '0/5000148')]
    pending, table = mod.wait_pending_primary(rows, ['pg2', 'pg3', 'pg9'], 'replay', 0x5000148)
    assert pending == ['pg2', 'pg9']
    assert table == [('pg2', 'backup, streaming', '0/5000100', 0x48),
                     ('pg3', 'streaming', '0/5000148', 0),
                     ('pg9', 'not connected', None, 'unknown')]


# --- the module on a primary ------------------------------------------------------------------

def test_primary(run_module):
    slots = [slot_row('pg2'), slot_row('pg3', '0/4000000', active=False)]
    result, cursor = run_module(primary_script(slots=slots))
    assert result['changed'] is False and 'failed' not in result
    assert result['role'] == 'primary' and result['in_recovery'] is False
    assert result['server_version'] == 150020
    assert result['timeline'] == 1 and result['timeline_source'] == 'wal_file'
    assert result['current_lsn'] == result['wal_write_lsn'] == '0/5000148'
    assert result['wal_insert_lsn'] == '0/5000160' and result['wal_flush_lsn'] == '0/5000148'
    assert [s['application_name'] for s in result['standbys']] == ['pg2']
    assert result['standbys'][0]['replay_lag_bytes'] == 0
    assert result['slots'][1] == dict(slot_name='pg3', slot_type='physical', active=False, restart_lsn='0/4000000',
                                      wal_status='reserved', safe_wal_size=10754195456, retained_bytes=0x1000148)
    assert 'lagging' not in result and 'wait_elapsed' not in result
    assert 'receive_lsn' not in result
    # the current position is read after the standbys and slots
    order = [i for i, (s, a) in enumerate(cursor.executed) for p in (STANDBYS, SLOTS, PRIMARY_WAL)
             if re.search(p, s)]
    assert order == sorted(order) and len(order) == 3


def test_primary_in_check_mode_is_the_same(run_module):
    result, cursor = run_module(primary_script(), _ansible_check_mode=True)
    assert result['changed'] is False and result['role'] == 'primary'


def test_primary_timeline_after_promotion(run_module):
    result, cursor = run_module(primary_script(wal=[dict(PRIMARY_WAL_ROW[0], tli_hex='0000000B')]))
    assert result['timeline'] == 11


def test_primary_wait_for_lsn_reached_after_polling(run_module, fake_clock):
    script = replace(primary_script(), STANDBYS, sequence(
        [[standby_row('pg2', '0/5000000')], [standby_row('pg2', '0/5000100')], [standby_row('pg2', '0/5000148')]]))
    result, cursor = run_module(script, wait_for_lsn='0/5000148', wait_for=['pg2'], poll_interval=0.25)
    assert 'failed' not in result
    assert result['wait_elapsed'] == 0.5
    assert fake_clock.sleeps == [0.25, 0.25]


def test_primary_wait_for_flush_mode(run_module):
    script = primary_script(standbys=[standby_row('pg2', '0/5000148', replay_lsn='0/5000000')])
    result, cursor = run_module(script, wait_for_lsn='0/5000148', wait_for=['pg2'], wait_for_mode='flush')
    assert 'failed' not in result and result['wait_elapsed'] == 0


def test_primary_wait_for_lsn_times_out_with_a_table(run_module, fake_clock):
    script = primary_script(standbys=[standby_row('pg2', '0/5000100')])
    result, cursor = run_module(script, wait_for_lsn='0/5000148', wait_for=['pg2', 'pg3'], timeout=2)
    assert result['failed'] is True
    lines = result['msg'].splitlines()
    assert lines[0] == ('Timed out after 2.0s waiting for pg2, pg3 to replay 0/5000148 on this primary; '
                        'not there: pg2, pg3.')
    assert lines[1].split() == ['standby', 'state', 'replay_lsn', 'bytes_behind']
    assert lines[2].split() == ['pg2', 'streaming', '0/5000100', '72']
    assert lines[3].split() == ['pg3', 'not', 'connected', '-', 'unknown']
    assert result['pending'] == ['pg2', 'pg3']
    assert sum(fake_clock.sleeps) == pytest.approx(2.0)


def test_primary_wait_for_lsn_needs_names(run_module):
    result, cursor = run_module(primary_script(), wait_for_lsn='0/5000148')
    assert result['failed'] is True and 'needs wait_for' in result['msg']


@pytest.mark.parametrize('bad', ['5000148', '0/5000148/1', 'latest'])
def test_malformed_wait_for_lsn(run_module, bad):
    result, cursor = run_module(primary_script(), wait_for_lsn=bad, wait_for=['pg2'])
    assert result['failed'] is True
    assert result['msg'].startswith("wait_for_lsn: not an LSN: '%s'" % bad)
    assert cursor.executed == []


def test_primary_max_lag_bytes_within(run_module):
    result, cursor = run_module(primary_script(), max_lag_bytes=0)
    assert 'failed' not in result and result['lagging'] == []


def test_primary_max_lag_bytes_fails_for_a_disconnected_standby(run_module):
    script = primary_script(standbys=[], slots=[slot_row('pg2', '0/4000000', active=False)])
    result, cursor = run_module(script, max_lag_bytes=1024)
    assert result['failed'] is True
    assert result['lagging'] == [dict(name='pg2', state='disconnected (slot inactive)', lag_bytes=0x1000148,
                                      position='restart_lsn 0/4000000')]
    assert 'max_lag_bytes=1024 on this primary' in result['msg']
    assert result['msg'].splitlines()[2].split() == ['pg2', 'disconnected', '(slot', 'inactive)', '16777544',
                                                     'restart_lsn', '0/4000000', 'OVER']
    # the whole report comes with the failure
    assert result['role'] == 'primary' and result['slots'][0]['retained_bytes'] == 0x1000148


def test_primary_max_lag_bytes_with_wait_for_checks_only_those(run_module):
    slots = [slot_row('pg2'), slot_row('pg3', '0/1000000', active=False)]
    script = primary_script(standbys=[standby_row('pg2')], slots=slots)
    result, cursor = run_module(script, max_lag_bytes=0, wait_for=['pg2'])
    assert 'failed' not in result and result['lagging'] == []
    result, cursor = run_module(script, max_lag_bytes=0)
    assert result['failed'] is True and [e['name'] for e in result['lagging']] == ['pg3']


def test_negative_max_lag_bytes(run_module):
    result, cursor = run_module(primary_script(), max_lag_bytes=-1)
    assert result['failed'] is True and 'max_lag_bytes must be >= 0' in result['msg']


# --- the module on a standby -----------------------------------------------------------------

def test_standby_streaming(run_module):
    result, cursor = run_module(standby_script())
    assert result['changed'] is False and 'failed' not in result
    assert result['role'] == 'standby' and result['in_recovery'] is True
    assert result['timeline'] == 2 and result['timeline_source'] == 'wal_receiver'
    assert result['receive_lsn'] == '0/5000148' and result['replay_lsn'] == '0/5000100'
    assert result['receive_replay_lag_bytes'] == 0x48
    assert result['last_replay_timestamp'] == '2026-11-25T12:21:57.656734+00:00'
    assert result['replay_delay'] == pytest.approx(3.52)
    assert result['replay_pause_state'] == 'not paused'
    assert result['wal_receiver']['status'] == 'streaming'
    assert result['wal_receiver']['sender_host'] == '10.89.0.2'
    assert result['wal_receiver']['sender_port'] == 5432
    assert result['wal_receiver']['slot_name'] == 'pg2'
    assert 'standbys' not in result and 'current_lsn' not in result


def test_standby_without_wal_receiver(run_module):
    state = [dict(STANDBY_STATE[0], receive_lsn=None, checkpoint_timeline=1, min_recovery_timeline=2)]
    result, cursor = run_module(standby_script(state=state, receiver=[]))
    assert result['wal_receiver'] is None
    assert result['timeline'] == 2 and result['timeline_source'] == 'control_file'
    assert result['receive_replay_lag_bytes'] == 0


def test_standby_nothing_replayed_yet(run_module):
    script = replace(standby_script(), REPLAY, [dict(last_replay_timestamp=None, replay_delay=None)])
    result, cursor = run_module(script)
    assert result['last_replay_timestamp'] is None and result['replay_delay'] is None


def test_standby_before_postgresql_14_has_no_pause_state(run_module):
    result, cursor = run_module(standby_script(), server_version=130015)
    assert result['replay_pause_state'] is None
    assert not cursor.ran(PAUSE)


def test_standby_wait_for_replay(run_module, fake_clock):
    # the first read tells the role, then one read per poll
    script = replace(standby_script(), POSITIONS, sequence(
        [[dict(in_recovery=True, receive_lsn='0/5000148', replay_lsn=lsn)]
         for lsn in ('0/5000000', '0/5000000', '0/5000100', '0/5000148')]))
    result, cursor = run_module(script, wait_for_lsn='0/5000148', wait_for=['ignored'], poll_interval=1)
    assert 'failed' not in result
    assert result['wait_elapsed'] == 2.0


def test_standby_wait_for_flush_uses_the_receive_position(run_module):
    positions = [dict(in_recovery=True, receive_lsn='0/5000148', replay_lsn='0/5000000')]
    result, cursor = run_module(standby_script(positions=positions), wait_for_lsn='0/5000148', wait_for_mode='flush')
    assert 'failed' not in result and result['wait_elapsed'] == 0


def test_standby_wait_times_out(run_module):
    positions = [dict(in_recovery=True, receive_lsn='0/5000100', replay_lsn='0/5000100')]
    result, cursor = run_module(standby_script(positions=positions), wait_for_lsn='0/5000148', timeout=3)
    assert result['failed'] is True
    assert result['msg'] == ('Timed out after 3.0s waiting for this standby to replay 0/5000148: replay_lsn is '
                             '0/5000100, 72 bytes behind (receive_lsn 0/5000100, replay_lsn 0/5000100). '
                             'Is the WAL receiver streaming?')


def test_standby_wait_times_out_without_received_wal(run_module):
    positions = [dict(in_recovery=True, receive_lsn=None, replay_lsn='0/5000100')]
    result, cursor = run_module(standby_script(positions=positions), wait_for_lsn='0/5000148',
                                wait_for_mode='flush', timeout=0)
    assert result['failed'] is True
    assert 'receive_lsn is None, unknown bytes behind' in result['msg']


def test_standby_max_lag_bytes(run_module):
    result, cursor = run_module(standby_script(), max_lag_bytes=100)
    assert 'failed' not in result and result['lagging'] == []
    result, cursor = run_module(standby_script(), max_lag_bytes=10)
    assert result['failed'] is True
    assert result['msg'].startswith('Replication lag over max_lag_bytes=10 on this standby: 1 of 1 over the limit.')
    assert result['msg'].splitlines()[2].startswith('this standby (received, not replayed)  streaming  72 ')


def test_database_error_fails_cleanly(run_module):
    result, cursor = run_module([(POSITIONS, psycopg2.Error('terminating connection due to administrator command'))],
                                wait_for_lsn='0/1', wait_for=['pg2'])
    assert result['failed'] is True
    assert result['msg'] == ('PostgreSQL error at unix socket /var/run/postgresql/.s.PGSQL.5432 (login_user postgres, '
                             'login_db postgres): terminating connection due to administrator command')


def test_timeline_history_and_system_identifier_on_a_standby(run_module):
    state = [dict(STANDBY_STATE[0], system_identifier='7441234567890123456')]
    result, cursor = run_module(standby_script(state=state))
    assert result['system_identifier'] == '7441234567890123456'
    assert result['timeline'] == 2
    assert result['timeline_history'] == [{'timeline': 1, 'switchpoint': '0/3000148',
                                           'reason': 'no recovery target specified'}]
    assert cursor.ran(r"pg_read_file") and cursor.executed[-1][1] == ('pg_wal/00000002.history',)


def test_no_history_on_timeline_1(run_module):
    result, cursor = run_module(primary_script())
    assert result['timeline_history'] == [] and not cursor.ran(r'pg_read_file')


def test_unreadable_history_is_null(run_module):
    script = replace(standby_script(), HISTORY, psycopg2.errors.InsufficientPrivilege('permission denied'))
    result = run_module(script)[0]
    assert result['timeline_history'] is None
