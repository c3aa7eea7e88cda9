# tekup - build, test and run.
#
#   make            release build: build/release/tekup
#   make san        AddressSanitizer + UBSan build: build/san/tekup (what tests run)
#   make unit       unit tests (cmocka), under the sanitizers
#   make run        install missing packages, build, serve (the README's first command)
#   make test       install missing packages, build, run every test (the second)
#   make lint       clang-format check and cppcheck
#   make clean

VERSION := 0.1.0
CC ?= cc

WARNINGS := -Wall -Wextra -Wformat=2 -Wshadow -Wvla -Wstrict-prototypes \
            -Wmissing-prototypes -Wno-format-nonliteral -Werror
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -Isrc -I/usr/include/postgresql \
               -DTEKUP_VERSION=\"$(VERSION)\" $(WARNINGS) -fstack-protector-strong -MMD -MP
RELEASE_CFLAGS := $(BASE_CFLAGS) -O2 -g -D_FORTIFY_SOURCE=2
SAN_CFLAGS := $(BASE_CFLAGS) -O1 -g -fno-omit-frame-pointer \
              -fsanitize=address,undefined -fno-sanitize-recover=undefined
LIBS := -lmicrohttpd -ljansson -lsodium -lpq -lcurl -lpthread

SRCS := $(shell find src -name '*.c' | sort)
LIB_SRCS := $(filter-out src/main.c,$(SRCS))
RELEASE_OBJS := $(SRCS:src/%.c=build/release/obj/%.o)
SAN_OBJS := $(SRCS:src/%.c=build/san/obj/%.o)
SAN_LIB_OBJS := $(LIB_SRCS:src/%.c=build/san/obj/%.o)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=build/san/unit/%)

FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=build/fuzz/%)
FUZZ_LIB_SRCS := src/util/alloc.c src/util/arena.c src/util/buf.c src/util/error.c src/util/log.c \
                 src/util/validate.c src/util/json_span.c src/leads/lead_input.c \
                 src/leads/cursor.c src/http/client_addr.c
FUZZ_SECONDS ?= 10

.PHONY: all san unit run test lint format clean bench fuzz

all: build/release/tekup

build/release/tekup: $(RELEASE_OBJS)
	$(CC) $(RELEASE_CFLAGS) -o $@ $^ $(LIBS)

build/release/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(RELEASE_CFLAGS) -c -o $@ $<

san: build/san/tekup

build/san/tekup: $(SAN_OBJS)
	$(CC) $(SAN_CFLAGS) -o $@ $^ $(LIBS)

build/san/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(SAN_CFLAGS) -c -o $@ $<

build/san/unit/%: tests/unit/%.c $(SAN_LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(SAN_CFLAGS) -Itests/unit -o $@ $^ $(LIBS) -lcmocka

unit: $(UNIT_BINS)
	@scripts/run-unit.sh $(UNIT_BINS)

# libFuzzer (clang) on the parsers of untrusted input, FUZZ_SECONDS each.
build/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB_SRCS)
	@mkdir -p $(dir $@)
	clang -std=c11 -D_GNU_SOURCE -Isrc -g -O1 -fsanitize=fuzzer,address,undefined \
	    -o $@ $^ -ljansson -lsodium

fuzz: $(FUZZ_BINS)
	@scripts/run-fuzz.sh $(FUZZ_SECONDS) $(FUZZ_BINS)

run:
	@scripts/run.sh

test:
	@scripts/test.sh

bench:
	@bench/run.sh
	@bench/run.sh --isolate-db --workloads W1,W2,W3 --no-callgrind --no-profile \
	    --rls-rounds 0 --results bench/RESULTS-isolated.md

lint:
	clang-format --dry-run --Werror $(SRCS) $(shell find src tests/unit tests/fuzz -name '*.[ch]')
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --inline-suppr \
	    --suppress=missingIncludeSystem -D__GNUC__ -Isrc src

format:
	clang-format -i $(shell find src tests/unit tests/fuzz -name '*.[ch]')

clean:
	rm -rf build

-include $(RELEASE_OBJS:.o=.d) $(SAN_OBJS:.o=.d)
