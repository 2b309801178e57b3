#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: address_probe
short_description: Ask the local network which hosts answer for IPv4 addresses (ARP), changing nothing
version_added: 0.1.0
description:
  - Sends ARP probes (RFC 5227 - sender address 0.0.0.0, so no neighbour cache learns anything) for each of
    O(addresses) on O(interface) and returns the hardware (MAC) addresses that answered.
  - Used before a VIP is configured - an address that another host of the network already answers for would
    take the clients' traffic away from the primary once keepalived adds it.
  - When an answer comes from a MAC address outside O(expected_macs), the module also probes O(candidates) (the
    inventory's hosts and their addresses) to name the host that has it.
  - An address the probing host holds itself is reported as RV(probes[].held_here); the kernel never answers its
    own probe.
options:
  addresses:
    description: IPv4 addresses to probe (no prefix length).
    type: list
    elements: str
    required: true
  interface:
    description: The network interface to probe on (the one the address would live on).
    type: str
    required: true
  expected_macs:
    description:
      - MAC addresses that may answer (the interfaces of the hosts that are meant to hold the addresses). Answers
        from others are reported in RV(probes[].foreign).
    type: list
    elements: str
    default: []
  candidates:
    description:
      - Hosts that might answer, as C({name, address}). Probed only when a foreign MAC answered, to name it.
    type: list
    elements: dict
    default: []
  timeout:
    description: Seconds to wait for answers after the probes are sent.
    type: float
    default: 0.5
  count:
    description: Probes sent per address (a lost frame does not hide a host).
    type: int
    default: 2
attributes:
  check_mode:
    support: full
    description: Sends probes and reads answers only; runs the same in check mode.
  diff_mode:
    support: none
    description: No diff is produced.
requirements:
  - Linux, and the capability CAP_NET_RAW on the managed host (root has it).
author:
  - pgha.cluster developers (!UNKNOWN)
'''

EXAMPLES = r'''
- name: Ask who answers for the writer VIP
  pgha.cluster.address_probe:
    addresses: [10.0.0.100]
    interface: eth0
    expected_macs: "{{ groups['primary'] + groups['replicas'] | map('extract', hostvars) | map('pgha.cluster.host_macs') | flatten }}"
  register: probe

- name: Refuse an address another host answers for
  ansible.builtin.assert:
    that: probe.probes[0].foreign | length == 0
'''

RETURN = r'''
probes:
  description: One entry per address of O(addresses), in their order.
  returned: always
  type: list
  elements: dict
  contains:
    address:
      description: The address probed.
      type: str
      sample: 10.0.0.100
    held_here:
      description: Whether this host holds the address itself.
      type: bool
      sample: false
    answers:
      description: Every MAC address (lower case) that answered for it.
      type: list
      elements: str
      sample: ["52:54:00:12:34:56"]
    foreign:
      description: The answers outside O(expected_macs).
      type: list
      elements: str
      sample: ["52:54:00:12:34:56"]
    holders:
      description: The names of O(candidates) whose MAC address is among RV(probes[].foreign).
      type: list
      elements: str
      sample: [db-spare]
'''

import errno
import ipaddress
import os
import select
import socket
import struct
import time

from ansible.module_utils.basic import AnsibleModule

ETH_P_ARP = 0x0806
BROADCAST = b'\xff' * 6


def mac_bytes(text):
    return bytes(int(part, 16) for part in str(text).split(':'))


def mac_text(raw):
    return ':'.join('%02x' % b for b in bytearray(raw))


def arp_request(own_mac, target, sender='0.0.0.0'):
    """An Ethernet frame holding an ARP request for target (an ARP probe when sender is 0.0.0.0)."""
    mac = mac_bytes(own_mac)
    frame = BROADCAST + mac + struct.pack('!H', ETH_P_ARP)
    frame += struct.pack('!HHBBH', 1, 0x0800, 6, 4, 1)
    frame += mac + socket.inet_aton(sender) + b'\x00' * 6 + socket.inet_aton(target)
    return frame


def parse_reply(frame):
    """(sender IPv4 address, sender MAC) of an ARP reply frame, None for anything else."""
    if len(frame) < 42 or struct.unpack('!H', frame[12:14])[0] != ETH_P_ARP:
        return None
    htype, ptype, hlen, plen, op = struct.unpack('!HHBBH', frame[14:22])
    if (htype, ptype, hlen, plen, op) != (1, 0x0800, 6, 4, 2):
        return None
    return socket.inet_ntoa(frame[28:32]), mac_text(frame[22:28])


def interface_mac(interface, sys_root='/sys/class/net'):
    with open(os.path.join(sys_root, interface, 'address')) as f:
        return f.read().strip().lower()


def held_here(address):
    """Whether address is one of this host's own (only a local address can be bound)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((address, 0))
        return True
    except OSError as e:
        if e.errno == errno.EADDRNOTAVAIL:
            return False
        raise
    finally:
        sock.close()


def exchange(sock, own_mac, targets, count, timeout, clock=time):
    """Send count probes for each target, then read answers until timeout: {target: set(mac)}."""
    answers = dict((t, set()) for t in targets)
    for i in range(max(int(count), 1)):
        for target in targets:
            sock.send(arp_request(own_mac, target))
        if i + 1 < count:
            clock.sleep(0.02)
    deadline = clock.monotonic() + float(timeout)
    while True:
        left = deadline - clock.monotonic()
        if left <= 0:
            break
        ready, _w, _x = select.select([sock], [], [], left)
        if not ready:
            break
        reply = parse_reply(sock.recv(2048))
        if reply and reply[0] in answers and reply[1] != own_mac:
            answers[reply[0]].add(reply[1])
    return answers


def probe(params, open_socket, own_mac, is_held=held_here, clock=time):
    """The module's result, with open_socket() giving a bound raw ARP socket."""
    addresses = [str(a).strip() for a in params['addresses']]
    expected = set(str(m).strip().lower() for m in params['expected_macs'] or [])
    sock = open_socket()
    try:
        answers = exchange(sock, own_mac, addresses, params['count'], params['timeout'], clock)
        foreign_all = set()
        for address in addresses:
            foreign_all |= answers[address] - expected
        holders_by_mac = {}
        if foreign_all:
            candidates = [c for c in params['candidates'] or [] if c.get('address')]
            targets = sorted(set(str(c['address']) for c in candidates) - set(addresses))
            found = exchange(sock, own_mac, targets, params['count'], params['timeout'], clock) if targets else {}
            for c in candidates:
                for mac in found.get(str(c['address']), set()) & foreign_all:
                    holders_by_mac.setdefault(mac, [])
                    if c['name'] not in holders_by_mac[mac]:
                        holders_by_mac[mac].append(str(c['name']))
    finally:
        sock.close()
    probes = []
    for address in addresses:
        foreign = sorted(answers[address] - expected)
        holders = []
        for mac in foreign:
            holders += [h for h in holders_by_mac.get(mac, []) if h not in holders]
        probes.append(dict(address=address, held_here=is_held(address), answers=sorted(answers[address]),
                           foreign=foreign, holders=holders))
    return dict(changed=False, probes=probes)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            addresses=dict(type='list', elements='str', required=True),
            interface=dict(type='str', required=True),
            expected_macs=dict(type='list', elements='str', default=[]),
            candidates=dict(type='list', elements='dict', default=[]),
            timeout=dict(type='float', default=0.5),
            count=dict(type='int', default=2),
        ),
        supports_check_mode=True,
    )
    for address in module.params['addresses']:
        try:
            ipaddress.IPv4Address(str(address).strip())
        except ValueError:
            module.fail_json(msg='addresses: %r is not an IPv4 address (no prefix length)' % (address,))
    interface = module.params['interface']
    try:
        own_mac = interface_mac(interface)
    except (IOError, OSError) as e:
        module.fail_json(msg='interface %s: %s' % (interface, e))

    def open_socket():
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
        sock.bind((interface, ETH_P_ARP))
        return sock

    try:
        module.exit_json(**probe(module.params, open_socket, own_mac))
    except (IOError, OSError) as e:
        module.fail_json(msg='ARP probe on %s failed: %s (it needs CAP_NET_RAW)' % (interface, e))


if __name__ == '__main__':
    main()
