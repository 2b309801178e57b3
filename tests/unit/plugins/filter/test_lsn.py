"""The LSN filters: results, and AnsibleFilterError naming the bad value."""

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.pgha.cluster.plugins.filter import lsn
from ansible_collections.pgha.cluster.plugins.filter.lsn import FilterModule, lsn_diff, lsn_to_int, lsn_to_walfile


def test_filters_are_exported():
    filters = FilterModule().filters()
    assert filters == {'lsn_to_int': lsn_to_int, 'lsn_diff': lsn_diff, 'lsn_to_walfile': lsn_to_walfile}


def test_lsn_to_int():
    assert lsn_to_int('16/B374D848') == 97500059720
    assert lsn_to_int('0/0') == 0


def test_lsn_diff():
    assert lsn_diff('0/3000000', '0/2FFFF00') == 256
    assert lsn_diff('0/2FFFF00', '0/3000000') == -256
    assert lsn_diff('1/0', '0/FFFFFFFF') == 1


def test_lsn_to_walfile_example_from_the_docs():
    assert lsn_to_walfile('4/DF75D0E0', 1) == '0000000100000004000000DF'
    assert lsn_to_walfile('4/DF75D0E0', 2, 64 * 1024 * 1024) == '000000020000000400000037'


@pytest.mark.parametrize('call, bad', [
    (lambda: lsn_to_int('4/DF75D0E0X'), '4/DF75D0E0X'),
    (lambda: lsn_to_int(''), "''"),
    (lambda: lsn_to_int(None), 'None'),
    (lambda: lsn_diff('0/1', '0-1'), '0-1'),
    (lambda: lsn_diff('zz/1', '0/1'), 'zz/1'),
    (lambda: lsn_to_walfile('4/DF75D0E0/1', 1), '4/DF75D0E0/1'),
    (lambda: lsn_to_walfile('4/DF75D0E0', 0), 'timeline ID: 0'),
    (lambda: lsn_to_walfile('4/DF75D0E0', 1, 1000), 'segment size: 1000'),
])
def test_malformed_input_raises_filter_error_naming_the_value(call, bad):
    with pytest.raises(AnsibleFilterError) as err:
        call()
    assert bad in str(err.value)


@pytest.mark.parametrize('name, call', [
    ('lsn_to_int', lambda: lsn_to_int('x')),
    ('lsn_diff', lambda: lsn_diff('x', '0/0')),
    ('lsn_to_walfile', lambda: lsn_to_walfile('x', 1)),
])
def test_error_names_the_filter(name, call):
    with pytest.raises(AnsibleFilterError, match='^%s: ' % name):
        call()


def test_filters_share_the_module_utils_arithmetic():
    from ansible_collections.pgha.cluster.plugins.module_utils import pgha_pg
    assert lsn._lsn_to_int is pgha_pg.lsn_to_int
    assert lsn.DEFAULT_WAL_SEGMENT_SIZE == 16 * 1024 * 1024
