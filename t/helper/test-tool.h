/*
 * test-tool — one binary driving libcommon's C units from bats, as git's
 * t/helper/test-tool does.  Each subcommand reads its input from arguments
 * or stdin and prints results on stdout; exit 0 on success.
 */
#ifndef TEST_TOOL_H
#define TEST_TOOL_H

int cmd__canon(int argc, char **argv);
int cmd__b58(int argc, char **argv);
int cmd__b64(int argc, char **argv);
int cmd__did(int argc, char **argv);
int cmd__key(int argc, char **argv);
int cmd__env(int argc, char **argv);
int cmd__envscan(int argc, char **argv);
int cmd__replay(int argc, char **argv);
int cmd__lines(int argc, char **argv);
int cmd__db(int argc, char **argv);
int cmd__loop(int argc, char **argv);
int cmd__size(int argc, char **argv);
int cmd__events_bench(int argc, char **argv);
int cmd__cap(int argc, char **argv);
int cmd__pay(int argc, char **argv);
int cmd__shs(int argc, char **argv);
int cmd__exec(int argc, char **argv);
int cmd__docker(int argc, char **argv);
int cmd__hwinfo(int argc, char **argv);
int cmd__bench(int argc, char **argv);
int cmd__onboard(int argc, char **argv);
int cmd__swarm(int argc, char **argv);
int cmd__captoken(int argc, char **argv);
int cmd__ensemble(int argc, char **argv);
int cmd__dlcurl(int argc, char **argv);
/* more subcommands: one line here and one in the table in test-tool.c */

#endif
