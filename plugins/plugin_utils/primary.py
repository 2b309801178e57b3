# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""May this node be a primary? The one place that answers it, for every part of the collection that
asks:

- the runbooks' decisions (plugins/filter/cluster.py: which nodes count as primaries, split brain,
  promotion);
- the start guard on every member (roles/postgresql/files/pgha_start_guard.py): may PostgreSQL start
  as a primary, and must a running primary fence itself;
- the VIP state on every member (roles/keepalived/files/pgha_vip_state.py): may this node hold the
  writer VIP.

The roles install this file beside those two programs on the hosts (/usr/local/lib/pgha/pgha_primary.py),
which import it: it has no dependency beyond Python's standard library. Unit-tested in
tests/unit/plugins/plugin_utils/test_primary.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def counts_as_primary(role, fenced):
    """A node counts as a primary of the cluster when its server runs as one and it is not fenced: a fenced
    node (promote.yml, the start guard or the fence watch left the marker) was replaced, whatever its server
    says; the writer VIP, the split-brain check and the runbooks all ignore it."""
    return role == 'primary' and not fenced


def newer_peer(system_id, timeline, answers):
    """The first peer of the same cluster (system identifier) on a newer timeline than this node's, as
    (peer, its timeline), or None. answers: [(peer, answer)] where answer is (system identifier, timeline),
    'down' (its host answers, no PostgreSQL) or None (no answer)."""
    for peer, found in answers:
        if found is None or found == 'down':
            continue
        peer_id, peer_tl = found
        if str(peer_id) == str(system_id) and int(peer_tl) > int(timeline):
            return peer, int(peer_tl)
    return None


def start_decision(fenced, standby, answers=None, system_id=None, timeline=None, alone_policy='start',
                   has_peers=True):
    """Whether PostgreSQL may start on this node, and why: ('start'|'refuse'|'fence', reason).

    fenced: its fence marker exists; standby: it starts as a standby (standby.signal), which is always
    allowed; answers: what the peers said (newer_peer's form); alone_policy: postgresql_start_guard_when_alone
    ('start' or 'refuse') for when no peer answered at all. 'fence' means: refuse, and leave the fence
    marker (a peer on a newer timeline replaced this node)."""
    if fenced:
        return 'refuse', 'this node is fenced'
    if standby:
        return 'start', 'it starts as a standby'
    found = newer_peer(system_id, timeline, answers or [])
    if found is not None:
        peer, peer_tl = found
        return 'fence', ('peer %s is on timeline %d, newer than this node\'s %s: a replica was promoted while this '
                         'node was away' % (peer.get('name', peer) if isinstance(peer, dict) else peer, peer_tl,
                                            timeline))
    answered = [a for _peer, a in (answers or []) if a is not None]
    if has_peers and not answered:
        if alone_policy == 'refuse':
            return 'refuse', 'no peer answered, so this node cannot know whether a replica was promoted'
        return 'start', 'no peer answered; starting without a check'
    return 'start', 'no peer is on a newer timeline'


def writer_vip_priority(role, fenced, was_primary, fault, hold):
    """What the writer VIP's VRRP instance gets from one look at the node (the value pgha-vip-state
    writes): 0 (full priority) for a node that counts as a primary; hold for a node that was one when it
    last answered and does not answer now (it keeps the VIP until a new primary takes it over); fault
    otherwise (a standby, a fenced node, a node that never was the primary)."""
    if fenced:
        return fault
    if role is None:
        return hold if was_primary else fault
    return 0 if counts_as_primary(role, fenced) else fault
