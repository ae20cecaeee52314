/* SPDX-License-Identifier: Apache-2.0 */
/*
 * chvm run --from TEMPLATE [--name X] [--count N]: new VMs from a template
 * (vm/template.h).  Each clone is made as a VM in standby, under the state
 * lock: its own directory, vm.json (the template VM's settings, a VMM uid,
 * CDP endpoint and token of its own), config and overlay disks copied, a
 * snapshot whose config.json the backend edited (vmm/ch_clone.h: guest RAM
 * the template's memory file mapped copy-on-write, or a copy of it), and a
 * network namespace of its own holding the template's bridge, tap, guest
 * address and MAC.  Then `chvm restore --no-agent` brings it up (the lock
 * is held only for that), and outside the lock the agent thaws it (the
 * clock, the connections of before) and waits for the browser.  With
 * --count N, N children run at once.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "cli/commands.h"
#include "cli/report.h"
#include "cli/self.h"
#include "clock.h"
#include "net/net.h"
#include "net/netns.h"
#include "num.h"
#include "supervisor/supervisor.h"
#include "sys/fs.h"
#include "sys/json.h"
#include "sys/port.h"
#include "sys/rand.h"
#include "vm/template.h"
#include "vm/vmctl.h"
#include "vm/vmmuser.h"

#define COUNT_MAX 64
#define DEFAULT_READY_S 300
#define NETNS_PREFIX "chvm-"

enum clone_memory
{
  CLONE_AUTO, /* cow, and copy when the VMM refuses it */
  CLONE_COW,
  CLONE_COPY,
};

struct from_opts
{
  const char *tmpl, *name;
  char cdp_addr[INET_ADDRSTRLEN]; /* --cdp: the endpoints' address (IPv4), */
  uint16_t cdp_port;              /* and the first clone's port (0: free ports) */
  unsigned count, timeout_s;
  bool agent;
  enum clone_memory memory;
  char memory_why[256];
};

static int
usage (FILE *out, int status)
{
  fputs ("Usage: chvm run --from TEMPLATE [--name NAME] [--count N] [--memory auto|cow|copy]\n"
         "                [--no-agent] [--timeout SECONDS] [--json]\n\n"
         "Start VMs from a template (chvm template create): each is a VM of its own (ps,\n"
         "inspect, logs, cdp, standby, restore, stop, rm) with its own directory, disks,\n"
         "VMM uid, CDP endpoint and a network namespace chvm-NAME holding the template's\n"
         "bridge, tap and guest address.  Its guest RAM maps the template's memory\n"
         "copy-on-write (--memory cow); copy gives it a copy; auto (default) is cow and\n"
         "copy when the VMM refuses cow.  --json says which was used (\"memory\") and why.\n"
         "  --name NAME    the VM's name (with --count N: NAME-1 .. NAME-N; default\n"
         "                 TEMPLATE-<random>)\n"
         "  --count N      start N VMs at once (1-64)\n"
         "  --cdp [ADDR:]PORT\n"
         "                 the CDP endpoints on ADDR (default 127.0.0.1), the Nth clone's on\n"
         "                 PORT+N-1 (PORT 0 or none: free ports)\n"
         "  --no-agent     do not thaw the guest or wait for its browser (guests without\n"
         "                 the agent)\n"
         "  --timeout S    wait for the browser at most this long (default 300), and for\n"
         "                 the state lock behind the other clones as long\n",
         out);
  return status;
}

static int
parse (int argc, char **argv, struct from_opts *o)
{
  static const struct option longopts[] = {
    { "from", required_argument, NULL, 'f' },
    { "name", required_argument, NULL, 'n' },
    { "count", required_argument, NULL, 'c' },
    { "memory", required_argument, NULL, 'm' },
    { "no-agent", no_argument, NULL, 'A' },
    { "timeout", required_argument, NULL, 't' },
    { "cdp", required_argument, NULL, 'C' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  cleanup_err struct err *err = NULL;
  bool beyond;
  uint64_t v;
  int c;

  *o = (struct from_opts){
    .count = 1, .timeout_s = DEFAULT_READY_S, .agent = true, .cdp_addr = "127.0.0.1"
  };
  optind = 1;
  opterr = 0;
  while ((c = getopt_long (argc, argv, "h", longopts, NULL)) != -1)
    switch (c)
      {
      case 'f':
        o->tmpl = optarg;
        break;
      case 'n':
        o->name = optarg;
        break;
      case 'c':
      case 't':
        if (num_parse_u64_str (optarg, c == 'c' ? COUNT_MAX : 86400, &v) < 0 || v == 0)
          return fprintf (stderr, "chvm run: bad --%s '%s'\n", c == 'c' ? "count" : "timeout",
                          optarg),
                 2;
        *(c == 'c' ? &o->count : &o->timeout_s) = (unsigned) v;
        break;
      case 'm':
        if (strcmp (optarg, "auto") && strcmp (optarg, "cow") && strcmp (optarg, "copy"))
          return fprintf (stderr, "chvm run: bad --memory '%s' (auto, cow or copy)\n", optarg), 2;
        o->memory = strcmp (optarg, "auto") == 0  ? CLONE_AUTO
                    : strcmp (optarg, "cow") == 0 ? CLONE_COW
                                                  : CLONE_COPY;
        break;
      case 'A':
        o->agent = false;
        break;
      case 'C':
        if (port_parse_ipv4 (optarg, o->cdp_addr, sizeof o->cdp_addr, &o->cdp_port, &beyond, &err)
            < 0)
          return fprintf (stderr, "chvm run: bad --cdp: %s\n", err->msg), 2;
        if (beyond)
          fprintf (stderr, "chvm: warning: " CLI_CDP_BEYOND "\n", o->cdp_addr);
        break;
      case 'h':
        return usage (stdout, 0);
      default:
        fprintf (stderr,
                 "chvm run --from: unknown option '%s' (the VM's settings are the "
                 "template's)\n",
                 argv[optind - 1]);
        return 2;
      }
  if (optind < argc || o->tmpl == NULL)
    return usage (stderr, 2);
  return -1;
}

/* The clone's own parts of its record: namespace, endpoint (o's address,
   o's port or a free one), VMM uid. */
static int
own_parts (const char *root, const struct from_opts *o, struct vm_record *r, struct err **err)
{
  uint16_t port = o->cdp_port;

  if (strlen (r->name) + strlen (NETNS_PREFIX) >= sizeof r->netns)
    return err_make (err, ENAMETOOLONG, "a clone's name has at most %zu characters",
                     sizeof r->netns - strlen (NETNS_PREFIX) - 1);
  snprintf (r->netns, sizeof r->netns, NETNS_PREFIX "%s", r->name);
  r->netns_owned = true;
  supervisor_record_env (r);
  if ((port == 0 && port_pick (o->cdp_addr, &port, err) < 0)
      || rand_hex (r->cdp_token, VM_CDP_TOKEN_BYTES, err) < 0)
    return -1;
  snprintf (r->cdp_endpoint, sizeof r->cdp_endpoint, "%s:%u", o->cdp_addr, (unsigned) port);
  if (r->cdp_max_clients == 0)
    r->cdp_max_clients = SUPERVISOR_DEFAULT_MAX_CLIENTS;
  return vmmuser_assign (root, r, err);
}

/* dir's disks and snapshot from template tdir; guest RAM cow or copied. */
static int
clone_files (const struct backend_ops *be, const char *tdir, const struct template_info *t,
             const char *dir, struct vm_record *r, bool cow, struct err **err)
{
  char src[VM_PATH_MAX + 64], snap[VM_PATH_MAX + 32], tsnap[VM_PATH_MAX + 64];
  uid_t uid = r->vmm_uid;

  snprintf (src, sizeof src, "%s/config.img", tdir);
  if (fs_copy_file (src, r->config_disk, 0640, err) < 0)
    return -1;
  snprintf (src, sizeof src, "%s/upper.img", tdir);
  if (r->upper_disk[0] && fs_copy_file (src, r->upper_disk, 0600, err) < 0)
    return -1;
  snprintf (src, sizeof src, "%s/memory", tdir);
  if ((size_t) snprintf (r->memory_file, sizeof r->memory_file, "%s", src) >= sizeof r->memory_file)
    return err_make (err, ENAMETOOLONG, "%s", src);
  if (!cow)
    {
      if ((size_t) snprintf (r->memory_file, sizeof r->memory_file, "%s/memory", dir)
          >= sizeof r->memory_file)
        return err_make (err, ENAMETOOLONG, "%s/memory", dir);
      if (fs_copy_file (src, r->memory_file, 0600, err) < 0
          || fs_give (r->memory_file, uid, uid, -1, true, err) < 0)
        return -1;
    }
  snprintf (snap, sizeof snap, "%s/snapshot", dir);
  snprintf (tsnap, sizeof tsnap, "%s/snapshot", tdir);
  if (mkdir (snap, 0700) < 0)
    return err_make (err, errno, "mkdir %s", snap);
  if (be->clone_snapshot (tsnap, t->source_dir, dir, r->memory_file, cow, snap, err) < 0)
    return -1;
  /* The VMM (its uid) reads the snapshot. */
  snprintf (src, sizeof src, "%s/config.json", snap);
  snprintf (tsnap, sizeof tsnap, "%s/state.json", snap);
  if (fs_give (snap, uid, uid, -1, true, err) < 0 || fs_give (src, uid, uid, -1, true, err) < 0
      || fs_give (tsnap, uid, uid, -1, true, err) < 0)
    return -1;
  return 0;
}

/* Under the state lock: the clone as a VM in standby. */
static int
materialize (const char *root, const struct from_opts *o, const struct backend_ops *be,
             const struct template_info *t, const char *name, bool cow, char *dir, size_t dlen,
             struct err **err)
{
  cleanup_free struct vm_record *r = calloc (1, sizeof *r);
  char tdir[VM_PATH_MAX];
  bool made = false, ns = false;
  cleanup_err struct err *e2 = NULL;

  if (r == NULL)
    return err_make (err, ENOMEM, "clone");
  if (template_dir (root, t->name, tdir, sizeof tdir, err) < 0
      || vmstate_dir (root, name, dir, dlen, err) < 0
      || template_clone_record (tdir, name, dir, r, err) < 0 || own_parts (root, o, r, err) < 0)
    return -1;
  if (mkdir (dir, 0700) < 0)
    return errno == EEXIST ? err_make (err, 0, "a VM named '%s' already exists", name)
                           : err_make (err, errno, "mkdir %s", dir);
  made = true;
  if (clone_files (be, tdir, t, dir, r, cow, err) < 0 || vmmuser_prepare (root, dir, r, err) < 0)
    goto fail;
  if (net_netns_add (r->netns, err) < 0)
    goto fail;
  ns = true;
  /* The bridge, NAT table and tap come with the restore (net_ensure_tap in
     the clone's namespace): a clone publishes nothing. */
  if (vmrec_save (root, r, err) < 0)
    goto fail;
  return 0;
fail:
  net_enter_netns ("", &e2);
  err_release (&e2);
  if (ns)
    net_netns_delete (r->netns, &e2);
  err_release (&e2);
  if (made)
    fs_rmtree (dir, &e2);
  return -1;
}

/* The clone's own identity: its name as hostname, a new machine-id, host
   entropy (the agent reseeds the kernel's RNG with it); into j what the
   agent changed. */
static int
identity (struct agent_client *a, const char *name, int timeout_ms, struct json_object *j,
          struct err **err)
{
  char mid[33];
  uint8_t entropy[64];
  struct agent_identity id;
  struct json_object *o;

  if (rand_hex (mid, 16, err) < 0 || getrandom (entropy, sizeof entropy, 0) != sizeof entropy)
    return err && *err ? -1 : err_make (err, errno, "getrandom");
  if (agent_identity (a, name, mid, entropy, sizeof entropy, &id, timeout_ms, err) < 0)
    return err_wrap (err, "identity");
  o = json_object_new_object ();
  json_object_object_add (o, "hostname", json_object_new_string (id.hostname_set ? name : ""));
  json_object_object_add (o, "machine_id", json_object_new_string (id.machine_id_set ? mid : ""));
  json_object_object_add (o, "entropy_bytes", json_object_new_int64 (id.entropy_bytes));
  json_object_object_add (o, "reseeded", json_object_new_boolean (id.reseeded));
  json_object_object_add (j, "identity", o);
  return 0;
}

/* Outside the lock: thaw (restored, the clock set), identity, and the wait
   for the browser. */
static int
thaw_and_ready (const struct global_opts *g, const char *name, unsigned timeout_s,
                struct json_object *j, struct err **err)
{
  cleanup_free struct vmctl *c = calloc (1, sizeof *c);
  struct agent_client *a = NULL;
  Chvm__Agent__Frame *reply = NULL;
  double deadline = clock_now_ms () + timeout_s * 1000.0;
  int r = -1;

  if (c == NULL || vmctl_open (g->state_dir, name, false, c, err) < 0)
    return c == NULL ? err_make (err, ENOMEM, "clone") : -1;
  if (vmctl_agent (c, clock_left_ms (deadline) ?: 1, &a, err) < 0
      || agent_thaw (a, agent_now_ns (), true, NULL, NULL, NULL, clock_left_ms (deadline) ?: 1, err)
             < 0
      || identity (a, name, clock_left_ms (deadline) ?: 1, j, err) < 0
      || agent_wait_ready (a, clock_left_ms (deadline) ?: 1, c->rec.cdp_port, &reply, err) < 0)
    err_wrap (err, "VM %s: agent", name);
  else
    r = 0;
  if (reply != NULL)
    chvm__agent__frame__free_unpacked (reply, NULL);
  if (a != NULL)
    agent_close (a);
  vmctl_close (c);
  return r;
}

/* Makes clone name (memory cow or copied) and restores it, without the
   agent; on failure nothing of it is left. */
static int
attempt (const struct global_opts *g, const struct from_opts *o, const char *root,
         const struct backend_ops *be, const struct template_info *t, const char *name, bool cow,
         struct json_object **restored, struct err **err)
{
  char timeout[16], dir[VM_PATH_MAX];
  const char *restore[] = { "restore", "--no-agent", "--timeout", timeout, name, NULL },
             *rm[] = { "rm", "-f", name, NULL };
  cleanup_json struct json_object *gone = NULL;
  cleanup_err struct err *e2 = NULL;
  /* Clones made at once take the lock in turn: each waits as long as
     --timeout allows (the restores behind it too). */
  int lock = vmstate_lock (root, MAX (VMCTL_LOCK_MS, (int) o->timeout_s * 1000), err), r;

  snprintf (timeout, sizeof timeout, "%u", o->timeout_s);

  if (lock < 0)
    return -1;
  r = materialize (root, o, be, t, name, cow, dir, sizeof dir, err);
  close (lock);
  if (r < 0)
    return -1;
  if (cli_self_json (g, restore, restored, err) < 0)
    {
      cli_self_json (g, rm, &gone, &e2);
      return -1;
    }
  return 0;
}

/* The clone's line of the report. */
static void
describe (const struct global_opts *g, const char *name, struct json_object *j)
{
  cleanup_free struct vmctl *c = calloc (1, sizeof *c);
  cleanup_err struct err *e = NULL;
  char url[256];

  if (c == NULL || vmctl_open (g->state_dir, name, false, c, &e) < 0)
    return;
  vmrec_endpoint_url (&c->rec, url, sizeof url);
  json_object_object_add (j, "pid", json_object_new_int (c->rec.rt.vmm_pid));
  json_object_object_add (j, "endpoint", json_object_new_string (url));
  json_object_object_add (j, "netns", json_object_new_string (c->rec.netns));
  json_object_object_add (j, "address", json_object_new_string (c->rec.address));
  vmctl_close (c);
}

static int
clone_one (const struct global_opts *g, const struct from_opts *o, const char *name,
           struct json_object *j, struct err **err)
{
  cleanup_json struct json_object *restored = NULL;
  char root[VM_PATH_MAX], version[64], why[512];
  const struct backend_ops *be;
  struct template_info t;
  double t0 = clock_now_ms ();
  bool cow = o->memory != CLONE_COPY;
  int r;

  if (vmstate_root (g->state_dir, root, sizeof root, err) < 0
      || template_load (root, o->tmpl, &t, err) < 0 || vm_name_check (name, err) < 0)
    return -1;
  be = backend_by_name (t.backend);
  if (be == NULL || be->clone_snapshot == NULL || be->vmm_version == NULL)
    return err_make (err, ENOTSUP, "template '%s': the %s backend cannot clone", t.name, t.backend);
  if (be->vmm_version (version, sizeof version, err) < 0 || template_check (&t, version, err) < 0)
    return -1;
  snprintf (why, sizeof why, "%s",
            cow ? "the template's memory file mapped copy-on-write (MAP_PRIVATE): its pages come "
                  "from the host's page cache, shared by every clone"
                : "asked for (--memory copy): the clone has a copy of the template's memory");
  r = attempt (g, o, root, be, &t, name, cow, &restored, err);
  if (r < 0 && cow && o->memory == CLONE_AUTO)
    {
      snprintf (why, sizeof why,
                "the VMM refused the copy-on-write mapping (%s); the clone has a copy of the "
                "template's memory",
                (*err)->msg ? (*err)->msg : "");
      err_release (err);
      cow = false;
      json_object_put (steal_ptr (&restored));
      r = attempt (g, o, root, be, &t, name, false, &restored, err);
    }
  if (r < 0)
    return err_wrap (err, "VM %s from template %s", name, t.name);
  json_object_object_add (j, "name", json_object_new_string (name));
  json_object_object_add (j, "template", json_object_new_string (t.name));
  json_object_object_add (j, "memory", json_object_new_string (cow ? "cow" : "copy"));
  json_object_object_add (j, "memory_why", json_object_new_string (why));
  json_object_object_add (j, "restored_ms", json_object_new_double (clock_now_ms () - t0));
  json_object_object_add (j, "restore", json_object_get (restored));
  if (o->agent && thaw_and_ready (g, name, o->timeout_s, j, err) < 0)
    return err_wrap (err, "VM %s from template %s is up but not ready (chvm rm -f %s)", name,
                     t.name, name);
  if (o->agent)
    json_object_object_add (j, "ready_ms", json_object_new_double (clock_now_ms () - t0));
  describe (g, name, j);
  return 0;
}

static void
print_text (struct json_object *j)
{
  struct json_object *v;
  const char *name = "", *endpoint = "", *memory = "";

  if (json_object_object_get_ex (j, "name", &v))
    name = json_object_get_string (v);
  if (json_object_object_get_ex (j, "endpoint", &v))
    endpoint = json_object_get_string (v);
  if (json_object_object_get_ex (j, "memory", &v))
    memory = json_object_get_string (v);
  printf ("%s %s %s\n", name, endpoint, memory);
}

/* --count N: N children `chvm run --from` at once. */
static int
clone_many (const struct global_opts *g, const struct from_opts *o, char **argv)
{
  struct cli_self kids[COUNT_MAX];
  char names[COUNT_MAX][VM_NAME_MAX + 1], cdp[COUNT_MAX][96], rnd[8], timeout[16];
  cleanup_json struct json_object *all = json_object_new_array ();
  cleanup_err struct err *err = NULL;
  const char *args[16];
  int rc = 0;

  (void) argv;
  if (o->name == NULL && rand_hex (rnd, 3, &err) < 0)
    return cli_fail ("run", &err);
  snprintf (timeout, sizeof timeout, "%u", o->timeout_s);
  for (unsigned i = 0; i < o->count; i++)
    {
      size_t n = 0;
      snprintf (names[i], sizeof names[i], "%s-%s%u", o->name ? o->name : o->tmpl,
                o->name ? "" : rnd, i + 1);
      args[n++] = "run";
      args[n++] = "--from";
      args[n++] = o->tmpl;
      args[n++] = "--name";
      args[n++] = names[i];
      args[n++] = o->memory == CLONE_COW    ? "--memory=cow"
                  : o->memory == CLONE_COPY ? "--memory=copy"
                                            : "--memory=auto";
      if (!o->agent)
        args[n++] = "--no-agent";
      /* Each its own port after the first (or a free one). */
      snprintf (cdp[i], sizeof cdp[i], "%s:%u", o->cdp_addr,
                o->cdp_port ? (unsigned) o->cdp_port + i : 0u);
      args[n++] = "--cdp";
      args[n++] = cdp[i];
      args[n++] = "--timeout";
      args[n++] = timeout;
      args[n] = NULL;
      if (cli_self_start (g, args, &kids[i], &err) < 0)
        return cli_fail ("run", &err); /* the ones started finish by themselves */
    }
  for (unsigned i = 0; i < o->count; i++)
    {
      cleanup_free char *out = NULL;
      struct json_object *j;
      int st = cli_self_finish (&kids[i], &out, &err);
      j = out ? json_tokener_parse (out) : NULL;
      if (st != 0 || j == NULL)
        {
          fprintf (stderr, "chvm run: VM %s failed (status %d)\n", names[i], st);
          err_release (&err);
          json_object_put (j);
          rc = 1;
          continue;
        }
      if (!g->json)
        print_text (j);
      json_object_array_add (all, j);
    }
  if (g->json)
    json_print (stdout, all);
  return rc;
}

int
cmd_run_from (const struct global_opts *g, int argc, char **argv)
{
  cleanup_json struct json_object *j = json_object_new_object ();
  cleanup_err struct err *err = NULL;
  struct from_opts o;
  char gen[VM_NAME_MAX + 1];
  int st = parse (argc, argv, &o);

  if (st >= 0)
    return st;
  if (o.count > 1)
    return clone_many (g, &o, argv);
  if (o.name == NULL)
    {
      char rnd[8];
      if (rand_hex (rnd, 3, &err) < 0)
        return cli_fail ("run", &err);
      snprintf (gen, sizeof gen, "%.50s-%s", o.tmpl, rnd);
      o.name = gen;
    }
  if (!g->json)
    fprintf (stderr, "chvm: VM %s from template %s\n", o.name, o.tmpl);
  if (clone_one (g, &o, o.name, j, &err) < 0)
    return cli_fail ("run", &err);
  if (g->json)
    json_print (stdout, j);
  else
    print_text (j);
  return 0;
}
