# smcache: one Makefile for the agent, the client library, the CLI and the tests.
# Objects go under $(BUILD)/ (build/ by default, $(BUILD)/asan for `make asan`).
#
#   make              build everything
#   make deps         install missing Debian packages (as root; otherwise prints the line to run)
#   make demo         run smcached on conf/example-secrets.json and fetch a secret with the CLI
#   make test         the whole test suite; ends with "N passed, N failed"
#   make asan         the whole suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make check-layers prove the walls between the parts of the tree (part of `make test`)
#   make fuzz         run every libFuzzer target for FUZZ_SECONDS each (needs clang)
#   make bench        benchmarks (not part of `make test`); writes docs/bench/RESULTS.md and charts
#   make deps-bench   install the benchmark's peers (redis-server, nginx, wrk, gnuplot, hyperfine)
#   make valgrind     the agent's integration tests with smcached under valgrind memcheck
#   make image        the container image as an OCI/docker archive (build/image/smcache-image.tar)
#   make lambda-layer the AWS Lambda extension layer (build/lambda/smcache-layer.zip)
#   make install      PREFIX=/usr/local DESTDIR=

VERSION      := 0.1.0
PREFIX       ?= /usr/local
BINDIR       ?= $(PREFIX)/bin
SBINDIR      ?= $(PREFIX)/sbin
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
MANDIR       ?= $(PREFIX)/share/man
SYSCONFDIR   ?= /etc
DATADIR      ?= $(PREFIX)/share
UNITDIR      ?= $(PREFIX)/lib/systemd/system
DESTDIR      ?=
BUILD        ?= build
FUZZ_SECONDS ?= 60
SONAME_MAJOR := 0

CC     ?= cc
PYTHON ?= python3

# pkg-config module -> Debian package that ships it: the one mapping `deps` and `check-deps` use.
DEPS_MAP       := libevent:libevent-dev libcurl:libcurl4-openssl-dev libcjson:libcjson-dev \
                  libssl:libssl-dev libcrypto:libssl-dev libsodium:libsodium-dev inih:libinih-dev cmocka:libcmocka-dev
DEPS_PKGCONFIG := $(foreach d,$(DEPS_MAP),$(firstword $(subst :, ,$(d))))
DEPS_DEBS      := $(foreach d,$(DEPS_MAP),$(lastword $(subst :, ,$(d))))
DEBS_BASE      := build-essential pkg-config
DEBS_FUZZ      := clang libclang-rt-14-dev

# Evaluated once, on first use (after `make deps` had its chance to install things).
lazy       = $(eval $(1) := $(2))$($(1))
pkg_cflags = $(foreach p,$(1),$(call lazy,PKGCF_$(p),$(shell pkg-config --cflags $(p) 2>/dev/null)))
pkg_libs   = $(foreach p,$(1),$(call lazy,PKGLIB_$(p),$(shell pkg-config --libs $(p) 2>/dev/null)))

WARN      := -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wpointer-arith -Wstrict-prototypes \
             -Wmissing-prototypes -Wvla -Wno-unused-parameter
HARDEN    := -fstack-protector-strong -fstack-clash-protection -fcf-protection -fPIC
HARDEN_LD := -Wl,-z,relro,-z,now -Wl,-z,noexecstack
DEFS      := -D_GNU_SOURCE -DSMC_VERSION='"$(VERSION)"'

ifeq ($(SANITIZE),1)
OPT      := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LDSAN    := -fsanitize=address,undefined
else
OPT      := -O2 -g -D_FORTIFY_SOURCE=2
LDSAN    :=
endif

CFLAGS_ALL  = -std=c11 $(OPT) $(WARN) $(HARDEN) $(DEFS) $(CFLAGS)
LDFLAGS_ALL = $(HARDEN_LD) $(LDSAN) $(LDFLAGS)

# ---- layers: what each part of the tree may use ------------------------------------------
# A part is a folder, or one file where a tighter wall holds. SEES_<part> lists the project
# folders its objects get -I for, so a forbidden #include "x.h" does not compile; LIBS_<part>
# the pkg-config modules whose headers it may include (system headers are always reachable,
# so `make check-layers` checks those on the compiler's full include graph). agent/README.md
# draws the same map; tests/check_layers.py proves every wall.
SEES_proto            := proto
LIBS_proto            :=
SEES_client           := client proto
LIBS_client           := libsodium libcjson
SEES_agent/base       := agent/base
LIBS_agent/base       := libsodium libcjson
SEES_agent/base/sd_notify := agent/base
LIBS_agent/base/sd_notify :=
SEES_agent/backend    := agent/backend agent/base proto
LIBS_agent/backend    := libevent libsodium libcjson
SEES_agent/cache      := agent/cache agent/backend agent/base proto
LIBS_agent/cache      := libevent libsodium
SEES_agent/cache/seal := agent/cache agent/base
LIBS_agent/cache/seal := libsodium
SEES_agent/aws        := agent/aws agent/backend agent/base proto agent
LIBS_agent/aws        := libevent libcurl libssl libcrypto libsodium libcjson inih
SEES_agent/aws/sigv4  := agent/aws agent/base
LIBS_agent/aws/sigv4  := libcrypto
SEES_agent/access     := agent/access agent/base proto agent agent/front
LIBS_agent/access     := libevent libsodium
SEES_agent/front      := agent/front agent/access agent/cache agent/backend agent/base proto agent
LIBS_agent/front      := libevent libsodium
SEES_agent/front/lambda_ext := agent/front agent/base
LIBS_agent/front/lambda_ext := libevent libcjson
# The Secrets Manager endpoint: the front wing plus the SigV4 verifier, the aws backend's
# pass-through (aws/sigv4.h, aws/upstream_aws.h) and cJSON for the JSON 1.1 bodies.
SEES_agent/front/sm_endpoint := $(SEES_agent/front) agent/aws
LIBS_agent/front/sm_endpoint := libevent libsodium libcjson
SEES_agent/front/sm_api := $(SEES_agent/front) agent/aws
LIBS_agent/front/sm_api := libevent libsodium libcjson
SEES_agent            := agent agent/front agent/access agent/cache agent/aws agent/backend agent/base proto
LIBS_agent            := libevent libcurl libssl libcrypto libsodium libcjson inih
SEES_tests            := $(SEES_agent) client
LIBS_tests            := $(LIBS_agent) cmocka
LAYER_PARTS := proto client agent agent/base agent/base/sd_notify agent/backend agent/cache agent/cache/seal \
               agent/aws agent/aws/sigv4 agent/access agent/front agent/front/lambda_ext \
               agent/front/sm_endpoint agent/front/sm_api

# The part a source belongs to: its own row if it has one, else its folder's (all of tests/ is one).
layer_of     = $(or $(if $(SEES_$(basename $(1))),$(basename $(1))),$(if $(filter tests/%,$(1)),tests),$(patsubst %/,%,$(dir $(1))))
layer_cflags = $(addprefix -I,$(SEES_$(call layer_of,$(1)))) $(call pkg_cflags,$(LIBS_$(call layer_of,$(1))))

# ---- sources, by folder ----------------------------------------------------------------
PROTO_SRCS      := $(wildcard proto/*.c)
CLIENT_LIB_SRCS := $(filter-out client/cli.c client/cli_%.c,$(wildcard client/*.c))
CLI_SRCS        := $(filter client/cli.c client/cli_%.c,$(wildcard client/*.c))
AGENT_LIB_SRCS  := $(filter-out agent/main.c,$(wildcard agent/*.c agent/*/*.c))
UNIT_SRCS       := $(wildcard tests/unit/test_*.c)
UNIT_HELPER_SRCS := $(filter-out $(UNIT_SRCS),$(wildcard tests/unit/*.c))
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

.PHONY: all deps deps-bench check-deps check-layers test asan fuzz bench demo install uninstall clean valgrind image lambda-layer FORCE
.DEFAULT_GOAL := all
# Objects made through pattern rules are kept, so a second run rebuilds nothing.
.SECONDARY:

all: $(SMCACHED) $(SMCACHE) $(CLIENT_A) $(CLIENT_SO) $(BUILD)/smcache.pc

# ---- dependencies ------------------------------------------------------------------------
# Names every missing pkg-config module with its Debian package and the line to run.
check-deps:
	@missing=""; \
	command -v pkg-config >/dev/null 2>&1 || missing="pkg-config"; \
	for d in $(DEPS_MAP); do \
	  pkg-config --exists $${d%%:*} 2>/dev/null || missing="$$missing $${d#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "smcache: missing build dependencies (Debian packages):$$missing" >&2; \
	  echo "smcache: install them with:  make deps   (or: apt-get install -y$$missing)" >&2; \
	  exit 1; \
	fi

deps:
	@pkgs="$(DEBS_BASE) $(DEPS_DEBS)"; \
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
	$(CC) $(CFLAGS_ALL) $(call layer_cflags,$<) -MMD -MP -c $< -o $@

archive = @mkdir -p $(dir $@); rm -f $@ && ar rcs $@ $^

$(PROTO_LIB): $(call obj,$(PROTO_SRCS))
	$(archive)

$(AGENT_LIB): $(call obj,$(AGENT_LIB_SRCS))
	$(archive)

# The client library carries its own copy of the codec so users link one library.
$(CLIENT_A): $(call obj,$(CLIENT_LIB_SRCS) $(PROTO_SRCS))
	$(archive)

$(CLIENT_SO): $(call obj,$(CLIENT_LIB_SRCS) $(PROTO_SRCS))
	$(CC) -shared -Wl,-soname,libsmcache.so.$(SONAME_MAJOR) -Wl,--version-script=client/libsmcache.map \
	  $(LDFLAGS_ALL) -o $@ $^ $(call pkg_libs,$(LIBS_client))
	ln -sf libsmcache.so.$(VERSION) $(BUILD)/libsmcache.so.$(SONAME_MAJOR)
	ln -sf libsmcache.so.$(VERSION) $(BUILD)/libsmcache.so

# One link rule for every program: objects and archives first, then the part's libraries.
link = @mkdir -p $(dir $@); $(CC) -pie $(LDFLAGS_ALL) -o $@ $^ $(call pkg_libs,$(1)) -lpthread -lm

$(SMCACHED): $(call obj,agent/main.c) $(AGENT_LIB) $(PROTO_LIB)
	$(call link,$(LIBS_agent))

$(SMCACHE): $(call obj,$(CLI_SRCS)) $(CLIENT_A)
	$(call link,$(LIBS_client))

# Directories under PREFIX are written relative to ${prefix}, as pkg-config expects.
$(BUILD)/smcache.pc: client/smcache.pc.in Makefile $(BUILD)/install/paths
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))|; s|@INCLUDEDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))|; s|@VERSION@|$(VERSION)|' $< > $@

# ---- tests -------------------------------------------------------------------------------
# Test programs link the agent, client and codec libraries; the linker keeps what it uses.
TEST_LINK_LIBS := $(AGENT_LIB) $(CLIENT_A)
# What unit tests share (tests/unit/*.c other than test_*.c, e.g. the cache tests' fake
# backend), as an archive ahead of the agent's: each test takes only what it calls.
UNIT_HELPER_LIB := $(BUILD)/libsmctest.a

$(UNIT_HELPER_LIB): $(call obj,$(UNIT_HELPER_SRCS))
	$(archive)

$(BUILD)/tests/test_%: $(call obj,tests/unit/test_%.c) $(UNIT_HELPER_LIB) $(TEST_LINK_LIBS)
	$(call link,$(LIBS_tests))

# Helper programs the integration tests drive (signers, raw clients, ...).
$(BUILD)/tests/%: $(call obj,tests/tools/%.c) $(TEST_LINK_LIBS)
	$(call link,$(LIBS_agent))

# Fuzz targets built with a plain main() that replays the seed corpus: `make test` runs these.
$(BUILD)/tests/replay_%: $(call obj,tests/fuzz/%.c tests/fuzz/replay_main.c) $(TEST_LINK_LIBS)
	$(call link,$(LIBS_agent))

TEST_BINS := $(UNIT_BINS) $(TOOL_BINS) $(REPLAY_BINS)

# Prints one line per part: "part|-I flags|allowed pkg-config modules", for tests/check_layers.py.
LAYER_CC_FLAGS = -std=c11 $(WARN) $(DEFS)
check-layers: | check-deps
	@$(PYTHON) tests/check_layers.py --cc "$(CC)" --cflags "$(LAYER_CC_FLAGS)" \
	  $(foreach p,$(LAYER_PARTS),--part "$(p)|$(SEES_$(p))|$(LIBS_$(p))")

test: all $(TEST_BINS) check-layers
	$(PYTHON) tests/run_tests.py --build $(BUILD)

asan:
	$(MAKE) BUILD=$(BUILD)/asan SANITIZE=1 test

# ---- fuzzing (clang + libFuzzer), bounded in time ---------------------------------------
FUZZ_CC       ?= clang
FUZZ_DIR      := $(BUILD)/fuzz
FUZZ_FLAGS    := -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined $(DEFS) $(addprefix -I,$(SEES_tests))
FUZZ_BINS     := $(patsubst tests/fuzz/%.c,$(FUZZ_DIR)/%,$(FUZZ_SRCS))
FUZZ_LIB_SRCS := $(PROTO_SRCS) $(AGENT_LIB_SRCS)

$(FUZZ_DIR)/%: tests/fuzz/%.c $(FUZZ_LIB_SRCS) | check-deps
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(call pkg_cflags,$(LIBS_agent)) -o $@ $< $(FUZZ_LIB_SRCS) $(call pkg_libs,$(LIBS_agent)) -lm

fuzz: $(FUZZ_BINS)
	@command -v $(FUZZ_CC) >/dev/null || { echo "make fuzz needs clang: apt-get install -y $(DEBS_FUZZ)"; exit 1; }
	@for f in $(FUZZ_BINS); do \
	  name=$$(basename $$f); mkdir -p $(FUZZ_DIR)/corpus/$$name; \
	  echo "== $$name for $(FUZZ_SECONDS)s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $(FUZZ_DIR)/corpus/$$name tests/fuzz/corpus/$$name || exit 1; \
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
$(BUILD)/bench/%: $(call obj,tests/bench/%.c) $(TEST_LINK_LIBS)
	$(call link,$(LIBS_agent))

bench: all $(BENCH_BINS)
	$(PYTHON) tests/bench/run_bench.py --build $(BUILD)

# The peers `make bench` compares with (each is skipped with a note when absent).
# nginx-light where Debian still ships it, else nginx.
BENCH_DEBS := redis-server wrk gnuplot-nox hyperfine
deps-bench:
	@nginx=nginx-light; apt-cache show nginx-light >/dev/null 2>&1 || nginx=nginx; \
	missing=""; for p in $(BENCH_DEBS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; done; \
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$$missing $$nginx"; \
	if [ -z "$$missing" ]; then echo "smcache: all benchmark peers are installed"; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "smcache: installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends$$missing; \
	else \
	  echo "smcache: missing:$$missing"; echo "run:  sudo apt-get install -y$$missing"; exit 1; \
	fi

# ---- demo: the README's first command ----------------------------------------------------
demo: all
	@sh tests/demo.sh $(BUILD)

# ---- container image: deploy/container/mkimage.py (no base image, no engine needed) --------
IMAGE_TAG ?= smcache:$(VERSION)
image: all
	$(PYTHON) deploy/container/mkimage.py --build $(BUILD) --out $(BUILD)/image/smcache-image.tar \
	  --tag $(IMAGE_TAG) --version $(VERSION)
	@if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then \
	  docker load -i $(BUILD)/image/smcache-image.tar; \
	else echo "image: no Docker engine here; load it elsewhere with: docker load -i $(BUILD)/image/smcache-image.tar"; fi

# ---- Lambda layer: deploy/lambda/mklayer.py (extensions/smcache + the agent and its libraries)
lambda-layer: all
	$(PYTHON) deploy/lambda/mklayer.py --build $(BUILD) --out $(BUILD)/lambda/smcache-layer.zip

# ---- install -----------------------------------------------------------------------------
# Everything install writes is listed in $(DATADIR)/smcache/install-manifest, one path per
# line (as installed, without DESTDIR); uninstall removes exactly those. The configuration is
# written only when none is there, and uninstall keeps it when it was edited since (its
# checksum is in the manifest). Units, config and .pc carry the real paths: PREFIX, SBINDIR,
# SYSCONFDIR, DATADIR, LIBDIR, INCLUDEDIR. DESTDIR only stages.
INSTALL_GEN := $(BUILD)/install
MANIFEST    := $(DATADIR)/smcache/install-manifest
# mode|source|destination
INSTALL_FILES = 0755|$(SMCACHED)|$(SBINDIR)/smcached \
  0755|$(SMCACHE)|$(BINDIR)/smcache \
  0644|$(CLIENT_A)|$(LIBDIR)/libsmcache.a \
  0755|$(CLIENT_SO)|$(LIBDIR)/libsmcache.so.$(VERSION) \
  0644|client/smcache.h|$(INCLUDEDIR)/smcache.h \
  0644|$(BUILD)/smcache.pc|$(LIBDIR)/pkgconfig/smcache.pc \
  0644|conf/example-secrets.json|$(DATADIR)/smcache/example-secrets.json \
  0644|$(INSTALL_GEN)/smcached.service|$(UNITDIR)/smcached.service \
  0644|$(INSTALL_GEN)/smcached.socket|$(UNITDIR)/smcached.socket \
  $(foreach m,$(wildcard man/*.[0-9]),0644|$(m)|$(MANDIR)/man$(subst .,,$(suffix $(m)))/$(notdir $(m)))
INSTALL_LINKS = libsmcache.so.$(VERSION)|$(LIBDIR)/libsmcache.so.$(SONAME_MAJOR) \
  libsmcache.so.$(VERSION)|$(LIBDIR)/libsmcache.so
INSTALL_CONF := $(SYSCONFDIR)/smcache/smcached.conf
INSTALL_PATHS = $(PREFIX) $(BINDIR) $(SBINDIR) $(LIBDIR) $(INCLUDEDIR) $(MANDIR) $(SYSCONFDIR) \
  $(DATADIR) $(UNITDIR)

# Rewritten only when the paths change, so files that carry them are remade when they do.
$(INSTALL_GEN)/paths: FORCE
	@mkdir -p $(dir $@)
	@echo '$(INSTALL_PATHS)' | cmp -s - $@ || echo '$(INSTALL_PATHS)' > $@

FORCE:

# The installed config: the file backend on the installed example data, the system socket.
# Each substitution must have happened, so a reworded conf/smcached.conf cannot slip by.
$(INSTALL_GEN)/smcached.conf: conf/smcached.conf Makefile $(INSTALL_GEN)/paths
	@mkdir -p $(dir $@)
	sed -e 's|^#path = conf/example-secrets.json$$|path = $(DATADIR)/smcache/example-secrets.json|' \
	    -e 's|^#socket = /run/smcache/smcached.sock$$|socket = /run/smcache/smcached.sock|' $< > $@.tmp
	grep -qx 'path = $(DATADIR)/smcache/example-secrets.json' $@.tmp
	grep -qx 'socket = /run/smcache/smcached.sock' $@.tmp
	mv $@.tmp $@

$(INSTALL_GEN)/smcached.%: conf/smcached.% Makefile $(INSTALL_GEN)/paths
	@mkdir -p $(dir $@)
	sed -e 's|/usr/local/sbin/smcached|$(SBINDIR)/smcached|g' \
	    -e 's|/etc/smcache/|$(SYSCONFDIR)/smcache/|g' $< > $@

install: all $(INSTALL_GEN)/smcached.conf $(INSTALL_GEN)/smcached.service $(INSTALL_GEN)/smcached.socket
	@set -e; m="$(DESTDIR)$(MANIFEST)"; mkdir -p "$$(dirname "$$m")"; : > "$$m.new"; \
	for f in $(foreach f,$(INSTALL_FILES),'$(f)'); do \
	  mode=$${f%%|*}; rest=$${f#*|}; src=$${rest%%|*}; dst=$${rest#*|}; \
	  echo "install -D -m $$mode $$src $(DESTDIR)$$dst"; \
	  install -D -m $$mode "$$src" "$(DESTDIR)$$dst"; echo "$$dst" >> "$$m.new"; \
	done; \
	for l in $(foreach l,$(INSTALL_LINKS),'$(l)'); do \
	  target=$${l%%|*}; dst=$${l#*|}; \
	  echo "ln -sfn $$target $(DESTDIR)$$dst"; ln -sfn "$$target" "$(DESTDIR)$$dst"; echo "$$dst" >> "$$m.new"; \
	done; \
	conf="$(DESTDIR)$(INSTALL_CONF)"; \
	if [ -e "$$conf" ]; then \
	  echo "keeping the existing $$conf (the new default is $(INSTALL_GEN)/smcached.conf)"; \
	  grep "^$(INSTALL_CONF) " "$$m" >> "$$m.new" 2>/dev/null || true; \
	else \
	  echo "install -D -m 0640 $(INSTALL_GEN)/smcached.conf $$conf"; \
	  install -D -m 0640 $(INSTALL_GEN)/smcached.conf "$$conf"; \
	  echo "$(INSTALL_CONF) $$(sha256sum < "$$conf" | cut -d' ' -f1)" >> "$$m.new"; \
	fi; \
	echo "$(MANIFEST)" >> "$$m.new"; mv "$$m.new" "$$m"

# Removes what the manifest lists (the configuration only if unchanged), then the
# directories of smcache's own that are left empty.
uninstall:
	@set -e; m="$(DESTDIR)$(MANIFEST)"; \
	if [ ! -f "$$m" ]; then echo "smcache: no $$m: nothing installed there" >&2; exit 1; fi; \
	while read -r path sum; do \
	  f="$(DESTDIR)$$path"; \
	  if [ -n "$$sum" ] && [ -f "$$f" ] && [ "$$(sha256sum < "$$f" | cut -d' ' -f1)" != "$$sum" ]; then \
	    echo "keeping $$f: changed since it was installed"; continue; \
	  fi; \
	  if [ -e "$$f" ] || [ -L "$$f" ]; then echo "rm -f $$f"; rm -f "$$f"; fi; \
	done < "$$m"; \
	for d in $(DATADIR)/smcache $(SYSCONFDIR)/smcache; do \
	  rmdir "$(DESTDIR)$$d" 2>/dev/null || true; \
	done

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
