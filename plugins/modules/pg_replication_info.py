#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_replication_info
short_description: Report a PostgreSQL server's physical and logical replication state, optionally wait or gate on lag
version_added: 0.1.0
description:
  - Read-only. Tells whether the server is a primary or a standby (RV(role)) and reports its WAL positions
    and timeline.
  - On a primary it lists every connected standby (C(pg_stat_replication)) with its positions and lag.
  - On any server it lists every replication slot (C(pg_replication_slots)), physical and logical, with the
    WAL it retains, and (RV(logical_slots)) the logical ones again.
  - On a standby it reports the received and replayed positions, the last replayed transaction's time
    and the WAL receiver (its status and upstream).
  - On any server it lists the logical replication subscriptions (C(pg_subscription) with the apply worker of
    C(pg_stat_subscription)) of the connected database, or of each of O(subscription_databases).
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
      - Also limits the O(max_lag_bytes) check on a primary to these standbys (and to replication slots,
        physical or logical, and subscriptions of these names).
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
        standby).
      - On a primary, also checks each logical slot, named C(logical slot <name>) in the table, by its
        RV(slots[].lag_bytes) (WAL not yet confirmed by its subscriber); an invalidated logical slot
        counts as failing.
      - On a primary with subscriptions (a subscriber), also fails for each subscription whose RV(subscriptions[].state)
        is not V(streaming) or whose tables are not all ready, named C(subscription <name> (<database>)) in
        the table with the reason. Its lag cannot be measured on the subscriber; gate on the publisher.
      - With O(wait_for), only these names (standbys, slots, subscriptions), and a name with none counts as
        failing.
      - On a standby, checks RV(receive_replay_lag_bytes), the WAL received but not yet replayed. That says
        nothing about how far the standby is behind its primary; check that on the primary. Slots and
        subscriptions are not checked on a standby (no apply worker runs there).
      - A lag that cannot be measured (a NULL position) counts as failing.
    type: int
  subscription_databases:
    description:
      - The databases whose subscriptions RV(subscriptions) lists. The module connects to each in turn (with the
        same login options; the connection to O(login_db) is reused).
      - Empty, only the subscriptions of O(login_db). A subscription belongs to one database and its tables'
        state (C(pg_subscription_rel)) is only visible from there.
    type: list
    elements: str
    default: []
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
  - The subscriptions are read without C(subconninfo) (which needs superuser), so any role may list them.
  - Lag in bytes on a primary is measured against C(pg_current_wal_lsn), read after the standbys and
    slots, so it is never negative. On a standby a slot's retained WAL is measured against the greater of
    C(pg_last_wal_receive_lsn) and C(pg_last_wal_replay_lsn), read after the slots.
  - The slot columns C(failover), C(synced) and C(invalidation_reason) and the subscription column C(subfailover)
    exist from PostgreSQL 17; before, the module reports false, false, and V(wal_removed) for a slot whose
    C(wal_status) is C(lost) (else null).
  - The timeline of a primary is read from the name of its current WAL file, which is exact from the moment
    of promotion (C(pg_control_checkpoint) lags until the next checkpoint). On a standby it is the timeline
    its WAL receiver streams on; without a streaming receiver, the larger of the control file's checkpoint
    and minimum recovery point timelines (RV(timeline_source) tells which).
seealso:
  - module: pgha.cluster.pg_promote
  - name: pg_stat_replication in the PostgreSQL documentation
    description: The view of the connected standbys.
    link: https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-PG-STAT-REPLICATION-VIEW
  - name: pg_replication_slots in the PostgreSQL documentation
    description: The view of the replication slots, physical and logical.
    link: https://www.postgresql.org/docs/current/view-pg-replication-slots.html
  - name: pg_stat_subscription in the PostgreSQL documentation
    description: The view of the subscriptions' workers.
    link: https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-PG-STAT-SUBSCRIPTION
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

- name: On the publisher, fail unless the logical slot cdc is within 16MB of the current position
  pgha.cluster.pg_replication_info:
    max_lag_bytes: 16777216
    wait_for: [cdc]
  become: true
  become_user: postgres

- name: On the subscriber, list the subscriptions of the databases app and crm (fails when one is not streaming)
  pgha.cluster.pg_replication_info:
    subscription_databases: [app, crm]
    max_lag_bytes: 0
  become: true
  become_user: postgres
  register: subscriber

- name: Show them
  ansible.builtin.debug:
    msg: "{{ subscriber.subscriptions | map(attribute='name') | zip(subscriber.subscriptions | map(attribute='state')) }}"
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
  description:
    - One entry per replication slot (C(pg_replication_slots)), physical and logical, ordered by name.
    - On a standby (slots of a cascading standby, logical slots on a standby, slots synchronized from the
      primary), RV(slots[].retained_bytes) is measured against the standby's received or replayed position.
  returned: always
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
      description:
        - RV(current_lsn) minus RV(slots[].restart_lsn), the WAL the slot holds back; null without restart_lsn.
        - On a standby, the greater of RV(receive_lsn) and RV(replay_lsn) (read after the slots) minus
          RV(slots[].restart_lsn).
      type: int
      sample: 328
    database:
      description: The database of a logical slot; null for a physical slot.
      type: str
      sample: app
    plugin:
      description: The output plugin of a logical slot (C(pgoutput) for a subscription); null for a physical slot.
      type: str
      sample: pgoutput
    failover:
      description: Whether the logical slot is synchronized to standbys (PostgreSQL 17); false before 17.
      type: bool
      sample: false
    synced:
      description: Whether the slot on a standby was synchronized from the primary (PostgreSQL 17); false before 17.
      type: bool
      sample: false
    confirmed_flush_lsn:
      description: Position up to which the logical slot's consumer confirmed the data; null for a physical slot.
      type: str
      sample: 0/5000148
    invalidation_reason:
      description:
        - Why the slot was invalidated and can no longer be used (C(wal_removed), C(rows_removed),
          C(wal_level_insufficient), ...); null while it is valid.
        - Before PostgreSQL 17, V(wal_removed) when RV(slots[].wal_status) is C(lost), else null.
      type: str
      sample: null
    lag_bytes:
      description:
        - For a logical slot on a primary, RV(current_lsn) minus RV(slots[].confirmed_flush_lsn), the WAL its
          subscriber has not confirmed yet; the lag of logical replication. Null for a physical slot, on a
          standby, and without confirmed_flush_lsn.
      type: int
      sample: 0
logical_slots:
  description: The entries of RV(slots) whose RV(slots[].slot_type) is C(logical), with the same keys.
  returned: always
  type: list
  elements: dict
  sample:
    - {slot_name: cdc, slot_type: logical, database: app, plugin: pgoutput, active: true, restart_lsn: 0/5000100,
       confirmed_flush_lsn: 0/5000148, wal_status: reserved, safe_wal_size: null, retained_bytes: 72,
       failover: false, synced: false, invalidation_reason: null, lag_bytes: 0}
subscriptions:
  description:
    - One entry per subscription (C(pg_subscription) with its apply worker in C(pg_stat_subscription)) of the
      connected database, or of each database in O(subscription_databases) (in that order), ordered by name.
    - On a standby the subscriptions are the primary's, replicated; no apply worker runs there, so an enabled
      one shows V(down).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The subscription's name.
      type: str
      sample: app_sub
    database:
      description: The database the subscription belongs to.
      type: str
      sample: app
    enabled:
      description: C(subenabled).
      type: bool
      sample: true
    publications:
      description: The publications it subscribes to.
      type: list
      elements: str
      sample: [app_pub]
    slot_name:
      description: Its slot on the publisher; null with C(slot_name = NONE).
      type: str
      sample: app_sub
    failover:
      description: C(subfailover), whether its slot on the publisher is synchronized to the publisher's standbys
        (PostgreSQL 17); false before 17.
      type: bool
      sample: false
    worker_running:
      description: Whether its apply worker runs.
      type: bool
      sample: true
    received_lsn:
      description: Last position the apply worker received; null without a worker.
      type: str
      sample: 0/5000148
    latest_end_lsn:
      description: Last position reported back to the publisher; null without a worker.
      type: str
      sample: 0/5000148
    last_msg_receipt_time:
      description: When the last message from the publisher arrived, in ISO 8601; null without one.
      type: str
      sample: "2026-11-25T12:21:57.656734+00:00"
    state:
      description: V(streaming) (enabled and its apply worker runs), V(disabled) (not enabled) or V(down)
        (enabled, no apply worker).
      type: str
      sample: streaming
    tables_total:
      description: Its tables (C(pg_subscription_rel) rows).
      type: int
      sample: 12
    tables_ready:
      description: Those in the state ready (C(srsubstate) C(r)); fewer while the initial copy runs.
      type: int
      sample: 12
    lag_bytes:
      description:
        - Always null. The lag of a subscription cannot be measured on the subscriber; on the publisher it is the
          RV(slots[].lag_bytes) of the subscription's slot (its RV(slots[].retained_bytes) is the WAL it
          holds back).
      type: int
      sample: null
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
    - A logical slot's entry is named C(logical slot <name>), its position is its C(confirmed_flush_lsn).
    - A subscription's entry is named C(subscription <name> (<database>)), has C(lag_bytes) null, and one more
      key, C(reason), why it fails (not streaming, tables not ready).
  returned: when O(max_lag_bytes) is set
  type: list
  elements: dict
  sample:
    - {name: pg2, state: disconnected (slot inactive), lag_bytes: 16777560, position: restart_lsn 0/3000000}
    - {name: logical slot cdc, state: inactive, lag_bytes: 4096, position: confirmed_flush_lsn 0/5000000}
    - {name: subscription app_sub (app), state: down, lag_bytes: null, position: "received_lsn None, tables ready 3/3",
       reason: enabled but no apply worker runs}
'''

import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native
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
    open_connection,
    pgha_argument_spec,
    query_all,
    query_one,
)
from ansible_collections.pgha.cluster.plugins.module_utils.pgha_replication import (
    STANDBY_POSITIONS_SQL,
    STANDBYS_SQL,
    gather,
    read_subscriptions,
)

APPLICATION_NAME = 'pgha.cluster.pg_replication_info'
LAG_HEADERS = ('name', 'state', 'lag_bytes', 'position', 'verdict')


# --------------------------------------------------------------------------
# Result shaping (pure)
# --------------------------------------------------------------------------


def logical_slot_entry(slot):
    """A logical slot in the max_lag_bytes check: its lag_bytes; an invalidated slot's lag is unknown."""
    if slot['invalidation_reason']:
        state, lag = 'invalidated (%s)' % slot['invalidation_reason'], None
    else:
        state, lag = 'active' if slot['active'] else 'inactive', slot['lag_bytes']
    return dict(name='logical slot %s' % slot['slot_name'], state=state, lag_bytes=lag,
                position='confirmed_flush_lsn %s' % slot['confirmed_flush_lsn'])


def subscription_entry(sub):
    """A subscription in the max_lag_bytes check: judged by its state and its tables (its lag cannot be
    measured on the subscriber); reason says why it fails, None when it does not."""
    problems = []
    if sub['state'] == 'disabled':
        problems.append('subscription disabled')
    elif sub['state'] != 'streaming':
        problems.append('enabled but no apply worker runs')
    if sub['tables_ready'] < sub['tables_total']:
        problems.append('%d of %d tables not ready' % (sub['tables_total'] - sub['tables_ready'], sub['tables_total']))
    position = 'received_lsn %s, tables ready %d/%d' % (sub['received_lsn'], sub['tables_ready'], sub['tables_total'])
    return dict(name='subscription %s (%s)' % (sub['name'], sub['database']), state=sub['state'], lag_bytes=None,
                position=position, reason='; '.join(problems) or None)


def primary_lag_entries(info, names=None):
    """What max_lag_bytes checks on a primary: connected standbys, unused physical slots, logical slots
    and subscriptions."""
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
    for slot in info.get('slots', []):
        if slot['slot_type'] != 'logical' or (names and slot['slot_name'] not in names):
            continue
        seen.add(slot['slot_name'])
        entries.append(logical_slot_entry(slot))
    for sub in info.get('subscriptions', []):
        if names and sub['name'] not in names:
            continue
        seen.add(sub['name'])
        entries.append(subscription_entry(sub))
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
    if 'reason' in entry:  # a subscription: judged by its state, not by a lag
        return entry['reason'] is not None
    return entry['lag_bytes'] is None or entry['lag_bytes'] > max_lag_bytes


def lag_row(entry, max_lag_bytes):
    """One line of lag_message's table."""
    if 'reason' in entry:
        return (entry['name'], entry['state'], 'n/a', entry['position'],
                'FAIL: %s' % entry['reason'] if entry['reason'] else 'ok')
    return (entry['name'], entry['state'], 'unknown' if entry['lag_bytes'] is None else entry['lag_bytes'],
            entry['position'], 'OVER' if over_limit(entry, max_lag_bytes) else 'ok')


def lag_message(info, entries, max_lag_bytes):
    """The failure message of max_lag_bytes: a sentence and a table of every entry checked."""
    rows = [lag_row(e, max_lag_bytes) for e in entries]
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


def connect_database(module, dbname):
    """connect() to another database of the same server (subscription_databases)."""
    params = dict(module.params, login_db=dbname)
    try:
        return open_connection(params, application_name=APPLICATION_NAME)
    except Exception as e:  # psycopg2.Error, or a bad keyword
        module.fail_json(msg='Cannot connect to PostgreSQL at %s (subscription_databases): %s'
                         % (describe_target(params), ' '.join(to_native(e).split())))


def read_all_subscriptions(module, cursor, server_version):
    """subscriptions[]: of login_db, or of each of subscription_databases (reusing the connection to login_db)."""
    p = module.params
    databases = []
    for dbname in p['subscription_databases']:
        if dbname not in databases:
            databases.append(dbname)
    if not databases:
        return read_subscriptions(cursor, server_version)
    subscriptions = []
    for dbname in databases:
        if dbname == p['login_db']:
            subscriptions.extend(read_subscriptions(cursor, server_version))
            continue
        conn, other = connect_database(module, dbname)
        try:
            subscriptions.extend(read_subscriptions(other, server_version))
        except DatabaseError as e:
            module.fail_json(msg='PostgreSQL error at %s: %s'
                             % (describe_target(dict(p, login_db=dbname)), error_text(e)))
        finally:
            conn.close()
    return subscriptions


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

    info = gather(cursor, server_version, logical=True)
    info['subscriptions'] = read_all_subscriptions(module, cursor, server_version)
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
        subscription_databases=dict(type='list', elements='str', default=[]),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    if p['timeout'] < 0 or p['poll_interval'] <= 0:
        module.fail_json(msg='timeout must be >= 0 and poll_interval > 0 (got %s and %s).'
                         % (p['timeout'], p['poll_interval']))
    if p['max_lag_bytes'] is not None and p['max_lag_bytes'] < 0:
        module.fail_json(msg='max_lag_bytes must be >= 0 (got %s).' % p['max_lag_bytes'])

    conn, cursor = connect(module, application_name=APPLICATION_NAME)
    try:
        result = run(module, cursor, conn.server_version)
    except DatabaseError as e:
        module.fail_json(msg='PostgreSQL error at %s: %s' % (describe_target(module.params), error_text(e)))
    finally:
        conn.close()
    module.exit_json(**result)


if __name__ == '__main__':
    main()
