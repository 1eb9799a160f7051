#!/usr/bin/env python3
"""The tutorials' uppercase UDP server, on Python's socketserver.ThreadingUDPServer.

This is the comparison point for the relay in bench/run.sh: the classic
"socketserver" tutorial server, stdlib only. ThreadingUDPServer starts one thread
per datagram; the handler answers with the datagram in capital letters.

    python3 bench/threading_udp_server.py PORT     # PORT 0 lets the OS pick

It prints "python listening udp://127.0.0.1:PORT" once bound, and runs until
SIGTERM or Ctrl-C.
"""

import signal
import socketserver
import sys


class UpperHandler(socketserver.BaseRequestHandler):
    """For UDP, self.request is (data, socket): the datagram and the server's socket."""

    def handle(self):
        data, sock = self.request
        sock.sendto(data.upper(), self.client_address)


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8003
    with socketserver.ThreadingUDPServer(("127.0.0.1", port), UpperHandler) as server:
        # Daemon threads, so a stop does not wait for handler threads.
        server.daemon_threads = True
        host, real_port = server.server_address
        print(f"python listening udp://{host}:{real_port}", flush=True)
        # SIGTERM (sent by bench/run.sh on exit) stops the server like Ctrl-C does.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
