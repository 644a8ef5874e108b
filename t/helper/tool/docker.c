/*
 * test-tool docker — drives the Docker log-stream decoder without an
 * engine: `docker demux N` reads a multiplexed stream (8-byte frame headers
 * and payloads) on stdin, feeds it to nn_docker_demux_feed() in pieces of
 * N bytes, and writes stream 1 to stdout and stream 2 to stderr.  Exit 65
 * on corrupt framing, 74 when the input ends inside a frame.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "test-tool.h"
#include "exec/dockerapi.h"

int cmd__docker(int argc, char **argv)
{
	struct nn_docker_demux m;
	char buf[65536];
	long chunk;
	ssize_t n;

	if (argc != 3 || strcmp(argv[1], "demux") || (chunk = atol(argv[2])) < 1 ||
	    chunk > (long)sizeof buf) {
		fprintf(stderr, "usage: test-tool docker demux CHUNK\n");
		return 64;
	}
	nn_docker_demux_init(&m, 1, 2);
	while ((n = read(0, buf, (size_t)chunk)) > 0)
		if (nn_docker_demux_feed(&m, buf, (size_t)n) < 0)
			return 65;
	if (n < 0)
		return 74;
	return m.hlen || m.left ? 74 : 0;
}
