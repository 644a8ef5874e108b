#!/usr/bin/env python3
"""shs-relay: run t/helper/shs-server and t/helper/shs-client and carry the
handshake between them, optionally flipping one bit of one message, then
print one JSON line describing what each side did:

  shs-relay.py SERVER_NETKEY SERVER_SK SERVER_PK CLIENT_NETKEY EXPECTED_PK [MSG BIT]

{"server_rc": 0, "client_rc": 0, "server_out": HEX-after-msg2,
 "client_out": HEX-after-msg3, "stopped": "msgN" or null}

server_out is what the server wrote after msg2 (msg4 and its keys on
success); client_out what the client wrote after msg3 (its keys).  Each
side's stdout is read to the end, so bytes written after a failure show.
"""
import json
import os
import select
import subprocess
import sys

def read_n(fd, n, timeout=10.0):
    """Up to n bytes: fewer only at end of file."""
    out = b""
    while len(out) < n:
        r, _, _ = select.select([fd], [], [], timeout)
        if not r:
            raise TimeoutError("peer silent")
        chunk = os.read(fd, n - len(out))
        if not chunk:
            break
        out += chunk
    return out

def read_all(fd, timeout=10.0):
    out = b""
    while True:
        r, _, _ = select.select([fd], [], [], timeout)
        if not r:
            raise TimeoutError("no end of file")
        chunk = os.read(fd, 65536)
        if not chunk:
            return out
        out += chunk

def main():
    a = sys.argv[1:]
    snet, ssk, spk, cnet, cpk = a[:5]
    flip = (int(a[5]), int(a[6])) if len(a) > 6 else (0, 0)
    helpers = os.environ.get("SHS_HELPERS", "")
    srv = subprocess.Popen([os.path.join(helpers, "shs-server"), snet, ssk, spk],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    cli = subprocess.Popen([os.path.join(helpers, "shs-client"), cnet, cpk],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    so, co = srv.stdout.fileno(), cli.stdout.fileno()
    stopped = None
    server_out = b""
    client_out = b""

    def mangle(no, msg):
        if flip[0] == no and msg:
            b = bytearray(msg)
            b[flip[1] // 8 % len(b)] ^= 1 << (flip[1] % 8)
            return bytes(b)
        return msg

    def send(p, data):
        try:
            p.stdin.write(data)
            p.stdin.flush()
        except BrokenPipeError:
            pass

    # msg1: client -> server
    m = read_n(co, 64)
    if len(m) < 64:
        stopped = "msg1"
    else:
        send(srv, mangle(1, m))
        m = read_n(so, 64)
        if len(m) < 64:
            stopped = "msg2"
        else:
            send(cli, mangle(2, m))
            m = read_n(co, 112)
            if len(m) < 112:
                stopped = "msg3"
            else:
                send(srv, mangle(3, m))
                m = read_n(so, 80)
                server_out = m
                if len(m) < 80:
                    stopped = "msg4"
                else:
                    send(cli, mangle(4, m))
    # Close both inputs: the helpers then finish; collect the rest.
    for p in (srv, cli):
        try:
            p.stdin.close()
        except BrokenPipeError:
            pass
    server_out += read_all(so)
    client_out = read_all(co)
    print(json.dumps({
        "server_rc": srv.wait(timeout=10),
        "client_rc": cli.wait(timeout=10),
        "server_out": server_out.hex(),
        "client_out": client_out.hex(),
        "stopped": stopped,
    }))

main()
