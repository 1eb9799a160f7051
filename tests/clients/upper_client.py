#!/usr/bin/env python3
"""A client for the uppercase server, like the tutorials' socketserver example.

Usage: upper_client.py [HOST] [PORT]   (defaults: 127.0.0.1 8003)
The answer must be exactly what Python's bytes.upper() makes of the request: ASCII letters
uppercased, every other byte as it was. Exits 0 on success, 1 with a reason otherwise.
"""

import socket
import sys


def fail(why):
    print("upper client: " + why, file=sys.stderr)
    sys.exit(1)


def main():
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 8003

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(5.0)
    requests = [b"hello, udp!", "caf\u00e9 cr\u00e8me".encode("utf-8"), b"\xff\x00mixed Case", b""]
    for request in requests:
        sock.sendto(request, (host, port))
        try:
            data, _ = sock.recvfrom(1024)
        except socket.timeout:
            fail("no answer to %r within 5 s" % request)
        if data != request.upper():
            fail("sent %r, expected %r, got %r" % (request, request.upper(), data))
        print("%r -> %r" % (request, data))
    sock.close()


if __name__ == "__main__":
    main()
