/* cmd_store.c - STORE and UID STORE (RFC 3501 §6.4.6): FLAGS, +FLAGS, -FLAGS and
 * their .SILENT forms, keywords created on demand up to the store's limit (SELECT's
 * PERMANENTFLAGS says \*), and CONDSTORE's UNCHANGEDSINCE with the MODIFIED code
 * (RFC 7162 §3.1.3).  Each message's new flags go to the store (a rename: durable
 * when this returns); the untagged FETCH shows the result, with UID in UID STORE and
 * MODSEQ once CONDSTORE is on.  A message another session expunged meanwhile is
 * skipped silently (RFC 3501 §7.4.1). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap/exec.h"
#include "imap/msgcmd.h"
#include "imap/reply.h"

struct flag_change {
	uint32_t flags;     /* system flags named */
	uint64_t keywords;  /* keywords named (indexes in this folder) */
};

static const struct { const char *name; uint32_t bit; } system_flag_names[] = {
	{ "\\Seen", FOLDER_SEEN }, { "\\Answered", FOLDER_ANSWERED }, { "\\Flagged", FOLDER_FLAGGED },
	{ "\\Deleted", FOLDER_DELETED }, { "\\Draft", FOLDER_DRAFT }, { "\\Recent", 0 },
};

/* The flags the command names; false with the tagged reply written. */
static bool parse_flags(struct imap_exec *x, const struct imap_cmd *c, struct flag_change *fc, struct buf *out)
{
	memset(fc, 0, sizeof *fc);
	for (size_t k = 0; k < c->store.n_flags; k++) {
		const char *name = c->store.flags[k];
		if (name[0] == '\\') {
			size_t s = 0;
			while (s < sizeof system_flag_names / sizeof system_flag_names[0] &&
			       strcasecmp(system_flag_names[s].name, name) != 0)
				s++;
			if (s == sizeof system_flag_names / sizeof system_flag_names[0]) {
				imap_reply_tagged(out, c->tag, IMAP_BAD, NULL,
					"%s is not a system flag (RFC 3501 section 2.3.2 names \\Seen \\Answered "
					"\\Flagged \\Deleted \\Draft); a keyword has no backslash", name);
				return false;
			}
			fc->flags |= system_flag_names[s].bit;   /* \Recent cannot be stored: ignored */
			continue;
		}
		int idx = folder_keyword_index(x->sel, name, c->store.op != IMAP_STORE_REMOVE);
		if (idx < 0 && c->store.op != IMAP_STORE_REMOVE) {
			imap_reply_tagged(out, c->tag, IMAP_NO, "LIMIT",
				"The keyword %s cannot be added: this folder already has %d keywords, the most it "
				"can keep (Dovecot's Maildir limit); remove unused keywords first",
				name, FOLDER_KEYWORDS_MAX);
			return false;
		}
		if (idx >= 0 && idx < 64)
			fc->keywords |= (uint64_t)1 << idx;
	}
	return true;
}

static void new_flags(const struct imap_cmd *c, const struct flag_change *fc, const struct folder_msg *m,
	uint32_t *flags, uint64_t *kw)
{
	uint32_t cur = m->flags & FOLDER_STORABLE;
	switch (c->store.op) {
	case IMAP_STORE_SET: *flags = fc->flags; *kw = fc->keywords; break;
	case IMAP_STORE_ADD: *flags = cur | fc->flags; *kw = m->keywords | fc->keywords; break;
	default: *flags = cur & ~fc->flags; *kw = m->keywords & ~fc->keywords; break;
	}
}

/* "* n FETCH (UID u FLAGS (...) MODSEQ (m))"; .SILENT under CONDSTORE still tells the new
 * MODSEQ of a message that changed (RFC 7162 §3.1.3, the example with +FLAGS.SILENT). */
static void write_fetch(struct imap_exec *x, const struct imap_cmd *c, size_t i, bool changed, struct buf *out)
{
	const struct folder_msg *m = folder_msg_peek(x->sel, i);
	bool flags = !c->store.silent;
	bool modseq = x->condstore && (flags || changed);
	if (!flags && !modseq)
		return;
	buf_printf(out, "* %zu FETCH (", i + 1);
	if (c->uid)
		buf_printf(out, "UID %u ", m->uid);
	if (flags) {
		buf_appends(out, "FLAGS ");
		imap_flags_render(x->sel, m->flags, m->keywords, out);
	}
	if (modseq)
		buf_printf(out, "%sMODSEQ (%llu)", flags ? " " : "", (unsigned long long)m->modseq);
	buf_appends(out, ")\r\n");
}

/* One message; false on an I/O error (err). */
static bool store_one(struct imap_exec *x, const struct imap_cmd *c, const struct flag_change *fc, size_t i,
	struct imap_uidlist *modified, struct buf *out, char *err, size_t errsz)
{
	const struct folder_msg *m = folder_msg_peek(x->sel, i);
	if (c->store.unchangedsince_given && m->modseq > c->store.unchangedsince) {
		/* RFC 7162 §3.1.3: changed since the client looked: not stored, named in MODIFIED */
		return imap_uidlist_add(modified, c->uid ? m->uid : (uint32_t)(i + 1));
	}
	uint32_t flags;
	uint64_t kw, modseq = 0, before = m->modseq;
	new_flags(c, fc, m, &flags, &kw);
	err[0] = '\0';
	if (!folder_store_flags(x->sel, i, flags, kw, &modseq, err, errsz))
		return err[0] == '\0';   /* gone: skipped (RFC 3501 §7.4.1) */
	write_fetch(x, c, i, modseq != before, out);
	return true;
}

static bool store_begin(struct imap_exec *x, const struct imap_cmd *c, struct buf *out)
{
	size_t count = folder_count(x->sel);
	if (x->sel_readonly) {
		imap_reply_tagged(out, c->tag, IMAP_NO, "READ-ONLY",
			"This folder was opened with EXAMINE (read-only): SELECT it to change flags");
		return false;
	}
	if (!c->uid && imap_seqset_max_literal(&c->set) > count) {
		imap_reply_tagged(out, c->tag, IMAP_BAD, NULL, "There is no message %u: this folder holds %zu",
			imap_seqset_max_literal(&c->set), count);
		return false;
	}
	if (c->store.unchangedsince_given && !x->condstore) {
		x->condstore = true;   /* RFC 7162 §3.1: UNCHANGEDSINCE enables CONDSTORE */
		buf_printf(out, "* OK [HIGHESTMODSEQ %llu] CONDSTORE enabled by this command\r\n",
			(unsigned long long)folder_highestmodseq(x->sel));
	}
	return true;
}

static void store_finish(const struct imap_cmd *c, struct imap_uidlist *modified, struct buf *out)
{
	if (modified->n > 0) {
		struct buf code;
		buf_init(&code, 1u << 20);
		buf_appends(&code, "MODIFIED ");
		imap_uidset_render(modified->v, modified->n, &code);
		imap_reply_tagged(out, c->tag, IMAP_OK, buf_cstr(&code),
			"Conditional STORE: the messages named were changed since and were left alone");
		buf_free(&code);
	} else {
		imap_reply_tagged(out, c->tag, IMAP_OK, NULL, "%sSTORE completed", c->uid ? "UID " : "");
	}
}

/* Between steps: the MODIFIED list so far (x->cursor_state). */
static void modified_free(void *p)
{
	imap_uidlist_free(p);
	free(p);
}

static void store_end(struct imap_exec *x, struct imap_uidlist *modified)
{
	modified_free(modified);
	x->cursor = 0;
	x->cursor_state = NULL;
	x->cursor_free = NULL;
}

enum imap_exec_status imap_exec_store(struct imap_exec *x, const struct imap_cmd *c, struct buf *out)
{
	if (!x->sel) {
		imap_reply_tagged(out, c->tag, IMAP_BAD, NULL, "No folder is selected: SELECT one first");
		return IMAP_EXEC_DONE;
	}
	struct imap_uidlist *modified = x->cursor_state;
	if (x->cursor == 0 || !modified) {
		if (!store_begin(x, c, out))
			return IMAP_EXEC_DONE;
		if (!(modified = calloc(1, sizeof *modified))) {
			imap_reply_tagged(out, c->tag, IMAP_NO, "SERVERBUG", "Out of memory; nothing was stored");
			return IMAP_EXEC_DONE;
		}
		x->cursor = 1;
		x->cursor_state = modified;
		x->cursor_free = modified_free;
	}
	struct flag_change fc;
	if (!parse_flags(x, c, &fc, out)) {
		store_end(x, modified);
		return IMAP_EXEC_DONE;
	}
	size_t i = (size_t)(x->cursor - 1), start = out->len, count = folder_count(x->sel);
	char err[256] = "";
	bool ok = true, ended = false;
	/* one fsync of cur/ per step, not per message; durable before any OK (folder.h) */
	folder_batch_begin(x->sel);
	for (; i < count && ok; i++) {
		if (out->len - start >= IMAP_EXEC_OUTPUT_STEP) {
			x->cursor = i + 1;
			if (folder_batch_end(x->sel))
				return IMAP_EXEC_MORE;
			ok = false;
			ended = true;
			break;
		}
		if (imap_set_selects(x, &c->set, c->uid, i))
			ok = store_one(x, c, &fc, i, modified, out, err, sizeof err);
	}
	if (!ended && !folder_batch_end(x->sel))
		ok = false;
	if (!ok && !err[0])
		snprintf(err, sizeof err, "the folder could not be synced to disk");
	if (!ok)
		imap_reply_tagged(out, c->tag, IMAP_NO, "SERVERBUG",
			"The flags of message %zu could not be saved (%s); the earlier ones were", i, err);
	else {
		imap_exec_sync(x, out, c->uid);   /* RFC 3501 §7.4.1: no EXPUNGE during STORE, UID STORE may */
		store_finish(c, modified, out);
	}
	store_end(x, modified);
	return IMAP_EXEC_DONE;
}
