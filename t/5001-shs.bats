#!/usr/bin/env bats
# Secret Handshake v1 (lib/shs.c): the published worked values, failures
# (another swarm, another server key, a flipped bit in each message), the
# stdin/stdout helpers, swarm key files, and interop with an independent
# implementation (shs1-test from npm).

load lib/common
load lib/shs

setup() {
	common_setup
	T=$BATS_TEST_TMPDIR
	SHS_PIDS=()
}

teardown() {
	local p
	for p in "${SHS_PIDS[@]:-}"; do
		[ -n "$p" ] && kill "$p" 2>/dev/null
	done
	node_stop_all
}

# Worked values from shs1-crypto's test (Aljoscha Meyer, the author of the
# shs1 test suite): fixed long-term and ephemeral keys of both sides.
KAT_NET=6f619f56130d357342d12054ff8c8f559d4a209a9c5a1db98d13b8ff686b7cc6
KAT_CSK=f3a806322c4ec0b7d2f1bd24b79a847773542f9720201aed40b445145f855cb0e1a2498849775e54d066e978172ee1f5c64fb00097d046926f175e6519c01e23
KAT_CPK=e1a2498849775e54d066e978172ee1f5c64fb00097d046926f175e6519c01e23
KAT_CEPH=50a9379d868edb987df0aed1e16d2ebc61e0c1bbc63ae2c118ebd5d63137d568
KAT_SSK=7662114d56743a926354c6a423dc49d5f6e0f2e6af7447da3825d442a30e4ad12abe719910f8bbc3a3c9bbcc56ee42973473a004f4010c4caa81420cca360146
KAT_SPK=2abe719910f8bbc3a3c9bbcc56ee42973473a004f4010c4caa81420cca360146
KAT_SEPH=b0f8d2b9e24ca299ef9039ceda6102d79b05dfbd161c8955e4e95d4fd9cb3f7d
KAT_MSG1=d306149bb2d11e6b01038cf2496574eaf97f83e38e42f0c30d32266007d07cb44f4f4deefed781c5eb29b9d02f209225ffedd0d7b65cc96a55569d2935a5b120
KAT_MSG2=2c8c4fe31799cacb5128723b38a73fa6c909329800ffe293162b54636bc6c6dba60c3fdaeb883d63e88ea593585d4fb117948139b318c0ae5a3e285333096152
KAT_MSG3=502218c32ed3eb425b594162891a56c52004998ea01238b40cab7f262c354a4037bc1619a11907f3c8c491f9cfd358b200ceadeabc14fbf0c7a95eb4d42096e28a2c8deb21985bd71f7e3030dcef61e1674fbe38e3678ec37c0a154c420bc20bdc0fa3428ae8e40c82ac0489349f4062
KAT_MSG4=48725c696d30110e1996f23294463119defeff7cc2905472be94fcbd9f849dad5c0ef7c657e88d53544fe22bc25f0e088ae960287e99cd245fcbc8cadd767e632fd8d1db0385f0d8a6b6b6e2d774b142
KAT_CENC_KEY=a21d99967be10aadafc9a022beb39e0eb069e8ee614285c2fa94c707229dae18
KAT_CENC_NONCE=2c8c4fe31799cacb5128723b38a73fa6c909329800ffe293
KAT_CDEC_KEY=7d8899076df1ef54e4b08d173a815ae4bc5dbfe0d14393bb2dccb2114de17562
KAT_CDEC_NONCE=d306149bb2d11e6b01038cf2496574eaf97f83e38e42f0c3

kat_pair() {
	test-tool shs pair --netkey $KAT_NET --client-sk $KAT_CSK --server-sk $KAT_SSK \
		--client-eph $KAT_CEPH --server-eph $KAT_SEPH "$@"
}

# field NAME: the value of line "NAME VALUE" in $output
field() {
	awk -v k="$1" '$1 == k { print $2 }' <<<"$output"
}

@test "public swarm key is sha256 of 'nunet public swarm v1'" {
	want=$(printf 'nunet public swarm v1' | sha256sum | cut -d' ' -f1)
	run test-tool shs public-netkey
	assert_success
	assert_equal "${lines[0]}" "$want"	# the byte array
	assert_equal "${lines[1]}" "$want"	# the hex string in shs.h
}

@test "handshake reproduces the published worked values byte for byte" {
	run kat_pair
	assert_success
	assert_equal "$(field msg1)" $KAT_MSG1
	assert_equal "$(field msg2)" $KAT_MSG2
	assert_equal "$(field msg3)" $KAT_MSG3
	assert_equal "$(field msg4)" $KAT_MSG4
	assert_equal "$(field client_enc_key)" $KAT_CENC_KEY
	assert_equal "$(field client_enc_nonce)" $KAT_CENC_NONCE
	assert_equal "$(field client_dec_key)" $KAT_CDEC_KEY
	assert_equal "$(field client_dec_nonce)" $KAT_CDEC_NONCE
	# the server's directions are the client's, swapped
	assert_equal "$(field server_enc_key)" $KAT_CDEC_KEY
	assert_equal "$(field server_enc_nonce)" $KAT_CDEC_NONCE
	assert_equal "$(field server_dec_key)" $KAT_CENC_KEY
	assert_equal "$(field server_dec_nonce)" $KAT_CENC_NONCE
	# each side learns the other's long-term key
	assert_equal "$(field client_peer)" $KAT_SPK
	assert_equal "$(field server_peer)" $KAT_CPK
}

@test "handshake fed one byte at a time gives the same result" {
	run kat_pair --chunk 1
	assert_success
	assert_equal "$(field msg4)" $KAT_MSG4
	assert_equal "$(field client_enc_key)" $KAT_CENC_KEY
	assert_equal "$(field server_peer)" $KAT_CPK
}

@test "random keys: both sides agree, and the server learns the client" {
	shs_keypair; csk=$SK cpk=$PK
	shs_keypair
	run test-tool shs pair --netkey "$(shs_randhex 32)" --client-sk $csk --server-sk $SK
	assert_success
	assert_line ok
	assert_equal "$(field server_peer)" $cpk
	assert_equal "$(field client_peer)" $PK
	assert_equal "$(field client_enc_key)" "$(field server_dec_key)"
	assert_equal "$(field client_dec_nonce)" "$(field server_enc_nonce)"
	[ "$(field client_enc_key)" != "$(field client_dec_key)" ]
}

@test "box-stream bytes that arrive with msg4 are left for the box-stream decoder" {
	# the server writes msg4, a line and the goodbye at once; reads of any size
	for chunk in 1 80 81 112 1000; do
		run kat_pair --hello "first envelope" --chunk $chunk
		assert_success
		assert_equal "$(field msg4)" $KAT_MSG4
		assert_line "client got: first envelope"
		assert_line "client goodbye"
	done
}

@test "a client of another swarm fails on both sides" {
	run test-tool shs pair --netkey "$(shs_randhex 32)" --server-netkey "$(shs_randhex 32)"
	assert_failure 1
	assert_line --partial "server handshake failed: the client's hello (msg1) is not authenticated by our network key"
	assert_line --partial "client handshake failed: the server closed the connection instead of answering our hello (msg1): it is probably in another swarm"
	refute_line --partial msg2
}

@test "a wrong server key fails on both sides, before the server reveals itself" {
	shs_keypair
	run test-tool shs pair --expect-pk $PK
	assert_failure 1
	assert_line --partial "server handshake failed: cannot open the client's authentication (msg3)"
	assert_line --partial "client handshake failed: the server closed the connection after our authentication (msg3)"
	refute_line --partial msg4
}

@test "a flipped bit in any handshake message fails the handshake" {
	for msg in 1 2 3 4; do
		for bit in 0 300 639 895; do
			run kat_pair --flip $msg $bit
			assert_failure 1
			refute_line ok
			# the receiver of the altered message is the one that notices
			case $msg in
			1|3) assert_line --regexp "^server handshake failed: .*msg$msg" ;;
			2|4) assert_line --regexp "^client handshake failed: .*msg$msg" ;;
			esac
		done
	done
}

@test "a server may refuse an authenticated client before answering" {
	run test-tool shs pair --deny
	assert_failure 1
	assert_line "server handshake failed: the client is not on our list"
	assert_line --partial "client handshake failed: the server closed the connection after our authentication (msg3)"
}

@test "a secure connection over TCP carries lines of 0 to 1 MiB both ways, then goodbyes" {
	run test-tool shs conn 0 1 4095 4096 4097 1048576 17
	assert_success
	assert_line "lines sent=7 echoed=7"
	assert_line ok
	# each side knows the other's long-term key
	assert_equal "$(field client_peer)" "$(field server_pk)"
	assert_equal "$(field server_peer)" "$(field client_pk)"
}

@test "lines sent before the handshake ends wait for it" {
	run test-tool shs conn --early 10 100000 3
	assert_success
	assert_line "lines sent=3 echoed=3"
}

@test "over TCP, another swarm fails on both sides with a clear message" {
	run test-tool shs conn --server-netkey "$(shs_randhex 32)" 10
	assert_failure 1
	assert_line "server error: handshake failed: the client's hello (msg1) is not authenticated by our network key: the client is in another swarm, or does not speak SHS"
	assert_line "client error: handshake failed: the server closed the connection instead of answering our hello (msg1): it is probably in another swarm (a different network key)"
}

@test "over TCP, a client expecting another server key fails on both sides" {
	shs_keypair
	run test-tool shs conn --expect-pk $PK 10
	assert_failure 1
	assert_line --partial "server error: handshake failed: cannot open the client's authentication (msg3)"
	assert_line --partial "client error: handshake failed: the server closed the connection after our authentication (msg3)"
}

@test "shs-server and shs-client complete a handshake over pipes" {
	shs_keypair
	net=$(shs_randhex 32)
	run python3 "$NUNET_SRC/t/lib/shs-relay.py" $net $SK $PK $net $PK
	assert_success
	eval "$(jq -r '@sh "src=\(.server_rc) crc=\(.client_rc) sout=\(.server_out) cout=\(.client_out)"' <<<"$output")"
	assert_equal "$src $crc" "0 0"
	# server: msg4 (80 bytes) then enc key, enc nonce, dec key, dec nonce
	assert_equal ${#sout} $(( (80 + 112) * 2 ))
	assert_equal ${#cout} $(( 112 * 2 ))
	s_keys=${sout:160}
	# the client's (enc, dec) is the server's (dec, enc)
	assert_equal "${cout:0:112}" "${s_keys:112:112}"
	assert_equal "${cout:112:112}" "${s_keys:0:112}"
}

@test "shs helpers of different swarms both exit non-zero and write nothing more" {
	shs_keypair
	run --separate-stderr python3 "$NUNET_SRC/t/lib/shs-relay.py" \
		"$(shs_randhex 32)" $SK $PK "$(shs_randhex 32)" $PK
	assert_success
	assert_equal "$(jq -c '[.server_rc, .client_rc, .server_out, .client_out, .stopped]' <<<"$output")" \
		'[1,1,"","","msg2"]'
	[[ $stderr == *"shs-server: error: handshake failed: the client's hello (msg1) is not authenticated by our network key"* ]]
	[[ $stderr == *"shs-client: error: handshake failed: the server closed the connection"* ]]
}

@test "shs helpers: a flipped bit in msg2 or msg4 stops the client, in msg3 the server" {
	shs_keypair
	net=$(shs_randhex 32)
	for m in 2 3 4; do
		run --separate-stderr python3 "$NUNET_SRC/t/lib/shs-relay.py" $net $SK $PK $net $PK $m 77
		assert_success
		crc=$(jq .client_rc <<<"$output")
		assert_equal "$crc" 1
		assert_equal "$(jq -r .client_out <<<"$output")" ""
		if [ $m = 3 ]; then
			assert_equal "$(jq .server_rc <<<"$output")" 1
			assert_equal "$(jq -r .server_out <<<"$output")" ""
		fi
		[[ $stderr == *"handshake failed"*"msg$m"* ]]
	done
}

@test "shs helpers: usage" {
	run shs-server --help
	assert_success
	assert_output "usage: shs-server NETKEY SERVER_SK SERVER_PK"
	run --separate-stderr shs-client 00
	assert_failure 64
	assert_equal "$stderr" "usage: shs-client NETKEY SERVER_PK"
	shs_keypair
	run --separate-stderr shs-server "$(shs_randhex 32)" $SK "$(shs_randhex 32)"
	assert_failure 64
	assert_equal "$stderr" "shs-server: error: SERVER_SK does not hold SERVER_PK"
}

@test "private swarm key file: 32 random bytes in hex, mode 0600, never overwritten" {
	run test-tool shs netkey-new "$BATS_TEST_TMPDIR/swarm.key"
	assert_success
	assert_equal "$(stat -c %a "$BATS_TEST_TMPDIR/swarm.key")" 600
	key=$(cat "$BATS_TEST_TMPDIR/swarm.key")
	[[ $key =~ ^[0-9a-f]{64}$ ]]
	assert_equal "$(wc -c <"$BATS_TEST_TMPDIR/swarm.key")" 65
	run test-tool shs netkey-load "$BATS_TEST_TMPDIR/swarm.key"
	assert_success
	assert_output "$key"
	run --separate-stderr test-tool shs netkey-new "$BATS_TEST_TMPDIR/swarm.key"
	assert_failure 74
	[[ $stderr == *"cannot create '$BATS_TEST_TMPDIR/swarm.key': File exists" ]]
	assert_equal "$(cat "$BATS_TEST_TMPDIR/swarm.key")" "$key"
	# a second key is another key
	test-tool shs netkey-new "$BATS_TEST_TMPDIR/other.key"
	[ "$(cat "$BATS_TEST_TMPDIR/other.key")" != "$key" ]
}

@test "swarm key files: upper case and white space accepted, anything else refused" {
	printf '  %s\r\n\n' "$(shs_randhex 32 | tr a-f A-F)" >"$BATS_TEST_TMPDIR/k"
	run test-tool shs netkey-load "$BATS_TEST_TMPDIR/k"
	assert_success
	assert_output "$(tr -d ' \r\n' <"$BATS_TEST_TMPDIR/k" | tr A-F a-f)"
	shs_randhex 31 >"$BATS_TEST_TMPDIR/short"
	run --separate-stderr test-tool shs netkey-load "$BATS_TEST_TMPDIR/short"
	assert_failure 65
	assert_equal "$stderr" "test-tool: error: '$BATS_TEST_TMPDIR/short': a swarm key is 64 hexadecimal characters (32 bytes)"
	echo "$(shs_randhex 31)zz" >"$BATS_TEST_TMPDIR/bad"
	run test-tool shs netkey-load "$BATS_TEST_TMPDIR/bad"
	assert_failure 65
	run --separate-stderr test-tool shs netkey-load "$BATS_TEST_TMPDIR/missing"
	assert_failure 65
	assert_equal "$stderr" "test-tool: error: cannot open '$BATS_TEST_TMPDIR/missing': No such file or directory"
}

@test "interop: shs-server passes the shs1-test server suite" {
	shs_npm_setup
	run node "$SHS_NPM_DIR/shs1-test/test-server.js" "$NUNET_BUILD/t/helper/shs-server" 5001
	assert_success
	assert_line --partial "Passed the server test suite"
}

@test "interop: shs-client passes the shs1-test client suite" {
	shs_npm_setup
	run node "$SHS_NPM_DIR/shs1-test/test-client.js" "$NUNET_BUILD/t/helper/shs-client" 5001
	assert_success
	assert_line --partial "Passed the client test suite"
}

@test "interop over TCP: Scuttlebutt's secret-handshake client talks to our server" {
	shs_npm_setup
	shs_keypair
	net=$(shs_randhex 32)
	mkfifo "$T/ready"
	test-tool shs serve $net $SK 3 3>"$T/ready" >"$T/out" &
	pid=$!
	SHS_PIDS+=($pid)
	read -r -t 10 _ port <"$T/ready"
	big=$(printf 'b%.0s' {1..9000})
	run node "$NUNET_SRC/t/lib/shs-ssb-client.js" $port $net $PK "hello swarm" "$big" ""
	assert_success
	wait $pid
	assert_equal "$(jq -r .remote <<<"$output")" $PK
	assert_equal "$(jq -c '.received | map(length)' <<<"$output")" '[17,9006,6]'
	assert_equal "$(jq -r '.received[0]' <<<"$output")" "echo: hello swarm"
	# the server learned the JS client's key and saw three lines
	assert_equal "$(awk '$1 == "peer" { print $2 }' "$T/out")" "$(jq -r .client <<<"$output")"
	grep -qx 'lines 3' "$T/out"
}

@test "interop over TCP: our client talks to Scuttlebutt's secret-handshake server" {
	shs_npm_setup
	shs_keypair
	net=$(shs_randhex 32)
	mkfifo "$T/fifo"
	node "$NUNET_SRC/t/lib/shs-ssb-server.js" $net $SK $PK >"$T/fifo" 3>&- &
	pid=$!
	SHS_PIDS+=($pid)
	exec 4<"$T/fifo"
	read -r -t 10 _ port <&4
	run test-tool shs dial $port $net $PK "one" "$(printf 'c%.0s' {1..5000})"
	assert_success
	assert_line "got: echo: one"
	assert_line "lines 2"
	js=$(cat <&4)
	exec 4<&-
	wait $pid
	assert_equal "$(jq -r .remote <<<"$js")" "$(field client)"
	assert_equal "$(jq -c '.received | map(length)' <<<"$js")" '[3,5000]'
}
