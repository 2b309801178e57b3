# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.pgha.cluster.plugins.module_utils import pgha_pgpool as p

# pcp_node_info of pgpool-II 4.6.1, every node (as the lab printed it)
NODE_INFO_46 = """\
10.89.77.11 5432 3 0.333333 down down standby unknown 0 none none 2026-12-04 08:52:11
10.89.77.12 5432 2 0.333333 up up primary primary 0 none none 2026-12-04 08:52:12
10.89.77.13 5432 1 0.333333 waiting up standby standby 0 streaming async 2026-12-04 08:52:12
"""
# the same without pg_status and pg_role (before 4.3)
NODE_INFO_OLD = """\
10.0.0.11 5432 2 0.500000 up primary 0 2026-12-04 08:52:11
10.0.0.12 5432 3 0.500000 down standby 0 2026-12-04 08:52:11
"""


def view(*states):
    """states: 'up primary', 'down standby', ... in node order."""
    return [{'id': i, 'host': 'h%d' % i, 'port': 5432, 'status': s.split()[0], 'role': s.split()[1]}
            for i, s in enumerate(states)]


def want(*roles):
    return [{'id': i, 'role': r} for i, r in enumerate(roles)]


def test_node_info_is_read_in_node_order():
    nodes = p.parse_node_info(NODE_INFO_46)
    assert [(n['id'], n['host'], n['status'], n['role'], n['actual_status'], n['actual_role']) for n in nodes] == [
        (0, '10.89.77.11', 'down', 'standby', 'down', 'unknown'),
        (1, '10.89.77.12', 'up', 'primary', 'up', 'primary'),
        (2, '10.89.77.13', 'waiting', 'standby', 'up', 'standby')]
    old = p.parse_node_info(NODE_INFO_OLD + '\nERROR: garbage\n')
    assert [(n['status'], n['role'], n['actual_role']) for n in old] == [('up', 'primary', None), ('down', 'standby', None)]


def test_in_line_means_no_step():
    assert p.next_actions(view('down standby', 'up primary', 'waiting standby'), want('down', 'primary', 'standby')) == []
    assert p.mismatches(view('down standby', 'up primary', 'up standby'), want('down', 'primary', 'standby')) == []


@pytest.mark.parametrize('states, roles, steps', [
    # the dead old primary is still routed to: take it out (pgpool then searches)
    (('up primary', 'up standby', 'up standby'), ('down', 'primary', 'standby'), [('detach', 0)]),
    # pgpool has the new primary down: attach it (pgpool searches)
    (('down primary', 'down standby', 'up standby'), ('down', 'primary', 'standby'), [('attach', 1)]),
    # a switchover behind pgpool's back, every node up: take the old primary out first
    (('up primary', 'up standby', 'up standby'), ('standby', 'primary', 'standby'), [('detach', 0)]),
    # ... then it comes back as a standby
    (('down primary', 'up primary', 'up standby'), ('standby', 'primary', 'standby'), [('attach', 0)]),
    # pgpool gave up its search: the primary is taken out to be attached (searched) again
    (('down standby', 'up standby', 'up standby'), ('down', 'primary', 'standby'), [('research', 1)]),
    # rejoined standbys come back
    (('down standby', 'up primary', 'down standby'), ('standby', 'primary', 'standby'), [('attach', 0), ('attach', 2)]),
    # a standby still called primary while the cluster has none
    (('up primary', 'up standby'), ('standby', 'standby'), [('detach', 0)]),
    # everything down: nothing to attach
    (('down standby', 'down standby'), ('down', 'down'), []),
])
def test_next_steps(states, roles, steps):
    assert p.next_actions(view(*states), want(*roles)) == steps


def test_a_node_pgpool_does_not_know_is_left_alone_but_reported():
    assert p.next_actions(view('up primary'), want('primary', 'standby')) == []
    assert p.mismatches(view('up primary'), want('primary', 'standby')) == [(1, 'missing', 'standby')]


def test_view_lines_name_the_members():
    nodes = p.parse_node_info(NODE_INFO_46)
    assert p.view_lines(nodes, {0: 'pg1', 1: 'pg2'}) == [
        '0 pg1 down standby (server: down unknown)', '1 pg2 up primary (server: up primary)',
        '2 10.89.77.13:5432 waiting standby (server: up standby)']
