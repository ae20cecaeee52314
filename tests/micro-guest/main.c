/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The micro guest: just enough of a VM to drive Cloud Hypervisor for real
 * on a host whose KVM is software (kvm_pvm, ~1-2 M instructions/s), where a
 * Linux guest cannot run.  Kernel command line (all optional):
 *   touch_mib=N  write one word into each 4 KiB page of N MiB of RAM first,
 *                so snapshots carry N MiB of guest memory
 *   spin=N       pause-loop iterations between two serial lines (pacing)
 *   flood=N      first print N "flood" lines of ~100 bytes as fast as the
 *                serial port takes them, then an "ERROR init[1]:" line (what
 *                chvm run stops at); default MICRO_FLOOD (0; micro-flood.elf
 *                is built with 6000, as chvm cannot change the command line)
 * Serial (COM1) output, one line each:
 *   "touched N MiB"           after the touch pass
 *   "flood N xxx...x"         N = 1 .. flood, then
 *   "ERROR init[1]: micro flood done lines=N"
 *   "count N"                 forever, N = 1, 2, ...; the counter lives in
 *                             guest RAM, so after a restore it carries on
 *   "memcheck bad 0xADDR"     a touched page lost its content (checked one
 *                             page per line, round robin)
 */
#include <stdint.h>

#define MAP_LIMIT (16ULL << 30)  /* identity-mapped by entry.S */
#define TOUCH_FLOOR (4ULL << 20) /* above our image and page tables */
#define PAGE 4096ULL
#define MAX_REGIONS 8
#ifndef MICRO_FLOOD
#define MICRO_FLOOD 0
#endif
/* touch_mib's default: micro-touchN.elf is built with N, for chvm run
   (whose kernel command line is chvm's own). */
#ifndef MICRO_TOUCH_MIB
#define MICRO_TOUCH_MIB 0
#endif

struct hvm_start_info
{
  uint32_t magic, version, flags, nr_modules;
  uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
  uint32_t memmap_entries, reserved;
};

struct hvm_memmap_entry
{
  uint64_t addr, size;
  uint32_t type, reserved;
};

struct region
{
  uint64_t start, pages;
};

/* Kept in guest RAM (not registers) so a snapshot holds it. */
volatile uint64_t counter;

static struct region regions[MAX_REGIONS];
static unsigned n_regions;
static uint64_t touched_pages;

static inline void
outb (uint16_t port, uint8_t v)
{
  __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static void
puts_serial (const char *s)
{
  while (*s)
    outb (0x3f8, (uint8_t) *s++);
}

static void
put_u64 (uint64_t v, int base)
{
  char buf[24];
  int i = sizeof buf - 1;

  buf[i] = '\0';
  do
    {
      buf[--i] = "0123456789abcdef"[v % base];
      v /= base;
    }
  while (v != 0 && i > 0);
  puts_serial (&buf[i]);
}

/* Value of "key=N" in the command line, or def. */
static uint64_t
cmdline_u64 (const char *cmdline, const char *key, uint64_t def)
{
  const char *p = cmdline;

  if (cmdline == 0)
    return def;
  while (*p)
    {
      const char *k = key, *q = p;
      while (*k && *q == *k)
        k++, q++;
      if (*k == '\0' && *q == '=' && (p == cmdline || p[-1] == ' '))
        {
          uint64_t v = 0;
          for (q++; *q >= '0' && *q <= '9'; q++)
            v = v * 10 + (uint64_t) (*q - '0');
          return v;
        }
      p++;
    }
  return def;
}

static uint64_t
page_addr (uint64_t idx)
{
  for (unsigned i = 0; i < n_regions; i++)
    {
      if (idx < regions[i].pages)
        return regions[i].start + idx * PAGE;
      idx -= regions[i].pages;
    }
  return 0;
}

/* Writes its own address into one word of each page: a value that a restore
   must bring back and that is never zero. */
static void
touch (const struct hvm_start_info *si, uint64_t want_pages)
{
  const struct hvm_memmap_entry *mm
      = (const struct hvm_memmap_entry *) (uintptr_t) si->memmap_paddr;

  for (uint32_t e = 0; si->version >= 1 && e < si->memmap_entries; e++)
    {
      uint64_t start = mm[e].addr, end = mm[e].addr + mm[e].size;

      if (mm[e].type != 1 || n_regions == MAX_REGIONS || touched_pages >= want_pages)
        continue;
      if (start < TOUCH_FLOOR)
        start = TOUCH_FLOOR;
      if (end > MAP_LIMIT)
        end = MAP_LIMIT;
      start = (start + PAGE - 1) & ~(PAGE - 1);
      if (start >= end)
        continue;
      uint64_t n = (end - start) / PAGE;
      if (n > want_pages - touched_pages)
        n = want_pages - touched_pages;
      regions[n_regions++] = (struct region){ start, n };
      for (uint64_t i = 0; i < n; i++)
        *(volatile uint64_t *) (uintptr_t) (start + i * PAGE) = start + i * PAGE;
      touched_pages += n;
    }
}

void
guest_main (const struct hvm_start_info *si)
{
  const char *cmdline = si->cmdline_paddr ? (const char *) (uintptr_t) si->cmdline_paddr : 0;
  uint64_t touch_mib = cmdline_u64 (cmdline, "touch_mib", MICRO_TOUCH_MIB);
  uint64_t spin = cmdline_u64 (cmdline, "spin", 20000);
  uint64_t flood = cmdline_u64 (cmdline, "flood", MICRO_FLOOD);

  touch (si, touch_mib * (1 << 20) / PAGE);
  puts_serial ("touched ");
  put_u64 (touched_pages * PAGE >> 20, 10);
  puts_serial (" MiB\n");
  for (uint64_t i = 1; i <= flood; i++)
    {
      puts_serial ("flood ");
      put_u64 (i, 10);
      puts_serial (" xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                   "xxxxxxxxx\n");
    }
  if (flood)
    {
      puts_serial ("ERROR init[1]: micro flood done lines=");
      put_u64 (flood, 10);
      puts_serial ("\n");
    }
  for (;;)
    {
      counter++;
      puts_serial ("count ");
      put_u64 (counter, 10);
      puts_serial ("\n");
      if (touched_pages)
        {
          uint64_t a = page_addr (counter % touched_pages);
          if (*(volatile uint64_t *) (uintptr_t) a != a)
            {
              puts_serial ("memcheck bad 0x");
              put_u64 (a, 16);
              puts_serial ("\n");
            }
        }
      for (uint64_t i = 0; i < spin; i++)
        __asm__ volatile("pause");
    }
}
