/*
 * rawsock — a deliberately raw client of a unix socket for the node's
 * bad-input tests: writes stdin's bytes as they are (no framing, no
 * signing), then prints each line the server sends.
 *
 *   rawsock [-n LINES] [-t MS] [--hang] SOCKET
 *
 * -n: stop after LINES lines (default: until the server closes or -t).
 * -t: give up after MS milliseconds without a line (default 5000), exit 75.
 * --hang: after writing stdin, keep the connection open without reading
 *         until killed (a client that sends half a line and hangs).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "sock.h"
#include "util.h"

int main(int argc, char **argv)
{
	long want = -1, got = 0, t = 5000;
	int hang = 0, fd, i;
	char err[NN_ERRLEN], buf[65536];
	ssize_t n;
	struct nn_buf line = NN_BUF_INIT;

	for (i = 1; i < argc - 1; i++) {
		if (!strcmp(argv[i], "-n"))
			want = atol(argv[++i]);
		else if (!strcmp(argv[i], "-t"))
			t = atol(argv[++i]);
		else if (!strcmp(argv[i], "--hang"))
			hang = 1;
		else
			break;
	}
	if (i != argc - 1) {
		fprintf(stderr, "usage: rawsock [-n LINES] [-t MS] [--hang] SOCKET\n");
		return 64;
	}
	fd = nn_sock_connect(argv[i], err);
	if (fd < 0) {
		fprintf(stderr, "rawsock: %s\n", err);
		return 69;
	}
	while ((n = read(0, buf, sizeof buf)) > 0)
		if (nn_write_all(fd, buf, (size_t)n) < 0) {
			fprintf(stderr, "rawsock: write: %s\n", strerror(errno));
			break;
		}
	if (hang) {
		printf("connected\n");
		fflush(stdout);
		for (;;)
			pause();
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (want < 0 || got < want) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, (int)t);
		if (r == 0) {
			fprintf(stderr, "rawsock: no line within %ld ms\n", t);
			return 75;
		}
		n = read(fd, buf, sizeof buf);
		if (n <= 0)
			break;
		for (ssize_t k = 0; k < n; k++) {
			nn_buf_addc(&line, buf[k]);
			if (buf[k] == '\n') {
				fwrite(line.data, 1, line.len, stdout);
				nn_buf_reset(&line);
				if (++got == want)
					break;
			}
		}
	}
	nn_buf_release(&line);
	close(fd);
	return 0;
}
