#!/usr/bin/env bats
# nunet-bench's GPU detection, against fake /proc and /sys trees
# (t/fixtures/bench/{nvidia,amd,intel}, read through --sysroot) and a fake
# nvidia-smi on PATH, so the logic runs on machines without a GPU.  On a
# machine with a real nvidia-smi, the last test compares with it.

load lib/common
bats_require_minimum_version 1.5.0

FIX="$BATS_TEST_DIRNAME/fixtures/bench"

setup() {
	common_setup
	unset DOCKER_HOST NUNET_SYSROOT
	# By default nvidia-smi is present but fails (no driver): a real one on
	# this machine must not add its GPUs to a fake tree's.
	BIN="$BATS_TEST_TMPDIR/bin"
	mkdir -p "$BIN"
	printf '#!/bin/sh\necho "NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver." >&2\nexit 9\n' \
		>"$BIN/nvidia-smi"
	chmod +x "$BIN/nvidia-smi"
	REAL_PATH=$PATH
	export PATH="$BIN:$PATH"
}

gpus() {
	echo "$output" | jq -c .gpus
}

@test "nvidia: names and vram from nvidia-smi, matched by PCI bus id" {
	cp "$FIX/nvidia/bin/nvidia-smi" "$BIN/nvidia-smi"
	run --separate-stderr nunet-bench -n --sysroot "$FIX/nvidia"
	assert_success
	assert_equal "$stderr" ""
	# in PCI order (nvidia-smi answered C1 first); the ASPEED BMC display
	# (vendor 0x1a03) and the ISA bridge are not GPUs
	assert_equal "$(gpus)" \
		'[{"model":"NVIDIA H100 80GB HBM3","vendor":"nvidia","vram":85520809984},{"model":"NVIDIA A100-SXM4-40GB","vendor":"nvidia","vram":42949672960}]'
}

@test "nvidia: without a working nvidia-smi, models from /proc/driver/nvidia" {
	run --separate-stderr nunet-bench -n --sysroot "$FIX/nvidia"
	assert_success
	assert_equal "$(gpus)" \
		'[{"model":"NVIDIA H100 80GB HBM3","vendor":"nvidia","vram":0},{"model":"NVIDIA A100-SXM4-40GB","vendor":"nvidia","vram":0}]'
}

@test "nvidia: a hanging nvidia-smi is killed after the timeout" {
	printf '#!/bin/sh\nexec sleep 6071\n' >"$BIN/nvidia-smi"
	local t0=$SECONDS
	run --separate-stderr nunet-bench -q -n --sysroot "$FIX/nvidia"
	assert_success
	# -q gives nvidia-smi 1 s; allow for a loaded machine, not for the whole sleep
	[ $((SECONDS - t0)) -lt 15 ]
	assert_equal "$(gpus | jq -c 'map(.model)')" '["NVIDIA H100 80GB HBM3","NVIDIA A100-SXM4-40GB"]'
	run pgrep -f 'sleep 6071'
	refute_output --regexp "."
}

@test "nvidia: GPUs nvidia-smi sees but sysfs does not are still listed" {
	cp "$FIX/nvidia/bin/nvidia-smi" "$BIN/nvidia-smi"
	mkdir -p "$BATS_TEST_TMPDIR/root"
	cp -R "$FIX/amd/proc" "$BATS_TEST_TMPDIR/root/"
	run nunet-bench -n --sysroot "$BATS_TEST_TMPDIR/root"
	assert_success
	assert_equal "$(gpus | jq -c 'map([.vendor, .vram])')" '[["nvidia",85520809984],["nvidia",42949672960]]'
}

@test "nvidia: what nvidia-smi cannot say ([N/A], [Not Supported], a warning line) is left to /proc" {
	cat >"$BIN/nvidia-smi" <<'SMI'
#!/bin/sh
echo "WARNING: infoROM is corrupted at gpu 0000:C1:00.0"
echo "00000000:C1:00.0, [N/A], [Not Supported]"
echo "00000000:01:00.0, NVIDIA GH200 480GB, [N/A]"
SMI
	chmod +x "$BIN/nvidia-smi"
	run --separate-stderr nunet-bench -n --sysroot "$FIX/nvidia"
	assert_success
	assert_equal "$stderr" ""
	# the name nvidia-smi gave wins over /proc's; one it did not give is
	# /proc's; a size it did not give is 0, not a number made of "[N/A]"
	assert_equal "$(gpus)" \
		'[{"model":"NVIDIA GH200 480GB","vendor":"nvidia","vram":0},{"model":"NVIDIA A100-SXM4-40GB","vendor":"nvidia","vram":0}]'
}

@test "amd: vram from mem_info_vram_total, model from product_name or pci.ids" {
	run --separate-stderr nunet-bench -n --sysroot "$FIX/amd"
	assert_success
	assert_equal "$stderr" ""
	# the GPU's HDMI audio function (class 0x0403) and the NIC are left out
	assert_equal "$(gpus)" \
		'[{"model":"AMD Radeon RX 7900 XTX","vendor":"amd","vram":25753026560},{"model":"Navi 21 [Radeon RX 6800/6800 XT / 6900 XT]","vendor":"amd","vram":17163091968}]'
}

@test "intel: integrated (no vram), xe tiles summed, i915 local memory" {
	NUNET_SYSROOT="$FIX/intel" run --separate-stderr nunet-bench -n
	assert_success
	assert_equal "$(gpus)" \
		'[{"model":"TigerLake-LP GT2 [Iris Xe Graphics]","vendor":"intel","vram":0},{"model":"Battlemage G21 [Arc B580]","vendor":"intel","vram":12884901888},{"model":"DG2 [Arc A770]","vendor":"intel","vram":17163091968}]'
}

@test "a GPU without a name anywhere is named by its PCI ids" {
	mkdir -p "$BATS_TEST_TMPDIR/root"
	cp -R "$FIX/amd/." "$BATS_TEST_TMPDIR/root/"
	rm "$BATS_TEST_TMPDIR/root/usr/share/misc/pci.ids"
	run nunet-bench -n --sysroot "$BATS_TEST_TMPDIR/root"
	assert_success
	assert_equal "$(gpus | jq -c 'map(.model)')" '["AMD Radeon RX 7900 XTX","PCI 1002:73bf"]'
}

@test "a tree with no PCI devices has no GPUs" {
	mkdir -p "$BATS_TEST_TMPDIR/root"
	cp -R "$FIX/amd/proc" "$BATS_TEST_TMPDIR/root/"
	run nunet-bench -n --sysroot "$BATS_TEST_TMPDIR/root"
	assert_success
	assert_equal "$(gpus)" '[]'
}

@test "the --sysroot example of the man page lists a tree's GPUs" {
	run sh -c "nunet-bench -n --sysroot '$FIX/amd' | jq .gpus"
	assert_success
	assert_equal "$(echo "$output" | jq length)" 2
}

@test "this machine: the GPUs nvidia-smi lists are all found" {
	export PATH=$REAL_PATH
	skip_unless "nvidia-smi -L" "no working nvidia-smi on this machine"
	run nunet-bench -n
	assert_success
	assert_equal "$(echo "$output" | jq '[.gpus[] | select(.vendor == "nvidia")] | length')" \
		"$(nvidia-smi -L | grep -c '^GPU ')"
	[ "$(echo "$output" | jq '[.gpus[] | select(.vendor == "nvidia") | .vram] | min')" -gt 0 ]
}
