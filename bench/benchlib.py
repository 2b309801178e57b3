"""Shared by the Python benchmarks (bench/failover.py, bench/backup.py): fresh
lab containers through lab/lib.sh, an inventory with the lab's SSH settings,
and the collection's playbooks run and timed. Not a test helper."""

import os
import subprocess
import sys
import time

import yaml

ROOT = os.environ['PGHA_ROOT']
KEY = os.path.join(os.environ['PGHA_WORK'], 'lab', 'id_ed25519')


def container(name):
    return 'pgha-' + name


def run(name, *cmd, check=True):
    """A command inside the lab container of node name; returns stdout (exits on failure when check)."""
    proc = subprocess.run(['podman', 'exec', container(name)] + list(cmd), capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        sys.exit('%s on %s failed (rc %d): %s' % (' '.join(cmd), name, proc.returncode,
                                                  (proc.stderr or proc.stdout)[-2000:]))
    return proc.stdout.strip()


def as_pg(name, *cmd, check=True):
    """The same as the postgres user."""
    return run(name, 'runuser', '-u', 'postgres', '--', *cmd, check=check)


def sh(script):
    """Shell commands with the lab's helpers (lab_rm, lab_network, lab_node...) loaded."""
    subprocess.run(['bash', '-c', '. "%s/lab/lib.sh"; %s' % (ROOT, script)], check=True)


def fresh_nodes(nodes, net, subnet):
    """Remove what an earlier run left, then start the containers {name: ip} and wait for SSH."""
    sh('lab_rm %s; lab_network %s %s; lab_key; %s; lab_wait_ssh %s' % (
        ' '.join(container(n) for n in nodes), net, subnet,
        '; '.join('lab_node %s %s %s %s' % (container(n), n, net, ip) for n, ip in nodes.items()),
        ' '.join(nodes.values())))


def remove_nodes(nodes, net):
    sh('lab_rm %s; podman network rm %s >/dev/null 2>&1 || true' % (' '.join(container(n) for n in nodes), net))


def write_inventory(path, variables, groups):
    """An inventory reaching the containers like lab/up's: groups is {group: {host: ip}}."""
    base = {
        'ansible_user': 'root', 'ansible_ssh_private_key_file': KEY,
        'ansible_ssh_common_args': '-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null '
                                   '-o LogLevel=ERROR -o ControlMaster=auto -o ControlPersist=120s '
                                   '-o ServerAliveInterval=2 -o ServerAliveCountMax=2',
        'ansible_python_interpreter': '/usr/bin/python3',
    }
    base.update(variables)
    inv = {'all': {'vars': base, 'children': dict(
        (group, {'hosts': dict((h, {'ansible_host': ip}) for h, ip in hosts.items())})
        for group, hosts in groups.items())}}
    with open(path, 'w') as f:
        yaml.safe_dump(inv, f)
    return path


LAST_LOG = {}


def timing_line(name):
    """The 'timing (s)' line of the last run of playbooks/<name>'s summary (where its seconds went)."""
    with open(LAST_LOG[name]) as f:
        for line in f:
            if 'timing (s)' in line:
                return line.split(':', 1)[1].strip().strip('",')
    return 'not printed'


def playbook(work, inv, name, *extra):
    """Run playbooks/<name>; returns its wall time in seconds, exits on failure (log kept in work)."""
    start = time.monotonic()
    log = os.path.join(work, '%s-%d.log' % (name.replace('.yml', ''), int(time.time())))
    LAST_LOG[name] = log
    with open(log, 'w') as out:
        # JSON results: one summary line per string, never folded (timing_line reads them)
        env = dict(os.environ, ANSIBLE_CALLBACK_RESULT_FORMAT='json')
        rc = subprocess.run(['ansible-playbook', '-i', inv, os.path.join(ROOT, 'playbooks', name)] + list(extra),
                            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env, check=False).returncode
    took = time.monotonic() - start
    if rc != 0:
        sys.exit('%s failed (rc %d), see %s' % (name, rc, log))
    return took
