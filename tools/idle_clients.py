#!/usr/bin/env python3
"""Idle keep-alive clients for tools/idle-memory.sh (Python 3 standard library only).

    idle_clients.py HOST:PORT [-n 10000] [--inflight 256] [--timeout 60]

Opens N connections to HOST:PORT, sends one keep-alive `GET /` on each and reads the whole
response, so every connection has really been served (a server may allocate per-connection
state only once a request arrives). Then it prints one line

    ready served=N failed=F

on stdout and holds the connections idle until stdin reaches EOF: that is the caller's window
to measure the server. At EOF it reports how many connections the server kept open

    held open=K closed=C reset=R

and exits (status 0 only when every connection was served and is still open).

Connections are opened at most --inflight at a time, so the server's listen backlog never
overflows and what we measure is idle connections, not SYN retries.
"""

import argparse
import errno
import resource
import selectors
import socket
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: idle-memory\r\nUser-Agent: idle_clients.py\r\n\r\n"


def raise_nofile(needed):
    """Lift RLIMIT_NOFILE so N sockets fit; the hard limit only moves for root."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
            return
        except (ValueError, OSError):
            sys.exit(f"open-files hard limit is {hard}, {needed} needed (ulimit -Hn)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


class Conn:
    """One client connection: connect, send the request, read one response."""

    def __init__(self, addr):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.buf = b""
        err = self.sock.connect_ex(addr)
        if err not in (0, errno.EINPROGRESS):
            raise OSError(err, f"connect: {errno.errorcode.get(err, err)}")

    def on_writable(self):
        """Connect finished: send the whole request (it fits any socket buffer)."""
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, f"connect: {errno.errorcode.get(err, err)}")
        self.sock.sendall(REQUEST)

    def on_readable(self):
        """Returns True once one full response arrived; raises when it can't be one."""
        data = self.sock.recv(65536)
        if not data:
            raise OSError(errno.ECONNRESET, "closed before the response was complete")
        self.buf += data
        head_end = self.buf.find(b"\r\n\r\n")
        if head_end < 0:
            return False
        lines = self.buf[:head_end].decode("latin-1").split("\r\n")
        status = lines[0].split(" ", 2)
        if len(status) < 2 or status[1] != "200":
            raise OSError(errno.EPROTO, f"status line {lines[0]!r}")
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip().lower()
        if "close" in fields.get("connection", ""):
            raise OSError(errno.EPROTO, "server answered Connection: close")
        if "content-length" not in fields:
            raise OSError(errno.EPROTO, "response without Content-Length")
        return len(self.buf) - head_end - 4 >= int(fields["content-length"])


def serve_all(addr, total, inflight, deadline):
    """Opens `total` connections, each served once; returns (served sockets, failures)."""
    sel = selectors.DefaultSelector()
    served, failures = [], {}
    started = 0

    def fail(conn, exc):
        sel.unregister(conn.sock)
        conn.sock.close()
        key = str(exc)
        failures[key] = failures.get(key, 0) + 1

    while len(served) + sum(failures.values()) < total:
        if time.monotonic() > deadline:
            sys.exit(f"timed out: {len(served)} served, {sum(failures.values())} failed of {total}")
        while started < total and len(sel.get_map()) < inflight:
            started += 1
            try:
                conn = Conn(addr)
            except OSError as exc:
                failures[str(exc)] = failures.get(str(exc), 0) + 1
                continue
            sel.register(conn.sock, selectors.EVENT_WRITE, conn)
        for key, events in sel.select(timeout=1.0):
            conn = key.data
            try:
                if events & selectors.EVENT_WRITE:
                    conn.on_writable()
                    sel.modify(conn.sock, selectors.EVENT_READ, conn)
                elif conn.on_readable():
                    sel.unregister(conn.sock)
                    conn.buf = b""
                    served.append(conn.sock)
            except OSError as exc:
                fail(conn, exc)
    sel.close()
    return served, failures


def still_open(socks):
    """Counts connections the server kept: a peek that would block means open and idle."""
    counts = {"open": 0, "closed": 0, "reset": 0}
    for sock in socks:
        try:
            data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            counts["closed" if not data else "open"] += 1  # unsolicited bytes: still open
        except BlockingIOError:
            counts["open"] += 1
        except OSError:
            counts["reset"] += 1
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", help="HOST:PORT of the server")
    parser.add_argument("-n", type=int, default=10000, help="connections (default 10000)")
    parser.add_argument("--inflight", type=int, default=256,
                        help="connections being opened at once (default 256)")
    parser.add_argument("--timeout", type=float, default=60,
                        help="seconds allowed to open and serve all of them (default 60)")
    args = parser.parse_args()
    host, _, port = args.target.rpartition(":")

    raise_nofile(args.n + 64)
    deadline = time.monotonic() + args.timeout
    served, failures = serve_all((host, int(port)), args.n, args.inflight, deadline)
    print(f"ready served={len(served)} failed={sum(failures.values())}", flush=True)
    for reason, count in sorted(failures.items()):
        print(f"  failed {count}: {reason}", file=sys.stderr)

    sys.stdin.read()  # hold everything idle until the caller has measured
    counts = still_open(served)
    print(f"held open={counts['open']} closed={counts['closed']} reset={counts['reset']}", flush=True)
    for sock in served:
        sock.close()
    sys.exit(0 if not failures and counts["open"] == args.n else 1)


if __name__ == "__main__":
    main()
