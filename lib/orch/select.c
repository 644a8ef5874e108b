/*
 * orch/select — the orchestrator's choice of providers, a pure function
 * (orch.h, nn_orch_select): every slot (one per node group and redundancy
 * copy) gets a distinct provider from its candidates so that every edge's
 * round-trip bound holds between the providers of its two groups, and the
 * total score (the matcher's: the ensemble's rank, else minus the price) is
 * the highest, ties going to the lower total price.
 *
 * Depth-first branch and bound: slots in order of fewest candidates,
 * candidates best first, a branch cut when its score plus the best score
 * each remaining slot could add cannot beat the best assignment found.  The
 * first leaf reached is the greedy choice, so a search stopped by the node
 * bound still returns a feasible (if not proven best) assignment.
 */
#include "orch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "json.h"
#include "util.h"

struct cand {
	int p;		/* provider index */
	double score, price;
};

struct sel {
	int nslots, nprov;
	int *order;		/* slots in search order */
	struct cand **c;	/* candidates per slot */
	int *nc;
	double *rtt;		/* nprov * nprov, <0 unknown */
	double *lim;		/* nslots * nslots, max rtt, INFINITY none */
	double *rest;		/* best score the slots from depth d on can add */
	int *used, *cur, *best;
	double best_score, best_price;
	int found;
	long nodes, max_nodes;
	const char *why;
};

static int prov_index(jv *names, const char *did)
{
	int n = jv_array_length(jv_copy(*names));
	for (int i = 0; i < n; i++) {
		jv s = jv_array_get(jv_copy(*names), i);
		int eq = !strcmp(jv_string_value(s), did);
		jv_free(s);
		if (eq)
			return i;
	}
	*names = jv_array_append(*names, jv_string(did));
	return n;
}

static int fits(struct sel *s, int depth, int p)
{
	int slot = s->order[depth];
	for (int d = 0; d < depth; d++) {
		int o = s->order[d], q = s->cur[o];
		double lim = s->lim[slot * s->nslots + o], r;
		if (isinf(lim))
			continue;
		r = s->rtt[p * s->nprov + q];
		if (r < 0 || r > lim) {
			s->why = r < 0 ? "no measured round trip between the providers an edge joins"
				       : "the providers' round trips exceed an edge's max_rtt_ms";
			return 0;
		}
	}
	return 1;
}

static void search(struct sel *s, int depth, double score, double price)
{
	int slot;
	if (s->max_nodes > 0 && s->nodes >= s->max_nodes && s->found)
		return;
	s->nodes++;
	if (depth == s->nslots) {
		if (!s->found || score > s->best_score + 1e-9 ||
		    (fabs(score - s->best_score) <= 1e-9 && price < s->best_price)) {
			s->found = 1;
			s->best_score = score;
			s->best_price = price;
			memcpy(s->best, s->cur, (size_t)s->nslots * sizeof *s->best);
		}
		return;
	}
	if (s->found && score + s->rest[depth] < s->best_score - 1e-9)
		return;
	slot = s->order[depth];
	for (int i = 0; i < s->nc[slot]; i++) {
		struct cand *c = &s->c[slot][i];
		if (s->used[c->p])
			continue;
		if (!fits(s, depth, c->p))
			continue;
		s->used[c->p] = 1;
		s->cur[slot] = c->p;
		search(s, depth + 1, score + c->score, price + c->price);
		s->used[c->p] = 0;
	}
}

static int by_score(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return x->price < y->price ? -1 : x->price > y->price;
}

jv nn_orch_select(jv slots, jv edges, jv rtt, long max_nodes)
{
	struct sel s;
	jv names = jv_array(), out, groups = jv_array();
	memset(&s, 0, sizeof s);
	s.nslots = jv_get_kind(slots) == JV_KIND_ARRAY ? jv_array_length(jv_copy(slots)) : 0;
	s.max_nodes = max_nodes;
	s.c = nn_xcalloc((size_t)s.nslots + 1, sizeof *s.c);
	s.nc = nn_xcalloc((size_t)s.nslots + 1, sizeof *s.nc);
	s.order = nn_xcalloc((size_t)s.nslots + 1, sizeof *s.order);
	for (int i = 0; i < s.nslots; i++) {
		jv sl = jv_array_get(jv_copy(slots), i);
		jv cs = jv_object_get(jv_copy(sl), jv_string("candidates"));
		const char *g = "";
		int n = jv_get_kind(cs) == JV_KIND_ARRAY ? jv_array_length(jv_copy(cs)) : 0;
		nn_json_get_str(sl, "group", &g, NULL);
		groups = jv_array_append(groups, jv_string(g));
		s.c[i] = nn_xcalloc((size_t)n + 1, sizeof **s.c);
		for (int k = 0; k < n; k++) {
			jv c = jv_array_get(jv_copy(cs), k), v;
			const char *did;
			if (nn_json_get_str(c, "did", &did, NULL) == 0) {
				struct cand *x = &s.c[i][s.nc[i]++];
				x->p = prov_index(&names, did);
				v = jv_object_get(jv_copy(c), jv_string("score"));
				x->score = jv_get_kind(v) == JV_KIND_NUMBER ? jv_number_value(v) : 0;
				jv_free(v);
				v = jv_object_get(jv_copy(c), jv_string("price"));
				x->price = jv_get_kind(v) == JV_KIND_NUMBER ? jv_number_value(v) : 0;
				jv_free(v);
			}
			jv_free(c);
		}
		qsort(s.c[i], (size_t)s.nc[i], sizeof **s.c, by_score);
		s.order[i] = i;
		jv_free(cs);
		jv_free(sl);
	}
	s.nprov = jv_array_length(jv_copy(names));
	s.rtt = nn_xcalloc((size_t)s.nprov * s.nprov + 1, sizeof *s.rtt);
	for (int p = 0; p < s.nprov; p++)
		for (int q = 0; q < s.nprov; q++) {
			double best = p == q ? 0 : -1;
			for (int dir = 0; dir < 2 && p != q; dir++) {
				jv a = jv_array_get(jv_copy(names), dir ? q : p);
				jv b = jv_array_get(jv_copy(names), dir ? p : q);
				jv row = jv_get_kind(rtt) == JV_KIND_OBJECT
					? jv_object_get(jv_copy(rtt), jv_copy(a)) : jv_invalid();
				jv v = jv_get_kind(row) == JV_KIND_OBJECT
					? jv_object_get(jv_copy(row), jv_copy(b)) : jv_invalid();
				/* measured both ways: the larger counts */
				if (jv_get_kind(v) == JV_KIND_NUMBER && jv_number_value(v) > best)
					best = jv_number_value(v);
				jv_free(v);
				jv_free(row);
				jv_free(a);
				jv_free(b);
			}
			s.rtt[p * s.nprov + q] = best;
		}
	s.lim = nn_xcalloc((size_t)s.nslots * s.nslots + 1, sizeof *s.lim);
	for (int i = 0; i < s.nslots * s.nslots; i++)
		s.lim[i] = INFINITY;
	if (jv_get_kind(edges) == JV_KIND_ARRAY)
		jv_array_foreach(edges, k, e) {
			const char *f, *t;
			jv m = jv_object_get(jv_copy(e), jv_string("max_rtt_ms"));
			if (nn_json_get_str(e, "from", &f, NULL) == 0 && nn_json_get_str(e, "to", &t, NULL) == 0 &&
			    jv_get_kind(m) == JV_KIND_NUMBER && jv_number_value(m) > 0)
				for (int i = 0; i < s.nslots; i++)
					for (int j = 0; j < s.nslots; j++) {
						jv gi = jv_array_get(jv_copy(groups), i), gj = jv_array_get(jv_copy(groups), j);
						if ((!strcmp(jv_string_value(gi), f) && !strcmp(jv_string_value(gj), t)) ||
						    (!strcmp(jv_string_value(gi), t) && !strcmp(jv_string_value(gj), f))) {
							double v = jv_number_value(m);
							if (v < s.lim[i * s.nslots + j])
								s.lim[i * s.nslots + j] = v;
						}
						jv_free(gi);
						jv_free(gj);
					}
			jv_free(m);
			jv_free(e);
		}
	/* fewest candidates first: the most constrained slot decides early */
	for (int i = 1; i < s.nslots; i++)
		for (int j = i; j > 0 && s.nc[s.order[j]] < s.nc[s.order[j - 1]]; j--) {
			int t = s.order[j];
			s.order[j] = s.order[j - 1];
			s.order[j - 1] = t;
		}
	s.rest = nn_xcalloc((size_t)s.nslots + 1, sizeof *s.rest);
	for (int d = s.nslots - 1; d >= 0; d--) {
		int sl = s.order[d];
		s.rest[d] = s.rest[d + 1] + (s.nc[sl] ? s.c[sl][0].score : 0);
	}
	s.used = nn_xcalloc((size_t)s.nprov + 1, sizeof *s.used);
	s.cur = nn_xcalloc((size_t)s.nslots + 1, sizeof *s.cur);
	s.best = nn_xcalloc((size_t)s.nslots + 1, sizeof *s.best);
	s.why = NULL;
	for (int i = 0; i < s.nslots; i++)
		if (!s.nc[i]) {
			jv g = jv_array_get(jv_copy(groups), i);
			out = jv_object_set(jv_object(), jv_string("assignment"), jv_null());
			out = jv_object_set(out, jv_string("why"),
					    jv_string_fmt("no provider matched group '%s'", jv_string_value(g)));
			jv_free(g);
			goto done;
		}
	search(&s, 0, 0, 0);
	if (!s.found) {
		out = jv_object_set(jv_object(), jv_string("assignment"), jv_null());
		out = jv_object_set(out, jv_string("why"),
				    jv_string(s.why ? s.why : "not enough distinct providers for the groups"));
	} else {
		jv a = jv_array();
		for (int i = 0; i < s.nslots; i++)
			a = jv_array_append(a, jv_array_get(jv_copy(names), s.best[i]));
		out = jv_object_set(jv_object(), jv_string("assignment"), a);
		out = jv_object_set(out, jv_string("score"), jv_number(s.best_score));
		out = jv_object_set(out, jv_string("price"), jv_number(s.best_price));
		out = jv_object_set(out, jv_string("searched"), jv_number((double)s.nodes));
		out = jv_object_set(out, jv_string("complete"),
				    jv_bool(!(s.max_nodes > 0 && s.nodes >= s.max_nodes)));
	}
done:
	for (int i = 0; i < s.nslots; i++)
		free(s.c[i]);
	free(s.c);
	free(s.nc);
	free(s.order);
	free(s.rtt);
	free(s.lim);
	free(s.rest);
	free(s.used);
	free(s.cur);
	free(s.best);
	jv_free(names);
	jv_free(groups);
	return out;
}
