# Virtual machines for the vm executor's tests: load with `load lib/vm`.
#
# vm_fixture makes, once per run, a tiny gzipped initramfs holding only
# Debian's busybox-static and its applet links (the executor adds its own
# /nunet/init to it), and finds the Debian kernel from linux-image-amd64
# under /boot.  It sets VM_KERNEL and VM_INITRD, or skips the test with the
# reason when QEMU, busybox, cpio or a kernel are missing.

vm_fixture() {
	command -v qemu-system-x86_64 >/dev/null ||
		skip "qemu-system-x86_64 is not installed (Debian: qemu-system-x86)"
	command -v busybox >/dev/null || skip "busybox is not installed (Debian: busybox-static)"
	command -v cpio >/dev/null || skip "cpio is not installed"
	VM_KERNEL=$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)
	[ -n "$VM_KERNEL" ] && [ -r "$VM_KERNEL" ] ||
		skip "no readable kernel under /boot (Debian: linux-image-amd64)"
	VM_INITRD="$BATS_RUN_TMPDIR/vm-initrd.cpio.gz"
	if [ ! -s "$VM_INITRD" ]; then
		local dir="$BATS_RUN_TMPDIR/vm-root" a
		rm -rf "$dir"
		mkdir -p "$dir/bin" "$dir/sbin" "$dir/proc" "$dir/sys" "$dir/dev" "$dir/tmp"
		cp /bin/busybox "$dir/bin/busybox"
		for a in $("$dir/bin/busybox" --list); do
			[ "$a" = busybox ] || ln -s busybox "$dir/bin/$a"
		done
		(cd "$dir" && find . | cpio -o -H newc --quiet | gzip -1) >"$VM_INITRD.tmp" &&
			mv "$VM_INITRD.tmp" "$VM_INITRD"
	fi
	export VM_KERNEL VM_INITRD
}

# vm_spec ID COMMAND-JSON [EXTRA-JSON]: write $BATS_TEST_TMPDIR/ID.json for
# a vm job in $BATS_TEST_TMPDIR/alloc/ID and print its path.
vm_spec() {
	jq -n --arg id "$1" --arg dir "$BATS_TEST_TMPDIR/alloc/$1" --argjson cmd "$2" \
		--arg k "$VM_KERNEL" --arg i "$VM_INITRD" --argjson extra "${3:-{\}}" \
		'{executor:"vm", id:$id, dir:$dir, command:$cmd,
		  image:{kernel:$k, initrd:$i}} + $extra' >"$BATS_TEST_TMPDIR/$1.json"
	echo "$BATS_TEST_TMPDIR/$1.json"
}
