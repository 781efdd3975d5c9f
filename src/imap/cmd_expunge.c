/* cmd_expunge.c - EXPUNGE (RFC 3501 §6.4.3), UID EXPUNGE (RFC 4315 §2.1) and the
 * silent expunge of CLOSE (RFC 3501 §6.4.2).  The store removes the files of the
 * messages that carry \Deleted (and, for UID EXPUNGE, are in the set); the sync that
 * follows reports them as "* n EXPUNGE" (highest first, so every number is right
 * when it is read) or as "* VANISHED uids" once QRESYNC is enabled (RFC 7162 §3.2.10),
 * together with whatever else other sessions changed. */
#include <string.h>

#include "imap/exec.h"
#include "imap/msgcmd.h"
#include "imap/reply.h"

/* The UIDs to expunge: \Deleted, and in the set when one is given. */
static bool deleted_uids(const struct imap_exec *x, const struct imap_seqset *uid_set, struct imap_uidlist *l)
{
	struct folder *f = x->sel;
	size_t n = folder_count(f);
	for (size_t i = 0; i < n; i++) {
		const struct folder_msg *m = folder_msg_peek(f, i);
		if (!(m->flags & FOLDER_DELETED))
			continue;
		if (uid_set && !imap_set_selects(x, uid_set, true, i))
			continue;
		if (!imap_uidlist_add(l, m->uid))
			return false;
	}
	return true;
}

bool imap_exec_expunge_silent(struct imap_exec *x, char *err, size_t errsz)
{
	if (!x->sel || x->sel_readonly)
		return true;   /* CLOSE after EXAMINE expunges nothing (RFC 3501 §6.4.2) */
	struct imap_uidlist l = { 0 };
	bool ok = deleted_uids(x, NULL, &l);
	if (ok && l.n > 0)
		ok = folder_expunge(x->sel, l.v, l.n, NULL, err, errsz);
	imap_uidlist_free(&l);
	return ok;
}

enum imap_exec_status imap_exec_expunge(struct imap_exec *x, const struct imap_cmd *c, struct buf *out)
{
	if (!x->sel) {
		imap_reply_tagged(out, c->tag, IMAP_BAD, NULL, "No folder is selected: SELECT one first");
		return IMAP_EXEC_DONE;
	}
	if (x->sel_readonly) {
		imap_reply_tagged(out, c->tag, IMAP_NO, "READ-ONLY",
			"This folder was opened with EXAMINE (read-only): SELECT it to expunge messages");
		return IMAP_EXEC_DONE;
	}
	struct imap_uidlist l = { 0 };
	char err[256] = "";
	bool ok = deleted_uids(x, c->uid ? &c->set : NULL, &l);
	if (ok && l.n > 0)
		ok = folder_expunge(x->sel, l.v, l.n, NULL, err, sizeof err);
	imap_uidlist_free(&l);
	imap_exec_sync(x, out, true);
	if (ok)
		imap_reply_tagged(out, c->tag, IMAP_OK, NULL, "%sEXPUNGE completed", c->uid ? "UID " : "");
	else
		imap_reply_tagged(out, c->tag, IMAP_NO, "SERVERBUG",
			"Some messages could not be expunged (%s); those reported were", err[0] ? err : "I/O error");
	return IMAP_EXEC_DONE;
}
