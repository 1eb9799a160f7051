#!/usr/bin/env python3
"""A chat client shaped like the tutorials' ChatClientUdp: a *connected* UDP socket that
registers, sends a heartbeat, says something, reads the server's ack, and quits.

Usage: chat_client.py [HOST] [PORT]   (defaults: 127.0.0.1 9998)
Exits 0 when the ack is exactly "ack: IP PORT\\nTEXT\\n" with this socket's own address and
`reg`/`^hb^` got no reply; otherwise it says what went wrong and exits 1.
"""

import socket
import sys


def fail(why):
    print("chat client: " + why, file=sys.stderr)
    sys.exit(1)


def main():
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 9998
    server = (host, port)

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # Connecting fixes the peer: only datagrams from the server reach this socket, and the
    # kernel can report "connection refused" if nothing listens there.
    sock.connect(server)
    my_ip, my_port = sock.getsockname()

    sock.sendto(b"reg", server)
    sock.sendto(b"^hb^\n", server)
    text = "hello from python"
    sock.sendto(("  %s \n" % text).encode(), server)

    sock.settimeout(5.0)
    try:
        data, sender = sock.recvfrom(1024)
    except socket.timeout:
        fail("no ack within 5 s")
    except ConnectionRefusedError:
        fail("connection refused: is the chat server running on %s:%d?" % server)
    expected = "ack: {} {}\n{}\n".format(my_ip, my_port, text).encode()
    if data != expected:
        fail("expected %r, got %r (from %r)" % (expected, data, sender))
    print("got %r" % data)

    # The registration and the heartbeat must not have been answered.
    sock.settimeout(0.3)
    try:
        extra, _ = sock.recvfrom(1024)
        fail("unexpected extra datagram %r" % extra)
    except socket.timeout:
        pass

    sock.send(b"quit")
    sock.close()


if __name__ == "__main__":
    main()
