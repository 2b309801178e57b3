#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: pgpool_sync
short_description: Bring one pgpool-II in line with the cluster's real primary and standbys
version_added: 0.1.0
description:
  - Reads pgpool-II's view of its backends with C(pcp_node_info) and, where it differs from O(desired), takes
    nodes out (C(pcp_detach_node)) and puts them back (C(pcp_attach_node)) until pgpool routes writes to the
    primary the cluster really has and reads only to its live standbys.
  - pgpool never promotes anything here (its failover commands are empty). A detach only takes a node out of its
    routing, and an attach makes it search for the primary again.
  - PCP's exit codes do not prove a request was carried out, so the module polls C(pcp_node_info) until the view
    matches, and fails naming the nodes still out of line after O(timeout) seconds.
  - Without a watchdog each pgpool host has a view of its own, so run the module on every pgpool host.
options:
  desired:
    description:
      - Every backend as the cluster is, C({id, role}) with role C(primary), C(standby) or C(down). The filter
        M(pgha.cluster.pgpool_desired) builds it from the runbooks' survey.
    type: list
    elements: dict
    required: true
  pcp_host:
    description: Where PCP listens (a host name, or the directory of its Unix socket).
    type: str
    default: localhost
  pcp_port:
    description: PCP's port.
    type: int
    default: 9898
  pcp_user:
    description: PCP's user (pcp.conf).
    type: str
    required: true
  pcp_passfile:
    description: The PCP password file (C(host:port:user:password), mode 0600, owned by the user the module runs as).
    type: path
    required: true
  timeout:
    description: Seconds to wait for pgpool to come in line (PCP answering, its search for the primary).
    type: int
    default: 60
attributes:
  check_mode:
    support: full
    description: Reads pgpool's view and returns the first steps it would take in RV(actions), changing nothing.
  diff_mode:
    support: none
    description: No diff is produced.
requirements:
  - the pcp commands of pgpool-II (Debian package C(pgpool2)) on the managed host
notes:
  - Detaching the node pgpool routes writes to ends its clients' sessions, as the failover did already.
author:
  - pgha.cluster developers (!UNKNOWN)
'''

EXAMPLES = r'''
- name: Bring pgpool in line after a promotion
  pgha.cluster.pgpool_sync:
    desired:
      - {id: 0, role: down}
      - {id: 1, role: primary}
      - {id: 2, role: standby}
    pcp_user: pgha_pcp
    pcp_passfile: /root/.pcppass
  register: pgpool

- name: Show what pgpool sees now
  ansible.builtin.debug:
    var: pgpool.lines
'''

RETURN = r'''
before:
  description: pgpool's view before the module acted, one entry per backend.
  returned: always
  type: list
  elements: dict
  sample: [{id: 0, host: 10.0.0.11, port: 5432, status: up, role: primary, actual_status: down, actual_role: unknown}]
after:
  description: pgpool's view at the end (the same as RV(before) in check mode).
  returned: always
  type: list
  elements: dict
actions:
  description: The pcp steps taken (in check mode, the first ones it would take), as C(detach N) or C(attach N).
  returned: always
  type: list
  elements: str
  sample: [detach 0, attach 0]
lines:
  description: RV(after) as one line per backend, for a summary.
  returned: always
  type: list
  elements: str
  sample: ["0 10.0.0.11:5432 down primary (server: down unknown)", "1 10.0.0.12:5432 up primary (server: up primary)"]
'''

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pgha.cluster.plugins.module_utils.pgha_pgpool import (
    PCP_VERBS,
    mismatches,
    next_actions,
    parse_node_info,
    view_lines,
)

SETTLE_SECONDS = 10
POLL_SECONDS = 0.5
#: How long pgpool may search for the primary itself (it asks every node each second)
#: before the module makes it search again.
SEARCH_GRACE_SECONDS = 5


class Pcp(object):
    def __init__(self, module):
        self.module = module
        p = module.params
        self.args = ['-h', p['pcp_host'], '-p', str(p['pcp_port']), '-U', p['pcp_user'], '-w']
        self.env = {'PCPPASSFILE': p['pcp_passfile']}

    def run(self, command, *extra):
        path = self.module.get_bin_path(command, required=True)
        return self.module.run_command([path] + self.args + list(extra), environ_update=self.env)

    def view(self):
        rc, out, err = self.run('pcp_node_info')
        if rc != 0:
            return None, ' '.join((err or out).split())
        return parse_node_info(out), None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            desired=dict(type='list', elements='dict', required=True),
            pcp_host=dict(type='str', default='localhost'),
            pcp_port=dict(type='int', default=9898),
            pcp_user=dict(type='str', required=True),
            pcp_passfile=dict(type='path', required=True),
            timeout=dict(type='int', default=60),
        ),
        supports_check_mode=True,
    )
    desired = module.params['desired']
    for d in desired:
        if d.get('role') not in ('primary', 'standby', 'down') or not str(d.get('id', '')).isdigit():
            module.fail_json(msg='desired: %r is not {id, role: primary|standby|down}' % (d,))
    if len([d for d in desired if d['role'] == 'primary']) > 1:
        module.fail_json(msg='desired names more than one primary: pgpool is left as it is')
    names = dict((int(d['id']), d['name']) for d in desired if d.get('name'))
    pcp = Pcp(module)
    deadline = time.time() + module.params['timeout']
    # PCP does not answer while pgpool starts and searches for a primary
    view, error = pcp.view()
    while view is None and time.time() < deadline:
        time.sleep(POLL_SECONDS)
        view, error = pcp.view()
    if view is None:
        module.fail_json(msg='pcp_node_info did not answer within %ds: %s' % (module.params['timeout'], error))
    before = view
    taken = []
    last_step = time.time()
    if module.check_mode:
        planned = next_actions(view, desired)
        module.exit_json(changed=bool(planned), before=before, after=before,
                         actions=['%s %d' % (PCP_VERBS[c], n) for c, n in planned], lines=view_lines(before, names))
    while True:
        steps = next_actions(view, desired)
        if not steps or time.time() >= deadline:
            break
        if steps[0][0] == 'research' and time.time() - last_step < SEARCH_GRACE_SECONDS:
            time.sleep(POLL_SECONDS)
            fresh, error = pcp.view()
            view = fresh if fresh is not None else view
            continue
        for command, node in steps:
            verb = PCP_VERBS[command]
            rc, out, err = pcp.run('pcp_%s_node' % verb, '-n', str(node))
            taken.append('%s %d' % (verb, node))
            if rc != 0:
                module.fail_json(msg='pcp_%s_node -n %d failed: %s' % (verb, node, ' '.join((err or out).split())),
                                 before=before, actions=taken)
        last_step = time.time()
        # pcp's answer proves nothing: wait until pgpool's view changes (or settles)
        settle = min(deadline, time.time() + SETTLE_SECONDS)
        old = view
        while time.time() < settle:
            time.sleep(POLL_SECONDS)
            fresh, error = pcp.view()
            if fresh is not None:
                view = fresh
                if not mismatches(view, desired) or [(n['status'], n['role']) for n in view] != \
                        [(n['status'], n['role']) for n in old]:
                    break
    left = mismatches(view, desired)
    result = dict(changed=bool(taken), before=before, after=view, actions=taken, lines=view_lines(view, names))
    if left:
        result['msg'] = ('pgpool is still out of line after %ds: %s' % (
            module.params['timeout'], '; '.join('node %s shows %s, should be %s' % m for m in left)))
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
