"""What a DBA checks by hand after building a primary with two streaming
replicas, asserted on the real containers."""

import json
import re
import uuid

import pytest

import pgha_testlib as lib

SERVICE = 'postgresql@17-main'


def slot_of(node):
    return re.sub(r'[^a-z0-9_]', '_', node.backend.hostname.lower())


def test_postgresql_active_everywhere(nodes):
    for node in nodes:
        assert node.service(SERVICE).is_running, node.backend.hostname
        assert node.service(SERVICE).is_enabled, node.backend.hostname


def test_roles_primary_and_replicas(primary, replicas):
    assert lib.psql(primary, 'SELECT pg_is_in_recovery()') == 'f'
    for node in replicas:
        assert lib.psql(node, 'SELECT pg_is_in_recovery()') == 't', node.backend.hostname


def test_replicas_reject_writes(replicas):
    for node in replicas:
        cmd = lib.psql(node, 'CREATE TABLE must_fail (id int)', check=False)
        assert cmd.rc != 0
        assert 'read-only transaction' in cmd.stderr, cmd.stderr


def test_each_replica_streams_on_its_own_active_slot(primary, replicas):
    rows = lib.psql(primary, """
        SELECT r.application_name, r.state, s.slot_name, s.active, s.slot_type
          FROM pg_stat_replication r
          JOIN pg_replication_slots s ON s.active_pid = r.pid
         ORDER BY 1""").splitlines()
    expected = ['%s|streaming|%s|t|physical' % (slot_of(n), slot_of(n)) for n in replicas]
    assert rows == sorted(expected)
    # and each replica's WAL receiver uses that slot, from the primary
    for node in replicas:
        row = lib.psql(node, 'SELECT status, slot_name FROM pg_stat_wal_receiver')
        assert row == 'streaming|%s' % slot_of(node)


def test_replication_connections_use_tls(primary):
    rows = lib.psql(primary, """
        SELECT bool_and(s.ssl), count(*) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)""")
    assert rows == 't|2'


def test_rows_written_on_primary_appear_on_replicas(primary, replicas):
    token = uuid.uuid4().hex
    lib.psql(primary, 'CREATE TABLE IF NOT EXISTS probe (token text PRIMARY KEY, at timestamptz DEFAULT now())',
             db='app')
    lib.psql(primary, "INSERT INTO probe (token) SELECT '%s' || g FROM generate_series(1, 1000) g" % token,
             db='app')
    for node in replicas:
        lib.wait_for(lambda: lib.psql(node, "SELECT count(*) FROM probe WHERE token LIKE '%s%%'" % token,
                                      db='app') == '1000',
                     timeout=20, what='1000 rows on %s' % node.backend.hostname)


def test_shared_settings_and_host_override(nodes, groups):
    for node in nodes:
        name = node.backend.hostname
        assert lib.psql(node, 'SHOW shared_buffers') == '64MB', name
        assert lib.psql(node, 'SHOW log_min_duration_statement') == '250ms', name
        assert lib.psql(node, 'SHOW wal_log_hints') == 'on', name
        assert lib.psql(node, 'SHOW data_checksums') == 'on', name
        expected_work_mem = '24MB' if name == 'default-pg3' else '4MB'
        assert lib.psql(node, 'SHOW work_mem') == expected_work_mem, name
        # the override comes from the separate per-host file
        source = lib.psql(node, "SELECT sourcefile FROM pg_settings WHERE name = 'work_mem'")
        assert source == ('/etc/postgresql/17/main/pgha-host.conf' if name == 'default-pg3' else '')


def test_no_trust_for_network_connections(nodes):
    for node in nodes:
        rows = lib.psql(node, """
            SELECT count(*) FILTER (WHERE type <> 'local' AND auth_method = 'trust'),
                   count(*) FILTER (WHERE error IS NOT NULL),
                   count(*) FILTER (WHERE type = 'hostssl' AND 'replication' = ANY(database)
                                    AND auth_method = 'scram-sha-256'),
                   count(*) FILTER (WHERE type = 'hostssl' AND database = '{postgres}'
                                    AND address = '10.89.74.100' AND auth_method = 'scram-sha-256')
              FROM pg_hba_file_rules""")
        # no trust, no broken line, one scram replication rule per cluster member; the writer VIP only
        # for database postgres (the runbooks' write probe from the node holding it), not replication
        assert rows == '0|0|3|1', node.backend.hostname


def test_no_password_in_standby_configuration(replicas):
    for node in replicas:
        conninfo = lib.psql(node, 'SHOW primary_conninfo')
        assert 'password' not in conninfo
        assert 'application_name=%s' % slot_of(node) in conninfo
        pgpass = node.file('/var/lib/postgresql/.pgpass')
        assert pgpass.user == 'postgres' and pgpass.mode == 0o600


def test_replicas_are_clones_of_the_primary(primary, replicas):
    query = 'SELECT system_identifier FROM pg_control_system()'
    ident = lib.psql(primary, query)
    for node in replicas:
        assert lib.psql(node, query) == ident


def test_check_mode_reports_but_changes_nothing(check_run):
    out, before, after = check_run
    assert "+shared_buffers = '80MB'" in out  # the plan shows the change
    assert after['postgresql.conf'] == before['postgresql.conf']
    assert after['started'] == before['started']
    assert set(after['shared_buffers'].values()) == {'64MB'}


@pytest.fixture(scope='module')
def check_run(nodes, tmp_path_factory):
    """ONE site.yml --check --diff -vvv serves four tests (a full check run is minutes on this machine): a
    restart-only setting changed (the plan shows it, nothing happens), sentinel secrets (seen as changes, never
    printed), postgresql_start_guard=false (its removal planned) and inputs the catalogue refuses, let through
    by naming their risks (RISKY). Returns (output, state before, after)."""
    extra = tmp_path_factory.mktemp('check') / 'extra.json'
    extra.write_text(json.dumps(dict(SENTINELS, postgresql_start_guard=False, postgresql_settings=dict(
        {'shared_buffers': '80MB', 'log_min_duration_statement': 250}, **RISKY['settings']),
        **RISKY['vars'])))

    def state():
        return {'postgresql.conf': {n.backend.hostname: n.file('/etc/postgresql/17/main/postgresql.conf').md5sum
                                    for n in nodes},
                'keepalived.conf': {n.backend.hostname: n.file('/etc/keepalived/keepalived.conf').md5sum
                                    for n in nodes},
                'started': _start_times(nodes),
                'shared_buffers': {n.backend.hostname: lib.psql(n, 'SHOW shared_buffers') for n in nodes},
                'fence watch running': {n.backend.hostname: n.service('pgha-fence-watch').is_running for n in nodes},
                'guard drop-in': {n.backend.hostname: n.file('/etc/systemd/system/%s.service.d/pgha-guard.conf'
                                                             % SERVICE).exists for n in nodes}}
    before = state()
    proc = lib.run_playbook('site.yml', '--check', '--diff', '-vvv', '-e', '@%s' % extra)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc.stdout, before, state()


#: What test_bad_input refuses (trust from the network, fsync=off, a misspelled name), with the overrides that
#: let each through: postgresql_accepted_risks naming its risk, postgresql_unknown_variables_allowed.
RISKY = {
    'settings': {'fsync': False},
    'vars': {'postgresql_accepted_risks': ['network_logins_without_password', 'data_corruption'],
             'postgresql_hba_entries': [{'contype': 'hostssl', 'databases': 'app', 'users': 'app',
                                         'source': '10.89.74.0/24', 'method': 'trust'}],
             'postgresql_unknown_variables_allowed': True,
             'postgresql_setings': {'work_mem': '8MB'}},
}


def test_a_named_risk_lifts_its_refusal(check_run):
    """Named in postgresql_accepted_risks, trust from the network and fsync=off pass the preflight and the plan
    shows them; a misspelled name with postgresql_unknown_variables_allowed is a warning. Check mode: nothing
    happens."""
    out, before, after = check_run
    conf = lib.task_output(out, 'pgha.cluster.postgresql : Configure | Render postgresql.conf')
    assert re.search(r'^\+fsync = off$', conf, re.M), conf[-3000:]
    hba = lib.task_output(out, 'pgha.cluster.postgresql : Configure | Manage pg_hba.conf')
    # the module shows the file it would write (pg_hba_string), not a diff
    assert re.search(r'changed: \[default-pg1\]', hba), hba[-3000:]
    assert re.search(r'^\s+hostssl\s+app\s+app\s+10\.89\.74\.0/24\s+trust\s*$', hba, re.M), hba[-3000:]
    assert 'WARNING: postgresql_setings is not a variable of any role or runbook of pgha.cluster (did you mean ' \
           'postgresql_settings?)' in ' '.join(out.split())
    assert after['postgresql.conf'] == before['postgresql.conf']
    for node in ('default-pg1', 'default-pg2'):
        assert lib.psql(lib.host(node), "SELECT count(*) FROM pg_hba_file_rules WHERE 'trust' = auth_method") == '0'
        assert lib.psql(lib.host(node), 'SHOW fsync') == 'on'


def _start_times(nodes):
    return {n.backend.hostname: lib.psql(n, 'SELECT pg_postmaster_start_time()') for n in nodes}


def test_reload_for_reloadable_settings_restart_only_when_needed(nodes):
    """A reloadable change reloads (no restart); a restart-only change restarts.

    One site.yml run does both, host by host (extra variables are templated per
    host): the primary and default-pg3 get a reloadable change only, default-pg2
    a restart-only one. A second run puts the inventory's settings back.
    """
    # extra variables replace the whole dict: pg3 keeps its inventory override (work_mem)
    changed = {'default-pg1': {'log_min_duration_statement': 300},
               'default-pg2': {'shared_buffers': '96MB'},
               'default-pg3': {'work_mem': '24MB', 'log_min_duration_statement': 300}}
    per_host = '{{ %s[inventory_hostname] }}' % json.dumps(changed)
    pg3 = [n for n in nodes if n.backend.hostname == 'default-pg3'][0]
    started = _start_times(nodes)
    try:
        lib.run_playbook('site.yml', '-e', json.dumps({'postgresql_host_settings': per_host}), check=True)
        now = _start_times(nodes)
        for node in nodes:
            name = node.backend.hostname
            if name == 'default-pg2':
                assert lib.psql(node, 'SHOW shared_buffers') == '96MB', name
                assert lib.psql(node, 'SHOW log_min_duration_statement') == '250ms', name
                assert now[name] != started[name], '%s was not restarted for shared_buffers' % name
            else:
                assert lib.psql(node, 'SHOW log_min_duration_statement') == '300ms', name
                assert lib.psql(node, 'SHOW shared_buffers') == '64MB', name
                assert now[name] == started[name], 'a reloadable setting restarted PostgreSQL on %s' % name
        assert lib.psql(pg3, 'SHOW work_mem') == '24MB'
    finally:
        # back to the scenario's inventory settings
        lib.run_playbook('site.yml', check=True)
    for node in nodes:
        assert lib.psql(node, 'SHOW shared_buffers') == '64MB'
        assert lib.psql(node, 'SHOW log_min_duration_statement') == '250ms'
    assert lib.psql(pg3, 'SHOW work_mem') == '24MB'
    # and the replicas still stream after their restarts
    for node in nodes[1:]:
        lib.wait_for(lambda: lib.psql(node, 'SELECT status FROM pg_stat_wal_receiver') == 'streaming',
                     timeout=30, what='%s streaming again' % node.backend.hostname)


# --------------------------------------------------------------------------
# A configuration PostgreSQL rejects is rolled back
# --------------------------------------------------------------------------

SETTINGS = {'shared_buffers': '64MB', 'log_min_duration_statement': 250}
CONF_DIR = '/etc/postgresql/17/main'


def _conf_state(nodes):
    return {n.backend.hostname: (lib.config_fingerprint(n, (CONF_DIR,)),
                                 n.run('ls %s | grep -c "~$" || true' % CONF_DIR).stdout.strip()) for n in nodes}


def test_a_value_postgresql_rejects_is_rolled_back(nodes):
    """pg_file_settings rejects it: the previous files are put back, the server never saw it."""
    before, started = _conf_state(nodes), _start_times(nodes)
    proc = lib.run_playbook('site.yml', '-e', '{"postgresql_settings": %s}' % json.dumps(dict(SETTINGS, work_mem='lots')))
    assert proc.returncode != 0
    flat = ' '.join(proc.stdout.split())
    assert re.search(r'PostgreSQL on default-pg1 rejects the rendered configuration: work_mem \(\S+postgresql.conf:\d+\)'
                     r'.* The previous files were put back', flat), flat[-3000:]
    assert _conf_state(nodes) == before
    assert _start_times(nodes) == started
    assert lib.psql(nodes[0], "SELECT count(*) FROM pg_file_settings WHERE error IS NOT NULL") == '0'


def test_a_pg_hba_line_postgresql_rejects_is_rolled_back(nodes):
    before, started = _conf_state(nodes), _start_times(nodes)
    bad = [{'contype': 'hostssl', 'databases': 'app', 'users': 'app', 'source': '10.89.74.0/24',
            'method': 'scram-sha-256', 'options': 'no_such_option=1'}]
    proc = lib.run_playbook('site.yml', '-e', '{"postgresql_hba_entries": %s}' % json.dumps(bad))
    assert proc.returncode != 0
    flat = ' '.join(proc.stdout.split())
    assert re.search(r'rejects the rendered configuration: pg_hba.conf line \d+: .*no_such_option', flat), flat[-3000:]
    assert _conf_state(nodes) == before and _start_times(nodes) == started
    assert lib.psql(nodes[0], "SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL") == '0'


def test_a_setting_the_server_cannot_start_with_is_rolled_back(nodes):
    """Valid as a value, fatal at start: the server is started again with the previous files."""
    before = _conf_state(nodes)
    proc = lib.run_playbook('site.yml', '-e', '{"postgresql_settings": %s}'
                            % json.dumps(dict(SETTINGS, shared_preload_libraries='pgha_no_such_library')))
    assert proc.returncode != 0
    flat = ' '.join(proc.stdout.split())
    assert 'PostgreSQL on default-pg1 did not start with the new configuration (restart needed for ' \
           'shared_preload_libraries). The previous files were put back and the server started again' in flat, \
        flat[-3000:]
    assert 'pgha_no_such_library' in flat
    assert _conf_state(nodes) == before
    assert lib.role_of(nodes[0]) == 'primary'
    # the replicas were never touched (the run stopped on the primary) and stream again
    for node in nodes[1:]:
        lib.wait_for(lambda: lib.psql(node, 'SELECT status FROM pg_stat_wal_receiver') == 'streaming',
                     timeout=60, what='%s streaming again' % node.backend.hostname)


# --------------------------------------------------------------------------
# Secrets are never printed, not even under --check --diff -vvv
# --------------------------------------------------------------------------

SENTINELS = {'postgresql_replication_password': 'SENTINEL-repl-9f3e',
             'pg_primary_users': [{'name': 'app', 'password': 'SENTINEL-app-7c1d', 'db': 'app'}]}


def _no_sentinel(out):
    for value in ('SENTINEL-repl-9f3e', 'SENTINEL-app-7c1d', 'SENTINEL-leak-4d2a',
                  'default-app-secret', 'molecule-replication-secret'):
        assert value not in out, 'secret %r printed' % value


def test_secrets_are_not_printed_under_check_diff_vvv(check_run):
    out, before, after = check_run
    # the changed secrets were seen as changes (.pgpass) but never shown
    task = 'pgha.cluster.postgresql : Node | Store the replication credentials'
    assert re.search(r'changed: \[default-pg\d\]', lib.task_output(out, task)), task
    _no_sentinel(out)
    assert after['keepalived.conf'] == before['keepalived.conf']


def test_secrets_are_not_printed_when_a_task_fails(nodes, tmp_path):
    users = SENTINELS['pg_primary_users'] + [{'name': 'leaky', 'password': 'SENTINEL-leak-4d2a', 'db': 'no_such_db'}]
    extra = tmp_path / 'extra.json'
    extra.write_text(json.dumps(dict(SENTINELS, pg_primary_users=users)))
    proc = lib.run_playbook('site.yml', '--check', '--diff', '-vvv', '-e', '@%s' % extra)
    assert proc.returncode != 0
    assert 'no_such_db' in proc.stdout and 'leaky' in proc.stdout
    _no_sentinel(proc.stdout)


def test_the_start_guard_can_be_turned_off(check_run):
    """postgresql_start_guard=false plans the removal of the guard and the fence watch
    (it used to fail on an undefined variable)."""
    out, before, after = check_run
    assert 'Guard | Stop the fence watch' in out
    assert all(after['fence watch running'].values()) and all(after['guard drop-in'].values())


# --------------------------------------------------------------------------
# Last: the spare host, a primary without replicas
# --------------------------------------------------------------------------

def test_a_primary_without_replicas_provisions(tmp_path):
    """A cluster may start as a primary alone; replicas come later. Runs last: it provisions
    the spare host (the catalogue used it bare)."""
    inventory = lib.write_inventory(tmp_path, ['default-spare'], [])
    args = ('-e', 'keepalived_writer_vip=')
    proc = lib.run_playbook_with(inventory, 'site.yml', *args)
    assert proc.returncode == 0, proc.stdout[-4000:]
    spare = lib.host('default-spare')
    assert lib.role_of(spare) == 'primary'
    assert lib.psql(spare, 'SELECT count(*) FROM pg_replication_slots') == '0'
    proc = lib.run_playbook_with(inventory, 'site.yml', *args)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert lib.changed_hosts(proc.stdout) == {}
