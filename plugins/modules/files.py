#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: files
short_description: Put several small files in place in one call
version_added: 0.1.0
description:
  - Makes each file of O(files) hold exactly the given content, with the given owner, group and mode, in one call
    for all of them. M(ansible.builtin.copy) and M(ansible.builtin.template) cost two calls per file on the host
    even when nothing changes (a stat, then the attributes); a role's small static files (systemd units and
    drop-ins, scripts, descriptions) cost one call per host here.
  - A file whose content differs is written to a temporary file in its directory and renamed over the old one, so
    a reader never sees it half written. A missing parent directory is created (mode 0755, the user the module
    runs as).
  - Render templates on the controller with the P(ansible.builtin.template#lookup) lookup and pass the result as
    O(files[].content).
  - Use it for files that carry no secret; the content is shown in the diff (C(--diff)).
options:
  files:
    description: The files to put in place, in this order.
    type: list
    elements: dict
    required: true
    suboptions:
      dest:
        description: Absolute path of the file.
        type: path
        required: true
      content:
        description: The whole content of the file.
        type: str
        required: true
      owner:
        description: Owner of the file (name or uid). Omit it to leave the owner as it is (a new file gets the user the module runs as).
        type: str
      group:
        description: Group of the file (name or gid). Omit it to leave the group as it is.
        type: str
      mode:
        description: Permissions, as an octal string such as C("0644") or a symbolic mode. Omit it to leave them as they are.
        type: raw
attributes:
  check_mode:
    support: full
    description: Reports what would change (RV(changed_files)) and changes nothing.
  diff_mode:
    support: full
    description: One diff per file whose content would change.
author:
  - pgha.cluster developers (!UNKNOWN)
'''

EXAMPLES = r'''
- name: A systemd unit and its script, in one call
  pgha.cluster.files:
    files:
      - dest: /usr/local/sbin/my-watch
        content: "{{ lookup('ansible.builtin.template', 'my-watch.py.j2') }}"
        owner: root
        group: root
        mode: "0755"
      - dest: /etc/systemd/system/my-watch.service
        content: |
          [Service]
          ExecStart=/usr/local/sbin/my-watch
        owner: root
        group: root
        mode: "0644"
  register: written

- name: Restart the watch when either file changed
  ansible.builtin.systemd_service:
    name: my-watch
    state: restarted
    daemon_reload: "{{ '/etc/systemd/system/my-watch.service' in written.changed_files }}"
  when: written.changed_files | length > 0
'''

RETURN = r'''
changed_files:
  description: The O(files[].dest) whose content or attributes changed (would change, in check mode), in the order given.
  returned: always
  type: list
  elements: str
  sample: ["/etc/systemd/system/my-watch.service"]
'''

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_native


def read_bytes(path):
    """The file's content, or None when there is no file."""
    try:
        with open(path, 'rb') as handle:
            return handle.read()
    except (IOError, OSError):
        if os.path.lexists(path):
            raise
        return None


def write_atomically(module, dest, data):
    """Write data to a temporary file next to dest, then rename it over dest."""
    directory = os.path.dirname(dest)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    handle, tmp = tempfile.mkstemp(dir=directory, prefix='.%s.' % os.path.basename(dest))
    try:
        with os.fdopen(handle, 'wb') as out:
            out.write(data)
        module.atomic_move(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def put_file(module, spec, diffs):
    """Bring one file in line with spec; True when it changed (or would)."""
    dest = spec['dest']
    if not os.path.isabs(dest):
        module.fail_json(msg='files[].dest must be an absolute path, not %r' % dest)
    if os.path.isdir(dest):
        module.fail_json(msg='files[].dest %s is a directory' % dest)
    data = to_bytes(spec['content'], errors='surrogate_or_strict')
    try:
        current = read_bytes(dest)
    except (IOError, OSError) as e:
        module.fail_json(msg='cannot read %s: %s' % (dest, to_native(e)))
    changed = current != data
    if changed and module._diff:
        diffs.append({'before_header': dest, 'after_header': dest,
                      'before': '' if current is None else to_native(current, errors='surrogate_then_replace'),
                      'after': spec['content']})
    if module.check_mode and current is None:
        return True
    if changed and not module.check_mode:
        try:
            write_atomically(module, dest, data)
        except (IOError, OSError) as e:
            module.fail_json(msg='cannot write %s: %s' % (dest, to_native(e)))
    changed = module.set_owner_if_different(dest, spec.get('owner'), changed)
    changed = module.set_group_if_different(dest, spec.get('group'), changed)
    return module.set_mode_if_different(dest, spec.get('mode'), changed)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            files=dict(type='list', elements='dict', required=True, options=dict(
                dest=dict(type='path', required=True),
                content=dict(type='str', required=True),
                owner=dict(type='str'),
                group=dict(type='str'),
                mode=dict(type='raw'),
            )),
        ),
        supports_check_mode=True,
    )
    diffs = []
    changed_files = [spec['dest'] for spec in module.params['files'] if put_file(module, spec, diffs)]
    result = dict(changed=bool(changed_files), changed_files=changed_files)
    if module._diff:
        result['diff'] = diffs
    module.exit_json(**result)


if __name__ == '__main__':
    main()
