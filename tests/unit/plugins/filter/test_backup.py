"""The backup filters: schedules, the repository table and restore.yml's decisions."""

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.pgha.cluster.plugins.filter.backup import (
    FilterModule,
    backup_cron_jobs,
    backup_table,
    backup_timers,
    parse_time,
    restore_plan,
)

WRAPPER = '/usr/local/bin/pgha-backup'
SCHEDULE = {'full': '0 1 * * 0', 'diff': '0 1 * * 1-6', 'incr': '', 'dump': '30 2 * * *'}


def backup(label, kind, start, stop, lsn_start='0/2000028', lsn_stop='0/2000100'):
    return {'label': label, 'type': kind, 'timestamp': {'start': start, 'stop': stop},
            'lsn': {'start': lsn_start, 'stop': lsn_stop},
            'archive': {'start': '000000010000000000000002', 'stop': '000000010000000000000002'},
            'info': {'size': 31000000, 'repository': {'delta': 6000000}}}


# 2026-11-25 10:00:00 UTC = 1795600800
T0 = 1795600800
INFO = [{'name': 'main', 'status': {'code': 0, 'message': 'ok'}, 'backup': [
    backup('20261125-100000F', 'full', T0, T0 + 10, '0/2000028', '0/2000100'),
    backup('20261125-100000F_20261125-110000D', 'diff', T0 + 3600, T0 + 3605, '0/5000028', '0/5000100'),
    backup('20261125-100000F_20261125-120000I', 'incr', T0 + 7200, T0 + 7202, '0/9000028', '0/9000100'),
]}]


def node(name, role='standby', reachable=True, fenced=False):
    return {'name': name, 'reachable': reachable, 'running': role in ('primary', 'standby'), 'fenced': fenced,
            'role': role, 'timeline': 1, 'lsn': '0/9000000', 'replay_lsn': '0/9000000', 'receiver': None,
            'upstream': None, 'error': None if reachable else 'unreachable'}


NODES = [node('db1', 'primary'), node('db2'), node('db3')]


def test_filters_are_exported():
    assert sorted(FilterModule().filters()) == ['backup_cron_jobs', 'backup_table', 'backup_timers', 'restore_plan']


def test_cron_jobs_for_a_schedule():
    jobs = backup_cron_jobs(SCHEDULE, WRAPPER, 'postgres', 'pgha_backup', ['app'], 30)
    assert [j['name'] for j in jobs] == ['pgha-backup-full', 'pgha-backup-diff', 'pgha-dump', 'pgha-cron-history-purge']
    assert jobs[0] == {'name': 'pgha-backup-full', 'schedule': '0 1 * * 0', 'database': 'postgres',
                       'username': 'pgha_backup', 'command': "COPY (SELECT 1) TO PROGRAM '%s full'" % WRAPPER}
    assert jobs[-1]['username'] == 'postgres' and "interval '30 days'" in jobs[-1]['command']


def test_no_dump_job_without_databases_and_no_purge_when_disabled():
    jobs = backup_cron_jobs(SCHEDULE, WRAPPER, 'postgres', 'pgha_backup', [], 0)
    assert [j['name'] for j in jobs] == ['pgha-backup-full', 'pgha-backup-diff']
    assert backup_cron_jobs({}, WRAPPER, 'postgres', 'r') == []


def test_timers():
    assert backup_timers(SCHEDULE, ['app']) == {'full': 'Sun *-*-* 01:00:00', 'diff': 'Mon..Sat *-*-* 01:00:00',
                                                'dump': '*-*-* 02:30:00'}
    assert backup_timers(SCHEDULE, []) == {'full': 'Sun *-*-* 01:00:00', 'diff': 'Mon..Sat *-*-* 01:00:00'}
    with pytest.raises(AnsibleFilterError):
        backup_timers({'full': '0 1 * *'})


def test_backup_table():
    lines = backup_table(INFO)
    assert lines[0].split() == ['backup', 'type', 'started', 'finished', 'lsn', 'size', 'stored']
    assert '20261125-100000F' in lines[1] and 'full' in lines[1] and '2026-11-25 10:00:10+00' in lines[1]
    assert '0/2000028..0/2000100' in lines[1] and '29.6 MiB' in lines[1] and '5.7 MiB' in lines[1]
    assert len(lines) == 4
    assert backup_table(None) == ['(no backup in the repository)']
    assert backup_table([{'name': 'main', 'backup': []}]) == ['(no backup in the repository)']


@pytest.mark.parametrize('text, normalized, epoch, zone', [
    ('2026-11-25 10:00:00', '2026-11-25 10:00:00+00', T0, False),
    ('2026-11-25T10:00:00Z', '2026-11-25 10:00:00+00', T0, True),
    ('2026-11-25 11:00:00+01', '2026-11-25 11:00:00+01', T0, True),
    ('2026-11-25 09:30:00-00:30', '2026-11-25 09:30:00-00:30', T0, True),
    ('2026-11-25 10:00:00.250000+00', '2026-11-25 10:00:00.250000+00', T0 + 0.25, True),
])
def test_parse_time(text, normalized, epoch, zone):
    assert parse_time(text) == (normalized, epoch, zone)


@pytest.mark.parametrize('text', ['yesterday', '2026-13-01 00:00:00', '2026-02-30 00:00:00', '2026-11-25'])
def test_parse_time_rejects(text):
    assert parse_time(text) is None


def test_latest_restores_the_running_primary_from_the_newest_backup():
    plan = restore_plan(NODES, INFO)
    assert plan['action'] == 'restore'
    assert plan['host'] == 'db1' and plan['replicas'] == ['db2', 'db3'] and plan['primary_running'] == 'db1'
    assert plan['backup']['label'] == '20261125-100000F_20261125-120000I'
    assert plan['args'] == ['--stanza=main', '--delta', '--set=20261125-100000F_20261125-120000I', '--type=default']
    assert 'latest' in plan['target_words']


def test_time_target_picks_the_newest_backup_that_ended_before_it():
    plan = restore_plan(NODES, INFO, 'time', '2026-11-25 11:30:00+00')
    assert plan['action'] == 'restore'
    assert plan['backup']['label'] == '20261125-100000F_20261125-110000D'
    assert plan['args'] == ['--stanza=main', '--delta', '--set=20261125-100000F_20261125-110000D', '--type=time',
                            '--target=2026-11-25 11:30:00+00', '--target-action=promote']
    # a zone makes a difference: 12:30+01 is 11:30 UTC
    assert restore_plan(NODES, INFO, 'time', '2026-11-25 12:30:00+01')['backup']['label'].endswith('110000D')
    # no zone: UTC, said so
    plan = restore_plan(NODES, INFO, 'time', '2026-11-25 12:30:00', exclusive=True)
    assert plan['backup']['label'].endswith('120000I')
    assert 'read as UTC' in plan['target_words'] and '--target-exclusive' in plan['args']


def test_lsn_target_picks_by_position():
    plan = restore_plan(NODES, INFO, 'lsn', '0/6000000')
    assert plan['backup']['label'].endswith('110000D') and '--target=0/6000000' in plan['args']
    plan = restore_plan(NODES, INFO, 'lsn', '0/1000000')
    assert plan['action'] == 'refuse' and plan['override'] == 'restore_target'


def test_name_xid_immediate_and_timeline():
    plan = restore_plan(NODES, INFO, 'name', 'before_migration')
    assert '--type=name' in plan['args'] and '--target=before_migration' in plan['args']
    plan = restore_plan(NODES, INFO, 'xid', '7421', timeline='2')
    assert plan['args'][-3:] == ['--target=7421', '--target-action=promote', '--target-timeline=2']
    plan = restore_plan(NODES, INFO, 'immediate')
    assert plan['args'][-2:] == ['--type=immediate', '--target-action=promote']


@pytest.mark.parametrize('kwargs, override, words', [
    ({'restore_type': 'yesterday'}, 'restore_type', 'not one of'),
    ({'restore_type': 'time'}, 'restore_target', 'needs restore_target'),
    ({'restore_type': 'latest', 'target': 'x'}, 'restore_type', 'ignores it'),
    ({'restore_type': 'time', 'target': 'noon'}, 'restore_target', 'is not a time'),
    ({'restore_type': 'time', 'target': '2026-11-25 09:00:00+00'}, 'restore_target', 'No backup finished before'),
    ({'restore_type': 'lsn', 'target': 'abc'}, 'restore_target', 'not a WAL position'),
    ({'restore_type': 'xid', 'target': 'abc'}, 'restore_target', 'not a transaction id'),
    ({'restore_type': 'name', 'target': 'x' * 64}, 'restore_target', 'longer than'),
    ({'backup_set': 'nope'}, 'restore_set', 'is not a backup'),
    ({'restore_type': 'time', 'target': '2026-11-25 10:30:00+00', 'backup_set': '20261125-100000F_20261125-110000D'},
     'restore_set', 'after the target'),
    ({'host': 'db9'}, 'restore_host', 'not a cluster member'),
    ({'timeline': 'newest'}, 'restore_timeline', 'timeline number'),
])
def test_refusals_name_the_option(kwargs, override, words):
    plan = restore_plan(NODES, INFO, **kwargs)
    assert plan['action'] == 'refuse' and plan['override'] == override
    assert words in plan['reason']


def test_refusals_about_the_repository():
    assert 'did not answer' in restore_plan(NODES, None)['reason']
    assert 'holds no backup' in restore_plan(NODES, [{'name': 'main', 'status': {'code': 2, 'message': 'no valid backups'},
                                                      'backup': []}])['reason']
    assert 'knows no stanza' in restore_plan(NODES, [])['reason']


def test_refusals_about_the_cluster():
    split = [node('db1', 'primary'), node('db2', 'primary'), node('db3')]
    assert 'split brain' in restore_plan(split, INFO)['reason']
    down = [node('db1', 'primary', reachable=False), node('db2'), node('db3')]
    # the unreachable old primary is not running: the inventory's primary is chosen, and it cannot be reached
    plan = restore_plan(down, INFO, inventory_primary='db1')
    assert plan['action'] == 'refuse' and plan['override'] == 'restore_host' and 'cannot be reached' in plan['reason']
    plan = restore_plan(down, INFO, host='db2')
    assert plan['action'] == 'restore' and plan['replicas'] == ['db3'] and plan['unreachable'] == ['db1']
    fenced = [node('db1', 'down', fenced=True), node('db2', 'primary'), node('db3')]
    assert restore_plan(fenced, INFO)['host'] == 'db2'
    plan = restore_plan(fenced, INFO, host='db1')
    assert plan['action'] == 'refuse' and 'fenced' in plan['reason']
    nobody = [node('db1', 'down'), node('db2', 'down')]
    assert restore_plan(nobody, INFO)['override'] == 'restore_host'
    assert restore_plan(nobody, INFO, inventory_primary='db1')['host'] == 'db1'


def test_not_a_survey():
    with pytest.raises(AnsibleFilterError):
        restore_plan([], INFO)
