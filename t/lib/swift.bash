# OpenStack Swift with its s3api middleware on loopback, for the S3 tests:
# a strict SigV4 server, no mock.  Load after lib/common and call from
# setup_file / teardown_file:
#
#   setup_file()    { swift_start "$BATS_FILE_TMPDIR/swift" || skip ...; }
#   teardown_file() { swift_stop; }
#
# Everything lives under the directory given: rings with one device on
# 127.0.0.1, mount_check = false, tempauth user test:tester / testing,
# a private memcached.  Each daemon runs with workers = 0 (one process) and
# is stopped by its PID.  After swift_start these are exported:
#   SWIFT_DIR, NUNET_S3_ENDPOINT (http://127.0.0.1:PORT), AWS_REGION,
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, SWIFT_PIDS (space-separated).

# swift_have: true when the Swift servers and memcached are installed.
swift_have() {
	command -v swift-proxy-server >/dev/null && command -v swift-object-server >/dev/null &&
		command -v swift-ring-builder >/dev/null && command -v memcached >/dev/null
}

# swift_free_ports N: print N free loopback TCP ports.
swift_free_ports() {
	python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# swift_start DIR: configure and start memcached, the account, container,
# object and proxy servers; wait (at most 30 s) until the proxy answers.
swift_start() {
	local d=$1 p
	swift_have || return 1
	mkdir -p "$d/etc" "$d/srv/d1" "$d/run" "$d/log"
	SWIFT_DIR=$d
	read -r SWIFT_MC_PORT SWIFT_ACC_PORT SWIFT_CON_PORT SWIFT_OBJ_PORT SWIFT_PROXY_PORT \
		< <(swift_free_ports 5)
	cat >"$d/etc/swift.conf" <<-CONF
	[swift-hash]
	swift_hash_path_suffix = nunet-test
	swift_hash_path_prefix = nunet-test
	[storage-policy:0]
	name = Policy-0
	default = yes
	CONF
	# The three rings in one python process (swift-ring-builder would take
	# nine): one device each, on 127.0.0.1.
	local py
	py=$(sed -n '1s/^#! *//p' "$(command -v swift-ring-builder)")
	${py:-python3} - "$d/etc" "$SWIFT_ACC_PORT" "$SWIFT_CON_PORT" "$SWIFT_OBJ_PORT" <<-'PY' || return 1
	import sys
	from swift.common.ring import RingBuilder
	etc = sys.argv[1]
	for name, port in zip(("account", "container", "object"), sys.argv[2:5]):
	    b = RingBuilder(0, 1, 1)
	    b.add_dev({"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1",
	               "port": int(port), "device": "d1", "weight": 100})
	    b.rebalance()
	    b.get_ring().save("%s/%s.ring.gz" % (etc, name))
	PY
	local ring port
	for ring in account container object; do
		case $ring in
		account) port=$SWIFT_ACC_PORT ;;
		container) port=$SWIFT_CON_PORT ;;
		object) port=$SWIFT_OBJ_PORT ;;
		esac
		cat >"$d/etc/$ring-server.conf" <<-CONF
		[DEFAULT]
		bind_ip = 127.0.0.1
		bind_port = $port
		workers = 0
		devices = $d/srv
		mount_check = false
		swift_dir = $d/etc
		log_udp_host = 127.0.0.1
		log_udp_port = 9
		log_level = WARNING
		[pipeline:main]
		pipeline = $ring-server
		[app:$ring-server]
		use = egg:swift#$ring
		CONF
	done
	cat >"$d/etc/proxy-server.conf" <<-CONF
	[DEFAULT]
	bind_ip = 127.0.0.1
	bind_port = $SWIFT_PROXY_PORT
	workers = 0
	swift_dir = $d/etc
	log_udp_host = 127.0.0.1
	log_udp_port = 9
	log_level = WARNING
	[pipeline:main]
	pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server
	[app:proxy-server]
	use = egg:swift#proxy
	account_autocreate = true
	[filter:catch_errors]
	use = egg:swift#catch_errors
	[filter:gatekeeper]
	use = egg:swift#gatekeeper
	[filter:healthcheck]
	use = egg:swift#healthcheck
	[filter:proxy-logging]
	use = egg:swift#proxy_logging
	[filter:cache]
	use = egg:swift#memcache
	memcache_servers = 127.0.0.1:$SWIFT_MC_PORT
	[filter:listing_formats]
	use = egg:swift#listing_formats
	[filter:s3api]
	use = egg:swift#s3api
	location = us-east-1
	[filter:tempauth]
	use = egg:swift#tempauth
	user_test_tester = testing .admin
	[filter:copy]
	use = egg:swift#copy
	[filter:slo]
	use = egg:swift#slo
	min_segment_size = 1
	[filter:dlo]
	use = egg:swift#dlo
	CONF
	SWIFT_PIDS=""
	memcached -l 127.0.0.1 -p "$SWIFT_MC_PORT" -U 0 -u root -m 64 \
		>"$d/log/memcached.log" 2>&1 3>&- &
	SWIFT_PIDS="$SWIFT_PIDS $!"
	for p in account container object proxy; do
		"swift-$p-server" "$d/etc/$p-server.conf" >"$d/log/$p.log" 2>&1 3>&- &
		SWIFT_PIDS="$SWIFT_PIDS $!"
	done
	echo "$SWIFT_PIDS" >"$d/run/pids"
	export SWIFT_DIR SWIFT_PIDS
	export NUNET_S3_ENDPOINT="http://127.0.0.1:$SWIFT_PROXY_PORT"
	export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test:tester AWS_SECRET_ACCESS_KEY=testing
	unset AWS_SESSION_TOKEN
	# No readiness fd in Swift: wait until every port accepts a connection
	# (bash's /dev/tcp, no process per probe), then for the health check.
	local i up
	for ((i = 0; i < 600; i++)); do
		up=1
		for p in $SWIFT_MC_PORT $SWIFT_ACC_PORT $SWIFT_CON_PORT $SWIFT_OBJ_PORT $SWIFT_PROXY_PORT; do
			if ! (exec 9<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
				up=0
				break
			fi
		done
		if [ "$up" = 1 ] && curl -sf "$NUNET_S3_ENDPOINT/healthcheck" >/dev/null 2>&1; then
			return 0
		fi
		for p in $SWIFT_PIDS; do
			kill -0 "$p" 2>/dev/null || { swift_stop; return 1; }
		done
		sleep 0.2
	done
	swift_stop
	return 1
}

# swift_stop: stop every process swift_start started, by PID.
swift_stop() {
	local p pids=${SWIFT_PIDS:-}
	if [ -z "$pids" ] && [ -n "${SWIFT_DIR:-}" ] && [ -f "$SWIFT_DIR/run/pids" ]; then
		pids=$(cat "$SWIFT_DIR/run/pids")
	fi
	for p in $pids; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in $pids; do
		for ((i = 0; i < 50; i++)); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$p" 2>/dev/null
	done
	SWIFT_PIDS=""
	return 0
}

# swift_log: print the servers' logs (for failing tests).
swift_log() {
	tail -n 20 "$SWIFT_DIR"/log/*.log
}

# swift_token / swift_storage_url: Swift's own API (tempauth), for tests
# that look at objects without going through S3.
swift_token() {
	curl -s -D - -o /dev/null -H 'X-Auth-User: test:tester' -H 'X-Auth-Key: testing' \
		"$NUNET_S3_ENDPOINT/auth/v1.0" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-auth-token"{print $2}'
}
swift_storage_url() {
	curl -s -D - -o /dev/null -H 'X-Auth-User: test:tester' -H 'X-Auth-Key: testing' \
		"$NUNET_S3_ENDPOINT/auth/v1.0" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-storage-url"{print $2}'
}
