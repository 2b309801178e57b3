"""Helpers shared by the Molecule verifiers: reach the scenario's containers
through testinfra's podman backend, run SQL as postgres, run our playbooks."""

import os
import subprocess
import time

import testinfra
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))


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
    cmd = node.run('runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -d %s -c %s' % (db, _quote(sql)))
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
    cmd = ['ansible-playbook', '-i', inventory_dir(), os.path.join(ROOT, 'playbooks', playbook)]
    cmd += list(args)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, check=False)
    if check:
        assert proc.returncode == 0, proc.stdout[-6000:]
    return proc


def _quote(s):
    return "'" + s.replace("'", "'\"'\"'") + "'"
