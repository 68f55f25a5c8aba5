# dati - GNU Makefile. `make` builds, `make test` runs everything (and a
# sanitizer build of the unit and integration tests), `make demo` and
# `make bench` do what they say. Those three install missing dependencies
# (`make deps`) and then build in a second make: this make read pkg-config's
# flags when it started, before the packages were there.

CC ?= cc
BUILD ?= build
SANITIZE ?=
PKGS := libpcap hiredis libxml-2.0 libpcre2-8 libmicrohttpd libndpi
# CLASSIFY: the nDPI whose names and behaviour the tests check
NDPI_VERSION := 4.2
PYTHON ?= /usr/bin/python3   # Debian's, where python3-pytest installs

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wformat=2 -Werror
CFLAGS ?= -O2 -g
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
CFLAGS += -std=gnu11 $(WARN) -pthread -MMD -MP $(PKG_CFLAGS)
LDLIBS += $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lpcap -lhiredis -lxml2 -lpcre2-8 -lmicrohttpd -lndpi) -lm -pthread
ifneq ($(SANITIZE),)
CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZE)
endif

# Everything but main.c: unit tests and fuzz targets link against this.
LIB_SRC := $(filter-out src/main.c,$(wildcard src/*.c))
LIB_OBJ := $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o)
UNIT_SRC := $(wildcard tests/unit/test-*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz-*.c)
FUZZ_REPLAY := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/tests/replay-%)

.PHONY: all deps pkgcheck test test-unit test-integration test-fuzz-replay test-conf test-sanitize \
        test-tsan \
        demo bench fuzz clean

all: $(BUILD)/dati $(BUILD)/dati-gen

deps:
	@scripts/install-deps.sh

$(BUILD)/obj/%.o: src/%.c | $(BUILD)/obj pkgcheck
	$(CC) $(CFLAGS) -c $< -o $@

# the live page is assembled into page.o (.incbin): -MMD does not see it
$(BUILD)/obj/page.o: src/page.html

# Plain `make` installs nothing: without the packages, say so, not a compiler error.
pkgcheck:
	@pkg-config --exists $(PKGS) 2>/dev/null || { \
	  echo "dati: build packages missing (pkg-config finds no $(PKGS))." >&2; \
	  echo "dati: run 'make deps' to install them (make demo, make test and make bench do it themselves)." >&2; \
	  exit 1; }
	@v=$$(pkg-config --modversion libndpi); case "$$v" in $(NDPI_VERSION)|$(NDPI_VERSION).*) ;; *) \
	  echo "dati: nDPI $$v found, dati is written for nDPI $(NDPI_VERSION) (Debian 12's libndpi-dev)." >&2; \
	  exit 1;; esac

$(BUILD)/libdati.a: $(LIB_OBJ)
	$(AR) rcs $@ $^

$(BUILD)/dati: $(BUILD)/obj/main.o $(BUILD)/libdati.a
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/dati-gen: tools/dati-gen.c | $(BUILD)/obj
	$(CC) $(CFLAGS) $(LDFLAGS) $< -o $@

$(BUILD)/tests/test-%: tests/unit/test-%.c tests/unit/test.h $(BUILD)/libdati.a | $(BUILD)/tests
	$(CC) $(CFLAGS) -Isrc $(LDFLAGS) $< $(BUILD)/libdati.a $(LDLIBS) -o $@

$(BUILD)/tests/replay-%: tests/fuzz/%.c tests/fuzz/replay.c $(BUILD)/libdati.a | $(BUILD)/tests
	$(CC) $(CFLAGS) -Isrc $(LDFLAGS) $< tests/fuzz/replay.c $(BUILD)/libdati.a $(LDLIBS) -o $@

$(BUILD)/obj $(BUILD)/tests:
	mkdir -p $@

# The whole suite: plain build first, then unit + integration under ASan/UBSan,
# then under ThreadSanitizer the unit tests and the integration tests of
# threads and Redis (workers, live mode's connector threads, the feedback
# subscriber, the cluster's slot map thread, the HTTP server).
test: deps
	@$(MAKE) --no-print-directory test-unit test-fuzz-replay test-conf test-integration
	@$(MAKE) --no-print-directory test-sanitize
	@$(MAKE) --no-print-directory test-tsan

test-sanitize:
	@$(MAKE) --no-print-directory BUILD=build-san SANITIZE=address,undefined \
	    test-unit test-fuzz-replay test-integration

TSAN_TESTS := tests/integration/test_threads.py tests/integration/test_redis_live.py \
              tests/integration/test_feedback.py tests/integration/test_cluster.py \
              tests/integration/test_http.py \
              -k "not test_cluster or live_master or failover or two_probes"
test-tsan:
	@$(MAKE) --no-print-directory BUILD=build-tsan SANITIZE=thread test-unit test-integration \
	    INTEGRATION='$(TSAN_TESTS)'

test-unit: $(UNIT_BIN)
	@tests/run-unit.sh $(UNIT_BIN)

test-fuzz-replay: $(FUZZ_REPLAY)
	@tests/fuzz/run-replay.sh $(BUILD)

test-conf: $(BUILD)/dati
	@tests/conf/run.sh $(BUILD)/dati

# the allocation counter works with glibc's allocator, not a sanitizer's
ALLOC_COUNT := $(if $(SANITIZE),,$(BUILD)/tests/alloc-count.so)

INTEGRATION ?= tests/integration
test-integration: all $(ALLOC_COUNT)
	@DATI_BUILD=$(BUILD) $(PYTHON) -m pytest -q $(INTEGRATION)

$(BUILD)/tests/alloc-count.so: tests/alloc-count.c | $(BUILD)/tests
	$(CC) $(CFLAGS) -shared -fPIC $< -o $@

demo: deps
	@$(MAKE) --no-print-directory all
	@scripts/demo.sh $(BUILD)

bench: deps
	@$(MAKE) --no-print-directory all
	@bench/run.sh $(BUILD)

# libFuzzer targets (clang): make fuzz; then build/fuzz/fuzz-packet corpus-dir
fuzz: $(BUILD)/libdati-fuzz.a
	@mkdir -p $(BUILD)/fuzz
	@for f in $(FUZZ_SRC); do n=$$(basename $$f .c); \
	  clang -std=gnu11 -g -O1 -Isrc -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=all $$f \
	    $(BUILD)/libdati-fuzz.a $(LDLIBS) -o $(BUILD)/fuzz/$$n || exit 1; done

$(BUILD)/libdati-fuzz.a: $(LIB_SRC)
	@mkdir -p $(BUILD)/fuzz-obj
	@for f in $(LIB_SRC); do clang -std=gnu11 -g -O1 $(WARN) -pthread $(PKG_CFLAGS) \
	  -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -c $$f \
	  -o $(BUILD)/fuzz-obj/$$(basename $$f .c).o || exit 1; done
	$(AR) rcs $@ $(BUILD)/fuzz-obj/*.o

clean:
	rm -rf build build-san build-tsan

-include $(LIB_OBJ:.o=.d) $(BUILD)/obj/main.d
