# nunet — one non-recursive Makefile.
#
#   make                 build lib/libcommon.a, the programs and test helpers
#   make check           run the test suite (bats), ends with "N passed, N failed"
#   make bench           run the benchmarks in t/perf/
#   make install         PREFIX=/usr/local DESTDIR= : programs and man pages
#   make SANITIZE=address,undefined B=build-san check
#
# B is the build directory (default: the source tree itself), so several
# builds (plain, sanitized) can live side by side.

B        ?= .
PREFIX   ?= /usr/local
BINDIR   ?= $(PREFIX)/bin
MANDIR   ?= $(PREFIX)/share/man
DATADIR  ?= $(PREFIX)/share
VERSION  := 0.1.0

CC       ?= cc
PKGS     := libsodium sqlite3 libcurl libgit2 yaml-0.1 libcrypto
# libcurl, libgit2 and libcrypto are compiled against but not linked:
# lib/dlcurl.c, lib/dlgit.c and lib/sha256.c load them when first used
# (dlcurl.h says why)
LINK_PKGS := $(filter-out libcurl libgit2 libcrypto,$(PKGS))
WARN     := -Wall -Wextra -Wshadow -Wpointer-arith -Wstrict-prototypes \
            -Wmissing-prototypes -Wformat=2 -Wno-unused-parameter -Wvla \
            -Wimplicit-fallthrough -Wundef
CFLAGS   ?= -O2 -g
CFLAGS   += $(WARN) -std=c11 -D_GNU_SOURCE -Ilib -pthread \
            -DNN_VERSION='"$(VERSION)"' $(shell pkg-config --cflags $(PKGS))
LDLIBS   += $(shell pkg-config --libs $(LINK_PKGS)) -ljq -lm -pthread
ifdef SANITIZE
CFLAGS   += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS  += -fsanitize=$(SANITIZE)
endif
ifdef WERROR
CFLAGS   += -Werror
endif

LIB_SRC  := $(sort $(wildcard lib/*.c lib/*/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(B)/%.o)
LIB      := $(B)/lib/libcommon.a
PROG_SRC := $(sort $(wildcard cmd/nunet-*.c))
PROGS    := $(PROG_SRC:cmd/%.c=$(B)/bin/%)
HELP_SRC := $(sort $(wildcard t/helper/*.c))
HELPERS  := $(HELP_SRC:%.c=$(B)/%)
TOOL_SRC := $(sort $(wildcard t/helper/tool/*.c))
TOOL_OBJ := $(TOOL_SRC:%.c=$(B)/%.o)
MAN1     := $(wildcard man/*.1)
MAN5     := $(wildcard man/*.5)
MAN7     := $(wildcard man/*.7)
SUB_SRC  := $(sort $(wildcard cmd/*/*.c))
DEPS     := $(LIB_OBJ:.o=.d) $(PROG_SRC:cmd/%.c=$(B)/cmd/%.d) $(HELP_SRC:%.c=$(B)/%.d) \
            $(SUB_SRC:%.c=$(B)/%.d) \
            $(TOOL_OBJ:.o=.d)

all: $(LIB) $(PROGS) $(HELPERS)

$(B)/t/helper/%.o $(B)/t/helper/tool/%.o: CFLAGS += -It/helper
$(B)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(LIB): $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

# a program is cmd/NAME.c plus, when it has grown, cmd/NAME/*.c
subobjs = $(patsubst %.c,$(B)/%.o,$(wildcard cmd/$(1)/*.c))
.SECONDEXPANSION:
$(B)/bin/%: $(B)/cmd/%.o $$(call subobjs,$$*) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LIB) $(LDLIBS)

# test-tool: t/helper/test-tool.c plus one t/helper/tool/NAME.c per unit
$(B)/t/helper/test-tool: $(B)/t/helper/test-tool.o $(TOOL_OBJ) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $(B)/t/helper/test-tool.o $(TOOL_OBJ) $(LIB) $(LDLIBS)

$(B)/t/helper/%: $(B)/t/helper/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

check: all
	NUNET_BUILD=$(abspath $(B)) t/run-tests $(T)

bench: all
	NUNET_BUILD=$(abspath $(B)) t/perf/run

lint:
	mandoc -Tlint -Wwarning $(MAN1) $(MAN5) $(MAN7)

# make fuzz FUZZ_SECONDS=N: build every libFuzzer target t/fuzz/*.c (or
# those named in FUZZ_TARGETS) with clang against a libcommon built with
# sanitizers and coverage in FUZZ_BUILD, and run each for N seconds
# (t/fuzz/run says more).
FUZZ_SECONDS ?= 10
FUZZ_BUILD   ?= build-fuzz
FUZZ_TARGETS ?=
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_BUILD=$(FUZZ_BUILD) t/fuzz/run $(FUZZ_TARGETS)

# make valgrind: the library's unit tests (VALGRIND_T) with every program
# and test helper of this build run under memcheck, then t/0900, which
# replays the fuzz corpora and regression inputs under it.  Any memory
# error or definite or indirect leak fails; suppressions, for dependencies
# only, are in t/valgrind.supp.  Logs: $(B)/valgrind/log/PROGRAM.PID.
VALGRIND   ?= valgrind
VALGRIND_T ?= $(sort $(wildcard t/000[1-6]-*.bats))
VG_DIR      = $(abspath $(B))/valgrind
VG_OPTS     = -q --leak-check=full --show-leak-kinds=definite,indirect \
	      --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
	      --suppressions=$(abspath t/valgrind.supp)
valgrind: all
	rm -rf $(VG_DIR) && mkdir -p $(VG_DIR)/bin $(VG_DIR)/t/helper $(VG_DIR)/lib $(VG_DIR)/log
	ln -s $(abspath $(LIB)) $(VG_DIR)/lib/libcommon.a
	for p in $(abspath $(PROGS) $(HELPERS)); do \
		w=$(VG_DIR)/$${p#$(abspath $(B))/}; \
		printf '#!/bin/sh\nexec %s %s --log-file=%s/log/%s.%%p %s "$$@"\n' \
			'$(VALGRIND)' '$(VG_OPTS)' $(VG_DIR) $${p##*/} $$p >$$w && chmod +x $$w; \
	done
	NUNET_BUILD=$(VG_DIR) t/run-tests $(VALGRIND_T) || touch $(VG_DIR)/failed
	NUNET_BUILD=$(abspath $(B)) t/run-tests t/0900-fuzz-regress.bats || touch $(VG_DIR)/failed
	@bad=$$(grep -l 'lost in loss record\|Invalid \|uninitialised\|Mismatched\|overlap\|Syscall param' \
		$(VG_DIR)/log/* 2>/dev/null); \
	if [ -n "$$bad" ]; then \
		for f in $$bad; do echo "--- $$f"; head -40 $$f; done; \
		echo "valgrind: errors in $$(echo $$bad | wc -w) of $$(ls $(VG_DIR)/log | wc -l) runs"; exit 1; \
	fi; \
	if [ -e $(VG_DIR)/failed ]; then echo "valgrind: tests failed"; exit 1; fi; \
	echo "valgrind: $$(ls $(VG_DIR)/log | wc -l) runs, no errors, no leaks"
.PHONY: fuzz valgrind

install: $(PROGS)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(DATADIR)/nunet
	install -m 755 $(PROGS) $(DESTDIR)$(BINDIR)
	install -m 644 $(MAN1) $(DESTDIR)$(MANDIR)/man1
	install -m 644 $(MAN5) $(DESTDIR)$(MANDIR)/man5
	install -m 644 $(MAN7) $(DESTDIR)$(MANDIR)/man7
	cp -R share/nunet/. $(DESTDIR)$(DATADIR)/nunet/

uninstall:
	rm -f $(PROG_SRC:cmd/%.c=$(DESTDIR)$(BINDIR)/%)
	rm -f $(MAN1:man/%=$(DESTDIR)$(MANDIR)/man1/%) $(MAN5:man/%=$(DESTDIR)$(MANDIR)/man5/%) \
		$(MAN7:man/%=$(DESTDIR)$(MANDIR)/man7/%)
	rm -rf $(DESTDIR)$(DATADIR)/nunet

clean:
	rm -f $(LIB_OBJ) $(LIB) $(PROGS) $(HELPERS) $(DEPS) $(TOOL_OBJ) \
		$(PROG_SRC:cmd/%.c=$(B)/cmd/%.o) $(HELP_SRC:%.c=$(B)/%.o) $(SUB_SRC:%.c=$(B)/%.o)
	rm -rf $(B)/bin

.PHONY: all check bench lint install uninstall clean
.SECONDARY:
-include $(DEPS)
