#!/usr/bin/env bats
# Storage through s3:// URLs against OpenStack Swift's s3api on loopback
# (t/lib/swift.bash), which checks AWS SigV4 strictly: no mock.  A wrong
# secret must fail, which proves the requests are really signed.

load lib/common
bats_require_minimum_version 1.5.0
load lib/swift

setup_file() {
	if ! swift_have; then
		skip "OpenStack Swift (swift-proxy, swift-object, ...) or memcached is not installed"
	fi
	if ! swift_start "$BATS_FILE_TMPDIR/swift"; then
		swift_log >&2
		return 1
	fi
	nunet-store mkbucket nunet >/dev/null
}

teardown_file() {
	swift_stop
}

setup() {
	common_setup
	cd "$BATS_TEST_TMPDIR"
}

leftovers() {
	find "$1" -name '*.part.*' | wc -l
}

@test "put then fetch a small object; checksums agree" {
	head -c 100000 /dev/urandom >obj.bin
	sum=$(sha256sum obj.bin | cut -d' ' -f1)
	run --separate-stderr nunet-store put obj.bin "s3://nunet/t$BATS_TEST_NUMBER/obj.bin"
	assert_success
	assert_equal "$(jq -r .sha256 <<<"$output")" "$sum"
	run --separate-stderr nunet-store fetch --sha256 "$sum" "s3://nunet/t$BATS_TEST_NUMBER/obj.bin" back.bin
	assert_success
	cmp obj.bin back.bin
}

@test "a file over the part size goes up as a multipart upload" {
	head -c 12000000 /dev/urandom >big.bin
	run --separate-stderr nunet-store put --part-size 5M --progress big.bin "s3://nunet/big.bin"
	assert_success
	assert_equal "$(grep '"event":"done"' <<<"$output" | jq -r .bytes)" 12000000
	run --separate-stderr nunet-store fetch "s3://nunet/big.bin" back.bin
	assert_success
	cmp big.bin back.bin
	# Swift keeps a completed multipart upload as a static large object
	# made of the parts: three of them here.
	token=$(swift_token)
	store=$(swift_storage_url)
	assert_equal "$(curl -s -H "X-Auth-Token: $token" "$store/nunet+segments" | grep -c '^big.bin/')" 3
	curl -sI -H "X-Auth-Token: $token" "$store/nunet/big.bin" | grep -qi '^X-Static-Large-Object: True'
}

@test "a wrong secret fails the upload with 69 (SignatureDoesNotMatch)" {
	echo data >obj.bin
	AWS_SECRET_ACCESS_KEY=not-the-secret run --separate-stderr nunet-store put obj.bin "s3://nunet/wrong.bin"
	assert_equal "$status" 69
	assert_equal "$stderr" "nunet-store: error: 's3://nunet/wrong.bin': HTTP 403: SignatureDoesNotMatch"
	run nunet-store fetch "s3://nunet/wrong.bin" back.bin
	assert_equal "$status" 69	# nothing was stored
}

@test "a wrong secret fails the download with 69 and leaves nothing" {
	echo data >obj.bin
	nunet-store put obj.bin "s3://nunet/secret.bin" >/dev/null
	AWS_SECRET_ACCESS_KEY=not-the-secret run --separate-stderr nunet-store fetch "s3://nunet/secret.bin" back.bin
	assert_equal "$status" 69
	assert_equal "$stderr" "nunet-store: error: 's3://nunet/secret.bin': HTTP 403: SignatureDoesNotMatch"
	[ ! -e back.bin ]
	assert_equal "$(leftovers .)" 0
}

@test "a wrong secret fails a multipart upload too" {
	head -c 6000000 /dev/urandom >big.bin
	AWS_SECRET_ACCESS_KEY=nope run --separate-stderr nunet-store put --part-size 5M big.bin "s3://nunet/wrongbig.bin"
	assert_equal "$status" 69
	assert_equal "$stderr" "nunet-store: error: 's3://nunet/wrongbig.bin': HTTP 403: SignatureDoesNotMatch"
}

@test "an unknown access key is refused" {
	echo data >obj.bin
	AWS_ACCESS_KEY_ID=nobody:none run --separate-stderr nunet-store put obj.bin "s3://nunet/who.bin"
	assert_equal "$status" 69
	[[ "$stderr" == "nunet-store: error: 's3://nunet/who.bin': HTTP 403: "* ]]
}

@test "a missing key is 404 NoSuchKey, 69, nothing left" {
	run --separate-stderr nunet-store fetch "s3://nunet/no/such/key" back.bin
	assert_equal "$status" 69
	assert_equal "$stderr" "nunet-store: error: 's3://nunet/no/such/key': HTTP 404: NoSuchKey"
	[ ! -e back.bin ]
}

@test "a wrong checksum on an S3 object fails with 65 and leaves nothing" {
	echo data >obj.bin
	nunet-store put obj.bin "s3://nunet/sum.bin" >/dev/null
	bad=$(printf 'a%.0s' $(seq 64))
	run --separate-stderr nunet-store fetch --sha256 "$bad" "s3://nunet/sum.bin" back.bin
	assert_equal "$status" 65
	[ ! -e back.bin ]
	assert_equal "$(leftovers .)" 0
}

@test "without credentials, S3 is a configuration error (78)" {
	env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY nunet-store fetch "s3://nunet/x" back.bin 2>err || status=$?
	assert_equal "${status:-0}" 78
	assert_equal "$(cat err)" "nunet-store: error: no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
}

@test "a malformed s3 URL is refused" {
	run --separate-stderr nunet-store fetch "s3://bucket-only" back.bin
	assert_equal "$status" 65
	assert_equal "$stderr" "nunet-store: error: 's3://bucket-only': expected s3://BUCKET/KEY"
}

@test "a server that is down is retried, then fails with 75" {
	echo data >obj.bin
	NUNET_S3_ENDPOINT=http://127.0.0.1:1 run --separate-stderr nunet-store fetch --retries 1 --backoff 10 "s3://nunet/x" back.bin
	assert_equal "$status" 75
	[ ! -e back.bin ]
}

@test "--s3-config: endpoint and credentials from a JSON file" {
	echo data >obj.bin
	printf '{"endpoint":"%s","region":"us-east-1","access_key_id":"test:tester","secret_access_key":"testing"}' \
		"$NUNET_S3_ENDPOINT" >s3.json
	env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u NUNET_S3_ENDPOINT \
		nunet-store --s3-config s3.json put obj.bin "s3://nunet/conf.bin" >/dev/null
	env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u NUNET_S3_ENDPOINT \
		nunet-store --s3-config s3.json fetch "s3://nunet/conf.bin" back.bin >/dev/null
	cmp obj.bin back.bin
}

@test "--s3-config takes precedence over the environment: its wrong secret fails" {
	echo data >obj.bin
	printf '{"secret_access_key":"wrong"}' >s3.json
	run --separate-stderr nunet-store --s3-config s3.json put obj.bin "s3://nunet/conf2.bin"
	assert_equal "$status" 69
	assert_equal "$stderr" "nunet-store: error: 's3://nunet/conf2.bin': HTTP 403: SignatureDoesNotMatch"
}

@test "--s3-config with an unknown key is a configuration error" {
	printf '{"secret_key":"x"}' >s3.json
	run --separate-stderr nunet-store --s3-config s3.json fetch "s3://nunet/x" back.bin
	assert_equal "$status" 78
	assert_equal "$stderr" "nunet-store: error: s3.json: s3.secret_key: unknown key"
}
