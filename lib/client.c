/*
 * client — the caller's side of the control socket.  The identity used to
 * sign is, by default, the node's own key in $NUNET_HOME: after `nunet-node
 * init` a user can talk to their node with no further set-up.
 */
#include "client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "config.h"
#include "json.h"
#include "sock.h"
#include "util.h"

#define CAPS_MAX (1024 * 1024)

jv nn_client_caps_load(jv caps, const char *path, char *err)
{
	char e[NN_ERRLEN];
	size_t len;
	char *text = nn_read_file(path, CAPS_MAX, &len, e);
	jv t;
	if (!text) {
		jv_free(caps);
		nn_seterr(err, "%s", e);
		return jv_invalid();
	}
	t = nn_json_parse(text, len, e);
	free(text);
	if (jv_get_kind(caps) != JV_KIND_ARRAY) {
		jv_free(caps);
		caps = jv_array();
	}
	if (jv_get_kind(t) == JV_KIND_OBJECT)
		return jv_array_append(caps, t);
	if (jv_get_kind(t) == JV_KIND_ARRAY)
		return jv_array_concat(caps, t);
	jv_free(t);
	jv_free(caps);
	nn_seterr(err, "'%s' holds no capability token", path);
	return jv_invalid();
}

/* An environment variable's value, or NULL when unset or empty. */
static const char *env_of(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

int nn_client_open(struct nn_client *c, const char *home, const char *keyfile,
		   enum nn_code *code, char *err)
{
	char e[NN_ERRLEN];
	const char *sock = home ? NULL : env_of("NUNET_SOCKET");
	const char *capfile = home ? NULL : env_of("NUNET_CAP");
	const char *where;
	char *path;

	memset(c, 0, sizeof *c);
	c->fd = -1;
	c->ttl_ms = 60000;
	c->caps = jv_null();
	nn_lines_init(&c->in, 64 * 1024 * 1024);
	if (!keyfile && !home)
		keyfile = env_of("NUNET_KEY");
	/* with a socket and a key given, no home is needed */
	c->home = nn_home(home, e);
	if (!c->home && (!sock || !keyfile)) {
		*code = NN_E_BAD_FIELD;
		nn_seterr(err, "%s", e);
		goto fail;
	}
	path = keyfile ? nn_xstrdup(keyfile) : nn_home_file(c->home, "key");
	if (nn_key_load(&c->key, path, getenv("NUNET_PASSPHRASE"), e) < 0) {
		free(path);
		*code = NN_E_BAD_FIELD;
		if (!keyfile && errno == ENOENT)
			nn_seterr(err, "no identity in '%s': run 'nunet-node init'", c->home);
		else
			nn_seterr(err, "%s", e);
		goto fail;
	}
	free(path);
	if (capfile) {
		c->caps = nn_client_caps_load(c->caps, capfile, e);
		if (!jv_is_valid(c->caps)) {
			c->caps = jv_null();
			*code = NN_E_BAD_FIELD;
			nn_seterr(err, "NUNET_CAP: %s", e);
			goto fail;
		}
	}
	path = sock ? nn_xstrdup(sock) : nn_home_file(c->home, "node.sock");
	where = sock ? sock : c->home;
	c->fd = nn_sock_connect(path, e);
	if (c->fd < 0) {
		*code = NN_E_UNAVAILABLE;
		if (errno == ENOENT || errno == ECONNREFUSED)
			nn_seterr(err, "no node is running %s '%s' (is 'nunet-node run' started?)",
				  sock ? "at" : "in", where);
		else
			nn_seterr(err, "%s", e);
		free(path);
		goto fail;
	}
	free(path);
	return 0;
fail:	/* nothing is left to close */
	nn_client_close(c);
	return -1;
}

void nn_client_close(struct nn_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	nn_lines_release(&c->in);
	nn_key_clear(&c->key);
	jv_free(c->caps);
	c->caps = jv_null();
	free(c->home);
	c->home = NULL;
}

static int has_caps(const struct nn_client *c)
{
	return jv_get_kind(c->caps) == JV_KIND_ARRAY && jv_array_length(jv_copy(c->caps)) > 0;
}

/* The fields of nn_env_new's envelope, to write a request without it. */
static void request_head(struct nn_client *c, const char *to, const char *be, char id[65],
			 struct nn_env_head *h)
{
	nn_random_id(id);
	memset(h, 0, sizeof *h);
	h->type = "msg";
	h->id = id;
	h->from = c->key.did;
	h->to = to ? to : "local";
	h->be = be;
	h->trace = c->trace[0] ? c->trace : NULL;
	h->ts = nn_now_ms();
	h->exp = h->ts + c->ttl_ms;
}

int nn_client_request(struct nn_client *c, const char *to, const char *be, jv body,
		      struct nn_buf *out, char id[65], char *err)
{
	jv env;
	const char *s;
	if (!has_caps(c)) {
		struct nn_env_head h;
		request_head(c, to, be, id, &h);
		return nn_env_line(&h, body, &c->key, out, err);
	}
	env = nn_env_new("msg", c->key.did, to ? to : "local", be, body, c->ttl_ms);
	if (c->trace[0])
		env = jv_object_set(env, jv_string("trace"), jv_string(c->trace));
	env = jv_object_set(env, jv_string("cap"), jv_copy(c->caps));
	s = nn_env_str(env, "id");
	snprintf(id, 65, "%s", s ? s : "");
	return nn_env_sign_line(env, &c->key, out, err);
}

int nn_client_request_text(struct nn_client *c, const char *to, const char *be, const char *body,
			   size_t blen, struct nn_buf *out, char id[65], char *err)
{
	struct nn_env_head h;
	if (has_caps(c)) {
		jv b = nn_json_parse(body, blen, err);
		if (!jv_is_valid(b))
			return -1;
		return nn_client_request(c, to, be, b, out, id, err);
	}
	request_head(c, to, be, id, &h);
	return nn_env_line_text(&h, body, blen, &c->key, out, err);
}

enum nn_code nn_client_check(struct nn_client *c, jv env, char *err)
{
	static const struct nn_env_limits lim = NN_ENV_LIMITS_DEFAULT;
	enum nn_code code = nn_env_verify(env, &lim, nn_now_ms(), err);
	const char *to, *type;
	if (code != NN_OK)
		return code;
	type = nn_env_str(env, "type");
	to = nn_env_str(env, "to");
	if (strcmp(type, "reply") && strcmp(type, "error")) {
		nn_seterr(err, "the node answered with a %s envelope", type);
		return NN_E_BAD_FIELD;
	}
	/* an error about an unreadable line cannot name us: the node says "local" */
	if (strcmp(to, c->key.did) != 0 &&
	    !(!strcmp(type, "error") && !nn_json_has(env, "re") && !strcmp(to, "local"))) {
		nn_seterr(err, "the answer is addressed to %.80s, not to us", to);
		return NN_E_BAD_FIELD;
	}
	return NN_OK;
}

jv nn_client_call(struct nn_client *c, const char *to, const char *be, jv body,
		  int timeout_ms, enum nn_code *code, char *err)
{
	struct nn_buf out = NN_BUF_INIT;
	char id[65], e[NN_ERRLEN];
	int64_t deadline = nn_mono_ms() + timeout_ms;
	int jcode;
	jv env;

	if (nn_client_request(c, to, be, body, &out, id, e) < 0) {
		nn_buf_release(&out);
		*code = NN_E_BAD_FIELD;
		nn_seterr(err, "%s", e);
		return jv_invalid();
	}
	if (nn_sock_send_all(c->fd, out.data, out.len) < 0) {
		nn_buf_release(&out);
		*code = NN_E_UNAVAILABLE;
		nn_seterr(err, "cannot send to the node: %s", strerror(errno));
		return jv_invalid();
	}
	nn_buf_release(&out);
	for (;;) {
		int r = nn_jsonl_next(&c->in, &env, &jcode, e);
		if (r == NN_JSONL_VALUE) {
			const char *re = nn_env_str(env, "re");
			/* An error without re answers a line the node could not
			 * read: with one request outstanding, it is ours. */
			if ((re && !strcmp(re, id)) ||
			    (!re && !strcmp(nn_env_str(env, "type") ? nn_env_str(env, "type") : "", "error"))) {
				*code = nn_client_check(c, env, e);
				if (*code == NN_OK)
					return env;
				jv_free(env);
				nn_seterr(err, "bad answer from the node: %s", e);
				return jv_invalid();
			}
			jv_free(env);
			continue;
		}
		if (r == NN_JSONL_ERROR)
			continue;
		int64_t left = deadline - nn_mono_ms();
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		if (left <= 0) {
			*code = NN_E_TIMEOUT;
			nn_seterr(err, "no answer from the node within %d ms", timeout_ms);
			return jv_invalid();
		}
		if (poll(&p, 1, (int)left) < 0 && errno != EINTR) {
			*code = NN_E_UNAVAILABLE;
			nn_seterr(err, "poll: %s", strerror(errno));
			return jv_invalid();
		}
		if (p.revents) {
			ssize_t n = nn_lines_read_fd(&c->in, c->fd);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
				*code = NN_E_UNAVAILABLE;
				nn_seterr(err, "the node closed the connection");
				return jv_invalid();
			}
		}
	}
}
