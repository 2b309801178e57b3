import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.pgha.cluster.plugins.filter.slot_name import slot_name


@pytest.mark.parametrize('host, slot', [
    ('pg2', 'pg2'),
    ('pg-replica-1.example.com', 'pg_replica_1_example_com'),
    ('DB_3', 'db_3'),
    ('x' * 80, 'x' * 63),
])
def test_slot_name(host, slot):
    assert slot_name(host) == slot


@pytest.mark.parametrize('bad', ['', None, 42])
def test_slot_name_rejects(bad):
    with pytest.raises(AnsibleFilterError, match='slot_name expects'):
        slot_name(bad)
