"""May this node be a primary? (plugins/plugin_utils/primary.py): the rules the runbooks' decisions, the
start guard and the VIP state share, and a check that each of the three uses them."""

import os

from ansible_collections.pgha.cluster.plugins.plugin_utils import primary

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))
PEERS = [{'name': 'pg2'}, {'name': 'pg3'}]


def test_counts_as_primary():
    assert primary.counts_as_primary('primary', False)
    assert not primary.counts_as_primary('primary', True)
    for role in ('standby', 'down', 'unknown', None):
        assert not primary.counts_as_primary(role, False)


def test_newer_peer():
    answers = [(PEERS[0], ('7311', 1)), (PEERS[1], ('7311', 3))]
    assert primary.newer_peer('7311', 2, answers) == (PEERS[1], 3)
    assert primary.newer_peer(7311, 3, answers) is None
    assert primary.newer_peer('7311', 1, [(PEERS[0], ('9999', 9)), (PEERS[1], 'down'), (PEERS[1], None)]) is None


def test_start_decision():
    assert primary.start_decision(True, True) == ('refuse', 'this node is fenced')
    assert primary.start_decision(False, True)[0] == 'start'
    decision, reason = primary.start_decision(False, False, [(PEERS[0], ('7311', 2))], '7311', 1)
    assert decision == 'fence' and reason.startswith('peer pg2 is on timeline 2, newer than this node\'s 1')
    assert primary.start_decision(False, False, [(PEERS[0], ('7311', 1)), (PEERS[1], 'down')], '7311', 1)[0] == 'start'
    # nobody answers: the policy decides; without peers there is nobody to ask
    alone = [(PEERS[0], None), (PEERS[1], None)]
    assert primary.start_decision(False, False, alone, '7311', 1, 'start')[0] == 'start'
    assert primary.start_decision(False, False, alone, '7311', 1, 'refuse')[0] == 'refuse'
    assert primary.start_decision(False, False, [], '7311', 1, 'refuse', has_peers=False)[0] == 'start'


def test_writer_vip_priority():
    assert primary.writer_vip_priority('primary', False, False, 254, 50) == 0
    assert primary.writer_vip_priority('primary', True, True, 254, 50) == 254
    assert primary.writer_vip_priority('standby', False, True, 254, 50) == 254
    assert primary.writer_vip_priority(None, False, True, 254, 50) == 50
    assert primary.writer_vip_priority(None, False, False, 254, 50) == 254


def test_the_three_deciders_use_these_rules():
    """The runbooks' filters, the start guard and the VIP state import this module (no copy of their own)."""
    for path, needle in (('plugins/filter/cluster.py', 'from ansible_collections.pgha.cluster.plugins.plugin_utils.primary import'),
                         ('roles/postgresql/files/pgha_start_guard.py', 'import pgha_primary'),
                         ('roles/keepalived/files/pgha_vip_state.py', 'import pgha_primary')):
        with open(os.path.join(ROOT, path)) as f:
            text = f.read()
        assert needle in text, path
        assert 'def newer_peer' not in text and 'def counts_as_primary' not in text, path
