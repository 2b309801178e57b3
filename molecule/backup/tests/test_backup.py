"""Backups and monitoring end to end on real containers: pgBackRest on the backup host, WAL
archiving, Prometheus, Alertmanager and the exporters that site.yml installs, the alert rules' unit
tests (promtool); a healthy cluster fires nothing and status.yml says HEALTHY; a stopped replica fires
"not streaming"; backup.yml, restore.yml to a point in time, restore drills on a damaged and a good
repository (Prometheus sees both results), logical dumps, the pg_cron schedule on the primary only; a
killed primary fires "primary down" naming promote.yml while status.yml names the candidate; the new
primary runs the schedule after promote.yml; status.yml's table, JSON and picture show it; rejoin.yml
resolves every alert; a dead backup host does not stop writes and fires the archiving alert; and
site.yml changes nothing after the runbooks.

The tests run in file order and build on each other (one cluster, one story).
"""

import html
import json
import os
import re
import time

import pgha_testlib as lib

VIP = '10.89.72.100'
NAMES = ['backup-pg1', 'backup-pg2']
IPS = {'backup-pg1': '10.89.72.11', 'backup-pg2': '10.89.72.12', 'backup-repo': '10.89.72.20',
       'backup-watch': '10.89.72.30'}
PROMETHEUS = 'http://10.89.72.30:9090'

# the inventory as promote.yml's summary says (set by the failover test)
STATE = {}
PKI = '/etc/pgbackrest/pki'
SECRET = 'pgha-cipher-pass-Q7v2xK9'

# Bad input site.yml's preflight refuses before any host changes, with a message naming the variable and the
# fix: {case: {'extra_vars': ..., 'expect': regex}}. The regexes allow for the callback wrapping and quoting
# the message (\W+ / \s+ between words). test_bad_input_stops_site_yml_in_its_preflight runs the cases of
# REPORTED_TOGETHER in one site.yml run (the role's input check reports them all at once); the others are
# separate assert tasks of the same preflight, each case fails on its own.
BAD_INPUT = {
    'repo path is /': {
        'extra_vars': {'backup_repo_path': '/'},
        'expect': r'backup_repo_path\W+/\W+is\s+a\s+system\s+directory'},
    'repo path is /var/lib': {
        'extra_vars': {'backup_repo_path': '/var/lib'},
        'expect': r'backup_repo_path\W+/var/lib\W+is\s+a\s+system\s+directory'},
    'spool path is relative': {
        'extra_vars': {'backup_spool_path': 'var/spool/pgbackrest'},
        'expect': r'backup_spool_path\W+var/spool/pgbackrest\W+is\s+not\s+an\s+absolute\s+path'},
    'spool path is the data directory': {
        'extra_vars': {'backup_spool_path': '/var/lib/postgresql/17/main'},
        'expect': r'backup_spool_path\W+/var/lib/postgresql/17/main\W+is\s+/var/lib/postgresql/17/main,\s+which\s+'
                  r'belongs\s+to\s+PostgreSQL'},
    'logical path climbs out with ..': {
        'extra_vars': {'backup_logical_path': '/var/lib/pgbackrest/../../../etc'},
        'expect': r'backup_logical_path\W+/var/lib/pgbackrest/\.\./\.\./\.\./etc\W+is\s+not\s+a\s+plain\s+normalised\s+path'},
    'logical path is the repository': {
        'extra_vars': {'backup_logical_path': '/var/lib/pgbackrest'},
        'expect': r'backup_logical_path\W+/var/lib/pgbackrest\W+is\s+backup_repo_path'},
    "logical path in pgBackRest's archive directory": {
        'extra_vars': {'backup_logical_path': '/var/lib/pgbackrest/archive'},
        'expect': r"backup_logical_path\W+/var/lib/pgbackrest/archive\W+lies\s+in\s+pgBackRest\W+s\s+own\s+archive/"},
    'drill path has a trailing slash': {
        'extra_vars': {'backup_drill_path': '/var/lib/pgbackrest-drill/'},
        'expect': r'backup_drill_path\W+/var/lib/pgbackrest-drill/\W+is\s+not\s+a\s+plain\s+normalised\s+path'},
    'drill path has a line break': {
        'extra_vars': {'backup_drill_path': '/var/lib/drill\nrm -rf /'},
        'expect': r'backup_drill_path\W+/var/lib/drill\\n[\s\S]{0,40}is\s+not\s+a\s+plain\s+normalised\s+path'},
    'drill path has a space': {
        'extra_vars': {'backup_drill_path': '/var/lib/my drill'},
        'expect': r'backup_drill_path\W+/var/lib/my\s+drill\W+is\s+not\s+a\s+plain\s+normalised\s+path'},
    'drill path is /var/lib/postgresql': {
        'extra_vars': {'backup_drill_path': '/var/lib/postgresql'},
        'expect': r'backup_drill_path\W+/var/lib/postgresql\W+is\s+a\s+system\s+directory'},
    'drill path contains the data directory': {
        'extra_vars': {'backup_drill_path': '/var/lib/postgresql/17'},
        'expect': r'backup_drill_path\W+/var/lib/postgresql/17\W+contains\s+/var/lib/postgresql/17/main'},
    'drill path in /run': {
        'extra_vars': {'backup_drill_path': '/run/pgha-drill'},
        'expect': r'backup_drill_path\W+/run/pgha-drill\W+lies\s+in\s+/run,\s+a\s+kernel\s+or\s+runtime\s+file\s+system'},
    'drill path is the repository': {
        'extra_vars': {'backup_drill_path': '/var/lib/pgbackrest'},
        'expect': r'backup_drill_path\W+/var/lib/pgbackrest\W+is\s+backup_repo_path\W+/var/lib/pgbackrest\W+each\s+drill\s+'
                  r'deletes'},
    'drill path inside the repository': {
        'extra_vars': {'backup_drill_path': '/var/lib/pgbackrest/backup'},
        'expect': r'backup_drill_path\W+/var/lib/pgbackrest/backup\W+lies\s+in\s+backup_repo_path\W+/var/lib/pgbackrest\W+'
                  r'each\s+drill\s+deletes\s+<backup_drill_path>/<stanza>\s+and\s+would\s+delete'},
    'drill path contains the repository': {
        'extra_vars': {'backup_repo_path': '/srv/pgha/repo', 'backup_logical_path': '/srv/pgha-dumps',
                       'backup_drill_path': '/srv/pgha'},
        'expect': r'backup_drill_path\W+/srv/pgha\W+contains\s+backup_repo_path\W+/srv/pgha/repo'},
    'drill path is the dumps directory': {
        'extra_vars': {'backup_logical_path': '/srv/pgha-dumps', 'backup_drill_path': '/srv/pgha-dumps'},
        'expect': r'backup_drill_path\W+/srv/pgha-dumps\W+is\s+backup_logical_path'},
    'drill path is the spool': {
        'extra_vars': {'backup_drill_path': '/var/spool/pgbackrest'},
        'expect': r'backup_drill_path\W+/var/spool/pgbackrest\W+is\s+backup_spool_path'},
    'drill database with a quote': {
        'extra_vars': {'backup_drill_databases': ["app'; DROP DATABASE app; --"]},
        'expect': r'backup_drill_databases\s+holds\s+a\s+name\s+the\s+role\s+refuses[\s\S]{0,80}DROP\s+DATABASE'},
    'drill database with a trailing line break': {
        'extra_vars': {'backup_drill_databases': ['app\n']},
        'expect': r'backup_drill_databases\s+holds\s+a\s+name\s+the\s+role\s+refuses'},
    'drill database read as a connection string': {
        'extra_vars': {'backup_drill_databases': ['host=10.0.0.1']},
        'expect': r'backup_drill_databases\s+holds\s+a\s+name\s+the\s+role\s+refuses[\s\S]{0,80}host=10\.0\.0\.1'},
    'logical database with a trailing line break': {
        'extra_vars': {'backup_logical_databases': ['app\n']},
        'expect': r'backup_logical_databases\s+holds\s+a\s+name\s+the\s+role\s+refuses'},
    'cron database with a trailing line break': {
        'extra_vars': {'backup_cron_database': 'postgres\n'},
        'expect': r'backup_cron_database\W+postgres\\n\W+is\s+not\s+a\s+database\s+name'},
    'cron role with upper case': {
        'extra_vars': {'backup_cron_role': 'PghaBackup'},
        'expect': r'backup_cron_role\W+PghaBackup\W+is\s+not\s+a\s+role\s+name'},
    'cron role with a trailing line break': {
        'extra_vars': {'backup_cron_role': 'pgha_backup\n'},
        'expect': r'backup_cron_role\W+pgha_backup\\n\W+is\s+not\s+a\s+role\s+name'},
    'drill table with SQL in it': {
        'extra_vars': {'backup_drill_tables': [{'db': 'app', 'table': 'pitr; DROP TABLE pitr'}]},
        'expect': r'backup_drill_tables\[0\]:\s+table\W+pitr;\s+DROP\s+TABLE\s+pitr\W+is\s+not'},
    'drill table with a trailing line break': {
        'extra_vars': {'backup_drill_tables': [{'db': 'app', 'table': 'pitr\n'}]},
        'expect': r'backup_drill_tables\[0\]:\s+table\W+pitr\\n\W+is\s+not'},
    "drill table's database with a quote": {
        'extra_vars': {'backup_drill_tables': [{'db': "app'", 'table': 'pitr'}]},
        'expect': r'backup_drill_tables\[0\]:\s+db\W+app\W+is\s+not\s+a\s+database\s+name'},
    'extra option value with a line break': {
        'extra_vars': {'backup_extra_options': {'buffer-size': '1MiB\nrepo1-path=/tmp'}},
        'expect': r'backup_extra_options\[buffer-size\]\s+is\s+empty,\s+has\s+a\s+line\s+break'},
    'cipher pass with a line break (value never shown)': {
        'extra_vars': {'backup_extra_options': {'repo1-cipher-type': 'aes-256-cbc',
                                                'repo1-cipher-pass': SECRET + '\n[global]'}},
        'expect': r'backup_extra_options\[repo1-cipher-pass\][\s\S]{0,120}value\s+not\s+shown'},
    'extra option the role sets (process-max)': {
        'extra_vars': {'backup_extra_options': {'process-max': 8}},
        'expect': r'backup_extra_options\s+sets\s+process-max,\s+but\s+the\s+role\s+sets\s+it\s+from\s+backup_process_max'},
    'extra option the role sets (repo1-path)': {
        'extra_vars': {'backup_extra_options': {'repo1-path': '/tmp'}},
        'expect': r'backup_extra_options\s+sets\s+repo1-path,\s+but\s+the\s+role\s+sets\s+it\s+from\s+backup_repo_path'},
    'extra option for a member (pg1-path)': {
        'extra_vars': {'backup_extra_options': {'pg1-path': '/tmp'}},
        'expect': r'backup_extra_options\s+sets\s+pg1-path,\s+but\s+the\s+role\s+writes\s+the\s+pgN-\*\s+options'},
    'extra option with a bad name': {
        'extra_vars': {'backup_extra_options': {'buffer-size = 1MiB\nrepo1-path': '/tmp'}},
        'expect': r'backup_extra_options\s+has\s+an\s+option\s+named[\s\S]{0,120}lower-case\s+words'},
    'extra option without a value': {
        'extra_vars': {'backup_extra_options': {'buffer-size': None}},
        'expect': r'backup_extra_options\[buffer-size\]\s+is\s+not\s+a\s+string,\s+number'},
    'backup host address is a name': {
        'extra_vars': {'backup_host_address': 'bk1.example.com'},
        'expect': r'backup_host_address\W+bk1\.example\.com\W+is\s+not\s+an\s+IP\s+address'},
    'backup host address with an ssh option': {
        'extra_vars': {'backup_host_address': '10.89.72.20 -oProxyCommand=reboot'},
        'expect': r'backup_host_address\W+10\.89\.72\.20\s+-oProxyCommand=reboot\W+is\s+not\s+an\s+IP\s+address'},
    'backup_primary_host is not a member': {
        'extra_vars': {'backup_primary_host': 'backup-repo'},
        'expect': r'backup_primary_host\W+backup-repo\W+is\s+not\s+a\s+cluster\s+member'},
    'stanza with a trailing line break': {
        'extra_vars': {'backup_stanza': 'main\n'},
        'expect': r'backup_stanza\W+main\\n\W+is\s+not\s+a\s+valid\s+pgBackRest\s+stanza\s+name'},
    'archive queue limit with a line break': {
        'extra_vars': {'backup_archive_push_queue_max': '64MiB\nrepo1-path=/tmp'},
        'expect': r'backup_archive_push_queue_max\W+64MiB\\nrepo1-path=/tmp\W+is\s+not\s+a\s+size'},
    'archive queue limit with a space': {
        'extra_vars': {'backup_archive_push_queue_max': '4 GiB'},
        'expect': r'backup_archive_push_queue_max\W+4\s+GiB\W+is\s+not\s+a\s+size'},
    'CA valid for 0 days': {
        'extra_vars': {'backup_ca_days': 0},
        'expect': r'Out\s+of\s+range:[\s\S]*?backup_ca_days=0\s+and'},
    'certificates valid for -1 days': {
        'extra_vars': {'backup_cert_days': -1},
        'expect': r'Out\s+of\s+range:[\s\S]*?backup_cert_days=-1\s+\(at\s+least\s+1\)'},
    'lz4 compression level 40': {
        'extra_vars': {'backup_compress_level': 40},
        'expect': r'Out\s+of\s+range:[\s\S]*?backup_compress_level=40\s+\(0\s+for\s+pgBackRest\W+s\s+default,\s+else\s+at\s+most\s+12\s+'
                  r'for\s+lz4\)'},
    'schedule with a line break': {
        'extra_vars': {'backup_schedule': {'full': '0 3 29 2 *\n', 'diff': '', 'incr': '', 'dump': ''}},
        'expect': r'backup_schedule\.full\W+0\s+3\s+29\s+2\s+\*\\n\W+is\s+not\s+a\s+usable\s+schedule:\s+it\s+holds\s+a\s+line\s+break'},
}
# restore.yml refuses these in its plan (filter restore_plan), before anything is stopped, naming restore_target
# or restore_timeline and the allowed form (the first one runs here; all of them are unit-tested).
RESTORE_BAD_INPUT = {
    'restore point name with a quote': {
        'extra_vars': {'restore_type': 'name', 'restore_target': "before it's done", 'restore_confirm': True},
        'expect': r'REFUSED:\s+restore_target=\W+before\s+it\W+s\s+done\W+cannot\s+be\s+given\s+to\s+pgBackRest\s+as\s+a\s+'
                  r'restore\s+point\s+name:[\s\S]{0,200}pg_create_restore_point\(\):\s+at\s+most\s+63\s+bytes,\s+no\s+quote'},
    'restore point name with a line break': {
        'extra_vars': {'restore_type': 'name', 'restore_target': 'before\nrecovery_target_action = shutdown',
                       'restore_confirm': True},
        'expect': r'REFUSED:\s+restore_target=\W+before\\nrecovery_target_action\s+=\s+shutdown\W+cannot\s+be\s+given'},
    'restore point name with a backslash': {
        'extra_vars': {'restore_type': 'name', 'restore_target': 'before\\done', 'restore_confirm': True},
        'expect': r'REFUSED:\s+restore_target=\W+before\\\\done\W+cannot\s+be\s+given'},
    'restore point name longer than 63 bytes': {
        'extra_vars': {'restore_type': 'name', 'restore_target': 'x' * 64, 'restore_confirm': True},
        'expect': r'REFUSED:\s+restore_target=\W+x{64}\W+is\s+longer\s+than\s+a\s+restore\s+point\s+name\s+can\s+be'},
    'transaction id in Arabic-Indic digits': {
        'extra_vars': {'restore_type': 'xid', 'restore_target': '\u0667\u0664\u0662\u0661', 'restore_confirm': True},
        'expect': r'REFUSED:\s+restore_target=\S*\s+is\s+not\s+a\s+transaction\s+id:\s+a\s+number\s+made\s+of\s+the\s+digits\s+0-9'},
    'LSN with a line break inside': {
        'extra_vars': {'restore_type': 'lsn', 'restore_target': '0/5000028\nx', 'restore_confirm': True},
        'expect': r'REFUSED:\s+restore_target=\W+0/5000028\\nx\W+is\s+not\s+a\s+WAL\s+position'},
    'timeline in other digits': {
        'extra_vars': {'restore_timeline': '\u0662', 'restore_confirm': True},
        'expect': r'REFUSED:\s+restore_timeline=\S+\s+must\s+be\s+a\s+timeline\s+number'},
}
REPORTED_TOGETHER = [
    'drill path inside the repository', 'spool path is the data directory', "logical path in pgBackRest's archive directory",
    'drill database with a quote', 'logical database with a trailing line break', 'cron database with a trailing line break',
    'cron role with upper case', 'drill table with SQL in it', 'cipher pass with a line break (value never shown)',
    'backup host address with an ssh option', 'backup_primary_host is not a member',
]


def node(name):
    return lib.host(name)


def repo():
    return node('backup-repo')


def app(name, sql):
    return lib.psql(node(name), sql, db='app')


def watch():
    return node('backup-watch')


def run(playbook, *args, timeout=600):
    """A playbook against the inventory as it stands: promote.yml's summary moves the primary."""
    return lib.run_playbook_with(STATE.get('inventory') or lib.inventory_dir(), playbook, *args, timeout=timeout)


def prom(query):
    """The result vector of a PromQL query, asked of Prometheus from here."""
    return lib.prom_query(PROMETHEUS, query)


def scrape_report():
    """For a failure's message: the targets that missed a scrape in the last minute, and the slowest scrapes."""
    missed = sorted((r['metric']['job'], r['metric']['instance']) for r in prom('min_over_time(up[1m]) == 0'))
    slowest = sorted((float(r['value'][1]), r['metric']['job'], r['metric']['instance'])
                     for r in prom('max_over_time(scrape_duration_seconds[1m])'))[-3:]
    errors = sorted((t['labels'].get('job'), t['labels'].get('instance'), t['health'], t['lastError'])
                    for t in lib.prom_api(PROMETHEUS, '/api/v1/targets')['activeTargets'] if t['lastError'])
    return {'missed a scrape in the last minute': missed, 'slowest scrapes (s)': slowest,
            'targets whose last scrape failed': errors}


def notifications():
    """Every notification the test receiver logged: [(status, alertname, labels, annotations)]."""
    return lib.alert_notifications(watch())


def received(status, alertname, since=0, **labels):
    """The notifications with this status and alert name (and these labels) after the first `since`."""
    return lib.alerts_received(watch(), status, alertname, since, **labels)


def firing():
    """The alert names Prometheus has firing now."""
    return sorted(set(r['metric']['alertname'] for r in prom('ALERTS{alertstate="firing"}')))


def drill_metric():
    return [r['value'][1] for r in prom('pgha_restore_drill_passed{instance="backup-repo"}')]


def slot_of(name):
    return name.replace('-', '_')


def verdict(output):
    """What follows 'VERDICT: ' on status.yml's screen, its folded lines joined again."""
    return lib.status_verdict(output)


def status_json():
    """status.yml -e status_format=json through the json callback, as a script reads it."""
    return lib.status_json(STATE.get('inventory'))


def test_site_configured_archiving_the_stanza_and_the_schedule():
    for n in ('backup-pg1', 'backup-pg2'):
        assert lib.psql(node(n), 'SHOW archive_mode') == 'on'
        assert lib.psql(node(n), 'SHOW archive_command') == 'pgbackrest --stanza=main archive-push %p'
        assert 'pg_cron' in lib.psql(node(n), 'SHOW shared_preload_libraries')
        # the database hosts keep no copy of their backups
        assert node(n).run('find /var/lib/pgbackrest -mindepth 1').stdout.strip() == ''
        conf = node(n).file('/etc/pgbackrest/pgbackrest.conf').content_string
        assert 'repo1-host=10.89.72.20' in conf and 'repo1-host-type=tls' in conf
        assert 'archive-async=y' in conf and 'archive-push-queue-max=64MiB' in conf
    # backup_extra_options live in a file of their own (they may hold secrets), which pgBackRest reads
    for n in ('backup-pg1', 'backup-pg2', 'backup-repo'):
        extra = node(n).file('/etc/pgbackrest/conf.d/pgha-extra.conf')
        assert (extra.mode, extra.user, extra.group) == (0o640, 'root', 'postgres'), n
        assert 'buffer-size=2MiB' in extra.content_string, n
        assert 'buffer-size' not in node(n).file('/etc/pgbackrest/pgbackrest.conf').content_string, n
        assert 'current: 2MiB' in node(n).run('runuser -u postgres -- pgbackrest help backup buffer-size').stdout, n
    info = lib.pgbackrest_info(repo())
    assert info['status']['code'] in (0, 2), info['status']     # stanza exists (2: no backup yet)
    assert info['archive'] and info['archive'][-1]['max'], 'nothing archived yet'
    check = repo().run('runuser -u postgres -- pgbackrest --stanza=main check')
    assert check.rc == 0, check.stdout + check.stderr
    # pg_cron jobs run as an unprivileged role that only has pg_execute_server_program
    primary = node('backup-pg1')
    jobs = lib.psql(primary, "SELECT jobname, username, schedule FROM cron.job WHERE jobname LIKE 'pgha-%' ORDER BY 1")
    assert 'pgha-backup-full|pgha_backup|0 3 29 2 *' in jobs.splitlines(), jobs
    assert lib.psql(primary, "SELECT rolsuper, rolcanlogin, rolpassword IS NULL FROM pg_authid "
                             "WHERE rolname = 'pgha_backup'") == 'f|t|t'
    assert lib.psql(primary, "SELECT string_agg(b.rolname, ',') FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid "
                             "JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = 'pgha_backup'") \
        == 'pg_execute_server_program'
    # the SSH key of a member can only run the trigger
    keys = repo().file('/var/lib/postgresql/.ssh/authorized_keys').content_string
    assert keys.count('restrict,from="10.89.72.1') == 2 and 'command="/usr/local/sbin/pgha-backup-trigger main"' in keys
    refused = primary.run("runuser -u postgres -- ssh -i /var/lib/postgresql/.ssh/pgha_backup_ed25519 -o BatchMode=yes "
                          "-o UserKnownHostsFile=/var/lib/postgresql/.ssh/pgha_backup_known_hosts "
                          "postgres@10.89.72.20 'cat /etc/shadow'")
    assert refused.rc != 0 and 'refused' in refused.stderr, refused.stdout + refused.stderr


# --------------------------------------------------------------------------
# What site.yml installed for monitoring, on a healthy cluster
# --------------------------------------------------------------------------

def test_the_rules_pass_their_unit_tests_and_the_config_checks():
    cmd = watch().run('promtool test rules /etc/prometheus/pgha-rules-test.yml')
    assert cmd.rc == 0 and 'SUCCESS' in cmd.stdout, cmd.stdout + cmd.stderr
    cmd = watch().run('promtool check config /etc/prometheus/prometheus.yml')
    assert cmd.rc == 0, cmd.stdout + cmd.stderr
    cmd = watch().run('amtool check-config /etc/prometheus/alertmanager.yml')
    assert cmd.rc == 0, cmd.stdout + cmd.stderr


def test_every_exporter_is_scraped_on_its_own_address():
    def all_up():
        rows = prom('up')
        return len(rows) >= 8 and all(r['value'][1] == '1' for r in rows) and rows
    rows = lib.wait_for(all_up, timeout=120, interval=2, what='every target up')
    targets = dict(((r['metric']['job'], r['metric']['instance']), r['metric']) for r in rows)
    # no target but the inventory's hosts: nothing left of Debian's example configuration (Prometheus never
    # started with it, else its samples would linger here and fire PghaTargetDown)
    assert set(key[1] for key in targets) <= set(IPS), sorted(targets)
    assert set(targets) >= {('postgres', 'backup-pg1'), ('postgres', 'backup-pg2'), ('node', 'backup-pg1'),
                            ('node', 'backup-pg2'), ('node', 'backup-repo'), ('node', 'backup-watch'),
                            ('pgbackrest', 'backup-repo')}
    # the exporters listen on the member's address only, not on every interface
    listen = node('backup-pg1').check_output('ss -Hltn')
    assert '%s:9187' % IPS['backup-pg1'] in listen and '*:9187' not in listen and '0.0.0.0:9187' not in listen
    # the custom metrics are there: one primary, the replica streams, its slot is active
    assert [r['metric']['instance'] for r in prom('pgha_server_primary == 1')] == ['backup-pg1']
    slots = prom('pgha_slot_active{instance="backup-pg1"}')
    assert [(r['metric']['slot_name'], r['value'][1]) for r in slots] == [(slot_of('backup-pg2'), '1')]
    assert prom('pgha_vip_held{vip="writer",instance="backup-pg1"}')[0]['value'][1] == '1'
    assert prom('pgbackrest_backup_since_last_completion_seconds{backup_type="full"}'), 'no full backup seen'


def test_the_exporters_role_cannot_write_or_read_table_data():
    pg1 = node('backup-pg1')
    lib.psql(pg1, 'CREATE TABLE IF NOT EXISTS secret (v text); INSERT INTO secret VALUES (\'s\')', db='app')
    as_exporter = 'runuser -u prometheus -- psql -XAtq -v ON_ERROR_STOP=1 -d %s -c %s'
    for db, sql in (('app', 'SELECT * FROM secret'), ('app', "INSERT INTO secret VALUES ('x')"),
                    ('app', 'CREATE TABLE mine (v int)'), ('postgres', 'CREATE TABLE mine (v int)'),
                    ('app', 'SELECT pg_read_file(\'PG_VERSION\')')):
        cmd = pg1.run(as_exporter % (db, lib._quote(sql)))
        assert cmd.rc != 0 and 'permission denied' in cmd.stderr, (sql, cmd.stdout, cmd.stderr)
    # but it reads the statistics it exists for
    assert pg1.check_output(as_exporter % ('postgres', lib._quote('SELECT count(*) FROM pg_stat_replication'))) == '1'
    attrs = lib.psql(pg1, "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolpassword IS NULL, "
                          "(SELECT string_agg(b.rolname, ',') FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid "
                          " WHERE m.member = a.oid) FROM pg_authid a WHERE rolname = 'prometheus'")
    assert attrs == 'f|f|f|f|t|pg_monitor'


def test_a_healthy_cluster_fires_nothing_and_status_says_healthy():
    # two rule evaluations after every target is up, and nothing pending either
    time.sleep(12)
    alerts = prom('ALERTS')
    assert alerts == [], 'alerts: %s\n%s' % ([(a['metric']['alertname'], a['metric'].get('job'), a['metric'].get('instance'),
                                               a['metric']['alertstate']) for a in alerts], scrape_report())
    assert notifications() == []
    proc = run('status.yml')
    assert proc.returncode == 0, proc.stdout[-4000:]
    said = verdict(proc.stdout)
    assert said.startswith('HEALTHY'), proc.stdout[-3000:]
    # the backups line: the full backup site.yml took
    assert re.search(r'backups\W.*full\s+\d{8}-\d{6}F', ' '.join(proc.stdout.split())), proc.stdout[-3000:]


def test_a_stopped_replica_fires_not_streaming():
    seen = len(notifications())
    node('backup-pg2').check_output('systemctl stop postgresql@17-main')
    try:
        lib.wait_for(lambda: received('firing', 'PghaReplicaNotStreaming', seen, slot_name=slot_of('backup-pg2')),
                     timeout=90, interval=2, what='PghaReplicaNotStreaming at the receiver')
    finally:
        node('backup-pg2').check_output('systemctl start postgresql@17-main')
    lib.wait_for(lambda: received('resolved', 'PghaReplicaNotStreaming', seen, slot_name=slot_of('backup-pg2')),
                 timeout=90, interval=2, what='PghaReplicaNotStreaming resolved')


def plain(text):
    """Playbook output without its colours (Molecule forces them): the messages' words as they were written."""
    return re.sub(r'\x1b\[[0-9;]*m', '', text)


def recap(stdout):
    return [line for line in plain(stdout).splitlines() if 'changed=' in line and ':' in line]


def sha256(host, path):
    cmd = host.run('sha256sum %s' % path)
    assert cmd.rc == 0, cmd.stderr
    return cmd.stdout.split()[0]


def state_of_the_backup_role():
    """What a backup play that got past its preflight would change first: the files it renders."""
    return (sha256(repo(), '/etc/pgbackrest/pgbackrest.conf'), sha256(repo(), '/usr/local/sbin/pgha-restore-drill'),
            sha256(repo(), '/usr/local/sbin/pgha-backup-trigger'), sha256(node('backup-pg1'), '/usr/local/bin/pgha-backup'),
            repo().run('stat -c %a:%U /var/lib/pgbackrest/backup').stdout)


def test_bad_input_stops_site_yml_in_its_preflight():
    """Eleven bad values at once: site.yml stops in the backup role's preflight, every one of them named with its
    fix, no host changed, the cipher pass among them never printed. (BAD_INPUT holds each case on its own, for a
    catalogue run.)"""
    before = state_of_the_backup_role()
    extra = {}
    for case in REPORTED_TOGETHER:
        extra.update(BAD_INPUT[case]['extra_vars'])
    assert len(extra) == len(REPORTED_TOGETHER)
    # --diff -vvv: a failing run prints no secret either (one case carries a cipher pass)
    proc = lib.run_playbook('site.yml', '--diff', '-vvv', '-e', json.dumps(extra))
    out = plain(proc.stdout)
    assert proc.returncode != 0, out[-3000:]
    at = out.index('fatal:')
    failed = out[at:]
    assert "Preflight | Check the inventory, the backup host's platform and the backup role's variables" in out[:at].rsplit('TASK [', 1)[-1], \
        failed[:3000]
    for case in REPORTED_TOGETHER:
        expect = BAD_INPUT[case]['expect']
        assert re.search(expect, failed), '%s: %s not in\n%s' % (case, expect, failed[:4000])
    assert SECRET not in proc.stdout
    lines = recap(proc.stdout)
    assert len(lines) >= 3 and all(' changed=0 ' in line for line in lines), '\n'.join(lines)
    assert state_of_the_backup_role() == before


def changed_tasks(stdout):
    """{task or handler name: [hosts it reported changed on]} for the tasks of a run that reported a change."""
    parts = re.split(r'\n(?=(?:TASK|RUNNING HANDLER) \[)', plain(stdout))
    changed = {}
    for part in parts:
        hosts = sorted(set(re.findall(r'^changed: \[([^\]]+)\]', part, re.M)))
        if hosts and part.startswith(('TASK [', 'RUNNING HANDLER [')):
            changed[part.split('[', 1)[1].split(']', 1)[0]] = hosts
    return changed


def test_check_mode_plans_only_the_changed_options_and_prints_no_secret():
    """The backup role (backup_role.yml: the role alone on the converged cluster) with --check --diff -vvv and a
    repository cipher pass added to backup_extra_options: the one file that holds them would change on every host
    (and each host's pgBackRest server would restart), its diff is not shown, no other task plans a change, nothing
    changes. (site.yml's other roles are checked the same way by the default scenario.)"""
    playbook = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', 'backup_role.yml'))
    extra_conf = '/etc/pgbackrest/conf.d/pgha-extra.conf'
    hosts = ['backup-pg1', 'backup-pg2', 'backup-repo']
    before = [node(h).run('sha256sum %s 2>&1' % extra_conf).stdout for h in hosts]
    options = {'buffer-size': '4MiB', 'repo1-cipher-type': 'aes-256-cbc', 'repo1-cipher-pass': SECRET}
    proc = lib.run_playbook_with(lib.inventory_dir(), playbook, '--check', '--diff', '-vvv',
                                 '-e', json.dumps({'backup_extra_options': options}))
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert SECRET not in proc.stdout
    extra_task = 'pgha.cluster.backup : Config | Render backup_extra_options (no diff shown, they may hold secrets)'
    assert changed_tasks(proc.stdout) == {extra_task: hosts,
                                          'pgha.cluster.backup : Restart the pgBackRest server': hosts}, \
        changed_tasks(proc.stdout)
    assert '4MiB' not in lib.task_output(proc.stdout, extra_task)
    lines = recap(proc.stdout)
    assert len(lines) == 3, lines
    # check mode changed nothing
    assert [node(h).run('sha256sum %s 2>&1' % extra_conf).stdout for h in hosts] == before


def test_the_ca_signs_only_a_request_for_the_host_it_is_for():
    """Root on backup-pg2 swaps its key and request for ones claiming to be the backup host (whose certificate
    every member trusts): the backup role (site.yml's last play; backup_role.yml runs it alone, a full site.yml
    costs twice as much) stops before the CA signs anything, says who, what and how to fix it."""
    playbook = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', 'backup_role.yml'))
    member, ca = node('backup-pg2'), repo()
    certs_before = (sha256(ca, PKI + '/ca/backup-pg2.crt'), sha256(ca, PKI + '/ca/backup-pg2.csr'),
                    sha256(member, PKI + '/host.crt'))
    serial_before = ca.file(PKI + '/ca/ca.srl').content_string
    csr_before = sha256(member, PKI + '/host.csr')
    assert member.run('mkdir -p /root/pki.save && cp -p %s/host.key %s/host.csr /root/pki.save/' % (PKI, PKI)).rc == 0
    try:
        forged = member.run('openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes '
                            '-keyout %s/host.key -out %s/host.csr -subj /CN=backup-repo' % (PKI, PKI))
        assert forged.rc == 0, forged.stderr
        proc = lib.run_playbook_with(lib.inventory_dir(), playbook)
        out = plain(proc.stdout)
        assert proc.returncode != 0, out[-3000:]
        assert re.search(r'REFUSED\s+to\s+sign\s+the\s+certificate\s+signing\s+request\s+of\s+backup-pg2\s+'
                         r'\(/etc/pgbackrest/pki/host\.csr\):\s+it\s+claims\s+subject\W+CN=backup-repo\W+not\s+'
                         r'CN=backup-pg2\s+-\s+the\s+backup\s+host,\s+whom\s+every\s+member\s+trusts\.\s+No\s+certificate\s+'
                         r'was\s+issued\s+for\s+it\.\s+Fix:[\s\S]*on\s+backup-pg2\s+remove\s+/etc/pgbackrest/pki/host\.\*\s+'
                         r'and\s+run\s+site\.yml\s+again', out), out[-4000:]
        # nothing was issued: the CA's copy of the request, its certificate, its serial and the member's certificate
        assert (sha256(ca, PKI + '/ca/backup-pg2.crt'), sha256(ca, PKI + '/ca/backup-pg2.csr'),
                sha256(member, PKI + '/host.crt')) == certs_before
        assert ca.file(PKI + '/ca/ca.srl').content_string == serial_before
        # every certificate on the CA carries the name of the host it was issued to
        for crt in ca.run('ls %s/ca/*.crt' % PKI).stdout.split():
            if crt.endswith('/ca.crt'):
                continue
            subject = ca.run('openssl x509 -noout -subject -nameopt RFC2253 -in %s' % crt).stdout.strip()
            assert subject == 'subject=CN=' + os.path.basename(crt)[:-4], (crt, subject)
    finally:
        assert member.run('cp -p /root/pki.save/host.key /root/pki.save/host.csr %s/ && rm -rf /root/pki.save'
                          % PKI).rc == 0
    # with its own key and request back, the member's TLS works as before (site.yml's
    # run at the end of the walk, test_site_changes_nothing_after_the_runbooks, finds
    # nothing to change on any host)
    assert (sha256(ca, PKI + '/ca/backup-pg2.crt'), sha256(ca, PKI + '/ca/backup-pg2.csr'),
            sha256(member, PKI + '/host.crt'), sha256(member, PKI + '/host.csr')) == certs_before + (csr_before,)
    check = repo().run('runuser -u postgres -- pgbackrest --stanza=main check')
    assert check.rc == 0, check.stdout + check.stderr


def test_restore_refuses_a_restore_point_name_that_breaks_postgresql_auto_conf():
    """A quote in restore_target (restore_type=name): refused in the plan, naming restore_target and the allowed
    form, before anything is stopped (even with restore_confirm=true)."""
    primary = node('backup-pg1')
    tl = lib.timeline('backup-pg1')
    case = RESTORE_BAD_INPUT['restore point name with a quote']
    proc = lib.run_playbook('restore.yml', '-e', json.dumps(case['extra_vars']))
    out = plain(proc.stdout)
    assert proc.returncode != 0, out[-3000:]
    assert re.search(case['expect'], out), out[-3000:]
    assert 'TASK [Switch to a new WAL segment]' not in out and 'TASK [Stop PostgreSQL' not in out
    assert lib.role_of(primary) == 'primary' and lib.role_of(node('backup-pg2')) == 'standby'
    assert lib.timeline('backup-pg1') == tl


def test_pitr_restore_returns_exactly_the_rows_committed_before_the_target():
    primary = 'backup-pg1'
    app(primary, 'CREATE TABLE pitr (id int PRIMARY KEY, batch text, at timestamptz DEFAULT clock_timestamp())')
    fulls = lib.backup_labels(repo(), 'full')
    proc = lib.run_playbook('backup.yml', '-e', 'backup_type=full')
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert 'BACKUP SUMMARY' in proc.stdout
    assert len(lib.backup_labels(repo(), 'full')) == len(fulls) + 1

    # batch A: one commit per row; then a differential backup
    for i in range(1, 21):
        app(primary, "INSERT INTO pitr (id, batch) VALUES (%d, 'A')" % i)
    proc = lib.run_playbook('backup.yml', '-e', 'backup_type=diff')
    assert proc.returncode == 0, proc.stdout[-4000:]
    diff = lib.backup_labels(repo(), 'diff')[-1]
    # the target: after every commit of batch A, before any of batch B
    target = app(primary, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
    time.sleep(1.5)
    for i in range(101, 121):
        app(primary, "INSERT INTO pitr (id, batch) VALUES (%d, 'B')" % i)
    assert app(primary, "SELECT count(*) FROM pitr WHERE at > '%s'" % target) == '20'
    tl_before = lib.timeline(primary)
    args = ('-e', 'restore_type=time', '-e', "restore_target='%s'" % target)

    # check mode: the plan, with the differential backup, and nothing changes
    proc = lib.run_playbook('restore.yml', '--check', *args)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert 'DECISION: RESTORE' in proc.stdout and 'CHECK MODE' in proc.stdout and diff in proc.stdout
    # without the confirmation: refused, the option named, nothing changed
    proc = lib.run_playbook('restore.yml', *args)
    assert proc.returncode != 0 and 'restore_confirm=true' in proc.stdout, proc.stdout[-3000:]
    assert app(primary, 'SELECT count(*) FROM pitr') == '40' and lib.timeline(primary) == tl_before

    proc = lib.run_playbook('restore.yml', *args, '-e', 'restore_confirm=true')
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert 'RESTORE SUMMARY' in proc.stdout and 'archiving check OK on the new timeline' in proc.stdout, proc.stdout[-4000:]
    # the runbook's write went through the writer VIP, which is back on the restored primary
    assert 'OK via 10.89.72.100' in proc.stdout, proc.stdout[-4000:]
    assert lib.holds_address(node(primary), VIP) and not lib.holds_address(node('backup-pg2'), VIP)
    # exactly batch A, on a new timeline
    assert app(primary, 'SELECT string_agg(id::text, \',\' ORDER BY id) FROM pitr') == \
        ','.join(str(i) for i in range(1, 21))
    assert lib.timeline(primary) > tl_before
    assert lib.role_of(node(primary)) == 'primary'
    # the replica was re-cloned and streams again: a new row reaches it
    replica = node('backup-pg2')
    assert lib.role_of(replica) == 'standby'
    lib.wait_for(lambda: lib.psql(replica, 'SELECT status, slot_name FROM pg_stat_wal_receiver') == 'streaming|backup_pg2',
                 timeout=60, what='backup-pg2 streaming again')
    app(primary, "INSERT INTO pitr (id, batch) VALUES (1000, 'after')")
    lib.wait_for(lambda: app('backup-pg2', 'SELECT count(*) FROM pitr') == '21', timeout=30, what='the new row on pg2')
    # no recovery target left behind for the replicas to obey
    assert lib.psql(node(primary), "SELECT count(*) FROM pg_file_settings WHERE name LIKE 'recovery_target%'") == '0'
    # the schedule is back
    assert 'pgha-backup-full' in lib.psql(node(primary), 'SELECT string_agg(jobname, \',\') FROM cron.job')


def test_restore_drill_fails_clearly_on_a_damaged_repository():
    seen = STATE['seen_at_drill'] = len(notifications())
    label = lib.backup_labels(repo())[-1]
    base = '/var/lib/pgbackrest/backup/main/%s/pg_data' % label
    victim = repo().run("find %s -path '*/base/*' -type f -size +8k -printf '%%s %%p\\n' | sort -n | tail -1" % base) \
        .stdout.split()[-1]
    assert repo().run('cp -p %s /root/victim.save' % victim).rc == 0
    try:
        size = int(repo().run('stat -c %%s %s' % victim).stdout)
        # overwrite the middle of the file with garbage, keep its size
        assert repo().run('dd if=/dev/urandom of=%s bs=1 seek=%d count=512 conv=notrunc' % (victim, size // 2)).rc == 0
        proc = lib.run_playbook('restore_drill.yml')
        assert proc.returncode != 0, proc.stdout[-3000:]
        assert 'RESTORE DRILL FAILED' in proc.stdout and 'FAIL  restore' in proc.stdout, proc.stdout[-3000:]
        assert not repo().file('/var/lib/pgbackrest-drill/main').exists
    finally:
        repo().run('cp -p /root/victim.save %s' % victim)
    # Prometheus reads the result, and the alert reaches the receiver
    lib.wait_for(lambda: drill_metric() == ['0'], timeout=60, interval=2, what='pgha_restore_drill_passed 0 in Prometheus')
    alert = lib.wait_for(lambda: received('firing', 'PghaRestoreDrillFailed', seen, instance='backup-repo'), timeout=60,
                         interval=2, what='PghaRestoreDrillFailed at the receiver')
    assert 'restore_drill' in alert[0][3]['runbook'], alert


def test_restore_drill_passes_on_a_good_repository():
    # the row written after the restore is archived: the drill must find all 21
    last = lib.switch_wal('backup-pg1')
    lib.wait_for(lambda: lib.archiver('backup-pg1')[0][:24] >= last, timeout=60, what='the last WAL archived')
    proc = lib.run_playbook('restore_drill.yml')
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert 'RESTORE DRILL PASSED' in proc.stdout
    assert 'PASS  database app' in proc.stdout
    assert 'PASS  rows app.pitr' in proc.stdout and '21 (at least 1)' in proc.stdout
    assert re.search(r'PASS  rows app\.Public\.PITR +21 \(at least 1\)', proc.stdout), proc.stdout[-3000:]
    assert not repo().file('/var/lib/pgbackrest-drill/main').exists
    assert repo().run('ss -Hltn sport = :5499').stdout.strip() == ''
    # the damaged repository's alert resolves with the good result
    lib.wait_for(lambda: drill_metric() == ['1'], timeout=60, interval=2, what='pgha_restore_drill_passed 1 in Prometheus')
    lib.wait_for(lambda: received('resolved', 'PghaRestoreDrillFailed', STATE['seen_at_drill'], instance='backup-repo'),
                 timeout=60, interval=2, what='PghaRestoreDrillFailed resolved')


def test_logical_dumps_reach_the_backup_host():
    proc = lib.run_playbook('backup.yml', '-e', 'backup_type=dump')
    assert proc.returncode == 0, proc.stdout[-4000:]
    sets = repo().run('ls -1 /var/lib/pgbackrest/dump/main').stdout.split()
    assert sets and sets[-1].endswith('Z') and not sets[-1].endswith('.partial'), sets
    latest = '/var/lib/pgbackrest/dump/main/' + sets[-1]
    toc = repo().run('runuser -u postgres -- /usr/lib/postgresql/17/bin/pg_restore --list %s/app.dump' % latest)
    assert toc.rc == 0 and 'TABLE public pitr' in toc.stdout, toc.stdout + toc.stderr
    assert 'CREATE ROLE pgha_backup' in repo().file(latest + '/globals.sql').content_string
    # nothing stays on the database host
    assert node('backup-pg1').run('find / -xdev -name app.dump 2>/dev/null').stdout.strip() == ''


def test_retention_keeps_backup_retention_full_full_backups():
    """backup_retention_full is 2: a third full backup expires the oldest, and what depends on it."""
    fulls = lib.backup_labels(repo(), 'full')
    assert len(fulls) == 2, fulls                  # site.yml's first one and the PITR test's
    proc = lib.run_playbook('backup.yml', '-e', 'backup_type=full')
    assert proc.returncode == 0, proc.stdout[-4000:]
    after = lib.backup_labels(repo(), 'full')
    assert len(after) == 2 and fulls[0] not in after and fulls[1] in after, (fulls, after)
    # no backup of the repository still refers to the expired one
    for b in lib.pgbackrest_info(repo())['backup']:
        assert b['reference'] is None or fulls[0] not in b['reference'], b['label']


def test_pg_cron_job_runs_on_the_primary_only():
    primary, replica = node('backup-pg1'), node('backup-pg2')
    started = lib.psql(primary, 'SELECT now()')
    incr_before = len(lib.backup_labels(repo(), 'incr'))
    log_before = len(lib.trigger_log(repo()))
    lib.psql(primary, "SELECT cron.alter_job(jobid, schedule := '* * * * *') FROM cron.job "
                      "WHERE jobname = 'pgha-backup-incr'")
    lib.wait_for(lambda: lib.psql(primary, "SELECT count(*) FROM cron.job_run_details d JOIN cron.job j USING (jobid) "
                                           "WHERE j.jobname = 'pgha-backup-incr' AND d.status = 'succeeded' "
                                           "AND d.start_time > '%s'" % started) != '0',
                 timeout=150, interval=3, what='a succeeded run of pgha-backup-incr in cron.job_run_details')
    assert len(lib.backup_labels(repo(), 'incr')) > incr_before
    new = lib.trigger_log(repo())[log_before:]
    assert any('caller=10.89.72.11 backup incr finished rc=0' in line for line in new), new
    assert not any('caller=10.89.72.12' in line for line in new), new
    # pg_cron ran it on the primary; on the standby its scheduler never even started
    assert 'cron job' in lib.pg_log('backup-pg1')
    assert 'cron job' not in lib.pg_log('backup-pg2')
    assert lib.role_of(replica) == 'standby'


def test_systemd_timers_back_up_from_the_primary_only():
    """backup_scheduler=systemd: a timer on every member, whose service runs only on the primary."""
    playbook = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', 'backup_role.yml'))
    every_minute = ('{"backup_scheduler": "systemd", '
                    '"backup_schedule": {"full": "", "diff": "", "incr": "* * * * *", "dump": ""}}')
    log_before = len(lib.trigger_log(repo()))
    incr_before = len(lib.backup_labels(repo(), 'incr'))
    proc = lib.run_playbook_with(lib.inventory_dir(), playbook, '-e', every_minute)
    try:
        assert proc.returncode == 0, proc.stdout[-4000:]
        # no pg_cron job of ours left: one scheduler at a time
        assert lib.psql(node('backup-pg1'), "SELECT count(*) FROM cron.job WHERE jobname LIKE 'pgha-%'") == '0'
        for n in ('backup-pg1', 'backup-pg2'):
            assert node(n).run('systemctl is-active pgha-backup-incr.timer').stdout.strip() == 'active', n
        lib.wait_for(lambda: any('caller=10.89.72.11 backup incr finished rc=0' in line
                                 for line in lib.trigger_log(repo())[log_before:]),
                     timeout=150, interval=3, what="a backup asked for by the primary's timer")
        # the standby's timer fired as well, and its service was skipped, not run
        lib.wait_for(lambda: "Skipped due to 'exec-condition'" in node('backup-pg2').run(
            'journalctl -u pgha-backup@incr.service --no-pager').stdout,
            timeout=90, interval=3, what="the standby's backup service skipped by its ExecCondition")
        assert not any('caller=10.89.72.12' in line for line in lib.trigger_log(repo())[log_before:])
        assert len(lib.backup_labels(repo(), 'incr')) > incr_before
    finally:
        back = lib.run_playbook_with(lib.inventory_dir(), playbook)
    assert back.returncode == 0, back.stdout[-4000:]
    # back to pg_cron: the jobs are in the database again, the timers are gone
    assert 'pgha-backup-incr' in lib.psql(node('backup-pg1'), "SELECT string_agg(jobname, ',') FROM cron.job")
    for n in ('backup-pg1', 'backup-pg2'):
        assert not node(n).file('/etc/systemd/system/pgha-backup-incr.timer').exists, n
        assert not node(n).file('/etc/systemd/system/pgha-backup@.service').exists, n


def test_a_killed_primary_fires_primary_down_naming_promote_and_status_names_the_candidate():
    # every minute, set on the primary: the standby gets the change by replication only
    every_minute = "SELECT cron.alter_job(jobid, schedule := '* * * * *') FROM cron.job WHERE jobname = 'pgha-backup-incr'"
    lib.psql(node('backup-pg1'), every_minute)
    lib.wait_for(lambda: lib.psql(node('backup-pg2'), "SELECT schedule FROM cron.job WHERE jobname = 'pgha-backup-incr'")
                 == '* * * * *', timeout=30, what='the new schedule replicated to backup-pg2')
    # the baselines before the kill: the promoted node may start its first scheduled run
    # before promote.yml returns (pg_cron runs jobs on a primary only, so nothing of
    # backup-pg2's own is older than this; the old primary's runs are earlier, or logged
    # under its own address)
    STATE['before_promotion'] = lib.psql(node('backup-pg2'), 'SELECT now()')
    STATE['log_before'] = len(lib.trigger_log(repo()))
    seen = STATE['seen_at_kill'] = len(notifications())
    lib.podman('kill', 'backup-pg1')
    killed = time.monotonic()
    alert = lib.wait_for(lambda: received('firing', 'PghaPrimaryDown', seen), timeout=120, interval=1,
                         what='PghaPrimaryDown at the receiver')
    took = time.monotonic() - killed
    lib.measured('podman kill of the primary -> PghaPrimaryDown at the webhook receiver: %.1f s' % took)
    assert 'promote' in alert[0][3]['summary'] and 'pgha.cluster.promote' in alert[0][3]['runbook'], alert
    proc = run('status.yml')
    assert proc.returncode == 0, proc.stdout[-4000:]
    said = verdict(proc.stdout)
    assert said.startswith('PRIMARY DOWN') and 'promote.yml' in said and 'backup-pg2' in said, said


def test_after_promote_status_shows_the_new_primary_and_it_runs_the_schedule(tmp_path):
    seen = len(notifications())
    proc = run('promote.yml', timeout=300)
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert lib.current_primary(['backup-pg2']) == 'backup-pg2'
    assert lib.holds_address(node('backup-pg2'), VIP)
    STATE['inventory'] = lib.inventory_as_summary_says(tmp_path, proc.stdout, NAMES)

    # right after the promotion: the table shows the current timeline, the JSON the same, the picture the new primary
    picture = str(tmp_path / 'cluster.svg')
    proc = run('status.yml', '-e', 'status_picture=' + picture)
    assert proc.returncode == 0, proc.stdout[-4000:]
    # the current timeline (of the WAL being written; the last checkpoint's may still be the old one)
    timeline = int(lib.psql(node('backup-pg2'), 'SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)'), 16)
    assert timeline >= 3    # site.yml's 1, the PITR restore's 2
    row = [line for line in proc.stdout.splitlines() if re.search(r'\bbackup-pg2\b.*PRIMARY', line)]
    assert row and re.search(r'PRIMARY\s+%d\b' % timeline, row[0]), proc.stdout[-3000:]
    with open(picture) as f:
        svg = html.unescape(f.read())   # graphviz writes '-' as &#45;
    assert '<svg' in svg and re.search(r'>backup-pg2</text>\s*<text[^>]*>PRIMARY</text>\s*<text[^>]*>timeline %d<'
                                       % timeline, svg), svg
    # the JSON holds what the table shows
    doc = status_json()
    assert doc['primary'] == 'backup-pg2', doc
    assert verdict(proc.stdout).startswith(' '.join(doc['verdict'].split())), (doc['verdict'], proc.stdout[-3000:])
    by_name = dict((n['name'], n) for n in doc['nodes'])
    assert by_name['backup-pg2']['role'] == 'primary' and by_name['backup-pg2']['timeline'] == timeline
    assert by_name['backup-pg1']['reachable'] is False
    for n in doc['nodes']:
        line = [x for x in proc.stdout.splitlines() if re.match(r"^\s*-\s*'?%s\s" % n['name'], x)][0]
        assert (n['role'].upper() if n['role'] in ('primary', 'standby') else n['role']) in line, (n, line)
    lib.wait_for(lambda: received('resolved', 'PghaPrimaryDown', seen), timeout=90, interval=2,
                 what='PghaPrimaryDown resolved')

    # the new primary's pg_cron asks the backup host for the scheduled backup, on the new timeline
    lib.wait_for(lambda: any('caller=10.89.72.12 backup incr finished rc=0' in line
                             for line in lib.trigger_log(repo())[STATE['log_before']:]),
                 timeout=150, interval=3, what='a scheduled backup asked for by the new primary')
    last = lib.pgbackrest_info(repo())['backup'][-1]
    assert last['archive']['start'].startswith('%08X' % timeline), last['archive']
    # pg_cron records the run once the job's COPY returns, a moment after the backup host logged it
    lib.wait_for(lambda: lib.psql(node('backup-pg2'), "SELECT count(*) FROM cron.job_run_details d JOIN cron.job j "
                                                      "USING (jobid) WHERE j.jobname = 'pgha-backup-incr' "
                                                      "AND d.status = 'succeeded' AND d.start_time > '%s'"
                                  % STATE['before_promotion']) != '0',
                 timeout=30, interval=1, what="the new primary's succeeded run in cron.job_run_details")


def test_rejoin_resolves_every_alert_and_status_says_healthy():
    lib.podman('start', 'backup-pg1')
    lib.wait_booted('backup-pg1', IPS['backup-pg1'])
    proc = run('rejoin.yml', '-e', 'rejoin_host=backup-pg1', timeout=300)
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert lib.role_of(node('backup-pg1')) == 'standby'

    # every alert that fired since the kill has been resolved at the receiver, and none is
    # firing or pending
    def key(n):
        return n[1], tuple(sorted(n[2].items()))

    def clear():
        since = notifications()[STATE['seen_at_kill']:]
        fired = set(key(n) for n in since if n[0] == 'firing')
        resolved = set(key(n) for n in since if n[0] == 'resolved')
        return not prom('ALERTS') and fired <= resolved and fired
    try:
        fired = lib.wait_for(clear, timeout=120, interval=3, what='every alert resolved after rejoin.yml')
    except AssertionError as e:
        raise AssertionError('%s\nfiring: %s\nnotifications since the kill: %s' % (
            e, prom('ALERTS'), [(n[0], n[1], n[2]) for n in notifications()[STATE['seen_at_kill']:]]))
    assert ('PghaPrimaryDown', (('alertname', 'PghaPrimaryDown'), ('severity', 'critical'))) in fired, fired
    proc = run('status.yml')
    assert verdict(proc.stdout).startswith('HEALTHY'), proc.stdout[-3000:]


def test_dead_backup_host_does_not_stop_writes_and_archiving_catches_up():
    """The backup host killed: writes go on, archiving fails and the archiving alert reaches the receiver; the
    host back, archiving catches up and the alert resolves."""
    primary = 'backup-pg2'
    # the schedule back to February 29th: no backup run, and no pg_cron write, while the backup host is dead
    lib.psql(node(primary), "SELECT cron.alter_job(jobid, schedule := '30 3 29 2 *') FROM cron.job "
                            "WHERE jobname = 'pgha-backup-incr'")
    failed_before = lib.archiver(primary)[1]
    seen = len(notifications())
    lib.podman('kill', 'backup-repo')
    try:
        started = time.monotonic()
        segments = [lib.switch_wal(primary), lib.switch_wal(primary)]
        app(primary, "INSERT INTO pitr (id, batch) VALUES (2000, 'repo down')")
        assert time.monotonic() - started < 10, 'writes slowed down while the backup host was dead'
        lib.wait_for(lambda: lib.archiver(primary)[1] > failed_before, timeout=60, what='archiving to fail')
        assert lib.archiver(primary)[0] < segments[-1]
        ready = node(primary).run('ls /var/lib/postgresql/17/main/pg_wal/archive_status/').stdout
        assert segments[-1] + '.ready' in ready
        # no more WAL meanwhile: past backup_archive_push_queue_max (64MiB here) pgBackRest would drop the queue
        # and report it archived (the next test); the archiver retries the same segment and fails each time
        alert = lib.wait_for(lambda: received('firing', 'PghaWalArchivingFailing', seen, instance=primary),
                             timeout=180, interval=3, what='PghaWalArchivingFailing at the receiver')
        assert 'backup host' in alert[0][3]['runbook'], alert
    finally:
        lib.podman('start', 'backup-repo')
    lib.wait_for(lambda: repo().run('ss -Hltn sport = :8432').stdout.strip() != '', timeout=60,
                 what='the pgBackRest server back on the backup host')
    last = lib.switch_wal(primary)    # wakes the archiver up
    lib.wait_for(lambda: lib.archiver(primary)[0][:24] >= last, timeout=120, interval=2, what='archiving to catch up')
    archived = lib.pgbackrest_info(repo())['archive'][-1]['max']
    assert archived >= last, (archived, last)
    for seg in segments:
        found = repo().run("find /var/lib/pgbackrest/archive/main -name '%s-*'" % seg).stdout.strip()
        assert found, '%s is not in the repository' % seg
    lib.wait_for(lambda: received('resolved', 'PghaWalArchivingFailing', seen, instance=primary), timeout=120,
                 interval=3, what='PghaWalArchivingFailing resolved')


def test_a_dead_backup_host_cannot_fill_the_primary_disk():
    """Beyond backup_archive_push_queue_max (64MiB here) pgBackRest drops the queued WAL."""
    primary = 'backup-pg2'
    lib.podman('kill', 'backup-repo')
    try:
        segments = [lib.switch_wal(primary) for i in range(6)]       # 6 x 16 MiB > 64 MiB
        lib.wait_for(lambda: lib.archiver(primary)[0][:24] >= segments[-1], timeout=180, interval=2,
                     what='the queue dropped and reported archived')
        ready = node(primary).run('ls /var/lib/postgresql/17/main/pg_wal/archive_status/').stdout
        assert '.ready' not in ready, ready
        assert 'dropped' in lib.pg_log(primary)
    finally:
        lib.podman('start', 'backup-repo')
    lib.wait_booted('backup-repo', IPS['backup-repo'])


def test_site_changes_nothing_after_the_runbooks():
    """promote.yml, rejoin.yml, restore.yml and two dead backup hosts later, with the inventory as promote.yml's
    summary says: site.yml changes nothing on any host."""
    proc = run('site.yml')
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert lib.changed_hosts(proc.stdout) == {}, (lib.changed_hosts(proc.stdout), proc.stdout[-6000:])
    assert set(lib.recap(proc.stdout)) >= set(NAMES + ['backup-repo', 'backup-watch'])
