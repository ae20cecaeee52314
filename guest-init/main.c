/* SPDX-License-Identifier: Apache-2.0 */
/*
 * chvm-init: PID 1 of the guest (the initramfs /init).  It runs straight
 * through the phases of docs/DESIGN.md (start, modules, disks, config,
 * overlay, network, agent, exec), then stays PID 1: reaps, forwards signals
 * and powers the VM off when the entrypoint exits.  Any error before the
 * entrypoint runs is fatal: one ERROR line, then poweroff.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <unistd.h>

#include "button.h"
#include "cleanup.h"
#include "clock.h"
#include "config.h"
#include "disks.h"
#include "exec.h"
#include "io.h"
#include "log.h"
#include "modules.h"
#include "mount.h"
#include "net.h"
#include "reap.h"
#include "spec.h"
#include "sysconf.h"

#define AGENT_INITRD "/sbin/chvm-agent"
#define AGENT_PATH RUN_CHVM "/chvm-agent"
#define TOKEN_PATH RUN_CHVM "/token"
#define SSHD_PATH "/usr/sbin/sshd"
#define SSHD_HOST_KEY "/etc/ssh/ssh_host_ed25519_key"
#define DEFAULT_DISK_TIMEOUT 30
/* How long init waits for the agent to listen before starting the entrypoint
   anyway: a broken agent must not hold the workload back for long. */
#define AGENT_READY_MS 5000
#define IDS_FILE_MAX (4 * 1024 * 1024)

static int signal_fd = -1;
static sigset_t child_sigmask;

static void __attribute__ ((noreturn)) fatal (struct err **err)
{
  char buf[1024];

  log_error ("%s", err_str (*err, buf, sizeof buf));
  err_release (err);
  reap_poweroff (signal_fd, false);
}

/* The kernel starts init with no stdio when the initramfs has no
   /dev/console; mount devtmpfs to get one. */
static void
open_console (void)
{
  int fd = open ("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);

  if (fd < 0)
    {
      mkdir ("/dev", 0755);
      mount ("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
      fd = open ("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);
    }
  if (fd >= 0)
    {
      for (int i = 0; i < 3; i++)
        if (fd != i)
          dup2 (fd, i);
      if (fd > 2)
        close (fd);
    }
  log_init ("init", 2, LOG_LVL_INFO);
}

/* The root: /dev/pmem0 when the config asks for it and it comes (then
   mounted with DAX), else the chvm-root disk, after one console line saying
   why not pmem. */
static int
find_root (int uevent_fd, const struct chvm_config *cfg, double deadline, struct disk_want *root,
           bool *dax, struct err **err)
{
  cleanup_err struct err *why = NULL;
  char buf[256];

  *dax = false;
  if (cfg->root_device == ROOT_PMEM)
    {
      if (pmem_wait (uevent_fd, deadline, cfg->init_timeout, root->dev, sizeof root->dev, &why)
          == 0)
        {
          *dax = true;
          return 0;
        }
      log_warn ("root: %s; falling back to the chvm-root disk", err_str (why, buf, sizeof buf));
    }
  return disks_wait (uevent_fd, root, 1, deadline, cfg->init_timeout, err);
}

/* Disks phase: finds the config disk first, so that init.timeout and
   overlay=disk are known before waiting for the others.  The config text is
   parsed here but its errors are reported in the config phase. */
static int
find_disks (int uevent_fd, struct chvm_config *cfg, struct err **cfg_err, struct disk_want *root,
            struct disk_want *upper, bool *dax, struct err **err)
{
  struct disk_want config = { .serial = "chvm-config" };
  double start = clock_now_ms (), deadline;
  cleanup_free char *text = NULL;
  size_t len;
  int r;

  deadline = start + DEFAULT_DISK_TIMEOUT * 1000.0;
  if ((r = disks_wait (uevent_fd, &config, 1, deadline, DEFAULT_DISK_TIMEOUT, err)) < 0)
    return r;
  text = read_file (config.dev, CONFIG_MAX_TEXT + 1, &len, err);
  if (text == NULL)
    return err_wrap (err, "config disk");
  if (config_parse (text, len, cfg, cfg_err) < 0)
    return 0; /* reported in the config phase; the root disk is not needed */

  deadline = start + cfg->init_timeout * 1000.0;
  if ((r = find_root (uevent_fd, cfg, deadline, root, dax, err)) < 0)
    return r;
  if (cfg->overlay == OVERLAY_DISK)
    return disks_wait (uevent_fd, upper, 1, deadline, cfg->init_timeout, err);
  return 0;
}

/* Copies the agent into the new root's /run (the tmpfs that follows the
   switch) and writes its token file. */
static int
stage_agent (const struct chvm_config *cfg, int *have_agent, struct err **err)
{
  int r;

  *have_agent = access (AGENT_INITRD, X_OK) == 0;
  if (!*have_agent)
    return 0;
  if ((r = copy_file (AGENT_INITRD, AGENT_PATH, 0755, err)) < 0)
    return r;
  if (cfg->agent_token != NULL)
    return write_file (TOKEN_PATH, cfg->agent_token, strlen (cfg->agent_token), 0600, err);
  return 0;
}

/* Waits until the agent writes its ready byte to fd (every transport
   listens, or failed with a warning), so that a host connecting right after
   "phase exec" finds it listening.  Only a warning when it does not come. */
static void
agent_wait_ready (int fd)
{
  double deadline = clock_now_ms () + AGENT_READY_MS;
  struct pollfd pfd = { .fd = fd, .events = POLLIN };
  char byte;
  ssize_t n;
  int r;

  do
    r = poll (&pfd, 1, clock_left_ms (deadline));
  while (r < 0 && errno == EINTR);
  if (r < 0)
    {
      log_warn ("agent: waiting for it to listen: %m");
      return;
    }
  if (r == 0)
    {
      log_warn ("agent: not listening after %d ms; starting the entrypoint anyway", AGENT_READY_MS);
      return;
    }
  n = TEMP_FAILURE_RETRY (read (fd, &byte, 1));
  if (n < 0)
    log_warn ("agent: reading its ready fd: %m");
  else if (n == 0)
    log_warn ("agent: exited or closed its ready fd before listening");
}

/* Returns the agent's pid, or 0 when it is not running. */
static pid_t
start_agent (const struct chvm_config *cfg, int have_agent)
{
  char vsock[16], tcp[8], cdp[8], ready[16];
  char *argv[14];
  char *envp[] = { (char *) "PATH=" SPEC_DEFAULT_PATH, NULL };
  struct spawn s = { .argv = argv, .envp = envp, .workdir = "/", .sigmask = &child_sigmask };
  cleanup_err struct err *err = NULL;
  cleanup_close int ready_rd = -1, ready_wr = -1;
  int fds[2];
  size_t n = 0;
  pid_t pid;

  if (!have_agent)
    {
      log_warn ("no " AGENT_INITRD " in the initramfs; starting without agent");
      return 0;
    }
  if (cfg->agent_vsock_port == 0 && cfg->agent_tcp_port == 0)
    {
      log_info ("agent disabled (no vsock or tcp port)");
      return 0;
    }
  /* Both ends close-on-exec; spawn_process clears the flag on the agent's
     end in the agent only. */
  if (pipe2 (fds, O_CLOEXEC) < 0)
    log_warn ("agent: ready pipe: %m; not waiting for it to listen");
  else
    {
      ready_rd = fds[0];
      ready_wr = fds[1];
      s.keep_fd = ready_wr;
    }
  snprintf (vsock, sizeof vsock, "%u", (unsigned) cfg->agent_vsock_port);
  snprintf (tcp, sizeof tcp, "%u", (unsigned) cfg->agent_tcp_port);
  snprintf (cdp, sizeof cdp, "%u", (unsigned) cfg->agent_cdp_port);
  snprintf (ready, sizeof ready, "%d", ready_wr);
  argv[n++] = (char *) AGENT_PATH;
  argv[n++] = (char *) "--vsock-port";
  argv[n++] = vsock;
  argv[n++] = (char *) "--tcp-port";
  argv[n++] = tcp;
  if (cfg->agent_token != NULL)
    {
      argv[n++] = (char *) "--token-file";
      argv[n++] = (char *) TOKEN_PATH;
    }
  argv[n++] = (char *) "--cdp-port";
  argv[n++] = cdp;
  if (ready_wr >= 0)
    {
      argv[n++] = (char *) "--ready-fd";
      argv[n++] = ready;
    }
  argv[n] = NULL;
  pid = spawn_process (&s, &err);
  if (pid < 0)
    {
      char buf[512];
      log_warn ("agent: %s", err_str (err, buf, sizeof buf));
      return 0;
    }
  if (ready_rd >= 0)
    {
      /* Init's copy of the write end must go, or an agent that dies early
         would leave the read end waiting for the whole deadline. */
      close (steal_fd (&ready_wr));
      agent_wait_ready (ready_rd);
    }
  return pid;
}

/* The users' images install openssh-server but never start it.  When the
   config gives authorized keys and the image has sshd, init starts it next
   to the agent, with a host key made at first boot (ed25519: fast even under
   software emulation).  A shell runs keygen then execs sshd, so PID 1 does
   not wait for either; a failure shows on the console and the entrypoint
   runs regardless. */
static void
start_sshd (const struct chvm_config *cfg)
{
  static const char script[]
      = "mkdir -p -m 0755 /run/sshd && "
        "{ test -e " SSHD_HOST_KEY " || ssh-keygen -q -t ed25519 -N '' -f " SSHD_HOST_KEY
        "; } && exec " SSHD_PATH " -D -e -o HostKey=" SSHD_HOST_KEY
        " -o PasswordAuthentication=no -o KbdInteractiveAuthentication=no";
  char *argv[] = { (char *) "/bin/sh", (char *) "-c", (char *) script, NULL };
  char *envp[] = { (char *) "PATH=" SPEC_DEFAULT_PATH, NULL };
  struct spawn s = { .argv = argv, .envp = envp, .workdir = "/", .sigmask = &child_sigmask };
  cleanup_err struct err *err = NULL;

  if (cfg->authorized_keys.n == 0)
    return;
  if (access (SSHD_PATH, X_OK) != 0 || access ("/bin/sh", X_OK) != 0)
    {
      log_warn ("ssh.authorized_key given but the image has no " SSHD_PATH
                " or /bin/sh; not starting sshd");
      return;
    }
  if (spawn_process (&s, &err) < 0)
    {
      char buf[512];
      log_warn ("sshd: %s", err_str (err, buf, sizeof buf));
    }
}

/* Builds argv, env and user for the entrypoint, docker style, from the
   config and the new root's /etc/passwd and /etc/group. */
static int
entrypoint_spec (const struct chvm_config *cfg, struct strv *argv, struct strv *env,
                 struct spec_user *user, struct err **err)
{
  cleanup_free char *passwd = read_file ("/etc/passwd", IDS_FILE_MAX, NULL, NULL);
  cleanup_free char *group = read_file ("/etc/group", IDS_FILE_MAX, NULL, NULL);
  int r;

  for (size_t i = 0; i < cfg->entrypoint.n; i++)
    if (strv_push (argv, cfg->entrypoint.v[i], strlen (cfg->entrypoint.v[i])) < 0)
      return err_make (err, ENOMEM, "argv");
  for (size_t i = 0; i < cfg->cmd.n; i++)
    if (strv_push (argv, cfg->cmd.v[i], strlen (cfg->cmd.v[i])) < 0)
      return err_make (err, ENOMEM, "argv");
  if (argv->n == 0)
    return err_make (err, 0, "no entrypoint or cmd in the config");
  if ((r = spec_resolve_user (cfg->user, passwd, group, user, err)) < 0)
    return r;
  return spec_build_env (&cfg->env, user->home, env, err);
}

int
main (void)
{
  cleanup_err struct err *err = NULL, *cfg_err = NULL;
  struct chvm_config cfg = { 0 };
  struct disk_want root = { .serial = "chvm-root" };
  struct disk_want upper = { .serial = "chvm-upper" };
  struct strv argv = { 0 }, env = { 0 };
  struct spec_user user;
  const char *workdir;
  struct button button;
  int uevent_fd, have_agent, status;
  bool restart, dax = false;
  pid_t pid, agent;

  open_console ();
  signal_fd = reap_setup (&child_sigmask, &err);
  if (signal_fd < 0)
    fatal (&err);
  phase ("start");
  if (getpid () != 1)
    log_warn ("not PID 1");
  /* Ctrl-Alt-Del (QEMU sendkey, a hypervisor's reset key) then sends
     SIGINT to init, which passes it on, instead of an immediate reboot. */
  reboot (RB_DISABLE_CAD);
  umask (022);
  if (mnt_early (&err) < 0)
    fatal (&err);
  uevent_fd = uevent_open (&err);
  if (uevent_fd < 0)
    fatal (&err);

  phase ("modules");
  if (modules_load (&err) < 0)
    fatal (&err);

  phase ("disks");
  if (find_disks (uevent_fd, &cfg, &cfg_err, &root, &upper, &dax, &err) < 0)
    fatal (&err);

  phase ("config");
  if (cfg_err != NULL)
    fatal (&cfg_err);

  phase ("overlay");
  if (mnt_overlay_root (root.dev, dax, cfg.overlay == OVERLAY_DISK ? upper.dev : NULL,
                        cfg.overlay_size, &err)
          < 0
      || stage_agent (&cfg, &have_agent, &err) < 0 || mnt_switch_root (&err) < 0)
    fatal (&err);

  phase ("network");
  if (cfg.has_address)
    {
      double deadline = clock_now_ms () + cfg.init_timeout * 1000.0;
      if (netdev_wait (uevent_fd, "eth0", deadline, &err) < 0)
        fatal (&err);
    }
  /* The power button (loaded in the modules phase) is normally there by
     now; the uevent socket stays open only to find it if it comes late. */
  button_init (&button, uevent_fd);
  if (net_configure (&cfg, &err) < 0 || sysconf_write (&cfg, &err) < 0)
    fatal (&err);

  phase ("agent");
  agent = start_agent (&cfg, have_agent);
  start_sshd (&cfg);

  if (entrypoint_spec (&cfg, &argv, &env, &user, &err) < 0)
    fatal (&err);
  workdir = cfg.workdir ? cfg.workdir : "/";
  /* Docker creates a missing WorkingDir. */
  if (mkdir_p (workdir, 0755, &err) < 0)
    fatal (&err);

  phase ("exec");
  {
    struct spawn s = {
      .argv = argv.v, .envp = env.v, .workdir = workdir, .user = &user, .sigmask = &child_sigmask
    };
    pid = spawn_process (&s, &err);
  }
  if (pid < 0)
    fatal (&err);

  status = reap_until (signal_fd, &button, pid, agent, &restart);
  log_info ("entrypoint exited status %d", status);
  strv_free (&argv);
  strv_free (&env);
  config_free (&cfg);
  reap_poweroff (signal_fd, restart);
}
