#!/usr/bin/env bats
# The event loop: timers (one-shot and periodic), signals through signalfd,
# fd readiness, removal from inside a callback.
load lib/common

@test "timers, a signal and an fd are dispatched in order" {
	run timeout 5 test-tool loop
	assert_success
	assert_output $'once\nsignal USR1\ntick 1\ntick 2\ntick 3\nreadable x after >=30ms'
}

@test "sizes and durations parse with units and refuse the rest" {
	assert_equal "$(test-tool size size 8G)" 8589934592
	assert_equal "$(test-tool size size 512MiB)" 536870912
	assert_equal "$(test-tool size size 1024)" 1024
	run test-tool size size -5M
	assert_failure 65
	run test-tool size size 5X
	assert_failure 65
	assert_equal "$(test-tool size duration 1.5s)" 1500
	assert_equal "$(test-tool size duration 250ms)" 250
	assert_equal "$(test-tool size duration 2m)" 120000
}
