/*
 * loop — epoll, timerfd, signalfd.  Removed registrations are only marked
 * dead during dispatch and freed after the batch, so an event already
 * returned by epoll_wait never reaches freed memory.
 */
#include "loop.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include "util.h"

enum { W_FD, W_TIMER, W_SIGNAL };

struct nn_watch {
	int kind, fd, dead;
	uint32_t events;	/* an fd's, as last given to epoll */
	nn_fd_cb *fd_cb;
	nn_timer_cb *timer_cb;
	void *arg;
	struct nn_watch *next;	/* all watches, or the graveyard */
};

struct sigent {
	nn_signal_cb *cb;
	void *arg;
};

struct nn_loop {
	int ep, stop;
	struct nn_watch *all, *grave;
	struct nn_watch *sigw;
	sigset_t sigs;
	struct sigent sig[65];
};

struct nn_loop *nn_loop_new(char *err)
{
	struct nn_loop *l = nn_xcalloc(1, sizeof *l);
	l->ep = epoll_create1(EPOLL_CLOEXEC);
	if (l->ep < 0) {
		nn_seterr(err, "epoll_create1: %s", strerror(errno));
		free(l);
		return NULL;
	}
	sigemptyset(&l->sigs);
	return l;
}

static void unlink_watch(struct nn_loop *l, struct nn_watch *w)
{
	for (struct nn_watch **p = &l->all; *p; p = &(*p)->next)
		if (*p == w) {
			*p = w->next;
			return;
		}
}

static void bury(struct nn_loop *l)
{
	while (l->grave) {
		struct nn_watch *w = l->grave;
		l->grave = w->next;
		free(w);
	}
}

void nn_loop_free(struct nn_loop *l)
{
	if (!l)
		return;
	while (l->all)
		nn_loop_remove(l, l->all);
	bury(l);
	if (!sigisemptyset(&l->sigs))
		sigprocmask(SIG_UNBLOCK, &l->sigs, NULL);
	close(l->ep);
	free(l);
}

static struct nn_watch *add(struct nn_loop *l, int kind, int fd, uint32_t events, char *err)
{
	struct nn_watch *w = nn_xcalloc(1, sizeof *w);
	struct epoll_event ev = { .events = events, .data.ptr = w };
	w->kind = kind;
	w->fd = fd;
	w->events = events;
	if (epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		nn_seterr(err, "epoll_ctl: %s", strerror(errno));
		free(w);
		return NULL;
	}
	w->next = l->all;
	l->all = w;
	return w;
}

struct nn_watch *nn_loop_fd(struct nn_loop *l, int fd, uint32_t events,
			    nn_fd_cb *cb, void *arg, char *err)
{
	struct nn_watch *w = add(l, W_FD, fd, events, err);
	if (w) {
		w->fd_cb = cb;
		w->arg = arg;
	}
	return w;
}

int nn_loop_fd_events(struct nn_loop *l, struct nn_watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };
	if (w->events == events)	/* no system call for no change */
		return 0;
	if (epoll_ctl(l->ep, EPOLL_CTL_MOD, w->fd, &ev) < 0)
		return -1;
	w->events = events;
	return 0;
}

static void ms_to_ts(int64_t ms, struct timespec *ts)
{
	ts->tv_sec = ms / 1000;
	ts->tv_nsec = (ms % 1000) * 1000000;
}

int nn_loop_timer_arm(struct nn_loop *l, struct nn_watch *w, int64_t after_ms, int64_t every_ms)
{
	struct itimerspec it;
	(void)l;
	memset(&it, 0, sizeof it);
	ms_to_ts(after_ms > 0 ? after_ms : (after_ms == 0 ? 0 : 1), &it.it_value);
	if (after_ms == 0)
		it.it_value.tv_nsec = 1;	/* fire now; zero would disarm */
	ms_to_ts(every_ms, &it.it_interval);
	return timerfd_settime(w->fd, 0, &it, NULL);
}

int nn_loop_timer_disarm(struct nn_loop *l, struct nn_watch *w)
{
	struct itimerspec it;
	uint64_t n;
	(void)l;
	memset(&it, 0, sizeof it);
	if (timerfd_settime(w->fd, 0, &it, NULL) < 0)
		return -1;
	/* an expiry already counted would still wake the loop once */
	while (read(w->fd, &n, sizeof n) == (ssize_t)sizeof n)
		;
	return 0;
}

struct nn_watch *nn_loop_timer(struct nn_loop *l, int64_t after_ms, int64_t every_ms,
			       nn_timer_cb *cb, void *arg, char *err)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	struct nn_watch *w;
	if (fd < 0) {
		nn_seterr(err, "timerfd_create: %s", strerror(errno));
		return NULL;
	}
	w = add(l, W_TIMER, fd, EPOLLIN, err);
	if (!w) {
		close(fd);
		return NULL;
	}
	w->timer_cb = cb;
	w->arg = arg;
	if (nn_loop_timer_arm(l, w, after_ms, every_ms) < 0) {
		nn_seterr(err, "timerfd_settime: %s", strerror(errno));
		nn_loop_remove(l, w);
		return NULL;
	}
	return w;
}

int nn_loop_signal(struct nn_loop *l, int signo, nn_signal_cb *cb, void *arg, char *err)
{
	int fd;
	if (signo <= 0 || signo > 64)
		return nn_seterr(err, "bad signal %d", signo);
	sigaddset(&l->sigs, signo);
	if (sigprocmask(SIG_BLOCK, &l->sigs, NULL) < 0)
		return nn_seterr(err, "sigprocmask: %s", strerror(errno));
	fd = signalfd(l->sigw ? l->sigw->fd : -1, &l->sigs, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return nn_seterr(err, "signalfd: %s", strerror(errno));
	if (!l->sigw && !(l->sigw = add(l, W_SIGNAL, fd, EPOLLIN, err))) {
		close(fd);
		return -1;
	}
	l->sig[signo].cb = cb;
	l->sig[signo].arg = arg;
	return 0;
}

void nn_loop_remove(struct nn_loop *l, struct nn_watch *w)
{
	if (!w || w->dead)
		return;
	w->dead = 1;
	epoll_ctl(l->ep, EPOLL_CTL_DEL, w->fd, NULL);
	if (w->kind != W_FD)
		close(w->fd);
	if (w == l->sigw)
		l->sigw = NULL;
	unlink_watch(l, w);
	w->next = l->grave;
	l->grave = w;
}

void nn_loop_stop(struct nn_loop *l)
{
	l->stop = 1;
}

static void dispatch(struct nn_loop *l, struct nn_watch *w, uint32_t events)
{
	if (w->dead)
		return;
	switch (w->kind) {
	case W_FD:
		w->fd_cb(l, w->fd, events, w->arg);
		break;
	case W_TIMER: {
		uint64_t n;
		if (read(w->fd, &n, sizeof n) == (ssize_t)sizeof n)
			w->timer_cb(l, w->arg);
		break;
	}
	case W_SIGNAL: {
		struct signalfd_siginfo si;
		while (!w->dead && read(w->fd, &si, sizeof si) == (ssize_t)sizeof si) {
			int s = (int)si.ssi_signo;
			if (s > 0 && s <= 64 && l->sig[s].cb)
				l->sig[s].cb(l, s, l->sig[s].arg);
		}
		break;
	}
	}
}

int nn_loop_run(struct nn_loop *l)
{
	struct epoll_event evs[64];
	l->stop = 0;
	while (!l->stop) {
		int n = epoll_wait(l->ep, evs, 64, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		for (int i = 0; i < n && !l->stop; i++)
			dispatch(l, evs[i].data.ptr, evs[i].events);
		bury(l);
	}
	return 0;
}
