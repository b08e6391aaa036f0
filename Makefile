# smcache: one Makefile for the agent, the client library, the CLI and the tests.
# Objects go under $(BUILD)/ (build/ by default, build/asan for `make asan`).
#
#   make            build everything
#   make deps       install missing Debian packages (as root; otherwise prints the line to run)
#   make demo       run smcached on conf/example-secrets.json and fetch a secret with the CLI
#   make test       the whole test suite; ends with "N passed, N failed"
#   make asan       the whole suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make fuzz       run every libFuzzer target for FUZZ_SECONDS each (needs clang)
#   make bench      benchmarks (not part of `make test`)
#   make valgrind   the agent's integration tests with smcached under valgrind memcheck
#   make install    PREFIX=/usr/local DESTDIR=

VERSION      := 0.1.0
PREFIX       ?= /usr/local
BINDIR       ?= $(PREFIX)/bin
SBINDIR      ?= $(PREFIX)/sbin
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
MANDIR       ?= $(PREFIX)/share/man
SYSCONFDIR   ?= /etc
DESTDIR      ?=
BUILD        ?= build
FUZZ_SECONDS ?= 60
SONAME_MAJOR := 0

CC     ?= cc
PYTHON ?= python3

# pkg-config module -> Debian package that ships it.
DEPS_PKGCONFIG := libevent libcurl libcjson libcrypto libsodium inih cmocka
deb_libevent   := libevent-dev
deb_libcurl    := libcurl4-openssl-dev
deb_libcjson   := libcjson-dev
deb_libcrypto  := libssl-dev
deb_libsodium  := libsodium-dev
deb_inih       := libinih-dev
deb_cmocka     := libcmocka-dev
DEBS_BASE      := build-essential pkg-config
DEBS_FUZZ      := clang libclang-rt-14-dev

# Evaluated once, on first use (after `make deps` had its chance to install things).
lazy = $(eval $(1) := $(2))$($(1))
PKG_CFLAGS_AGENT = $(call lazy,PKG_CFLAGS_AGENT,$(shell pkg-config --cflags libevent libcurl libcjson libcrypto libsodium inih 2>/dev/null))
PKG_LIBS_AGENT   = $(call lazy,PKG_LIBS_AGENT,$(shell pkg-config --libs libevent libcurl libcjson libcrypto libsodium inih 2>/dev/null))
PKG_CFLAGS_CLI   = $(call lazy,PKG_CFLAGS_CLI,$(shell pkg-config --cflags libsodium libcjson 2>/dev/null))
PKG_LIBS_CLI     = $(call lazy,PKG_LIBS_CLI,$(shell pkg-config --libs libsodium libcjson 2>/dev/null))
PKG_CFLAGS_TEST  = $(call lazy,PKG_CFLAGS_TEST,$(shell pkg-config --cflags cmocka 2>/dev/null))
PKG_LIBS_TEST    = $(call lazy,PKG_LIBS_TEST,$(shell pkg-config --libs cmocka 2>/dev/null))

WARN      := -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wpointer-arith -Wstrict-prototypes \
             -Wmissing-prototypes -Wvla -Wno-unused-parameter
HARDEN    := -fstack-protector-strong -fstack-clash-protection -fcf-protection -fPIC
HARDEN_LD := -Wl,-z,relro,-z,now -Wl,-z,noexecstack
DEFS      := -D_GNU_SOURCE -DSMC_VERSION='"$(VERSION)"'
INCLUDES  := -Iproto -Iclient -Iagent

ifeq ($(SANITIZE),1)
OPT      := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LDSAN    := -fsanitize=address,undefined
else
OPT      := -O2 -g -D_FORTIFY_SOURCE=2
LDSAN    :=
endif

CFLAGS_ALL = -std=c11 $(OPT) $(WARN) $(HARDEN) $(DEFS) $(INCLUDES) $(CFLAGS)
LDFLAGS_ALL = $(HARDEN_LD) $(LDSAN) $(LDFLAGS)

# ---- sources, by folder ----------------------------------------------------------------
PROTO_SRCS      := $(wildcard proto/*.c)
CLIENT_LIB_SRCS := $(filter-out client/cli.c client/cli_%.c,$(wildcard client/*.c))
CLI_SRCS        := $(filter client/cli.c client/cli_%.c,$(wildcard client/*.c))
AGENT_LIB_SRCS  := $(filter-out agent/main.c,$(wildcard agent/*.c))
UNIT_SRCS       := $(wildcard tests/unit/test_*.c)
TOOL_SRCS       := $(wildcard tests/tools/*.c)
FUZZ_SRCS       := $(wildcard tests/fuzz/fuzz_*.c)
BENCH_SRCS      := $(wildcard tests/bench/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

PROTO_LIB   := $(BUILD)/libsmcproto.a
AGENT_LIB   := $(BUILD)/libsmcagent.a
CLIENT_A    := $(BUILD)/libsmcache.a
CLIENT_SO   := $(BUILD)/libsmcache.so.$(VERSION)
SMCACHED    := $(BUILD)/smcached
SMCACHE     := $(BUILD)/smcache
UNIT_BINS   := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
TOOL_BINS   := $(patsubst tests/tools/%.c,$(BUILD)/tests/%,$(TOOL_SRCS))
REPLAY_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/tests/replay_%,$(FUZZ_SRCS))
BENCH_BINS  := $(patsubst tests/bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))

.PHONY: all deps check-deps test asan fuzz bench demo install uninstall clean valgrind
.DEFAULT_GOAL := all
# Objects made through pattern rules are kept, so a second run rebuilds nothing.
.SECONDARY:

all: $(SMCACHED) $(SMCACHE) $(CLIENT_A) $(CLIENT_SO) $(BUILD)/smcache.pc

# ---- dependencies ------------------------------------------------------------------------
# Names every missing pkg-config module with its Debian package and the line to run.
check-deps:
	@missing=""; \
	command -v pkg-config >/dev/null 2>&1 || missing="pkg-config"; \
	for m in $(DEPS_PKGCONFIG); do \
	  pkg-config --exists $$m 2>/dev/null || case $$m in \
	    libevent) missing="$$missing $(deb_libevent)";; libcurl) missing="$$missing $(deb_libcurl)";; \
	    libcjson) missing="$$missing $(deb_libcjson)";; libcrypto) missing="$$missing $(deb_libcrypto)";; \
	    libsodium) missing="$$missing $(deb_libsodium)";; inih) missing="$$missing $(deb_inih)";; \
	    cmocka) missing="$$missing $(deb_cmocka)";; esac; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "smcache: missing build dependencies (Debian packages):$$missing" >&2; \
	  echo "smcache: install them with:  make deps   (or: apt-get install -y$$missing)" >&2; \
	  exit 1; \
	fi

deps:
	@pkgs="$(DEBS_BASE) $(deb_libevent) $(deb_libcurl) $(deb_libcjson) $(deb_libcrypto) $(deb_libsodium) $(deb_inih) $(deb_cmocka)"; \
	missing=""; for p in $$pkgs; do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then echo "smcache: all build dependencies are installed"; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "smcache: installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing; \
	else \
	  echo "smcache: missing:$$missing"; echo "run:  sudo apt-get install -y$$missing"; exit 1; \
	fi; \
	for py in boto3 moto; do $(PYTHON) -c "import $$py" 2>/dev/null || \
	  echo "smcache: note: python module $$py is missing; the AWS integration tests will be skipped" >&2; done

# ---- compilation -------------------------------------------------------------------------
$(BUILD)/obj/%.o: %.c | check-deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(PKG_CFLAGS_AGENT) $(PKG_CFLAGS_TEST) -MMD -MP -c $< -o $@

$(PROTO_LIB): $(call obj,$(PROTO_SRCS))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(AGENT_LIB): $(call obj,$(AGENT_LIB_SRCS))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# The client library carries its own copy of the codec so users link one library.
$(CLIENT_A): $(call obj,$(CLIENT_LIB_SRCS) $(PROTO_SRCS))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(CLIENT_SO): $(call obj,$(CLIENT_LIB_SRCS) $(PROTO_SRCS))
	$(CC) -shared -Wl,-soname,libsmcache.so.$(SONAME_MAJOR) -Wl,--version-script=client/libsmcache.map \
	  $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS_CLI)
	ln -sf libsmcache.so.$(VERSION) $(BUILD)/libsmcache.so.$(SONAME_MAJOR)
	ln -sf libsmcache.so.$(VERSION) $(BUILD)/libsmcache.so

$(SMCACHED): $(call obj,agent/main.c) $(AGENT_LIB) $(PROTO_LIB)
	$(CC) -pie $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS_AGENT) -lm

$(SMCACHE): $(call obj,$(CLI_SRCS)) $(CLIENT_A)
	$(CC) -pie $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS_CLI)

$(BUILD)/smcache.pc: client/smcache.pc.in Makefile
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@INCLUDEDIR@|$(INCLUDEDIR)|; s|@VERSION@|$(VERSION)|' $< > $@

# ---- tests -------------------------------------------------------------------------------
# Every unit test links the agent, client and codec libraries; the linker keeps what it uses.
$(BUILD)/tests/test_%: $(call obj,tests/unit/test_%.c) $(AGENT_LIB) $(CLIENT_A)
	@mkdir -p $(dir $@)
	$(CC) -pie $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS_AGENT) $(PKG_LIBS_CLI) $(PKG_LIBS_TEST) -lpthread -lm

# Helper programs the integration tests drive (signers, raw clients, ...).
$(BUILD)/tests/%: $(call obj,tests/tools/%.c) $(AGENT_LIB) $(CLIENT_A)
	@mkdir -p $(dir $@)
	$(CC) -pie $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS_AGENT) $(PKG_LIBS_CLI) -lpthread -lm

# Fuzz targets built with a plain main() that replays the seed corpus: `make test` runs these.
$(BUILD)/tests/replay_%: $(call obj,tests/fuzz/%.c tests/fuzz/replay_main.c) $(AGENT_LIB) $(CLIENT_A)
	@mkdir -p $(dir $@)
	$(CC) -pie $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS_AGENT) $(PKG_LIBS_CLI) -lpthread -lm

TEST_BINS := $(UNIT_BINS) $(TOOL_BINS) $(REPLAY_BINS)

test: all $(TEST_BINS)
	$(PYTHON) tests/run_tests.py --build $(BUILD)

asan:
	$(MAKE) BUILD=build/asan SANITIZE=1 test

# ---- fuzzing (clang + libFuzzer), bounded in time ---------------------------------------
FUZZ_CC       ?= clang
FUZZ_FLAGS    := -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined $(DEFS) $(INCLUDES)
FUZZ_BINS     := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_SRCS))
FUZZ_LIB_SRCS := $(PROTO_SRCS) $(AGENT_LIB_SRCS)

build/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB_SRCS) | check-deps
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(PKG_CFLAGS_AGENT) -o $@ $< $(FUZZ_LIB_SRCS) $(PKG_LIBS_AGENT) -lm

fuzz: $(FUZZ_BINS)
	@command -v $(FUZZ_CC) >/dev/null || { echo "make fuzz needs clang: apt-get install -y $(DEBS_FUZZ)"; exit 1; }
	@for f in $(FUZZ_BINS); do \
	  name=$$(basename $$f); mkdir -p build/fuzz/corpus/$$name; \
	  echo "== $$name for $(FUZZ_SECONDS)s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 build/fuzz/corpus/$$name tests/fuzz/corpus/$$name || exit 1; \
	done

# ---- valgrind: smcached under memcheck through the harness's SMCACHE_WRAPPER (not in `make test`)
VALGRIND ?= valgrind --quiet --error-exitcode=99 --leak-check=full --show-leak-kinds=definite \
            --errors-for-leak-kinds=definite --suppressions=tests/valgrind.supp

valgrind: all $(TOOL_BINS)
	@command -v valgrind >/dev/null || { echo "make valgrind needs valgrind: apt-get install -y valgrind"; exit 1; }
	@rc=0; for t in test_agent.py test_cli.py; do \
	  SMCACHE_WRAPPER="$(VALGRIND)" $(PYTHON) tests/run_tests.py --build $(BUILD) --only $$t || rc=1; \
	done; exit $$rc

# ---- benchmarks --------------------------------------------------------------------------
$(BUILD)/bench/%: $(call obj,tests/bench/%.c) $(AGENT_LIB) $(CLIENT_A)
	@mkdir -p $(dir $@)
	$(CC) -pie $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS_AGENT) $(PKG_LIBS_CLI) -lpthread -lm

bench: all $(BENCH_BINS)
	$(PYTHON) tests/bench/run_bench.py --build $(BUILD)

# ---- demo: the README's first command ----------------------------------------------------
demo: all
	@sh tests/demo.sh $(BUILD)

# ---- install -----------------------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig \
	  $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8 \
	  $(DESTDIR)$(SYSCONFDIR)/smcache $(DESTDIR)$(PREFIX)/share/smcache
	install -m 0755 $(SMCACHED) $(DESTDIR)$(SBINDIR)/smcached
	install -m 0755 $(SMCACHE) $(DESTDIR)$(BINDIR)/smcache
	install -m 0644 $(CLIENT_A) $(DESTDIR)$(LIBDIR)/libsmcache.a
	install -m 0755 $(CLIENT_SO) $(DESTDIR)$(LIBDIR)/libsmcache.so.$(VERSION)
	ln -sf libsmcache.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libsmcache.so.$(SONAME_MAJOR)
	ln -sf libsmcache.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libsmcache.so
	install -m 0644 client/smcache.h $(DESTDIR)$(INCLUDEDIR)/smcache.h
	install -m 0644 $(BUILD)/smcache.pc $(DESTDIR)$(LIBDIR)/pkgconfig/smcache.pc
	install -m 0644 conf/example-secrets.json $(DESTDIR)$(PREFIX)/share/smcache/example-secrets.json
	[ -f $(DESTDIR)$(SYSCONFDIR)/smcache/smcached.conf ] || \
	  install -m 0640 conf/smcached.conf $(DESTDIR)$(SYSCONFDIR)/smcache/smcached.conf
	for m in $(wildcard man/*.1); do install -m 0644 $$m $(DESTDIR)$(MANDIR)/man1/; done
	for m in $(wildcard man/*.8); do install -m 0644 $$m $(DESTDIR)$(MANDIR)/man8/; done

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/smcached $(DESTDIR)$(BINDIR)/smcache \
	  $(DESTDIR)$(LIBDIR)/libsmcache.a $(DESTDIR)$(LIBDIR)/libsmcache.so* \
	  $(DESTDIR)$(INCLUDEDIR)/smcache.h $(DESTDIR)$(LIBDIR)/pkgconfig/smcache.pc

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
