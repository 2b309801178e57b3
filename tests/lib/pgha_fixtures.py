"""pytest fixtures shared by the Molecule scenarios' testinfra verifiers:
the scenario's inventory groups and testinfra hosts for its nodes."""

import pytest

import pgha_testlib as lib


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


def pytest_terminal_summary(terminalreporter):
    """Print what the tests measured (lib.measured), also when every test passed."""
    if lib.MEASURED:
        terminalreporter.section('measured')
        for line in lib.MEASURED:
            terminalreporter.write_line(line)
