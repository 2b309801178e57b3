"""Helpers shared by the Molecule verifiers: reach the scenario's containers
through testinfra's podman backend, run SQL as postgres, run our playbooks."""

import os
import subprocess
import threading
import time

import testinfra
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))

# What a test measured, printed after the run by the fixtures' pytest_terminal_summary
# (pytest shows a passing test's own output nowhere).
MEASURED = []


#: State one test file of a scenario hands to the next (they run in one process, in file order).
SHARED = {}


def measured(line):
    """Keep a measurement for the run's summary (a number to report, never a timed assertion)."""
    MEASURED.append(line)


def inventory_groups():
    """{group: [host, ...]} from the inventory Molecule wrote for this scenario."""
    with open(os.environ['MOLECULE_INVENTORY_FILE']) as f:
        inv = yaml.safe_load(f)
    groups = {}

    def walk(name, node):
        node = node or {}
        hosts = list((node.get('hosts') or {}).keys())
        groups.setdefault(name, [])
        groups[name].extend(h for h in hosts if h not in groups[name])
        for child, sub in (node.get('children') or {}).items():
            walk(child, sub)
            groups[name].extend(h for h in groups[child] if h not in groups[name])

    for top, node in inv.items():
        walk(top, node)
    return groups


def inventory_dir():
    return os.path.dirname(os.environ['MOLECULE_INVENTORY_FILE'])


def host(name):
    return testinfra.get_host('podman://' + name)


def psql(node, sql, db='postgres', check=True):
    """Run SQL as postgres on a testinfra host; returns stdout (unaligned, tuples only)."""
    cmd = node.run('timeout 120 runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -d %s -c %s' % (db, _quote(sql)))
    if check:
        assert cmd.rc == 0, 'psql failed on %s: %s %s' % (node.backend.hostname, cmd.stdout, cmd.stderr)
    return cmd if not check else cmd.stdout.strip()


def wait_for(predicate, timeout=30.0, interval=0.5, what='condition'):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError('timed out after %ss waiting for %s (last: %r)' % (timeout, what, last))


def run_playbook(playbook, *args, check=False):
    """Run one of the collection's playbooks against this scenario's inventory."""
    proc = run_playbook_with(inventory_dir(), playbook, *args)
    if check:
        assert proc.returncode == 0, proc.stdout[-6000:]
    return proc


def _quote(s):
    return "'" + s.replace("'", "'\"'\"'") + "'"


# --------------------------------------------------------------------------
# Cluster-level helpers for the failover and switchover scenarios
# --------------------------------------------------------------------------

def podman(*args, check=True):
    proc = subprocess.run(['podman'] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, check=False)
    if check:
        assert proc.returncode == 0, 'podman %s: %s' % (' '.join(args), proc.stdout)
    return proc


def connect(host, user='app', password=None, dbname='app', timeout=3, port=5432):
    """psycopg2 connection from the test host to a node or VIP address (or a pgpool, port 9999)."""
    import psycopg2
    return psycopg2.connect(host=host, port=port, user=user, password=password, dbname=dbname,
                            connect_timeout=timeout, sslmode='require')


def ssh_answers(address):
    """Whether sshd answers at address from here (a host that came back is reachable again)."""
    import socket
    try:
        socket.create_connection((address, 22), timeout=1).close()
        return True
    except OSError:
        return False


def wait_booted(name, address):
    """After podman start: systemd up in the container and sshd answering on address from here (the
    playbooks come in over SSH; a restarted container's new MAC address takes the host's bridge a few
    seconds to learn)."""
    node = host(name)
    wait_for(lambda: node.run('systemctl is-system-running').stdout.strip() in ('running', 'degraded'),
             timeout=90, what='%s booted' % name)
    wait_for(lambda: ssh_answers(address), timeout=60, what='SSH on %s' % name)


def holds_address(node, address):
    return (' %s/' % address) in node.run('ip -o -4 addr show').stdout


def current_primary(names):
    """The one node of names that runs as a primary (fails on none or several)."""
    found = [n for n in sorted(names) if role_of(host(n)) == 'primary']
    assert len(found) == 1, 'expected one primary, found %s' % found
    return found[0]


def role_of(node):
    cmd = psql(node, 'SELECT pg_is_in_recovery()', check=False)
    if cmd.rc != 0:
        return 'down'
    return 'standby' if cmd.stdout.strip() == 't' else 'primary'


def edit_inventory(tmp_path, groups=None, host_vars=None, source=None, name='inventory'):
    """A copy of an inventory directory (default: this scenario's, group_vars included) with
    some groups set ({group: [host, ...]}) and host variables added; returns the directory to
    pass to -i."""
    import shutil
    src = source or inventory_dir()
    dst = os.path.join(str(tmp_path), name)
    shutil.copytree(src, dst)
    path = os.path.join(dst, os.path.basename(os.environ['MOLECULE_INVENTORY_FILE']))
    with open(path) as f:
        inv = yaml.safe_load(f)
    # host variables go into host_vars/<host>, beside Molecule's own (which would win over
    # variables set in the inventory file, ansible_host among them)
    for host_name, extra in (host_vars or {}).items():
        assert host_name in inv['all']['hosts'], host_name
        hv_path = os.path.join(dst, 'host_vars', host_name)
        current = {}
        if os.path.exists(hv_path):
            with open(hv_path) as f:
                current = yaml.safe_load(f) or {}
        os.makedirs(os.path.dirname(hv_path), exist_ok=True)
        with open(hv_path, 'w') as f:
            yaml.safe_dump(dict(current, **extra), f)
    for group, members in (groups or {}).items():
        inv[group] = {'hosts': dict((h, None) for h in members)}
    with open(path, 'w') as f:
        yaml.safe_dump(inv, f)
    return dst


def write_inventory(tmp_path, primary, replicas):
    """This scenario's inventory with the groups changed, as an operator updates it after a
    failover."""
    return edit_inventory(tmp_path, {'primary': primary, 'replicas': replicas})


def run_playbook_with(inventory, playbook, *args, timeout=None):
    """Run one of the collection's playbooks against an inventory; its output without colours
    (Molecule forces them on), as an operator reads it. timeout: seconds after which a run that
    hangs fails the test (subprocess.TimeoutExpired)."""
    cmd = ['ansible-playbook', '-i', inventory, os.path.join(ROOT, 'playbooks', playbook)] + list(args)
    env = dict(os.environ, ANSIBLE_FORCE_COLOR='0', ANSIBLE_NOCOLOR='1', PY_COLORS='0')
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, check=False,
                          env=env, timeout=timeout)


def table_digest(node, table, db='app'):
    return psql(node, 'SELECT count(*), md5(string_agg(t::text, \',\' ORDER BY t::text)) FROM %s t' % table, db=db)


def missing_ids(node, acked, table='acked', db='app'):
    """The acknowledged ids that are not in the table on node (an empty set means none lost)."""
    present = set(int(x) for x in psql(node, 'SELECT id FROM %s' % table, db=db).split())
    return set(acked) - present


class Writer(threading.Thread):
    """A client inserting one row per commit into table acked through address
    (the writer VIP), remembering which commits the server acknowledged and
    when writes failed (while the primary changes, failures are expected)."""

    def __init__(self, address, password, start_id=1, user='app', dbname='app', port=5432, pause=0.0):
        super().__init__(daemon=True)
        self.address, self.password, self.user, self.dbname, self.port = address, password, user, dbname, port
        # seconds between two writes (0: as fast as the server acknowledges; a pause leaves CPU to the
        # scenario in the other test lane)
        self.pause = pause
        self.next_id = start_id
        self.acked = []
        self.acked_at = []
        self.failures = []
        self.stop = threading.Event()

    def run(self):
        conn = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = connect(self.address, user=self.user, password=self.password, dbname=self.dbname,
                                   timeout=2, port=self.port)
                    conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute('INSERT INTO acked (id) VALUES (%s)', (self.next_id,))
                self.acked.append(self.next_id)
                self.acked_at.append(time.monotonic())
                if self.pause:
                    time.sleep(self.pause)
            except Exception:  # pylint: disable=broad-except
                self.failures.append(time.monotonic())
                conn = None
                time.sleep(0.1)
            self.next_id += 1

    def first_ack_after(self, moment):
        """Seconds from moment (time.monotonic()) to the first acknowledged write after it, None if none yet."""
        later = [t for t in self.acked_at if t > moment]
        return (later[0] - moment) if later else None

    def window(self):
        """Seconds from the first to the last failed write."""
        return (self.failures[-1] - self.failures[0]) if self.failures else 0.0


# --------------------------------------------------------------------------
# Backups (the backup scenario)
# --------------------------------------------------------------------------

def pgbackrest_info(repo, stanza='main'):
    """`pgbackrest info --output=json` on the backup host, parsed: the stanza's dict."""
    import json
    cmd = repo.run('runuser -u postgres -- pgbackrest --stanza=%s --output=json info' % stanza)
    assert cmd.rc == 0, 'pgbackrest info failed: %s %s' % (cmd.stdout, cmd.stderr)
    return json.loads(cmd.stdout)[0]


def backup_labels(repo, kind=None, stanza='main'):
    """Labels of the backups in the repository, oldest first (only of that type when kind is given)."""
    return [b['label'] for b in pgbackrest_info(repo, stanza).get('backup', []) if kind in (None, b['type'])]


def trigger_log(repo, path='/var/log/pgbackrest/pgha-trigger.log'):
    """The backup host's log of backup requests, one line per event."""
    f = repo.file(path)
    return f.content_string.splitlines() if f.exists else []


# --------------------------------------------------------------------------
# The lifecycle: what a DBA does between playbooks
# --------------------------------------------------------------------------

def recap(output):
    """{host: {ok, changed, unreachable, failed, ...}} from ansible-playbook's PLAY RECAP."""
    import re
    plain = re.sub(r'\x1b\[[0-9;]*m', '', output)
    hosts = {}
    for m in re.finditer(r'^(\S+)\s*:\s*((?:\w+=\d+\s*)+)$', plain.split('PLAY RECAP')[-1], re.M):
        hosts[m.group(1)] = dict((k, int(v)) for k, v in re.findall(r'(\w+)=(\d+)', m.group(2)))
    return hosts


def changed_hosts(output):
    """The hosts whose recap shows changed > 0 (asserting the recap was found)."""
    hosts = recap(output)
    assert hosts, 'no PLAY RECAP in the output:\n' + output[-3000:]
    return dict((h, r['changed']) for h, r in hosts.items() if r.get('changed'))


def summary_moves(output):
    """(new primary, old primary) from a runbook summary's 'NEXT' line: 'move X to group
    primary and Y to group replicas' or 'X into group primary, Y into group replicas'."""
    import re
    flat = ' '.join(output.split())
    m = (re.search(r"move (\S+) to group primary and (\S+) to group replicas", flat)
         or re.search(r"update the inventory: (\S+) into group primary, (\S+) into group replicas", flat))
    assert m, 'the summary says nothing about the inventory:\n' + output[-3000:]
    return m.group(1), m.group(2)


def inventory_as_summary_says(tmp_path, output, names):
    """The scenario's inventory updated exactly as a runbook's summary tells the DBA."""
    new, old = summary_moves(output)
    assert new in names and old in names, (new, old)
    return write_inventory(tmp_path, [new], sorted(n for n in names if n != new))


def unreachable_inventory(inventory, name, tmp_path):
    """A copy of inventory where name cannot be reached (as a partitioned host is, from the
    Ansible controller): its ansible_host is a name that does not resolve."""
    return edit_inventory(tmp_path, host_vars={name: {'ansible_host': name + '-unreachable'}}, source=inventory,
                          name='inventory-unreachable')


def tree_fingerprint(node, path):
    """Every file under path with its size and modification time (a directory unchanged)."""
    cmd = node.run("find %s -printf '%%P %%s %%T@\\n' | sort | md5sum" % path)
    assert cmd.rc == 0, cmd.stderr
    return cmd.stdout.split()[0]


def config_fingerprint(node, paths=('/etc/postgresql', '/etc/keepalived', '/etc/pgha', '/etc/pgbackrest')):
    """md5 of every file of the configuration directories that exist, and the data directory's
    postgresql.auto.conf."""
    cmd = node.run("find %s -type f 2>/dev/null | sort | xargs -r md5sum; "
                   "md5sum /var/lib/postgresql/*/main/postgresql.auto.conf 2>/dev/null; true" % ' '.join(paths))
    return cmd.stdout


def postmaster_started(node):
    """pg_postmaster_start_time() of the node's server ('down' when it does not answer)."""
    cmd = psql(node, 'SELECT pg_postmaster_start_time()', check=False)
    return cmd.stdout.strip() if cmd.rc == 0 else 'down'


def isolate(name, ips, heal=False):
    """Cut name off from the other members, both ways, or heal that: netfilter rules in the
    container's network namespace (the host's iptables through nsenter; the image has none),
    which stop everything, VRRP included (keepalived's interface-bound raw socket ignores a
    blackhole route). The test host still reaches every container."""
    pid = podman('inspect', '-f', '{{.State.Pid}}', name).stdout.strip()
    verb = '-D' if heal else '-A'
    for other, ip in ips.items():
        if other == name:
            continue
        for chain, match in (('OUTPUT', '-d'), ('INPUT', '-s')):
            proc = subprocess.run(['nsenter', '-t', pid, '-n', 'iptables', '-w', verb, chain, match, ip, '-j', 'DROP'],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
            assert proc.returncode == 0, 'iptables %s %s on %s: %s' % (verb, chain, name, proc.stdout)


def task_output(output, task):
    """The part of ansible-playbook's output that belongs to the task named task (all its runs)."""
    import re
    plain = re.sub(r'\x1b\[[0-9;]*m', '', output)
    parts = re.split(r'\n(?=(?:TASK|RUNNING HANDLER) \[)', plain)
    found = [p for p in parts if p.startswith(('TASK [' + task, 'RUNNING HANDLER [' + task))]
    assert found, 'task %r not in the output' % task
    return '\n'.join(found)


# --------------------------------------------------------------------------
# WAL and archiving, for the backup scenarios (each takes a host's name)
# --------------------------------------------------------------------------

def timeline(name):
    """The current timeline of name's server (its WAL file name; the control file lags until a checkpoint)."""
    return int(psql(host(name), 'SELECT pg_walfile_name(pg_current_wal_lsn())')[:8], 16)


def pg_log(name):
    return host(name).run('cat /var/log/postgresql/postgresql-17-main.log').stdout


def switch_wal(name):
    """A row, then a WAL switch: returns the segment that must be archived."""
    psql(host(name), 'CREATE TABLE IF NOT EXISTS walpush (id serial, at timestamptz DEFAULT now())')
    psql(host(name), 'INSERT INTO walpush DEFAULT VALUES')
    return psql(host(name), 'SELECT pg_walfile_name(pg_switch_wal())')


def archiver(name):
    """(last archived WAL file, failed count) from pg_stat_archiver."""
    last, failed = psql(host(name), "SELECT coalesce(last_archived_wal, ''), failed_count FROM pg_stat_archiver") \
        .split('|')
    return last, int(failed)


# --------------------------------------------------------------------------
# Monitoring: Prometheus and the test webhook receiver (monitoring_test_receiver)
# --------------------------------------------------------------------------

ALERTS_LOG = '/var/log/pgha-alerts/alerts.jsonl'


def prom_api(url, path):
    """The data of a Prometheus HTTP API answer (path like /api/v1/targets), asked of the Prometheus at url."""
    import json
    import urllib.request
    with urllib.request.urlopen(url + path, timeout=10) as r:
        doc = json.loads(r.read().decode('utf-8'))
    assert doc['status'] == 'success', doc
    return doc['data']


def prom_query(url, query):
    """The result vector of a PromQL query, asked of the Prometheus at url from here."""
    import urllib.parse
    return prom_api(url, '/api/v1/query?query=' + urllib.parse.quote(query))['result']


def alert_notifications(watch):
    """Every notification the test receiver on the monitoring host `watch` (a testinfra host) logged:
    [(status, alertname, labels, annotations)]."""
    import json
    out = []
    for line in watch.run('cat %s' % ALERTS_LOG).stdout.splitlines():
        doc = json.loads(line)
        for a in doc['alerts']:
            out.append((a['status'], a['labels']['alertname'], a['labels'], a['annotations']))
    return out


def alerts_received(watch, status, alertname, since=0, **labels):
    """The notifications with this status and alert name (and these labels) after the first `since`."""
    return [n for n in alert_notifications(watch)[since:] if n[0] == status and n[1] == alertname
            and all(n[2].get(k) == v for k, v in labels.items())]


# --------------------------------------------------------------------------
# status.yml, as a person and as a script read it
# --------------------------------------------------------------------------

def status_verdict(output):
    """What follows 'VERDICT: ' on status.yml's screen, its folded lines joined again."""
    flat = ' '.join(output.split())
    assert 'VERDICT: ' in flat, output[-3000:]
    return flat.split('VERDICT: ', 1)[1][:600]


def status_json(inventory=None):
    """status.yml -e status_format=json through the json callback, as a script reads it."""
    import json
    cmd = ['ansible-playbook', '-i', inventory or inventory_dir(), os.path.join(ROOT, 'playbooks', 'status.yml'),
           '-e', 'status_format=json']
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK='ansible.posix.json', ANSIBLE_LOAD_CALLBACK_PLUGINS='1')
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
                          check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_doc = json.loads(proc.stdout)
    for task in run_doc['plays'][-1]['tasks']:
        if task['task']['name'].split(' : ')[-1] == 'Show the cluster as one JSON document':
            return json.loads(task['hosts']['localhost']['msg'])
    raise AssertionError('no JSON document in the output')
