# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading a server's replication state: the queries and the shaping of their
rows, shared by pgha.cluster.pg_replication_info (the LSN/lag report) and
pgha.cluster.node_survey (what the runbooks see of one node). gather() is the
whole report (gather(logical=True) adds the logical replication columns of the
slots, and the slots of a standby); read_subscriptions() the subscriptions of
the connected database. The shape_* helpers are pure."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

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

# The standbys: physical WAL senders (a logical subscriber's sender, on its logical slot, is
# reported with the logical slots).
STANDBYS_SQL = """
SELECT r.pid, r.application_name, host(r.client_addr) AS client_addr, r.state, r.sync_state,
       r.sent_lsn::text AS sent_lsn, r.write_lsn::text AS write_lsn,
       r.flush_lsn::text AS flush_lsn, r.replay_lsn::text AS replay_lsn,
       r.write_lag, r.flush_lag, r.replay_lag, s.slot_name
  FROM pg_stat_replication r
  LEFT JOIN pg_replication_slots s ON s.active_pid = r.pid
 WHERE s.slot_type IS DISTINCT FROM 'logical'
 ORDER BY r.application_name, r.pid
"""

SLOTS_SQL = """
SELECT slot_name, slot_type, active, restart_lsn::text AS restart_lsn, wal_status, safe_wal_size
  FROM pg_replication_slots
 ORDER BY slot_name
"""

# The slots with their logical replication columns (gather(logical=True)); the
# placeholder takes the columns that exist from PostgreSQL 17 only (see slots_sql).
SLOT_DETAILS_SQL = """
SELECT slot_name, slot_type, database, plugin, active, restart_lsn::text AS restart_lsn,
       confirmed_flush_lsn::text AS confirmed_flush_lsn, wal_status, safe_wal_size%s
  FROM pg_replication_slots
 ORDER BY slot_name
"""

SLOT_COLUMNS_PG17 = ', failover, synced, invalidation_reason'

# One row per subscription of the connected database (pg_subscription is shared by all
# databases, pg_subscription_rel is not), with its apply worker (pg_stat_subscription has a
# row with relid NULL for every subscription, pid NULL without a worker; from PostgreSQL 16
# the parallel apply workers have relid NULL too, and a leader_pid). subconninfo is never
# read: it needs superuser.
SUBSCRIPTIONS_SQL = """
SELECT s.subname AS name, current_database() AS database, s.subenabled AS enabled,
       s.subpublications AS publications, s.subslotname AS slot_name%(columns)s,
       w.pid AS worker_pid, w.received_lsn::text AS received_lsn,
       w.latest_end_lsn::text AS latest_end_lsn, w.last_msg_receipt_time,
       (SELECT count(*) FROM pg_subscription_rel r WHERE r.srsubid = s.oid) AS tables_total,
       (SELECT count(*) FROM pg_subscription_rel r
         WHERE r.srsubid = s.oid AND r.srsubstate = 'r') AS tables_ready
  FROM pg_subscription s
  LEFT JOIN pg_stat_subscription w ON w.subid = s.oid AND w.relid IS NULL%(worker)s
 WHERE s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
 ORDER BY s.subname
"""

PRIMARY_WAL_SQL = """
SELECT pg_current_wal_insert_lsn()::text AS insert_lsn,
       pg_current_wal_lsn()::text AS write_lsn,
       pg_current_wal_flush_lsn()::text AS flush_lsn,
       substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) AS tli_hex,
       current_setting('synchronous_standby_names') AS synchronous_standby_names
"""

_SYNC_RE = re.compile(r'^\s*(?:(ANY|FIRST)\s+)?(?:(\d+)\s*\((.*)\)|(.*))\s*$', re.I | re.S)


def _sync_names(text):
    names = []
    for part in text.split(','):
        name = part.strip()
        if name.startswith('"') and name.endswith('"') and len(name) >= 2:
            name = name[1:-1].replace('""', '"')
        else:
            name = name.lower()
        if name:
            names.append(name)
    return names


def sync_requirement(standby_names):
    """What synchronous_standby_names asks, as PostgreSQL reads it: {method (any, first, or None when
    synchronous replication is off), count (standbys each commit waits for), names (the listed
    application_names, '*' for any)}."""
    text = (standby_names or '').strip()
    if not text:
        return {'method': None, 'count': 0, 'names': []}
    match = _SYNC_RE.match(text)
    method, count, listed, bare = match.groups() if match else (None, None, None, text)
    if count is None:
        # "a, b": FIRST 1 (a, b), the old form
        return {'method': 'first', 'count': 1, 'names': _sync_names(bare or '')}
    return {'method': (method or 'first').lower(), 'count': int(count), 'names': _sync_names(listed)}


def sync_state(standby_names, standbys):
    """The synchronous standbys a primary waits for and those connected: {standby_names, method,
    required, names, connected (application_names of the listed standbys that stream), blocked (fewer
    connected than required: every commit waits)}."""
    need = sync_requirement(standby_names)
    wanted = set(need['names'])
    connected = sorted(set(s['application_name'] for s in standbys or []
                           if s.get('state') == 'streaming' and s.get('application_name')
                           and ('*' in wanted or s['application_name'] in wanted)))
    return {'standby_names': standby_names or '', 'method': need['method'], 'required': need['count'],
            'names': need['names'], 'connected': connected, 'blocked': len(connected) < need['count']}


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


def shape_slot_details(row, reference_lsn, current_lsn=None):
    """One row of slots_sql() as returned in slots[] by gather(logical=True): shape_slot()'s keys
    measured against reference_lsn, plus the logical replication columns. Before PostgreSQL 17
    the row has no failover, synced nor invalidation_reason: false, false, and 'wal_removed'
    for a slot whose wal_status is 'lost'. lag_bytes (current_lsn - confirmed_flush_lsn) is for
    a logical slot on a primary; null otherwise (current_lsn None on a standby)."""
    entry = shape_slot(row, reference_lsn)
    if 'invalidation_reason' in row:
        reason = row['invalidation_reason']
    else:
        reason = 'wal_removed' if row['wal_status'] == 'lost' else None
    logical = row['slot_type'] == 'logical'
    entry.update(
        database=row['database'],
        plugin=row['plugin'],
        failover=bool(row.get('failover')),
        synced=bool(row.get('synced')),
        confirmed_flush_lsn=row['confirmed_flush_lsn'],
        invalidation_reason=reason,
        lag_bytes=lsn_diff_or_none(current_lsn, row['confirmed_flush_lsn']) if logical else None,
    )
    return entry


def subscription_state(enabled, worker_running):
    """streaming (enabled, its apply worker runs), disabled, or down (enabled, no apply worker)."""
    if not enabled:
        return 'disabled'
    return 'streaming' if worker_running else 'down'


def shape_subscription(row):
    """One row of subscriptions_sql() as returned in subscriptions[]. Before PostgreSQL 17 the
    row has no failover: false. lag_bytes is always null: the subscriber cannot measure it (the
    publisher's logical slot can: its lag_bytes)."""
    enabled = bool(row['enabled'])
    running = row['worker_pid'] is not None
    return dict(
        name=row['name'],
        database=row['database'],
        enabled=enabled,
        publications=list(row['publications'] or []),
        slot_name=row['slot_name'],
        failover=bool(row.get('failover')),
        worker_running=running,
        received_lsn=row['received_lsn'],
        latest_end_lsn=row['latest_end_lsn'],
        last_msg_receipt_time=iso_timestamp(row['last_msg_receipt_time']),
        state=subscription_state(enabled, running),
        tables_total=int(row['tables_total'] or 0),
        tables_ready=int(row['tables_ready'] or 0),
        lag_bytes=None,
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


def slots_sql(server_version):
    """SLOT_DETAILS_SQL for this server: failover, synced and invalidation_reason exist from
    PostgreSQL 17."""
    return SLOT_DETAILS_SQL % (SLOT_COLUMNS_PG17 if server_version >= 170000 else '')


def subscriptions_sql(server_version):
    """SUBSCRIPTIONS_SQL for this server: subfailover exists from PostgreSQL 17, the parallel
    apply workers (leader_pid) from 16."""
    return SUBSCRIPTIONS_SQL % dict(
        columns=', s.subfailover AS failover' if server_version >= 170000 else '',
        worker=' AND w.leader_pid IS NULL' if server_version >= 160000 else '')


def read_subscriptions(cursor, server_version):
    """subscriptions[] of the database the cursor is connected to."""
    return [shape_subscription(r) for r in query_all(cursor, subscriptions_sql(server_version))]


def standby_reference_lsn(row):
    """What a standby's slots are measured against: the greater of its receive and replay
    positions (STANDBY_POSITIONS_SQL's row); None when both are null."""
    positions = [p for p in (row['receive_lsn'], row['replay_lsn']) if p is not None]
    return max(positions, key=lsn_to_int) if positions else None


def logical_slots(slots):
    return [s for s in slots if s['slot_type'] == 'logical']


def gather_primary(cursor, server_version=None, logical=False):
    standby_rows = query_all(cursor, STANDBYS_SQL)
    slot_rows = query_all(cursor, slots_sql(server_version) if logical else SLOTS_SQL)
    # Read last, so that no standby or slot is ahead of it.
    wal = query_one(cursor, PRIMARY_WAL_SQL)
    current = wal['write_lsn']
    if logical:
        slots = [shape_slot_details(r, current, current) for r in slot_rows]
    else:
        slots = [shape_slot(r, current) for r in slot_rows]
    info = dict(
        role='primary',
        in_recovery=False,
        timeline=int(wal['tli_hex'], 16),
        timeline_source='wal_file',
        current_lsn=current,
        wal_insert_lsn=wal['insert_lsn'],
        wal_write_lsn=wal['write_lsn'],
        wal_flush_lsn=wal['flush_lsn'],
        standbys=[shape_standby(r, current) for r in standby_rows],
        slots=slots,
    )
    info['synchronous'] = sync_state(wal.get('synchronous_standby_names'), info['standbys'])
    if logical:
        info['logical_slots'] = logical_slots(slots)
    return info


def gather_standby_slots(cursor, server_version):
    """(slots, logical_slots) of a standby, measured against its positions read after them."""
    slot_rows = query_all(cursor, slots_sql(server_version))
    reference = standby_reference_lsn(query_one(cursor, STANDBY_POSITIONS_SQL))
    slots = [shape_slot_details(r, reference) for r in slot_rows]
    return slots, logical_slots(slots)


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


def gather(cursor, server_version, logical=False):
    """The replication report of the server. With logical, slots[] has the logical replication
    columns (shape_slot_details) and is read on a standby too, and logical_slots is added."""
    state = query_one(cursor, STANDBY_STATE_SQL)
    if state['in_recovery']:
        info = gather_standby(cursor, state, server_version)
        if logical:
            info['slots'], info['logical_slots'] = gather_standby_slots(cursor, server_version)
    else:
        info = gather_primary(cursor, server_version, logical)
    info['server_version'] = server_version
    info['system_identifier'] = state.get('system_identifier')
    info['timeline_history'] = read_history(cursor, info['timeline'])
    return info
