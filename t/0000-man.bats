#!/usr/bin/env bats
# Man pages: mandoc -Tlint clean, and each program's usage text is its SYNOPSIS.
load lib/common

@test "every man page is mandoc -Tlint clean" {
	skip_unless 'command -v mandoc' 'mandoc is not installed'
	run mandoc -Tlint -Wwarning "$NUNET_SRC"/man/*.[157]
	assert_success
	assert_output ''
}

@test "every program has a man page" {
	for c in "$NUNET_SRC"/cmd/nunet-*.c; do
		p=$(basename "$c" .c)
		[ -f "$NUNET_SRC/man/$p.1" ] || fail "$p has no man page"
	done
}

@test "usage text names the same commands and options as the SYNOPSIS" {
	skip_unless 'command -v mandoc' 'mandoc is not installed'
	for p in nunet-node nunet-send; do
		synopsis=$(MANWIDTH=200 mandoc -Tascii -O width=200 "$NUNET_SRC/man/$p.1" | col -b |
			awk '/^SYNOPSIS/{on=1; next} /^[A-Z]/{on=0} on' | tr -s ' \n' ' ' | sed 's/^ //; s/ $//')
		usage=$("$p" -h | sed 's/^usage: //; s/^ *//' | tr -s ' \n' ' ' | sed 's/^ //; s/ $//')
		assert_equal "$usage" "$synopsis"
	done
}
