/*
 * nunet-match — a pure function from the shell: a job's requirements and a
 * stream of capability documents (JSON lines, from files or stdin) in, the
 * offers that fit out, best first, as {"offer":…,"score":…} lines.  With
 * --explain every rejected offer follows, with each failed constraint and
 * how far off it was.  Offers are streamed: with --limit N only the best N
 * are kept (a heap), so memory does not grow with the input.  Malformed
 * offers are reported with their line number and skipped.  The matching
 * itself is lib/match.c, the same code the node runs for /node/match.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "json.h"
#include "lines.h"
#include "log.h"
#include "match.h"
#include "util.h"

#define USAGE "usage: nunet-match [--explain] [--limit N] [--where JQ] [--rank JQ] " \
	"REQUIREMENTS [OFFERS ...]\n"

#define REQ_MAX (1024 * 1024)

struct hit {
	double score;
	unsigned long long seq;
	char *text;
	size_t len;
};

struct hits {
	struct hit *v;
	size_t n, cap, limit;	/* limit 0: keep all */
};

/* a is better than b: higher score, then earlier in the input */
static int better(const struct hit *a, const struct hit *b)
{
	return a->score > b->score || (a->score == b->score && a->seq < b->seq);
}

/* With a limit, v is a heap whose root is the worst hit kept. */
static void sift_down(struct hits *h, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, w = i;
		if (l < h->n && better(&h->v[w], &h->v[l]))
			w = l;
		if (r < h->n && better(&h->v[w], &h->v[r]))
			w = r;
		if (w == i)
			return;
		struct hit t = h->v[i];
		h->v[i] = h->v[w];
		h->v[w] = t;
		i = w;
	}
}

static void sift_up(struct hits *h, size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!better(&h->v[p], &h->v[i]))
			return;
		struct hit t = h->v[i];
		h->v[i] = h->v[p];
		h->v[p] = t;
		i = p;
	}
}

static void hits_add(struct hits *h, double score, unsigned long long seq,
		     const char *text, size_t len)
{
	struct hit x = { score, seq, NULL, len };
	if (h->limit && h->n == h->limit) {
		if (!better(&x, &h->v[0]))
			return;
		free(h->v[0].text);
		x.text = nn_xmalloc(len + 1);
		memcpy(x.text, text, len);
		h->v[0] = x;
		sift_down(h, 0);
		return;
	}
	if (h->n == h->cap) {
		h->cap = h->cap ? 2 * h->cap : 64;
		if (h->limit && h->cap > h->limit)
			h->cap = h->limit;
		h->v = nn_xrealloc(h->v, h->cap * sizeof *h->v);
	}
	x.text = nn_xmalloc(len + 1);
	memcpy(x.text, text, len);
	h->v[h->n++] = x;
	if (h->limit)
		sift_up(h, h->n - 1);
}

static int cmp_hits(const void *a, const void *b)
{
	return better(a, b) ? -1 : better(b, a) ? 1 : 0;
}

static void put_score(FILE *f, double s)
{
	char b[40];
	if (s > -1e17 && s < 1e17 && s == (double)(long long)s) {
		fprintf(f, "%lld", (long long)s);
		return;
	}
	snprintf(b, sizeof b, "%.15g", s);	/* the shortest that reads back */
	if (strtod(b, NULL) != s)
		snprintf(b, sizeof b, "%.17g", s);
	fputs(b, f);
}

/* Trim JSON whitespace around a line. */
static void trim(const char **p, size_t *n)
{
	while (*n && (**p == ' ' || **p == '\t' || **p == '\r'))
		(*p)++, (*n)--;
	while (*n && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t' || (*p)[*n - 1] == '\r'))
		(*n)--;
}

struct run {
	struct nn_match *m;
	struct hits hits;
	FILE *rejected;		/* --explain: rejected lines, printed last */
	unsigned long long seq, bad;
	int ioerr;
};

static void one(struct run *r, const char *name, unsigned long lineno, const char *line, size_t len)
{
	char err[NN_ERRLEN];
	double score = 0;
	jv why = jv_invalid();
	int rc;

	trim(&line, &len);
	if (!len)
		return;
	rc = nn_match_text(r->m, line, len, &score, r->rejected ? &why : NULL, err);
	r->seq++;
	if (rc == NN_MATCH_BAD) {
		nn_warn("%s: line %lu: %s", name, lineno, err);
		r->bad++;
		return;
	}
	if (rc == NN_MATCH_YES) {
		hits_add(&r->hits, score, r->seq, line, len);
		return;
	}
	if (r->rejected) {	/* else why was never set: nothing to free */
		char *w = nn_json_dump(why);
		fputs("{\"offer\":", r->rejected);
		fwrite(line, 1, len, r->rejected);
		fprintf(r->rejected, ",\"rejected\":%s}\n", w);
		free(w);
		jv_free(why);
	}
}

static void read_offers(struct run *r, int fd, const char *name)
{
	struct nn_lines l;
	const char *line;
	size_t len;
	ssize_t n;

	nn_lines_init(&l, 0);
	for (;;) {
		n = nn_lines_read_fd(&l, fd);
		if (n == 0 && nn_lines_pending(&l))
			nn_lines_feed(&l, "\n", 1);	/* a last line without newline */
		for (;;) {
			int k = nn_lines_next(&l, &line, &len);
			if (k == NN_LINES_NONE)
				break;
			if (k == NN_LINES_OVERSIZE) {
				nn_warn("%s: line %lu: longer than %zu bytes", name, l.lineno, l.max);
				r->bad++;
				continue;
			}
			one(r, name, l.lineno, line, len);
		}
		if (n <= 0)
			break;
	}
	if (n < 0) {
		nn_error("cannot read '%s': %s", name, strerror(errno));
		r->ioerr = 1;
	}
	nn_lines_release(&l);
}

static jv load_requirements(const char *arg)
{
	char err[NN_ERRLEN];
	const char *p = arg;
	size_t len;
	char *text;
	jv req;

	while (*p == ' ' || *p == '\t' || *p == '\n')
		p++;
	if (*p == '{') {
		req = nn_json_parse(arg, strlen(arg), err);
	} else {
		if (!(text = nn_read_file(arg, REQ_MAX, &len, err)))
			nn_die(NN_EX_IOERR, "%s", err);
		req = nn_json_parse(text, len, err);
		free(text);
	}
	if (!jv_is_valid(req))
		nn_die(NN_EX_DATAERR, "requirements: %s", err);
	return req;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "explain", no_argument, NULL, 'e' },
		{ "limit", required_argument, NULL, 'n' },
		{ "where", required_argument, NULL, 'w' },
		{ "rank", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	const char *where = NULL, *rank = NULL;
	struct run r;
	char err[NN_ERRLEN], *end;
	int c, explain = 0, ex = NN_EX_USAGE;
	unsigned long long limit = 0;

	nn_log_init("nunet-match");
	memset(&r, 0, sizeof r);
	while ((c = getopt_long(argc, argv, "en:w:r:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'e':
			explain = 1;
			break;
		case 'n':
			errno = 0;
			limit = strtoull(optarg, &end, 10);
			if (errno || *end || !*optarg || *optarg == '-' || limit == 0 ||
			    limit > 100000000) {
				nn_error("--limit: expected a whole number from 1 to 100000000, not '%s'",
					 optarg);
				fputs(USAGE, stderr);
				return NN_EX_USAGE;
			}
			break;
		case 'w':
			where = optarg;
			break;
		case 'r':
			rank = optarg;
			break;
		case 'h':
			fputs(USAGE, stdout);
			return 0;
		case 'V':
			printf("nunet-match %s\n", NN_VERSION);
			return 0;
		default:
			fputs(USAGE, stderr);
			return NN_EX_USAGE;
		}
	}
	if (optind >= argc) {
		fputs(USAGE, stderr);
		return NN_EX_USAGE;
	}

	r.m = nn_match_compile(load_requirements(argv[optind]), where, rank, &ex, err);
	if (!r.m)
		nn_die(ex, "%s", err);
	r.hits.limit = (size_t)limit;
	if (explain && !(r.rejected = tmpfile()))
		nn_die(NN_EX_IOERR, "cannot make a temporary file: %s", strerror(errno));

	if (optind + 1 >= argc) {
		read_offers(&r, 0, "stdin");
	} else {
		for (int i = optind + 1; i < argc; i++) {
			int fd = strcmp(argv[i], "-") ? open(argv[i], O_RDONLY | O_CLOEXEC) : 0;
			if (fd < 0) {
				nn_error("cannot open '%s': %s", argv[i], strerror(errno));
				r.ioerr = 1;
				continue;
			}
			read_offers(&r, fd, fd ? argv[i] : "stdin");
			if (fd)
				close(fd);
		}
	}

	if (r.hits.n)
		qsort(r.hits.v, r.hits.n, sizeof *r.hits.v, cmp_hits);
	for (size_t i = 0; i < r.hits.n; i++) {
		fputs("{\"offer\":", stdout);
		fwrite(r.hits.v[i].text, 1, r.hits.v[i].len, stdout);
		fputs(",\"score\":", stdout);
		put_score(stdout, r.hits.v[i].score);
		fputs("}\n", stdout);
		free(r.hits.v[i].text);
	}
	if (r.rejected) {
		char buf[65536];
		size_t n;
		rewind(r.rejected);
		while ((n = fread(buf, 1, sizeof buf, r.rejected)) > 0)
			fwrite(buf, 1, n, stdout);
		if (ferror(r.rejected)) {
			nn_error("cannot read back rejected offers: %s", strerror(errno));
			r.ioerr = 1;
		}
		fclose(r.rejected);
	}
	free(r.hits.v);
	nn_match_free(r.m);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		nn_error("cannot write: %s", strerror(errno));
		return NN_EX_IOERR;
	}
	if (r.ioerr)
		return NN_EX_IOERR;
	return r.hits.n ? 0 : NN_EX_NO;
}
