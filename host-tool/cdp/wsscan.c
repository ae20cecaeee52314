/* SPDX-License-Identifier: Apache-2.0 */
#include "cdp/wsscan.h"

#include <string.h>

#define JID_MAX_DEPTH 60000

static void
jid_scan_reset (struct jid_scan *j)
{
  memset (j, 0, sizeof *j);
}

static bool
jid_key_is_id (const struct jid_scan *j)
{
  return j->klen == 2 && j->key[0] == 'i' && j->key[1] == 'd';
}

static void
jid_scan_feed (struct jid_scan *j, const unsigned char *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    {
      unsigned char ch = p[i];

      if (j->in_str)
        {
          if (j->esc)
            j->esc = false;
          else if (ch == '\\')
            j->esc = true;
          else if (ch == '"')
            j->in_str = false;
          /* An escaped key never spells "id" here: counted as longer. */
          if (j->in_key)
            {
              if (!j->in_str)
                j->in_key = false;
              else if (j->klen < 2 && ch != '\\')
                j->key[j->klen++] = (char) ch;
              else
                j->klen = 3;
            }
          continue;
        }
      if (j->id_value && j->depth == 1)
        {
          if (ch >= '0' && ch <= '9')
            {
              j->has_id = true;
              continue;
            }
          if (ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n' && ch != '-')
            j->id_value = false;
        }
      switch (ch)
        {
        case '"':
          j->in_str = true;
          if (j->depth == 1 && j->key_next)
            {
              j->in_key = true;
              j->key_next = false;
              j->klen = 0;
            }
          break;
        case '{':
        case '[':
          if (j->depth < JID_MAX_DEPTH)
            j->depth++;
          if (j->depth == 1)
            j->key_next = ch == '{';
          break;
        case '}':
        case ']':
          if (j->depth > 0)
            j->depth--;
          break;
        case ':':
          if (j->depth == 1)
            j->id_value = jid_key_is_id (j);
          break;
        case ',':
          if (j->depth == 1)
            {
              j->key_next = true;
              j->id_value = false;
              j->klen = 0;
            }
          break;
        default:
          break;
        }
    }
}

void
ws_scan_init (struct ws_scan *s)
{
  memset (s, 0, sizeof *s);
  s->hneed = 2;
}

/* Header complete: sets up the payload of this frame. */
static int
ws_frame_start (struct ws_scan *s)
{
  unsigned char b0 = s->hdr[0];

  s->fin = (b0 & 0x80) != 0;
  s->opcode = b0 & 0x0f;
  /* RSV bits: an extension (permessage-deflate) the scanner cannot read. */
  if ((b0 & 0x70) != 0)
    return -1;
  switch (s->opcode)
    {
    case 0x0: /* continuation */
    case 0x2: /* binary */
    case 0x8: /* close */
    case 0x9: /* ping */
    case 0xa: /* pong */
      break;
    case 0x1: /* text: a new message */
      if (s->in_text)
        return -1;
      s->in_text = true;
      jid_scan_reset (&s->j);
      break;
    default:
      return -1;
    }
  if (s->opcode >= 0x8 && (!s->fin || s->left > 125))
    return -1;
  s->mask_pos = 0;
  s->frames++;
  return 0;
}

/* The current frame's payload ended. */
static int
ws_frame_end (struct ws_scan *s)
{
  int done = 0;

  if ((s->opcode == 0x1 || (s->opcode == 0x0 && s->in_text)) && s->fin)
    {
      s->in_text = false;
      s->messages++;
      done = s->j.has_id ? 1 : 0;
    }
  s->hlen = 0;
  s->hneed = 2;
  return done;
}

int
ws_scan_feed (struct ws_scan *s, const unsigned char *p, size_t n)
{
  int done = 0;
  size_t i = 0;

  if (s->broken)
    return -1;
  while (i < n)
    {
      if (s->hlen < s->hneed)
        {
          s->hdr[s->hlen++] = p[i++];
          if (s->hlen == 2)
            {
              unsigned len7 = s->hdr[1] & 0x7f;
              s->masked = (s->hdr[1] & 0x80) != 0;
              s->hneed = (uint8_t) (2
                                    + (len7 == 126   ? 2
                                       : len7 == 127 ? 8
                                                     : 0)
                                    + (s->masked ? 4 : 0));
            }
          if (s->hlen < s->hneed)
            continue;
          {
            unsigned len7 = s->hdr[1] & 0x7f;
            size_t off = 2;
            if (len7 < 126)
              s->left = len7;
            else if (len7 == 126)
              {
                s->left = ((uint64_t) s->hdr[2] << 8) | s->hdr[3];
                off = 4;
              }
            else
              {
                s->left = 0;
                for (int k = 0; k < 8; k++)
                  s->left = (s->left << 8) | s->hdr[2 + k];
                off = 10;
                if (s->left >> 63)
                  {
                    s->broken = true;
                    return -1;
                  }
              }
            if (s->masked)
              memcpy (s->mask, s->hdr + off, 4);
          }
          if (ws_frame_start (s) < 0)
            {
              s->broken = true;
              return -1;
            }
          if (s->left == 0)
            done += ws_frame_end (s);
          continue;
        }
      {
        size_t take = n - i;
        if (take > s->left)
          take = (size_t) s->left;
        if (s->opcode == 0x1 || (s->opcode == 0x0 && s->in_text))
          {
            unsigned char buf[512];
            size_t k = 0;
            while (k < take)
              {
                size_t m = take - k < sizeof buf ? take - k : sizeof buf;
                for (size_t q = 0; q < m; q++)
                  buf[q] = (unsigned char) (p[i + k + q]
                                            ^ (s->masked ? s->mask[(s->mask_pos + q) & 3] : 0));
                s->mask_pos = (uint8_t) ((s->mask_pos + m) & 3);
                jid_scan_feed (&s->j, buf, m);
                k += m;
              }
          }
        else
          s->mask_pos = (uint8_t) ((s->mask_pos + take) & 3);
        i += take;
        s->left -= take;
        if (s->left == 0)
          done += ws_frame_end (s);
      }
    }
  return done;
}
