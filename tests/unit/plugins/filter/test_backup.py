"""The backup filters: schedules, the repository table and restore.yml's decisions."""

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.pgha.cluster.plugins.filter import backup as f
from ansible_collections.pgha.cluster.plugins.filter.backup import (
    FilterModule,
    backup_address_errors,
    backup_conf_value,
    backup_cron_jobs,
    backup_csr_errors,
    backup_name_errors,
    backup_option_errors,
    backup_path_errors,
    backup_table,
    backup_table_errors,
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
    assert sorted(FilterModule().filters()) == [
        'backup_address_errors', 'backup_conf_value', 'backup_cron_jobs', 'backup_csr_errors', 'backup_name_errors',
        'backup_option_errors', 'backup_path_errors', 'backup_schedule_errors', 'backup_size_bytes', 'backup_status', 'backup_status_line',
        'backup_table', 'backup_table_errors',
        'backup_timers', 'native_schedule_errors', 'restore_plan', 'summary_keep_minutes']


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
    # the same for PostgreSQL itself (the native engine): replay everything, on the latest timeline
    assert plan['recovery'] == {'recovery_target_timeline': 'latest'}


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
    assert plan['recovery'] == {'recovery_target_time': '2026-11-25 12:30:00+00', 'recovery_target_action': 'promote',
                                'recovery_target_inclusive': 'off', 'recovery_target_timeline': 'latest'}


def test_recovery_settings_for_the_native_engine():
    assert restore_plan(NODES, INFO, 'immediate')['recovery'] == {
        'recovery_target': 'immediate', 'recovery_target_action': 'promote'}
    plan = restore_plan(NODES, INFO, 'xid', '7421', timeline='3')
    assert plan['recovery'] == {'recovery_target_xid': '7421', 'recovery_target_action': 'promote',
                                'recovery_target_timeline': '3'}
    assert restore_plan(NODES, INFO, 'name', 'before-migration')['recovery']['recovery_target_name'] == \
        'before-migration'
    assert restore_plan(NODES, INFO, 'lsn', '0/6000000', exclusive=True)['recovery']['recovery_target_inclusive'] == 'off'


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


# --------------------------------------------------------------------------
# restore_plan refuses targets pgBackRest or PostgreSQL would choke on, before anything is stopped
# --------------------------------------------------------------------------

@pytest.mark.parametrize('restore_type, target', [
    ('name', "it's"),                     # a quote ends recovery_target_name = '...' in postgresql.auto.conf
    ('name', 'before"migration'),
    ('name', 'a\\b'),
    ('name', 'line\nbreak'),
    ('name', 'tab\there'),
    ('name', 'bell\x07'),
    ('name', 'sep\u2028arator'),
    ('name', '\u00e9' * 32),               # 64 bytes in UTF-8, 32 characters
    ('xid', '\u0661\u0662\u0663'),          # Arabic-Indic digits: str.isdigit() says yes, PostgreSQL says no
    ('xid', '1 2'),
    ('xid', '-5'),
    ('xid', '18446744073709551616'),
    ('lsn', '0/5000028\nx'),
    ('time', "2026-11-25 10:00:00+00'"),
])
def test_unsafe_targets_are_refused_naming_restore_target(restore_type, target):
    plan = restore_plan(NODES, INFO, restore_type, target)
    assert plan['action'] == 'refuse' and plan['override'] == 'restore_target', plan['reason']
    assert plan['reason'].startswith('restore_target=') and plan['args'] == []


def test_a_refused_name_says_the_allowed_form():
    reason = restore_plan(NODES, INFO, 'name', "it's")['reason']
    assert 'pg_create_restore_point()' in reason and 'no quote' in reason and 'no backslash' in reason
    assert '"it\'s"' in reason


@pytest.mark.parametrize('restore_type, target, arg', [
    ('name', 'before migration 42', '--target=before migration 42'),
    ('name', 'n' * 63, '--target=' + 'n' * 63),
    ('name', 'caf\u00e9', '--target=caf\u00e9'),
    ('xid', '7421', '--target=7421'),
    ('time', '2026-11-25 10:30:00 UTC', '--target=2026-11-25 10:30:00+00'),
])
def test_safe_targets_pass(restore_type, target, arg):
    plan = restore_plan(NODES, INFO, restore_type, target)
    assert plan['action'] == 'restore' and arg in plan['args'], plan['reason']


@pytest.mark.parametrize('timeline', ['\u0662', '0', '4294967296', '2\n'])
def test_timeline_must_be_a_plain_number(timeline):
    plan = restore_plan(NODES, INFO, timeline=timeline)
    assert plan['override'] == 'restore_timeline' or (timeline == '2\n' and plan['action'] == 'restore'), plan


# --------------------------------------------------------------------------
# Directories
# --------------------------------------------------------------------------

GOOD_PATHS = {'backup_repo_path': '/var/lib/pgbackrest', 'backup_spool_path': '/var/spool/pgbackrest',
              'backup_logical_path': '/var/lib/pgbackrest/dump', 'backup_drill_path': '/var/lib/pgbackrest-drill'}
KEEP_CLEAR = ['/var/lib/postgresql/15/main', '/etc/postgresql/15/main', '/etc/pgbackrest']


def paths(**changes):
    return backup_path_errors(dict(GOOD_PATHS, **changes), KEEP_CLEAR)


def test_the_default_paths_and_other_sane_layouts_pass():
    assert paths() == []
    assert paths(backup_repo_path='/srv/pgbackrest', backup_logical_path='/srv/dumps',
                 backup_drill_path='/srv/drill', backup_spool_path='/data/spool') == []
    # a drill directory next to the repository, named like it, is not inside it
    assert paths(backup_drill_path='/var/lib/pgbackrest2') == []
    # the dumps in a subdirectory of the repository of their own
    assert paths(backup_logical_path='/var/lib/pgbackrest/logical/sets') == []


@pytest.mark.parametrize('name', sorted(GOOD_PATHS))
@pytest.mark.parametrize('value, words', [
    ('', 'not a directory'),
    (None, 'not a directory'),
    ('var/lib/x', 'not an absolute path'),
    ('/var/lib/../../etc', 'not a plain normalised path'),
    ('/var/lib/./x', 'not a plain normalised path'),
    ('/var/lib/x/', 'not a plain normalised path'),
    ('/var//lib/x', 'not a plain normalised path'),
    ('/var/lib/x\n', 'not a plain normalised path'),
    ('/var/lib/my backups', 'not a plain normalised path'),
    ("/var/lib/it's", 'not a plain normalised path'),
    ('/var/lib/$(reboot)', 'not a plain normalised path'),
    ('/', 'is a system directory'),
    ('/etc', 'is a system directory'),
    ('/usr', 'is a system directory'),
    ('/var', 'is a system directory'),
    ('/var/lib', 'is a system directory'),
    ('/var/lib/postgresql', 'is a system directory'),
    ('/home', 'is a system directory'),
    ('/root', 'is a system directory'),
    ('/boot', 'is a system directory'),
    ('/tmp', 'is a system directory'),
    ('/opt', 'is a system directory'),
    ('/srv', 'is a system directory'),
    ('/run/pgbackrest', 'kernel or runtime file system'),
    ('/proc/x', 'kernel or runtime file system'),
    ('/var/lib/postgresql/15/main', 'which belongs to PostgreSQL'),
    ('/var/lib/postgresql/15/main/spool', 'which belongs to PostgreSQL'),
    ('/var/lib/postgresql/15', 'which belongs to PostgreSQL'),
    ('/etc/postgresql/15/main', 'which belongs to PostgreSQL'),
    ('/etc/pgbackrest/repo', 'which belongs to PostgreSQL or to the role'),
])
def test_a_bad_directory_is_refused_naming_the_variable(name, value, words):
    errors = paths(**{name: value})
    assert any(e.startswith(name + ' ') and words in e and 'Fix:' in e for e in errors), errors


@pytest.mark.parametrize('drill, other, words', [
    ('/var/lib/pgbackrest', 'backup_repo_path', 'is backup_repo_path'),
    ('/var/lib/pgbackrest/backup', 'backup_repo_path', 'lies in backup_repo_path'),
    ('/var/lib/pgbackrest/dump', 'backup_logical_path', 'is backup_logical_path'),
    ('/var/lib/pgbackrest/dump/x', 'backup_logical_path', 'lies in backup_logical_path'),
    ('/var/spool/pgbackrest', 'backup_spool_path', 'is backup_spool_path'),
])
def test_the_drill_never_overlaps_what_it_would_delete(drill, other, words):
    errors = paths(backup_drill_path=drill)
    assert any(e.startswith('backup_drill_path') and words in e and 'would delete' in e for e in errors), errors


def test_a_drill_directory_containing_the_repository_is_refused():
    errors = paths(backup_repo_path='/data/pgbackrest/repo', backup_logical_path='/data/dumps',
                   backup_drill_path='/data/pgbackrest')
    assert len(errors) == 1 and 'contains backup_repo_path' in errors[0], errors


@pytest.mark.parametrize('logical, words', [
    ('/var/lib/pgbackrest', 'is backup_repo_path'),
    ('/data', 'contains backup_repo_path'),
    ('/var/lib/pgbackrest/backup', "pgBackRest's own backup/"),
    ('/var/lib/pgbackrest/archive/dumps', "pgBackRest's own archive/"),
])
def test_the_dumps_stay_out_of_pgbackrest_own_directories(logical, words):
    errors = paths(backup_repo_path='/data/pgbackrest' if logical == '/data' else '/var/lib/pgbackrest',
                   backup_logical_path=logical)
    assert any(e.startswith('backup_logical_path') and words in e for e in errors), errors


def test_path_errors_expects_a_dict():
    with pytest.raises(AnsibleFilterError):
        backup_path_errors(['/x'])


# --------------------------------------------------------------------------
# Names, tables, options, address
# --------------------------------------------------------------------------

def test_good_names_pass():
    assert backup_name_errors(['app', 'App_2', 'my-db', 'db.v2', 'x' * 63], 'backup_drill_databases') == []
    assert backup_name_errors('postgres', 'backup_cron_database') == []
    assert backup_name_errors('pgha_backup', 'backup_cron_role', 'role') == []
    assert backup_name_errors([], 'backup_logical_databases') == []


@pytest.mark.parametrize('variable, value, kind', [
    ('backup_drill_databases', ["app'; DROP DATABASE app; --"], 'database'),
    ('backup_drill_databases', ['app\n'], 'database'),          # '$' would have let the newline through
    ('backup_drill_databases', ['host=evil'], 'database'),
    ('backup_drill_databases', ['-app'], 'database'),
    ('backup_drill_databases', ['x' * 64], 'database'),
    ('backup_drill_databases', [5], 'database'),
    ('backup_logical_databases', ['app', 'my db'], 'database'),
    ('backup_cron_database', 'postgres\n', 'database'),
    ('backup_cron_role', 'Backup', 'role'),
    ('backup_cron_role', 'pgha_backup\n', 'role'),
])
def test_bad_names_are_refused(variable, value, kind):
    errors = backup_name_errors(value, variable, kind)
    assert len(errors) == 1 and errors[0].startswith(variable + ' ') and 'Fix:' in errors[0], errors


def test_tables():
    assert backup_table_errors([{'db': 'app', 'table': 'orders'}, {'db': 'app', 'table': 'Sales.Orders', 'min_rows': 5},
                                {'db': 'app', 'table': 'pitr', 'min_rows': '0'}]) == []
    bad = backup_table_errors([{'db': 'app', 'table': 'orders; DROP TABLE x'}, {'db': "a'b", 'table': 't'},
                               {'db': 'app', 'table': 'orders\n'}, {'db': 'app', 'table': 't', 'min_rows': 'many'},
                               {'db': 'app', 'table': 't', 'rows': 1}, 'app.orders', {'table': 't'}])
    assert [e.split(':')[0] for e in bad] == ['backup_drill_tables[%d]' % i for i in range(7)], bad
    assert all('Fix:' in e for e in bad)
    assert backup_table_errors('app.orders')[0].startswith('backup_drill_tables is')


SECRET = 'hunter2-very-secret'


def test_extra_options_pass_and_render():
    assert backup_option_errors({'repo1-cipher-type': 'aes-256-cbc', 'repo1-cipher-pass': SECRET, 'buffer-size': '4MiB',
                                 'repo1-retention-diff': 3, 'archive-check': False,
                                 'db-include': ['app', 'postgres'], 'repo2-path': '/srv/repo2'}) == []
    assert [backup_conf_value(v) for v in (True, False, 3, 'x')] == ['y', 'n', '3', 'x']


@pytest.mark.parametrize('options, words', [
    ({'repo1-cipher-pass': SECRET + '\n[global]\nrepo1-path=/'}, 'line break'),
    ({'repo1-cipher-pass': ' ' + SECRET}, 'leading/trailing blanks'),
    ({'repo1-cipher-pass': ''}, 'is empty'),
    ({'repo1-cipher-pass': None}, 'not a string'),
    ({'repo1-cipher-pass': {'a': SECRET}}, 'not a string'),
    ({'db-include': ['app', SECRET + '\n']}, 'line break'),
    ({'db-include': []}, 'empty list'),
    ({'process-max': 4}, 'backup_process_max'),
    ({'repo1-path': '/srv'}, 'backup_repo_path'),
    ({'tls-server-auth': 'x=y'}, 'the role sets it'),
    ({'pg1-path': '/x'}, 'pgN-*'),
    ({'config-include-path': '/x'}, 'command line'),
    ({'Repo1 Path': '/x'}, 'lower-case'),
    ({'buffer-size\nrepo1-path': '/x'}, 'lower-case'),
])
def test_bad_extra_options_are_refused_without_showing_the_value(options, words):
    errors = backup_option_errors(options)
    assert len(errors) == 1 and errors[0].startswith('backup_extra_options') and words in errors[0], errors
    assert SECRET not in errors[0]


def test_address():
    assert backup_address_errors('10.89.72.20') == [] and backup_address_errors('fd00::20') == []
    for bad in ('bk1.example.com', '10.0.0.1\nProxyCommand x', '10.0.0.1 ', '', None, '10.0.0.300'):
        errors = backup_address_errors(bad)
        assert len(errors) == 1 and errors[0].startswith('backup_host_address') and 'Fix:' in errors[0], bad


# --------------------------------------------------------------------------
# Certificate signing requests, as checked on the CA host
# --------------------------------------------------------------------------

def csr_check(item, subject, ok=True, rc=0):
    return {'item': item, 'rc': rc, 'stdout': ('subject=%s' % subject) if subject else '',
            'stderr': 'Certificate request self-signature verify %s' % ('OK' if ok else 'failure'), 'changed': False}


def test_requests_for_their_own_host_are_signed():
    assert backup_csr_errors([csr_check('db1', 'CN=db1'), csr_check('bk1', 'CN=bk1'),
                              {'item': 'db2', 'skipped': True}], 'bk1') == []


def test_a_request_claiming_the_backup_host_is_refused_with_the_fix():
    errors = backup_csr_errors([csr_check('db1', 'CN=db1'), csr_check('db2', 'CN=bk1')], 'bk1')
    assert len(errors) == 1
    assert errors[0].startswith('REFUSED to sign the certificate signing request of db2')
    assert 'claims subject "CN=bk1", not CN=db2' in errors[0] and 'the backup host' in errors[0]
    assert 'No certificate was issued' in errors[0]
    assert 'on db2 remove /etc/pgbackrest/pki/host.* and run site.yml again' in errors[0]


@pytest.mark.parametrize('check, words', [
    (csr_check('db1', 'CN=db1', ok=False), 'signature does not verify'),          # openssl still exits 0 here
    (csr_check('db1', 'CN=db1,O=x'), 'not CN=db1'),
    (csr_check('db1', 'CN=db2+CN=db1'), 'not CN=db1'),
    (csr_check('db1', 'O=db1'), 'not CN=db1'),
    (csr_check('db1', '', ok=False, rc=1), 'no readable subject'),
    (csr_check('db1', 'CN=DB1'), 'not CN=db1'),
])
def test_other_bad_requests_are_refused(check, words):
    errors = backup_csr_errors([check], 'bk1')
    assert len(errors) == 1 and words in errors[0] and 'db1' in errors[0], errors


# --- the native engine -----------------------------------------------------

def test_backup_size_bytes():
    from ansible_collections.pgha.cluster.plugins.filter.backup import backup_size_bytes
    assert backup_size_bytes('4GiB') == 4 * 1024 ** 3 and backup_size_bytes('512MiB') == 512 * 1024 ** 2
    assert backup_size_bytes('64MB') == 64 * 1024 ** 2 and backup_size_bytes(1024) == 1024
    with pytest.raises(AnsibleFilterError):
        backup_size_bytes('four gigs')


def test_summary_keep_minutes():
    from ansible_collections.pgha.cluster.plugins.filter.backup import summary_keep_minutes
    assert summary_keep_minutes('10d') == 14400 and summary_keep_minutes('36h') == 2160
    assert summary_keep_minutes(90) == 90 and summary_keep_minutes('90min') == 90
    assert summary_keep_minutes('10 days') is None and summary_keep_minutes('-1') is None


@pytest.mark.parametrize('schedule,keep,expect', [
    ({'full': '0 1 * * 0', 'diff': '0 1 * * 1-6', 'incr': ''}, '10d', None),           # weekly fulls, 10 days
    ({'full': '0 1 * * 0', 'incr': '0 */4 * * *'}, '7d', 'set backup_wal_summary_keep_time to 169h or more'),
    ({'full': '0 0 1 * *', 'incr': '0 1 * * *'}, '10d', 'backup_schedule.full \'0 0 1 * *\': 31 days'),
    ({'full': '0 0 1 * *', 'incr': '0 1 * * *'}, '32d', None),
    ({'full': '', 'incr': '0 1 * * *'}, '10d', 'has incr backups but no full one'),
    ({'full': '0 1 * * 0', 'incr': ''}, '1h', None),                                  # fulls only: no parent
    ({'full': '0 0 31 2 *', 'incr': '0 1 * * *'}, '10d', 'never runs'),
    ({'full': '0 1 * * 0', 'incr': '0 1 * * *'}, 'ten days', 'is not a duration'),
])
def test_native_schedule_errors(schedule, keep, expect):
    from ansible_collections.pgha.cluster.plugins.filter.backup import native_schedule_errors
    errors = native_schedule_errors(schedule, keep)
    if expect is None:
        assert errors == []
    else:
        assert len(errors) == 1 and expect in errors[0], errors


# --------------------------------------------------------------------------
# status.yml's view of the backups
# --------------------------------------------------------------------------

STATUS_INFO = [{
    'name': 'main', 'status': {'code': 0, 'message': 'ok'},
    'archive': [{'id': '17-1', 'min': '000000010000000000000001', 'max': '000000010000000000000005'},
                {'id': '17-1', 'min': '000000020000000000000005', 'max': '000000020000000000000007'}],
    'backup': [
        {'label': '20261201-010000F', 'type': 'full', 'timestamp': {'start': 1000, 'stop': 1100}},
        {'label': '20261202-010000F_20261202-020000D', 'type': 'diff', 'timestamp': {'start': 5000, 'stop': 5200}},
        {'label': '20261203-010000F', 'type': 'full', 'timestamp': {'start': 9000, 'stop': 9100}},
        {'label': '20261203-010000F_20261203-020000I', 'type': 'incr', 'timestamp': {'start': 9500, 'stop': 9600},
         'error': True},
    ],
}]


def test_backup_status_names_the_newest_of_each_type_with_its_age():
    r = f.backup_status(STATUS_INFO, 9100 + 7260, '000000020000000000000009', 'repo')
    assert r['reachable'] and r['status'] == 'ok' and r['host'] == 'repo'
    assert r['newest']['full'] == {'label': '20261203-010000F', 'stop': 9100, 'age_seconds': 7260, 'age': '2h 1m'}
    assert r['newest']['diff']['label'] == '20261202-010000F_20261202-020000D'
    # a backup that failed its checks is not a restore point
    assert r['newest']['incr'] is None


def test_backup_status_counts_the_wal_waiting_to_be_archived():
    # writing ...09 on timeline 2, archived up to ...07: ...08 waits
    assert f.backup_status(STATUS_INFO, 0, '000000020000000000000009')['waiting'] == 1
    assert f.backup_status(STATUS_INFO, 0, '000000020000000000000009')['archived_to'] == '000000020000000000000007'
    assert f.backup_status(STATUS_INFO, 0, '000000020000000000000008')['waiting'] == 0
    assert f.backup_status(STATUS_INFO, 0, None)['waiting'] is None
    # across a log boundary: 0x100 segments per log file
    info = [dict(STATUS_INFO[0], archive=[{'max': '0000000200000001000000FE'}])]
    assert f.backup_status(info, 0, '000000020000000200000001')['waiting'] == 2


def test_backup_status_of_a_repository_that_did_not_answer():
    r = f.backup_status(None, 0, None, 'repo')
    assert not r['reachable'] and r['newest']['full'] is None
    assert f.backup_status_line(r) == ['backups       : repo: the repository did not answer']
    assert f.backup_status_line(None) == []


def test_backup_status_line():
    line = f.backup_status_line(f.backup_status(STATUS_INFO, 9100 + 90000, '000000020000000000000009', 'repo'))
    assert line == ['backups       : repo (ok): diff 20261202-010000F_20261202-020000D (1d 2h ago); '
                    'full 20261203-010000F (1d 1h ago); incr none; WAL archived up to 000000020000000000000007, '
                    '1 segment(s) waiting']


KINDS = ['full', 'diff', 'incr', 'dump']


def test_schedule_errors_accept_the_defaults_and_empty_ones():
    assert f.backup_schedule_errors({'full': '0 1 * * 0', 'diff': '', 'incr': '0 1 * * 1-6', 'dump': ''}, KINDS,
                                    '30 4 * * *') == []


def test_schedule_errors_name_each_bad_one_and_the_fix():
    errors = f.backup_schedule_errors({'full': '0 1 * *', 'incr': '0 1 * * 1\n* * * * *'}, KINDS)
    assert len(errors) == 2
    assert errors[0].startswith('backup_schedule.full "0 1 * *" is not a usable schedule: ')
    assert 'Fix: 5 fields' in errors[0]
    assert errors[1].startswith('backup_schedule.incr ')


def test_schedule_errors_a_control_character_in_a_valid_looking_one():
    errors = f.backup_schedule_errors({'full': '0 1 * * 0\x07'}, KINDS)
    assert errors and ('control character' in errors[0] or 'not a usable schedule' in errors[0])


def test_schedule_errors_unknown_keys_and_the_drill():
    errors = f.backup_schedule_errors({'weekly': '0 1 * * 0'}, KINDS, 'every day')
    assert errors[0] == ('backup_schedule has unknown keys weekly. Fix: use only full, diff, incr, dump '
                         '(an empty string disables one).')
    assert errors[-1].startswith('backup_schedule.(backup_drill_schedule) "every day" is not a usable schedule')
