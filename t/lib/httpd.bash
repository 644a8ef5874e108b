# A local HTTP server for the storage tests: the small python3 server below
# (Range requests, PUT, and faults on demand: ?status=, ?truncate=,
# ?stall=, ?flaky=, ?norange=).  Load after lib/common:
#
#   httpd_start DIR [LOG [CERT KEY]]
#                       serve DIR on 127.0.0.1 on a free port (over TLS
#                       with CERT and KEY, PEM files); sets HTTPD_PID,
#                       HTTPD_PORT, HTTPD_URL, HTTPD_LOG
#   httpd_stop          stop it by PID
#
# Readiness is the port line the server prints once it listens (no sleep).

httpd_start() {
	local root=$1 fifo
	HTTPD_LOG=${2:-${BATS_FILE_TMPDIR:-$BATS_TEST_TMPDIR}/httpd.log}
	fifo=$(mktemp -u "${BATS_FILE_TMPDIR:-${BATS_TEST_TMPDIR:-/tmp}}/httpd.XXXXXX")
	mkfifo "$fifo"
	local scheme=http
	[ -n "${3:-}" ] && scheme=https
	httpd_script | python3 - "$root" --log "$HTTPD_LOG" ${3:+--tls "$3" "$4"} >"$fifo" 2>>"$HTTPD_LOG.err" 3>&- &
	HTTPD_PID=$!
	if ! read -r -t 10 HTTPD_PORT <"$fifo"; then
		rm -f "$fifo"
		kill "$HTTPD_PID" 2>/dev/null
		return 1
	fi
	rm -f "$fifo"
	HTTPD_URL="$scheme://127.0.0.1:$HTTPD_PORT"
	export HTTPD_PID HTTPD_PORT HTTPD_URL HTTPD_LOG
}

httpd_stop() {
	if [ -n "${HTTPD_PID:-}" ]; then
		kill -TERM "$HTTPD_PID" 2>/dev/null
		wait "$HTTPD_PID" 2>/dev/null
		HTTPD_PID=
	fi
	return 0
}

httpd_script() {
	cat <<'PY'
"""A small HTTP/1.1 file server for the storage tests, with Range requests
(python3 -m http.server has none) and faults on demand.

usage: python3 - ROOT [--log FILE] [--tls CERT KEY] (this text on stdin)

Binds 127.0.0.1 on a free port and prints the port on stdout, one line, once
it accepts connections (the tests' readiness signal).  GET and HEAD serve
files under ROOT with single byte ranges (206, 416); PUT stores a body
(201).  Query parameters make faults:
  ?status=CODE     answer CODE with a short body
  ?truncate=N      promise the whole file, send N bytes, close
  ?stall=N         promise the whole file, send N bytes, then send nothing
  ?flaky=N         like truncate=N on the first GET of this URL only
  ?norange=1       ignore Range headers (always 200 and the whole file)
Every request is logged to FILE as "METHOD PATH range=VALUE".
"""
import http.server
import os
import sys
import threading
import time
import urllib.parse

ROOT = os.path.abspath(sys.argv[1])
LOG = None
TLS = None
args = sys.argv[2:]
while args:
    if args[0] == "--log":
        LOG = open(args[1], "a", buffering=1)
        args = args[2:]
    elif args[0] == "--tls":
        TLS = (args[1], args[2])
        args = args[3:]
    else:
        sys.exit("unknown argument " + args[0])
SEEN = set()
LOCK = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def target(self):
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        rel = urllib.parse.unquote(u.path).lstrip("/")
        full = os.path.abspath(os.path.join(ROOT, rel))
        if full != ROOT and not full.startswith(ROOT + os.sep):
            full = None
        return full, q

    def note(self):
        if LOG:
            LOG.write("%s %s range=%s\n" % (self.command, self.path,
                                            self.headers.get("Range", "-")))

    def simple(self, code, body=b""):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_PUT(self):
        self.note()
        full, q = self.target()
        if "status" in q:
            n = int(self.headers.get("Content-Length", "0"))
            self.rfile.read(n)
            return self.simple(int(q["status"]), b"fault\n")
        if full is None:
            return self.simple(403, b"outside root\n")
        n = int(self.headers.get("Content-Length", "0"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        tmp = full + ".tmp"
        with open(tmp, "wb") as f:
            left = n
            while left > 0:
                chunk = self.rfile.read(min(left, 1 << 20))
                if not chunk:
                    break
                f.write(chunk)
                left -= len(chunk)
        if left:
            os.unlink(tmp)
            return
        os.rename(tmp, full)
        self.simple(201, b"stored\n")

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        self.note()
        full, q = self.target()
        if "status" in q:
            return self.simple(int(q["status"]), b"fault\n")
        if full is None or not os.path.isfile(full):
            return self.simple(404, b"not found\n")
        size = os.path.getsize(full)
        start, end = 0, size - 1
        rng = self.headers.get("Range")
        partial = False
        if rng and "norange" not in q and rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            try:
                if a:
                    start = int(a)
                    end = int(b) if b else size - 1
                else:
                    start = max(0, size - int(b))
                partial = True
            except ValueError:
                partial = False
            if partial and (start >= size or start > end):
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % size)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            end = min(end, size - 1)
        length = end - start + 1 if size else 0
        limit = None
        if "truncate" in q:
            limit = int(q["truncate"])
        stall = int(q["stall"]) if "stall" in q else None
        if "flaky" in q:
            with LOCK:
                if self.path not in SEEN:
                    SEEN.add(self.path)
                    limit = int(q["flaky"])
        self.send_response(206 if partial else 200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(length))
        self.send_header("Content-Type", "application/octet-stream")
        if partial:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, size))
        if limit is not None or stall is not None:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command == "HEAD":
            return
        with open(full, "rb") as f:
            if stall is not None:
                f.seek(start)
                self.wfile.write(f.read(min(stall, length)))
                self.wfile.flush()
                time.sleep(3600)
                return
            if limit is not None:
                f.seek(start)
                self.wfile.write(f.read(min(limit, length)))
                self.wfile.flush()
                return
            self.wfile.flush()
            sent = 0
            if TLS:
                f.seek(start)
                while sent < length:
                    chunk = f.read(min(length - sent, 1 << 20))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    sent += len(chunk)
                return
            while sent < length:
                n = os.sendfile(self.connection.fileno(), f.fileno(), start + sent,
                                min(length - sent, 1 << 24))
                if n <= 0:
                    break
                sent += n


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


srv = Server(("127.0.0.1", 0), Handler)
if TLS:
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(TLS[0], TLS[1])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
PY
}
