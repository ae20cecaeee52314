/* SPDX-License-Identifier: Apache-2.0 */
/* Waiting for a guest: the agent connection (retried while it boots, given
   up when the VMM exits), guest-init's console line that the agent runs,
   then the agent's WaitReady for the browser and its DevTools. */
#include "cleanup.h"
#include "clock.h"
#include "vm/vmctl.h"
#include "vmm/console.h"
#include <poll.h>
#include <string.h>
#include <sys/pidfd.h>

int
vmctl_agent (const struct vmctl *c, int timeout_ms, struct agent_client **out, struct err **err)
{
  double deadline = clock_now_ms () + timeout_ms;
  cleanup_close int pidfd = pidfd_open (c->rec.rt.vmm_pid, 0);
  int backoff = 20;
  const char *token = c->rec.agent_token[0] ? c->rec.agent_token : NULL;
  unsigned port = c->rec.agent_vsock_port ? c->rec.agent_vsock_port : c->rec.agent_tcp_port;

  if (pidfd < 0)
    return err_make (err, errno, "VMM (pid %d) is not running", (int) c->rec.rt.vmm_pid);
  for (;;)
    {
      cleanup_err struct err *e = NULL;
      struct pollfd p = { .fd = pidfd, .events = POLLIN };
      int fd, left = clock_left_ms (deadline);

      if (c->rec.address[0] && c->rec.agent_vsock_port == 0 && c->rec.agent_tcp_port != 0)
        {
          /* QEMU on a tap: no hostfwd, the agent is at the guest address. */
          char ip[20];
          snprintf (ip, sizeof ip, "%.*s", (int) strcspn (c->rec.address, "/"), c->rec.address);
          fd = dial_tcp (ip, c->rec.agent_tcp_port, left > 5000 ? 5000 : left, &e);
        }
      else
        fd = c->be->agent_connect (&c->rec.rt, port, left > 5000 ? 5000 : left, &e);
      if (fd >= 0)
        {
          *out = agent_open (fd, token, left > 5000 ? 5000 : left, &e);
          if (*out != NULL)
            return 0;
        }
      left = clock_left_ms (deadline);
      if (left == 0)
        {
          err_make (err, e ? e->status : ETIMEDOUT, "agent of VM '%s' did not answer in %d ms",
                    c->rec.name, timeout_ms);
          if (e != NULL && e->msg != NULL)
            err_wrap (err, "%s", e->msg);
          return -1;
        }
      /* The agent is not listening yet (under QEMU the hostfwd accepts and
         then drops us): back off, but wake at once if the VMM exits. */
      if (TEMP_FAILURE_RETRY (poll (&p, 1, backoff < left ? backoff : left)) > 0)
        return err_make (err, 0, "VMM (pid %d) exited", (int) c->rec.rt.vmm_pid);
      if (backoff < 500)
        backoff *= 2;
    }
}

struct scan
{
  char carry[1024];
  size_t len;
};

/* Scans console bytes for guest-init's phase lines.  Returns 1 once the
   agent phase (or exec) is seen, 0 to go on, <0 for an ERROR line. */
static int
scan_console (void *ctx, const char *buf, size_t n, struct err **err)
{
  struct scan *sc = ctx;
  char *carry = sc->carry;

  for (size_t i = 0; i < n; i++)
    {
      if (buf[i] != '\n')
        {
          if (sc->len < sizeof sc->carry - 1)
            carry[sc->len++] = buf[i];
          continue;
        }
      carry[sc->len] = '\0';
      sc->len = 0;
      if (strstr (carry, "ERROR init[1]:") != NULL)
        return err_make (err, 0, "guest: %s", strstr (carry, "ERROR init[1]:"));
      /* guest-init goes on without an agent; nothing would answer. */
      if (strstr (carry, "WARN init[1]:") != NULL && strstr (carry, "without agent") != NULL)
        return err_make (err, 0, "guest: %s", strstr (carry, "WARN init[1]:"));
      if (strstr (carry, "init[1]:") != NULL
          && (strstr (carry, "phase agent") != NULL || strstr (carry, "phase exec") != NULL))
        return 1;
    }
  return 0;
}

/* Follows the console (console.log.1, console.log and its rotations). */
static int
wait_console_agent (const struct vmctl *c, double deadline, struct err **err)
{
  struct console_follow f = { .fd = -1, .ino = -1 };
  cleanup_close int pidfd = pidfd_open (c->rec.rt.vmm_pid, 0);
  struct scan sc = { .len = 0 };
  int r;

  if (pidfd < 0)
    return err_make (err, errno, "watch VMM %d", (int) c->rec.rt.vmm_pid);
  r = console_follow_open (&f, c->dir, true, scan_console, &sc, err);
  while (r == 0)
    {
      struct pollfd p[2] = { { .fd = f.ino, .events = POLLIN }, { .fd = pidfd, .events = POLLIN } };

      if ((r = console_follow_read (&f, scan_console, &sc, err)) != 0)
        break;
      r = TEMP_FAILURE_RETRY (poll (p, 2, clock_left_ms (deadline)));
      if (r == 0)
        {
          r = err_make (err, ETIMEDOUT, "guest-init did not start the agent (see %s)", f.path);
          break;
        }
      r = 0;
      if (p[1].revents & POLLIN)
        {
          /* The logger writes the last lines after the VMM is gone. */
          console_logger_stop (c->dir, 2000);
          r = console_follow_read (&f, scan_console, &sc, err);
          if (r == 0 || r == 1)
            r = err_make (err, 0, "VMM exited during boot (see %s and chvm logs --source vmm)",
                          f.path);
          break;
        }
    }
  console_follow_close (&f);
  return r < 0 ? r : 0;
}

int
vmctl_wait_ready (const struct vmctl *c, int timeout_ms, unsigned *ready_ms, char *browser,
                  size_t browser_len, struct err **err)
{
  double deadline = clock_now_ms () + timeout_ms;
  struct agent_client *a = NULL;
  Chvm__Agent__Frame *reply = NULL;
  int left;

  if (wait_console_agent (c, deadline, err) < 0
      || vmctl_agent (c, clock_left_ms (deadline), &a, err) < 0)
    return -1;
  left = clock_left_ms (deadline);
  if (agent_wait_ready (a, (unsigned) left, c->rec.cdp_port, &reply, err) < 0)
    {
      agent_close (a);
      return err_wrap (err, "browser not ready");
    }
  if (reply->body_case == CHVM__AGENT__FRAME__BODY_WAIT_READY_REPLY)
    {
      *ready_ms = reply->wait_ready_reply->ready_after_ms;
      snprintf (browser, browser_len, "%s",
                reply->wait_ready_reply->browser ? reply->wait_ready_reply->browser : "");
    }
  chvm__agent__frame__free_unpacked (reply, NULL);
  agent_close (a);
  return 0;
}
