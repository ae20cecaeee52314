/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Exec: fork/exec argv (PATH search) in its own session, stream its stdout
 * and stderr as ExecOutput frames, then send ExecExit once the child is
 * reaped and both pipes reached EOF (or a grace deadline after the exit, as
 * a daemonized grandchild may hold the pipes forever).  If the host goes
 * away, the child's process group is killed.
 */
#include "exec.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "cleanup.h"
#include "log.h"

#define EXEC_MAX_ARGS 4096
#define EXEC_CHUNK (64u << 10)
#define EXEC_PIPE_GRACE_MS 1000
#define EXEC_DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

extern char **environ;

struct exec_proc
{
  struct req r; /* r.conn is NULL once the host went away */
  struct exec_proc *next;
  pid_t pid;
  bool reaped, paused;
  int status;
  struct bufferevent *out[2]; /* stdout, stderr; NULL after EOF */
  struct bufferevent *in;
  struct event *timer; /* timeout_ms, then the pipe grace deadline */
};

static struct exec_proc *procs;

int
exec_validate (const Chvm__Agent__ExecRequest *rq, const char **why)
{
  if (rq->n_argv == 0 || rq->argv[0][0] == '\0')
    {
      *why = "argv is empty";
      return -1;
    }
  if (rq->n_argv > EXEC_MAX_ARGS || rq->n_env > EXEC_MAX_ARGS)
    {
      *why = "too many argv or env entries";
      return -1;
    }
  for (size_t i = 0; i < rq->n_env; i++)
    if (strchr (rq->env[i], '=') == NULL || rq->env[i][0] == '=')
      {
        *why = "env entries must be NAME=value";
        return -1;
      }
  return 0;
}

static void
proc_free (struct exec_proc *p)
{
  struct exec_proc **pp;

  for (pp = &procs; *pp; pp = &(*pp)->next)
    if (*pp == p)
      {
        *pp = p->next;
        break;
      }
  for (int i = 0; i < 2; i++)
    if (p->out[i])
      bufferevent_free (p->out[i]);
  if (p->in)
    bufferevent_free (p->in);
  if (p->timer)
    event_free (p->timer);
  free (p);
}

static void
proc_maybe_finish (struct exec_proc *p, bool grace_over)
{
  Chvm__Agent__ExecExit ee = CHVM__AGENT__EXEC_EXIT__INIT;
  Frame f = CHVM__AGENT__FRAME__INIT;

  if (!p->reaped || (!grace_over && (p->out[0] || p->out[1])))
    return;
  if (p->r.conn)
    {
      for (int i = 0; i < 2; i++)
        if (p->out[i]) /* flush what the pipes still hold */
          bufferevent_trigger (p->out[i], EV_READ, BEV_TRIG_IGNORE_WATERMARKS);
      if (WIFSIGNALED (p->status))
        {
          ee.signal = WTERMSIG (p->status);
          ee.code = 128 + ee.signal;
        }
      else
        ee.code = WEXITSTATUS (p->status);
      f.id = p->r.id;
      f.body_case = CHVM__AGENT__FRAME__BODY_EXEC_EXIT;
      f.exec_exit = &ee;
      conn_send (p->r.conn, &f);
      conn_req_done (&p->r);
    }
  proc_free (p);
}

static void
out_read_cb (struct bufferevent *bev, void *arg)
{
  struct exec_proc *p = arg;
  struct evbuffer *in = bufferevent_get_input (bev);
  static uint8_t chunk[EXEC_CHUNK];
  int which = bev == p->out[1];

  while (evbuffer_get_length (in) > 0)
    {
      Chvm__Agent__ExecOutput eo = CHVM__AGENT__EXEC_OUTPUT__INIT;
      Frame f = CHVM__AGENT__FRAME__INIT;
      int n = evbuffer_remove (in, chunk, sizeof chunk);

      if (n <= 0 || p->r.conn == NULL)
        {
          evbuffer_drain (in, evbuffer_get_length (in));
          break;
        }
      eo.stream = which ? CHVM__AGENT__STREAM__STREAM_STDERR : CHVM__AGENT__STREAM__STREAM_STDOUT;
      eo.data.data = chunk;
      eo.data.len = (size_t) n;
      f.id = p->r.id;
      f.body_case = CHVM__AGENT__FRAME__BODY_EXEC_OUTPUT;
      f.exec_output = &eo;
      conn_send (p->r.conn, &f);
    }
  if (p->r.conn != NULL && conn_out_full_p (p->r.conn) && !p->paused)
    {
      p->paused = true;
      for (int i = 0; i < 2; i++)
        if (p->out[i])
          bufferevent_disable (p->out[i], EV_READ);
    }
}

static void
out_event_cb (struct bufferevent *bev, short what, void *arg)
{
  struct exec_proc *p = arg;
  int which = bev == p->out[1];

  (void) what;
  out_read_cb (bev, p);
  bufferevent_free (bev);
  p->out[which] = NULL;
  proc_maybe_finish (p, false);
}

/* At exit: the processes were killed when their connections closed. */
void
exec_free_all (void)
{
  while (procs != NULL)
    proc_free (procs);
}

/* The connection's output drained: read the pipes again. */
static void
exec_drained (struct req *r)
{
  struct exec_proc *p = (struct exec_proc *) r;

  if (!p->paused)
    return;
  p->paused = false;
  for (int i = 0; i < 2; i++)
    if (p->out[i])
      bufferevent_enable (p->out[i], EV_READ);
}

static void
in_write_cb (struct bufferevent *bev, void *arg)
{
  struct exec_proc *p = arg;

  if (evbuffer_get_length (bufferevent_get_output (bev)) == 0)
    {
      bufferevent_free (bev); /* closes the child's stdin */
      p->in = NULL;
    }
}

static void
in_event_cb (struct bufferevent *bev, short what, void *arg)
{
  struct exec_proc *p = arg;

  (void) what; /* EPIPE: the child closed its stdin */
  bufferevent_free (bev);
  p->in = NULL;
}

static void
timer_cb (evutil_socket_t fd, short what, void *arg)
{
  struct exec_proc *p = arg;

  (void) fd;
  (void) what;
  if (!p->reaped)
    {
      log_info ("exec %d: timeout, killing it", (int) p->pid);
      kill (-p->pid, SIGKILL);
      return;
    }
  proc_maybe_finish (p, true);
}

void
exec_sigchld (void)
{
  pid_t pid;
  int st;

  while ((pid = waitpid (-1, &st, WNOHANG)) > 0)
    for (struct exec_proc *p = procs; p; p = p->next)
      if (p->pid == pid)
        {
          struct timeval tv = { EXEC_PIPE_GRACE_MS / 1000, (EXEC_PIPE_GRACE_MS % 1000) * 1000 };
          p->reaped = true;
          p->status = st;
          /* The pipes get a grace deadline to reach EOF. */
          evtimer_add (p->timer, &tv);
          proc_maybe_finish (p, false);
          break;
        }
}

static void
exec_cancel (struct req *r)
{
  struct exec_proc *p = (struct exec_proc *) r;

  /* Detached: it is freed once reaped, and its output is discarded. */
  if (!p->reaped)
    kill (-p->pid, SIGKILL);
}

/* Runs in the child: never returns. */
static void __attribute__ ((noreturn))
child (const Chvm__Agent__ExecRequest *rq, int fd_in, int fd_out, int fd_err, int fd_report)
{
  sigset_t all;
  char **envp = environ, **argv;
  int e;

  sigemptyset (&all);
  sigprocmask (SIG_SETMASK, &all, NULL);
  signal (SIGPIPE, SIG_DFL);
  setsid ();
  if (dup2 (fd_in, 0) < 0 || dup2 (fd_out, 1) < 0 || dup2 (fd_err, 2) < 0 || dup2 (fd_report, 3) < 0
      || fcntl (3, F_SETFD, FD_CLOEXEC) < 0)
    goto fail;
  /* The agent's sockets must not leak into what the host runs. */
  if (syscall (SYS_close_range, 4U, ~0U, 0U) < 0)
    for (int fd = 4; fd < 1024; fd++)
      close (fd);
  /* protobuf-c's repeated strings are not NULL-terminated. */
  argv = calloc (rq->n_argv + 1, sizeof *argv);
  if (argv == NULL)
    goto fail;
  memcpy (argv, rq->argv, rq->n_argv * sizeof *argv);
  if (rq->cwd != NULL && rq->cwd[0] != '\0' && chdir (rq->cwd) < 0)
    {
      e = -errno; /* negative: the working directory, not the program */
      goto report;
    }
  if (rq->n_env > 0)
    {
      bool has_path = false;
      size_t k = 0;
      envp = calloc (rq->n_env + 2, sizeof *envp);
      if (envp == NULL)
        goto fail;
      for (size_t i = 0; i < rq->n_env; i++)
        {
          has_path |= strncmp (rq->env[i], "PATH=", 5) == 0;
          envp[k++] = rq->env[i];
        }
      if (!has_path)
        envp[k++] = (char *) EXEC_DEFAULT_PATH;
      envp[k] = NULL;
      /* execvpe searches the PATH of the current environment. */
      for (size_t i = 0; i < k; i++)
        if (strncmp (envp[i], "PATH=", 5) == 0)
          setenv ("PATH", envp[i] + 5, 1);
    }
  execvpe (argv[0], argv, envp);
fail:
  e = errno;
report:
  if (write (3, &e, sizeof e) < 0)
    _exit (126);
  _exit (127);
}

void
exec_handle (struct conn *c, const Frame *f)
{
  const Chvm__Agent__ExecRequest *rq = f->exec;
  uint64_t id = f->id;
  int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, perr[2] = { -1, -1 }, prep[2] = { -1, -1 };
  struct exec_proc *p = NULL;
  const char *why;
  int child_errno = 0;
  ssize_t n;

  if (exec_validate (rq, &why) < 0)
    {
      conn_send_error (c, id, CHVM__AGENT__ERROR_CODE__ERROR_BAD_REQUEST, "%s", why);
      return;
    }
  p = calloc (1, sizeof *p);
  if (p == NULL || pipe2 (pin, O_CLOEXEC) < 0 || pipe2 (pout, O_CLOEXEC) < 0
      || pipe2 (perr, O_CLOEXEC) < 0 || pipe2 (prep, O_CLOEXEC) < 0)
    {
      conn_send_error (c, id, CHVM__AGENT__ERROR_CODE__ERROR_INTERNAL, "pipe: %s",
                       strerror (errno));
      goto out;
    }
  p->pid = fork ();
  if (p->pid < 0)
    {
      conn_send_error (c, id, CHVM__AGENT__ERROR_CODE__ERROR_INTERNAL, "fork: %s",
                       strerror (errno));
      goto out;
    }
  if (p->pid == 0)
    child (rq, pin[0], pout[1], perr[1], prep[1]);
  close (pin[0]);
  close (pout[1]);
  close (perr[1]);
  close (prep[1]);
  pin[0] = pout[1] = perr[1] = prep[1] = -1;
  /* Blocks only until the child's exec (CLOEXEC closes the pipe) or its
     report of why exec failed. */
  n = TEMP_FAILURE_RETRY (read (prep[0], &child_errno, sizeof child_errno));
  if (n == (ssize_t) sizeof child_errno)
    {
      int st, en = child_errno < 0 ? -child_errno : child_errno;
      TEMP_FAILURE_RETRY (waitpid (p->pid, &st, 0));
      conn_send_error (c, id,
                       en == ENOENT ? CHVM__AGENT__ERROR_CODE__ERROR_NOT_FOUND
                                    : CHVM__AGENT__ERROR_CODE__ERROR_INTERNAL,
                       "%s %s: %s", child_errno < 0 ? "working directory" : "exec",
                       child_errno < 0 ? rq->cwd : rq->argv[0], strerror (en));
      goto out;
    }
  log_info ("%s: exec %s: pid %d", c->name, rq->argv[0], (int) p->pid);
  p->timer = evtimer_new (agent.base, timer_cb, p);
  evutil_make_socket_nonblocking (pout[0]);
  evutil_make_socket_nonblocking (perr[0]);
  evutil_make_socket_nonblocking (pin[1]);
  p->out[0] = bufferevent_socket_new (agent.base, pout[0], BEV_OPT_CLOSE_ON_FREE);
  if (p->out[0])
    pout[0] = -1;
  p->out[1] = bufferevent_socket_new (agent.base, perr[0], BEV_OPT_CLOSE_ON_FREE);
  if (p->out[1])
    perr[0] = -1;
  if (rq->has_input && rq->input.len > 0)
    {
      p->in = bufferevent_socket_new (agent.base, pin[1], BEV_OPT_CLOSE_ON_FREE);
      if (p->in)
        pin[1] = -1;
    }
  if (p->timer == NULL || p->out[0] == NULL || p->out[1] == NULL
      || (rq->has_input && rq->input.len > 0 && p->in == NULL))
    {
      kill (-p->pid, SIGKILL);
      TEMP_FAILURE_RETRY (waitpid (p->pid, NULL, 0));
      conn_send_error (c, id, CHVM__AGENT__ERROR_CODE__ERROR_INTERNAL, "out of memory");
      goto out;
    }
  for (int i = 0; i < 2; i++)
    {
      bufferevent_setcb (p->out[i], out_read_cb, NULL, out_event_cb, p);
      bufferevent_enable (p->out[i], EV_READ);
    }
  if (p->in)
    {
      bufferevent_setcb (p->in, NULL, in_write_cb, in_event_cb, p);
      bufferevent_write (p->in, rq->input.data, rq->input.len);
      bufferevent_enable (p->in, EV_WRITE);
    }
  if (rq->timeout_ms > 0)
    {
      struct timeval tv = { rq->timeout_ms / 1000, (rq->timeout_ms % 1000) * 1000 };
      evtimer_add (p->timer, &tv);
    }
  p->next = procs;
  procs = p;
  conn_req_add (c, &p->r, id, exec_cancel, exec_drained);
  p = NULL;
out:
  for (int i = 0; i < 2; i++)
    {
      if (pin[i] >= 0)
        close (pin[i]);
      if (pout[i] >= 0)
        close (pout[i]);
      if (perr[i] >= 0)
        close (perr[i]);
      if (prep[i] >= 0)
        close (prep[i]);
    }
  if (p)
    proc_free (p);
}
