# Helpers for the SHS and box-stream tests (t/50xx): load with `load lib/shs`.
#
# shs_npm_setup installs the independent JavaScript implementations used for
# interop (shs1-test, Aljoscha Meyer's SHS v1 test suite; pull-box-stream
# and secret-handshake, the implementations Scuttlebutt runs) from the npm
# registry into a cache directory outside the
# repository (${NUNET_NPM_CACHE:-/tmp/nunet-npm-cache}/shs), once; it skips
# the calling test when node or npm is missing or the install fails.

SHS_NPM_PKGS="shs1-test@1.1.1 pull-box-stream@1.0.13 secret-handshake@1.1.21 stream-to-pull-stream@1.7.3"

shs_npm_installed() {
	local m
	for m in shs1-test/test-server.js pull-box-stream/index.js \
		secret-handshake/index.js stream-to-pull-stream/index.js; do
		[ -f "$1/node_modules/$m" ] || return 1
	done
}

shs_npm_setup() {
	command -v node >/dev/null 2>&1 || skip "node is not installed"
	command -v npm >/dev/null 2>&1 || skip "npm is not installed"
	local dir=${NUNET_NPM_CACHE:-/tmp/nunet-npm-cache}/shs
	local failed="$BATS_RUN_TMPDIR/shs-npm-failed"
	[ ! -e "$failed" ] || skip "$(cat "$failed")"
	mkdir -p "$dir" || skip "cannot create $dir"
	(
		flock 9
		if ! shs_npm_installed "$dir"; then
			cd "$dir" || exit 1
			if [ ! -f package.json ]; then
				echo '{"name":"nunet-shs-interop","private":true}' >package.json
			fi
			timeout 150 npm install --no-audit --no-fund --ignore-scripts \
				--fetch-retries=1 --fetch-retry-mintimeout=1000 \
				--fetch-retry-maxtimeout=2000 --fetch-timeout=30000 --loglevel=error \
				$SHS_NPM_PKGS >"$dir/install.log" 2>&1
		fi
	) 9>"$dir/.lock" || true
	if ! shs_npm_installed "$dir"; then
		# once per run: later tests skip at once
		echo "cannot install $SHS_NPM_PKGS from npm (see $dir/install.log)" >"$failed"
		skip "$(cat "$failed")"
	fi
	SHS_NPM_DIR=$dir/node_modules
	export NODE_PATH=$SHS_NPM_DIR
}

# shs_keypair: set SK and PK (hex) to a fresh ed25519 key pair.
shs_keypair() {
	read -r SK PK < <(test-tool shs keygen)
}

# shs_randhex N: N random bytes in hex.
shs_randhex() {
	head -c "$1" /dev/urandom | od -An -v -tx1 | tr -d ' \n'
}

# shs_flip FILE BIT: flip one bit of FILE in place.
shs_flip() {
	python3 - "$1" "$2" <<'PY'
import sys
p, bit = sys.argv[1], int(sys.argv[2])
b = bytearray(open(p, 'rb').read())
b[bit // 8] ^= 1 << (bit % 8)
open(p, 'wb').write(b)
PY
}
