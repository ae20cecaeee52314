/* SPDX-License-Identifier: Apache-2.0 */
#include "vm/vmmuser.h"

#include "sys/cgroup.h"
#include "sys/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "vm/template.h"

#define SUBUID_FILE "/etc/subuid"
#define SUBUID_MAX (1 << 20) /* bytes read of it */
#define HOW_TO                                                                                     \
  "run scripts/vmm-user.sh as root (make install does), or set CHVM_VMM_USER=root to run "         \
  "VMMs as root, unconfined"

int
vmmuser_parse_subuid (const char *text, const char *name, uint32_t uid, uint32_t *first,
                      uint32_t *count)
{
  char uid_s[16];

  snprintf (uid_s, sizeof uid_s, "%u", uid);
  for (const char *line = text; *line;)
    {
      const char *end = strchrnul (line, '\n');
      char buf[160], *c1, *e1, *e2;
      unsigned long long a, b;
      size_t len = (size_t) (end - line);

      line = *end ? end + 1 : end;
      if (len >= sizeof buf)
        continue;
      memcpy (buf, end - len, len);
      buf[len] = '\0';
      /* NAME_OR_UID:FIRST:COUNT */
      c1 = strchr (buf, ':');
      if (c1 == NULL)
        continue;
      *c1 = '\0';
      if (strcmp (buf, name) != 0 && strcmp (buf, uid_s) != 0)
        continue;
      errno = 0;
      a = strtoull (c1 + 1, &e1, 10);
      if (e1 == c1 + 1 || *e1 != ':')
        continue;
      b = strtoull (e1 + 1, &e2, 10);
      if (errno != 0 || e2 == e1 + 1 || *e2 != '\0' || a == 0 || b == 0 || a + b > UINT32_MAX)
        continue;
      *first = (uint32_t) a;
      *count = (uint32_t) b;
      return 1;
    }
  return 0;
}

/* Looks the user and its /etc/subuid range up; a missing one is an error
   saying how to make it. */
static int
vmmuser_resolve (struct vmm_user *u, struct err **err)
{
  const char *name = getenv ("CHVM_VMM_USER");
  cleanup_close int fd = -1;
  cleanup_free char *text = NULL;
  struct passwd pwd, *pw = NULL;
  char pwbuf[1024];
  ssize_t n;

  memset (u, 0, sizeof *u);
  if (name == NULL || name[0] == '\0')
    name = VMMUSER_DEFAULT;
  if (strcmp (name, "root") == 0)
    {
      log_warn ("CHVM_VMM_USER=root: the VMM runs as root with every capability");
      u->root = true;
      snprintf (u->name, sizeof u->name, "root");
      return 0;
    }
  if (snprintf (u->name, sizeof u->name, "%s", name) >= (int) sizeof u->name)
    return err_make (err, ENAMETOOLONG, "CHVM_VMM_USER");
  errno = getpwnam_r (name, &pwd, pwbuf, sizeof pwbuf, &pw);
  if (pw == NULL)
    return err_make (err, errno, "the VMM user '%s' does not exist: %s", name, HOW_TO);
  text = malloc (SUBUID_MAX + 1);
  if (text == NULL)
    return err_make (err, ENOMEM, "read %s", SUBUID_FILE);
  fd = open (SUBUID_FILE, O_RDONLY | O_CLOEXEC);
  n = fd < 0 ? -1 : read (fd, text, SUBUID_MAX);
  text[n > 0 ? n : 0] = '\0';
  if (vmmuser_parse_subuid (text, name, pw->pw_uid, &u->first, &u->count) != 1)
    return err_make (err, 0,
                     "the VMM user '%s' has no uid range in %s (each VM's VMM gets a uid of "
                     "its own from it): %s",
                     name, SUBUID_FILE, HOW_TO);
  return 0;
}

int
vmmuser_pick (const struct vmm_user *u, const uint32_t *used, size_t n, bool (*busy) (uint32_t uid),
              uint32_t *out, struct err **err)
{
  for (uint32_t k = 0; k < u->count; k++)
    {
      uint32_t uid = u->first + k;
      bool taken = false;

      for (size_t i = 0; i < n && !taken; i++)
        taken = used[i] == uid;
      if (!taken && busy != NULL && busy (uid))
        {
          log_warn ("VMM uid %u: a process of it is still running; not handed out", uid);
          taken = true;
        }
      if (!taken)
        {
          *out = uid;
          return 0;
        }
    }
  return err_make (err, ENOSPC,
                   "every uid of %s's range (%u-%u) is some VM's or still runs a process", u->name,
                   u->first, u->first + u->count - 1);
}

static bool
uid_busy (uint32_t uid)
{
  return proc_uid_count ((uid_t) uid) != 0;
}

int
vmmuser_assign (const char *root, struct vm_record *r, struct err **err)
{
  struct vmm_user u;
  char **names;
  size_t cnt, n = 0;
  cleanup_free uint32_t *used = NULL, *tg = NULL;
  uint32_t *more;
  size_t ntg = 0;
  int rc;

  if (vmmuser_resolve (&u, err) < 0)
    return -1;
  r->vmm_uid = 0;
  if (u.root)
    return 0;
  if (vmstate_list (root, &names, &cnt, err) < 0)
    return -1;
  used = calloc (cnt + 1, sizeof *used);
  for (size_t i = 0; used != NULL && i < cnt; i++)
    {
      cleanup_err struct err *e = NULL;
      cleanup_free struct vm_record *o = malloc (sizeof *o);
      if (o != NULL && strcmp (names[i], r->name) != 0 && vmrec_load (root, names[i], o, &e) == 0
          && o->vmm_uid != 0)
        used[n++] = o->vmm_uid;
    }
  vmstate_list_free (names, cnt);
  if (used == NULL)
    return err_make (err, ENOMEM, "VMM uids");
  /* A template's memory file belongs to the group of its maker's uid
     (vm/template.h): no new VM gets that uid. */
  if (template_gids (root, &tg, &ntg, err) < 0)
    return -1;
  if (ntg > 0 && (more = realloc (used, (n + ntg) * sizeof *used)) == NULL)
    return err_make (err, ENOMEM, "VMM uids");
  if (ntg > 0)
    used = more, memcpy (used + n, tg, ntg * sizeof *tg), n += ntg;
  rc = vmmuser_pick (&u, used, n, uid_busy, &r->vmm_uid, err);
  return rc;
}

/* chmod so that others may search (not list) a directory chvm owns. */
static int
searchable (const char *path, struct err **err)
{
  struct stat st;

  if (stat (path, &st) < 0)
    return err_make (err, errno, "stat %s", path);
  if ((st.st_mode & S_IXOTH) || st.st_uid != geteuid ())
    return 0;
  if (chmod (path, (st.st_mode & 07777) | S_IXGRP | S_IXOTH) < 0)
    return err_make (err, errno, "chmod %s", path);
  return 0;
}

/* vmmuser_prepare's part for a VMM of a uid of its own. */
static int
prepare_uid (const char *root, const char *dir, const struct vm_record *r, struct err **err)
{
  /* What the VMM writes itself (console.log is the root logger's). */
  static const char *const vmm_files[] = { "events.json" };
  uid_t uid = r->vmm_uid;
  char path[VM_PATH_MAX + 64];

  /* Its processes end with its VMM (vmctl_vmm_gone): one still running is
     another state dir's VM with the same uid, or was left by a chvm killed
     mid-stop; the new VMM must not share a uid with it. */
  if (proc_uid_count ((uid_t) uid) != 0)
    return err_make (err, EBUSY,
                     "the VMM uid %u of VM '%s' still runs processes (another state dir's VM, "
                     "or left behind); stop them first",
                     (unsigned) uid, r->name);
  snprintf (path, sizeof path, "%s/vms", root);
  if (searchable (root, err) < 0 || searchable (path, err) < 0)
    return -1;
  if (fs_give (dir, 0, uid, 01770, true, err) < 0)
    return -1;
  /* The VMM's uid may have put anything under its own names (a link to a
     file of root's, a FIFO): what is not a plain file goes, and the VMM
     makes it anew. */
  for (size_t i = 0; i < sizeof vmm_files / sizeof vmm_files[0]; i++)
    {
      snprintf (path, sizeof path, "%s/%s", dir, vmm_files[i]);
      if (fs_give (path, uid, uid, -1, false, err) < 0)
        {
          if ((*err)->status != EPERM || unlink (path) < 0)
            return -1;
          err_release (err);
        }
    }
  if (r->upper_disk[0] && fs_give (r->upper_disk, uid, uid, -1, true, err) < 0)
    return -1;
  /* The config disk holds the agent token: readable by this VMM only. */
  if (r->config_disk[0] && fs_give (r->config_disk, 0, uid, 0640, true, err) < 0)
    return -1;
  return 0;
}

void
vmmuser_cgroup_leaf (const char *name, const char *dir, char *out, size_t len)
{
  uint64_t h = UINT64_C (14695981039346656037); /* FNV-1a */
  char real[PATH_MAX];

  /* The dir tells two state dirs' VMs of the same name apart; as the
     kernel resolves it, so that "--state-dir /s/" or a link to /s names
     the same cgroup as /s. */
  if (realpath (dir, real) != NULL)
    dir = real;
  for (const unsigned char *p = (const unsigned char *) dir; *p; p++)
    h = (h ^ *p) * UINT64_C (1099511628211);
  snprintf (out, len, "%s-%016llx", name, (unsigned long long) h);
}

void
vmmuser_cgroup_limits (const struct vm_record *r, struct cgroup_limits *l)
{
  uint64_t overhead
      = strcmp (r->backend, "qemu") == 0 ? VMMUSER_OVERHEAD_QEMU_MIB : VMMUSER_OVERHEAD_CH_MIB;

  l->cpus = r->cpus;
  l->memory_bytes = (r->memory_mib + overhead) << 20;
  l->pids = VMMUSER_PIDS_MAX;
}

int
vmmuser_cgroup_find (const char *dir, const char *name, char *path, size_t len, struct err **err)
{
  char leaf[VM_NAME_MAX + 24];

  vmmuser_cgroup_leaf (name, dir, leaf, sizeof leaf);
  return cgroup_path (leaf, path, len, err);
}

/* The VM's cgroup afresh, into r->cgroup; "" on a host without cgroup v2.
   Neither that nor a missing controller is worth a line on every run
   (a hybrid host has a cgroup2 mount without controllers): chvm doctor
   and inspect say so. */
static int
cgroup_make (const char *dir, struct vm_record *r, struct err **err)
{
  char leaf[VM_NAME_MAX + 24], root[CGROUP_PATH_MAX], missing[64];
  cleanup_err struct err *e = NULL;
  struct cgroup_limits l;

  r->cgroup[0] = '\0';
  if (cgroup_root (root, sizeof root, &e) < 0)
    return 0;
  vmmuser_cgroup_leaf (r->name, dir, leaf, sizeof leaf);
  vmmuser_cgroup_limits (r, &l);
  if (cgroup_create (leaf, &l, r->cgroup, sizeof r->cgroup, missing, sizeof missing, err) < 0)
    {
      r->cgroup[0] = '\0';
      return err_wrap (err, "VM '%s': its cgroup", r->name);
    }
  if (missing[0])
    log_debug ("VM '%s': cgroup v2 at %s lacks the %s controller(s): no such limit for it", r->name,
               root, missing);
  return 0;
}

int
vmmuser_cgroup_remove (const char *dir, struct vm_record *r, struct err **err)
{
  char path[VM_PATH_MAX];
  cleanup_err struct err *e = NULL;

  if (vmmuser_cgroup_find (dir, r->name, path, sizeof path, &e) < 0)
    snprintf (path, sizeof path, "%s", r->cgroup);
  r->cgroup[0] = '\0';
  if (path[0] == '\0')
    return 0;
  return cgroup_destroy (path, VMMUSER_KILL_MS, err);
}

int
vmmuser_prepare (const char *root, const char *dir, struct vm_record *r, struct err **err)
{
  if (r->vmm_uid != 0 && prepare_uid (root, dir, r, err) < 0)
    return -1;
  /* Last: nothing after it can fail and leave it behind. */
  return cgroup_make (dir, r, err);
}

int
vmmuser_give_dir (const char *path, const struct vm_record *r, struct err **err)
{
  if (r->vmm_uid == 0)
    return 0;
  return fs_give (path, r->vmm_uid, r->vmm_uid, -1, true, err);
}

static void
need (struct vmm_jail_storage *s, size_t *n, char kind, const char *path)
{
  if (path == NULL || path[0] == '\0' || *n >= VMMUSER_MAX_NEED)
    return;
  snprintf (s->paths[*n], sizeof s->paths[*n], "%c:%s", kind, path);
  s->need[*n] = s->paths[*n];
  s->need[++*n] = NULL;
}

/* The device's group, when it is not root's: that is what grants it. */
static void
device_group (struct proc_jail *j, const char *dev)
{
  struct stat st;

  if (stat (dev, &st) < 0 || st.st_gid == 0
      || j->n_groups >= sizeof j->groups / sizeof j->groups[0])
    return;
  for (size_t i = 0; i < j->n_groups; i++)
    if (j->groups[i] == st.st_gid)
      return;
  j->groups[j->n_groups++] = st.st_gid;
}

const struct proc_jail *
vmmuser_jail (const struct vm_record *r, const char *dir, struct vmm_jail_storage *s)
{
  static const char *const env[] = { "PATH=/usr/local/bin:/usr/bin:/bin", NULL };
  size_t n = 0;

  if (r->vmm_uid == 0)
    return NULL;
  memset (s, 0, sizeof *s);
  s->jail.uid = r->vmm_uid;
  s->jail.gid = r->vmm_uid;
  s->jail.env = env;
  s->jail.need = s->need;
  /* CH v48 gives a tap it does not see in /sys/class/net an address,
     which needs CAP_NET_ADMIN: in a netns it must see that netns's /sys. */
  s->jail.own_sysfs = r->netns[0] != '\0';
  device_group (&s->jail, "/dev/kvm");
  need (s, &n, 'w', "/dev/kvm");
  /* CH's ondemand restore; scripts/vmm-user.sh gives it the kvm group. */
  device_group (&s->jail, "/dev/userfaultfd");
  need (s, &n, 'd', dir);
  need (s, &n, 'r', r->kernel);
  need (s, &n, 'r', r->initrd);
  need (s, &n, 'r', r->rootfs);
  need (s, &n, 'r', r->config_disk);
  need (s, &n, 'w', r->upper_disk);
  /* A clone maps its template's memory file (0660, the template's group). */
  if (r->template_name[0])
    device_group (&s->jail, r->memory_file);
  if (r->tap[0])
    {
      device_group (&s->jail, "/dev/net/tun");
      need (s, &n, 'w', "/dev/net/tun");
    }
  return &s->jail;
}

bool
vmmuser_landlock_p (void)
{
  const char *v = getenv ("CHVM_CH_LANDLOCK");

  if (v != NULL && strcmp (v, "0") == 0)
    return false;
  /* landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) */
  return syscall (SYS_landlock_create_ruleset, NULL, 0, 1U) >= 1;
}
