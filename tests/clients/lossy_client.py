#!/usr/bin/env python3
"""A retrying client for the lossy server, after udp_remote.py's client: it waits 0.1 s for an
answer, doubles the wait after each silence, and gives up once the wait would exceed 2 s.

Usage: lossy_client.py [HOST] [PORT] [COUNT]   (defaults: 127.0.0.1 1060 1)
Sends COUNT requests one after another, each retried until answered. Prints "retries: N" and
exits 0 when every request got "Your data was N bytes long"; exits 1 with a reason otherwise,
including when the server seems to be down.
"""

import socket
import sys


def fail(why):
    print("lossy client: " + why, file=sys.stderr)
    sys.exit(1)


def ask(sock, data):
    """Sends `data` until answered; returns (answer, retries)."""
    wait = 0.1
    retries = 0
    while True:
        sock.send(data)
        sock.settimeout(wait)
        try:
            return sock.recv(65535), retries
        except ConnectionRefusedError:
            fail("connection refused: nothing listens on the server's port")
        except socket.timeout:
            wait *= 2
            if wait > 2.0:
                fail("no answer after %d tries; the server seems to be down" % (retries + 1))
            retries += 1
            print("no answer, waiting up to %.1f s now" % wait)


def main():
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 1060
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 1

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((host, port))
    data = b"This is another message"
    expected = ("Your data was %d bytes long" % len(data)).encode()
    total = 0
    for _ in range(count):
        answer, retries = ask(sock, data)
        total += retries
        if answer != expected:
            fail("expected %r, got %r" % (expected, answer))
    print("retries: %d" % total)
    sock.close()


if __name__ == "__main__":
    main()
