/* cmd_fetch.c - FETCH and UID FETCH (RFC 3501 §6.4.5, §6.4.8), with CONDSTORE's
 * CHANGEDSINCE and MODSEQ and QRESYNC's VANISHED (RFC 7162 §3.1.4, §3.2.6).
 * Runs on an IMAP worker thread.  The messages are rendered one at a time
 * (fetch_render.c); after IMAP_EXEC_OUTPUT_STEP octets the job returns IMAP_EXEC_MORE
 * with the next index in x->cursor and is resumed once that output has gone, so a
 * FETCH 1:* of a large folder holds a bounded buffer.  BODY[...] without .PEEK (and
 * RFC822, RFC822.TEXT) sets \Seen in a read-write folder and reports FLAGS. */
#include <stdlib.h>
#include <string.h>

#include "imap/exec.h"
#include "imap/msgcmd.h"
#include "imap/reply.h"

static bool fetch_needs_header(const struct imap_fetch_item *items, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		switch (items[k].att) {
		case FA_ENVELOPE: case FA_RFC822_HEADER: case FA_BODY_SECTION: return true;
		default: break;
		}
	}
	return false;
}

/* INTERNALDATE and RFC822.SIZE cost a stat (and a read when neither the name nor
 * the index knows the size): FETCH (UID FLAGS) of a whole folder touches no file. */
static bool fetch_needs_date(const struct imap_fetch_item *items, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (items[k].att == FA_INTERNALDATE || items[k].att == FA_RFC822_SIZE)
			return true;
	return false;
}

static bool wants_modseq(const struct imap_cmd *c)
{
	if (c->fetch.changedsince_given)
		return true;
	for (size_t k = 0; k < c->fetch.n; k++)
		if (c->fetch.items[k].att == FA_MODSEQ)
			return true;
	return false;
}

/* QRESYNC (RFC 7162 §3.2.6): "* VANISHED (EARLIER) uids" for the UIDs of the set
 * expunged since CHANGEDSINCE, before the FETCH responses. */
static void write_vanished_earlier(struct imap_exec *x, const struct imap_cmd *c, struct buf *out)
{
	uint32_t *uids = NULL;
	size_t n = 0;
	bool complete = true;
	if (!folder_vanished_since(x->sel, c->fetch.changedsince, &uids, &n, &complete))
		return;
	uint32_t max = folder_uidnext(x->sel) > 0 ? folder_uidnext(x->sel) - 1 : 0;
	size_t kept = 0;
	for (size_t k = 0; k < n; k++)
		if (imap_seq_contains(&c->set, uids[k], max))
			uids[kept++] = uids[k];
	if (kept > 0) {
		buf_appends(out, "* VANISHED (EARLIER) ");
		imap_uidset_render(uids, kept, out);
		buf_appends(out, "\r\n");
	}
	free(uids);
}

/* First call only: the set names messages that exist; CONDSTORE-enabling items. */
static bool fetch_begin(struct imap_exec *x, const struct imap_cmd *c, struct buf *out)
{
	size_t count = folder_count(x->sel);
	if (!c->uid && imap_seqset_max_literal(&c->set) > count) {
		imap_reply_tagged(out, c->tag, IMAP_BAD, NULL,
			"There is no message %u: this folder holds %zu (sequence numbers count from 1; "
			"use UID FETCH to name messages by UID)", imap_seqset_max_literal(&c->set), count);
		return false;
	}
	if (wants_modseq(c) && !x->condstore) {
		/* RFC 7162 §3.1: FETCH MODSEQ / CHANGEDSINCE enables CONDSTORE */
		x->condstore = true;
		buf_printf(out, "* OK [HIGHESTMODSEQ %llu] CONDSTORE enabled by this command\r\n",
			(unsigned long long)folder_highestmodseq(x->sel));
	}
	if (c->uid && c->fetch.vanished && c->fetch.changedsince_given && x->qresync)
		write_vanished_earlier(x, c, out);
	return true;
}

/* \Seen for BODY[] without PEEK (RFC 3501 §6.4.5); true when it was set now. */
static bool set_seen(struct imap_exec *x, size_t i)
{
	const struct folder_msg *m = folder_msg_peek(x->sel, i);
	if (x->sel_readonly || (m->flags & FOLDER_SEEN))
		return false;
	uint64_t modseq = 0;
	char err[256];
	return folder_store_flags(x->sel, i, (m->flags & FOLDER_STORABLE) | FOLDER_SEEN, m->keywords, &modseq, err,
		sizeof err);
}

/* What a FETCH keeps between steps: the rest of a message's response that did not fit
 * in the last step (a 40 MB BODY[] goes out IMAP_EXEC_OUTPUT_STEP at a time), and
 * whether a message had vanished. */
struct fetch_state {
	struct buf pending;
	size_t off;
	bool gone;
};

static void fetch_state_free(void *p)
{
	struct fetch_state *st = p;
	if (!st)
		return;
	buf_free(&st->pending);
	free(st);
}

/* Move pending output into out up to the step's end; true when all of it went. */
static bool drain(struct fetch_state *st, struct buf *out, size_t start)
{
	size_t room = out->len - start < IMAP_EXEC_OUTPUT_STEP ? IMAP_EXEC_OUTPUT_STEP - (out->len - start) : 0;
	size_t left = st->pending.len - st->off;
	size_t n = left < room ? left : room;
	if (n > 0)
		buf_append(out, st->pending.data + st->off, n);
	st->off += n;
	if (st->off < st->pending.len)
		return false;
	buf_reset(&st->pending);
	st->off = 0;
	return true;
}

/* One message into st->pending: false when its file is gone (expunged by another session). */
static bool fetch_one(struct imap_exec *x, const struct imap_cmd *c, size_t i, struct buf *out)
{
	const struct imap_fetch_item *items = c->fetch.items;
	size_t n = c->fetch.n;
	struct imap_msgview v;
	imap_msgview_init(&v, x->sel, i);
	const char *p;
	size_t len;
	bool ok = true;
	if (imap_fetch_needs_body(items, n))
		ok = imap_msgview_raw(&v, &p, &len);
	else if (fetch_needs_header(items, n))
		ok = imap_msgview_header(&v, &p, &len);
	if (ok) {
		bool seen_now = imap_fetch_sets_seen(items, n) && set_seen(x, i);
		v.m = fetch_needs_date(items, n) ? folder_msg(x->sel, i) : folder_msg_peek(x->sel, i);
		struct imap_fetch_req r = { .items = items, .n_items = n, .uid = c->uid,
			.modseq = wants_modseq(c) || (seen_now && x->condstore), .flags_too = seen_now };
		imap_fetch_render(&r, &v, (uint32_t)(i + 1), out);
	}
	imap_msgview_release(&v);
	return ok;
}

static struct fetch_state *fetch_start(struct imap_exec *x, const struct imap_cmd *c, struct buf *out)
{
	if (!fetch_begin(x, c, out))
		return NULL;
	struct fetch_state *st = calloc(1, sizeof *st);
	if (!st) {
		imap_reply_tagged(out, c->tag, IMAP_NO, "SERVERBUG", "Out of memory; try again");
		return NULL;
	}
	/* a message's response: its largest section twice over (CRLF) and the rest */
	buf_init(&st->pending, 2 * IMAP_MSG_MAP_MAX + (1u << 20));
	x->cursor_state = st;
	x->cursor_free = fetch_state_free;
	return st;
}

static void fetch_done(struct imap_exec *x, const struct imap_cmd *c, struct fetch_state *st, struct buf *out)
{
	bool gone = st->gone;
	fetch_state_free(st);
	x->cursor = 0;
	x->cursor_state = NULL;
	x->cursor_free = NULL;
	imap_exec_sync(x, out, c->uid);   /* RFC 3501 §7.4.1: no EXPUNGE during FETCH, UID FETCH may */
	if (gone)
		/* RFC 3501 §7.4.1 forbids the EXPUNGE here; RFC 5530 EXPUNGEISSUED says why data is missing */
		imap_reply_tagged(out, c->tag, IMAP_NO, "EXPUNGEISSUED",
			"Some of the requested messages were expunged by another session; the rest were sent");
	else
		imap_reply_tagged(out, c->tag, IMAP_OK, NULL, "%sFETCH completed", c->uid ? "UID " : "");
}

enum imap_exec_status imap_exec_fetch(struct imap_exec *x, const struct imap_cmd *c, struct buf *out)
{
	if (!x->sel) {
		imap_reply_tagged(out, c->tag, IMAP_BAD, NULL, "No folder is selected: SELECT or EXAMINE one first");
		return IMAP_EXEC_DONE;
	}
	size_t start = out->len;
	struct fetch_state *st = x->cursor_state;
	if (x->cursor == 0 || !st) {
		if (!(st = fetch_start(x, c, out)))
			return IMAP_EXEC_DONE;
		x->cursor = 1;
	}
	size_t count = folder_count(x->sel);
	for (size_t i = (size_t)(x->cursor - 1);; i++) {
		if (!drain(st, out, start)) {
			x->cursor = i + 1;
			return IMAP_EXEC_MORE;
		}
		if (i >= count)
			break;
		if (out->len - start >= IMAP_EXEC_OUTPUT_STEP) {
			x->cursor = i + 1;
			return IMAP_EXEC_MORE;
		}
		if (!imap_set_selects(x, &c->set, c->uid, i))
			continue;
		if (c->fetch.changedsince_given && folder_msg_peek(x->sel, i)->modseq <= c->fetch.changedsince)
			continue;
		if (!fetch_one(x, c, i, &st->pending))
			st->gone = true;
	}
	fetch_done(x, c, st, out);
	return IMAP_EXEC_DONE;
}
