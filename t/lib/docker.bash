# Private container engines for the docker executor's tests: load with
# `load lib/docker` after `load lib/common`, call docker_engine_start (or
# podman_engine_start) from setup_file and engine_stop from teardown_file.
#
# Each engine gets its own directory (data root, exec root, pidfile, socket)
# under a short /tmp path (unix socket paths must stay under 108 bytes), no
# bridge and no iptables rules; it is stopped by its PID and its directory
# removed.  A busybox image, built from Debian's busybox-static (no registry
# is reachable), is imported as bb:local.  DOCKER_HOST is exported for the
# tests, so `nunet-run exec` and `docker` both talk to the private engine.

# The busybox root filesystem as a tar file, made once per run.
bb_rootfs_tar() {
	local tar="$BATS_RUN_TMPDIR/bb-rootfs.tar" dir="$BATS_RUN_TMPDIR/bb-rootfs"
	if [ ! -s "$tar" ]; then
		rm -rf "$dir"
		mkdir -p "$dir/bin" "$dir/tmp" "$dir/proc" "$dir/sys" "$dir/dev" "$dir/etc"
		cp /bin/busybox "$dir/bin/busybox"
		local a
		for a in $("$dir/bin/busybox" --list); do
			[ "$a" = busybox ] || ln -s busybox "$dir/bin/$a"
		done
		echo 'root:x:0:0:root:/:/bin/sh' >"$dir/etc/passwd"
		echo 'root:x:0:' >"$dir/etc/group"
		tar -C "$dir" -cf "$tar.tmp" . && mv "$tar.tmp" "$tar"
	fi
	echo "$tar"
}

# engine_ping SOCKET: true when the engine answers /_ping.
engine_ping() {
	curl -sf --max-time 2 --unix-socket "$1" http://localhost/_ping >/dev/null 2>&1
}

# engine_wait SOCKET PID: poll /_ping for at most 60 s while PID lives.
engine_wait() {
	local i
	for i in $(seq 1 600); do
		engine_ping "$1" && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# docker_engine_start: start a private dockerd and import bb:local.  Skips
# the file's tests (with the reason) when dockerd is not installed.
docker_engine_start() {
	command -v dockerd >/dev/null || skip "dockerd is not installed (Debian: docker.io)"
	command -v busybox >/dev/null || skip "busybox is not installed (Debian: busybox-static)"
	ENGINE_DIR=$(mktemp -d /tmp/nndk.XXXXXX)
	ENGINE_SOCK="$ENGINE_DIR/docker.sock"
	dockerd --data-root "$ENGINE_DIR/data" --exec-root "$ENGINE_DIR/exec" \
		--pidfile "$ENGINE_DIR/pid" -H "unix://$ENGINE_SOCK" \
		--bridge=none --iptables=false --ip-masq=false --ip-forward=false \
		>"$ENGINE_DIR/dockerd.log" 2>&1 3>&- &
	ENGINE_PID=$!
	if ! engine_wait "$ENGINE_SOCK" "$ENGINE_PID"; then
		echo "dockerd did not answer; its log:" >&2
		tail -n 30 "$ENGINE_DIR/dockerd.log" >&2
		return 1
	fi
	export DOCKER_HOST="unix://$ENGINE_SOCK"
	docker import "$(bb_rootfs_tar)" bb:local >/dev/null
	echo "$ENGINE_PID" >"$BATS_FILE_TMPDIR/engine.pid"
	echo "$ENGINE_DIR" >"$BATS_FILE_TMPDIR/engine.dir"
}

# The containers.conf that Podman needs on this machine (MACHINE-NOTES.md),
# with file locks under the private --tmpdir: the default shm lock segment
# is shared by every Podman of the machine, so two test runs would collide.
podman_conf() {
	cat >"$1" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=20000:20000"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
lock_type = "file"
EOF
}

# podman_engine_start: start `podman system service` on a private socket
# with private storage and import bb:local.  Skips when podman is absent.
podman_engine_start() {
	command -v podman >/dev/null || skip "podman is not installed (Debian: podman)"
	command -v runc >/dev/null || skip "runc is not installed (Podman needs it here)"
	command -v busybox >/dev/null || skip "busybox is not installed (Debian: busybox-static)"
	ENGINE_DIR=$(mktemp -d /tmp/nnpm.XXXXXX)
	ENGINE_SOCK="$ENGINE_DIR/podman.sock"
	podman_conf "$ENGINE_DIR/containers.conf"
	export CONTAINERS_CONF="$ENGINE_DIR/containers.conf"
	PODMAN=(podman --root "$ENGINE_DIR/root" --runroot "$ENGINE_DIR/run"
		--tmpdir "$ENGINE_DIR/tmp")
	"${PODMAN[@]}" import -q "$(bb_rootfs_tar)" localhost/bb:local >/dev/null
	"${PODMAN[@]}" system service --time=0 "unix://$ENGINE_SOCK" \
		>"$ENGINE_DIR/podman.log" 2>&1 3>&- &
	ENGINE_PID=$!
	if ! engine_wait "$ENGINE_SOCK" "$ENGINE_PID"; then
		echo "podman system service did not answer; its log:" >&2
		tail -n 30 "$ENGINE_DIR/podman.log" >&2
		return 1
	fi
	export DOCKER_HOST="unix://$ENGINE_SOCK"
	echo "$ENGINE_PID" >"$BATS_FILE_TMPDIR/engine.pid"
	echo "$ENGINE_DIR" >"$BATS_FILE_TMPDIR/engine.dir"
}

# engine_stop: stop the engine of this file by PID, unmount what it left
# and remove its directory.
engine_stop() {
	local pid dir i m
	[ -f "$BATS_FILE_TMPDIR/engine.pid" ] || return 0
	pid=$(cat "$BATS_FILE_TMPDIR/engine.pid")
	dir=$(cat "$BATS_FILE_TMPDIR/engine.dir")
	kill -TERM "$pid" 2>/dev/null
	for i in $(seq 1 150); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	case "$dir" in
	/tmp/nndk.* | /tmp/nnpm.*)
		# deepest mounts first
		for m in $(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r); do
			umount -l "$m" 2>/dev/null
		done
		rm -rf "$dir"
		;;
	esac
	rm -f "$BATS_FILE_TMPDIR/engine.pid" "$BATS_FILE_TMPDIR/engine.dir"
}

# engine_api METHOD PATH: one raw API call to the test engine (curl).
engine_api() {
	curl -sf --max-time 10 --unix-socket "${DOCKER_HOST#unix://}" -X "$1" "http://localhost/v1.41$2"
}

# containers_labelled ID: the ids of containers (any state) labelled
# nunet.alloc=ID, one per line.
containers_labelled() {
	engine_api GET "/containers/json?all=1&filters=%7B%22label%22%3A%5B%22nunet.alloc%3D$1%22%5D%7D" |
		jq -r '.[].Id'
}
