"""pgha.cluster.pg_replication_info: result shaping (pure functions) and the
module against a scripted cursor, on a primary and on a standby, with the
wait_for_lsn and max_lag_bytes gates; logical replication (logical slots,
subscriptions) on PostgreSQL 15 and 17."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

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
SUBSCRIPTIONS = r'FROM pg_subscription s'
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
               safe_wal_size=10754195456, database=None, plugin=None, confirmed_flush_lsn=None)
    row.update(over)
    return row


def logical_row(name='cdc', confirmed='0/5000148', restart_lsn='0/5000100', active=True, pg17=False, **over):
    """A logical slot's row; pg17 adds the columns that exist from PostgreSQL 17."""
    row = slot_row(name, restart_lsn, active=active, slot_type='logical', database='app', plugin='pgoutput',
                   confirmed_flush_lsn=confirmed, safe_wal_size=None)
    if pg17:
        row.update(failover=False, synced=False, invalidation_reason=None)
    row.update(over)
    return row


def subscription_row(name='app_sub', enabled=True, pid=4242, total=3, ready=3, pg17=False, **over):
    """A row of the subscriptions query; pg17 adds subfailover."""
    row = dict(name=name, database='app', enabled=enabled, publications=['app_pub'], slot_name=name,
               worker_pid=pid, received_lsn='0/7000200' if pid else None, latest_end_lsn='0/7000200' if pid else None,
               last_msg_receipt_time=datetime.datetime(2026, 11, 25, 12, 21, 57, 656734, tzinfo=UTC) if pid else None,
               tables_total=total, tables_ready=ready)
    if pg17:
        row['failover'] = True
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


def primary_script(standbys=None, slots=None, wal=None, positions=None, subscriptions=None):
    return [
        (POSITIONS, positions or [dict(in_recovery=False, receive_lsn=None, replay_lsn=None)]),
        (STATE, PRIMARY_STATE),
        (STANDBYS, [standby_row()] if standbys is None else standbys),
        (SLOTS, [slot_row()] if slots is None else slots),
        (PRIMARY_WAL, wal or PRIMARY_WAL_ROW),
        (HISTORY, HISTORY_ROW),
        (SUBSCRIPTIONS, subscriptions or []),
    ]


def standby_script(state=None, receiver=None, positions=None, slots=None, subscriptions=None):
    state = state or STANDBY_STATE
    return [
        (POSITIONS, positions or [dict((k, state[0][k]) for k in ('in_recovery', 'receive_lsn', 'replay_lsn'))]),
        (STATE, state),
        (RECEIVER, STREAMING if receiver is None else receiver),
        (REPLAY, REPLAY_ROW),
        (PAUSE, [dict(pause_state='not paused')]),
        (SLOTS, slots or []),
        (HISTORY, HISTORY_ROW),
        (SUBSCRIPTIONS, subscriptions or []),
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


def primary_info(standbys, slots, current='0/5000148', subscriptions=()):
    return dict(role='primary', timeline=1, current_lsn=current,
                standbys=[rep.shape_standby(r, current) for r in standbys],
                slots=[rep.shape_slot_details(r, current, current) for r in slots],
                subscriptions=[rep.shape_subscription(r) for r in subscriptions])


def test_primary_lag_entries_connected_and_disconnected():
    info = primary_info(
        [standby_row('pg2', '0/5000100'), standby_row('pg3', '0/5000148', slot_name='pg3')],
        [slot_row('pg2'), slot_row('pg3'), slot_row('pg4', '0/4000000', active=False),
         logical_row('cdc', '0/4000148', '0/1000000', active=False), slot_row('new', None, active=False)])
    entries = mod.primary_lag_entries(info)
    assert entries == [
        dict(name='pg2', state='streaming', lag_bytes=0x48, position='replay_lsn 0/5000100'),
        dict(name='pg3', state='streaming', lag_bytes=0, position='replay_lsn 0/5000148'),
        dict(name='pg4', state='disconnected (slot inactive)', lag_bytes=0x1000148, position='restart_lsn 0/4000000'),
        dict(name='new', state='disconnected (slot inactive)', lag_bytes=None, position='restart_lsn None'),
        # a logical slot is checked by what its subscriber has not confirmed, not by what it retains
        dict(name='logical slot cdc', state='inactive', lag_bytes=0x1000000, position='confirmed_flush_lsn 0/4000148'),
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
                                      wal_status='reserved', safe_wal_size=10754195456, retained_bytes=0x1000148,
                                      database=None, plugin=None, failover=False, synced=False,
                                      confirmed_flush_lsn=None, invalidation_reason=None, lag_bytes=None)
    assert result['logical_slots'] == [] and result['subscriptions'] == []
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
    assert [a for s, a in cursor.executed if re.search(HISTORY, s)] == [('pg_wal/00000002.history',)]


def test_no_history_on_timeline_1(run_module):
    result, cursor = run_module(primary_script())
    assert result['timeline_history'] == [] and not cursor.ran(r'pg_read_file')


def test_unreadable_history_is_null(run_module):
    script = replace(standby_script(), HISTORY, psycopg2.errors.InsufficientPrivilege('permission denied'))
    result = run_module(script)[0]
    assert result['timeline_history'] is None


# --- logical replication: slots ---------------------------------------------------------------

PG17_SLOT_COLUMNS = r'safe_wal_size, failover, synced, invalidation_reason\s+FROM pg_replication_slots'


def test_slots_sql_reads_the_postgresql_17_columns_only_there():
    pg15 = rep.slots_sql(150020)
    assert re.search(SLOTS, pg15) and 'confirmed_flush_lsn' in pg15 and 'plugin' in pg15
    assert not re.search(r'failover|synced|invalidation_reason', pg15)
    assert re.search(PG17_SLOT_COLUMNS, rep.slots_sql(170004))
    assert re.search(PG17_SLOT_COLUMNS, rep.slots_sql(180000))


def test_shape_slot_details_postgresql_15():
    entry = rep.shape_slot_details(logical_row(confirmed='0/5000100', restart_lsn='0/4000000'), '0/5000148',
                                   '0/5000148')
    assert entry == dict(slot_name='cdc', slot_type='logical', active=True, restart_lsn='0/4000000',
                         wal_status='reserved', safe_wal_size=None, retained_bytes=0x1000148,
                         database='app', plugin='pgoutput', failover=False, synced=False,
                         confirmed_flush_lsn='0/5000100', invalidation_reason=None, lag_bytes=0x48)
    # no invalidation_reason column before 17: a lost slot had its WAL removed
    lost = rep.shape_slot_details(logical_row(wal_status='lost', restart_lsn=None), '0/5000148', '0/5000148')
    assert lost['invalidation_reason'] == 'wal_removed' and lost['retained_bytes'] is None
    assert rep.shape_slot_details(slot_row(wal_status='lost'), '0/5000148')['invalidation_reason'] == 'wal_removed'


def test_shape_slot_details_postgresql_17():
    row = logical_row(pg17=True, failover=True, synced=True, invalidation_reason='rows_removed', wal_status='lost')
    entry = rep.shape_slot_details(row, '0/5000148', '0/5000148')
    assert (entry['failover'], entry['synced'], entry['invalidation_reason']) == (True, True, 'rows_removed')
    # from 17 the server's reason wins, a valid slot has none even if its wal_status says otherwise
    row = logical_row(pg17=True, wal_status='unreserved')
    assert rep.shape_slot_details(row, '0/5000148', '0/5000148')['invalidation_reason'] is None


def test_shape_slot_details_physical_and_on_a_standby_have_no_lag_bytes():
    assert rep.shape_slot_details(slot_row(), '0/5000148', '0/5000148')['lag_bytes'] is None
    entry = rep.shape_slot_details(logical_row(), '0/5000148')
    assert entry['lag_bytes'] is None and entry['retained_bytes'] == 0x48


def test_gather_without_logical_is_the_survey_report(fake_db):
    # node_survey's report: the slot columns of before, and no slots on a standby
    cursor_cls = fake_db[0]
    cursor = cursor_cls(primary_script(slots=[slot_row('pg2')]))
    info = rep.gather(cursor, 170004)
    assert info['slots'] == [rep.shape_slot(slot_row('pg2'), '0/5000148')]
    assert 'logical_slots' not in info and 'subscriptions' not in info
    assert not cursor.ran(r'confirmed_flush_lsn|FROM pg_subscription')
    cursor = cursor_cls(standby_script())
    info = rep.gather(cursor, 170004)
    assert 'slots' not in info and not cursor.ran(r'pg_replication_slots')


@pytest.mark.parametrize('version, pg17', [(150020, False), (170004, True)])
def test_primary_logical_slots(run_module, version, pg17):
    slots = [slot_row('pg2'), logical_row('cdc', '0/5000100', '0/4000000', pg17=pg17)]
    result, cursor = run_module(primary_script(slots=slots), server_version=version)
    assert 'failed' not in result
    assert [s['slot_type'] for s in result['slots']] == ['physical', 'logical']
    assert result['logical_slots'] == [result['slots'][1]]
    assert result['logical_slots'][0] == dict(
        slot_name='cdc', slot_type='logical', database='app', plugin='pgoutput', active=True,
        restart_lsn='0/4000000', confirmed_flush_lsn='0/5000100', wal_status='reserved', safe_wal_size=None,
        retained_bytes=0x1000148, failover=False, synced=False, invalidation_reason=None, lag_bytes=0x48)
    assert bool(cursor.ran(PG17_SLOT_COLUMNS)) is pg17
    assert len(cursor.ran(SLOTS)) == 1


def test_primary_postgresql_17_failover_slot(run_module):
    slots = [logical_row('cdc', pg17=True, failover=True)]
    result = run_module(primary_script(slots=slots), server_version=170004)[0]
    assert result['logical_slots'][0]['failover'] is True and result['logical_slots'][0]['synced'] is False


@pytest.mark.parametrize('version, pg17', [(150020, False), (170004, True)])
def test_standby_reports_its_slots(run_module, version, pg17):
    # a synced failover slot (17) or a cascading physical slot, measured against the standby's positions
    # read after the slots (receive 0/5000148 > replay 0/5000100)
    slots = [logical_row('cdc', '0/5000000', '0/4000000', active=False, pg17=pg17, synced=pg17),
             slot_row('pg3', '0/5000000', active=False)]
    if not pg17:
        del slots[0]['synced']
    result, cursor = run_module(standby_script(slots=slots), server_version=version)
    assert 'failed' not in result and result['role'] == 'standby'
    assert [(s['slot_name'], s['retained_bytes'], s['lag_bytes']) for s in result['slots']] == [
        ('cdc', 0x1000148, None), ('pg3', 0x148, None)]
    assert result['logical_slots'][0]['synced'] is pg17
    assert bool(cursor.ran(PG17_SLOT_COLUMNS)) is pg17
    executed = [s for s, a in cursor.executed]
    last_slots = max(i for i, s in enumerate(executed) if re.search(SLOTS, s))
    assert any(re.search(POSITIONS, s) for s in executed[last_slots + 1:])


def test_standby_slot_reference_is_the_replay_position_without_received_wal(run_module):
    state = [dict(STANDBY_STATE[0], receive_lsn=None)]
    result = run_module(standby_script(state=state, slots=[slot_row('pg3', '0/5000000', active=False)]))[0]
    assert result['slots'][0]['retained_bytes'] == 0x100
    assert rep.standby_reference_lsn(dict(receive_lsn=None, replay_lsn=None)) is None
    assert rep.standby_reference_lsn(dict(receive_lsn='0/3000000', replay_lsn='0/367D0A0')) == '0/367D0A0'


# --- logical replication: subscriptions ---------------------------------------------------------

@pytest.mark.parametrize('enabled, pid, state', [
    (True, 4242, 'streaming'),
    (True, None, 'down'),
    (False, None, 'disabled'),
    (False, 4242, 'disabled'),      # disabled, its worker not gone yet
])
def test_subscription_state(enabled, pid, state):
    entry = rep.shape_subscription(subscription_row(enabled=enabled, pid=pid))
    assert entry['state'] == state
    assert entry['worker_running'] is (pid is not None) and entry['enabled'] is enabled


def test_shape_subscription():
    assert rep.shape_subscription(subscription_row(total=5, ready=3)) == dict(
        name='app_sub', database='app', enabled=True, publications=['app_pub'], slot_name='app_sub',
        failover=False, worker_running=True, received_lsn='0/7000200', latest_end_lsn='0/7000200',
        last_msg_receipt_time='2026-11-25T12:21:57.656734+00:00', state='streaming', tables_total=5,
        tables_ready=3, lag_bytes=None)
    down = rep.shape_subscription(subscription_row(pid=None, publications=None, slot_name=None))
    assert down['publications'] == [] and down['last_msg_receipt_time'] is None and down['received_lsn'] is None
    assert rep.shape_subscription(subscription_row(pg17=True))['failover'] is True


def test_subscriptions_sql_by_version():
    pg15, pg16, pg17 = (rep.subscriptions_sql(v) for v in (150020, 160008, 170004))
    for sql in (pg15, pg16, pg17):
        assert re.search(SUBSCRIPTIONS, sql)
        assert 'subconninfo' not in sql    # needs superuser
        assert re.search(r'subdbid = \(SELECT oid FROM pg_database WHERE datname = current_database\(\)\)', sql)
        assert re.search(r'w\.relid IS NULL', sql) and "srsubstate = 'r'" in sql
    assert 'subfailover' not in pg15 and 'subfailover' not in pg16 and 's.subfailover AS failover' in pg17
    assert 'leader_pid' not in pg15 and 'w.leader_pid IS NULL' in pg16 and 'w.leader_pid IS NULL' in pg17


@pytest.mark.parametrize('version, pg17', [(150020, False), (170004, True)])
def test_subscriptions_of_the_connected_database(run_module, version, pg17):
    subs = [subscription_row('a_sub', pg17=pg17), subscription_row('b_sub', enabled=False, pid=None)]
    result, cursor = run_module(primary_script(standbys=[], slots=[], subscriptions=subs), server_version=version)
    assert 'failed' not in result
    assert [(s['name'], s['state'], s['failover']) for s in result['subscriptions']] == [
        ('a_sub', 'streaming', pg17), ('b_sub', 'disabled', False)]
    assert len(cursor.ran(SUBSCRIPTIONS)) == 1
    assert bool(cursor.ran(r'subfailover')) is pg17


def test_subscription_databases_connects_to_each(run_module, fake_db, monkeypatch):
    cursor_cls, conn_cls = fake_db
    opened = []

    def open_connection(params, application_name=None):
        assert application_name == 'pgha.cluster.pg_replication_info'
        conn = conn_cls(150020)
        opened.append((params['login_db'], conn))
        subs = [subscription_row('%s_sub' % params['login_db'], database=params['login_db'])]
        return conn, cursor_cls([(SUBSCRIPTIONS, subs)])
    monkeypatch.setattr(mod, 'open_connection', open_connection)
    script = primary_script(subscriptions=[subscription_row('postgres_sub', database='postgres')])
    result, cursor = run_module(script, subscription_databases=['app', 'postgres', 'crm', 'app'])
    assert 'failed' not in result
    assert [(s['database'], s['name']) for s in result['subscriptions']] == [
        ('app', 'app_sub'), ('postgres', 'postgres_sub'), ('crm', 'crm_sub')]
    # login_db's connection is reused; each other one is opened once and closed
    assert [d for d, c in opened] == ['app', 'crm'] and all(c.closed for d, c in opened)
    assert len(cursor.ran(SUBSCRIPTIONS)) == 1


def test_subscription_databases_connection_failure_names_the_database(run_module, monkeypatch):
    def refuse(params, application_name=None):
        raise psycopg2.OperationalError('FATAL:  database "crm" does not exist\n')
    monkeypatch.setattr(mod, 'open_connection', refuse)
    result = run_module(primary_script(), subscription_databases=['crm'])[0]
    assert result['failed'] is True
    assert result['msg'] == ('Cannot connect to PostgreSQL at unix socket /var/run/postgresql/.s.PGSQL.5432 '
                             '(login_user postgres, login_db crm) (subscription_databases): FATAL: database "crm" '
                             'does not exist')


def test_subscription_databases_query_error_names_the_database(run_module, fake_db, monkeypatch):
    cursor_cls, conn_cls = fake_db
    conns = []

    def open_connection(params, application_name=None):
        conns.append(conn_cls())
        return conns[-1], cursor_cls([(SUBSCRIPTIONS, psycopg2.Error('canceling statement'))])
    monkeypatch.setattr(mod, 'open_connection', open_connection)
    result = run_module(primary_script(), subscription_databases=['crm'])[0]
    assert result['failed'] is True and 'login_db crm): canceling statement' in result['msg']
    assert conns[0].closed


def test_standby_subscriptions_are_reported_but_not_gated(run_module):
    # the primary's subscriptions, replicated: no apply worker runs on a standby
    result = run_module(standby_script(subscriptions=[subscription_row(pid=None)]), max_lag_bytes=100)[0]
    assert 'failed' not in result and result['lagging'] == []
    assert result['subscriptions'][0]['state'] == 'down'


# --- logical replication: the max_lag_bytes gate ---------------------------------------------------

def test_gate_passes_with_everything_fine(run_module):
    slots = [slot_row('pg2'), logical_row('cdc', '0/5000100')]
    script = primary_script(slots=slots, subscriptions=[subscription_row()])
    result, cursor = run_module(script, max_lag_bytes=0x48)
    assert 'failed' not in result and result['lagging'] == []


def test_gate_fails_on_a_lagging_logical_slot(run_module):
    slots = [slot_row('pg2'), logical_row('cdc', '0/4000148', '0/4000000', active=False), logical_row('ok')]
    result = run_module(primary_script(slots=slots), max_lag_bytes=1024)[0]
    assert result['failed'] is True
    assert result['lagging'] == [dict(name='logical slot cdc', state='inactive', lag_bytes=0x1000000,
                                      position='confirmed_flush_lsn 0/4000148')]
    lines = result['msg'].splitlines()
    assert lines[0].endswith('1 of 3 over the limit.')
    assert lines[3].split() == ['logical', 'slot', 'cdc', 'inactive', '16777216', 'confirmed_flush_lsn',
                                '0/4000148', 'OVER']
    assert lines[4].split() == ['logical', 'slot', 'ok', 'active', '0', 'confirmed_flush_lsn', '0/5000148', 'ok']


@pytest.mark.parametrize('version, row', [
    (150020, logical_row('cdc', wal_status='lost', restart_lsn=None)),
    (170004, logical_row('cdc', pg17=True, invalidation_reason='wal_removed', wal_status='lost', restart_lsn=None)),
])
def test_gate_fails_on_an_invalidated_logical_slot(run_module, version, row):
    result = run_module(primary_script(slots=[row]), server_version=version, max_lag_bytes=10 ** 12)[0]
    assert result['failed'] is True
    assert result['lagging'] == [dict(name='logical slot cdc', state='invalidated (wal_removed)', lag_bytes=None,
                                      position='confirmed_flush_lsn 0/5000148')]


@pytest.mark.parametrize('sub, reason', [
    (subscription_row(pid=None), 'enabled but no apply worker runs'),
    (subscription_row(enabled=False, pid=None), 'subscription disabled'),
    (subscription_row(total=5, ready=3), '2 of 5 tables not ready'),
    (subscription_row(pid=None, total=2, ready=0), 'enabled but no apply worker runs; 2 of 2 tables not ready'),
])
def test_gate_fails_on_a_subscription_not_streaming_or_not_ready(run_module, sub, reason):
    result = run_module(primary_script(subscriptions=[sub, subscription_row('fine_sub')]), max_lag_bytes=0)[0]
    assert result['failed'] is True
    assert len(result['lagging']) == 1
    entry = result['lagging'][0]
    assert entry['name'] == 'subscription app_sub (app)' and entry['reason'] == reason
    assert entry['lag_bytes'] is None and entry['state'] == rep.shape_subscription(sub)['state']
    lines = result['msg'].splitlines()
    assert lines[0].endswith('1 of 3 over the limit.')
    row = [line for line in lines if line.startswith('subscription app_sub')][0]
    assert row.endswith('FAIL: %s' % reason)
    assert ' n/a ' in row and 'tables ready %d/%d' % (sub['tables_ready'], sub['tables_total']) in row
    fine = [line for line in lines if line.startswith('subscription fine_sub')][0]
    assert fine.split()[-1] == 'ok'


def test_gate_with_wait_for_checks_only_named_logical_slots_and_subscriptions(run_module):
    slots = [slot_row('pg2'), logical_row('cdc', '0/4000000'), logical_row('lagging', '0/1000000')]
    subs = [subscription_row('app_sub'), subscription_row('down_sub', pid=None)]
    script = primary_script(slots=slots, subscriptions=subs)
    result = run_module(script, max_lag_bytes=0x1000148, wait_for=['pg2', 'cdc', 'app_sub'])[0]
    assert 'failed' not in result and result['lagging'] == []
    result = run_module(script, max_lag_bytes=0x1000148, wait_for=['lagging', 'down_sub', 'pg9'])[0]
    assert result['failed'] is True
    assert [e['name'] for e in result['lagging']] == ['logical slot lagging', 'subscription down_sub (app)', 'pg9']
    result = run_module(script, max_lag_bytes=0x1000148)[0]
    assert [e['name'] for e in result['lagging']] == ['logical slot lagging', 'subscription down_sub (app)']


def test_logical_walsenders_are_not_standbys():
    # the standbys query keeps physical senders only: a subscriber is checked by its logical slot
    from ansible_collections.pgha.cluster.plugins.module_utils import pgha_replication
    assert "WHERE s.slot_type IS DISTINCT FROM 'logical'" in pgha_replication.STANDBYS_SQL


def test_a_logical_slot_is_checked_by_its_confirmed_position(run_module):
    slots = [logical_row('app_sub', '0/5000000')]
    result = run_module(primary_script(standbys=[], slots=slots), max_lag_bytes=0)[0]
    assert [(e['name'], e['lag_bytes']) for e in result['lagging']] == [('logical slot app_sub', 0x148)]
