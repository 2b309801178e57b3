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
    tops = {n.split('/')[0] for n in names}
    for wanted in ('roles', 'playbooks', 'plugins', 'meta', 'README.md', 'MANIFEST.json', 'changelogs'):
        assert wanted in tops, (wanted, sorted(tops))
    for unwanted in ('molecule', 'lab', 'tests', 'bench', 'tools', '.work', '.venv', '.ci', '.git'):
        assert unwanted not in tops, (unwanted, sorted(tops))
    assert 'roles/postgresql/meta/argument_specs.yml' in names
    assert 'playbooks/site.yml' in names
