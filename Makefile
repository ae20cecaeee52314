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
HOST_CFLAGS := $(CFLAGS_COMMON) $(shell pkg-config --cflags libcurl json-c libprotobuf-c 2>/dev/null)
HOST_LIBS := $(shell pkg-config --libs libcurl json-c libprotobuf-c 2>/dev/null)

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

# ---- host-tool --------------------------------------------------------------------
CHVM_SRC := $(wildcard host-tool/*.c) $(COMMON_SRC) $(B)/gen/agent.pb-c.c
$(B)/bin/chvm: $(CHVM_SRC) $(wildcard host-tool/*.h common/*.h) $(B)/gen/agent.pb-c.h
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -Ihost-tool -o $@ $(CHVM_SRC) $(HOST_LIBS)

.PHONY: all setup test guest host initrd clean
guest: $(B)/bin/chvm-init $(B)/bin/chvm-agent
host: $(B)/bin/chvm
all: guest host

clean:
	rm -rf $(B)/bin $(B)/gen $(B)/obj $(B)/tests

# ==== sections owned by one part each; edit only your own ====================
# ---- section: setup + images + CI (infra) ----
# ---- end section: setup + images + CI ----

# ---- section: guest-init + initrd ----
# ---- end section: guest-init + initrd ----

# ---- section: guest-agent + proto ----
# ---- end section: guest-agent + proto ----

# ---- section: host-tool lifecycle ----
# ---- end section: host-tool lifecycle ----
