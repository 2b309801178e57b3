#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_replication_info
short_description: Report a PostgreSQL server's replication state and WAL positions, optionally wait or gate on lag
version_added: 0.1.0
description:
  - Read-only. Tells whether the server is a primary or a standby (RV(role)) and reports its WAL positions
    and timeline.
  - On a primary it lists every connected standby (C(pg_stat_replication)) with its positions and lag, and
    every replication slot (C(pg_replication_slots)) with the WAL it retains.
  - On a standby it reports the received and replayed positions, the last replayed transaction's time
    and the WAL receiver (its status and upstream).
  - Two optional gates for runbooks. O(wait_for_lsn) waits until standbys have replayed (or flushed) a
    position; O(max_lag_bytes) fails with a table of who lags by how much.
  - Never reports a change; runs the same in check mode.
options:
  wait_for_lsn:
    description:
      - A WAL position (for example the primary's C(pg_current_wal_lsn) after a write) to wait for.
      - On a primary, waits until every standby named in O(wait_for) has replayed (O(wait_for_mode=replay))
        or flushed (O(wait_for_mode=flush)) this position. O(wait_for) is required then.
      - On a standby, waits until this standby has replayed this position (O(wait_for_mode=replay)), or
        received and flushed it (O(wait_for_mode=flush)).
      - Fails after O(timeout) seconds with a table of what each one has reached.
      - The values reported are read after the wait.
    type: str
  wait_for:
    description:
      - The C(application_name) of each standby to wait for with O(wait_for_lsn), on a primary. A name
        that is not connected counts as not there yet.
      - Also limits the O(max_lag_bytes) check on a primary to these standbys (and to replication slots of
        these names).
      - Ignored on a standby.
    type: list
    elements: str
    default: []
  wait_for_mode:
    description:
      - Which position O(wait_for_lsn) is compared with. V(replay) is what queries on the standby see,
        V(flush) is what is safe on the standby's disk.
    type: str
    choices: [replay, flush]
    default: replay
  timeout:
    description:
      - Seconds to wait for O(wait_for_lsn) before failing.
    type: float
    default: 60
  poll_interval:
    description:
      - Seconds between two reads of the positions while waiting for O(wait_for_lsn).
    type: float
    default: 0.5
  max_lag_bytes:
    description:
      - Fail unless every standby is within this many bytes of WAL. The failure message holds a table
        of every standby checked, its lag and its position.
      - On a primary, checks each connected standby's RV(standbys[].replay_lag_bytes), and each physical
        replication slot that no standby uses, by its RV(slots[].retained_bytes) (a disconnected
        standby). With O(wait_for), only these names, and a name with neither counts as failing.
      - On a standby, checks RV(receive_replay_lag_bytes), the WAL received but not yet replayed. That says
        nothing about how far the standby is behind its primary; check that on the primary.
      - A lag that cannot be measured (a NULL position) counts as failing.
    type: int
  login_user:
    description:
      - Role to connect as. Without superuser or C(pg_monitor) membership, PostgreSQL hides the positions
        of other sessions in C(pg_stat_replication) and C(pg_stat_wal_receiver).
    type: str
    default: postgres
attributes:
  check_mode:
    support: full
    description: The module only reads; it behaves the same in check mode.
  diff_mode:
    support: none
    description: No diff is produced.
requirements:
  - psycopg2 (Debian package C(python3-psycopg2)) on the managed host
notes:
  - "The default connection (Unix socket, user C(postgres), peer authentication) works with
    C(become: true) and C(become_user: postgres) on the database host."
  - Lag in bytes on a primary is measured against C(pg_current_wal_lsn), read after the standbys and
    slots, so it is never negative.
  - The timeline of a primary is read from the name of its current WAL file, which is exact from the moment
    of promotion (C(pg_control_checkpoint) lags until the next checkpoint). On a standby it is the timeline
    its WAL receiver streams on; without a streaming receiver, the larger of the control file's checkpoint
    and minimum recovery point timelines (RV(timeline_source) tells which).
seealso:
  - module: pgha.cluster.pg_promote
  - name: pg_stat_replication in the PostgreSQL documentation
    description: The view of the connected standbys.
    link: https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-PG-STAT-REPLICATION-VIEW
extends_documentation_fragment:
  - pgha.cluster.connection
author:
  - pgha.cluster developers (!UNKNOWN)
'''

EXAMPLES = r'''
- name: Read each node's replication state
  pgha.cluster.pg_replication_info:
  become: true
  become_user: postgres
  register: repl

- name: Pick the most advanced standby (highest replay_lsn)
  ansible.builtin.set_fact:
    best_standby: "{{ (replayed | dict2items | sort(attribute='value') | last).key }}"
  vars:
    standby_hosts: "{{ ansible_play_hosts | select('in', groups['replicas']) | list }}"
    replayed: >-
      {{ dict(standby_hosts | zip(standby_hosts | map('extract', hostvars, ['repl', 'replay_lsn'])
                                                | map('pgha.cluster.lsn_to_int'))) }}
  run_once: true

- name: Write a marker on the primary and note its position
  community.postgresql.postgresql_query:
    query: SELECT pg_current_wal_lsn()::text AS lsn
  become: true
  become_user: postgres
  register: marker

- name: Wait until pg2 and pg3 have replayed it
  pgha.cluster.pg_replication_info:
    wait_for_lsn: "{{ marker.query_result[0].lsn }}"
    wait_for: [pg2, pg3]
    timeout: 30
  become: true
  become_user: postgres

- name: Refuse to switch over unless pg2 is fully caught up
  pgha.cluster.pg_replication_info:
    max_lag_bytes: 0
    wait_for: [pg2]
  become: true
  become_user: postgres
'''

RETURN = r'''
role:
  description: V(primary) when the server is not in recovery, else V(standby).
  returned: always
  type: str
  sample: primary
in_recovery:
  description: C(pg_is_in_recovery).
  returned: always
  type: bool
  sample: false
server_version:
  description: The server's version number (C(server_version_num)).
  returned: always
  type: int
  sample: 150020
timeline:
  description: The server's timeline (see the notes for how it is read).
  returned: always
  type: int
  sample: 1
system_identifier:
  description: The cluster's system identifier (the same on a primary and all its standbys).
  returned: always
  type: str
  sample: "7441234567890123456"
timeline_history:
  description:
    - The history of the server's current timeline (its C(pg_wal/<timeline>.history) file), oldest first
      - each entry says which timeline ended at which LSN. Empty on timeline 1; null when the file cannot be
      read (the login needs superuser or C(pg_read_server_files)).
    - Two primaries of one cluster forked where their histories part; the runbooks use it to report what
      each wrote after the fork.
  returned: always
  type: list
  elements: dict
  sample: [{timeline: 1, switchpoint: 0/3000148, reason: no recovery target specified}]
timeline_source:
  description:
    - Where RV(timeline) comes from. V(wal_file) (primary, exact), V(wal_receiver) (streaming standby)
      or V(control_file) (standby without a streaming receiver; a lower bound).
  returned: always
  type: str
  sample: wal_file
current_lsn:
  description: C(pg_current_wal_lsn), the position lag bytes are measured against.
  returned: when RV(role) is primary
  type: str
  sample: 0/5000148
wal_insert_lsn:
  description: C(pg_current_wal_insert_lsn).
  returned: when RV(role) is primary
  type: str
  sample: 0/5000148
wal_write_lsn:
  description: C(pg_current_wal_lsn), the position written out of the WAL buffers.
  returned: when RV(role) is primary
  type: str
  sample: 0/5000148
wal_flush_lsn:
  description: C(pg_current_wal_flush_lsn).
  returned: when RV(role) is primary
  type: str
  sample: 0/5000148
standbys:
  description: One entry per connected WAL sender (C(pg_stat_replication)), ordered by application_name.
  returned: when RV(role) is primary
  type: list
  elements: dict
  contains:
    application_name:
      description: The standby's C(application_name) (in this collection, its slot name).
      type: str
      sample: pg2
    client_addr:
      description: The standby's IP address; null for a Unix socket connection.
      type: str
      sample: 10.89.60.12
    state:
      description: The WAL sender's state (C(startup), C(catchup), C(streaming), C(backup), C(stopping)).
      type: str
      sample: streaming
    sync_state:
      description: C(async), C(potential), C(sync) or C(quorum).
      type: str
      sample: async
    slot_name:
      description: The replication slot this connection uses; null without one.
      type: str
      sample: pg2
    sent_lsn:
      description: Last position sent.
      type: str
      sample: 0/5000148
    write_lsn:
      description: Last position the standby wrote.
      type: str
      sample: 0/5000148
    flush_lsn:
      description: Last position the standby flushed to disk.
      type: str
      sample: 0/5000148
    replay_lsn:
      description: Last position the standby replayed.
      type: str
      sample: 0/5000148
    sent_lag_bytes:
      description: RV(current_lsn) minus RV(standbys[].sent_lsn); null when that position is null.
      type: int
      sample: 0
    write_lag_bytes:
      description: RV(current_lsn) minus RV(standbys[].write_lsn); null when that position is null.
      type: int
      sample: 0
    flush_lag_bytes:
      description: RV(current_lsn) minus RV(standbys[].flush_lsn); null when that position is null.
      type: int
      sample: 0
    replay_lag_bytes:
      description: RV(current_lsn) minus RV(standbys[].replay_lsn); null when that position is null.
      type: int
      sample: 0
    write_lag:
      description: C(write_lag) in seconds; null when PostgreSQL reports none (an idle standby).
      type: float
      sample: 0.000412
    flush_lag:
      description: C(flush_lag) in seconds; null when PostgreSQL reports none.
      type: float
      sample: 0.00098
    replay_lag:
      description: C(replay_lag) in seconds; null when PostgreSQL reports none.
      type: float
      sample: 0.001204
slots:
  description: One entry per replication slot (C(pg_replication_slots)), ordered by name.
  returned: when RV(role) is primary
  type: list
  elements: dict
  contains:
    slot_name:
      description: The slot's name.
      type: str
      sample: pg2
    slot_type:
      description: C(physical) or C(logical).
      type: str
      sample: physical
    active:
      description: Whether a connection uses the slot now.
      type: bool
      sample: true
    restart_lsn:
      description: Oldest position the slot keeps WAL for; null for a slot that never reserved WAL.
      type: str
      sample: 0/5000000
    wal_status:
      description: C(reserved), C(extended), C(unreserved) or C(lost); null for a slot that never reserved WAL.
      type: str
      sample: reserved
    safe_wal_size:
      description: Bytes of WAL that can still be written before the slot risks C(lost); null without
        C(max_slot_wal_keep_size).
      type: int
      sample: 10754195456
    retained_bytes:
      description: RV(current_lsn) minus RV(slots[].restart_lsn), the WAL the slot holds back; null without restart_lsn.
      type: int
      sample: 328
receive_lsn:
  description: C(pg_last_wal_receive_lsn); null when nothing was streamed since the server started.
  returned: when RV(role) is standby
  type: str
  sample: 0/5000148
replay_lsn:
  description: C(pg_last_wal_replay_lsn).
  returned: when RV(role) is standby
  type: str
  sample: 0/5000148
receive_replay_lag_bytes:
  description:
    - RV(receive_lsn) minus RV(replay_lsn), the WAL received but not yet replayed. 0 when nothing was
      received since start or replay is ahead (WAL read from pg_wal or an archive).
  returned: when RV(role) is standby
  type: int
  sample: 0
last_replay_timestamp:
  description: C(pg_last_xact_replay_timestamp) in ISO 8601; null when no transaction was replayed since start.
  returned: when RV(role) is standby
  type: str
  sample: "2026-11-25T12:21:57.656734+00:00"
replay_delay:
  description:
    - Seconds since the last replayed transaction was committed on the primary. It grows while the primary
      is idle, so it is not a lag by itself.
  returned: when RV(role) is standby
  type: float
  sample: 3.52
replay_pause_state:
  description: C(pg_get_wal_replay_pause_state) (C(not paused), C(pause requested), C(paused)); null before PostgreSQL 14.
  returned: when RV(role) is standby
  type: str
  sample: not paused
wal_receiver:
  description: The WAL receiver (C(pg_stat_wal_receiver)); null when no WAL receiver runs.
  returned: when RV(role) is standby
  type: dict
  contains:
    status:
      description: C(streaming), C(starting), C(waiting), C(restarting), C(stopping) or C(stopped).
      type: str
      sample: streaming
    sender_host:
      description: Host (or socket directory) of the upstream server.
      type: str
      sample: 10.89.60.11
    sender_port:
      description: Port of the upstream server.
      type: int
      sample: 5432
    slot_name:
      description: The slot on the upstream; null without one.
      type: str
      sample: pg2
    received_tli:
      description: Timeline of the last position received and flushed.
      type: int
      sample: 1
    flushed_lsn:
      description: Last position received and flushed to disk.
      type: str
      sample: 0/5000148
    latest_end_lsn:
      description: Last position the upstream reported.
      type: str
      sample: 0/5000148
wait_elapsed:
  description: Seconds spent waiting for O(wait_for_lsn).
  returned: when O(wait_for_lsn) is set
  type: float
  sample: 0.21
lagging:
  description:
    - The entries over O(max_lag_bytes) (empty when all are within). Each has C(name), C(state), C(lag_bytes)
      (null when unknown) and C(position).
  returned: when O(max_lag_bytes) is set
  type: list
  elements: dict
  sample: [{name: pg2, state: disconnected (slot inactive), lag_bytes: 16777560, position: restart_lsn 0/3000000}]
'''

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pgha.cluster.plugins.module_utils.pgha_pg import (
    DatabaseError,
    LsnError,
    connect,
    describe_target,
    error_text,
    format_table,
    int_to_lsn,
    lsn_to_int,
    normalize_lsn,
    pgha_argument_spec,
    query_all,
    query_one,
)
from ansible_collections.pgha.cluster.plugins.module_utils.pgha_replication import (
    STANDBY_POSITIONS_SQL,
    STANDBYS_SQL,
    gather,
)

LAG_HEADERS = ('name', 'state', 'lag_bytes', 'position', 'verdict')


# --------------------------------------------------------------------------
# Result shaping (pure)
# --------------------------------------------------------------------------


def primary_lag_entries(info, names=None):
    """What max_lag_bytes checks on a primary: connected standbys and unused physical slots."""
    names = list(names or [])
    entries = []
    seen = set()
    for s in info['standbys']:
        if names and s['application_name'] not in names:
            continue
        seen.add(s['application_name'])
        entries.append(dict(name=s['application_name'], state=s['state'], lag_bytes=s['replay_lag_bytes'],
                            position='replay_lsn %s' % s['replay_lsn']))
    used = set(s['slot_name'] for s in info['standbys'] if s['slot_name'])
    for slot in info['slots']:
        if slot['slot_type'] != 'physical' or slot['active'] or slot['slot_name'] in used:
            continue
        if names and slot['slot_name'] not in names:
            continue
        seen.add(slot['slot_name'])
        entries.append(dict(name=slot['slot_name'], state='disconnected (slot inactive)',
                            lag_bytes=slot['retained_bytes'], position='restart_lsn %s' % slot['restart_lsn']))
    for name in names:
        if name not in seen:
            entries.append(dict(name=name, state='not connected, no slot', lag_bytes=None, position=None))
    return entries


def standby_lag_entries(info):
    """What max_lag_bytes checks on a standby: WAL received but not yet replayed."""
    receiver = info['wal_receiver']
    return [dict(name='this standby (received, not replayed)',
                 state=receiver['status'] if receiver else 'no WAL receiver',
                 lag_bytes=info['receive_replay_lag_bytes'],
                 position='receive_lsn %s replay_lsn %s' % (info['receive_lsn'], info['replay_lsn']))]


def over_limit(entry, max_lag_bytes):
    return entry['lag_bytes'] is None or entry['lag_bytes'] > max_lag_bytes


def lag_message(info, entries, max_lag_bytes):
    """The failure message of max_lag_bytes: a sentence and a table of every entry checked."""
    rows = [(e['name'], e['state'], 'unknown' if e['lag_bytes'] is None else e['lag_bytes'], e['position'],
             'OVER' if over_limit(e, max_lag_bytes) else 'ok') for e in entries]
    where = ('this primary (lag measured against current_lsn %s, timeline %s)' % (info['current_lsn'], info['timeline'])
             if info['role'] == 'primary' else 'this standby')
    count = len([e for e in entries if over_limit(e, max_lag_bytes)])
    return ('Replication lag over max_lag_bytes=%d on %s: %d of %d over the limit.\n%s'
            % (max_lag_bytes, where, count, len(entries), format_table(LAG_HEADERS, rows)))


def wait_pending_primary(rows, names, mode, target):
    """(pending, table rows) for a wait on a primary: names whose mode LSN is below target."""
    key = '%s_lsn' % mode
    pending = []
    table = []
    for name in names:
        matching = [r for r in rows if r['application_name'] == name]
        positions = [lsn_to_int(r[key]) for r in matching if r[key] is not None]
        best = max(positions) if positions else None
        state = ', '.join(sorted(set(r['state'] for r in matching))) or 'not connected'
        if best is None or best < target:
            pending.append(name)
        table.append((name, state, None if best is None else int_to_lsn(best),
                      'unknown' if best is None else max(0, target - best)))
    return pending, table


# --------------------------------------------------------------------------
# Reading the server
# --------------------------------------------------------------------------


def wait_on_primary(module, cursor, target_lsn):
    p = module.params
    target = lsn_to_int(target_lsn)
    started = time.monotonic()
    while True:
        rows = query_all(cursor, STANDBYS_SQL)
        pending, table = wait_pending_primary(rows, p['wait_for'], p['wait_for_mode'], target)
        elapsed = time.monotonic() - started
        if not pending:
            return elapsed
        if elapsed >= p['timeout']:
            module.fail_json(
                msg='Timed out after %ss waiting for %s to %s %s on this primary; not there: %s.\n%s'
                    % (p['timeout'], ', '.join(p['wait_for']), 'replay' if p['wait_for_mode'] == 'replay' else 'flush',
                       target_lsn, ', '.join(pending),
                       format_table(('standby', 'state', '%s_lsn' % p['wait_for_mode'], 'bytes_behind'), table)),
                role='primary', wait_elapsed=round(elapsed, 3), pending=pending)
        time.sleep(max(0.0, min(p['poll_interval'], p['timeout'] - elapsed)))


def wait_on_standby(module, cursor, target_lsn):
    p = module.params
    target = lsn_to_int(target_lsn)
    key = 'replay_lsn' if p['wait_for_mode'] == 'replay' else 'receive_lsn'
    started = time.monotonic()
    while True:
        row = query_one(cursor, STANDBY_POSITIONS_SQL)
        position = row[key]
        elapsed = time.monotonic() - started
        if position is not None and lsn_to_int(position) >= target:
            return elapsed
        if elapsed >= p['timeout']:
            behind = 'unknown' if position is None else lsn_to_int(target_lsn) - lsn_to_int(position)
            module.fail_json(
                msg='Timed out after %ss waiting for this standby to %s %s: %s is %s, %s bytes behind '
                    '(receive_lsn %s, replay_lsn %s). Is the WAL receiver streaming?'
                    % (p['timeout'], 'replay' if p['wait_for_mode'] == 'replay' else 'receive and flush',
                       target_lsn, key, position, behind, row['receive_lsn'], row['replay_lsn']),
                role='standby', wait_elapsed=round(elapsed, 3), pending=['this standby'])
        time.sleep(max(0.0, min(p['poll_interval'], p['timeout'] - elapsed)))


def run(module, cursor, server_version):
    p = module.params
    target_lsn = None
    if p['wait_for_lsn'] is not None:
        try:
            target_lsn = normalize_lsn(p['wait_for_lsn'])
        except LsnError as e:
            module.fail_json(msg='wait_for_lsn: %s' % e)

    wait_elapsed = None
    if target_lsn is not None:
        in_recovery = query_one(cursor, STANDBY_POSITIONS_SQL)['in_recovery']
        if in_recovery:
            wait_elapsed = wait_on_standby(module, cursor, target_lsn)
        else:
            if not p['wait_for']:
                module.fail_json(msg='wait_for_lsn on a primary needs wait_for: the application_name of each '
                                     'standby to wait for (see the standbys listed by this module).')
            wait_elapsed = wait_on_primary(module, cursor, target_lsn)

    info = gather(cursor, server_version)
    result = dict(changed=False, **info)
    if wait_elapsed is not None:
        result['wait_elapsed'] = round(wait_elapsed, 3)

    if p['max_lag_bytes'] is not None:
        if info['role'] == 'primary':
            entries = primary_lag_entries(info, p['wait_for'])
        else:
            entries = standby_lag_entries(info)
        result['lagging'] = [e for e in entries if over_limit(e, p['max_lag_bytes'])]
        if result['lagging']:
            module.fail_json(msg=lag_message(info, entries, p['max_lag_bytes']), **result)
    return result


def main():
    argument_spec = pgha_argument_spec()
    argument_spec.update(
        wait_for_lsn=dict(type='str'),
        wait_for=dict(type='list', elements='str', default=[]),
        wait_for_mode=dict(type='str', choices=['replay', 'flush'], default='replay'),
        timeout=dict(type='float', default=60),
        poll_interval=dict(type='float', default=0.5),
        max_lag_bytes=dict(type='int'),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    if p['timeout'] < 0 or p['poll_interval'] <= 0:
        module.fail_json(msg='timeout must be >= 0 and poll_interval > 0 (got %s and %s).'
                         % (p['timeout'], p['poll_interval']))
    if p['max_lag_bytes'] is not None and p['max_lag_bytes'] < 0:
        module.fail_json(msg='max_lag_bytes must be >= 0 (got %s).' % p['max_lag_bytes'])

    conn, cursor = connect(module, application_name='pgha.cluster.pg_replication_info')
    try:
        result = run(module, cursor, conn.server_version)
    except DatabaseError as e:
        module.fail_json(msg='PostgreSQL error at %s: %s' % (describe_target(module.params), error_text(e)))
    finally:
        conn.close()
    module.exit_json(**result)


if __name__ == '__main__':
    main()
