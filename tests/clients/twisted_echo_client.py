"""A Twisted echo client, the way the Twisted tutorial writes one: a DatagramProtocol whose
transport is connected to the server, so that an ICMP "port unreachable" comes back as
connectionRefused.

    python3 twisted_echo_client.py HOST PORT expect-echo     # exits 0 if the echo came back
    python3 twisted_echo_client.py HOST PORT expect-refused  # exits 0 if the port refused

Exit 1 (with the reason on stderr) otherwise, or after 5 seconds of silence.
"""

import sys

# The select() reactor: select() reports a socket with a pending ICMP error as readable, so
# Twisted reads it and calls connectionRefused. (Linux's epoll reports only an error flag,
# which Twisted's default reactor takes for a lost connection.)
from twisted.internet import selectreactor

selectreactor.install()

from twisted.internet import reactor  # noqa: E402  (after choosing the reactor)
from twisted.internet.protocol import DatagramProtocol

HOST, PORT, EXPECT = sys.argv[1], int(sys.argv[2]), sys.argv[3]
MESSAGE = b"hello from twisted"
outcome = {"code": 1, "why": "no answer within 5 s"}


def finish(code, why):
    outcome["code"], outcome["why"] = code, why
    if reactor.running:
        reactor.stop()


class EchoClient(DatagramProtocol):
    def startProtocol(self):
        # A connected UDP transport: only this peer's datagrams reach us, and ICMP errors do.
        self.transport.connect(HOST, PORT)
        self.transport.write(MESSAGE)

    def datagramReceived(self, data, addr):
        if EXPECT == "expect-echo" and data == MESSAGE:
            finish(0, "echoed")
        else:
            finish(1, f"unexpected datagram {data!r} from {addr}")

    def connectionRefused(self):
        if EXPECT == "expect-refused":
            finish(0, "refused")
        else:
            finish(1, "connection refused: no server is listening")


reactor.listenUDP(0, EchoClient())
reactor.callLater(5, finish, 1, "no answer within 5 s")
reactor.run()
print(outcome["why"], file=sys.stderr if outcome["code"] else sys.stdout)
sys.exit(outcome["code"])
