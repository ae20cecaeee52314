/* SPDX-License-Identifier: Apache-2.0 */
/*
 * chvm run [IMAGE] [options]: create a VM from an image and boot it.
 *
 * Kernel, initrd and the embedded default image are found in the data dir:
 * --kernel/--initrd, else $CHVM_DATA_DIR, else the build tree the binary
 * sits in (<bindir>/.. when it holds kernel/vmlinuz), else
 * <bindir>/../share/chvm.  Inside it: kernel/vmlinuz, initrd.cpio.gz,
 * images/standin/oci (the image used when IMAGE is omitted).
 *
 * Every check that can fail on bad input runs before anything is created;
 * after the VM directory exists, a failure removes what was made.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "cli/commands.h"
#include "cli/report.h"
#include "clock.h"
#include "image/image.h"
#include "net/liveview.h"
#include "net/net.h"
#include "num.h"
#include "supervisor/supervisor.h"
#include "sys/fs.h"
#include "sys/json.h"
#include "sys/port.h"
#include "sys/proc.h"
#include "sys/rand.h"
#include "vm/configdisk.h"
#include "vm/vmctl.h"
#include "vm/vmmuser.h"
#include "vmm/console.h"

#define MAX_ENV 256
#define AGENT_VSOCK_PORT 1024
#define AGENT_TCP_PORT 1025
#define DEFAULT_CDP_PORT 9222
#define DEFAULT_READY_S 300 /* Chromium under TCG on 2 loaded cores */
/* Both backends: the serial port is the console (console.log). */
#define CMDLINE "console=ttyS0 quiet panic=-1 rdinit=/init"

static void
usage (FILE *out)
{
  fprintf (out,
           "Usage: chvm run [IMAGE] [OPTIONS]\n\n"
           "Create a VM from IMAGE (an image id, oci:DIR[:TAG], docker-archive:FILE, or a\n"
           "path; default: the embedded stand-in image) and boot it.  Prints the CDP\n"
           "address once the browser answers.\n\n"
           "  --name NAME            VM name (default vm-<random>)\n"
           "  --cpus N               vCPUs (default 2)\n"
           "  --memory SIZE          guest memory, e.g. 2G, 512M (default 2G)\n"
           "  --overlay tmpfs|disk   writable layer in RAM or on a per-VM disk (default tmpfs)\n"
           "  --disk-size SIZE       size of the overlay disk (default 4G)\n"
           "  --rootfs-device blk|pmem\n"
           "                         the read-only root image as a virtio-blk disk (default),\n"
           "                         or also as virtio-pmem, which the guest maps with DAX:\n"
           "                         its pages stay in the host's page cache, shared by every\n"
           "                         VM of the image and out of guest RAM and snapshots (the\n"
           "                         guest falls back to the disk, saying so on its console)\n"
           "  --publish, -p [ADDR:]HOST:GUEST[/udp]\n"
           "                         forward a host port (ADDR default 127.0.0.1); HOST and\n"
           "                         GUEST may be equal-length ranges LO-HI, and a lone LO-HI\n"
           "                         is that range on both sides; the CDP\n"
           "                         port is published on a free loopback port by default\n"
           "  --env, -e NAME=VALUE   extra environment (repeatable)\n"
           "  --live-view[=ADDR]     publish the image's WebRTC live view (neko: TCP 8080 and\n"
           "                         a UDP range) on ADDR (default 127.0.0.1), tell it to\n"
           "                         advertise ADDR (ENABLE_WEBRTC, NEKO_WEBRTC_NAT1TO1,\n"
           "                         NEKO_WEBRTC_EPR), and print the URL to open\n"
           "  --backend ch|qemu|auto hypervisor (auto: ch when KVM can run guests, else qemu)\n"
           "  --net user|tap         QEMU: user-net (default) or a tap on bridge chvm0\n"
           "  --netns NAME           do all networking inside network namespace NAME\n"
           "  --cdp-port PORT        guest DevTools port (default 9222)\n"
           "  --cdp [ADDR:]PORT      the VM's CDP endpoint on the host, held by its supervisor\n"
           "                         (default 127.0.0.1 and a free port): HTTP and WebSockets\n"
           "                         to DevTools, waking the VM from standby on a new client\n"
           "                         or byte\n"
           "  --idle-standby SECONDS stand the VM by after this long without a CDP byte and\n"
           "                         with no command outstanding (needs a tap: --net tap or\n"
           "                         ch); clients stay connected (default 0: never)\n"
           "  --cdp-max-clients N    at most N clients on the endpoint at once (default %d)\n"
           "  --shared-memory auto|on|off\n"
           "                         ch: guest RAM as a memfd, which CH v52+ snapshots\n"
           "                         sparsely (auto: on for v52+)\n"
           "  --free-page-reporting auto|on|off\n"
           "                         ch: a virtio-balloon through which the guest hands back\n"
           "                         the memory it frees (auto: on for v52+)\n"
           "  --memory-file          ch: guest RAM in one file of the VM dir (a shared\n"
           "                         memory zone), what `chvm template create` uses\n"
           "  --from TEMPLATE [--count N]\n"
           "                         start VMs from a template instead (see chvm run --from\n"
           "                         TEMPLATE --help)\n"
           "  --kernel PATH, --initrd PATH\n"
           "  --timeout SECONDS      wait for the browser at most this long (default %d)\n"
           "  --no-wait              return once the VMM runs\n"
           "  --json                 print the result as JSON\n",
           SUPERVISOR_DEFAULT_MAX_CLIENTS, DEFAULT_READY_S);
}

static int
resolve_file (const char *opt, const char *rel, const char *what, char *out, size_t len,
              struct err **err)
{
  char tmp[VM_PATH_MAX], real[PATH_MAX]; /* realpath writes up to PATH_MAX */

  if (opt != NULL)
    snprintf (tmp, sizeof tmp, "%s", opt);
  else if (cli_data_path (rel, tmp, sizeof tmp, err) < 0)
    return -1;
  if (realpath (tmp, real) == NULL || strlen (real) >= len)
    return err_make (err, errno ? errno : ENAMETOOLONG,
                     "%s not found at %s (run `make setup`, or pass --%s)", what, tmp, what);
  snprintf (out, len, "%s", real);
  return 0;
}

static void
progress (void *ctx, const char *msg)
{
  (void) ctx;
  fprintf (stderr, "chvm: %s\n", msg);
}

struct run_opts
{
  const char *image, *name, *overlay, *backend, *net, *netns, *kernel, *initrd;
  unsigned cpus, cdp_port, timeout_s, idle_standby_s, cdp_max_clients;
  const char *cdp;
  char endpoint[64]; /* --cdp resolved: ADDR:PORT */
  int endpoint_fd;   /* listening there, from plan until the supervisor has it */
  uint64_t memory_mib, disk_mib;
  const char *env[MAX_ENV];
  size_t n_env;
  struct publish publish[VM_MAX_PUBLISH];
  size_t n_publish;
  bool no_wait, live_view;
  bool rootfs_pmem; /* --rootfs-device pmem */
  bool memory_file; /* --memory-file: guest RAM in DIR/memory (template create) */
  const char *live_view_addr;
  struct liveview live;
  enum vm_toggle shared_memory, free_page_reporting;
};

static int
parse_toggle (const char *opt, const char *s, enum vm_toggle *out, struct err **err)
{
  if (strcmp (s, "auto") == 0)
    *out = VM_AUTO;
  else if (strcmp (s, "on") == 0)
    *out = VM_ON;
  else if (strcmp (s, "off") == 0)
    *out = VM_OFF;
  else
    return err_make (err, 0, "bad --%s '%s' (auto, on or off)", opt, s);
  return 0;
}

static int
parse_uint (const char *s, unsigned min, unsigned max, unsigned *out)
{
  uint64_t v;

  if (num_parse_u64_str (s, max, &v) < 0 || v < min)
    return -1;
  *out = (unsigned) v;
  return 0;
}

/* --cdp [ADDR:]PORT (IPv4; default 127.0.0.1 and a free port) into
   "ADDR:PORT", bound and listening on *fd: no one takes it while the guest
   boots. */
static int
cdp_endpoint (const char *opt, char *out, size_t len, int *fd, struct err **err)
{
  char addr[64] = "127.0.0.1";
  uint16_t port = 0;
  bool beyond = false;

  if (opt != NULL && port_parse_ipv4 (opt, addr, sizeof addr, &port, &beyond, err) < 0)
    return err_wrap (err, "bad --cdp ([ADDR:]PORT, IPv4)");
  if (beyond)
    fprintf (stderr, "chvm: warning: " CLI_CDP_BEYOND "\n", addr);
  if (supervisor_listen (addr, &port, fd, err) < 0)
    return err_wrap (err, "--cdp");
  if ((size_t) snprintf (out, len, "%s:%u", addr, (unsigned) port) >= len)
    return err_make (err, ENAMETOOLONG, "--cdp");
  return 0;
}

/* An option of what the VM is made of (name, image contents, machine);
   returns 1 when c is none of these. */
static int
opt_machine (int c, const char *arg, struct run_opts *o, struct err **err)
{
  switch (c)
    {
    case 'n':
      o->name = arg;
      return 0;
    case 'c':
      if (parse_uint (arg, 1, 64, &o->cpus) < 0)
        return err_make (err, 0, "bad --cpus '%s' (1-64)", arg);
      return 0;
    case 'm':
      if (vm_parse_memory (arg, &o->memory_mib, err) < 0)
        return -1;
      if (o->memory_mib < 128)
        return err_make (err, 0, "--memory %s: at least 128M", arg);
      return 0;
    case 'D':
      if (vm_parse_memory (arg, &o->disk_mib, err) < 0)
        return err_wrap (err, "--disk-size");
      return 0;
    case 'o':
      if (strcmp (arg, "tmpfs") != 0 && strcmp (arg, "disk") != 0)
        return err_make (err, 0, "bad --overlay '%s' (tmpfs or disk)", arg);
      o->overlay = arg;
      return 0;
    case 'R':
      if (strcmp (arg, "blk") != 0 && strcmp (arg, "pmem") != 0)
        return err_make (err, 0, "bad --rootfs-device '%s' (blk or pmem)", arg);
      o->rootfs_pmem = strcmp (arg, "pmem") == 0;
      return 0;
    case 'e':
      if (o->n_env == MAX_ENV)
        return err_make (err, 0, "at most %d --env", MAX_ENV);
      if (strchr (arg, '=') == NULL || arg[0] == '=')
        return err_make (err, 0, "bad --env '%s' (NAME=VALUE)", arg);
      o->env[o->n_env++] = arg;
      return 0;
    case 'b':
      if (strcmp (arg, "ch") != 0 && strcmp (arg, "qemu") != 0 && strcmp (arg, "auto") != 0)
        return err_make (err, 0, "bad --backend '%s' (ch, qemu or auto)", arg);
      o->backend = arg;
      return 0;
    case 'k':
      o->kernel = arg;
      return 0;
    case 'i':
      o->initrd = arg;
      return 0;
    case 'M':
      return parse_toggle ("shared-memory", arg, &o->shared_memory, err);
    case 'F':
      return parse_toggle ("free-page-reporting", arg, &o->free_page_reporting, err);
    case 'Z':
      o->memory_file = true;
      return 0;
    default:
      return 1;
    }
}

/* An option of how the VM is reached (network, ports, CDP endpoint) and
   waited for; returns 1 when c is none of these. */
static int
opt_access (int c, const char *arg, struct run_opts *o, struct err **err)
{
  switch (c)
    {
    case 'p':
      if (o->n_publish == VM_MAX_PUBLISH)
        return err_make (err, 0, "at most %d --publish", VM_MAX_PUBLISH);
      if (net_parse_publish (arg, &o->publish[o->n_publish], err) < 0)
        return -1;
      for (size_t i = 0; i < o->n_publish; i++)
        if (net_publish_overlap (&o->publish[i], &o->publish[o->n_publish]))
          return err_make (err, 0, "--publish %s: host port given twice", arg);
      o->n_publish++;
      return 0;
    case 'N':
      if (strcmp (arg, "user") != 0 && strcmp (arg, "tap") != 0)
        return err_make (err, 0, "bad --net '%s' (user or tap)", arg);
      o->net = arg;
      return 0;
    case 'S':
      o->netns = arg;
      return 0;
    case 'P':
      if (parse_uint (arg, 1, 65535, &o->cdp_port) < 0)
        return err_make (err, 0, "bad --cdp-port '%s'", arg);
      return 0;
    case 't':
      if (parse_uint (arg, 1, 86400, &o->timeout_s) < 0)
        return err_make (err, 0, "bad --timeout '%s'", arg);
      return 0;
    case 'W':
      o->no_wait = true;
      return 0;
    case 'L':
      o->live_view = true;
      o->live_view_addr = arg;
      return 0;
    case 'C':
      o->cdp = arg;
      return 0;
    case 'I':
      if (parse_uint (arg, 0, 86400, &o->idle_standby_s) < 0)
        return err_make (err, 0, "bad --idle-standby '%s' (seconds, 0-86400)", arg);
      return 0;
    case 'X':
      if (parse_uint (arg, 1, 4096, &o->cdp_max_clients) < 0)
        return err_make (err, 0, "bad --cdp-max-clients '%s' (1-4096)", arg);
      return 0;
    default:
      return 1;
    }
}

/* Returns 0, 1 after printing --help, or -1 (a usage error). */
static int
parse_args (int argc, char **argv, struct run_opts *o, struct err **err)
{
  static const struct option longopts[] = {
    { "name", required_argument, NULL, 'n' },
    { "cpus", required_argument, NULL, 'c' },
    { "memory", required_argument, NULL, 'm' },
    { "overlay", required_argument, NULL, 'o' },
    { "rootfs-device", required_argument, NULL, 'R' },
    { "publish", required_argument, NULL, 'p' },
    { "env", required_argument, NULL, 'e' },
    { "backend", required_argument, NULL, 'b' },
    { "net", required_argument, NULL, 'N' },
    { "netns", required_argument, NULL, 'S' },
    { "kernel", required_argument, NULL, 'k' },
    { "initrd", required_argument, NULL, 'i' },
    { "cdp-port", required_argument, NULL, 'P' },
    { "timeout", required_argument, NULL, 't' },
    { "disk-size", required_argument, NULL, 'D' },
    { "no-wait", no_argument, NULL, 'W' },
    { "shared-memory", required_argument, NULL, 'M' },
    { "free-page-reporting", required_argument, NULL, 'F' },
    { "live-view", optional_argument, NULL, 'L' },
    { "cdp", required_argument, NULL, 'C' },
    { "idle-standby", required_argument, NULL, 'I' },
    { "cdp-max-clients", required_argument, NULL, 'X' },
    { "memory-file", no_argument, NULL, 'Z' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  int c, r;

  *o = (struct run_opts){ .overlay = "tmpfs",
                          .backend = "auto",
                          .net = "user",
                          .cpus = 2,
                          .cdp_port = DEFAULT_CDP_PORT,
                          .timeout_s = DEFAULT_READY_S,
                          .memory_mib = 2048,
                          .disk_mib = 4096,
                          .cdp_max_clients = SUPERVISOR_DEFAULT_MAX_CLIENTS,
                          .endpoint_fd = -1 };
  optind = 0;
  opterr = 0;
  while ((c = getopt_long (argc, argv, "hp:e:", longopts, NULL)) != -1)
    {
      if (c == 'h')
        {
          usage (stdout);
          return 1;
        }
      r = opt_machine (c, optarg, o, err);
      if (r > 0)
        r = opt_access (c, optarg, o, err);
      if (r > 0)
        return err_make (err, 0, "unknown option '%s' (see chvm run --help)", argv[optind - 1]);
      if (r < 0)
        return -1;
    }
  if (optind < argc)
    o->image = argv[optind++];
  if (optind < argc)
    return err_make (err, 0, "unexpected argument '%s'", argv[optind]);
  return 0;
}

/* Addresses of the tap-mode VMs in the same namespace, for allocation. */
static int
used_addresses (const char *root, const char *netns, uint32_t *used, size_t cap, size_t *n,
                struct err **err)
{
  char **names;
  size_t cnt;

  *n = 0;
  if (vmstate_list (root, &names, &cnt, err) < 0)
    return -1;
  for (size_t i = 0; i < cnt && *n < cap; i++)
    {
      cleanup_err struct err *e = NULL;
      struct vm_record *r = malloc (sizeof *r);
      uint32_t a;
      if (r != NULL && vmrec_load (root, names[i], r, &e) == 0 && r->address[0]
          && strcmp (r->netns, netns ? netns : "") == 0
          && net_parse_ipv4 (r->address, &a, NULL) == 0)
        used[(*n)++] = a;
      free (r);
    }
  vmstate_list_free (names, cnt);
  return 0;
}

static int
make_upper_disk (const char *path, uint64_t mib, struct err **err)
{
  char size[32];
  const char *const argv[] = { "mkfs.ext4", "-q", "-F", "-L", "chvm-upper", path, size, NULL };

  snprintf (size, sizeof size, "%lluM", (unsigned long long) mib);
  return proc_run (argv, NULL, false, err);
}

/* The guest RAM file (--memory-file): the VMM's uid's, all of guest RAM
   long, holes until the guest writes. */
static int
make_memory_file (const struct vm_record *r, struct err **err)
{
  cleanup_close int fd = open (r->memory_file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

  if (fd < 0 || ftruncate (fd, (off_t) (r->memory_mib << 20)) < 0)
    return err_make (err, errno, "guest RAM file %s", r->memory_file);
  if (r->vmm_uid != 0 && fchown (fd, r->vmm_uid, r->vmm_uid) < 0)
    return err_make (err, errno, "give %s to uid %u", r->memory_file, (unsigned) r->vmm_uid);
  return 0;
}

struct created
{
  struct vmctl *c;
  bool dir, net, vmm;
};

static void
undo (struct created *cr)
{
  cleanup_err struct err *e = NULL;

  if (cr->vmm)
    cr->c->be->shutdown (&cr->c->rec.rt, &e);
  err_release (&e);
  /* Only what this run made: before its mkdir, the name's cgroup may be
     another run's VM's. */
  if (cr->dir)
    vmctl_vmm_gone (cr->c);
  if (cr->net)
    net_teardown_vm (NULL, &cr->c->rec, &e);
  err_release (&e);
  if (cr->dir)
    fs_rmtree (cr->c->dir, &e);
}

/* What run works out before it creates anything, for the record and the
   VM's creation. */
struct plan
{
  char kernel[VM_PATH_MAX], initrd[VM_PATH_MAX];
  char default_image[PATH_MAX + 8];
  const char *image_ref; /* IMAGE, else default_image (the stand-in) */
  struct image *img;     /* image_ref resolved */
  bool tap;              /* a tap and an address of its own, not user-net */
  char addr[20], gw[20]; /* the guest's address and gateway (record) */
};

/* The ports the VM publishes: the live view's and by default the CDP
   port, each checked free.  Run in the VM's namespace: that is where its
   ports are published. */
static int
plan_ports (struct run_opts *o, bool tap, struct err **err)
{
  if (o->live_view)
    {
      if (o->n_publish + 2 > VM_MAX_PUBLISH)
        return err_make (err, 0, "--live-view: at most %d --publish with it", VM_MAX_PUBLISH - 2);
      if (liveview_plan (o->live_view_addr, &o->live, err) < 0)
        return -1;
      o->publish[o->n_publish++] = o->live.signalling;
      o->publish[o->n_publish++] = o->live.media;
    }
  /* The CDP port is published by default (user-net only: a tap VM is
     reachable at its own address). */
  if (!tap)
    {
      bool has_cdp = false;
      size_t ports = 0;
      for (size_t i = 0; i < o->n_publish; i++)
        {
          has_cdp |= publish_covers (&o->publish[i], false, o->cdp_port);
          ports += publish_ports (&o->publish[i]);
        }
      /* Refused here, before anything exists, rather than by QEMU's start. */
      if (ports + !has_cdp > BACKEND_QEMU_MAX_FWD)
        return err_make (err, 0, "--publish: %zu ports, QEMU user-net forwards at most %d",
                         ports + !has_cdp, BACKEND_QEMU_MAX_FWD);
      if (!has_cdp && o->n_publish < VM_MAX_PUBLISH)
        {
          struct publish *p = &o->publish[o->n_publish++];
          /* chvm's own: root only (the supervisor proxies it); a
             --publish of the CDP port is the user's to open. */
          *p = (struct publish){ .guest_port = (uint16_t) o->cdp_port,
                                 .count = 1,
                                 .root_only = true };
          snprintf (p->host_addr, sizeof p->host_addr, "127.0.0.1");
          if (port_pick ("127.0.0.1", &p->host_port, err) < 0)
            return -1;
        }
    }
  for (size_t i = 0; i < o->n_publish; i++)
    for (unsigned k = 0; k < publish_ports (&o->publish[i]); k++)
      if (port_check (o->publish[i].host_addr, (uint16_t) (o->publish[i].host_port + k),
                      o->publish[i].udp, err)
          < 0)
        return -1;
  return 0;
}

/* The checks that create nothing: backend, files, name, endpoint, ports
   and image; ends holding the state lock (c->lock_fd). */
static int
plan (const struct global_opts *g, struct run_opts *o, struct vmctl *c, struct plan *p,
      struct err **err)
{
  char why[256];

  if (vmstate_root (g->state_dir, c->root, sizeof c->root, err) < 0)
    return -1;
  c->be = backend_pick (o->backend, why, sizeof why, err);
  if (c->be == NULL)
    return -1;
  p->tap = strcmp (o->net, "tap") == 0;
  if (!(c->be->caps & BACKEND_CAP_USER_NET))
    p->tap = true; /* CH has no user-mode network */
  if (o->netns != NULL && !p->tap)
    return err_make (err, 0, "--netns needs --net tap (or the ch backend)");
  if (o->memory_file && c->be->clone_snapshot == NULL)
    return err_make (err, 0, "--memory-file: the %s backend cannot make templates", c->be->name);
  if (!(c->be->caps & BACKEND_CAP_SHARED_MEMORY)
      && (o->shared_memory == VM_ON || o->free_page_reporting == VM_ON))
    return err_make (err, 0, "--%s on: only the ch backend has it",
                     o->shared_memory == VM_ON ? "shared-memory" : "free-page-reporting");
  if (resolve_file (o->kernel, "kernel/vmlinuz", "kernel", p->kernel, sizeof p->kernel, err) < 0
      || resolve_file (o->initrd, "initrd.cpio.gz", "initrd", p->initrd, sizeof p->initrd, err) < 0)
    return -1;
  p->image_ref = o->image;
  if (p->image_ref == NULL)
    {
      char oci[VM_PATH_MAX], real[PATH_MAX];
      if (cli_data_path ("images/standin/oci", oci, sizeof oci, err) < 0)
        return -1;
      snprintf (p->default_image, sizeof p->default_image, "oci:%s",
                realpath (oci, real) != NULL ? real : oci);
      p->image_ref = p->default_image;
    }
  if (o->name == NULL)
    {
      static char gen[16];
      memcpy (gen, "vm-", 3);
      if (rand_hex (gen + 3, 3, err) < 0)
        return -1;
      o->name = gen;
    }
  if (vmstate_dir (c->root, o->name, c->dir, sizeof c->dir, err) < 0)
    return -1;
  /* Checked again, atomically, by mkdir under the lock. */
  if (access (c->dir, F_OK) == 0)
    return err_make (err, 0, "a VM named '%s' already exists", o->name);
  if (supervisor_check_idle (o->idle_standby_s, p->tap, err) < 0)
    return -1;
  /* The endpoint, on the clients' side (before entering --netns). */
  if (cdp_endpoint (o->cdp, o->endpoint, sizeof o->endpoint, &o->endpoint_fd, err) < 0)
    return -1;
  if (net_enter_netns (o->netns, err) < 0 || plan_ports (o, p->tap, err) < 0)
    return -1;
  /* Before the lock: an import can take minutes and is safe on its own
     (built aside, renamed into place). */
  if (image_resolve (c->root, p->image_ref, progress, NULL, &p->img, err) < 0)
    return err_wrap (err, "image '%s'", p->image_ref);
  if ((c->lock_fd = vmstate_lock (c->root, VMCTL_LOCK_MS, err)) < 0)
    return -1;
  /* `image rm` (under the lock) may have removed it since. */
  if (access (p->img->rootfs, R_OK) < 0)
    return err_make (err, errno, "image '%s': %s is gone (image rm?)", p->image_ref,
                     p->img->rootfs);
  /* Images made before were not padded for pmem (under the lock: image rm
     takes it too). */
  if (o->rootfs_pmem && image_rootfs_pad (p->img->rootfs, err) < 0)
    return err_wrap (err, "--rootfs-device pmem");
  return 0;
}

/* The record c->rec of the VM planned: settings, files, agent channel,
   address and tap, VMM user. */
static int
record (struct vmctl *c, const struct run_opts *o, struct plan *p, struct err **err)
{
  struct vm_record *r = &c->rec;

  memset (r, 0, sizeof *r);
  snprintf (r->cdp_endpoint, sizeof r->cdp_endpoint, "%s", o->endpoint);
  supervisor_record_env (r); /* what its supervisor's restores run with */
  /* The endpoint's capability: its URLs carry it (vmrec_endpoint_url). */
  if (o->endpoint[0] && rand_hex (r->cdp_token, VM_CDP_TOKEN_BYTES, err) < 0)
    return -1;
  r->idle_standby_s = o->idle_standby_s;
  r->cdp_max_clients = o->cdp_max_clients;
  snprintf (r->name, sizeof r->name, "%s", o->name);
  snprintf (r->backend, sizeof r->backend, "%s", c->be->name);
  /* Checked early: a truncated path would point somewhere else. */
  if ((size_t) snprintf (r->image, sizeof r->image, "%s", p->image_ref) >= sizeof r->image
      || (size_t) snprintf (r->config_disk, sizeof r->config_disk, "%s/config.img", c->dir)
             >= sizeof r->config_disk
      || (size_t) snprintf (r->upper_disk, sizeof r->upper_disk, "%s/upper.img", c->dir)
             >= sizeof r->upper_disk
      || (size_t) snprintf (r->rootfs, sizeof r->rootfs, "%s", p->img->rootfs) >= sizeof r->rootfs)
    return err_make (err, ENAMETOOLONG, "image reference or state path too long");
  if (strcmp (o->overlay, "disk") != 0)
    r->upper_disk[0] = '\0';
  if (o->memory_file
      && (size_t) snprintf (r->memory_file, sizeof r->memory_file, "%s/memory", c->dir)
             >= sizeof r->memory_file)
    return err_make (err, ENAMETOOLONG, "state path too long");
  r->created = (int64_t) time (NULL);
  r->state = VM_STATUS_CREATED;
  r->cpus = o->cpus;
  r->memory_mib = o->memory_mib;
  snprintf (r->kernel, sizeof r->kernel, "%s", p->kernel);
  snprintf (r->initrd, sizeof r->initrd, "%s", p->initrd);
  snprintf (r->cmdline, sizeof r->cmdline, "%s", CMDLINE);
  snprintf (r->overlay, sizeof r->overlay, "%s", o->overlay);
  r->rootfs_pmem = o->rootfs_pmem;
  snprintf (r->netns, sizeof r->netns, "%s", o->netns ? o->netns : "");
  r->cdp_port = (uint16_t) o->cdp_port;
  if (!(c->be->caps & BACKEND_CAP_VSOCK))
    {
      /* No vsock (QEMU here): the agent listens on TCP behind a token. */
      r->agent_tcp_port = AGENT_TCP_PORT;
      if (rand_hex (r->agent_token, 16, err) < 0)
        return -1;
    }
  else
    r->agent_vsock_port = AGENT_VSOCK_PORT;
  memcpy (r->publish, o->publish, o->n_publish * sizeof o->publish[0]);
  r->n_publish = o->n_publish;
  if (p->tap)
    {
      uint32_t used[256], a;
      size_t n;
      if (used_addresses (c->root, o->netns, used, 256, &n, err) < 0
          || net_alloc_address (used, n, &a, err) < 0)
        return -1;
      snprintf (r->address, sizeof r->address, "%u.%u.%u.%u/%d", a >> 24, (a >> 16) & 0xff,
                (a >> 8) & 0xff, a & 0xff, NET_PREFIX);
      net_tap_name (a, r->tap, sizeof r->tap);
      net_mac (a, r->mac, sizeof r->mac);
      snprintf (p->gw, sizeof p->gw, "%u.%u.%u.%u", NET_GATEWAY >> 24, (NET_GATEWAY >> 16) & 0xff,
                (NET_GATEWAY >> 8) & 0xff, NET_GATEWAY & 0xff);
    }
  /* The VMM (CH or QEMU) runs as a uid of its own. */
  if (vmmuser_assign (c->root, r, err) < 0)
    return -1;
  snprintf (p->addr, sizeof p->addr, "%s", p->tap ? r->address : BACKEND_USER_NET_GUEST);
  if (!p->tap)
    snprintf (p->gw, sizeof p->gw, "%s", BACKEND_USER_NET_GATEWAY);
  return 0;
}

/* The config disk: the image's config, the guest's network and agent,
   the live view's and the user's --env (the latter last: it wins). */
static int
write_config (const struct vmctl *c, const struct run_opts *o, const struct plan *p,
              struct err **err)
{
  const struct vm_record *r = &c->rec;
  const struct oci_config *oc = p->img->config;
  const char *const dns_user[] = { BACKEND_USER_NET_DNS };
  const char *env[MAX_ENV + LIVEVIEW_N_ENV];
  size_t n_env = 0;

  if (o->live_view)
    for (size_t i = 0; i < LIVEVIEW_N_ENV; i++)
      env[n_env++] = o->live.env[i];
  for (size_t i = 0; i < o->n_env; i++)
    env[n_env++] = o->env[i];
  struct config_input in = {
    .hostname = r->name,
    .image_env = (const char *const *) oc->env,
    .n_image_env = oc->n_env,
    .extra_env = env,
    .n_extra_env = n_env,
    .entrypoint = (const char *const *) oc->entrypoint,
    .n_entrypoint = oc->n_entrypoint,
    .cmd = (const char *const *) oc->cmd,
    .n_cmd = oc->n_cmd,
    .workdir = oc->workdir,
    .user = oc->user,
    .net_address = p->addr,
    .net_gateway = p->gw,
    .net_dns = p->tap ? NULL : dns_user,
    .n_net_dns = p->tap ? 0 : 1,
    .overlay = r->overlay,
    .root_device = r->rootfs_pmem ? "pmem" : NULL,
    .agent_vsock_port = (int) r->agent_vsock_port,
    .agent_tcp_port = r->agent_tcp_port,
    .agent_token = r->agent_token,
    .agent_cdp_port = r->cdp_port,
  };
  return configdisk_write (r->config_disk, &in, err);
}

/* Creates what the record names (dir, disks, tap) and starts the VMM;
   from here on, failures undo what was made. */
static int
create (struct vmctl *c, const struct run_opts *o, const struct plan *p, struct err **err)
{
  struct vm_record *r = &c->rec;
  struct created cr = { .c = c };
  struct vm_spec spec;
  struct vmm_jail_storage jail;
  sigset_t old_mask;
  int rc = -1;

  /* A ^C or SIGTERM waits until the record names the VMM, then undoes
     everything before it takes effect. */
  vmctl_hold_signals (&old_mask);
  if (mkdir (c->dir, 0700) < 0)
    {
      if (errno == EEXIST)
        err_make (err, 0, "a VM named '%s' already exists", o->name);
      else
        err_make (err, errno, "mkdir %s", c->dir);
      goto fail;
    }
  cr.dir = true;
  if (write_config (c, o, p, err) < 0)
    goto fail;
  if (strcmp (r->overlay, "disk") == 0)
    {
      if (make_upper_disk (r->upper_disk, o->disk_mib, err) < 0)
        goto fail;
    }
  if (vmmuser_prepare (c->root, c->dir, r, err) < 0
      || (r->memory_file[0] && make_memory_file (r, err) < 0))
    goto fail;
  if (p->tap)
    {
      cr.net = true;
      if (net_setup_vm (NULL, r, err) < 0)
        goto fail;
    }
  if (vmctl_save (c, err) < 0)
    goto fail;
  vmctl_fault ("run", "recorded", 0);
  vmrec_spec (r, c->dir, &spec);
  spec.jail = vmmuser_jail (r, c->dir, &jail);
  spec.landlock = spec.jail != NULL && vmmuser_landlock_p ();
  spec.serial_attach = console_logger_start;
  spec.shared_memory = o->shared_memory;
  spec.free_page_reporting = o->free_page_reporting;
  if (c->be->start (&spec, &r->rt, err) < 0)
    goto fail;
  cr.vmm = true;
  vmctl_fault ("run", "started", r->rt.vmm_pid);
  if (p->tap && net_tap_clear_addresses (r->tap, err) < 0)
    goto fail;
  r->state = VM_STATUS_RUNNING;
  if (backend_write_pid (c->dir, r->rt.vmm_pid, err) < 0 || vmctl_save (c, err) < 0
      || vmctl_check_signals (err) < 0)
    goto fail;
  rc = 0;
  goto out;
fail:
  undo (&cr);
out:
  sigprocmask (SIG_SETMASK, &old_mask, NULL);
  return rc;
}

static int
create_and_start (const struct global_opts *g, struct run_opts *o, struct vmctl *c,
                  struct err **err)
{
  cleanup_free struct plan *p = calloc (1, sizeof *p);
  int r;

  if (p == NULL)
    return err_make (err, ENOMEM, "run");
  r = plan (g, o, c, p, err);
  if (r == 0)
    r = record (c, o, p, err);
  if (r == 0)
    r = create (c, o, p, err);
  image_free (p->img);
  return r;
}

int
cmd_run (const struct global_opts *g, int argc, char **argv)
{
  cleanup_err struct err *err = NULL;
  struct run_opts o;
  cleanup_free struct vmctl *c = calloc (1, sizeof *c);
  double t0 = clock_now_ms (), t_started, t_ready = 0;
  unsigned agent_ready_ms = 0;
  char cdp[128], browser[256] = "", endpoint[128];
  int r;

  if (c == NULL)
    return 1;
  for (int i = 1; i < argc; i++)
    if (strcmp (argv[i], "--from") == 0 || strncmp (argv[i], "--from=", 7) == 0)
      return cmd_run_from (g, argc, argv);
  c->lock_fd = -1;
  switch (parse_args (argc, argv, &o, &err))
    {
    case 0:
      break;
    case 1:
      return 0; /* --help */
    default:
      cli_fail ("run", &err);
      return 2;
    }
  if (create_and_start (g, &o, c, &err) < 0)
    {
      vmctl_close (c);
      return cli_fail ("run", &err);
    }
  /* Booting takes long under TCG; other commands need not wait for it. */
  vmctl_close (c);
  t_started = clock_now_ms ();
  vmctl_cdp_address (&c->rec, cdp, sizeof cdp);
  vmrec_endpoint_url (&c->rec, endpoint, sizeof endpoint);
  if (!g->json)
    fprintf (stderr, "chvm: VM %s started (%s, pid %d)%s\n", c->rec.name, c->be->name,
             (int) c->rec.rt.vmm_pid, o.no_wait ? "" : ", waiting for the browser");
  if (!o.no_wait)
    {
      if (vmctl_wait_ready (c, (int) o.timeout_s * 1000, &agent_ready_ms, browser, sizeof browser,
                            &err)
          < 0)
        {
          err_wrap (&err, "VM %s is up but not ready (chvm logs %s; chvm rm -f %s)", c->rec.name,
                    c->rec.name, c->rec.name);
          return cli_fail ("run", &err);
        }
      t_ready = clock_now_ms ();
    }
  /* Once the browser answers (its idle clock would stand a booting VM
     by), or at once with --no-wait, when it waits for DevTools itself. */
  r = supervisor_start_fd (c->dir, c->rec.netns, o.no_wait, o.endpoint_fd, &err);
  if (o.endpoint_fd >= 0)
    close (o.endpoint_fd); /* the supervisor's from now on */
  if (r < 0)
    {
      err_wrap (&err, "VM %s runs, but its CDP endpoint %s does not (chvm supervise %s)",
                c->rec.name, c->rec.cdp_endpoint, c->rec.name);
      return cli_fail ("run", &err);
    }
  if (g->json)
    {
      cleanup_json struct json_object *j = json_object_new_object ();
      json_object_object_add (j, "name", json_object_new_string (c->rec.name));
      json_object_object_add (j, "backend", json_object_new_string (c->be->name));
      json_object_object_add (j, "pid", json_object_new_int (c->rec.rt.vmm_pid));
      json_object_object_add (j, "cdp", json_object_new_string (cdp));
      json_object_object_add (j, "endpoint", json_object_new_string (endpoint));
      json_object_object_add (j, "browser", json_object_new_string (browser));
      json_object_object_add (j, "start_ms", json_object_new_double (t_started - t0));
      if (!o.no_wait)
        json_object_object_add (j, "ready_ms", json_object_new_double (t_ready - t0));
      if (o.live_view)
        {
          char udp[16];
          struct json_object *lv = json_object_new_object ();
          snprintf (udp, sizeof udp, "%u-%u", (unsigned) o.live.media.host_port,
                    (unsigned) (o.live.media.host_port + LIVEVIEW_UDP_COUNT - 1));
          json_object_object_add (lv, "url", json_object_new_string (o.live.url));
          json_object_object_add (lv, "udp", json_object_new_string (udp));
          json_object_object_add (j, "live_view", lv);
        }
      json_print (stdout, j);
    }
  else
    {
      if (!o.no_wait)
        fprintf (stderr, "chvm: %s ready after %.1f s%s%s\n", c->rec.name, (t_ready - t0) / 1000,
                 browser[0] ? ": " : "", browser);
      fprintf (stderr, "chvm: CDP endpoint %s (chvm cdp %s)\n", endpoint, c->rec.name);
      if (o.live_view)
        fprintf (stderr, "chvm: live view: %s (UDP %u-%u on %s)\n", o.live.url,
                 (unsigned) o.live.media.host_port,
                 (unsigned) (o.live.media.host_port + LIVEVIEW_UDP_COUNT - 1),
                 o.live.media.host_addr);
      printf ("%s %s\n", c->rec.name, cdp);
    }
  return 0;
}
