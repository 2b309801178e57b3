import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', '..', 'tests', 'lib'))

from pgha_fixtures import groups, nodes, primary, pytest_terminal_summary, replicas  # noqa: E402,F401  pylint: disable=unused-import
