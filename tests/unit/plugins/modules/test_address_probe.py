"""pgha.cluster.address_probe: ARP frames built and parsed (pure), and the probe against a scripted
raw socket: no answer, a member's answer, a foreign answer named through the candidates."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

import socket
import struct

import pytest

from ansible_collections.pgha.cluster.plugins.modules import address_probe as ap

OWN = '02:00:00:00:00:01'


def reply(sender_ip, sender_mac, target_mac=OWN):
    frame = ap.mac_bytes(target_mac) + ap.mac_bytes(sender_mac) + struct.pack('!H', ap.ETH_P_ARP)
    frame += struct.pack('!HHBBH', 1, 0x0800, 6, 4, 2)
    frame += ap.mac_bytes(sender_mac) + socket.inet_aton(sender_ip) + ap.mac_bytes(target_mac) + socket.inet_aton('0.0.0.0')
    return frame


def test_request_is_an_arp_probe():
    frame = ap.arp_request(OWN, '10.0.0.100')
    assert len(frame) == 42
    assert frame[:6] == b'\xff' * 6 and ap.mac_text(frame[6:12]) == OWN
    assert struct.unpack('!H', frame[12:14])[0] == 0x0806
    assert struct.unpack('!HHBBH', frame[14:22]) == (1, 0x0800, 6, 4, 1)
    # sender 0.0.0.0: no neighbour cache learns from it (RFC 5227)
    assert socket.inet_ntoa(frame[28:32]) == '0.0.0.0' and socket.inet_ntoa(frame[38:42]) == '10.0.0.100'


def test_parse_reply():
    assert ap.parse_reply(reply('10.0.0.100', '02:00:00:00:00:0a')) == ('10.0.0.100', '02:00:00:00:00:0a')
    assert ap.parse_reply(ap.arp_request(OWN, '10.0.0.100')) is None     # a request, not a reply
    assert ap.parse_reply(b'\x00' * 20) is None
    ipv4 = bytearray(reply('10.0.0.100', '02:00:00:00:00:0a'))
    ipv4[12:14] = b'\x08\x00'
    assert ap.parse_reply(bytes(ipv4)) is None


class FakeSocket(object):
    """Answers each probe for a target from a table {target: [mac, ...]} (plus frames for other addresses)."""

    def __init__(self, hosts, noise=()):
        self.hosts = hosts
        self.queue = list(noise)
        self.sent = []
        self.closed = False

    def send(self, frame):
        self.sent.append(socket.inet_ntoa(frame[38:42]))
        for mac in self.hosts.get(socket.inet_ntoa(frame[38:42]), []):
            self.queue.append(reply(socket.inet_ntoa(frame[38:42]), mac))

    def recv(self, size):
        return self.queue.pop(0)

    def close(self):
        self.closed = True


@pytest.fixture
def fake_select(monkeypatch, fake_clock):
    def select(r, w, x, timeout):
        if r[0].queue:
            return r, [], []
        fake_clock.sleep(timeout)
        return [], [], []
    monkeypatch.setattr(ap.select, 'select', select)
    return fake_clock


def params(**kw):
    p = dict(addresses=['10.0.0.100'], interface='eth0', expected_macs=[], candidates=[], timeout=0.5, count=2)
    p.update(kw)
    return p


def test_nobody_answers(fake_select):
    sock = FakeSocket({})
    result = ap.probe(params(), lambda: sock, OWN, is_held=lambda a: False, clock=fake_select)
    assert result == {'changed': False, 'probes': [{'address': '10.0.0.100', 'held_here': False, 'answers': [],
                                                    'foreign': [], 'holders': []}]}
    assert sock.sent == ['10.0.0.100', '10.0.0.100'] and sock.closed


def test_a_member_holding_the_vip_is_expected(fake_select):
    sock = FakeSocket({'10.0.0.100': ['02:00:00:00:00:0b']},
                      noise=[reply('10.0.0.7', '02:00:00:00:00:99'), b'\x00' * 60])
    result = ap.probe(params(expected_macs=['02:00:00:00:00:0B'], candidates=[{'name': 'x', 'address': '10.0.0.7'}]),
                      lambda: sock, OWN, is_held=lambda a: False, clock=fake_select)
    assert result['probes'][0]['answers'] == ['02:00:00:00:00:0b']
    assert result['probes'][0]['foreign'] == [] and result['probes'][0]['holders'] == []
    # no foreign answer: the candidates are not asked
    assert sock.sent == ['10.0.0.100', '10.0.0.100']


def test_a_foreign_answer_is_named_from_the_candidates(fake_select):
    spare = '02:00:00:00:00:20'
    sock = FakeSocket({'10.0.0.100': [spare], '10.0.0.20': [spare], '10.0.0.11': ['02:00:00:00:00:0b']})
    result = ap.probe(params(addresses=['10.0.0.100', '10.0.0.101'], expected_macs=['02:00:00:00:00:0b'],
                             candidates=[{'name': 'pg1', 'address': '10.0.0.11'}, {'name': 'spare', 'address': '10.0.0.20'},
                                         {'name': 'nameless'}]),
                      lambda: sock, OWN, is_held=lambda a: a == '10.0.0.101', clock=fake_select)
    first, second = result['probes']
    assert first == {'address': '10.0.0.100', 'held_here': False, 'answers': [spare], 'foreign': [spare],
                     'holders': ['spare']}
    assert second == {'address': '10.0.0.101', 'held_here': True, 'answers': [], 'foreign': [], 'holders': []}
    assert sorted(set(sock.sent)) == ['10.0.0.100', '10.0.0.101', '10.0.0.11', '10.0.0.20']


def test_held_here_binds_only_local_addresses():
    assert ap.held_here('127.0.0.1') is True
    assert ap.held_here('192.0.2.1') is False      # TEST-NET-1: never a local address here


def test_interface_mac(tmp_path):
    (tmp_path / 'eth0').mkdir()
    (tmp_path / 'eth0' / 'address').write_text('02:00:00:AB:CD:EF\n')
    assert ap.interface_mac('eth0', str(tmp_path)) == '02:00:00:ab:cd:ef'


def test_module_refuses_a_prefix_length(module_harness, set_module_args):
    _exit, fail = module_harness
    with set_module_args({'addresses': ['10.0.0.100/24'], 'interface': 'eth0'}):
        with pytest.raises(fail) as e:
            ap.main()
    assert "'10.0.0.100/24' is not an IPv4 address" in e.value.result['msg']
