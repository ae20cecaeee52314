# SPDX-License-Identifier: Apache-2.0
# One Makefile for the whole project.  `make setup` prepares a fresh Debian
# host (packages, static musl deps, guest kernel, stand-in image); `make test`
# builds everything and runs every suite.
.DEFAULT_GOAL := all
B := build
SHELL := /bin/bash

WARN := -Wall -Wextra -Werror -Wformat=2 -Wno-format-nonliteral
HARDEN := -D_FORTIFY_SOURCE=2 -fstack-protector-strong
CFLAGS_COMMON := -std=gnu11 -O2 -g $(WARN) $(HARDEN) -D_GNU_SOURCE -Icommon -I$(B)/gen

# ---- guest (static musl) -------------------------------------------------
MUSL := $(B)/musl
MUSL_CC := musl-gcc
MUSL_CFLAGS := $(CFLAGS_COMMON) -I$(MUSL)/include -I$(MUSL)/include/libnl3 -I$(MUSL)/kinc
MUSL_LDFLAGS := -static -L$(MUSL)/lib

# ---- host (glibc) ----------------------------------------------------------
CC ?= cc
HOST_CFLAGS := $(CFLAGS_COMMON) $(shell pkg-config --cflags libcurl json-c libprotobuf-c libevent_core 2>/dev/null)
HOST_LIBS := $(shell pkg-config --libs libcurl json-c libprotobuf-c libevent_core 2>/dev/null)

COMMON_SRC := $(wildcard common/*.c)

# ---- generated protocol code ---------------------------------------------------
$(B)/gen/agent.pb-c.c $(B)/gen/agent.pb-c.h: proto/agent.proto
	@mkdir -p $(B)/gen
	protoc-c --proto_path=proto --c_out=$(B)/gen proto/agent.proto

# ---- guest-init -----------------------------------------------------------------
INIT_SRC := $(wildcard guest-init/*.c) $(COMMON_SRC)
$(B)/bin/chvm-init: $(INIT_SRC) $(wildcard guest-init/*.h common/*.h) | $(MUSL)/.done
	@mkdir -p $(@D)
	$(MUSL_CC) $(MUSL_CFLAGS) -Iguest-init -o $@ $(INIT_SRC) $(MUSL_LDFLAGS) -lnl-route-3 -lnl-3

# ---- guest-agent ----------------------------------------------------------------
AGENT_SRC := $(wildcard guest-agent/*.c) $(COMMON_SRC) $(B)/gen/agent.pb-c.c
$(B)/bin/chvm-agent: $(AGENT_SRC) $(wildcard guest-agent/*.h common/*.h) $(B)/gen/agent.pb-c.h | $(MUSL)/.done
	@mkdir -p $(@D)
	$(MUSL_CC) $(MUSL_CFLAGS) -Iguest-agent -o $@ $(AGENT_SRC) $(MUSL_LDFLAGS) -levent_core -levent_extra -lprotobuf-c

# ---- host-tool: libchvm.a and the chvm CLI ------------------------------------
# Everything of host-tool/ but cli/ (and common/, and the protocol code) is
# one static library, libchvm.a, that the CLI, the unit tests, the fuzz
# targets and the test drivers link, as crun's CLI links libcrun; folders
# are layered (docs/DESIGN.md, "The map"; scripts/check-layers.sh).  Three
# builds of it: the installed one, one with ASan+UBSan for the unit tests,
# one with libFuzzer's coverage for the fuzz targets.  Objects go to
# $(B)/obj/<flavour>/<source path>.o with their header dependencies.
HOST_SRC := $(shell find host-tool -name '*.c' | sort)
CLI_SRC := $(filter host-tool/cli/%,$(HOST_SRC))
LIBCHVM_SRC := $(filter-out $(CLI_SRC),$(HOST_SRC)) $(COMMON_SRC) $(B)/gen/agent.pb-c.c
HOST_LIBS_ALL := $(shell pkg-config --libs libcurl json-c libprotobuf-c libevent_core 2>/dev/null)
obj = $(patsubst %.c,$(B)/obj/$(1)/%.o,$(2))

$(B)/obj/host/%.o: %.c | $(B)/gen/agent.pb-c.h
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -Ihost-tool -MMD -MP -c -o $@ $<
$(B)/obj/test/%.o: %.c | $(B)/gen/agent.pb-c.h
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -MMD -MP -c -o $@ $<
$(B)/obj/fuzz/%.o: %.c | $(B)/gen/agent.pb-c.h
	@mkdir -p $(@D)
	$(FUZZ_CC) $(TEST_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<
-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)

$(B)/lib/libchvm.a: $(call obj,host,$(LIBCHVM_SRC))
$(B)/lib/libchvm-test.a: $(call obj,test,$(LIBCHVM_SRC))
$(B)/lib/libchvm-fuzz.a: $(call obj,fuzz,$(LIBCHVM_SRC))
$(B)/lib/lib%.a:
	@mkdir -p $(@D)
	rm -f $@
	ar rcs $@ $^

$(B)/bin/chvm: $(call obj,host,$(CLI_SRC)) $(B)/lib/libchvm.a
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -o $@ $(call obj,host,$(CLI_SRC)) $(B)/lib/libchvm.a $(HOST_LIBS)

# The test-hooks build of the CLI, never installed: the files holding test
# hooks (#ifdef CHVM_TEST_HOOKS: CHVM_SUPERVISOR_EXEC, CHVM_FAULT) compiled
# with them, linked before libchvm.a so that their objects win.  Only the
# integration tests that set a hook run it (chvmtest/cli.py).
HOOKS_SRC := host-tool/supervisor/sup.c host-tool/supervisor/client.c host-tool/vm/vmctl.c
$(B)/obj/hooks/%.o: %.c | $(B)/gen/agent.pb-c.h
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -DCHVM_TEST_HOOKS -Ihost-tool -MMD -MP -c -o $@ $<
$(B)/tests/chvm-hooks: $(call obj,host,$(CLI_SRC)) $(call obj,hooks,$(HOOKS_SRC)) $(B)/lib/libchvm.a
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -o $@ $(call obj,host,$(CLI_SRC)) $(call obj,hooks,$(HOOKS_SRC)) $(B)/lib/libchvm.a $(HOST_LIBS)
test-prereqs: $(B)/tests/chvm-hooks

.PHONY: all setup test guest host initrd clean
guest: $(B)/bin/chvm-init $(B)/bin/chvm-agent
host: $(B)/bin/chvm
all: guest host $(B)/tests/chvm-hooks

clean:
	rm -rf $(B)/bin $(B)/gen $(B)/obj $(B)/lib $(B)/tests

# chvm and the data it boots when given no kernel, initrd or image (the
# "embedded" default: Debian's cloud kernel, our initramfs, the stand-in
# Chromium image), laid out as chvm looks for them: <bindir>/../share/chvm.
PREFIX ?= /usr/local
DATADIR := $(DESTDIR)$(PREFIX)/share/chvm
.PHONY: install
# The containerd shim goes beside chvm (it runs the chvm next to itself;
# docs/containerd.md says how containerd is told of it).
install: $(B)/bin/chvm $(B)/bin/containerd-shim-chvm-v1 initrd
	@test -f $(B)/kernel/vmlinuz && test -d $(B)/images/standin/oci \
	  || { echo "install: run 'make setup' first (kernel and stand-in image)" >&2; exit 1; }
	install -D -m 0755 $(B)/bin/chvm $(DESTDIR)$(PREFIX)/bin/chvm
	install -D -m 0755 $(B)/bin/containerd-shim-chvm-v1 $(DESTDIR)$(PREFIX)/bin/containerd-shim-chvm-v1
	install -D -m 0644 $(B)/kernel/vmlinuz $(DATADIR)/kernel/vmlinuz
	install -D -m 0644 $(B)/initrd.cpio.gz $(DATADIR)/initrd.cpio.gz
	rm -rf $(DATADIR)/images/standin/oci
	mkdir -p $(DATADIR)/images/standin
	cp -a $(B)/images/standin/oci $(DATADIR)/images/standin/oci
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then scripts/vmm-user.sh; \
	else echo "install: run scripts/vmm-user.sh as root on the target (the VMM user chvm-vmm)"; fi

# ==== sections owned by one part each; edit only your own ====================
# ---- section: setup + images + CI (infra) ----
KERNEL := $(B)/kernel
.PHONY: kernel deps images fuzz lint format check-static analyze

# Guest kernel: Debian's cloud kernel, unpacked; cached by scripts/fetch-kernel.sh.
kernel: $(KERNEL)/version
$(KERNEL)/version: scripts/fetch-kernel.sh scripts/extract-vmlinux.py
	scripts/fetch-kernel.sh $(KERNEL)
	touch $@

# Debian packages, npm packages, static musl libraries (build/musl).
deps:
	scripts/setup-deps.sh
$(MUSL)/.done: scripts/build-musl-deps.sh
	scripts/build-musl-deps.sh $(MUSL)

# The stand-in Chromium image as OCI layout + docker archive (cached by recipe
# hash), imported with our own `chvm image import` into $(B)/state; stable
# paths for tests: $(B)/images/standin/{oci,docker-archive.tar,rootfs.ext4,image.json}.
images: $(B)/bin/chvm
	scripts/build-standin.sh $(B)/images/standin
	scripts/import-standin.sh $(B)/bin/chvm $(B)/state $(B)/images/standin

# The README's two commands on a fresh Debian 12 root (mmdebstrap, chroot):
# make setup, then make test SUITES="build static unit fuzz" (REF, SUITES,
# FUZZ_SECONDS as scripts/check-fresh.sh says).  Needs root.
.PHONY: check-fresh
check-fresh:
	scripts/check-fresh.sh

# In order (deps installs what kernel and images use), whatever -j says.
setup:
	$(MAKE) deps
	$(MAKE) kernel
	$(MAKE) images

# Tests: tests/unit/test_X.c -> $(B)/tests/unit/test_X (cmocka, ASan+UBSan),
# tests/fuzz/fuzz_X.c -> $(B)/tests/fuzz/fuzz_X (libFuzzer).  Each section
# names what a test links in the variables described in docs/DESIGN.md
# "Build conventions" (UNIT_test_X_SRC, FUZZ_fuzz_X_SRC, ...).
.SECONDEXPANSION:
SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
TEST_CFLAGS := $(CFLAGS_COMMON) -O1 $(SAN) -Ihost-tool $(shell pkg-config --cflags libcurl json-c libprotobuf-c libevent_core 2>/dev/null)
UNIT_TESTS := $(patsubst tests/unit/%.c,$(B)/tests/unit/%,$(wildcard tests/unit/test_*.c))
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,$(B)/tests/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_CC := clang

# Each test links libchvm (its ASan+UBSan or libFuzzer build) after the
# sources its variables name (the guest parts, which are not in the library).
$(B)/tests/unit/test_%: tests/unit/test_%.c $$(UNIT_test_$$*_SRC) $$(UNIT_test_$$*_DEPS) $(wildcard common/*.h) $(B)/lib/libchvm-test.a
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) $(UNIT_test_$*_CFLAGS) -o $@ $< $(UNIT_test_$*_SRC) $(B)/lib/libchvm-test.a -lcmocka $(UNIT_test_$*_LIBS) $(HOST_LIBS_ALL)

$(B)/tests/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $$(FUZZ_fuzz_$$*_SRC) $$(FUZZ_fuzz_$$*_DEPS) $(wildcard common/*.h) $(B)/lib/libchvm-fuzz.a
	@mkdir -p $(@D)
	$(FUZZ_CC) $(TEST_CFLAGS) -fsanitize=fuzzer $(FUZZ_fuzz_$*_CFLAGS) -o $@ $< $(FUZZ_fuzz_$*_SRC) $(B)/lib/libchvm-fuzz.a $(FUZZ_fuzz_$*_LIBS) $(HOST_LIBS_ALL)

.PHONY: unit-tests fuzz-targets test-prereqs
unit-tests: $(UNIT_TESTS)
fuzz-targets: $(FUZZ_TARGETS)
# What integration tests need beyond `all initrd` (drivers, test guests): each
# section adds its own, e.g. `test-prereqs: ch-driver`; tests/run.sh builds it.
test-prereqs:

# Every suite; one final line "N passed, N failed, N skipped".
test:
	tests/run.sh
# Only the fuzz targets, each for $${FUZZ_SECONDS:-20} s.
fuzz:
	SUITES=fuzz tests/run.sh

# Lint: host-tool/'s layers (scripts/check-layers.sh: no include points up),
# no function over 120 lines in host-tool/ and guest-agent/
# (scripts/func-lengths.py), no circle of calls between their files
# (scripts/call-cycles.py, from nm of the objects), clang-format
# (.clang-format, GNU based) and cppcheck.  cppcheck cannot
# see __attribute__((cleanup)), the house way of freeing, so its leak checks
# are off; LeakSanitizer in the unit tests covers leaks instead.  readdir_r,
# which it suggests for readdir, is deprecated by glibc.
# The shim's generated headers (section: containerd shim) are named here,
# before analyze lists them as prerequisites (make expands those when it reads
# the rule, so a later definition would leave them empty on a fresh clone).
SHIM_PROTOS := $(shell cd proto/containerd 2>/dev/null && find . -name '*.proto' | sed 's|^\./||' | sort)
SHIM_GEN_C := $(patsubst %.proto,$(B)/gen/shim/%.pb-c.c,$(SHIM_PROTOS))
SHIM_GEN_H := $(SHIM_GEN_C:.c=.h)
LINT_C := $(shell git ls-files --cached --others --exclude-standard -- '*.c' '*.h' 2>/dev/null)
CPPCHECK_FLAGS := --enable=warning,portability,performance --library=posix --std=c11 -q \
	--error-exitcode=1 --inline-suppr -D_GNU_SOURCE -Icommon -Ihost-tool -I$(B)/gen \
	--suppress=preprocessorErrorDirective:$(B)/gen/agent.pb-c.h -Ishim -I$(B)/gen/shim \
	--suppress='preprocessorErrorDirective:$(B)/gen/shim/*' --suppress=resourceLeak --suppress=memleak \
	--suppress=readdirCalled
lint: $(B)/gen/agent.pb-c.h analyze $(B)/lib/libchvm.a
	scripts/check-layers.sh
	scripts/func-lengths.py -n 0 --max 120 $(shell find host-tool guest-agent shim -name '*.c')
	scripts/call-cycles.py $(call obj,host,$(filter-out $(CLI_SRC),$(HOST_SRC)))
	scripts/call-cycles.py --cc "$(CC) $(HOST_CFLAGS) -Iguest-agent" $(wildcard guest-agent/*.c)
	clang-format --dry-run -Werror $(LINT_C)
	cppcheck $(CPPCHECK_FLAGS) $(filter %.c,$(LINT_C))

# Static analysis (house rule 12): clang's analyzer (scan-build, default
# -analyzer-config) over every .c of common/, guest-init/, guest-agent/ and
# host-tool/, each compiled afresh with clang (nothing linked or kept); any
# finding fails, the report is left in $(B)/scan.  The host tool and common/
# with the host flags; the guest programs, which musl-gcc builds and
# scan-build cannot wrap, against musl's headers the way musl-gcc's specs
# put them (-nostdinc, musl, then the compiler's own) plus MUSL_CFLAGS.
# Left off, one line each:
#   unix.Malloc: clang 14 does not run __attribute__((cleanup)), so each cleanup_free pointer reads as leaked (LeakSanitizer in the unit tests covers leaks).
SCAN_BUILD := scan-build --status-bugs -o $(B)/scan --use-cc=clang -disable-checker unix.Malloc
SCAN_MUSL_CFLAGS := $(MUSL_CFLAGS) -nostdinc -isystem /usr/include/x86_64-linux-musl \
	-isystem $(shell clang -print-resource-dir 2>/dev/null)/include
analyze: $(B)/gen/agent.pb-c.h $(SHIM_GEN_H) | $(MUSL)/.done
	rm -rf $(B)/scan
	$(SCAN_BUILD) $(SHELL) -ec 'each() { flags=$$1; shift; for f; do $$CC $$flags -c -o /dev/null $$f; done; }; \
	  each "$(HOST_CFLAGS) -Ihost-tool" $(HOST_SRC) $(COMMON_SRC); \
	  each "$(HOST_CFLAGS) -Ihost-tool $(SHIM_CFLAGS)" $(SHIM_SRC); \
	  each "$(SCAN_MUSL_CFLAGS) -Iguest-init" $(wildcard guest-init/*.c) $(COMMON_SRC); \
	  each "$(SCAN_MUSL_CFLAGS) -Iguest-agent" $(wildcard guest-agent/*.c)'

# Rewrites files in place: run it on your own files only, e.g. make format FILES="host-tool/x.c".
format:
	clang-format -i $(or $(FILES),$(LINT_C))

# The guest programs must be static (they run before any root filesystem).
check-static: $(B)/bin/chvm-init $(B)/bin/chvm-agent
	@for f in $^; do \
	  if file -b $$f | grep -q 'statically linked' && ! readelf -l $$f | grep -q INTERP; then \
	    echo "$$f: static"; else echo "$$f: NOT static" >&2; exit 1; fi; \
	done


# ---- end section: setup + images + CI ----

# ---- section: guest-init + initrd ----
# The initramfs: chvm-init as /init, the agent (when guest-agent/ has a
# main.c), the kernel modules of initrd-skel/modules.list with their
# dependencies.  Reproducible: sorted entries, owner 0, fixed mtime.
# KERNEL_DIR: the kernel whose modules go in (its `version` file and
# `modules/` tree); empty for a kernel with the drivers built in.
INITRD := $(B)/initrd.cpio.gz
INITRD_AGENT := $(if $(wildcard guest-agent/main.c),$(B)/bin/chvm-agent)
KERNEL_DIR ?= $(B)/kernel
initrd: $(INITRD)
$(INITRD): $(B)/bin/chvm-init $(INITRD_AGENT) guest-init/mkinitrd.py $(shell find initrd-skel -type f) $(if $(KERNEL_DIR),$(KERNEL_DIR)/version)
	python3 guest-init/mkinitrd.py --skel initrd-skel --init $(B)/bin/chvm-init \
	  --agent $(B)/bin/chvm-agent $(if $(KERNEL_DIR),--kernel $(KERNEL_DIR)) -o $@

UNIT_test_config_SRC := guest-init/config.c common/err.c common/num.c
UNIT_test_config_CFLAGS := -Iguest-init
UNIT_test_init_spec_SRC := guest-init/spec.c guest-init/config.c common/err.c common/num.c
UNIT_test_init_spec_CFLAGS := -Iguest-init
# The config disk contract: host-tool renders, guest-init parses.
UNIT_test_init_config_contract_SRC := guest-init/config.c guest-init/spec.c
UNIT_test_init_config_contract_CFLAGS := -Iguest-init
UNIT_test_init_button_SRC := guest-init/button.c guest-init/io.c common/err.c common/log.c
UNIT_test_init_button_CFLAGS := -Iguest-init
UNIT_test_init_reap_SRC := guest-init/reap.c guest-init/button.c guest-init/io.c guest-init/mount.c \
  guest-init/disks.c guest-init/config.c common/err.c common/log.c common/num.c
UNIT_test_init_reap_CFLAGS := -Iguest-init
FUZZ_fuzz_config_SRC := guest-init/config.c common/err.c common/num.c
FUZZ_fuzz_config_CFLAGS := -Iguest-init

# Unit tests and a short fuzz run of this section; the QEMU boots are in
# tests/integration/test_guest_init.py, the boot benchmark in bench-boot.
.PHONY: test-guest-init bench-boot
test-guest-init: $(B)/tests/unit/test_config $(B)/tests/unit/test_init_spec \
  $(B)/tests/unit/test_init_config_contract $(B)/tests/fuzz/fuzz_config
	$(B)/tests/unit/test_config
	$(B)/tests/unit/test_init_spec
	$(B)/tests/unit/test_init_config_contract
	@mkdir -p tests/fuzz/corpus-run/config
	$(B)/tests/fuzz/fuzz_config -max_total_time=$${FUZZ_SECONDS:-20} tests/fuzz/corpus-run/config tests/fuzz/corpus/config
bench-boot: $(INITRD)
	python3 tests/bench/bench_boot.py
# ---- end section: guest-init + initrd ----

# ---- section: guest-agent + proto ----
# The agent also builds for the host (glibc; run with --test-mode, which
# never freezes, sets the clock or powers off) so that unit tests, fuzzers
# and the benchmark talk to a real agent on loopback.
#   make test-agent    unit tests (framing, agent logic, every request against the agent)
#   make bench-agent   agent round trip and Forward throughput vs direct TCP
AGENT_LIB_SRC := $(filter-out guest-agent/main.c,$(wildcard guest-agent/*.c))
AGENT_HOST_LIBS := $(shell pkg-config --libs libevent_core libevent_extra libprotobuf-c 2>/dev/null)
AGENT_GEN := $(B)/gen/agent.pb-c.c
AGENT_TEST_SRC := $(AGENT_LIB_SRC) common/err.c common/frame.c common/log.c common/num.c $(AGENT_GEN)
AGENT_HDRS := $(wildcard guest-agent/*.h common/*.h) $(B)/gen/agent.pb-c.h

# ASan+UBSan agent for the unit tests; optimized one for the benchmark.
$(B)/tests/chvm-agent-host: $(AGENT_SRC) $(AGENT_HDRS)
	@mkdir -p $(@D)
	$(CC) $(TEST_CFLAGS) -Iguest-agent -o $@ $(AGENT_SRC) $(AGENT_HOST_LIBS)
$(B)/tests/chvm-agent-bench: $(AGENT_SRC) $(AGENT_HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) -Iguest-agent -o $@ $(AGENT_SRC) $(AGENT_HOST_LIBS)
$(B)/tests/bench/bench_agent: tests/bench/bench_agent.c $(AGENT_HDRS) $(B)/lib/libchvm.a
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -Ihost-tool -o $@ $< $(B)/lib/libchvm.a $(HOST_LIBS) -lpthread

UNIT_test_frame_SRC := common/frame.c common/err.c
UNIT_test_num_SRC := common/num.c
UNIT_test_agent_hooks_SRC := guest-agent/hooks.c common/err.c common/log.c
UNIT_test_agent_hooks_CFLAGS := -Iguest-agent
UNIT_test_agent_hooks_DEPS := guest-agent/hooks.h
UNIT_test_agent_parse_SRC := $(AGENT_TEST_SRC)
UNIT_test_agent_parse_CFLAGS := -Iguest-agent
UNIT_test_agent_parse_LIBS := $(AGENT_HOST_LIBS)
UNIT_test_agent_parse_DEPS := $(AGENT_HDRS)
UNIT_test_agent_CFLAGS := -Ihost-tool -DAGENT_HOST_BIN='"$(CURDIR)/$(B)/tests/chvm-agent-host"'
UNIT_test_agent_LIBS := -lprotobuf-c -lpthread
UNIT_test_agent_DEPS := $(AGENT_HDRS) $(B)/tests/chvm-agent-host
FUZZ_fuzz_frame_SRC := common/frame.c common/err.c
FUZZ_fuzz_agent_frame_SRC := $(AGENT_TEST_SRC)
FUZZ_fuzz_agent_frame_CFLAGS := -Iguest-agent
FUZZ_fuzz_agent_frame_LIBS := $(AGENT_HOST_LIBS)
FUZZ_fuzz_agent_frame_DEPS := $(AGENT_HDRS)
FUZZ_fuzz_agent_text_SRC := $(AGENT_TEST_SRC)
FUZZ_fuzz_agent_text_CFLAGS := -Iguest-agent
FUZZ_fuzz_agent_text_LIBS := $(AGENT_HOST_LIBS)
FUZZ_fuzz_agent_text_DEPS := $(AGENT_HDRS)

AGENT_UNIT := $(B)/tests/unit/test_frame $(B)/tests/unit/test_agent_parse $(B)/tests/unit/test_agent
.PHONY: test-agent bench-agent
test-agent: $(AGENT_UNIT)
	@set -e; for t in $(AGENT_UNIT); do echo "== $$t"; $$t; done
bench-agent: $(B)/tests/chvm-agent-bench $(B)/tests/bench/bench_agent
	tests/bench/bench_agent.sh $(B)/tests/chvm-agent-bench $(B)/tests/bench/bench_agent
# ---- end section: guest-agent + proto ----

# ---- section: host-tool lifecycle ----
# -- sub-block: cloud-hypervisor backend (ch_api, backend_ch, proc; micro guest) --
# Unit tests and fuzzing use the generic rules of the infra section.  The
# integration test and the benchmark skip with one line when
# cloud-hypervisor or a /dev/kvm that can run the micro guest is missing.
test-prereqs: ch-driver micro-guest
UNIT_test_ch_double_DEPS := tests/doubles/ch_api_double.py
MICRO_DIR := $(B)/tests/micro-guest
MICRO_ELF := $(MICRO_DIR)/micro.elf
CH_UNIT := $(B)/tests/unit/test_ch_api $(B)/tests/unit/test_ch_double
.PHONY: micro-guest ch-driver ch-unit ch-fuzz ch-integration ch-bench

# Freestanding PVH ELF: no libc, no SSE (nothing sets up FPU state), no red zone.
$(MICRO_ELF): tests/micro-guest/entry.S tests/micro-guest/main.c tests/micro-guest/micro.ld
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -O2 -Wall -Wextra -Werror -ffreestanding -fno-pic -fno-pie \
	  -fno-stack-protector -fcf-protection=none -mno-red-zone -mgeneral-regs-only \
	  -c tests/micro-guest/main.c -o $(MICRO_DIR)/main.o
	$(CC) -c tests/micro-guest/entry.S -o $(MICRO_DIR)/entry.o
	ld -nostdlib -static -no-pie -z noexecstack -T tests/micro-guest/micro.ld \
	  -o $@ $(MICRO_DIR)/entry.o $(MICRO_DIR)/main.o
# The same guest flooding its serial port first (flood=6000 by default),
# for chvm run, whose kernel command line is chvm's own.
$(MICRO_DIR)/micro-flood.elf: $(MICRO_ELF)
	$(CC) -std=gnu11 -O2 -Wall -Wextra -Werror -ffreestanding -fno-pic -fno-pie \
	  -fno-stack-protector -fcf-protection=none -mno-red-zone -mgeneral-regs-only -DMICRO_FLOOD=6000 \
	  -c tests/micro-guest/main.c -o $(MICRO_DIR)/main-flood.o
	ld -nostdlib -static -no-pie -z noexecstack -T tests/micro-guest/micro.ld \
	  -o $@ $(MICRO_DIR)/entry.o $(MICRO_DIR)/main-flood.o
micro-guest: $(MICRO_ELF) $(MICRO_DIR)/micro-flood.elf

$(B)/tests/ch-driver: tests/integration/ch_driver.c $(B)/lib/libchvm.a
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -Ihost-tool -o $@ tests/integration/ch_driver.c $(B)/lib/libchvm.a $(HOST_LIBS)
ch-driver: $(B)/tests/ch-driver

ch-unit: $(CH_UNIT)
	@set -e; for t in $(CH_UNIT); do $$t; done
ch-fuzz: $(B)/tests/fuzz/fuzz_ch_response
	@mkdir -p tests/fuzz/corpus-run/ch_response
	$< -max_total_time=$${FUZZ_SECONDS:-20} -max_len=65536 tests/fuzz/corpus-run/ch_response tests/fuzz/corpus/ch_response
ch-integration: $(B)/tests/ch-driver $(MICRO_ELF)
	python3 -m pytest -rs -v tests/integration/test_ch.py
# chvm with each CH build of ../shared/tools inside a KVM host under QEMU
# (tests/integration/test_kvmhost.py), every step for every build (make test
# runs the shorter default plan); slow: nested software emulation.
.PHONY: test-kvmhost
test-kvmhost: $(B)/bin/chvm initrd $(MICRO_ELF)
	CHVM_KVMHOST_FULL=1 python3 -m pytest -rs -v -s --durations=0 tests/integration/test_kvmhost.py
# The standby/restore soak (tests/soak/soak.py): CYCLES (default 100)
# cycles of one VM with --overlay disk on a tap, a guest counter file and a
# playwright-core client evaluating once a second; prints lost lines and
# CDP errors.  soak: the QEMU backend here; soak-kvmhost: CH inside the KVM
# host (CHVM_SOAK_CH picks the build, v48.0 by default).  Not in make test:
# 100 cycles take 25 minutes here and about 2 hours nested.
.PHONY: soak soak-kvmhost
soak: $(B)/bin/chvm initrd
	python3 tests/soak/soak.py qemu $(CYCLES)
soak-kvmhost: $(B)/bin/chvm initrd $(MICRO_ELF)
	python3 tests/soak/soak.py kvmhost $(CYCLES)
ch-bench: $(B)/tests/ch-driver $(MICRO_ELF)
	nice python3 tests/bench/bench_ch.py
# What a snapshot holds per guest RAM setting (private, shared, free page
# reporting, quiesce; copy and ondemand restore): CH v53.0 inside the KVM
# host, the micro guest and the Chromium stand-in at 2 GiB, one run, the
# table of docs/FINDINGS.md.  About 40 minutes; not in make test.
.PHONY: bench-snapshot
bench-snapshot: $(B)/bin/chvm initrd $(B)/tests/ch-driver $(MICRO_ELF)
	python3 tests/bench/bench_snapshot.py
# -- end sub-block: cloud-hypervisor backend --

# Unit tests and the vm.json fuzz target of the lifecycle part (vmstate,
# configdisk, net); rules are the generic ones of the infra section.

LIFECYCLE_UNIT := $(addprefix $(B)/tests/unit/,test_vmstate test_configdisk test_net test_liveview test_net_ns test_qmp)
.PHONY: lifecycle-unit lifecycle-fuzz lifecycle-integration
# Build and run this part's unit tests.
lifecycle-unit: $(LIFECYCLE_UNIT)
	@set -e; for t in $(LIFECYCLE_UNIT); do $$t; done
# Fuzz the vm.json parser for $${FUZZ_SECONDS:-20} s from the committed corpus.
lifecycle-fuzz: $(B)/tests/fuzz/fuzz_vmstate
	@mkdir -p tests/fuzz/corpus-run/vmstate
	$< -max_total_time=$${FUZZ_SECONDS:-20} tests/fuzz/corpus-run/vmstate tests/fuzz/corpus/vmstate
# End to end with the QEMU backend (slow: TCG); skips naming what is missing.
lifecycle-integration: $(B)/bin/chvm
	python3 -m pytest -rs -v tests/integration/test_chvm_qemu.py tests/integration/test_chvm_qemu_tap.py
# ---- end section: host-tool lifecycle ----

# ---- section: templates and clones (issue 23) ----
# The micro guest touching N MiB at boot (chvm run cannot change its
# command line): micro-touch256.elf for tests/integration/test_template.py,
# the bench's sizes for make bench-fork (tests/bench/bench_fork.py).
MICRO_TOUCH_SIZES := 256 512 2048 4096
$(MICRO_DIR)/micro-touch%.elf: tests/micro-guest/main.c $(MICRO_ELF)
	$(CC) -std=gnu11 -O2 -Wall -Wextra -Werror -ffreestanding -fno-pic -fno-pie \
	  -fno-stack-protector -fcf-protection=none -mno-red-zone -mgeneral-regs-only -DMICRO_TOUCH_MIB=$* \
	  -c tests/micro-guest/main.c -o $(MICRO_DIR)/main-touch$*.o
	ld -nostdlib -static -no-pie -z noexecstack -T tests/micro-guest/micro.ld \
	  -o $@ $(MICRO_DIR)/entry.o $(MICRO_DIR)/main-touch$*.o
test-prereqs: $(MICRO_DIR)/micro-touch256.elf
.PHONY: bench-fork
# Template vs copy restore with the micro guest under this host's KVM (CH
# v48 from $$CHVM_TEST_CH_EXTRA or PATH): the table of docs/FINDINGS.md.
# Several minutes; not in make test.
bench-fork: $(B)/bin/chvm initrd $(foreach n,$(MICRO_TOUCH_SIZES),$(MICRO_DIR)/micro-touch$(n).elf)
	nice python3 tests/bench/bench_fork.py
# The Chromium stand-in inside the KVM host with the newest CH build: its
# cold run, a standby and copy restore of it, the same image with
# --memory-file stood by and restored from that file, then a template and
# CLONES (default 10) clones at once (test_kvmhost.py; figures in
# build/test-results/fork-kvmhost.json).  About 40 minutes nested.
.PHONY: bench-fork-kvmhost
bench-fork-kvmhost: $(B)/bin/chvm initrd $(MICRO_ELF)
	CHVM_KVMHOST_CLONES=$${CLONES:-10} CHVM_KVMHOST_MEMORY=$${KVMHOST_MEMORY:-12G} CHVM_KVMHOST_MEMFILE=1 \
	  CHVM_KVMHOST_RESULTS=$(B)/test-results/fork-kvmhost.json CHVM_KVMHOST_VERSIONS=$$(ls ../shared/tools/cloud-hypervisor | sort -V | tail -1) \
	  python3 -m pytest -rs -v -s tests/integration/test_kvmhost.py \
	  -k "run_boots or standby_restore_copy or memory_file_restore or template_clones"
# ---- end section: templates and clones ----

# containerd inside the KVM host with CH: ctr run, containerd restarted,
# exec, pause, metrics, kill, a SIGKILLed shim, chvm run of the same image and
# a CRI pod, each timed (tests/integration/test_shim_kvmhost.py; figures in
# build/test-results/shim-kvmhost.json).  About 25 minutes nested.
.PHONY: test-shim-kvmhost
test-shim-kvmhost: $(B)/bin/chvm $(B)/bin/containerd-shim-chvm-v1 initrd $(MICRO_ELF)
	CHVM_KVMHOST_SHIM=1 python3 -m pytest -rs -v -s tests/integration/test_shim_kvmhost.py

# The root as virtio-pmem with DAX under CH inside the KVM host, beside the
# same image on a blk root in the same run (test_kvmhost.py's
# test_rootfs_pmem; figures in build/test-results/pmem-kvmhost.json).
.PHONY: bench-pmem-kvmhost
bench-pmem-kvmhost: $(B)/bin/chvm initrd $(MICRO_ELF)
	CHVM_KVMHOST_PMEM=1 CHVM_KVMHOST_RESULTS=$(B)/test-results/pmem-kvmhost.json \
	  CHVM_KVMHOST_VERSIONS=$$(ls ../shared/tools/cloud-hypervisor | sort -V | tail -1) \
	  python3 -m pytest -rs -v -s tests/integration/test_kvmhost.py -k "run_boots or playwright or ondemand or rootfs_pmem"
# Density: DENSITY_N (default 10) Chromium stand-in VMs (2 GiB) at once,
# all with a blk root, then all with a pmem root; a page loaded in each,
# then the VMMs' PSS/RSS, the host's MemAvailable drop and each standby's
# snapshot (tests/bench/bench_density.py; build/test-results/
# bench-density.json).  QEMU/TCG here, CH on a host with hardware KVM and
# cloud-hypervisor (DENSITY_BACKEND=qemu|ch picks): 3 minutes for 2 under
# TCG here, about 15-30 for 10.  Run it under flock /tmp/chvm-vmtests.lock.
# Not in make test.
DENSITY_N ?= 10
DENSITY_BACKEND ?= auto
.PHONY: bench-density
bench-density: $(B)/bin/chvm initrd
	python3 tests/bench/bench_density.py --count $(DENSITY_N) --backend $(DENSITY_BACKEND)
# The same with CH inside the KVM host (tests/integration/
# test_density_kvmhost.py; build/test-results/density-kvmhost.json): the
# newest CH build, DENSITY_N stand-in VMs (2 GiB, one vCPU) at once, blk
# roots then pmem roots, lowered to what the KVM host holds at guest RAM +
# 256 MiB a VM: 4 in its CHVM_KVMHOST_MEMORY (default here 12G; do not
# take more beside another KVM host on a 23 GiB machine).  They share its
# one vCPU: 44 minutes for 4 here, another KVM host beside it.  Not in
# make test.
.PHONY: bench-density-kvmhost
bench-density-kvmhost: $(B)/bin/chvm initrd $(MICRO_ELF)
	CHVM_KVMHOST_DENSITY=1 DENSITY_N=$(DENSITY_N) CHVM_KVMHOST_MEMORY=$${CHVM_KVMHOST_MEMORY:-12G} \
	  python3 -m pytest -rs -v -s tests/integration/test_density_kvmhost.py

# ---- section: supervisor + CDP endpoint (issue 11) ----
# The per-VM supervisor (host-tool/supervisor.c, libevent) and the pure
# parts of its CDP proxy: HTTP heads and /json rewriting (cdp_http.c), the
# WebSocket scanner (wsscan.c), the live-view packet watch (udpwatch.c),
# the control requests.  Unit tests and fuzz
# targets use the generic rules; the QEMU tap test is
# tests/integration/test_cdp_endpoint.py, the 50-cycle wake benchmark
# `make bench-cdp-wake` (tests/bench/bench_cdp_wake.py).
.PHONY: bench-cdp-wake
bench-cdp-wake: $(B)/bin/chvm initrd
	python3 tests/bench/bench_cdp_wake.py $(CYCLES)
# The live view's figures for make report (webrtc-qemu.json): first frame,
# frame rate and bitrate before the standby and after the restore, through
# QEMU's user network (test_chvm_qemu.py) and a tap with nft DNAT
# (test_chvm_qemu_tap.py), each file whole (its steps build on each other).
# About 3 minutes here.
.PHONY: bench-webrtc
bench-webrtc: $(B)/bin/chvm initrd
	rm -f $(B)/test-results/webrtc-qemu.json
	python3 -m pytest -rs -v -s -p no:cacheprovider \
	  tests/integration/test_chvm_qemu.py tests/integration/test_chvm_qemu_tap.py
	test -f $(B)/test-results/webrtc-qemu.json || { echo "bench-webrtc: no live view was watched" >&2; exit 1; }
	python3 -c 'import json, sys; n = len(json.load(open(sys.argv[1]))["paths"]); \
	  sys.exit(0 if n == 2 else "bench-webrtc: %d of 2 network paths watched before and after a restore" % n)' \
	  $(B)/test-results/webrtc-qemu.json
# ---- end section: supervisor + CDP endpoint ----

# ---- section: containerd shim (issue 25) ----
# containerd-shim-chvm-v1 (shim/, C on libevent and protobuf-c): the
# containerd runtime v2 shim that runs a container as a chvm VM.  The
# messages come from containerd's .proto files in proto/containerd/ (their
# sources and versions in its README.md), compiled one by one by protoc-c
# into $(B)/gen/shim/ under their import paths.  The shim links libchvm.a and
# runs `chvm` for the VM lifecycle.  Unit tests and the fuzz target use the
# generic rules; tests/integration/test_shim.py runs it under containerd.
SHIM_SRC := $(wildcard shim/*.c)
SHIM_LIB_SRC := $(filter-out shim/main.c,$(SHIM_SRC))
SHIM_CFLAGS := -Ishim -I$(B)/gen/shim
$(B)/gen/shim/%.pb-c.c $(B)/gen/shim/%.pb-c.h: proto/containerd/%.proto
	@mkdir -p $(B)/gen/shim
	protoc-c --proto_path=proto/containerd --c_out=$(B)/gen/shim $<
$(call obj,host,$(SHIM_SRC) $(SHIM_GEN_C)): HOST_CFLAGS += $(SHIM_CFLAGS)
$(call obj,host,$(SHIM_SRC) $(SHIM_GEN_C)): | $(SHIM_GEN_H)
$(B)/bin/containerd-shim-chvm-v1: $(call obj,host,$(SHIM_SRC) $(SHIM_GEN_C)) $(B)/lib/libchvm.a
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -o $@ $(call obj,host,$(SHIM_SRC) $(SHIM_GEN_C)) $(B)/lib/libchvm.a $(HOST_LIBS)
host: $(B)/bin/containerd-shim-chvm-v1
test-prereqs: $(B)/bin/containerd-shim-chvm-v1

# The shim's logic without main.c, with the generated code, for the tests.
SHIM_TEST_SRC := $(SHIM_LIB_SRC) $(SHIM_GEN_C)
UNIT_test_shim_ttrpc_SRC := $(SHIM_TEST_SRC)
UNIT_test_shim_ttrpc_CFLAGS := $(SHIM_CFLAGS)
UNIT_test_shim_ttrpc_DEPS := $(SHIM_GEN_H) $(wildcard shim/*.h)
UNIT_test_shim_task_SRC := $(SHIM_TEST_SRC)
UNIT_test_shim_task_CFLAGS := $(SHIM_CFLAGS)
UNIT_test_shim_task_DEPS := $(SHIM_GEN_H) $(wildcard shim/*.h)
UNIT_test_shim_spec_SRC := $(SHIM_TEST_SRC)
UNIT_test_shim_spec_CFLAGS := $(SHIM_CFLAGS)
UNIT_test_shim_spec_DEPS := $(SHIM_GEN_H) $(wildcard shim/*.h)
FUZZ_fuzz_shim_ttrpc_SRC := $(SHIM_TEST_SRC)
FUZZ_fuzz_shim_ttrpc_CFLAGS := $(SHIM_CFLAGS)
FUZZ_fuzz_shim_ttrpc_DEPS := $(SHIM_GEN_H) $(wildcard shim/*.h)

SHIM_UNIT := $(B)/tests/unit/test_shim_ttrpc $(B)/tests/unit/test_shim_spec
.PHONY: shim shim-unit shim-fuzz shim-integration
shim: $(B)/bin/containerd-shim-chvm-v1
shim-unit: $(SHIM_UNIT)
	@set -e; for t in $(SHIM_UNIT); do $$t; done
shim-fuzz: $(B)/tests/fuzz/fuzz_shim_ttrpc
	@mkdir -p tests/fuzz/corpus-run/shim_ttrpc
	$< -max_total_time=$${FUZZ_SECONDS:-20} tests/fuzz/corpus-run/shim_ttrpc tests/fuzz/corpus/shim_ttrpc
# One VM under Debian's containerd, QEMU/TCG here (minutes).
shim-integration: $(B)/bin/containerd-shim-chvm-v1 $(B)/bin/chvm initrd
	flock /tmp/chvm-vmtests.lock python3 -m pytest -rs -v tests/integration/test_shim.py
# ---- end section: containerd shim ----

# ---- section: report (issue 26) ----
# docs/report/: README.md and PNG plots from the benchmarks' results in
# docs/report/data/*.json (scripts/report/, python3-matplotlib).
# REPORT_RERUN=1 reruns the benchmarks first, each VM one under
# flock /tmp/chvm-vmtests.lock, and copies their fresh JSON there
# (REPORT_BENCHES="bench-boot bench-ch ..." picks some; all of them take
# 4-5 hours on a 2-core build host: the report adds up each rerun's time).  bench-hw: the same benchmarks on a
# host with hardware KVM and cloud-hypervisor, into data/hw-*.json.
REPORT_RERUN ?= 0
REPORT_BENCHES ?=
.PHONY: report bench-hw
report:
ifeq ($(REPORT_RERUN),1)
	python3 scripts/report/rerun.py --only "$(REPORT_BENCHES)"
endif
	python3 scripts/report/report.py
bench-hw:
	python3 scripts/report/rerun.py --hw
	python3 scripts/report/report.py
# ---- end section: report ----
