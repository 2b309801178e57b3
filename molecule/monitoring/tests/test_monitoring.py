"""Monitoring end to end on real containers: Prometheus, Alertmanager and the exporters that
site.yml installs, the rules' unit tests (promtool), then real incidents reaching the webhook
receiver: a healthy cluster fires nothing; a stopped replica fires "not streaming"; a stopped
backup host fires the archiving alert; a killed primary fires "primary down" naming promote.yml
while status.yml says PRIMARY DOWN and names the candidate; promote.yml and rejoin.yml resolve
the alerts; status.yml's table, JSON and picture show the new primary; site.yml then changes
nothing.

The tests run in file order and build on each other (one cluster, one story).
"""

import html
import json
import os
import subprocess
import re
import time
import urllib.parse
import urllib.request

import pgha_testlib as lib

NAMES = ['mon-pg1', 'mon-pg2']
IPS = {'mon-pg1': '10.89.80.11', 'mon-pg2': '10.89.80.12', 'mon-repo': '10.89.80.20', 'mon-watch': '10.89.80.30'}
PROMETHEUS = 'http://10.89.80.30:9090'
ALERTS_LOG = '/var/log/pgha-alerts/alerts.jsonl'
STATE = {}


def node(name):
    return lib.host(name)


def watch():
    return node('mon-watch')


def run(playbook, *args, timeout=600):
    return lib.run_playbook_with(STATE.get('inventory') or lib.inventory_dir(), playbook, *args, timeout=timeout)


def prom(query):
    """The result vector of a PromQL query, asked of Prometheus from here."""
    with urllib.request.urlopen(PROMETHEUS + '/api/v1/query?query=' + urllib.parse.quote(query), timeout=10) as r:
        doc = json.loads(r.read().decode('utf-8'))
    assert doc['status'] == 'success', doc
    return doc['data']['result']


def notifications():
    """Every notification the test receiver logged: [(status, alertname, labels, annotations)]."""
    cmd = watch().run('cat %s' % ALERTS_LOG)
    out = []
    for line in cmd.stdout.splitlines():
        doc = json.loads(line)
        for a in doc['alerts']:
            out.append((a['status'], a['labels']['alertname'], a['labels'], a['annotations']))
    return out


def received(status, alertname, since=0, **labels):
    """The notifications with this status and alert name (and these labels) after the first `since`."""
    return [n for n in notifications()[since:] if n[0] == status and n[1] == alertname
            and all(n[2].get(k) == v for k, v in labels.items())]


def firing():
    """The alert names Prometheus has firing now."""
    return sorted(set(r['metric']['alertname'] for r in prom('ALERTS{alertstate="firing"}')))


def slot_of(name):
    return name.replace('-', '_')


def verdict(output):
    """What follows 'VERDICT: ' on status.yml's screen, its folded lines joined again."""
    flat = ' '.join(output.split())
    assert 'VERDICT: ' in flat, output[-3000:]
    return flat.split('VERDICT: ', 1)[1][:600]


def status_json():
    """status.yml -e status_format=json through the json callback, as a script reads it."""
    cmd = ['ansible-playbook', '-i', STATE.get('inventory') or lib.inventory_dir(),
           os.path.join(lib.ROOT, 'playbooks', 'status.yml'), '-e', 'status_format=json']
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK='json', ANSIBLE_LOAD_CALLBACK_PLUGINS='1')
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=lib.ROOT, env=env,
                          check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_doc = json.loads(proc.stdout)
    for task in run_doc['plays'][-1]['tasks']:
        if task['task']['name'] == 'Show the cluster as one JSON document':
            return json.loads(task['hosts']['localhost']['msg'])
    raise AssertionError('no JSON document in the output')


# --------------------------------------------------------------------------
# What site.yml installed
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
    assert set(targets) >= {('postgres', 'mon-pg1'), ('postgres', 'mon-pg2'), ('node', 'mon-pg1'),
                            ('node', 'mon-pg2'), ('node', 'mon-repo'), ('node', 'mon-watch'),
                            ('pgbackrest', 'mon-repo')}
    # the exporters listen on the member's address only, not on every interface
    listen = node('mon-pg1').check_output('ss -Hltn')
    assert '%s:9187' % IPS['mon-pg1'] in listen and '*:9187' not in listen and '0.0.0.0:9187' not in listen
    # the custom metrics are there: one primary, the replica streams, its slot is active
    assert [r['metric']['instance'] for r in prom('pgha_server_primary == 1')] == ['mon-pg1']
    slots = prom('pgha_slot_active{instance="mon-pg1"}')
    assert [(r['metric']['slot_name'], r['value'][1]) for r in slots] == [(slot_of('mon-pg2'), '1')]
    assert prom('pgha_vip_held{vip="writer",instance="mon-pg1"}')[0]['value'][1] == '1'
    assert prom('pgbackrest_backup_since_last_completion_seconds{backup_type="full"}'), 'no full backup seen'


def test_the_exporters_role_cannot_write_or_read_table_data():
    pg1 = node('mon-pg1')
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
    assert prom('ALERTS') == [], prom('ALERTS')
    assert notifications() == []
    proc = run('status.yml')
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert verdict(proc.stdout).startswith('HEALTHY'), proc.stdout[-3000:]


# --------------------------------------------------------------------------
# Incidents reach the receiver
# --------------------------------------------------------------------------

def test_a_stopped_replica_fires_not_streaming():
    seen = len(notifications())
    node('mon-pg2').check_output('systemctl stop postgresql@17-main')
    try:
        lib.wait_for(lambda: received('firing', 'PghaReplicaNotStreaming', seen, slot_name=slot_of('mon-pg2')),
                     timeout=90, interval=2, what='PghaReplicaNotStreaming at the receiver')
    finally:
        node('mon-pg2').check_output('systemctl start postgresql@17-main')
    lib.wait_for(lambda: received('resolved', 'PghaReplicaNotStreaming', seen, slot_name=slot_of('mon-pg2')),
                 timeout=90, interval=2, what='PghaReplicaNotStreaming resolved')


def test_a_stopped_backup_host_fires_the_archiving_alert():
    seen = len(notifications())
    pg1 = node('mon-pg1')
    lib.podman('stop', '-t', '5', 'mon-repo')
    try:
        def failing():
            # WAL to archive: one row and a segment switch per poll
            lib.psql(pg1, "INSERT INTO secret VALUES ('wal'); SELECT pg_switch_wal()", db='app')
            return received('firing', 'PghaWalArchivingFailing', seen, instance='mon-pg1')
        alert = lib.wait_for(failing, timeout=180, interval=5, what='PghaWalArchivingFailing at the receiver')
        assert 'backup host' in alert[0][3]['runbook'], alert
    finally:
        lib.podman('start', 'mon-repo')
    lib.wait_for(lambda: node('mon-repo').run('systemctl is-system-running').stdout.strip() in ('running', 'degraded'),
                 timeout=90, what='mon-repo booted')
    lib.wait_for(lambda: lib.ssh_answers(IPS['mon-repo']), timeout=60, what='SSH on mon-repo')

    def archived():
        lib.psql(pg1, "INSERT INTO secret VALUES ('wal'); SELECT pg_switch_wal()", db='app')
        return received('resolved', 'PghaWalArchivingFailing', seen, instance='mon-pg1')
    lib.wait_for(archived, timeout=240, interval=5, what='PghaWalArchivingFailing resolved')


def test_the_restore_drill_reports_its_result_to_prometheus():
    proc = run('restore_drill.yml')
    assert proc.returncode == 0 and 'RESTORE DRILL PASSED' in proc.stdout, proc.stdout[-4000:]
    lib.wait_for(lambda: [r['value'][1] for r in prom('pgha_restore_drill_passed{instance="mon-repo"}')] == ['1'],
                 timeout=60, interval=2, what='pgha_restore_drill_passed 1 in Prometheus')
    assert 'PghaRestoreDrillFailed' not in firing()


def test_a_killed_primary_fires_primary_down_naming_promote_and_status_names_the_candidate():
    seen = STATE['seen_at_kill'] = len(notifications())
    lib.podman('kill', 'mon-pg1')
    killed = time.monotonic()
    alert = lib.wait_for(lambda: received('firing', 'PghaPrimaryDown', seen), timeout=120, interval=1,
                         what='PghaPrimaryDown at the receiver')
    took = time.monotonic() - killed
    lib.measured('podman kill of the primary -> PghaPrimaryDown at the webhook receiver: %.1f s' % took)
    assert 'promote' in alert[0][3]['summary'] and 'pgha.cluster.promote' in alert[0][3]['runbook'], alert
    proc = run('status.yml')
    assert proc.returncode == 0, proc.stdout[-4000:]
    said = verdict(proc.stdout)
    assert said.startswith('PRIMARY DOWN') and 'promote.yml' in said and 'mon-pg2' in said, said


def test_promote_and_rejoin_resolve_the_alerts_and_status_shows_the_new_primary(tmp_path):
    seen = len(notifications())
    proc = run('promote.yml', timeout=300)
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert lib.current_primary(['mon-pg2']) == 'mon-pg2'
    STATE['inventory'] = lib.inventory_as_summary_says(tmp_path, proc.stdout, NAMES)
    lib.wait_for(lambda: received('resolved', 'PghaPrimaryDown', seen), timeout=90, interval=2,
                 what='PghaPrimaryDown resolved')

    # right after the promotion: the table shows the current timeline, the JSON the same, the picture the new primary
    picture = str(tmp_path / 'cluster.svg')
    proc = run('status.yml', '-e', 'status_picture=' + picture)
    assert proc.returncode == 0, proc.stdout[-4000:]
    # the current timeline (of the WAL being written; the last checkpoint's may still be the old one)
    timeline = int(lib.psql(node('mon-pg2'), 'SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)'), 16)
    assert timeline >= 2
    row = [line for line in proc.stdout.splitlines() if re.search(r'\bmon-pg2\b.*PRIMARY', line)]
    assert row and re.search(r'PRIMARY\s+%d\b' % timeline, row[0]), proc.stdout[-3000:]
    svg = html.unescape(open(picture).read())   # graphviz writes '-' as &#45;
    assert '<svg' in svg and re.search(r'>mon-pg2</text>\s*<text[^>]*>PRIMARY</text>\s*<text[^>]*>timeline %d<' % timeline,
                                       svg), svg
    # the JSON holds what the table shows
    doc = status_json()
    assert doc['primary'] == 'mon-pg2', doc
    assert verdict(proc.stdout).startswith(' '.join(doc['verdict'].split())), (doc['verdict'], proc.stdout[-3000:])
    by_name = dict((n['name'], n) for n in doc['nodes'])
    assert by_name['mon-pg2']['role'] == 'primary' and by_name['mon-pg2']['timeline'] == timeline
    assert by_name['mon-pg1']['reachable'] is False
    for n in doc['nodes']:
        line = [x for x in proc.stdout.splitlines() if re.match(r"^\s*-\s*'?%s\s" % n['name'], x)][0]
        assert (n['role'].upper() if n['role'] in ('primary', 'standby') else n['role']) in line, (n, line)
    lib.podman('start', 'mon-pg1')
    lib.wait_for(lambda: node('mon-pg1').run('systemctl is-system-running').stdout.strip() in ('running', 'degraded'),
                 timeout=90, what='mon-pg1 booted')
    lib.wait_for(lambda: lib.ssh_answers(IPS['mon-pg1']), timeout=60, what='SSH on mon-pg1')
    proc = run('rejoin.yml', '-e', 'rejoin_host=mon-pg1', timeout=300)
    assert proc.returncode == 0, proc.stdout[-6000:]

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


def test_site_changes_nothing_after_the_runbooks():
    proc = run('site.yml')
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert lib.changed_hosts(proc.stdout) == {}, (lib.changed_hosts(proc.stdout), proc.stdout[-6000:])
    assert set(lib.recap(proc.stdout)) >= set(NAMES + ['mon-repo', 'mon-watch'])
