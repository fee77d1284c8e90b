# SPDX-License-Identifier: BSD-2-Clause
"""harness - frame-level test harness for slirpnet (pytest + scapy, no root needed).

slirpnet's guest side is an Ethernet link: one frame per SOCK_SEQPACKET record between
the emulator (libslirpnet.so) and the helper (``slirpnet -S FD``), or QEMU's stream and
datagram framings on the helper's other transports.  This package plays the guest on
that link and lets a test send frames and assert on the frames that come back,
PTF-style.  ``from harness import X`` gives every name below; the modules are:

  layers    scapy (set up never to resolve on a real interface) and its layers
  consts    libslirp's default addresses (GW_IP, GW_MAC, ...), timeouts, free_port(s)
  frames    frame builders for the guest's side, IPv4 fragments
  match     what expect() matches and how a failure is shown
  peers     Peer (send/expect) over -S (DirectPeer), --socket (StreamPeer), --dgram/--fd
            (DgramPeer)
  plugin    the netbe.h ABI through ctypes and PluginPeer
  vnet      virtio-net headers, offload feature bits, TSO frames, checksums
  tcp       a guest-side TCP (TcpConn) and the host side of a hostfwd
  dhcp      DHCP leases and option decoding
  checks    positive checks (the gateway answers ARP/ICMP) to pair with negative ones
  stats     the helper's counters (STATS_COUNTERS, parse_stats, stats_delta, signal_stats)
  procs     the helper as a process (HelperProc, helper_env), /proc look-ups
  servers   UDP echo and TCP servers on 127.0.0.1
  control   ControlClient for the JSON control socket (control=PATH)
  pcap      the helper's own capture files (read_pcap, CaptureFile, tshark)
  sandbox   the user the sandboxed helper becomes, directories it can use, /proc status
  config    the helper's configuration message and status reply (GVariant)
  vhost_user  VhostUserPeer: QEMU + the guest's virtio-net driver on --vhost-user PATH
            (memfd guest memory, split rings, kick/call eventfds, raw messages)

conftest.py turns these into fixtures (``peer``, ``plugin``, ``direct``, ``helpers``,
``stream_helper``, ``captured``, ``udp_echo``, ...; see its docstring).

Peers
-----
``Peer`` is the common interface; these implementations attach to the link:

* ``PluginPeer(spec)`` drives the emulator ABI of ``netbe.h`` through ctypes
  (``SLIRPNET_LIB``).  It owns a private GMainContext that it iterates while waiting;
  the rx callback drains frames into a queue.  The plugin spawns the helper named by
  ``helper=PATH`` (an argument, or an item of the spec that the harness takes out), by
  default ``$SLIRPNET_HELPER``; the harness sets that variable only while the plugin
  starts (``helper_env``).
* ``DirectPeer(options)`` spawns the helper itself on a socketpair, sends the config
  GVariant ``(ua(ss))`` and reads the ``(bs)`` status, then exchanges frames raw.
* ``VhostUserPeer(path, proc)`` is QEMU and the guest's virtio-net driver on
  ``--vhost-user PATH``: the vhost-user messages, guest memory in a memfd, split rings
  (see vhost_user.py; without proc= it starts the helper itself).
* ``StreamPeer`` / ``DgramPeer`` are QEMU's side of ``--socket`` (4-byte length, then the
  frame) and of ``--dgram``/``--fd`` (one frame per datagram), on a helper started with
  ``HelperProc(args)`` (or the ``helpers``/``stream_helper`` fixtures).

``DirectPeer`` takes QEMU ``-netdev user`` options (``"restrict=on,mtu=9000"``);
``PluginPeer`` takes a whole spec with the backend name (``"slirp,restrict=on"``).

Sending and expecting
---------------------
``peer.send(frame)``                 send a scapy packet or bytes (one frame)
``peer.expect(match, timeout)``      wait for a matching frame, return it (dissected)
``peer.expect_none(match, timeout)`` assert no matching frame arrives in ``timeout``
``peer.poll(match, timeout)``        like expect, but returns None on timeout
``peer.flush()``                     drop queued frames

``match`` is a callable taking a scapy packet, a scapy layer class (``ARP``: any frame
that has it), a packet *template* compared field by field (only fields set explicitly
in the template are compared, layer by layer; ``Raw(load=...)`` compares the payload
bytes), or None (any frame).  Positive waits default to ``POSITIVE_TIMEOUT`` (3 s),
negative ones to ``NEGATIVE_TIMEOUT`` (0.5 s); ``SLIRPNET_TIMEOUT_SCALE`` scales both.
Frames that do not match stay queued for later expects.  Failures raise AssertionError
showing the expected packet dissected and a summary of every frame that arrived.

A negative check passes on a dead link too: pair every ``expect_none`` with a positive
answer in the same test (``assert_alive(peer)``: the gateway answers an echo;
``arp_check``, ``ping_check``).

On start a peer announces the guest as a real one would (gratuitous ARP for
``peer.guest_ip``, unsolicited NA for ``peer.guest_ip6s``; ``prime=False`` skips it), so
libslirp knows the guest's MAC.  The harness also answers ARP who-has for
``peer.guest_ips`` and NDP neighbour solicitations for ``peer.guest_ip6s`` by itself
(set ``peer.auto_reply = False`` to see them).
Negative checks ignore Router Advertisements (libslirp sends them unsolicited); extend
``peer.noise`` with more predicates to ignore other background frames.

Every frame sent and received is recorded in ``peer.log`` as ``(time, "tx"|"rx",
bytes)``; ``write_pcap(path)`` saves it (LINKTYPE_ETHERNET), and conftest.py does so for
failed tests into ``$SLIRPNET_ARTIFACTS``.

Counters
--------
``peer.stats()`` waits until the helper has read what we sent (SIOCOUTQ), sends it
SIGUSR1 and parses the new ``stats:`` line into a dict; the control socket's ``stats``
reply (``ControlClient(path).call("stats")``) has the same counters as top-level keys.
They are named by direction (``STATS_COUNTERS``): ``from_guest_frames/bytes`` (frames the
guest sent, handed to libslirp), ``to_guest_frames/bytes``, the drops ``drop_oversize``,
``drop_runt``, ``drop_fragment``, ``drop_to_guest_full``, ``drop_to_guest_error``,
``drop_vnet_hdr``, then ``pauses``, ``from_guest_gso``, ``to_guest_gso``,
``to_guest_split``, ``refused_peers``, ``drop_foreign_sender`` and the egress policy's
``drop_egress_tcp``/``udp``/``icmp``.  ``stats_delta(before, after)`` is what changed in between.

Helpers
-------
``TcpConn``        a minimal guest-side TCP: ``TcpConn.connect(peer, ip, port)`` (client,
                   via the gateway) or ``TcpConn.accept(peer, port)`` (answer a hostfwd
                   SYN), then ``send``/``recv``/``recv_all``/``close``/``wait_fin``.
``hostfwd_exchange(peer, host_port, guest_port)``  host client -> hostfwd -> guest
                   acceptor, data and FIN both ways.
``dhcp_lease``     DISCOVER/OFFER/REQUEST/ACK; ``dhcp_options`` decodes options to a
                   dict; ``decode_dns_names`` decodes RFC 1035 name lists (option 119).
``expect_datagram`` collects and reassembles IPv4 fragments; ``fragments`` makes them.
``icmp_echo``, ``udp_to``, ``arp_who_has``, ``router_solicit``, ``icmp6_echo`` and
                   friends build common frames; ``free_port`` picks a loopback port
                   (``free_ports(n)``: n different ones).
``peer.helper_log()``, ``peer.helper_status()``  the helper's stderr and exit status.
``PluginPeer.be_send/be_recv/be_peek/be_discard/set_cap/...`` call the C ABI directly
                   and return ``(ret, errno[, data])``.

Example::

    def test_ping(peer):                    # runs through the plugin and the helper
        p = peer("restrict=on")
        p.send(icmp_echo(p, seq=1))
        r = p.expect(icmp_echo_reply_from(p, seq=1))
        assert r[IP].src == GW_IP

    def test_runt_counted(direct):          # the helper on -S only
        p = direct("restrict=on")
        before = p.stats()
        p.send(b"\\x52" * 5)
        assert stats_delta(before, p.stats()) == {"drop_runt": 1}
        assert_alive(p)

Network safety: every builder here sets Ether src/dst explicitly, scapy's neighbour
resolution is switched off on import (an unset Ether dst stays broadcast instead of
ARPing on a real interface), and nothing uses scapy's sr/srp/sendp: frames only travel
on the link to the helper.  Tests reach host services through the gateway (10.0.2.2 ->
127.0.0.1) and hostfwd binds 127.0.0.1; never aim traffic at 10.0.2.3:53 (libslirp
would forward it to the host's resolver), and use restrict=on for random frames.
"""

from .layers import *  # noqa: F401,F403  (first: it sets scapy up)
from .consts import *  # noqa: F401,F403
from .stats import *  # noqa: F401,F403
from .config import *  # noqa: F401,F403
from .match import *  # noqa: F401,F403
from .frames import *  # noqa: F401,F403
from .procs import *  # noqa: F401,F403
from .peers import *  # noqa: F401,F403
from .vnet import *  # noqa: F401,F403
from .plugin import *  # noqa: F401,F403
from .tcp import *  # noqa: F401,F403
from .dhcp import *  # noqa: F401,F403
from .checks import *  # noqa: F401,F403
from .servers import *  # noqa: F401,F403
from .control import *  # noqa: F401,F403
from .pcap import *  # noqa: F401,F403
from .sandbox import *  # noqa: F401,F403
from .vhost_user import *  # noqa: F401,F403
