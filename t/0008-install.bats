#!/usr/bin/env bats
# make install PREFIX=… DESTDIR=… puts programs, man pages and share/ in place;
# make uninstall takes them away again.
load lib/common

@test "make install and uninstall with PREFIX and DESTDIR" {
	dest="$BATS_TEST_TMPDIR/dest"
	run make -s -C "$NUNET_SRC" install B="$NUNET_BUILD" PREFIX=/opt/nunet DESTDIR="$dest"
	assert_success
	for p in nunet-node nunet-send; do
		[ -x "$dest/opt/nunet/bin/$p" ] || fail "$p not installed"
		[ -f "$dest/opt/nunet/share/man/man1/$p.1" ] || fail "$p.1 not installed"
	done
	[ -f "$dest/opt/nunet/share/man/man5/nunet-envelope.5" ]
	[ -f "$dest/opt/nunet/share/man/man7/nunet.7" ]
	run "$dest/opt/nunet/bin/nunet-node" --version
	assert_output --regexp '^nunet-node '
	run make -s -C "$NUNET_SRC" uninstall B="$NUNET_BUILD" PREFIX=/opt/nunet DESTDIR="$dest"
	assert_success
	run find "$dest" -type f
	assert_output ''
}
