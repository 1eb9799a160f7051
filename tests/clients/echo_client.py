#!/usr/bin/env python3
"""An echo client in the tutorials' style: an unconnected UDP socket, sendto() and recvfrom().

Usage: echo_client.py [HOST] [PORT]   (defaults: 127.0.0.1 10004)
Exits 0 when every datagram comes back unchanged from the server's address; otherwise it
says what went wrong and exits 1.
"""

import socket
import sys


def fail(why):
    print("echo client: " + why, file=sys.stderr)
    sys.exit(1)


def main():
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 10004
    server = (host, port)

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(5.0)
    # Text, the empty datagram (still a datagram), and raw bytes that are not UTF-8.
    for message in [b"hello, echo server", b"", bytes(range(256))]:
        sock.sendto(message, server)
        try:
            data, sender = sock.recvfrom(65535)
        except socket.timeout:
            fail("no answer to %r within 5 s" % message[:20])
        if sender != server:
            fail("answer came from %r, expected %r" % (sender, server))
        if data != message:
            fail("sent %r, got back %r" % (message[:40], data[:40]))
        print("echoed %d bytes" % len(data))
    sock.close()


if __name__ == "__main__":
    main()
