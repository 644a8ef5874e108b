# Receivers for the sink tests (t/91xx-sink-*.bats), all on loopback and
# all stopped by PID.  Load after lib/common:
#
#   free_port                 print a TCP port nothing listens on now
#   free_udp_port             the same for UDP
#   rsyslog_start DIR [PORT]  rsyslogd with its own config in DIR: imtcp on
#                             PORT or a free one (RSYSLOG_PORT), imuxsock on
#                             DIR/log.sock (RSYSLOG_SOCK), imudp on a free
#                             port (RSYSLOG_UDP_PORT), every message
#                             written to RSYSLOG_OUT as
#                             PRI|TIMESTAMP|HOST|APP|PROCID|MSGID|SD|MSG
#   rsyslog_stop
#   vmetrics_start DIR        victoria-metrics on a free port (VM_PORT,
#                             VM_URL) with its storage in DIR
#   vmetrics_stop
#   capture_start LOG [ARGS]  the small HTTP capture server below (an
#                             Elasticsearch _bulk / Influx stand-in): every
#                             request recorded to LOG as a JSON line; sets
#                             CAPTURE_PID, CAPTURE_PORT
#   capture_stop
#   wait_lines FILE N [SECS]  wait until FILE has at least N lines
#
# rsyslogd and victoria-metrics have no readiness fd: their readiness is
# the port file rsyslog writes once it listens (its UDP port showing in
# ss), and victoria-metrics' /health answering, waited for with a deadline.

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

free_udp_port() {
	python3 -c 'import socket; s = socket.socket(type=socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_until SECS CMD...: run CMD every 50 ms until it succeeds or SECS pass.
wait_until() {
	local secs=$1 i
	shift
	for ((i = 0; i < secs * 20; i++)); do
		"$@" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

wait_lines() {
	local f=$1 n=$2 secs=${3:-10}
	_enough_lines() { [ -f "$f" ] && [ "$(wc -l <"$f")" -ge "$n" ]; }
	wait_until "$secs" _enough_lines
}

rsyslog_start() {
	local d=$1 port=${2:-0}
	mkdir -p "$d"
	RSYSLOG_SOCK="$d/log.sock"
	RSYSLOG_OUT="$d/out.log"
	rm -f "$d/port" "$d/want-port" "$RSYSLOG_SOCK" "$RSYSLOG_OUT"
	RSYSLOG_UDP_PORT=$(free_udp_port)
	cat >"$d/rsyslog.conf" <<EOF
global(workDirectory="$d" maxMessageSize="64k")
module(load="imuxsock" SysSock.Use="off")
module(load="imtcp")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="$RSYSLOG_UDP_PORT")
input(type="imuxsock" Socket="$RSYSLOG_SOCK" UseSpecialParser="off"
      ParseHostname="on" IgnoreTimestamp="off")
input(type="imtcp" address="127.0.0.1" port="$port" listenPortFileName="$d/port")
template(name="fields" type="string"
         string="%pri%|%timereported:::date-rfc3339%|%hostname%|%app-name%|%procid%|%msgid%|%structured-data%|%msg%\n")
*.* action(type="omfile" file="$RSYSLOG_OUT" template="fields")
EOF
	rsyslogd -n -f "$d/rsyslog.conf" -i "$d/rsyslogd.pid" >"$d/rsyslogd.log" 2>&1 3>&- &
	RSYSLOG_PID=$!
	# rsyslog writes the port file only for port 0; a fixed port is
	# ready when it accepts a connection
	[ "$port" = 0 ] || echo "$port" >"$d/want-port"
	_rsyslog_ready() {
		[ -S "$RSYSLOG_SOCK" ] || return 1
		[ -n "$(ss -Huln "sport = :$RSYSLOG_UDP_PORT")" ] || return 1
		if [ -s "$d/want-port" ]; then
			(exec 9<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
		else
			[ -s "$d/port" ]
		fi
	}
	if ! wait_until 10 _rsyslog_ready; then
		cat "$d/rsyslogd.log" >&2
		rsyslog_stop
		return 1
	fi
	if [ "$port" = 0 ]; then
		RSYSLOG_PORT=$(cat "$d/port")
	else
		RSYSLOG_PORT=$port
	fi
	export RSYSLOG_PID RSYSLOG_PORT RSYSLOG_UDP_PORT RSYSLOG_SOCK RSYSLOG_OUT
}

rsyslog_stop() {
	if [ -n "${RSYSLOG_PID:-}" ]; then
		kill -TERM "$RSYSLOG_PID" 2>/dev/null
		wait "$RSYSLOG_PID" 2>/dev/null
		RSYSLOG_PID=
	fi
	return 0
}

vmetrics_start() {
	local d=$1
	mkdir -p "$d"
	VM_PORT=$(free_port)
	VM_URL="http://127.0.0.1:$VM_PORT"
	# latencyOffset 0: a query sees a sample as soon as it is stored;
	# retention long enough for the fixed timestamps the tests use
	victoria-metrics -storageDataPath "$d/data" -httpListenAddr "127.0.0.1:$VM_PORT" \
		-retentionPeriod 100y -search.latencyOffset 0s -loggerLevel ERROR \
		>"$d/vm.log" 2>&1 3>&- &
	VM_PID=$!
	if ! wait_until 20 curl -sf "$VM_URL/health" -o /dev/null; then
		cat "$d/vm.log" >&2
		vmetrics_stop
		return 1
	fi
	export VM_PID VM_PORT VM_URL
}

vmetrics_stop() {
	if [ -n "${VM_PID:-}" ]; then
		kill -TERM "$VM_PID" 2>/dev/null
		wait "$VM_PID" 2>/dev/null
		VM_PID=
	fi
	return 0
}

# capture_start LOG [--port P] [--status CODE] [--fail-first N] [--sleep S]
capture_start() {
	local log=$1 fifo
	shift
	fifo=$(mktemp -u "$BATS_TEST_TMPDIR/capture.XXXXXX")
	mkfifo "$fifo"
	capture_script | python3 - --log "$log" "$@" >"$fifo" 2>>"$log.err" 3>&- &
	CAPTURE_PID=$!
	if ! read -r -t 10 CAPTURE_PORT <"$fifo"; then
		rm -f "$fifo"
		cat "$log.err" >&2
		capture_stop
		return 1
	fi
	rm -f "$fifo"
	export CAPTURE_PID CAPTURE_PORT
}

capture_stop() {
	if [ -n "${CAPTURE_PID:-}" ]; then
		kill -TERM "$CAPTURE_PID" 2>/dev/null
		wait "$CAPTURE_PID" 2>/dev/null
		CAPTURE_PID=
	fi
	return 0
}

sinks_stop_all() {
	capture_stop
	vmetrics_stop
	rsyslog_stop
}

capture_script() {
	cat <<'PY'
"""An HTTP server that records what it receives, for the sink tests.

usage: python3 - --log FILE [--port P] [--status CODE] [--fail-first N]
                 [--sleep S]   (this text on stdin)

Binds 127.0.0.1 (port P, default a free one) and prints the port once it
listens.  Every request is appended to FILE as one JSON line:
{"t","method","path","ctype","body","answer"} (t: when it arrived,
monotonic milliseconds).

POST …/_bulk is answered the way Elasticsearch answers the _bulk API: the
body must be NDJSON pairs (an action line {"index":{"_index":…}}, then a
document object), newline-terminated including the last line, else 400
with an error like Elasticsearch's.  Each document gets an item in the
response; a document holding "reject": true gets status 400
(mapper_parsing_exception) and one holding "busy": true gets 429 the first
time it is seen; then "errors" is true.  Other POSTs (Influx /write) get
204.  --status answers every request with CODE, --fail-first answers the
first N requests with 500, --sleep waits S seconds before answering.
"""
import http.server
import json
import sys
import threading
import time

LOG = None
PORT = 0
STATUS = None
FAIL_FIRST = 0
SLEEP = 0.0
args = sys.argv[1:]
while args:
    a = args.pop(0)
    if a == "--log":
        LOG = open(args.pop(0), "a", buffering=1)
    elif a == "--port":
        PORT = int(args.pop(0))
    elif a == "--status":
        STATUS = int(args.pop(0))
    elif a == "--fail-first":
        FAIL_FIRST = int(args.pop(0))
    elif a == "--sleep":
        SLEEP = float(args.pop(0))
    else:
        sys.exit("unknown argument " + a)
LOCK = threading.Lock()
COUNT = [0]
SEEN_BUSY = set()


def bulk(body):
    """(code, response) for a _bulk body, checked like Elasticsearch."""
    if not body.endswith(b"\n"):
        return 400, {"error": {"type": "illegal_argument_exception",
                               "reason": "The bulk request must be terminated by a newline [\\n]"},
                     "status": 400}
    lines = body.decode("utf-8").split("\n")[:-1]
    if len(lines) % 2:
        return 400, {"error": {"type": "illegal_argument_exception",
                               "reason": "action without a document"}, "status": 400}
    items, errors = [], False
    for i in range(0, len(lines), 2):
        try:
            action = json.loads(lines[i])
            doc = json.loads(lines[i + 1])
        except ValueError as e:
            return 400, {"error": {"type": "x_content_parse_exception", "reason": str(e)},
                         "status": 400}
        if (not isinstance(action, dict) or list(action) != ["index"]
                or not isinstance(action["index"].get("_index"), str)
                or not isinstance(doc, dict)):
            return 400, {"error": {"type": "illegal_argument_exception",
                                   "reason": "malformed action/metadata line [%d]" % (i + 1)},
                         "status": 400}
        item = {"_index": action["index"]["_index"], "_id": "id%d" % (i // 2)}
        key = json.dumps(doc, sort_keys=True)
        if doc.get("reject") is True:
            item.update(status=400, error={"type": "mapper_parsing_exception",
                                           "reason": "failed to parse"})
            errors = True
        elif doc.get("busy") is True and key not in SEEN_BUSY:
            SEEN_BUSY.add(key)
            item.update(status=429, error={"type": "es_rejected_execution_exception",
                                           "reason": "rejected execution"})
            errors = True
        else:
            item.update(status=201, result="created")
        items.append({"index": item})
    return 200, {"took": 1, "errors": errors, "items": items}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        with LOCK:
            COUNT[0] += 1
            nth = COUNT[0]
        if SLEEP:
            time.sleep(SLEEP)
        if STATUS is not None:
            code, resp = STATUS, {"error": "fault %d" % STATUS}
        elif nth <= FAIL_FIRST:
            code, resp = 500, {"error": "fault 500"}
        elif self.path.split("?")[0].endswith("/_bulk"):
            with LOCK:
                code, resp = bulk(body)
        else:
            code, resp = 204, None
        if LOG:
            LOG.write(json.dumps({"t": int(time.monotonic() * 1000),
                                  "method": self.command, "path": self.path,
                                  "ctype": self.headers.get("Content-Type"),
                                  "body": body.decode("utf-8", "replace"),
                                  "answer": code}) + "\n")
        data = json.dumps(resp).encode() if resp is not None else b""
        self.send_response(code)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_PUT = do_POST


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


srv = Server(("127.0.0.1", PORT), Handler)
print(srv.server_address[1], flush=True)
srv.serve_forever()
PY
}
