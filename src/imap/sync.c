/* sync.c - the untagged updates a session owes its client after other sessions (or
 * Dovecot, POP3, delivery) changed the selected folder, and after its own EXPUNGE,
 * COPY and MOVE (RFC 3501 §7: "* n EXPUNGE", "* n EXISTS", "* n RECENT",
 * "* n FETCH (FLAGS ...)"; RFC 7162 §3.2.10 "* VANISHED uids" once QRESYNC is on,
 * MODSEQ in the FETCH once CONDSTORE is on and UID with QRESYNC, §3.2.4).
 *
 * RFC 3501 §7.4.1: no EXPUNGE while answering FETCH, STORE or SEARCH (the numbers
 * would shift under the client).  The store's sync applies expunges to the view as it
 * reports them, so when expunges are not allowed the view is not synced at all: the
 * flags and new messages wait for the next command that may carry them (NOOP, IDLE,
 * the UID commands, CHECK ...).  Messages that vanished meanwhile are skipped by
 * FETCH with NO [EXPUNGEISSUED]. */
#include <stdlib.h>
#include <string.h>

#include "imap/exec.h"
#include "imap/msgcmd.h"

struct sync_out {
	struct imap_exec *x;
	struct buf *out;
	struct imap_uidlist vanished;   /* QRESYNC: reported together */
	struct imap_uidlist flagged;    /* sequence numbers in the new view */
	bool exists_changed;
	size_t exists;
};

static void on_expunged(void *arg, uint32_t seq, uint32_t uid)
{
	struct sync_out *s = arg;
	if (s->x->qresync)
		imap_uidlist_add(&s->vanished, uid);
	else
		buf_printf(s->out, "* %u EXPUNGE\r\n", seq);
}

static void on_exists(void *arg, size_t n)
{
	struct sync_out *s = arg;
	s->exists_changed = true;
	s->exists = n;
}

static void on_flags(void *arg, size_t seq)
{
	struct sync_out *s = arg;
	imap_uidlist_add(&s->flagged, (uint32_t)seq);
}

static void write_flag_changes(struct sync_out *s)
{
	struct folder *f = s->x->sel;
	for (size_t k = 0; k < s->flagged.n; k++) {
		/* The job's buffer holds 64 MiB (~800,000 updates); past that the rest are not
		 * told rather than cut mid-line: a client learns them at its next FETCH FLAGS
		 * (RFC 3501 §7.4.2 leaves unsolicited FETCH to the server). */
		if (s->out->max && s->out->len + 4608 + FOLDER_KEYWORDS_MAX * (FOLDER_KEYWORD_LEN + 1) > s->out->max)
			break;
		size_t i = s->flagged.v[k] - 1;
		const struct folder_msg *m = folder_msg_peek(f, i);
		if (!m)
			continue;
		buf_printf(s->out, "* %zu FETCH (", i + 1);
		if (s->x->qresync)
			buf_printf(s->out, "UID %u ", m->uid);
		buf_appends(s->out, "FLAGS ");
		imap_flags_render(f, m->flags, m->keywords, s->out);
		if (s->x->condstore)
			buf_printf(s->out, " MODSEQ (%llu)", (unsigned long long)m->modseq);
		buf_appends(s->out, ")\r\n");
	}
}

static size_t recent_count(struct folder *f)
{
	size_t n = folder_count(f), r = 0;
	for (size_t i = 0; i < n; i++)
		if (folder_msg_peek(f, i)->flags & FOLDER_RECENT)
			r++;
	return r;
}

void imap_exec_sync(struct imap_exec *x, struct buf *out, bool allow_expunge)
{
	if (!x->sel || !allow_expunge)
		return;
	struct sync_out s = { .x = x, .out = out };
	struct folder_changes ch = { .expunged = on_expunged, .exists = on_exists, .flags = on_flags, .arg = &s };
	char err[256] = "";
	if (!folder_sync(x->sel, &ch, err, sizeof err))
		buf_printf(out, "* NO [SERVERBUG] The folder could not be brought up to date (%s); "
			"what is shown may be stale\r\n", err[0] ? err : "I/O error");
	if (s.vanished.n > 0) {
		buf_appends(out, "* VANISHED ");
		imap_uidset_render(s.vanished.v, s.vanished.n, out);
		buf_appends(out, "\r\n");
	}
	if (s.exists_changed) {
		buf_printf(out, "* %zu EXISTS\r\n", s.exists);
		buf_printf(out, "* %zu RECENT\r\n", recent_count(x->sel));
	}
	write_flag_changes(&s);
	imap_uidlist_free(&s.vanished);
	imap_uidlist_free(&s.flagged);
}
