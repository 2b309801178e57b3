import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', '..', 'tests', 'lib'))

import pgha_testlib as lib  # noqa: E402


@pytest.fixture(scope='session')
def groups():
    return lib.inventory_groups()


@pytest.fixture(scope='session')
def primary(groups):
    (name,) = groups['primary']
    return lib.host(name)


@pytest.fixture(scope='session')
def replicas(groups):
    return [lib.host(n) for n in sorted(groups['replicas'])]


@pytest.fixture(scope='session')
def nodes(primary, replicas):
    return [primary] + replicas
