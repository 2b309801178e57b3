"""ansible-galaxy collection build works and ships only the collection."""

import os
import subprocess
import tarfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))


def test_build_leaves_tests_and_lab_out(tmp_path):
    proc = subprocess.run(['ansible-galaxy', 'collection', 'build', '--output-path', str(tmp_path), ROOT],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    assert proc.returncode == 0, proc.stdout
    (tarball,) = [p for p in os.listdir(tmp_path) if p.endswith('.tar.gz')]
    assert tarball.startswith('pgha-cluster-')
    with tarfile.open(os.path.join(tmp_path, tarball)) as tar:
        names = tar.getnames()
        contents = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    tops = {n.split('/')[0] for n in names}
    for wanted in ('roles', 'playbooks', 'plugins', 'meta', 'README.md', 'MANIFEST.json', 'changelogs'):
        assert wanted in tops, (wanted, sorted(tops))
    for unwanted in ('molecule', 'lab', 'tests', 'bench', 'tools', '.work', '.venv', '.ci', '.git'):
        assert unwanted not in tops, (unwanted, sorted(tops))
    assert 'roles/postgresql/meta/argument_specs.yml' in names
    assert 'playbooks/site.yml' in names
    # the lab's inventory and its passwords stay out; inventories/example may ship
    assert not [n for n in names if n == 'inventories/lab' or n.startswith('inventories/lab/')], names
    for secret in (b'lab-replication-secret', b'lab-app-secret'):
        assert not [n for n, data in contents.items() if secret in data], secret
