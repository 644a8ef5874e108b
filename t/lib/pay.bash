# Shared by the nunet-pay tests (load lib/pay after lib/common).

# pay_contract_file: in setup_file, two identities ($BATS_FILE_TMPDIR/r, the
# requester, and p, the provider) and their accepted contract: cap 5000;
# 10 per cpu-second, 2 per GiB-second, 100 per allocation; prop.json and
# acc.json beside them.
pay_contract_file() {
	local F=$BATS_FILE_TMPDIR pd
	nunet-node --home "$F/r" init >/dev/null
	pd=$(nunet-node --home "$F/p" init)
	nunet-pay --home "$F/r" contract propose --provider "$pd" --cpu-rate 10 --gib-rate 2 \
		--alloc-rate 100 --cap 5000 --duration 1h >"$F/prop.json"
	nunet-pay --home "$F/p" contract accept "$F/prop.json" >"$F/acc.json"
	nunet-pay --home "$F/r" contract accept "$F/acc.json" >/dev/null
}

# pay_homes: in setup, the test's own copies of both homes, R and P, and
# the working directory its temporary one.
pay_homes() {
	common_setup
	R=$BATS_TEST_TMPDIR/r
	P=$BATS_TEST_TMPDIR/p
	cp -a "$BATS_FILE_TMPDIR/r" "$R"
	cp -a "$BATS_FILE_TMPDIR/p" "$P"
	cd "$BATS_TEST_TMPDIR"
}

rpay() { nunet-pay --home "$R" "$@"; }
ppay() { nunet-pay --home "$P" "$@"; }
