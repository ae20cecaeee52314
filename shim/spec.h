/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The OCI runtime spec of a bundle (config.json) as far as a chvm VM takes
 * it: process.args (the entrypoint and cmd merged), env, cwd, user uid/gid,
 * hostname, the annotations (chvm's own among them checked), the network
 * namespace's path and the VM's size from linux.resources (a container's,
 * not a pod sandbox's); and how it becomes what a cached image's image.json
 * holds (struct oci_config), which `chvm run` writes into the config disk.
 * No I/O: unit-tested and fuzzed.
 */
#ifndef CHVM_SHIM_SPEC_H
#define CHVM_SHIM_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "image/image.h"
#include "state/vmrec.h"

#define SPEC_ANNOTATIONS_MAX 256
#define SPEC_NETNS_MAX 63
/* chvm run's bounds (host-tool/cli/cmd_run.c): --cpus 1..64, --memory
   128M..1T. */
#define SPEC_CPUS_MAX 64
#define SPEC_MEMORY_MIN_MIB 128
#define SPEC_MEMORY_MAX_MIB (UINT64_C (1) << 20)
/* containerd's CRI plugin marks a pod's containers with these. */
#define SPEC_ANN_TYPE "io.kubernetes.cri.container-type"
#define SPEC_ANN_SANDBOX "io.kubernetes.cri.sandbox-id"
/* chvm's own (docs/containerd.md): the template the VM is cloned from
   (`chvm run --from NAME`), what Pause does ("pause": the vCPUs stop;
   "standby": `chvm standby`, a snapshot on disk and no VMM), and whether
   the guest runs chvm's agent ("false": a guest of its own, cloned,
   stood by and restored without it). */
#define SPEC_ANN_TEMPLATE "io.chvm.template"
#define SPEC_ANN_PAUSE "io.chvm.pause"
#define SPEC_ANN_AGENT "io.chvm.agent"

struct shim_spec
{
  char **args;
  size_t n_args;
  char **env;
  size_t n_env;
  char *cwd; /* "/" when absent */
  uint32_t uid, gid;
  char *hostname; /* "" when absent */
  char **ann_keys, **ann_values;
  size_t n_ann;
  /* linux.namespaces' network entry's path, a namespace of /run/netns
     (CNI's, as `ip netns` names it): its name, "" when none is given or
     the path is elsewhere (/proc/PID/ns/net). */
  char netns[SPEC_NETNS_MAX + 1];
  /* The VM's size from linux.resources, 0 for chvm run's default: vCPUs
     from cpu.quota / cpu.period (rounded up; a quota above 64 CPUs gets
     64), guest RAM from memory.limit (MiB, rounded down; above 1 TiB
     gets 1 TiB).  Left 0 in a pod's sandbox (no VM). */
  unsigned cpus;
  uint64_t memory_mib;
  /* SPEC_ANN_TEMPLATE: a template's name (chvm's rules for a VM name), ""
     when none.  Refused in a pod's container: a clone keeps the network
     of its own namespace. */
  char template_name[VM_NAME_MAX + 1];
  bool standby;  /* SPEC_ANN_PAUSE is "standby" ("pause" or absent: false) */
  bool no_agent; /* SPEC_ANN_AGENT is "false" ("true" or absent: false) */
};

/* What a bundle is in a CRI pod (SPEC_ANN_TYPE): not one (`ctr run`), the
   pod's sandbox (its pause container), or a container of the pod. */
enum shim_role
{
  SHIM_ROLE_PLAIN,
  SHIM_ROLE_SANDBOX,
  SHIM_ROLE_CONTAINER,
};

/* Parses config.json (at most OCI_JSON_MAX bytes).  Strings must fit a
   config disk line: at most OCI_STR_MAX bytes, no NUL, no newline. */
int shim_spec_parse (const char *json, size_t len, struct shim_spec **out, struct err **err);
/* An OCI process object alone (an Exec's spec): args, env, cwd, user;
   no hostname or annotations. */
int shim_spec_parse_process (const char *json, size_t len, struct shim_spec **out,
                             struct err **err);
void shim_spec_free (struct shim_spec *s);
void shim_spec_freep (struct shim_spec **s);
#define cleanup_spec __attribute__ ((cleanup (shim_spec_freep)))

/* The annotation's value, or NULL. */
const char *shim_spec_annotation (const struct shim_spec *s, const char *key);

enum shim_role shim_spec_role (const struct shim_spec *s);
/* The id of the shim that serves container id: its pod's sandbox's
   (SPEC_ANN_SANDBOX) when it has one, else its own. */
const char *shim_spec_group (const struct shim_spec *s, const char *id);

/* image.json's exec fields for the VM: entrypoint = args, no cmd, env,
   workdir = cwd, user = "uid:gid". */
int shim_spec_to_oci (const struct shim_spec *s, struct oci_config **out, struct err **err);

#endif
