/*
 * log — one human line per message on stderr (or a log file):
 * "nunet-node: warn: client 7: line 1: not JSON".  The program name is set
 * once; the level can change at run time (SIGHUP reload).
 */
#ifndef NN_LOG_H
#define NN_LOG_H

enum nn_level { NN_LOG_ERROR, NN_LOG_WARN, NN_LOG_INFO, NN_LOG_DEBUG };

void nn_log_init(const char *prog);
void nn_log_set_level(enum nn_level lv);
enum nn_level nn_log_level(void);
/* Parse "error", "warn", "info", "debug"; -1 when unknown. */
int nn_log_parse_level(const char *s);
/* Send log lines to fd (default 2); the fd stays the caller's. */
void nn_log_set_fd(int fd);
/* Hand each message (without the "prog: level: " prefix) to fn instead of
 * writing it; NULL restores writing. */
void nn_log_set_hook(void (*fn)(enum nn_level lv, const char *msg, void *arg), void *arg);

void nn_log(enum nn_level lv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define nn_error(...) nn_log(NN_LOG_ERROR, __VA_ARGS__)
#define nn_warn(...)  nn_log(NN_LOG_WARN, __VA_ARGS__)
#define nn_info(...)  nn_log(NN_LOG_INFO, __VA_ARGS__)
#define nn_debug(...) nn_log(NN_LOG_DEBUG, __VA_ARGS__)

/* cmd/ only: print "prog: error: …" and exit with code. */
void nn_die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

const char *nn_log_prog(void);

#endif
