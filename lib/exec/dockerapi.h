/*
 * dockerapi — a small client for the Docker Engine REST API (v1.41) over
 * its unix socket, through libcurl (CURLOPT_UNIX_SOCKET_PATH).  It speaks
 * only the calls the docker executor needs: ping, engine info, image
 * inspect, container create/start/inspect/kill/remove/list, one-shot stats,
 * and logs with the multiplexed stdout/stderr stream decoded.  The same
 * calls work against Podman's Docker-compatible service.
 *
 * The engine is named like DOCKER_HOST: "unix:///run/docker.sock" or a bare
 * absolute path; NULL means $DOCKER_HOST, else unix:///var/run/docker.sock.
 * Other schemes (tcp://, ssh://) are refused.
 *
 * Every call returns 0 (or a documented positive value) on success and -1
 * with one sentence in err; an answer of the engine with an HTTP error
 * carries the engine's own "message" ("docker: No such image: x:latest").
 * Responses are read into capped buffers (NN_DOCKER_RESPONSE_MAX).
 */
#ifndef NN_DOCKERAPI_H
#define NN_DOCKERAPI_H

#include <stdint.h>
#include <jv.h>
#include "util.h"

#define NN_DOCKER_API "/v1.41"
#define NN_DOCKER_DEFAULT_HOST "unix:///var/run/docker.sock"
#define NN_DOCKER_RESPONSE_MAX (8 * 1024 * 1024)

struct nn_docker {
	char *host;		/* as given or found ("unix:///…"), for messages */
	char *socket;		/* the socket path */
	void *curl;		/* CURL *, made on first use */
	long timeout_ms;	/* per request; 0: none (default 30000) */
	long status;		/* HTTP status of the last request, 0 if none */
};

/* Resolve host (see above) and set up d; nothing is connected yet.  -1 +
 * err for a host that is not a unix socket. */
int nn_docker_init(struct nn_docker *d, const char *host, char *err);
void nn_docker_release(struct nn_docker *d);

/* The engine named by $DOCKER_HOST (or the default), as a new string. */
char *nn_docker_default_host(void);

/*
 * One request: method and path (below the API version prefix, with its
 * query string), an optional JSON body (consumed; jv_invalid() for none).
 * On a 2xx answer *out (if not NULL) gets the parsed JSON body, or
 * jv_null() when the body is empty or not JSON; returns the HTTP status.
 * Other answers return -1 with err; d->status tells which (404 …).
 */
int nn_docker_call(struct nn_docker *d, const char *method, const char *path, jv body,
		   jv *out, char *err);

/* GET /_ping: 0 when the engine answers "OK". */
int nn_docker_ping(struct nn_docker *d, char *err);

/* GET /images/NAME/json: 1 present (*out = the inspect document when out
 * is not NULL), 0 absent, -1 error. */
int nn_docker_image_exists(struct nn_docker *d, const char *image, jv *out, char *err);

/* POST /containers/create?name=NAME (name may be NULL); config consumed.
 * The new container's id goes to id (65 bytes). */
int nn_docker_create(struct nn_docker *d, const char *name, jv config, char id[65],
		     char *err);
int nn_docker_start(struct nn_docker *d, const char *id, char *err);
/* GET /containers/ID/json into *out.  0, or -1 (d->status 404: gone). */
int nn_docker_inspect(struct nn_docker *d, const char *id, jv *out, char *err);
/* POST /containers/ID/kill?signal=N.  A container that is not running is
 * not an error. */
int nn_docker_kill(struct nn_docker *d, const char *id, int sig, char *err);
/* DELETE /containers/ID?force=1&v=1.  A container already gone is fine. */
int nn_docker_remove(struct nn_docker *d, const char *id, char *err);
/* GET /containers/json?all=1 filtered by labels ("k=v" strings, NULL-
 * terminated): *out is the array of summaries. */
int nn_docker_list(struct nn_docker *d, const char *const *labels, jv *out, char *err);
/* GET /containers/ID/stats?stream=0&one-shot=1 into *out. */
int nn_docker_stats(struct nn_docker *d, const char *id, jv *out, char *err);

/*
 * The multiplexed log stream of a container without a TTY: frames of an
 * 8-byte header (stream 1 stdout / 2 stderr, three zero bytes, a 32-bit
 * big-endian length) and a payload.  The decoder takes bytes in pieces of
 * any size and writes each payload to out_fd or err_fd.  Stream 0 (stdin)
 * goes to out_fd; any other stream number is corrupt input.
 */
struct nn_docker_demux {
	unsigned char hdr[8];
	size_t hlen;		/* header bytes held */
	uint32_t left;		/* payload bytes still to come */
	int stream;		/* of the current frame */
	int out_fd, err_fd;
	int bad;		/* corrupt input or a failed write seen */
};
void nn_docker_demux_init(struct nn_docker_demux *m, int out_fd, int err_fd);
/* Feed n bytes; -1 (and m->bad) on corrupt framing or a write error. */
int nn_docker_demux_feed(struct nn_docker_demux *m, const char *p, size_t n);

/* GET /containers/ID/logs?stdout=1&stderr=1[&follow=1]: decoded to the two
 * fds until the stream ends (with follow: when the container stops).  No
 * request timeout applies while following. */
int nn_docker_logs(struct nn_docker *d, const char *id, int follow, int out_fd, int err_fd,
		   char *err);

#endif
