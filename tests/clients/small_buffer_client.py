#!/usr/bin/env python3
"""Reads a long datagram through a small buffer, as the tutorials' recvfrom(1024) does.

Usage: small_buffer_client.py HOST PORT SIZE BUFFER
Sends SIZE bytes to an echo server and reads the answer with recvfrom(BUFFER). Prints
"sent SIZE got N" and exits 0; exits 1 if no answer comes within 5 s.
"""

import socket
import sys


def main():
    host, port, size, buffer = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(5.0)
    sock.sendto(b"x" * size, (host, port))
    try:
        data, _ = sock.recvfrom(buffer)
    except socket.timeout:
        print("small buffer client: no answer within 5 s", file=sys.stderr)
        sys.exit(1)
    print("sent %d got %d" % (size, len(data)))


if __name__ == "__main__":
    main()
