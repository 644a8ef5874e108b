#!/usr/bin/env bats
# Storage over HTTP against a real local server (t/lib/httpd.bash): GET with
# resumption by Range after a broken transfer, PUT, and every failure the
# staging step must survive (404, 403, refused, stalled, truncated, wrong
# checksum, over the size limit) without leaving a partial file.

load lib/common
bats_require_minimum_version 1.5.0
load lib/httpd

setup_file() {
	mkdir -p "$BATS_FILE_TMPDIR/www"
	head -c 2000000 /dev/urandom >"$BATS_FILE_TMPDIR/www/data.bin"
	httpd_start "$BATS_FILE_TMPDIR/www"
}

teardown_file() {
	httpd_stop
}

teardown() {
	if [ -n "${TLS_PID:-}" ]; then
		kill "$TLS_PID" 2>/dev/null
		wait "$TLS_PID" 2>/dev/null || true
	fi
	node_stop_all
}

setup() {
	common_setup
	cd "$BATS_TEST_TMPDIR"
	WWW=$BATS_FILE_TMPDIR/www
	SUM=$(sha256sum "$WWW/data.bin" | cut -d' ' -f1)
}

leftovers() {
	find "$1" -name '*.part.*' | wc -l
}

@test "GET fetches the file with its sha256" {
	run --separate-stderr nunet-store fetch --sha256 "$SUM" "$HTTPD_URL/data.bin" out.bin
	assert_success
	cmp "$WWW/data.bin" out.bin
	assert_equal "$(jq -r .sha256 <<<"$output")" "$SUM"
	assert_equal "$(jq -r .size <<<"$output")" 2000000
}

@test "a transfer broken midway resumes with a Range request" {
	url="$HTTPD_URL/data.bin?flaky=700000&t=$BATS_TEST_NUMBER"
	run --separate-stderr nunet-store fetch --backoff 10 --progress --sha256 "$SUM" "$url" out.bin
	assert_success
	cmp "$WWW/data.bin" out.bin
	assert_equal "$(tail -n1 <<<"$output" | jq -r .attempts)" 2
	assert_equal "$(grep -c '"event":"retry"' <<<"$output")" 1
	assert_equal "$(grep '"event":"retry"' <<<"$output" | jq -r .bytes)" 700000
	grep -qF "GET /data.bin?flaky=700000&t=$BATS_TEST_NUMBER range=bytes=700000-" "$HTTPD_LOG"
}

@test "a server that ignores Range makes the download start over, still correct" {
	url="$HTTPD_URL/data.bin?flaky=500000&norange=1&t=$BATS_TEST_NUMBER"
	run --separate-stderr nunet-store fetch --backoff 10 --sha256 "$SUM" "$url" out.bin
	assert_success
	cmp "$WWW/data.bin" out.bin
	assert_equal "$(jq -r .size <<<"$output")" 2000000
}

@test "404 fails with 69 and leaves nothing" {
	run --separate-stderr nunet-store fetch "$HTTPD_URL/missing.bin" out.bin
	assert_equal "$status" 69
	assert_equal "$stderr" "nunet-store: error: '$HTTPD_URL/missing.bin': HTTP 404 Not Found"
	[ ! -e out.bin ]
	assert_equal "$(leftovers .)" 0
}

@test "403 fails with 69 at once, without retries" {
	run --separate-stderr nunet-store fetch --progress "$HTTPD_URL/data.bin?status=403" out.bin
	assert_equal "$status" 69
	assert_equal "$stderr" "nunet-store: error: '$HTTPD_URL/data.bin?status=403': HTTP 403 Forbidden"
	refute_output --partial '"event":"retry"'
	[ ! -e out.bin ]
}

@test "a 503 is retried with backoff, then fails with 75" {
	run --separate-stderr nunet-store fetch --retries 2 --backoff 10 --progress \
		"$HTTPD_URL/data.bin?status=503" out.bin
	assert_equal "$status" 75
	assert_equal "$(grep -c '"event":"retry"' <<<"$output")" 2
	[ ! -e out.bin ]
}

@test "connection refused is retried, then fails with 75 and leaves nothing" {
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	run --separate-stderr nunet-store fetch --retries 1 --backoff 10 "http://127.0.0.1:$port/x" out.bin
	assert_equal "$status" 75
	[[ "$stderr" == "nunet-store: error: 'http://127.0.0.1:$port/x': Failed to connect to 127.0.0.1 port $port"* ]]
	[ ! -e out.bin ]
	assert_equal "$(leftovers .)" 0
}

@test "a server that stalls mid-transfer is given up on after --stall" {
	start=$(date +%s)
	run --separate-stderr nunet-store fetch --retries 0 --stall 1s "$HTTPD_URL/data.bin?stall=100000" out.bin
	assert_equal "$status" 75
	[[ "$stderr" == *"Operation too slow"* ]]
	[ $(( $(date +%s) - start )) -lt 10 ]
	[ ! -e out.bin ]
	assert_equal "$(leftovers .)" 0
}

@test "--timeout bounds the whole fetch, retries included" {
	start=$(date +%s)
	run --separate-stderr nunet-store fetch --timeout 2s --stall 60s "$HTTPD_URL/data.bin?stall=1000" out.bin
	assert_equal "$status" 75
	[[ "$stderr" == *"Operation timed out"* ]]
	[ $(( $(date +%s) - start )) -lt 10 ]
	[ ! -e out.bin ]
}

@test "a body always truncated fails after the retries and leaves nothing" {
	run --separate-stderr nunet-store fetch --retries 2 --backoff 10 "$HTTPD_URL/data.bin?truncate=1000" out.bin
	assert_equal "$status" 75
	[[ "$stderr" == *"transfer closed with"*"bytes remaining to read" ]]
	[ ! -e out.bin ]
	assert_equal "$(leftovers .)" 0
}

@test "a wrong checksum fails with 65 and leaves nothing" {
	bad=$(printf 'f%.0s' $(seq 64))
	run --separate-stderr nunet-store fetch --sha256 "$bad" "$HTTPD_URL/data.bin" out.bin
	assert_equal "$status" 65
	assert_equal "$stderr" "nunet-store: error: checksum mismatch for '$HTTPD_URL/data.bin': expected sha256 $bad, got $SUM"
	[ ! -e out.bin ]
	assert_equal "$(leftovers .)" 0
}

@test "--max refuses a larger body before writing it" {
	run --separate-stderr nunet-store fetch --max 1M "$HTTPD_URL/data.bin" out.bin
	assert_equal "$status" 65
	assert_equal "$stderr" "nunet-store: error: '$HTTPD_URL/data.bin' is larger than 1048576 bytes"
	[ ! -e out.bin ]
	assert_equal "$(leftovers .)" 0
}

@test "an existing file is replaced only by a complete download" {
	echo old >out.bin
	run nunet-store fetch "$HTTPD_URL/missing.bin" out.bin
	assert_equal "$status" 69
	assert_equal "$(cat out.bin)" old
	run nunet-store fetch "$HTTPD_URL/data.bin" out.bin
	assert_success
	cmp "$WWW/data.bin" out.bin
}

@test "PUT stores a file on the server" {
	head -c 123456 /dev/urandom >up.bin
	run --separate-stderr nunet-store put up.bin "$HTTPD_URL/uploads/$BATS_TEST_NUMBER.bin"
	assert_success
	cmp up.bin "$WWW/uploads/$BATS_TEST_NUMBER.bin"
	assert_equal "$(jq -r .sha256 <<<"$output")" "$(sha256sum up.bin | cut -d' ' -f1)"
}

@test "a refused PUT fails with 69" {
	echo x >up.bin
	run --separate-stderr nunet-store put up.bin "$HTTPD_URL/u.bin?status=403"
	assert_equal "$status" 69
	assert_equal "$stderr" "nunet-store: error: '$HTTPD_URL/u.bin?status=403': HTTP 403 Forbidden"
}

# tls_server: a second server, over TLS with a fresh self-signed certificate
# for 127.0.0.1; sets TLS_URL, TLS_PID, CERT.
tls_server() {
	skip_unless "command -v openssl" "openssl is not installed"
	openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
		-addext subjectAltName=IP:127.0.0.1 -keyout key.pem -out cert.pem 2>/dev/null
	CERT=$PWD/cert.pem
	local pid=$HTTPD_PID url=$HTTPD_URL port=$HTTPD_PORT
	httpd_start "$WWW" "$BATS_TEST_TMPDIR/tls.log" cert.pem key.pem
	TLS_PID=$HTTPD_PID TLS_URL=$HTTPD_URL
	HTTPD_PID=$pid HTTPD_URL=$url HTTPD_PORT=$port
}

@test "https with a trusted CA fetches the file" {
	tls_server
	[[ "$TLS_URL" == https://* ]]
	run --separate-stderr nunet-store fetch --ca "$CERT" --sha256 "$SUM" "$TLS_URL/data.bin" out.bin
	assert_success
	cmp "$WWW/data.bin" out.bin
}

@test "https with a certificate nobody vouches for is refused and leaves nothing" {
	tls_server
	run --separate-stderr nunet-store fetch --retries 0 "$TLS_URL/data.bin" out.bin
	assert_equal "$status" 69
	[[ "$stderr" == "nunet-store: error: '$TLS_URL/data.bin': "*certificate* ]]
	[ ! -e out.bin ]
	assert_equal "$(leftovers .)" 0
}

@test "--no-sha256 fetches without computing the checksum" {
	run --separate-stderr nunet-store fetch --no-sha256 "$HTTPD_URL/data.bin" out.bin
	assert_success
	cmp "$WWW/data.bin" out.bin
	assert_equal "$(jq -r .size <<<"$output")" 2000000
	assert_equal "$(jq -r 'has("sha256")' <<<"$output")" false
	run --separate-stderr nunet-store fetch --no-sha256 --sha256 "$SUM" "$HTTPD_URL/data.bin" out2.bin
	assert_equal "$status" 64
	assert_equal "$stderr" "nunet-store: error: a checksum to verify needs the checksum computed"
}
