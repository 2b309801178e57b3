# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading a server's replication state: the queries and the shaping of their
rows, shared by pgha.cluster.pg_replication_info (the LSN/lag report) and
pgha.cluster.node_survey (what the runbooks see of one node). gather() is the
whole report; the shape_* helpers are pure."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.pgha.cluster.plugins.module_utils.pgha_pg import (
    DatabaseError,
    LsnError,
    STANDBY_STATE_SQL,
    WAL_RECEIVER_SQL,
    interval_seconds,
    iso_timestamp,
    lsn_diff_or_none,
    lsn_to_int,
    parse_timeline_history,
    query_all,
    query_one,
    standby_timeline,
)

STANDBYS_SQL = """
SELECT r.pid, r.application_name, host(r.client_addr) AS client_addr, r.state, r.sync_state,
       r.sent_lsn::text AS sent_lsn, r.write_lsn::text AS write_lsn,
       r.flush_lsn::text AS flush_lsn, r.replay_lsn::text AS replay_lsn,
       r.write_lag, r.flush_lag, r.replay_lag, s.slot_name
  FROM pg_stat_replication r
  LEFT JOIN pg_replication_slots s ON s.active_pid = r.pid
 ORDER BY r.application_name, r.pid
"""

SLOTS_SQL = """
SELECT slot_name, slot_type, active, restart_lsn::text AS restart_lsn, wal_status, safe_wal_size
  FROM pg_replication_slots
 ORDER BY slot_name
"""

PRIMARY_WAL_SQL = """
SELECT pg_current_wal_insert_lsn()::text AS insert_lsn,
       pg_current_wal_lsn()::text AS write_lsn,
       pg_current_wal_flush_lsn()::text AS flush_lsn,
       substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) AS tli_hex
"""

STANDBY_REPLAY_SQL = """
SELECT pg_last_xact_replay_timestamp() AS last_replay_timestamp,
       clock_timestamp() - pg_last_xact_replay_timestamp() AS replay_delay
"""

PAUSE_STATE_SQL = 'SELECT pg_get_wal_replay_pause_state() AS pause_state'

STANDBY_POSITIONS_SQL = """
SELECT pg_is_in_recovery() AS in_recovery,
       pg_last_wal_receive_lsn()::text AS receive_lsn,
       pg_last_wal_replay_lsn()::text AS replay_lsn
"""

HISTORY_SQL = 'SELECT pg_read_file(%s) AS content'


def shape_standby(row, current_lsn):
    """One pg_stat_replication row (with its slot) as returned in standbys[]."""
    entry = dict(
        application_name=row['application_name'],
        client_addr=row['client_addr'],
        state=row['state'],
        sync_state=row['sync_state'],
        slot_name=row.get('slot_name'),
    )
    for kind in ('sent', 'write', 'flush', 'replay'):
        lsn = row['%s_lsn' % kind]
        entry['%s_lsn' % kind] = lsn
        entry['%s_lag_bytes' % kind] = lsn_diff_or_none(current_lsn, lsn)
    for kind in ('write', 'flush', 'replay'):
        entry['%s_lag' % kind] = interval_seconds(row['%s_lag' % kind])
    return entry


def shape_slot(row, current_lsn):
    """One pg_replication_slots row as returned in slots[]."""
    return dict(
        slot_name=row['slot_name'],
        slot_type=row['slot_type'],
        active=bool(row['active']),
        restart_lsn=row['restart_lsn'],
        wal_status=row['wal_status'],
        safe_wal_size=row['safe_wal_size'],
        retained_bytes=lsn_diff_or_none(current_lsn, row['restart_lsn']),
    )


def shape_receiver(row):
    """The pg_stat_wal_receiver row, or None without a WAL receiver."""
    if not row:
        return None
    return dict(
        status=row['status'],
        sender_host=row['sender_host'],
        sender_port=row['sender_port'],
        slot_name=row['slot_name'],
        received_tli=row['received_tli'],
        flushed_lsn=row['flushed_lsn'],
        latest_end_lsn=row['latest_end_lsn'],
    )


def receive_replay_lag(receive_lsn, replay_lsn):
    """WAL received but not replayed; 0 when nothing was received or replay is ahead."""
    if receive_lsn is None or replay_lsn is None:
        return 0
    return max(0, lsn_to_int(receive_lsn) - lsn_to_int(replay_lsn))


def gather_primary(cursor):
    standby_rows = query_all(cursor, STANDBYS_SQL)
    slot_rows = query_all(cursor, SLOTS_SQL)
    # Read last, so that no standby or slot is ahead of it.
    wal = query_one(cursor, PRIMARY_WAL_SQL)
    current = wal['write_lsn']
    return dict(
        role='primary',
        in_recovery=False,
        timeline=int(wal['tli_hex'], 16),
        timeline_source='wal_file',
        current_lsn=current,
        wal_insert_lsn=wal['insert_lsn'],
        wal_write_lsn=wal['write_lsn'],
        wal_flush_lsn=wal['flush_lsn'],
        standbys=[shape_standby(r, current) for r in standby_rows],
        slots=[shape_slot(r, current) for r in slot_rows],
    )


def gather_standby(cursor, state, server_version):
    receiver = query_one(cursor, WAL_RECEIVER_SQL)
    timeline, source = standby_timeline(state, receiver)
    replay = query_one(cursor, STANDBY_REPLAY_SQL)
    pause_state = None
    if server_version >= 140000:
        pause_state = query_one(cursor, PAUSE_STATE_SQL)['pause_state']
    return dict(
        role='standby',
        in_recovery=True,
        timeline=timeline,
        timeline_source=source,
        receive_lsn=state['receive_lsn'],
        replay_lsn=state['replay_lsn'],
        receive_replay_lag_bytes=receive_replay_lag(state['receive_lsn'], state['replay_lsn']),
        last_replay_timestamp=iso_timestamp(replay['last_replay_timestamp']),
        replay_delay=interval_seconds(replay['replay_delay']),
        replay_pause_state=pause_state,
        wal_receiver=shape_receiver(receiver),
    )


def read_history(cursor, timeline):
    """The history of the server's current timeline ([] on timeline 1), or None when it
    cannot be read (pg_read_file needs superuser or pg_read_server_files)."""
    if not timeline or timeline <= 1:
        return []
    try:
        row = query_one(cursor, HISTORY_SQL, ('pg_wal/%08X.history' % timeline,))
        return parse_timeline_history(row['content'] if row else '')
    except (DatabaseError, LsnError):
        return None


def gather(cursor, server_version):
    state = query_one(cursor, STANDBY_STATE_SQL)
    if state['in_recovery']:
        info = gather_standby(cursor, state, server_version)
    else:
        info = gather_primary(cursor)
    info['server_version'] = server_version
    info['system_identifier'] = state.get('system_identifier')
    info['timeline_history'] = read_history(cursor, info['timeline'])
    return info
