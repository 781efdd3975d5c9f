/* cmd_copy.c - COPY, MOVE and their UID forms (RFC 3501 §6.4.7, RFC 6851), with
 * UIDPLUS's COPYUID (RFC 4315 §3).  COPY is all or nothing (RFC 3501 §6.4.7: "MUST
 * restore the destination mailbox to its state before the COPY attempt"): when a
 * message cannot be copied, the copies already made are expunged again.  A missing
 * destination is NO [TRYCREATE]; a full mailbox NO [OVERQUOTA] with the usage and
 * what to do (RFC 5530 §3).  MOVE copies, then expunges the originals: untagged
 * "OK [COPYUID ...]", the EXPUNGE (or VANISHED) responses, then the tagged OK. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "imap/exec.h"
#include "imap/msgcmd.h"
#include "imap/reply.h"
#include "store/quota.h"

struct copy_result {
	struct imap_uidlist src, dst;
	uint32_t validity;
	enum store_result res;
	char err[256];
};

static void human_size(uint64_t b, char *out, size_t outsz)
{
	if (b >= (1u << 20))
		snprintf(out, outsz, "%.1f MB", (double)b / (1u << 20));
	else
		snprintf(out, outsz, "%llu KB", (unsigned long long)((b + 1023) / 1024));
}

/* RFC 5530 OVERQUOTA, with the usage in words from maildirsize. */
static void reply_overquota(struct imap_exec *x, const struct imap_cmd *c, struct buf *out)
{
	struct quota_state st;
	char err[128];
	char used[32], limit[32];
	if (x->maildir_root && quota_read(x->maildir_root, &st, err, sizeof err) && st.defined) {
		char limits[96] = "";
		human_size(st.used_bytes, used, sizeof used);
		human_size(st.limit_bytes, limit, sizeof limit);
		if (st.limit_bytes && st.limit_count)
			snprintf(limits, sizeof limits, "%s or %llu messages", limit, (unsigned long long)st.limit_count);
		else if (st.limit_count)
			snprintf(limits, sizeof limits, "%llu messages", (unsigned long long)st.limit_count);
		else
			snprintf(limits, sizeof limits, "%s", limit);
		imap_reply_tagged(out, c->tag, IMAP_NO, "OVERQUOTA",
			"The mailbox is full: it holds %s in %llu messages and its quota is %s; nothing was copied. "
			"Delete messages (and expunge them, or empty Trash) to make room, or ask the postmaster "
			"for a larger quota", used, (unsigned long long)st.used_count, limits);
	} else {
		imap_reply_tagged(out, c->tag, IMAP_NO, "OVERQUOTA",
			"The mailbox is full; nothing was copied. Delete messages (and expunge them) to make room, "
			"or ask the postmaster for a larger quota");
	}
}

/* Undo a failed COPY: the copies made so far are expunged from the destination. */
static void rollback(struct imap_exec *x, const char *dest, const struct imap_uidlist *dst)
{
	char err[256];
	struct folder *d = folder_open(x->maildir_root, dest, false, err, sizeof err);
	if (!d)
		return;
	for (size_t k = 0; k < dst->n; k++) {
		size_t i = folder_find_uid(d, dst->v[k]);
		const struct folder_msg *m = i == (size_t)-1 ? NULL : folder_msg_peek(d, i);
		uint64_t ms;
		if (m)
			folder_store_flags(d, i, (m->flags & FOLDER_STORABLE) | FOLDER_DELETED, m->keywords, &ms, err,
				sizeof err);
	}
	folder_expunge(d, dst->v, dst->n, NULL, err, sizeof err);
	folder_close(&d);
}

static bool message_gone(struct folder *f, size_t i)
{
	int fd = folder_msg_open(f, i);
	if (fd < 0)
		return true;
	close(fd);
	return false;
}

/* Copy every message of the set; r->res says how it ended. */
static void copy_all(struct imap_exec *x, const struct imap_cmd *c, struct copy_result *r)
{
	size_t count = folder_count(x->sel);
	r->res = STORE_OK;
	for (size_t i = 0; i < count; i++) {
		if (!imap_set_selects(x, &c->set, c->uid, i))
			continue;
		uint32_t uid = 0;
		r->err[0] = '\0';
		enum store_result res = folder_copy(x->sel, i, c->mailbox, &uid, &r->validity, r->err, sizeof r->err);
		if (res == STORE_OK) {
			if (!imap_uidlist_add(&r->src, folder_msg_peek(x->sel, i)->uid) || !imap_uidlist_add(&r->dst, uid)) {
				r->res = STORE_TEMP;
				snprintf(r->err, sizeof r->err, "out of memory");
				return;
			}
			continue;
		}
		/* a message expunged by another session meanwhile is skipped (RFC 3501 §7.4.1); the
		 * store may say so as "no such file" (NONEXISTENT) while the destination exists */
		if ((res == STORE_TEMP || res == STORE_NONEXISTENT) && message_gone(x->sel, i) &&
		    (res != STORE_NONEXISTENT || folder_exists(x->maildir_root, c->mailbox)))
			continue;
		r->res = res;
		return;
	}
}

static void render_copyuid(const struct copy_result *r, struct buf *code)
{
	buf_printf(code, "COPYUID %u ", r->validity);
	imap_uidset_render(r->src.v, r->src.n, code);
	buf_appendc(code, ' ');
	imap_uidset_render(r->dst.v, r->dst.n, code);
}

static bool copy_failed(struct imap_exec *x, const struct imap_cmd *c, struct copy_result *r, struct buf *out)
{
	if (r->res == STORE_OK)
		return false;
	if (r->dst.n > 0)
		rollback(x, c->mailbox, &r->dst);
	if (r->res == STORE_NONEXISTENT)
		imap_reply_tagged(out, c->tag, IMAP_NO, "TRYCREATE",
			"There is no folder \"%s\": create it first (RFC 3501 section 6.4.7)", c->mailbox);
	else if (r->res == STORE_QUOTA)
		reply_overquota(x, c, out);
	else if (r->res == STORE_CANNOT)
		imap_reply_tagged(out, c->tag, IMAP_NO, "CANNOT", "Messages cannot be copied to \"%s\": %s",
			c->mailbox, r->err[0] ? r->err : "not a folder that can hold messages");
	else
		imap_reply_tagged(out, c->tag, IMAP_NO, "SERVERBUG",
			"The messages could not be copied (%s); nothing was copied, try again",
			r->err[0] ? r->err : "I/O error");
	return true;
}

static bool copy_begin(struct imap_exec *x, const struct imap_cmd *c, struct buf *out)
{
	if (!x->sel) {
		imap_reply_tagged(out, c->tag, IMAP_BAD, NULL, "No folder is selected: SELECT one first");
		return false;
	}
	if (!c->uid && imap_seqset_max_literal(&c->set) > folder_count(x->sel)) {
		imap_reply_tagged(out, c->tag, IMAP_BAD, NULL, "There is no message %u: this folder holds %zu",
			imap_seqset_max_literal(&c->set), folder_count(x->sel));
		return false;
	}
	return true;
}

enum imap_exec_status imap_exec_copy(struct imap_exec *x, const struct imap_cmd *c, struct buf *out)
{
	if (!copy_begin(x, c, out))
		return IMAP_EXEC_DONE;
	struct copy_result r = { 0 };
	copy_all(x, c, &r);
	if (!copy_failed(x, c, &r, out)) {
		struct buf code;
		buf_init(&code, 4u << 20);
		if (r.src.n > 0)
			render_copyuid(&r, &code);
		imap_exec_sync(x, out, true);
		imap_reply_tagged(out, c->tag, IMAP_OK, r.src.n ? buf_cstr(&code) : NULL, "%sCOPY completed",
			c->uid ? "UID " : "");
		buf_free(&code);
	}
	imap_uidlist_free(&r.src);
	imap_uidlist_free(&r.dst);
	return IMAP_EXEC_DONE;
}

/* The originals get \Deleted and are expunged; the sync then reports them. */
static void expunge_originals(struct imap_exec *x, const struct imap_uidlist *src)
{
	char err[256];
	for (size_t k = 0; k < src->n; k++) {
		size_t i = folder_find_uid(x->sel, src->v[k]);
		if (i == (size_t)-1)
			continue;
		const struct folder_msg *m = folder_msg_peek(x->sel, i);
		uint64_t ms;
		folder_store_flags(x->sel, i, (m->flags & FOLDER_STORABLE) | FOLDER_DELETED, m->keywords, &ms, err,
			sizeof err);
	}
	folder_expunge(x->sel, src->v, src->n, NULL, err, sizeof err);
}

enum imap_exec_status imap_exec_move(struct imap_exec *x, const struct imap_cmd *c, struct buf *out)
{
	if (!copy_begin(x, c, out))
		return IMAP_EXEC_DONE;
	if (x->sel_readonly) {
		imap_reply_tagged(out, c->tag, IMAP_NO, "READ-ONLY",
			"This folder was opened with EXAMINE (read-only): SELECT it to move messages out");
		return IMAP_EXEC_DONE;
	}
	struct copy_result r = { 0 };
	copy_all(x, c, &r);
	if (!copy_failed(x, c, &r, out)) {
		if (r.src.n > 0) {
			struct buf code;
			buf_init(&code, 4u << 20);
			render_copyuid(&r, &code);
			/* RFC 6851 §4.3: COPYUID goes in an untagged OK before the expunges */
			buf_printf(out, "* OK [%s] Moved\r\n", buf_cstr(&code));
			buf_free(&code);
			expunge_originals(x, &r.src);
		}
		imap_exec_sync(x, out, true);
		imap_reply_tagged(out, c->tag, IMAP_OK, NULL, "%sMOVE completed", c->uid ? "UID " : "");
	}
	imap_uidlist_free(&r.src);
	imap_uidlist_free(&r.dst);
	return IMAP_EXEC_DONE;
}
