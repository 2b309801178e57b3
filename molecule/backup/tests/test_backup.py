"""Backups end to end on real containers: pgBackRest on the backup host, WAL
archiving, backup.yml, restore.yml to a point in time, restore drills on a
good and a damaged repository, logical dumps, the pg_cron schedule on the
primary only and on the new primary after promote.yml, and a dead backup host
that does not stop writes.

The tests run in file order and build on each other (one cluster, one story).
"""

import os
import time

import pgha_testlib as lib

VIP = '10.89.72.100'


def node(name):
    return lib.host(name)


def repo():
    return node('backup-repo')


def app(name, sql):
    return lib.psql(node(name), sql, db='app')


def timeline(name):
    """The primary's current timeline (its WAL file name; the control file lags until a checkpoint)."""
    return int(lib.psql(node(name), 'SELECT pg_walfile_name(pg_current_wal_lsn())')[:8], 16)


def pg_log(name):
    return node(name).run('cat /var/log/postgresql/postgresql-15-main.log').stdout


def switch_wal(name):
    """A row, then a WAL switch: returns the segment that must be archived."""
    lib.psql(node(name), 'CREATE TABLE IF NOT EXISTS walpush (id serial, at timestamptz DEFAULT now())')
    lib.psql(node(name), 'INSERT INTO walpush DEFAULT VALUES')
    return lib.psql(node(name), 'SELECT pg_walfile_name(pg_switch_wal())')


def archiver(name):
    last, failed = lib.psql(node(name), "SELECT coalesce(last_archived_wal, ''), failed_count FROM pg_stat_archiver") \
        .split('|')
    return last, int(failed)


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


def test_backup_role_check_mode_changes_nothing():
    playbook = os.path.join(os.path.dirname(__file__), '..', 'backup_role.yml')
    proc = lib.run_playbook_with(lib.inventory_dir(), os.path.abspath(playbook), '--check')
    assert proc.returncode == 0, proc.stdout[-4000:]
    recap = [line for line in proc.stdout.splitlines() if 'changed=' in line and ':' in line]
    assert len(recap) == 3 and all(' changed=0 ' in line for line in recap), '\n'.join(recap)


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
    tl_before = timeline(primary)
    args = ('-e', 'restore_type=time', '-e', "restore_target='%s'" % target)

    # check mode: the plan, with the differential backup, and nothing changes
    proc = lib.run_playbook('restore.yml', '--check', *args)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert 'DECISION: RESTORE' in proc.stdout and 'CHECK MODE' in proc.stdout and diff in proc.stdout
    # without the confirmation: refused, the option named, nothing changed
    proc = lib.run_playbook('restore.yml', *args)
    assert proc.returncode != 0 and 'restore_confirm=true' in proc.stdout, proc.stdout[-3000:]
    assert app(primary, 'SELECT count(*) FROM pitr') == '40' and timeline(primary) == tl_before

    proc = lib.run_playbook('restore.yml', *args, '-e', 'restore_confirm=true')
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert 'RESTORE SUMMARY' in proc.stdout and 'pgbackrest check OK' in proc.stdout, proc.stdout[-4000:]
    # the runbook's write went through the writer VIP, which is back on the restored primary
    assert 'OK via 10.89.72.100' in proc.stdout, proc.stdout[-4000:]
    assert lib.holds_address(node(primary), VIP) and not lib.holds_address(node('backup-pg2'), VIP)
    # exactly batch A, on a new timeline
    assert app(primary, 'SELECT string_agg(id::text, \',\' ORDER BY id) FROM pitr') == \
        ','.join(str(i) for i in range(1, 21))
    assert timeline(primary) > tl_before
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


def test_restore_drill_passes_on_a_good_repository():
    # the row written after the restore is archived: the drill must find all 21
    last = switch_wal('backup-pg1')
    lib.wait_for(lambda: archiver('backup-pg1')[0][:24] >= last, timeout=60, what='the last WAL archived')
    proc = lib.run_playbook('restore_drill.yml')
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert 'RESTORE DRILL PASSED' in proc.stdout
    assert 'PASS  database app' in proc.stdout
    assert 'PASS  rows app.pitr' in proc.stdout and '21 (at least 1)' in proc.stdout
    assert not repo().file('/var/lib/pgbackrest-drill/main').exists
    assert repo().run('ss -Hltn sport = :5499').stdout.strip() == ''


def test_restore_drill_fails_clearly_on_a_damaged_repository():
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


def test_logical_dumps_reach_the_backup_host():
    proc = lib.run_playbook('backup.yml', '-e', 'backup_type=dump')
    assert proc.returncode == 0, proc.stdout[-4000:]
    sets = repo().run('ls -1 /var/lib/pgbackrest/dump/main').stdout.split()
    assert sets and sets[-1].endswith('Z') and not sets[-1].endswith('.partial'), sets
    latest = '/var/lib/pgbackrest/dump/main/' + sets[-1]
    toc = repo().run('runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_restore --list %s/app.dump' % latest)
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
    assert 'cron job' in pg_log('backup-pg1')
    assert 'cron job' not in pg_log('backup-pg2')
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


def test_after_failover_the_new_primary_runs_the_schedule():
    # every minute, set on the primary: the standby gets the change by replication only
    every_minute = "SELECT cron.alter_job(jobid, schedule := '* * * * *') FROM cron.job WHERE jobname = 'pgha-backup-incr'"
    lib.psql(node('backup-pg1'), every_minute)
    lib.wait_for(lambda: lib.psql(node('backup-pg2'), "SELECT schedule FROM cron.job WHERE jobname = 'pgha-backup-incr'")
                 == '* * * * *', timeout=30, what='the new schedule replicated to backup-pg2')
    lib.podman('kill', 'backup-pg1')
    proc = lib.run_playbook('promote.yml')
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert lib.current_primary(['backup-pg1', 'backup-pg2']) == 'backup-pg2'
    assert lib.holds_address(node('backup-pg2'), VIP)
    new_tl = timeline('backup-pg2')
    promoted = lib.psql(node('backup-pg2'), 'SELECT now()')
    log_before = len(lib.trigger_log(repo()))
    lib.wait_for(lambda: any('caller=10.89.72.12 backup incr finished rc=0' in line
                             for line in lib.trigger_log(repo())[log_before:]),
                 timeout=150, interval=3, what='a scheduled backup asked for by the new primary')
    last = lib.pgbackrest_info(repo())['backup'][-1]
    assert last['archive']['start'].startswith('%08X' % new_tl), last['archive']
    # pg_cron records the run once the job's COPY returns, a moment after the backup host logged it
    lib.wait_for(lambda: lib.psql(node('backup-pg2'), "SELECT count(*) FROM cron.job_run_details d JOIN cron.job j "
                                                      "USING (jobid) WHERE j.jobname = 'pgha-backup-incr' "
                                                      "AND d.status = 'succeeded' AND d.start_time > '%s'"
                                  % promoted) != '0',
                 timeout=30, interval=1, what="the new primary's succeeded run in cron.job_run_details")


def test_dead_backup_host_does_not_stop_writes_and_archiving_catches_up():
    primary = 'backup-pg2'
    failed_before = archiver(primary)[1]
    lib.podman('kill', 'backup-repo')
    try:
        started = time.monotonic()
        segments = [switch_wal(primary), switch_wal(primary)]
        app(primary, "INSERT INTO pitr (id, batch) VALUES (2000, 'repo down')")
        assert time.monotonic() - started < 10, 'writes slowed down while the backup host was dead'
        lib.wait_for(lambda: archiver(primary)[1] > failed_before, timeout=60, what='archiving to fail')
        assert archiver(primary)[0] < segments[-1]
        ready = node(primary).run('ls /var/lib/postgresql/15/main/pg_wal/archive_status/').stdout
        assert segments[-1] + '.ready' in ready
    finally:
        lib.podman('start', 'backup-repo')
    lib.wait_for(lambda: repo().run('ss -Hltn sport = :8432').stdout.strip() != '', timeout=60,
                 what='the pgBackRest server back on the backup host')
    last = switch_wal(primary)    # wakes the archiver up
    lib.wait_for(lambda: archiver(primary)[0][:24] >= last, timeout=120, interval=2, what='archiving to catch up')
    archived = lib.pgbackrest_info(repo())['archive'][-1]['max']
    assert archived >= last, (archived, last)
    for seg in segments:
        found = repo().run("find /var/lib/pgbackrest/archive/main -name '%s-*'" % seg).stdout.strip()
        assert found, '%s is not in the repository' % seg


def test_a_dead_backup_host_cannot_fill_the_primary_disk():
    """Beyond backup_archive_push_queue_max (64MiB here) pgBackRest drops the queued WAL."""
    primary = 'backup-pg2'
    lib.psql(node(primary), "SELECT cron.alter_job(jobid, schedule := '30 3 29 2 *') FROM cron.job "
                            "WHERE jobname = 'pgha-backup-incr'")
    lib.podman('kill', 'backup-repo')
    try:
        segments = [switch_wal(primary) for i in range(6)]       # 6 x 16 MiB > 64 MiB
        lib.wait_for(lambda: archiver(primary)[0][:24] >= segments[-1], timeout=180, interval=2,
                     what='the queue dropped and reported archived')
        ready = node(primary).run('ls /var/lib/postgresql/15/main/pg_wal/archive_status/').stdout
        assert '.ready' not in ready, ready
        assert 'dropped' in pg_log(primary)
    finally:
        lib.podman('start', 'backup-repo')
