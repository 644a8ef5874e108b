/*
 * loop — a single-threaded event loop: epoll for file descriptors, one
 * timerfd per timer, one signalfd for all signals.  Callbacks run on the
 * loop's thread; a callback may add or remove any registration, its own
 * included.
 */
#ifndef NN_LOOP_H
#define NN_LOOP_H

#include <stdint.h>
#include <sys/epoll.h>

struct nn_loop;
struct nn_watch;	/* an fd, timer or signal registration */

typedef void nn_fd_cb(struct nn_loop *l, int fd, uint32_t events, void *arg);
typedef void nn_timer_cb(struct nn_loop *l, void *arg);
typedef void nn_signal_cb(struct nn_loop *l, int signo, void *arg);

struct nn_loop *nn_loop_new(char *err);
/* Frees the loop and every registration (closing timer and signal fds,
 * but not the watched fds, which belong to their callers). */
void nn_loop_free(struct nn_loop *l);

/* Watch fd for events (EPOLLIN, EPOLLOUT, …).  The fd stays the caller's. */
struct nn_watch *nn_loop_fd(struct nn_loop *l, int fd, uint32_t events,
			    nn_fd_cb *cb, void *arg, char *err);
int nn_loop_fd_events(struct nn_loop *l, struct nn_watch *w, uint32_t events);

/* A timer firing after after_ms, then every every_ms (0: once; a one-shot
 * timer stays registered, disarmed, until removed or re-armed).  after_ms
 * 0 fires at the next turn of the loop: arming with 0 is "now", never "off";
 * nn_loop_timer_disarm stops a timer without removing it. */
struct nn_watch *nn_loop_timer(struct nn_loop *l, int64_t after_ms, int64_t every_ms,
			       nn_timer_cb *cb, void *arg, char *err);
int nn_loop_timer_arm(struct nn_loop *l, struct nn_watch *w, int64_t after_ms, int64_t every_ms);
int nn_loop_timer_disarm(struct nn_loop *l, struct nn_watch *w);

/* Deliver signo through the loop (it is blocked for the process). */
int nn_loop_signal(struct nn_loop *l, int signo, nn_signal_cb *cb, void *arg, char *err);

/* Remove a registration; safe from inside any callback. */
void nn_loop_remove(struct nn_loop *l, struct nn_watch *w);

/* Run until nn_loop_stop(); returns 0, or -1 if epoll fails. */
int nn_loop_run(struct nn_loop *l);
void nn_loop_stop(struct nn_loop *l);

#endif
