import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', '..', 'tests', 'lib'))

from pgha_fixtures import groups, nodes, primary, pytest_terminal_summary, replicas  # noqa: E402,F401  pylint: disable=unused-import

#: The files build on each other, one cluster, one story: the ordinary faults (each healed or put back),
#: the AWX jobs (they leave the cluster as they found it), then logical replication is added, then the
#: lifecycle walk (which also checks the subscriber follows every failover).
FILE_ORDER = ['test_faults.py', 'test_awx.py', 'test_logical.py', 'test_lifecycle.py']


def pytest_collection_modifyitems(items):
    """Run the files in FILE_ORDER (pytest would run them alphabetically), each file's tests in order."""
    def rank(item):
        name = os.path.basename(str(item.fspath))
        return FILE_ORDER.index(name) if name in FILE_ORDER else len(FILE_ORDER)
    items.sort(key=rank)
