#!/usr/bin/env python3
"""tcp-capture: record every byte an outsider receives over TCP, for the
tests of what a node without the swarm key learns (t/9301).

  tcp-capture.py listen PORTFILE OUTPREFIX SECONDS
      listen on 127.0.0.1 (port written to PORTFILE), write nothing to
      anyone, and save what each connection sends to OUTPREFIX.N (N from 1)
      until it closes; stop after SECONDS.

  tcp-capture.py connect HOST PORT OUTFILE CMD [ARGS...]
      connect to HOST:PORT and run CMD with its stdin fed from the socket
      and its stdout sent to it (t/helper/shs-client, say); save every byte
      the socket delivered to OUTFILE.  Exits with CMD's status.
"""
import os
import select
import socket
import subprocess
import sys
import time


def listen(portfile, prefix, seconds):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    with open(portfile + ".tmp", "w") as f:
        f.write("%d\n" % srv.getsockname()[1])
    os.rename(portfile + ".tmp", portfile)
    end = time.monotonic() + seconds
    conns = {}      # socket -> open file
    n = 0
    while time.monotonic() < end:
        r, _, _ = select.select([srv] + list(conns), [], [], 0.1)
        for s in r:
            if s is srv:
                c, _ = srv.accept()
                n += 1
                conns[c] = open("%s.%d" % (prefix, n), "wb")
                continue
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if data:
                conns[s].write(data)
                conns[s].flush()
            else:
                conns.pop(s).close()
                s.close()
    for s, f in conns.items():
        f.close()
        s.close()


def connect(host, port, outfile, cmd):
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.setblocking(False)
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out = open(outfile, "wb")
    pout = p.stdout.fileno()
    sock_open, proc_open = True, True
    deadline = time.monotonic() + 15
    while (sock_open or proc_open) and time.monotonic() < deadline:
        watch = ([sock] if sock_open else []) + ([pout] if proc_open else [])
        r, _, _ = select.select(watch, [], [], 0.2)
        if sock in r:
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if data:
                out.write(data)
                out.flush()
                try:
                    p.stdin.write(data)
                    p.stdin.flush()
                except OSError:
                    pass
            else:
                sock_open = False
                try:
                    p.stdin.close()
                except OSError:
                    pass
        if pout in r:
            data = os.read(pout, 65536)
            if data:
                try:
                    sock.sendall(data)
                except OSError:
                    pass
            else:
                proc_open = False
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
        if p.poll() is not None and not proc_open:
            # the program is done: whatever the socket still says is captured
            # until it closes (or the deadline)
            pass
    out.close()
    sock.close()
    try:
        return p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        return 124


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "listen":
        listen(sys.argv[2], sys.argv[3], float(sys.argv[4]))
        return 0
    if len(sys.argv) >= 6 and sys.argv[1] == "connect":
        return connect(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
    sys.stderr.write(__doc__)
    return 64


if __name__ == "__main__":
    sys.exit(main())
