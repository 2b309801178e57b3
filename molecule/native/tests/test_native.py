"""The native backup engine end to end on real containers (Debian 13, PostgreSQL 17): site.yml sets
it up and takes the first full backup; a chain full -> incremental -> incremental with rows between
them; restore.yml to a time between the two incrementals returns exactly the rows committed before
it; the drill passes, and fails clearly when a parent is missing; retention removes whole chains
only; after podman kill + promote.yml the new primary's schedule takes the next incremental backup on
top of the old primary's, and the drill restores that chain; a dead backup host neither slows writes
nor lets pg_wal grow past the queue limit.

The tests run in file order and build on each other (one cluster, one story).
"""

import json
import re
import time

import pgha_testlib as lib

REPO = '/var/lib/pgbackrest/native/main'
NATIVE = 'runuser -u postgres -- python3 /usr/local/sbin/pgha-native'


def node(name):
    return lib.host(name)


def repo():
    return node('native-repo')


def app(name, sql):
    return lib.psql(node(name), sql, db='app')


def info():
    """pgha-native info --json: the backups, oldest first (the same shape as pgbackrest info)."""
    cmd = repo().run('%s info --json' % NATIVE)
    assert cmd.rc == 0, cmd.stdout + cmd.stderr
    return json.loads(cmd.stdout)[0]


def backups(kind=None):
    return [b for b in info()['backup'] if kind is None or b['type'] == kind]


def waiting(name):
    """WAL segments that wait to be archived in pg_wal."""
    return node(name).run('ls /var/lib/postgresql/17/main/pg_wal/archive_status/').stdout.count('.ready')


def commits(name, first):
    """Seconds 200 single-row commits take, measured on the node itself (one psql, one transaction each)."""
    sql = ' '.join("-c \"INSERT INTO chain (id, batch) VALUES (%d, 'timed')\"" % i for i in range(first, first + 200))
    out = node(name).check_output(
        's=$(date +%%s%%N); runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -d app %s >/dev/null; '
        'echo $(( $(date +%%s%%N) - s ))' % sql)
    return int(out) / 1e9


def repo_alive():
    return lib.podman('inspect', '-f', '{{.State.Running}}', 'native-repo', check=False).stdout.strip() == 'true'


def backup(kind):
    proc = lib.run_playbook('backup.yml', '-e', 'backup_type=%s' % kind)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert 'BACKUP SUMMARY' in proc.stdout
    return backups()[-1]


def plain(text):
    return re.sub(r'\x1b\[[0-9;]*m', '', text)


def test_site_set_up_the_native_engine():
    for n in ('native-pg1', 'native-pg2'):
        # every member summarizes its WAL and archives through the SSH trigger; no pgBackRest anywhere
        assert lib.psql(node(n), 'SHOW summarize_wal') == 'on'
        assert lib.psql(node(n), 'SHOW wal_summary_keep_time') == '10d'
        assert lib.psql(node(n), 'SHOW archive_command') == '/usr/local/bin/pgha-backup wal-put %p %f'
        assert not node(n).package('pgbackrest').is_installed
        # the backup host is let in for replication (and its backups' senders and slot are counted)
        hba = lib.psql(node(n), "SELECT string_agg(address || '/' || netmask, ',') FROM pg_hba_file_rules "
                                "WHERE 'replication' = ANY(database) AND address = '10.89.76.20'")
        assert hba == '10.89.76.20/255.255.255.255', hba
        assert int(lib.psql(node(n), 'SHOW max_wal_senders')) >= 2 * 1 + 2 + 2
    assert not repo().package('pgbackrest').is_installed
    # the first full backup, checked and recorded
    (full,) = backups()
    assert full['type'] == 'full' and full['prior'] is None and full['reference'] == [full['label']]
    assert not full['error'] and full['lsn']['start'] and full['lsn']['stop']
    assert repo().file('%s/backup/%s/backup_manifest' % (REPO, full['label'])).exists
    check = repo().run('%s check' % NATIVE)
    assert check.rc == 0 and 'reached' in check.stdout, check.stdout + check.stderr


def test_a_summary_keep_time_shorter_than_the_gap_between_fulls_is_refused_before_any_change():
    """An incremental backup reads the WAL summaries back to its parent: wal_summary_keep_time must outlast the week
    between two scheduled fulls. 3 days is refused in preflight, naming the variable and the value to set."""
    files = ('/etc/postgresql/17/main/postgresql.conf', '/usr/local/bin/pgha-backup')
    before = dict((n, [node(n).file(f).md5sum for f in files]) for n in ('native-pg1', 'native-pg2'))
    proc = lib.run_playbook('site.yml', '-e', 'backup_wal_summary_keep_time=3d')
    out = ' '.join(plain(proc.stdout).split())
    assert proc.returncode != 0
    assert re.search(r"backup_wal_summary_keep_time=3d is shorter than the longest gap between two full backups "
                     r"\(backup_schedule.full '+0 3 \* \* 0'+: 7 days\).*set backup_wal_summary_keep_time to 169h or "
                     r"more", out), out[-3000:]
    assert lib.changed_hosts(proc.stdout) == {}
    assert before == dict((n, [node(n).file(f).md5sum for f in files]) for n in ('native-pg1', 'native-pg2'))
    assert lib.psql(node('native-pg1'), 'SHOW wal_summary_keep_time') == '10d'


def test_a_chain_of_incremental_backups_and_a_restore_to_a_time_between_them():
    """full, rows A, incremental, rows B, [target], incremental, rows C: restore.yml to the target picks the first
    incremental, combines it with its full and replays the archived WAL: exactly A and B come back."""
    primary = 'native-pg1'
    app(primary, 'CREATE TABLE chain (id int PRIMARY KEY, batch text, at timestamptz DEFAULT clock_timestamp())')
    full = backup('full')
    assert full['type'] == 'full'
    for i in range(1, 21):
        app(primary, "INSERT INTO chain (id, batch) VALUES (%d, 'A')" % i)
    first = backup('incr')
    for i in range(101, 121):
        app(primary, "INSERT INTO chain (id, batch) VALUES (%d, 'B')" % i)
    target = app(primary, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
    time.sleep(1.5)
    second = backup('incr')
    for i in range(201, 221):
        app(primary, "INSERT INTO chain (id, batch) VALUES (%d, 'C')" % i)
    # the chain is recorded: each incremental names its parent, and its whole reference chain
    assert (first['type'], first['prior'], first['reference']) == ('incr', full['label'], [full['label'], first['label']])
    assert (second['prior'], second['reference']) == (first['label'], [full['label'], first['label'], second['label']])
    # an incremental copy is a fraction of a full one
    assert second['info']['repository']['delta'] < full['info']['repository']['delta'] / 2, (second, full)
    lib.measured('native: full backup %d bytes stored, incremental %d bytes' % (
        full['info']['repository']['delta'], second['info']['repository']['delta']))

    args = ('-e', 'restore_type=time', '-e', "restore_target='%s'" % target)
    proc = lib.run_playbook('restore.yml', '--check', *args)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert 'DECISION: RESTORE' in proc.stdout and first['label'] in proc.stdout and 'CHECK MODE' in proc.stdout
    tl_before = lib.timeline(primary)
    proc = lib.run_playbook('restore.yml', *args, '-e', 'restore_confirm=true')
    out = plain(proc.stdout)
    assert proc.returncode == 0, out[-6000:]
    assert 'RESTORE SUMMARY' in out and 'pg_combinebackup of %s' % first['label'] in out, out[-4000:]
    assert 'archiving check OK on the new timeline' in out, out[-4000:]
    # exactly batches A and B, on a new timeline
    assert app(primary, "SELECT string_agg(id::text, ',' ORDER BY id) FROM chain") == \
        ','.join(str(i) for i in list(range(1, 21)) + list(range(101, 121)))
    assert lib.timeline(primary) > tl_before and lib.role_of(node(primary)) == 'primary'
    # nothing of the restore's recovery settings left behind; the old data directory kept aside
    assert lib.psql(node(primary), "SELECT count(*) FROM pg_file_settings WHERE name LIKE 'recovery%' "
                                   "OR name = 'restore_command'") == '0'
    assert node(primary).run('ls -d /var/lib/postgresql/17/main.pgha-before-restore-*').rc == 0
    # the replica was re-cloned and streams again
    replica = node('native-pg2')
    lib.wait_for(lambda: lib.psql(replica, 'SELECT status FROM pg_stat_wal_receiver') == 'streaming', timeout=60,
                 what='native-pg2 streaming again')
    app(primary, "INSERT INTO chain (id, batch) VALUES (1000, 'after')")
    lib.wait_for(lambda: app('native-pg2', 'SELECT count(*) FROM chain') == '41', timeout=30, what='the row on pg2')


def test_the_drill_passes_on_a_new_chain():
    backup('full')
    backup('incr')
    last = lib.switch_wal('native-pg1')
    lib.wait_for(lambda: lib.archiver('native-pg1')[0][:24] >= last, timeout=60, what='the last WAL archived')
    proc = lib.run_playbook('restore_drill.yml')
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert 'RESTORE DRILL PASSED' in proc.stdout
    assert 'PASS  database app' in proc.stdout and 'PASS  rows app.chain' in proc.stdout
    assert '41 (at least 1)' in proc.stdout, proc.stdout[-3000:]
    assert not repo().file('/var/lib/pgbackrest-drill/main').exists


def test_a_missing_parent_fails_the_drill_clearly():
    latest = backups()[-1]
    parent = latest['prior']
    assert parent
    moved = '/root/%s.aside' % parent
    assert repo().run('mv %s/backup/%s %s' % (REPO, parent, moved)).rc == 0
    try:
        assert [b['error'] for b in backups() if b['label'] == latest['label']] == [True]
        proc = lib.run_playbook('restore_drill.yml')
        out = plain(proc.stdout)
        assert proc.returncode != 0, out[-3000:]
        assert 'RESTORE DRILL FAILED' in out and 'FAIL  restore' in out, out[-3000:]
        assert re.search(r'needs\s+%s,\s+which\s+is\s+missing' % parent, out), out[-3000:]
    finally:
        repo().run('mv %s %s/backup/%s' % (moved, REPO, parent))
    assert not [b for b in backups() if b['error']]


def test_retention_removes_whole_chains_only():
    """backup_retention_full=2: a third full removes the oldest full and every incremental of its chain, never a
    parent a kept backup needs, and the WAL only they needed."""
    before = backups()
    fulls = [b['label'] for b in before if b['type'] == 'full']
    assert len(fulls) >= 2
    backup('full')
    after = backups()
    kept = [b['label'] for b in after]
    kept_fulls = [b['label'] for b in after if b['type'] == 'full']
    assert len(kept_fulls) == 2 and fulls[-1] in kept_fulls
    for b in after:
        assert not b['error'] and all(label in kept for label in b['reference']), b
    gone = [b for b in before if b['label'] not in kept]
    assert gone and all(b['reference'][0] not in kept_fulls for b in gone)
    # the WAL before the oldest kept backup is gone, the history files stay
    oldest = after[0]['archive']['start']
    wal = repo().run('ls %s/wal' % REPO).stdout.split()
    segments = [w for w in wal if re.match(r'^[0-9A-F]{24}$', w)]
    assert segments and min(s[8:] for s in segments) >= oldest[8:], (oldest, segments[:3])
    assert [w for w in wal if w.endswith('.history')]


def trigger_log():
    return repo().run('cat /var/log/pgbackrest/pgha-trigger.log').stdout.splitlines()


def test_after_failover_the_new_primary_runs_the_schedule_and_the_chain_goes_on():
    """The pg_cron schedule lives in the database: after podman kill + promote.yml the new primary asks for the
    scheduled incremental backup, which builds on a backup taken from the old primary (PostgreSQL 17 reads the WAL
    summaries the standby kept) across the timeline switch, and the drill restores that chain."""
    every_minute = "SELECT cron.alter_job(jobid, schedule := '* * * * *') FROM cron.job WHERE jobname = 'pgha-backup-incr'"
    lib.psql(node('native-pg1'), every_minute)
    lib.wait_for(lambda: lib.psql(node('native-pg2'), "SELECT schedule FROM cron.job WHERE jobname = 'pgha-backup-incr'")
                 == '* * * * *', timeout=30, what='the new schedule replicated to native-pg2')
    parent = backups()[-1]
    lib.podman('kill', 'native-pg1')
    proc = lib.run_playbook('promote.yml')
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert lib.current_primary(['native-pg1', 'native-pg2']) == 'native-pg2'
    new_tl = lib.timeline('native-pg2')
    log_before = len(trigger_log())
    lib.wait_for(lambda: any('caller=10.89.76.12 backup incr finished rc=0' in line for line in trigger_log()[log_before:]),
                 timeout=150, interval=3, what='a scheduled backup asked for by the new primary')
    lib.psql(node('native-pg2'), "SELECT cron.alter_job(jobid, schedule := '30 3 * * 0') FROM cron.job "
                                 "WHERE jobname = 'pgha-backup-incr'")
    newest = [b for b in backups() if b['type'] == 'incr'][-1]
    # taken from the new primary, on its timeline, on top of the old primary's last backup
    assert (newest['prior'], newest['timeline'], newest['error']) == (parent['label'], new_tl, False), (parent, newest)
    assert newest['reference'] == parent['reference'] + [newest['label']]
    app('native-pg2', "INSERT INTO chain (id, batch) VALUES (5000, 'after failover')")
    last = lib.switch_wal('native-pg2')
    lib.wait_for(lambda: lib.archiver('native-pg2')[0][:24] >= last, timeout=60, what='the new primary archiving')
    proc = lib.run_playbook('restore_drill.yml')
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert 'RESTORE DRILL PASSED' in proc.stdout and newest['label'] in proc.stdout, proc.stdout[-3000:]


def test_a_dead_backup_host_neither_slows_writes_nor_fills_pg_wal():
    """Writes go on while the backup host is dead; past backup_archive_push_queue_max (64MiB here) the archive
    command drops WAL (with a warning) instead of keeping it; archiving resumes when the host is back."""
    primary = 'native-pg2'
    failed_before = lib.archiver(primary)[1]
    healthy = commits(primary, 3000)
    lib.podman('kill', 'native-repo')
    try:
        dead = commits(primary, 4000)
        assert dead < 3 * healthy + 1, 'writes slowed down while the backup host was dead: 200 commits in %.2fs, ' \
            '%.2fs with it up' % (dead, healthy)
        lib.measured('native: 200 commits in %.2fs with the backup host up, %.2fs with it dead' % (healthy, dead))
        segments = [lib.switch_wal(primary) for i in range(6)]      # 6 x 16 MiB > 64 MiB
        lib.wait_for(lambda: lib.archiver(primary)[1] > failed_before, timeout=60, what='archiving to fail')
        # the oldest are dropped (reported archived) until what waits fits in the limit again
        lib.wait_for(lambda: lib.archiver(primary)[0][:24] >= segments[1], timeout=240, interval=3,
                     what='the WAL over the limit dropped and reported archived')
        lib.wait_for(lambda: waiting(primary) <= 64 // 16, timeout=120, interval=3, what='at most 64 MiB waiting')
        assert 'DROPPED' in lib.pg_log(primary) and 'backup_archive_push_queue_max' in lib.pg_log(primary)
        assert not repo_alive(), 'the backup host came back too early'
        lib.measured('native, backup host dead: %d segment(s) of WAL waiting, the rest dropped' % waiting(primary))
    finally:
        lib.podman('start', 'native-repo')
    lib.wait_for(lambda: repo().run('systemctl is-active ssh').stdout.strip() == 'active', timeout=60,
                 what='sshd back on the backup host')
    last = lib.switch_wal(primary)
    lib.wait_for(lambda: lib.archiver(primary)[0][:24] >= last, timeout=120, interval=2, what='archiving to resume')
    assert repo().file('%s/wal/%s' % (REPO, last)).exists
