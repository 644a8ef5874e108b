/*
 * swarm — peer connections, membership, routing and broadcast for the
 * node (see swarm.h).  One struct swarm per node; one struct pconn per TCP
 * connection, each with its nn_shs_conn and a loop watch; one struct member
 * per node known.  A single tick timer drives handshake deadlines, the
 * SWIM probe round, suspicion timeouts and the expiry of routing entries.
 *
 * Probing: every probe period the next live member in a shuffled round
 * robin gets a ping (dialed first if no connection is open).  Without an
 * ack by half the period, k=3 other members are asked to ping it for us
 * (ping-req); without any ack by the end of the period it becomes suspect,
 * and a suspect that does not refute (a higher incarnation) within the
 * suspicion timeout is declared dead.  Each change is piggybacked on the
 * following pings and acks a few times (about 3 log2 n), and a newly
 * opened connection starts with a hello that lists every member known.
 */
#include "swarm.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>
#include "captoken.h"
#include "json.h"
#include "log.h"
#include "shs.h"

#define ADDR_MAX 80
#define OUT_MAX (16 * 1024 * 1024)
#define TICK_MS 50
#define PROBE_K 3
#define MAX_UPDATES 12
#define PENDING_MAX 65536
#define REVIVE_PERIODS 2	/* a dead member is probed again every n x this periods */

enum { ALIVE = 0, SUSPECT = 1, DEAD = 2 };
static const char *const state_names[] = { "alive", "suspect", "dead" };

struct swarm;

struct pconn {
	struct swarm *s;
	unsigned long no;
	int fd;
	struct nn_watch *w;
	struct nn_shs_conn sc;
	int outgoing, connecting, open, hello_sent, dead;
	int64_t deadline;		/* handshake deadline, monotonic ms */
	char addr[ADDR_MAX];		/* where the socket goes */
	char did[NN_DID_MAX];		/* peer (dialed: known; accepted: once open) */
	struct member *m;
	struct pconn *next;
	/* lines held back by an artificial delay (NUNET_SWARM_DELAY) */
	int64_t delay_ms;		/* -1: not looked up yet */
	struct held *held, **held_tail;
};

struct held {
	int64_t due;			/* monotonic ms */
	size_t len;
	struct held *next;
	char line[];
};

struct member {
	char did[NN_DID_MAX];
	char addr[ADDR_MAX];
	char via[NN_DID_MAX];		/* a peer that vouched for it */
	int state;
	int64_t inc;
	int64_t suspect_since;		/* monotonic ms */
	int64_t last_dial;
	int64_t revived;		/* monotonic ms of the last probe while dead */
	int64_t db_written;
	double rtt_ms;			/* smoothed direct ping round trip, <0: none */
	int gossip;			/* piggyback this many more times */
	int probe_now;			/* lost its connection: probe next */
	int announced;			/* "joined" was logged */
	/* the probe in flight */
	int probing, indirect_sent;
	uint32_t probe_seq;
	int64_t probe_sent;		/* monotonic ms */
	int64_t probe_sent_us;
	unsigned long conn_no;		/* the connection it is reached by (0: none) */
	struct member *next;
};

/* Where an answer goes back to: a control-socket client, a connection, or
 * the node itself (its own requests). */
enum { BACK_CONN, BACK_CLIENT, BACK_SELF };
struct pending {
	char id[65];
	int to_client;		/* BACK_* */
	unsigned long no;
	int64_t exp;			/* wall-clock ms */
	int multi;			/* broadcast: many answers */
	int next;			/* the next in its hash chain, -1: none */
};

/* A ping we send on behalf of a ping-req. */
struct relay_probe {
	uint32_t seq, orig_seq;
	unsigned long conn_no;		/* the requester's connection */
	char target[NN_DID_MAX];
	int64_t expires;
};

struct swarm {
	struct nn_node *n;
	struct nn_swarm_opts o;
	uint8_t netkey[32];
	int private_key;
	int lfd;
	struct nn_watch *lw, *tick;
	char addr[ADDR_MAX];		/* what we advertise ("" if not listening) */
	int64_t inc;			/* our incarnation */
	int self_gossip;
	struct pconn *conns;
	unsigned long conn_seq;
	struct member *members;
	size_t nmembers;
	uint32_t seq;
	int64_t next_probe, next_revive;
	struct pending *pend;
	size_t npend, cappend;
	int *pbucket;			/* pend indexed by id: chain heads, -1 empty */
	size_t nbucket;
	struct relay_probe relays[64];
	struct nn_replay *bc_seen;
	char **boot;
	size_t nboot;
	sqlite3_stmt *upsert;
	struct nn_buf line;		/* an answer passed on to a client */
};

static int64_t mono_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

const char *const nn_swarm_schema[] = {
	"CREATE TABLE swarm_edges ("
	" src TEXT NOT NULL,"		/* this node */
	" dst TEXT NOT NULL,"		/* the peer */
	" addr TEXT NOT NULL DEFAULT '',"
	" state TEXT NOT NULL,"		/* alive | suspect | dead */
	" incarnation INTEGER NOT NULL DEFAULT 0,"
	" rtt_ms REAL,"
	" direct INTEGER NOT NULL DEFAULT 0,"	/* a connection is open */
	" via TEXT,"
	" updated INTEGER NOT NULL,"
	" PRIMARY KEY (src, dst));",
	/* capability tokens this home issued, and revocations */
	"CREATE TABLE cap_tokens ("
	" nonce TEXT PRIMARY KEY, iss TEXT NOT NULL, aud TEXT NOT NULL, cap TEXT NOT NULL,"
	" exp INTEGER NOT NULL, depth INTEGER NOT NULL, token TEXT NOT NULL, created INTEGER NOT NULL);"
	"CREATE TABLE cap_revoked (nonce TEXT PRIMARY KEY, revoked INTEGER NOT NULL);",
	NULL
};

/* ---- addresses and keys ---- */

int nn_swarm_parse_addr(const char *s, char *host, size_t cap, int *port, char *err)
{
	const char *colon, *h = s;
	size_t hl;
	char *end;
	long p;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':')
			return nn_seterr(err, "'%s': expected [ADDRESS]:PORT", s);
		h = s + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return nn_seterr(err, "'%s': expected HOST:PORT", s);
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= cap)
		return nn_seterr(err, "'%s': bad host", s);
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (!colon[1] || *end || errno || p < 0 || p > 65535)
		return nn_seterr(err, "'%s': bad port", s);
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (int)p;
	return 0;
}

int nn_swarm_key(const char *home, uint8_t key[32], int *private_key, char *err)
{
	char *path = nn_home_file(home, "swarm.key");
	struct stat st;
	int r = 0;
	if (stat(path, &st) == 0) {
		r = nn_shs_netkey_load(path, key, err);
		*private_key = 1;
	} else {
		memcpy(key, nn_shs_public_netkey, 32);
		*private_key = 0;
	}
	free(path);
	return r;
}

static void fmt_addr(char *out, size_t cap, const struct sockaddr_storage *ss)
{
	char h[INET6_ADDRSTRLEN];
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)ss;
		inet_ntop(AF_INET6, &a->sin6_addr, h, sizeof h);
		snprintf(out, cap, "[%s]:%d", h, ntohs(a->sin6_port));
	} else {
		const struct sockaddr_in *a = (const void *)ss;
		inet_ntop(AF_INET, &a->sin_addr, h, sizeof h);
		snprintf(out, cap, "%s:%d", h, ntohs(a->sin_port));
	}
}

static int resolve(const char *addr, int passive, struct sockaddr_storage *ss, socklen_t *len, char *err)
{
	char host[ADDR_MAX], port[8];
	struct addrinfo hints, *res;
	int p, r;
	if (nn_swarm_parse_addr(addr, host, sizeof host, &p, err) < 0)
		return -1;
	snprintf(port, sizeof port, "%d", p);
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = passive ? AI_PASSIVE : 0;
	if ((r = getaddrinfo(host, port, &hints, &res)) != 0)
		return nn_seterr(err, "'%s': %s", addr, gai_strerror(r));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* ---- members ---- */

static struct member *member_find(struct swarm *s, const char *did, size_t len)
{
	for (struct member *m = s->members; m; m = m->next)
		if (strlen(m->did) == len && !memcmp(m->did, did, len))
			return m;
	return NULL;
}

static int gossip_count(struct swarm *s)
{
	return 3 * (int)ceil(log2((double)s->nmembers + 2)) + 2;
}

static void member_save(struct swarm *s, struct member *m)
{
	sqlite3_stmt *st = s->upsert;
	if (!st)
		return;
	sqlite3_reset(st);
	sqlite3_bind_text(st, 1, nn_node_did(s->n), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, m->did, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, m->addr, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, state_names[m->state], -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, m->inc);
	if (m->rtt_ms >= 0)
		sqlite3_bind_double(st, 6, m->rtt_ms);
	else
		sqlite3_bind_null(st, 6);
	sqlite3_bind_int(st, 7, m->conn_no != 0);
	if (m->via[0])
		sqlite3_bind_text(st, 8, m->via, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 8);
	sqlite3_bind_int64(st, 9, nn_now_ms());
	if (sqlite3_step(st) != SQLITE_DONE)
		nn_warn("swarm: cannot store peer %s: %s", m->did,
			sqlite3_errmsg(nn_node_db(s->n)->h));
	sqlite3_reset(st);
	m->db_written = nn_mono_ms();
}

static struct member *member_add(struct swarm *s, const char *did, const char *addr)
{
	struct member *m = nn_xcalloc(1, sizeof *m);
	snprintf(m->did, sizeof m->did, "%s", did);
	snprintf(m->addr, sizeof m->addr, "%s", addr ? addr : "");
	m->rtt_ms = -1;
	m->state = ALIVE;
	m->probe_now = 1;
	m->next = s->members;
	s->members = m;
	s->nmembers++;
	return m;
}

static void member_event(struct swarm *s, struct member *m, const char *kind)
{
	jv b = jv_object();
	b = jv_object_set(b, jv_string("did"), jv_string(m->did));
	b = jv_object_set(b, jv_string("addr"), jv_string(m->addr));
	b = jv_object_set(b, jv_string("incarnation"), jv_number((double)m->inc));
	nn_node_event(s->n, kind, b);
}

static void member_set_state(struct swarm *s, struct member *m, int st, int64_t inc)
{
	int was = m->state;
	m->state = st;
	m->inc = inc;
	m->gossip = gossip_count(s);
	if (st == SUSPECT && was != SUSPECT)
		m->suspect_since = nn_mono_ms();
	if (st == ALIVE && !m->announced) {
		m->announced = 1;
		nn_info("swarm: peer %s joined (%s)", m->did, m->addr[0] ? m->addr : "no address");
		member_event(s, m, "peer.join");
	} else if (st != was) {
		if (st == DEAD) {
			nn_info("swarm: peer %s is dead", m->did);
			member_event(s, m, "peer.dead");
		} else if (st == SUSPECT) {
			nn_info("swarm: peer %s is suspect", m->did);
		} else {
			nn_info("swarm: peer %s is alive (%s)", m->did, m->addr[0] ? m->addr : "no address");
			member_event(s, m, "peer.alive");
		}
	}
	member_save(s, m);
}

/* ---- connections ---- */

static struct pconn *conn_find(struct swarm *s, unsigned long no)
{
	if (!no)
		return NULL;
	for (struct pconn *c = s->conns; c; c = c->next)
		if (c->no == no)
			return c;
	return NULL;
}

static const char *conn_name(struct pconn *c, char *buf, size_t cap)
{
	if (c->did[0])
		snprintf(buf, cap, "peer %s@%s", c->did, c->addr);
	else
		snprintf(buf, cap, "peer %s", c->addr);
	return buf;
}

static void conn_update_events(struct pconn *c)
{
	uint32_t ev = EPOLLIN | EPOLLRDHUP;
	if (c->connecting || c->sc.out.len)
		ev |= EPOLLOUT;
	nn_loop_fd_events(nn_node_loop(c->s->n), c->w, ev);
}

static void conn_flush(struct pconn *c)
{
	while (c->sc.out.len && !c->connecting && !c->dead) {
		ssize_t w = send(c->fd, c->sc.out.data, c->sc.out.len, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (w < 0) {
			char nb[200];
			nn_debug("swarm: %s: send: %s", conn_name(c, nb, sizeof nb), strerror(errno));
			c->dead = 1;
			break;
		}
		nn_buf_consume(&c->sc.out, (size_t)w);
	}
}

/*
 * An artificial delay for tests of distance (t/8101): NUNET_SWARM_DELAY is
 * "DID=MS,DID=MS…"; every line this node sends to such a peer waits MS
 * (rounded up to the 50 ms tick) before it is written, so round trips
 * measured to it, and everything else sent to it, really take longer.
 */
static int64_t delay_for(const char *did)
{
	const char *e = getenv("NUNET_SWARM_DELAY"), *p;
	size_t dl = strlen(did);
	if (!e || !dl)
		return 0;
	for (p = e; (p = strstr(p, did)); p += dl)
		if ((p == e || p[-1] == ',') && p[dl] == '=')
			return atoll(p + dl + 1);
	return 0;
}

static void held_flush(struct pconn *c, int64_t now)
{
	char err[NN_ERRLEN];
	while (c->held && c->held->due <= now) {
		struct held *h = c->held;
		c->held = h->next;
		if (!c->held)
			c->held_tail = &c->held;
		if (!c->dead && nn_shs_conn_send(&c->sc, h->line, h->len, err) < 0)
			nn_warn("swarm: dropped a delayed line: %s", err);
		free(h);
	}
}

/* Queue one line (without its newline) on c; 0 or -1 (logged). */
static int conn_send(struct pconn *c, const char *line, size_t len)
{
	char err[NN_ERRLEN], nb[200];
	if (c->dead)
		return -1;
	if (len && line[len - 1] == '\n')
		len--;
	if (c->delay_ms < 0 && c->did[0])
		c->delay_ms = delay_for(c->did);
	if (c->delay_ms > 0) {
		struct held *h = nn_xmalloc(sizeof *h + len + 1);
		h->due = nn_mono_ms() + c->delay_ms;
		h->len = len;
		h->next = NULL;
		memcpy(h->line, line, len);
		*c->held_tail = h;
		c->held_tail = &h->next;
		return 0;
	}
	if (nn_shs_conn_send(&c->sc, line, len, err) < 0) {
		nn_warn("swarm: %s: dropped a line: %s", conn_name(c, nb, sizeof nb), err);
		return -1;
	}
	return 0;
}

static void conn_send_jv(struct pconn *c, jv v)
{
	char *t = nn_json_dump(v);
	jv_free(v);
	conn_send(c, t, strlen(t));
	free(t);
}

/* The open connection a member is reached by, if any. */
static struct pconn *member_conn(struct swarm *s, struct member *m)
{
	struct pconn *c = conn_find(s, m->conn_no);
	if (c && c->open && !c->dead)
		return c;
	m->conn_no = 0;
	for (c = s->conns; c; c = c->next)
		if (c->open && !c->dead && !strcmp(c->did, m->did)) {
			m->conn_no = c->no;
			return c;
		}
	return NULL;
}

/* A connection to m being dialed (connecting or in its handshake)? */
static int dialing(struct swarm *s, struct member *m)
{
	for (struct pconn *c = s->conns; c; c = c->next)
		if (c->outgoing && !c->open && !c->dead && !strcmp(c->did, m->did))
			return 1;
	return 0;
}

static void conn_free(struct pconn *c)
{
	struct swarm *s = c->s;
	struct pconn **pp;
	for (pp = &s->conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	if (c->w)
		nn_loop_remove(nn_node_loop(s->n), c->w);
	if (c->fd >= 0)
		close(c->fd);
	nn_shs_conn_release(&c->sc);
	while (c->held) {
		struct held *h = c->held;
		c->held = h->next;
		free(h);
	}
	if (c->m && c->outgoing && !c->open && c->m->probing) {
		/* the dial for a probe failed: go indirect at once */
		c->m->probe_sent = nn_mono_ms() - s->o.probe_ms / 2;
		c->m->indirect_sent = 0;
	}
	if (c->m && c->m->conn_no == c->no) {
		c->m->conn_no = 0;
		if (!member_conn(s, c->m)) {
			c->m->probe_now = 1;	/* find out soon whether it is gone */
			member_save(s, c->m);
		}
	}
	free(c);
}

/* A handshake that failed is a refusal: an event as well as a warning. */
static void handshake_refused(struct pconn *c, const char *why)
{
	jv f = jv_object();
	if (c->did[0])
		f = jv_object_set(f, jv_string("peer"), jv_string(c->did));
	f = jv_object_set(f, jv_string("addr"), jv_string(c->addr));
	f = jv_object_set(f, jv_string("dir"), jv_string(c->outgoing ? "out" : "in"));
	f = jv_object_set(f, jv_string("code"), jv_string("handshake"));
	f = jv_object_set(f, jv_string("message"), jv_string(why));
	nn_node_emit(c->s->n, NN_LOG_WARN, "security.refused", NULL, f);
}

static void conn_fail(struct pconn *c, const char *why)
{
	char nb[200];
	if (c->open) {
		nn_info("swarm: %s: connection lost: %s", conn_name(c, nb, sizeof nb), why);
	} else if (c->connecting) {
		nn_debug("swarm: %s: cannot connect: %s", conn_name(c, nb, sizeof nb), why);
	} else {
		nn_warn("swarm: %s: %s", conn_name(c, nb, sizeof nb), why);
		handshake_refused(c, why);
	}
	conn_free(c);
}

static void on_conn(struct nn_loop *l, int fd, uint32_t events, void *arg);

static struct pconn *conn_new(struct swarm *s, int fd, int outgoing, const char *addr, char *err)
{
	struct pconn *c = nn_xcalloc(1, sizeof *c);
	c->s = s;
	c->fd = fd;
	c->no = ++s->conn_seq;
	c->outgoing = outgoing;
	c->delay_ms = -1;
	c->held_tail = &c->held;
	c->deadline = nn_mono_ms() + s->o.handshake_ms;
	snprintf(c->addr, sizeof c->addr, "%s", addr);
	c->w = nn_loop_fd(nn_node_loop(s->n), fd, EPOLLIN | EPOLLRDHUP | (outgoing ? EPOLLOUT : 0),
			  on_conn, c, err);
	if (!c->w) {
		free(c);
		return NULL;
	}
	c->next = s->conns;
	s->conns = c;
	return c;
}

static int dial(struct swarm *s, struct member *m)
{
	char err[NN_ERRLEN];
	struct sockaddr_storage ss;
	socklen_t len;
	uint8_t pk[32];
	struct pconn *c;
	int fd, one = 1;

	m->last_dial = nn_mono_ms();
	if (!m->addr[0] || nn_did_to_pk(m->did, pk, err) < 0)
		return -1;
	for (c = s->conns; c; c = c->next)
		if (c->outgoing && !c->open && !strcmp(c->did, m->did))
			return 0;	/* already dialing */
	if (resolve(m->addr, 0, &ss, &len, err) < 0) {
		nn_debug("swarm: peer %s: %s", m->did, err);
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		nn_warn("swarm: socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (struct sockaddr *)&ss, len) < 0 && errno != EINPROGRESS) {
		nn_debug("swarm: peer %s@%s: cannot connect: %s", m->did, m->addr, strerror(errno));
		close(fd);
		return -1;
	}
	c = conn_new(s, fd, 1, m->addr, err);
	if (!c) {
		nn_warn("swarm: %s", err);
		close(fd);
		return -1;
	}
	c->connecting = 1;
	snprintf(c->did, sizeof c->did, "%s", m->did);
	c->m = m;
	nn_shs_conn_client_init(&c->sc, s->netkey, nn_node_key(s->n), pk,
				(size_t)nn_node_config(s->n)->max_line, OUT_MAX);
	return 0;
}

/* ---- membership lines ---- */

static jv member_update(struct member *m)
{
	jv u = jv_object();
	u = jv_object_set(u, jv_string("did"), jv_string(m->did));
	u = jv_object_set(u, jv_string("addr"), jv_string(m->addr));
	u = jv_object_set(u, jv_string("st"), jv_string(state_names[m->state]));
	u = jv_object_set(u, jv_string("inc"), jv_number((double)m->inc));
	return u;
}

static jv self_update(struct swarm *s)
{
	jv u = jv_object();
	u = jv_object_set(u, jv_string("did"), jv_string(nn_node_did(s->n)));
	u = jv_object_set(u, jv_string("addr"), jv_string(s->addr));
	u = jv_object_set(u, jv_string("st"), jv_string("alive"));
	u = jv_object_set(u, jv_string("inc"), jv_number((double)s->inc));
	return u;
}

/* Up to MAX_UPDATES piggybacked updates, freshest first-come. */
static jv piggyback(struct swarm *s)
{
	jv a = jv_array();
	int k = 0;
	if (s->self_gossip > 0) {
		a = jv_array_append(a, self_update(s));
		s->self_gossip--;
		k++;
	}
	for (struct member *m = s->members; m && k < MAX_UPDATES; m = m->next)
		if (m->gossip > 0) {
			a = jv_array_append(a, member_update(m));
			m->gossip--;
			k++;
		}
	return a;
}

static jv swim_msg(const char *type, uint32_t seq)
{
	jv v = jv_object_set(jv_object(), jv_string("swim"), jv_string(type));
	return jv_object_set(v, jv_string("seq"), jv_number(seq));
}

static void send_hello(struct swarm *s, struct pconn *c)
{
	jv v = jv_object_set(jv_object(), jv_string("swim"), jv_string("hello"));
	jv all = jv_array();
	v = jv_object_set(v, jv_string("addr"), jv_string(s->addr));
	v = jv_object_set(v, jv_string("inc"), jv_number((double)s->inc));
	for (struct member *m = s->members; m; m = m->next)
		if (m->state != DEAD && strcmp(m->did, c->did) != 0)
			all = jv_array_append(all, member_update(m));
	v = jv_object_set(v, jv_string("members"), all);
	conn_send_jv(c, v);
	c->hello_sent = 1;
}

/* Apply one update heard from peer `via` (borrows u). */
static void apply_update(struct swarm *s, jv u, const char *via)
{
	const char *did, *addr = "", *st;
	int64_t inc;
	int state;
	struct member *m;
	char e[NN_ERRLEN];
	uint8_t pk[32];

	if (nn_json_get_str(u, "did", &did, NULL) < 0 || nn_json_get_str(u, "st", &st, NULL) < 0 ||
	    nn_json_get_int(u, "inc", &inc, NULL) < 0 || nn_did_to_pk(did, pk, e) < 0 ||
	    strlen(did) >= NN_DID_MAX)
		return;
	nn_json_get_str(u, "addr", &addr, NULL);
	if (strlen(addr) >= ADDR_MAX)
		addr = "";
	if (!strcmp(st, "alive"))
		state = ALIVE;
	else if (!strcmp(st, "suspect"))
		state = SUSPECT;
	else if (!strcmp(st, "dead"))
		state = DEAD;
	else
		return;
	if (!strcmp(did, nn_node_did(s->n))) {
		if (state != ALIVE && inc >= s->inc) {
			int64_t now = nn_now_ms();
			s->inc = now > inc ? now : inc + 1;	/* refute */
			s->self_gossip = gossip_count(s);
			nn_info("swarm: refuting a rumour that this node is %s", st);
		}
		return;
	}
	m = member_find(s, did, strlen(did));
	if (!m) {
		if (state == DEAD)
			return;
		m = member_add(s, did, addr);
		snprintf(m->via, sizeof m->via, "%s", via);
		m->state = DEAD;	/* so the change below is announced */
		member_set_state(s, m, state, inc);
		return;
	}
	if (addr[0] && !m->addr[0])
		snprintf(m->addr, sizeof m->addr, "%s", addr);
	switch (state) {
	case ALIVE:
		if (inc > m->inc) {
			if (!member_conn(s, m))
				snprintf(m->via, sizeof m->via, "%s", via);
			if (addr[0])
				snprintf(m->addr, sizeof m->addr, "%s", addr);
			member_set_state(s, m, ALIVE, inc);
		}
		break;
	case SUSPECT:
		if ((m->state == ALIVE && inc >= m->inc) || (m->state == SUSPECT && inc > m->inc))
			member_set_state(s, m, SUSPECT, inc);
		break;
	case DEAD:
		if (m->state != DEAD && inc >= m->inc)
			member_set_state(s, m, DEAD, inc);
		break;
	}
}

static void apply_updates(struct swarm *s, jv msg, const char *key, const char *via)
{
	jv a = jv_object_get(jv_copy(msg), jv_string(key));
	if (jv_get_kind(a) == JV_KIND_ARRAY) {
		int k = 0;
		jv_array_foreach(a, i, u) {
			if (k++ < 4096 && jv_get_kind(u) == JV_KIND_OBJECT)
				apply_update(s, u, via);
			jv_free(u);
		}
	}
	jv_free(a);
}

static void acked(struct swarm *s, struct member *m, uint32_t seq, int direct)
{
	if (!m || !m->probing || m->probe_seq != seq)
		return;
	m->probing = 0;
	if (direct) {
		int first = m->rtt_ms < 0;
		double rtt = (double)(mono_us() - m->probe_sent_us) / 1000.0;
		m->rtt_ms = first ? rtt : 0.8 * m->rtt_ms + 0.2 * rtt;
		if (first)
			m->db_written = 0;
	}
	if (m->state != ALIVE) {
		/* it answered: our suspicion was wrong (it will refute too) */
		member_set_state(s, m, ALIVE, m->inc);
		return;
	}
	if (nn_mono_ms() - m->db_written > 2000)
		member_save(s, m);
}

static void on_swim(struct swarm *s, struct pconn *c, jv msg, const char *type)
{
	int64_t seq = 0;
	nn_json_get_int(msg, "seq", &seq, NULL);
	if (!strcmp(type, "hello")) {
		const char *addr = "";
		int64_t inc = 0;
		struct member *m;
		nn_json_get_str(msg, "addr", &addr, NULL);
		nn_json_get_int(msg, "inc", &inc, NULL);
		m = member_find(s, c->did, strlen(c->did));
		if (!m) {
			m = member_add(s, c->did, "");
			m->inc = -1;
		}
		if (addr[0] && strlen(addr) < ADDR_MAX) {
			char host[ADDR_MAX];
			int port;
			if (nn_swarm_parse_addr(addr, host, sizeof host, &port, NULL) == 0 &&
			    (!strcmp(host, "0.0.0.0") || !strcmp(host, "::"))) {
				/* it listens everywhere: use the address it came from */
				struct sockaddr_storage ss;
				socklen_t len = sizeof ss;
				char seen[ADDR_MAX];
				if (getpeername(c->fd, (struct sockaddr *)&ss, &len) == 0) {
					fmt_addr(seen, sizeof seen, &ss);
					if (nn_swarm_parse_addr(seen, host, sizeof host, &port, NULL) == 0)
						snprintf(m->addr, sizeof m->addr, strchr(host, ':') ? "[%s]:%s" : "%s:%s",
							 host, strrchr(addr, ':') + 1);
				}
			} else {
				snprintf(m->addr, sizeof m->addr, "%s", addr);
			}
		}
		c->m = m;
		m->conn_no = c->no;
		m->via[0] = '\0';
		if (m->state != ALIVE || inc > m->inc)
			member_set_state(s, m, ALIVE, inc > m->inc ? inc : m->inc);
		else
			member_save(s, m);
		apply_updates(s, msg, "members", c->did);
		return;
	}
	apply_updates(s, msg, "upd", c->did);
	if (!strcmp(type, "ping")) {
		jv a = swim_msg("ack", (uint32_t)seq);
		conn_send_jv(c, jv_object_set(a, jv_string("upd"), piggyback(s)));
	} else if (!strcmp(type, "ack")) {
		const char *from = NULL;
		/* an answer to a ping we sent for a ping-req? */
		for (size_t i = 0; i < sizeof s->relays / sizeof *s->relays; i++) {
			struct relay_probe *r = &s->relays[i];
			if (r->expires && r->seq == (uint32_t)seq && !strcmp(r->target, c->did)) {
				struct pconn *rc = conn_find(s, r->conn_no);
				if (rc && rc->open) {
					jv a = swim_msg("ack", r->orig_seq);
					a = jv_object_set(a, jv_string("from"), jv_string(r->target));
					conn_send_jv(rc, jv_object_set(a, jv_string("upd"), piggyback(s)));
				}
				r->expires = 0;
				return;
			}
		}
		if (nn_json_get_str(msg, "from", &from, NULL) == 0)
			acked(s, member_find(s, from, strlen(from)), (uint32_t)seq, 0);
		else
			acked(s, c->m, (uint32_t)seq, 1);
	} else if (!strcmp(type, "preq")) {
		const char *target;
		struct member *t;
		struct pconn *tc;
		if (nn_json_get_str(msg, "target", &target, NULL) < 0)
			return;
		t = member_find(s, target, strlen(target));
		if (!t || !(tc = member_conn(s, t)))
			return;		/* we cannot reach it either: say nothing */
		for (size_t i = 0; i < sizeof s->relays / sizeof *s->relays; i++) {
			struct relay_probe *r = &s->relays[i];
			if (!r->expires || r->expires < nn_mono_ms()) {
				r->seq = ++s->seq;
				r->orig_seq = (uint32_t)seq;
				r->conn_no = c->no;
				snprintf(r->target, sizeof r->target, "%s", t->did);
				r->expires = nn_mono_ms() + s->o.probe_ms;
				conn_send_jv(tc, jv_object_set(swim_msg("ping", r->seq), jv_string("upd"),
							       piggyback(s)));
				break;
			}
		}
	}
}

/* ---- routing ---- */

/* The pending table: an array (removal moves the last entry into the
 * hole) with chained hash buckets over it, so that an answer finds its
 * request without comparing its id with every one in flight. */
static size_t pend_bucket(const struct swarm *s, const char *id)
{
	uint64_t h = 1469598103934665603ull;	/* FNV-1a */
	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 1099511628211ull;
	return (size_t)(h & (s->nbucket - 1));
}

static void pend_link(struct swarm *s, size_t i)
{
	size_t b = pend_bucket(s, s->pend[i].id);
	s->pend[i].next = s->pbucket[b];
	s->pbucket[b] = (int)i;
}

static void pend_unlink(struct swarm *s, size_t i)
{
	int *pp = &s->pbucket[pend_bucket(s, s->pend[i].id)];
	while (*pp != (int)i)
		pp = &s->pend[*pp].next;
	*pp = s->pend[i].next;
}

static void pend_remove(struct swarm *s, size_t i)
{
	size_t last = --s->npend;
	pend_unlink(s, i);
	if (i != last) {
		pend_unlink(s, last);
		s->pend[i] = s->pend[last];
		pend_link(s, i);
	}
}

/* The first entry (in array order, as a scan would find it) for id, or -1. */
static long pend_find(const struct swarm *s, const char *id)
{
	long best = -1;
	if (!s->nbucket)
		return -1;
	for (int i = s->pbucket[pend_bucket(s, id)]; i >= 0; i = s->pend[i].next)
		if (!strcmp(s->pend[i].id, id) && (best < 0 || i < best))
			best = i;
	return best;
}

static void pending_add(struct swarm *s, const char *id, int to_client, unsigned long no,
			int64_t exp, int multi)
{
	struct pending *p;
	if (s->npend >= PENDING_MAX)
		return;
	if (s->npend == s->cappend) {
		s->cappend = s->cappend ? 2 * s->cappend : 64;
		s->pend = nn_xrealloc(s->pend, s->cappend * sizeof *s->pend);
		s->nbucket = 2 * s->cappend;
		free(s->pbucket);
		s->pbucket = nn_xmalloc(s->nbucket * sizeof *s->pbucket);
		memset(s->pbucket, 0xff, s->nbucket * sizeof *s->pbucket);	/* -1 */
		for (size_t i = 0; i < s->npend; i++)
			pend_link(s, i);
	}
	p = &s->pend[s->npend++];
	snprintf(p->id, sizeof p->id, "%s", id);
	p->to_client = to_client;
	p->no = no;
	p->exp = exp;
	p->multi = multi;
	pend_link(s, s->npend - 1);
}

static void pending_expire(struct swarm *s)
{
	int64_t now = nn_now_ms();
	for (size_t i = 0; i < s->npend;)
		if (s->pend[i].exp < now)
			pend_remove(s, i);
		else
			i++;
}

/* An answer came back: pass its bytes on the way its request came.  env
 * may be an invalid jv (the hot path read re from the line as j): a jv is
 * built only for the node's own requests. */
static void route_answer(struct swarm *s, jv env, const struct nn_jscan *j, const char *re,
			 const char *line, size_t len)
{
	long i = pend_find(s, re);
	struct pending p;

	if (i < 0) {
		nn_debug("swarm: an answer to %s that nobody waits for", re);
		return;
	}
	p = s->pend[i];
	/* settle the table first: the node's callback may route more */
	if (!p.multi)
		pend_remove(s, (size_t)i);
	if (p.to_client == BACK_SELF) {
		jv v = jv_is_valid(env) ? jv_copy(env) : nn_jscan_jv(j);
		nn_node_answer_in(s->n, v);
		jv_free(v);
	} else if (p.to_client == BACK_CLIENT) {
		nn_buf_reset(&s->line);
		nn_buf_add(&s->line, line, len);
		nn_buf_addc(&s->line, '\n');
		nn_node_client_send(s->n, p.no, s->line.data, s->line.len);
	} else {
		struct pconn *c = conn_find(s, p.no);
		if (c && c->open)
			conn_send(c, line, len);
	}
}

static void bc_forward(struct swarm *s, jv env, int hops, unsigned long except)
{
	char *e = nn_json_dump(env);
	char *line = nn_xasprintf("{\"swim\":\"bc\",\"hops\":%d,\"env\":%s}", hops, e);
	for (struct pconn *c = s->conns; c; c = c->next)
		if (c->open && !c->dead && c->no != except)
			conn_send(c, line, strlen(line));
	free(line);
	free(e);
}

static int open_conns(struct swarm *s)
{
	int k = 0;
	for (struct pconn *c = s->conns; c; c = c->next)
		k += c->open && !c->dead;
	return k;
}

static int route(struct nn_node *n, jv env, const struct nn_env_head *h, const struct nn_origin *o,
		 void *arg, char *err)
{
	struct swarm *s = arg;
	const char *to = h->to, *be = h->be, *id = h->id;
	int64_t exp = h->exp;
	struct member *m;
	struct pconn *c;
	int to_client = o->kind == NN_ORIGIN_CLIENT ? BACK_CLIENT : o->kind == NN_ORIGIN_SELF ? BACK_SELF : BACK_CONN;
	unsigned long back = o->kind == NN_ORIGIN_PEER ? ((struct pconn *)o->arg)->no : o->client;

	if (!strcmp(to, "*")) {
		if (strncmp(be, "/broadcast/", 11) != 0)
			return nn_seterr(err, "only /broadcast/ behaviors go to every node, not '%.80s'", be);
		if (!open_conns(s))
			return nn_seterr(err, "no peers to broadcast to");
		nn_replay_check(s->bc_seen, h->from, id, exp, nn_now_ms());
		bc_forward(s, env, s->o.hops, 0);
		pending_add(s, id, to_client, back, exp, 1);
		return 0;
	}
	m = member_find(s, to, nn_did_len(to));
	if (!m)
		return nn_seterr(err, "no route to %.*s: not a known peer", (int)nn_did_len(to), to);
	if (m->state == DEAD)
		return nn_seterr(err, "no route to %s: the peer is dead", m->did);
	c = member_conn(s, m);
	if (!c && to_client && m->via[0]) {
		struct member *v = member_find(s, m->via, strlen(m->via));
		c = v ? member_conn(s, v) : NULL;	/* relay through a neighbour */
	}
	if (!c)
		return nn_seterr(err, "no route to %s: not connected%s", m->did,
				 to_client ? ", and no connected peer can relay" : "");
	if (o->line) {	/* as it came: it was parsed and checked, and the
			 * receiver verifies what was signed, not its spelling */
		if (conn_send(c, o->line, o->len) < 0)
			return nn_seterr(err, "cannot send to %s: its queue is full", m->did);
	} else {
		char *t = nn_json_dump(env);
		int r = conn_send(c, t, strlen(t));
		free(t);
		if (r < 0)
			return nn_seterr(err, "cannot send to %s: its queue is full", m->did);
	}
	pending_add(s, id, to_client, back, exp, 0);
	/* written when the loop turns (EPOLLOUT), with every other line
	 * routed to c meanwhile: one send for a batch, not one per line */
	conn_update_events(c);
	return 0;
}

/* ---- authority: capability tokens ---- */

static int cap_is_root(const char *did, void *arg)
{
	return nn_node_is_owner(arg, did);
}

static int cap_revoked(const char *nonce, void *arg)
{
	sqlite3 *h = nn_node_db(arg)->h;
	sqlite3_stmt *st;
	int r = 1;	/* when in doubt, refuse */
	if (sqlite3_prepare_v2(h, "SELECT 1 FROM cap_revoked WHERE nonce = ?", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, nonce, -1, SQLITE_STATIC);
		r = sqlite3_step(st) == SQLITE_ROW;
		sqlite3_finalize(st);
	}
	return r;
}

/* The node's authorizer: a non-owner needs a token in "cap" that covers the
 * behavior, granted to it, in a chain rooted in an owner of this node. */
static enum nn_code authorize(struct nn_node *n, jv env, const struct nn_origin *o, void *arg, char *err)
{
	struct nn_captoken_ctx ctx = { cap_is_root, cap_revoked, n };
	const char *from = nn_env_str(env, "from"), *be = nn_env_str(env, "be");
	jv caps = jv_object_get(jv_copy(env), jv_string("cap"));
	enum nn_code code = NN_E_UNAUTHORIZED;
	char e[NN_ERRLEN] = "";
	int k = 0;

	if (jv_get_kind(caps) == JV_KIND_ARRAY) {
		jv_array_foreach(caps, i, t) {
			if (code != NN_OK && k++ < 16)
				code = nn_captoken_check(t, from, be, nn_now_ms(), &ctx, e);
			jv_free(t);
		}
	}
	jv_free(caps);
	if (code == NN_OK)
		return NN_OK;
	if (e[0])
		nn_seterr(err, "%.80s may not invoke %.80s on this node: %s", from, be, e);
	else
		nn_seterr(err, "%.80s may not invoke %.80s on this node: no capability token", from, be);
	return code == NN_E_BAD_SIGNATURE || code == NN_E_EXPIRED ? NN_E_UNAUTHORIZED : code;
}

/* The origin of an envelope that came over a connection. */
static void origin_send(const struct nn_origin *o, const char *line, size_t len)
{
	conn_send(o->arg, line, len);
}

/*
 * The hot path for a line from a peer: an envelope the scanner reads (no
 * "swim" member) is routed, or delivered, without a jv where the full path
 * below would decide the same (lib/jscan.h).  1 when it was taken.
 */
static int on_line_scanned(struct swarm *s, struct pconn *c, const char *line, size_t len)
{
	struct nn_origin o = { NN_ORIGIN_PEER, 0, c->did, origin_send, c, line, len };
	const struct nn_jscan_member *t;
	struct nn_env_scan es;

	if (nn_env_scan(line, len, &es) < 0 || nn_jscan_get(&es.j, "swim"))
		return 0;
	t = nn_jscan_get(&es.j, "type");
	if (t && t->kind == NN_JSCAN_STRING && !t->plain)
		return 0;	/* jv may read it as "reply" */
	if (t && t->kind == NN_JSCAN_STRING && ((t->vlen == 7 && !memcmp(t->val, "\"reply\"", 7)) ||
						  (t->vlen == 7 && !memcmp(t->val, "\"error\"", 7)))) {
		const struct nn_jscan_member *r = nn_jscan_get(&es.j, "re");
		const char *re;
		if (!r || r->kind != NN_JSCAN_STRING)
			return 1;	/* no re: nobody to pass it to, as below */
		if (!(re = nn_env_scan_str(&es, "re")))
			return 0;
		route_answer(s, jv_invalid(), &es.j, re, line, len);
		return 1;
	}
	return nn_node_deliver_scanned(s->n, &es, &o);
}

static void on_line(struct swarm *s, struct pconn *c, const char *line, size_t len)
{
	char err[NN_ERRLEN];
	struct nn_origin o = { NN_ORIGIN_PEER, 0, c->did, origin_send, c, NULL, 0 };
	jv v, t;

	if (on_line_scanned(s, c, line, len))
		return;
	v = nn_json_parse(line, len, err);

	if (jv_get_kind(v) != JV_KIND_OBJECT) {
		/* valid JSON of another kind leaves err unset */
		enum nn_code code = jv_is_valid(v) ? NN_E_NOT_OBJECT : NN_E_PARSE;
		if (code == NN_E_NOT_OBJECT)
			nn_seterr(err, "an envelope is a JSON object, not %s",
				  jv_kind_name(jv_get_kind(v)));
		jv_free(v);
		nn_node_refuse(s->n, &o, jv_null(), code, err);
		return;
	}
	t = jv_object_get(jv_copy(v), jv_string("swim"));
	if (jv_get_kind(t) == JV_KIND_STRING) {
		if (!strcmp(jv_string_value(t), "bc")) {
			jv env = jv_object_get(jv_copy(v), jv_string("env"));
			int64_t hops = 0, exp = 0;
			const char *from, *id;
			nn_json_get_int(v, "hops", &hops, NULL);
			if (jv_get_kind(env) == JV_KIND_OBJECT && (from = nn_env_str(env, "from")) &&
			    (id = nn_env_str(env, "id")) && nn_json_get_int(env, "exp", &exp, NULL) == 0 &&
			    nn_replay_check(s->bc_seen, from, id, exp, nn_now_ms()) == 0) {
				enum nn_code code = nn_env_verify(env, &(struct nn_env_limits)NN_ENV_LIMITS_DEFAULT,
								  nn_now_ms(), err);
				if (code != NN_OK) {
					/* a broadcast gets no answer, but its refusal is recorded */
					char m[NN_ERRLEN];
					snprintf(m, sizeof m, "broadcast refused: %.200s", err);
					nn_node_refused(s->n, &o, env, code, m);
				} else {
					if (hops > 1 && hops <= 64)
						bc_forward(s, env, (int)hops - 1, c->no);
					pending_add(s, id, BACK_CONN, c->no, exp, 1);
					nn_node_deliver(s->n, env, &o);
				}
			}
			jv_free(env);
		} else {
			on_swim(s, c, v, jv_string_value(t));
		}
		jv_free(t);
		jv_free(v);
		return;
	}
	jv_free(t);
	t = jv_object_get(jv_copy(v), jv_string("type"));
	if (jv_get_kind(t) == JV_KIND_STRING &&
	    (!strcmp(jv_string_value(t), "reply") || !strcmp(jv_string_value(t), "error"))) {
		const char *re = nn_env_str(v, "re");
		if (re)
			route_answer(s, v, NULL, re, line, len);
	} else {
		o.line = line;
		o.len = len;
		nn_node_deliver(s->n, v, &o);
	}
	jv_free(t);
	jv_free(v);
}

static void conn_opened(struct swarm *s, struct pconn *c)
{
	char nb[200];
	c->open = 1;
	if (!c->outgoing)
		nn_did_from_pk(c->did, c->sc.peer_pk);
	nn_debug("swarm: %s: handshake done", conn_name(c, nb, sizeof nb));
	send_hello(s, c);
	if (c->outgoing && c->m && c->m->probing) {
		/* the probe that dialed: ping now, timed from now */
		struct member *m = c->m;
		m->conn_no = c->no;
		m->probe_sent = nn_mono_ms();
		m->probe_sent_us = mono_us();
		conn_send_jv(c, jv_object_set(swim_msg("ping", m->probe_seq), jv_string("upd"), piggyback(s)));
	}
}

static void on_conn(struct nn_loop *l, int fd, uint32_t events, void *arg)
{
	struct pconn *c = arg;
	struct swarm *s = c->s;
	char err[NN_ERRLEN], buf[65536];
	int eof = 0;

	if (c->connecting) {
		int e = 0;
		socklen_t len = sizeof e;
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len);
		if (e) {
			conn_fail(c, strerror(e));
			return;
		}
		c->connecting = 0;
	}
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		/* within a time budget, so that one busy peer cannot hold the
		 * loop (probes, events, other peers) */
		int64_t t0 = nn_mono_ms();
		for (int i = 0; i < 8 && (i == 0 || nn_mono_ms() - t0 < 10); i++) {
			ssize_t r = recv(fd, buf, sizeof buf, 0);
			if (r == 0) {
				eof = 1;
				break;
			}
			if (r < 0) {
				if (errno == EINTR)
					continue;
				if (errno != EAGAIN && errno != EWOULDBLOCK) {
					conn_fail(c, strerror(errno));
					return;
				}
				break;
			}
			if (nn_shs_conn_recv(&c->sc, buf, (size_t)r, err) < 0) {
				/* a wrong swarm key ends here, on the server side */
				conn_flush(c);
				conn_fail(c, err);
				return;
			}
			if (!c->open && nn_shs_conn_state(&c->sc) == NN_SHS_CONN_OPEN)
				conn_opened(s, c);
			if (c->open) {
				const char *line;
				size_t len;
				int k;
				/* the lines of one read are one burst: the node may
				 * commit their effects together (nn_node_hold) */
				nn_node_burst_begin(s->n);
				while (!c->dead && (k = nn_shs_conn_next(&c->sc, &line, &len)) != NN_LINES_NONE) {
					if (k == NN_LINES_OVERSIZE) {
						struct nn_origin o = { NN_ORIGIN_PEER, 0, c->did, origin_send, c, NULL, 0 };
						snprintf(err, sizeof err, "dropped a line over %lld bytes",
							 (long long)nn_node_config(s->n)->max_line);
						nn_node_refused(s->n, &o, jv_null(), NN_E_OVERSIZE, err);
						continue;
					}
					on_line(s, c, line, len);
				}
				nn_node_burst_end(s->n);
			}
			if ((size_t)r < sizeof buf)
				break;
		}
	}
	conn_flush(c);
	if (eof) {
		if (nn_shs_conn_eof(&c->sc, err) < 0)
			conn_fail(c, err);	/* the client of a wrong swarm key ends here */
		else
			conn_fail(c, "the peer said goodbye");
		return;
	}
	if (c->dead) {
		conn_fail(c, "write failed");
		return;
	}
	conn_update_events(c);
}

static void on_accept(struct nn_loop *l, int lfd, uint32_t events, void *arg)
{
	struct swarm *s = arg;
	char err[NN_ERRLEN], addr[ADDR_MAX];
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof ss;
		int one = 1;
		int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct pconn *c;
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				nn_warn("swarm: accept: %s", strerror(errno));
			return;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		fmt_addr(addr, sizeof addr, &ss);
		c = conn_new(s, fd, 0, addr, err);
		if (!c) {
			nn_warn("swarm: %s", err);
			close(fd);
			continue;
		}
		nn_shs_conn_server_init(&c->sc, s->netkey, nn_node_key(s->n),
					(size_t)nn_node_config(s->n)->max_line, OUT_MAX);
	}
}

/* ---- the tick: deadlines, probes, suspicion ---- */

/* Ping target (over its connection, else by dialing it) and time it. */
static void probe_start(struct swarm *s, struct member *target, int64_t now)
{
	target->probe_now = 0;
	target->probing = 1;
	target->indirect_sent = 0;
	target->probe_seq = ++s->seq;
	target->probe_sent = now;
	target->probe_sent_us = mono_us();
	struct pconn *c = member_conn(s, target);
	if (c)
		conn_send_jv(c, jv_object_set(swim_msg("ping", target->probe_seq), jv_string("upd"),
					      piggyback(s)));
	else if (now - target->last_dial >= s->o.probe_ms)
		dial(s, target);
}

/* Every REVIVE_PERIODS probe periods, probe the dead member tried least
 * recently: one that answers is alive again (acked()), and a dial that
 * opens exchanges hellos, so both sides of a healed partition, or a node
 * restarted at the same address, come back without a new bootstrap. */
static void revive(struct swarm *s, int64_t now)
{
	struct member *m, *oldest = NULL;
	if (now < s->next_revive)
		return;
	s->next_revive = now + REVIVE_PERIODS * s->o.probe_ms;
	for (m = s->members; m; m = m->next)
		if (m->state == DEAD && !m->probing && (m->addr[0] || member_conn(s, m)) &&
		    (!oldest || m->revived < oldest->revived))
			oldest = m;
	if (oldest) {
		oldest->revived = now;
		probe_start(s, oldest, now);
	}
}

static void probe_round(struct swarm *s)
{
	int64_t now = nn_mono_ms();
	struct member *m, *target = NULL;
	size_t alive = 0;

	/* the probe in flight: indirect at half the period, suspect at its end */
	for (m = s->members; m; m = m->next) {
		if (!m->probing || dialing(s, m))
			continue;	/* a probe waits for its dial (bounded by the handshake deadline) */
		if (!m->indirect_sent && now - m->probe_sent >= s->o.probe_ms / 2) {
			int k = 0;
			m->indirect_sent = 1;
			for (struct member *o = s->members; o && k < PROBE_K; o = o->next) {
				struct pconn *oc;
				if (o == m || o->state != ALIVE || !(oc = member_conn(s, o)))
					continue;
				jv r = swim_msg("preq", m->probe_seq);
				r = jv_object_set(r, jv_string("target"), jv_string(m->did));
				conn_send_jv(oc, jv_object_set(r, jv_string("upd"), piggyback(s)));
				k++;
			}
		}
		if (now - m->probe_sent >= s->o.probe_ms) {
			m->probing = 0;
			if (m->state == ALIVE) {
				nn_debug("swarm: peer %s did not answer its probe", m->did);
				member_set_state(s, m, SUSPECT, m->inc);
			}
		}
	}
	/* suspicion runs out */
	for (m = s->members; m; m = m->next)
		if (m->state == SUSPECT && now - m->suspect_since >= s->o.suspect_ms)
			member_set_state(s, m, DEAD, m->inc);
	if (now < s->next_probe)
		return;
	s->next_probe = now + s->o.probe_ms;
	/* next target: one that lost its connection, else round robin */
	for (m = s->members; m; m = m->next) {
		if (m->state == DEAD || m->probing)
			continue;
		alive++;
		if (m->probe_now) {
			target = m;
			break;
		}
	}
	if (!target && alive) {
		size_t pick = randombytes_uniform((uint32_t)alive);
		for (m = s->members; m; m = m->next)
			if (m->state != DEAD && !m->probing && pick-- == 0) {
				target = m;
				break;
			}
	}
	if (target)
		probe_start(s, target, now);
	revive(s, now);
}

static void on_tick(struct nn_loop *l, void *arg)
{
	struct swarm *s = arg;
	int64_t now = nn_mono_ms();
	struct pconn *c, *next;

	for (c = s->conns; c; c = next) {
		next = c->next;
		if (!c->open && now > c->deadline) {
			conn_fail(c, c->connecting ? "connection timed out"
				  : "handshake timed out (is the peer in this swarm?)");
			continue;
		}
		/* a hello waits for the handshake when we dialed */
		if (c->open && !c->hello_sent)
			send_hello(s, c);
	}
	probe_round(s);
	pending_expire(s);
	for (c = s->conns; c; c = next) {
		next = c->next;
		held_flush(c, now);
		conn_flush(c);
		if (c->dead)
			conn_fail(c, "write failed");
		else
			conn_update_events(c);
	}
}

/* ---- life cycle ---- */

static struct swarm *the_swarm;	/* behaviors get no argument: one node per process */

static void swarm_close(struct nn_node *n, void *arg)
{
	struct swarm *s = arg;
	while (s->conns) {
		struct pconn *c = s->conns;
		if (c->open) {
			nn_shs_conn_close(&c->sc, NULL);
			conn_flush(c);
		}
		c->m = NULL;
		conn_free(c);
	}
	while (s->members) {
		struct member *m = s->members;
		s->members = m->next;
		free(m);
	}
	if (s->lw)
		nn_loop_remove(nn_node_loop(n), s->lw);
	if (s->tick)
		nn_loop_remove(nn_node_loop(n), s->tick);
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->upsert)
		sqlite3_finalize(s->upsert);
	nn_replay_free(s->bc_seen);
	for (size_t i = 0; i < s->nboot; i++)
		free(s->boot[i]);
	free(s->boot);
	free(s->pend);
	free(s->pbucket);
	nn_buf_release(&s->line);
	sodium_memzero(s->netkey, sizeof s->netkey);
	nn_node_set_router(n, NULL, NULL);
	nn_node_set_authorizer(n, NULL, NULL);
	if (the_swarm == s)
		the_swarm = NULL;
	free(s);
}

static int do_listen(struct swarm *s, const char *addr, char *err)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1;
	if (resolve(addr, 1, &ss, &len, err) < 0)
		return -1;
	s->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->lfd < 0)
		return nn_seterr(err, "socket: %s", strerror(errno));
	setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(s->lfd, (struct sockaddr *)&ss, len) < 0)
		return nn_seterr(err, "cannot listen on %s: %s", addr, strerror(errno));
	if (listen(s->lfd, 128) < 0)
		return nn_seterr(err, "cannot listen on %s: %s", addr, strerror(errno));
	len = sizeof ss;
	getsockname(s->lfd, (struct sockaddr *)&ss, &len);
	fmt_addr(s->addr, sizeof s->addr, &ss);
	return 0;
}

/* /swarm/peers: what this node knows, for operators and tests. */

static enum nn_code be_peers(struct nn_node *n, jv req, jv *reply, char *err)
{
	struct swarm *s = the_swarm;
	jv a = jv_array();
	for (struct member *m = s ? s->members : NULL; m; m = m->next) {
		jv u = member_update(m);
		u = jv_object_set(u, jv_string("direct"), member_conn(s, m) ? jv_true() : jv_false());
		if (m->rtt_ms >= 0)
			u = jv_object_set(u, jv_string("rtt_ms"), jv_number(m->rtt_ms));
		a = jv_array_append(a, u);
	}
	*reply = jv_object_set(jv_object(), jv_string("peers"), a);
	return NN_OK;
}

static enum nn_code be_bc_ping(struct nn_node *n, jv req, jv *reply, char *err)
{
	jv b = jv_object();
	b = jv_object_set(b, jv_string("did"), jv_string(nn_node_did(n)));
	b = jv_object_set(b, jv_string("echo"), jv_object_get(jv_copy(req), jv_string("body")));
	*reply = b;
	return NN_OK;
}

static const struct nn_behavior swarm_behaviors[] = {
	{ "/swarm/peers", be_peers, "the peers this node knows, with state and round-trip time", 0 },
	{ "/broadcast/ping", be_bc_ping, "answer a broadcast with this node's did", 0 },
};

int nn_swarm_attach(struct nn_node *n, const struct nn_swarm_opts *o, char *err)
{
	struct swarm *s = nn_xcalloc(1, sizeof *s);
	struct nn_db *db = nn_node_db(n);
	char e[NN_ERRLEN];

	s->n = n;
	s->o = *o;
	s->o.bootstrap = NULL;
	s->lfd = -1;
	if (s->o.probe_ms <= 0)
		s->o.probe_ms = 500;
	if (s->o.suspect_ms <= 0)
		s->o.suspect_ms = 3000;
	if (s->o.handshake_ms <= 0)
		s->o.handshake_ms = 5000;
	if (s->o.hops <= 0)
		s->o.hops = 8;
	s->inc = nn_now_ms();
	s->bc_seen = nn_replay_new(65536);
	nn_node_on_close(n, swarm_close, s);
	if (nn_swarm_key(nn_node_home(n), s->netkey, &s->private_key, e) < 0)
		return nn_seterr(err, "swarm key: %s", e);
	if (nn_db_migrate_module(db, "swarm", nn_swarm_schema, e) < 0)
		return nn_seterr(err, "%s", e);
	if (sqlite3_prepare_v2(db->h,
			       "INSERT INTO swarm_edges (src, dst, addr, state, incarnation, rtt_ms, direct, via, updated)"
			       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (src, dst) DO UPDATE SET"
			       " addr = ?3, state = ?4, incarnation = ?5, rtt_ms = ?6, direct = ?7, via = ?8,"
			       " updated = ?9", -1, &s->upsert, NULL) != SQLITE_OK)
		return nn_seterr(err, "swarm: %s", sqlite3_errmsg(db->h));
	{
		/* a new run starts from what it hears, not from stale rows */
		sqlite3_stmt *st;
		if (sqlite3_prepare_v2(db->h, "DELETE FROM swarm_edges WHERE src = ?", -1, &st, NULL) == SQLITE_OK) {
			sqlite3_bind_text(st, 1, nn_node_did(n), -1, SQLITE_STATIC);
			sqlite3_step(st);
			sqlite3_finalize(st);
		}
	}
	if (o->listen) {
		if (do_listen(s, o->listen, e) < 0)
			return nn_seterr(err, "%s", e);
		if (!(s->lw = nn_loop_fd(nn_node_loop(n), s->lfd, EPOLLIN, on_accept, s, e)))
			return nn_seterr(err, "%s", e);
		nn_node_ready_field(n, "listen", jv_string(s->addr));
		nn_info("swarm: listening on %s (%s swarm)", s->addr, s->private_key ? "private" : "public");
	}
	for (size_t i = 0; i < o->nbootstrap; i++) {
		const char *b = o->bootstrap[i], *at = strchr(b, '@');
		char did[NN_DID_MAX], host[ADDR_MAX];
		uint8_t pk[32];
		int port;
		struct member *m;
		if (!at || (size_t)(at - b) >= sizeof did)
			return nn_seterr(err, "--bootstrap '%s': expected DID@HOST:PORT", b);
		memcpy(did, b, (size_t)(at - b));
		did[at - b] = '\0';
		if (nn_did_to_pk(did, pk, e) < 0)
			return nn_seterr(err, "--bootstrap '%s': %s", b, e);
		if (nn_swarm_parse_addr(at + 1, host, sizeof host, &port, e) < 0)
			return nn_seterr(err, "--bootstrap: %s", e);
		if (!strcmp(did, nn_node_did(n)))
			continue;
		if (!(m = member_find(s, did, strlen(did))))
			m = member_add(s, did, at + 1);
		dial(s, m);
	}
	nn_node_set_router(n, route, s);
	nn_node_set_authorizer(n, authorize, NULL);
	the_swarm = s;
	if (!o->listen && !o->nbootstrap)
		return 0;	/* a node on its own: nothing to probe or answer */
	if (!(s->tick = nn_loop_timer(nn_node_loop(n), TICK_MS, TICK_MS, on_tick, s, e)))
		return nn_seterr(err, "%s", e);
	s->next_probe = nn_mono_ms() + s->o.probe_ms;
	for (size_t i = 0; i < sizeof swarm_behaviors / sizeof *swarm_behaviors; i++)
		nn_node_behavior(n, &swarm_behaviors[i]);
	return 0;
}
