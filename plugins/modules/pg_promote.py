#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_promote
short_description: Promote a PostgreSQL standby to primary
version_added: 0.1.0
description:
  - Promotes the standby it connects to by calling the function C(pg_promote) with C(wait) true and
    C(wait_seconds) set to O(wait_seconds), so that it returns once the server accepts writes.
  - Idempotent. On a server that is already a primary (not in recovery) it changes nothing and reports
    C(changed=false).
  - Reports the timeline and WAL positions before and after, so a runbook can log what happened and check
    that the timeline moved on.
  - In check mode it connects, reads the state and reports what it would do (C(changed=true) on a standby)
    without promoting.
options:
  wait_seconds:
    description:
      - How many seconds C(pg_promote) waits for the promotion to complete.
      - When the wait ends first the module fails. The promote request has been sent by then and the server
        may still complete the promotion later.
    type: int
    default: 60
  wait_for_replay_lsn:
    description:
      - Promote only once the standby has replayed WAL up to this LSN (for example the shutdown checkpoint of a
        primary that was stopped cleanly, so that a switchover loses nothing).
      - Waits at most O(replay_timeout) seconds, polling every 50 ms, then fails without promoting.
      - Ignored on a server that already is a primary.
    type: str
  replay_timeout:
    description: Seconds to wait for O(wait_for_replay_lsn).
    type: float
    default: 60
  login_user:
    description:
      - Role to connect as. It must be a superuser or have been granted EXECUTE on C(pg_promote).
    type: str
    default: postgres
attributes:
  check_mode:
    support: full
    description: Reports whether the server would be promoted and changes nothing.
  diff_mode:
    support: none
    description: No diff is produced.
requirements:
  - psycopg2 (Debian package C(python3-psycopg2)) on the managed host
notes:
  - "The default connection (Unix socket, user C(postgres), peer authentication) works with
    C(become: true) and C(become_user: postgres) on the database host."
  - Promotion writes an end-of-recovery record and requests a checkpoint, which is spread over minutes. Until it
    completes, C(pg_control_checkpoint) and the control file still show the old timeline; tools that read the
    control file of the new primary, such as C(pg_rewind) of the old primary, may then report
    C(no rewind required). Run C(CHECKPOINT) on the new primary first. This module reads the timeline from
    the name of the current WAL file, which is exact from the moment of promotion.
  - On a standby the timeline before promotion is the timeline its WAL receiver streams on; without a
    streaming receiver it is the larger of the control file's checkpoint and minimum recovery point timelines.
seealso:
  - module: pgha.cluster.pg_replication_info
  - name: pg_promote() in the PostgreSQL documentation
    description: The recovery control functions.
    link: https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-RECOVERY-CONTROL
extends_documentation_fragment:
  - pgha.cluster.connection
author:
  - pgha.cluster developers (!UNKNOWN)
'''

EXAMPLES = r'''
- name: Promote the chosen replica
  pgha.cluster.pg_promote:
    wait_seconds: 120
  become: true
  become_user: postgres
  register: promotion

- name: Show what happened
  ansible.builtin.debug:
    msg: "{{ promotion.msg }} (timeline {{ promotion.timeline_before }} -> {{ promotion.timeline_after }})"

- name: Make the control file show the new timeline at once (before pg_rewind of the old primary)
  community.postgresql.postgresql_query:
    query: CHECKPOINT
  become: true
  become_user: postgres
  when: promotion is changed

- name: Switchover - promote once the old primary's shutdown checkpoint is replayed
  pgha.cluster.pg_promote:
    wait_for_replay_lsn: "{{ old_primary_checkpoint_lsn }}"
    replay_timeout: 60
  become: true
  become_user: postgres

- name: Promote through TCP as a role granted EXECUTE on pg_promote
  pgha.cluster.pg_promote:
    login_host: 10.0.0.12
    login_user: failover
    login_password: "{{ vault_failover_password }}"
'''

RETURN = r'''
was_in_recovery:
  description: Whether the server was a standby (in recovery) when the module connected.
  returned: always
  type: bool
  sample: true
timeline_before:
  description:
    - Timeline of the server before promotion. On a standby, the timeline its WAL receiver streams on, else
      the larger of the control file's checkpoint and minimum recovery point timelines.
  returned: always
  type: int
  sample: 1
timeline_after:
  description:
    - Timeline after promotion, read from the name of the current WAL file.
    - The same as RV(timeline_before) on a server that already was a primary; null in check mode.
  returned: always
  type: int
  sample: 2
receive_lsn_before:
  description:
    - C(pg_last_wal_receive_lsn) before promotion; null when no WAL was streamed since the server started.
  returned: always
  type: str
  sample: 0/367CEA0
replay_lsn_before:
  description: C(pg_last_wal_replay_lsn) before promotion; null on a primary.
  returned: always
  type: str
  sample: 0/367CEA0
current_lsn_after:
  description:
    - C(pg_current_wal_lsn) after promotion (or now, on a server that already was a primary); null in check mode.
  returned: always
  type: str
  sample: 0/367CED0
replay_wait:
  description: Seconds spent waiting for O(wait_for_replay_lsn); 0.0 without it.
  returned: always
  type: float
  sample: 0.05
elapsed:
  description: Seconds the C(pg_promote) call took; 0.0 when nothing was promoted.
  returned: always
  type: float
  sample: 0.103
msg:
  description: What the module did or would do, in one sentence.
  returned: always
  type: str
  sample: "Promoted: timeline 1 -> 2 in 0.10s; the server accepts writes at LSN 0/367CED0."
'''

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pgha.cluster.plugins.module_utils.pgha_pg import (
    DatabaseError,
    LsnError,
    STANDBY_STATE_SQL,
    WAL_RECEIVER_SQL,
    connect,
    describe_target,
    error_text,
    lsn_to_int,
    normalize_lsn,
    pgha_argument_spec,
    primary_timeline,
    query_one,
    sqlstate,
    standby_timeline,
)

PRIVILEGE_SQL = ("SELECT has_function_privilege('pg_catalog.pg_promote(boolean, integer)', 'EXECUTE') "
                 "AS can_promote, current_user AS who")
PROMOTE_SQL = 'SELECT pg_promote(wait => true, wait_seconds => %(wait_seconds)s) AS promoted'
IN_RECOVERY_SQL = 'SELECT pg_is_in_recovery() AS in_recovery'
REPLAY_SQL = 'SELECT pg_last_wal_replay_lsn()::text AS replay_lsn'
REPLAY_POLL = 0.05

INSUFFICIENT_PRIVILEGE = '42501'
NOT_IN_PREREQUISITE_STATE = '55000'


def privilege_message(target, who):
    return ('Cannot promote at %s: role "%s" may not execute pg_promote(). It must be a superuser or have '
            'been granted EXECUTE on it (GRANT EXECUTE ON FUNCTION pg_catalog.pg_promote(boolean, integer) '
            'TO "%s"). Nothing was changed.' % (target, who, who))


def timeout_message(wait_seconds):
    return ('pg_promote() did not complete within wait_seconds=%s: the server was still in recovery when the '
            'wait ended. The promote request was sent and the server may still complete promotion; check with '
            '"SELECT pg_is_in_recovery()" (false once promoted) and read the server log. Raise wait_seconds '
            'if promotion is just slow.' % wait_seconds)


def replay_timeout_message(target, replayed, timeout):
    return ('Not promoted: this standby did not replay up to %s within replay_timeout=%ss (replayed %s). '
            'Nothing was changed; is its WAL receiver streaming from the old primary?'
            % (target, timeout, replayed or 'nothing'))


def wait_for_replay(module, cursor, target):
    """Wait until pg_last_wal_replay_lsn() >= target; return (seconds waited, replay LSN) or fail."""
    goal = lsn_to_int(target)
    timeout = module.params['replay_timeout']
    started = time.monotonic()
    while True:
        replayed = query_one(cursor, REPLAY_SQL)['replay_lsn']
        waited = time.monotonic() - started
        if replayed is not None and lsn_to_int(replayed) >= goal:
            return waited, replayed
        if waited >= timeout:
            module.fail_json(msg=replay_timeout_message(target, replayed, timeout), replay_lsn=replayed,
                             replay_wait=round(waited, 3), changed=False)
        time.sleep(min(REPLAY_POLL, max(0.0, timeout - waited)))


def read_state(cursor):
    """The server's state before anything is done."""
    state = query_one(cursor, STANDBY_STATE_SQL)
    result = dict(
        was_in_recovery=bool(state['in_recovery']),
        receive_lsn_before=state['receive_lsn'],
        replay_lsn_before=state['replay_lsn'],
        timeline_before=None,
        current_lsn=None,
    )
    if result['was_in_recovery']:
        receiver = query_one(cursor, WAL_RECEIVER_SQL)
        result['timeline_before'] = standby_timeline(state, receiver)[0]
    else:
        result['timeline_before'], result['current_lsn'] = primary_timeline(cursor)
    return result


def run(module, cursor):
    """Do (or predict) the promotion; return the module result."""
    wait_seconds = module.params['wait_seconds']
    before = read_state(cursor)
    result = dict(
        changed=False,
        was_in_recovery=before['was_in_recovery'],
        timeline_before=before['timeline_before'],
        timeline_after=None,
        receive_lsn_before=before['receive_lsn_before'],
        replay_lsn_before=before['replay_lsn_before'],
        current_lsn_after=None,
        replay_wait=0.0,
        elapsed=0.0,
        msg='',
    )

    if not before['was_in_recovery']:
        result.update(
            timeline_after=before['timeline_before'],
            current_lsn_after=before['current_lsn'],
            msg='Already a primary (not in recovery) on timeline %s at LSN %s: nothing to do.'
                % (before['timeline_before'], before['current_lsn']),
        )
        return result

    privilege = query_one(cursor, PRIVILEGE_SQL)
    if not privilege['can_promote']:
        module.fail_json(**dict(result, msg=privilege_message(describe_target(module.params), privilege['who'])))

    target = module.params['wait_for_replay_lsn']
    if target and not module.check_mode:
        waited, replayed = wait_for_replay(module, cursor, target)
        result.update(replay_wait=round(waited, 3), replay_lsn_before=replayed)

    if module.check_mode:
        result.update(
            changed=True,
            msg='Would promote this standby (timeline %s, receive LSN %s, replay LSN %s); check mode changed nothing.'
                % (before['timeline_before'], before['receive_lsn_before'], before['replay_lsn_before']),
        )
        return result

    started = time.monotonic()
    try:
        promoted = query_one(cursor, PROMOTE_SQL, {'wait_seconds': wait_seconds})['promoted']
    except DatabaseError as e:
        result['elapsed'] = round(time.monotonic() - started, 3)
        code = sqlstate(e)
        if code == INSUFFICIENT_PRIVILEGE:
            module.fail_json(**dict(result, msg=privilege_message(describe_target(module.params), privilege['who'])))
        if code == NOT_IN_PREREQUISITE_STATE and not query_one(cursor, IN_RECOVERY_SQL)['in_recovery']:
            # Promoted by someone else between our first look and pg_promote().
            timeline, current = primary_timeline(cursor)
            result.update(timeline_after=timeline, current_lsn_after=current,
                          msg='The server left recovery before pg_promote() ran (promoted by someone else); '
                              'it is a primary on timeline %s at LSN %s: nothing to do.' % (timeline, current))
            return result
        module.fail_json(**dict(result, msg='pg_promote() failed at %s: %s'
                                % (describe_target(module.params), error_text(e))))
    result['elapsed'] = round(time.monotonic() - started, 3)

    if not promoted and query_one(cursor, IN_RECOVERY_SQL)['in_recovery']:
        module.fail_json(**dict(result, msg=timeout_message(wait_seconds)))

    timeline, current = primary_timeline(cursor)
    result.update(
        changed=True,
        timeline_after=timeline,
        current_lsn_after=current,
        msg='Promoted: timeline %s -> %s in %.2fs; the server accepts writes at LSN %s.'
            % (before['timeline_before'], timeline, result['elapsed'], current),
    )
    return result


def main():
    argument_spec = pgha_argument_spec()
    argument_spec.update(
        wait_seconds=dict(type='int', default=60),
        wait_for_replay_lsn=dict(type='str'),
        replay_timeout=dict(type='float', default=60),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if module.params['wait_seconds'] < 1:
        module.fail_json(msg='wait_seconds must be at least 1 (got %s).' % module.params['wait_seconds'])
    if module.params['replay_timeout'] < 0:
        module.fail_json(msg='replay_timeout must be >= 0 (got %s).' % module.params['replay_timeout'])
    if module.params['wait_for_replay_lsn'] is not None:
        try:
            module.params['wait_for_replay_lsn'] = normalize_lsn(module.params['wait_for_replay_lsn'])
        except LsnError as e:
            module.fail_json(msg='wait_for_replay_lsn: %s' % e)

    conn, cursor = connect(module, application_name='pgha.cluster.pg_promote')
    try:
        result = run(module, cursor)
    except DatabaseError as e:
        module.fail_json(msg='PostgreSQL error at %s: %s' % (describe_target(module.params), error_text(e)))
    finally:
        conn.close()
    module.exit_json(**result)


if __name__ == '__main__':
    main()
