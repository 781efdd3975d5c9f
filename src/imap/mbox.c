/* mbox.c - the mailbox-level commands on store/folder.h (run as jobs on an IMAP
 * worker thread): SELECT/EXAMINE with CONDSTORE and QRESYNC (RFC 3501 §6.3.1-2,
 * RFC 7162 §3.2.5), CLOSE, UNSELECT (RFC 3691), CREATE, DELETE, RENAME,
 * SUBSCRIBE, UNSUBSCRIBE, STATUS, APPEND (UIDPLUS APPENDUID, RFC 4315), GETQUOTA and
 * GETQUOTAROOT (RFC 9208, from maildirsize), the IDLE check, and the set-up after a
 * login (the special-use folders).  LIST and LSUB are in mbox_list.c. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap/internal.h"
#include "imap/mbox.h"
#include "store/folder.h"
#include "store/quota.h"
#include "util/log.h"

void imap_mbox_login_setup(struct imap_session *s)
{
	folder_ensure_special(s->root);
}

void imap_mbox_close_selected(struct imap_session *s)
{
	/* The state follows at the end of the job (session.c: job_done), on the loop. */
	if (s->x.sel)
		folder_close(&s->x.sel);
	s->x.sel = NULL;
}

/* A store failure as a tagged NO with its RFC 5530 code and words. */
void imap_mbox_store_no(struct imap_session *s, struct buf *out, const char *tag, enum store_result r,
	const char *name, const char *err)
{
	char ref[64], q[200];
	imap_next_ref(s, ref, sizeof(ref));
	imap_mbox_quote_name(name, q, sizeof(q));
	switch (r) {
	case STORE_EXISTS:
		imap_reply_tagged(out, tag, IMAP_NO, "ALREADYEXISTS", "A folder named %s already exists (ref %s)", q, ref);
		break;
	case STORE_NONEXISTENT:
		imap_reply_tagged(out, tag, IMAP_NO, "NONEXISTENT", "There is no folder named %s (ref %s)", q, ref);
		break;
	case STORE_CANNOT:
		imap_reply_tagged(out, tag, IMAP_NO, "CANNOT", "Not possible for %s: %s (ref %s)", q, err && err[0] ? err :
			"the name cannot be a folder here", ref);
		break;
	default:
		imap_reply_tagged(out, tag, IMAP_NO, "UNAVAILABLE", "The folder %s cannot be changed just now; try again in a "
			"few minutes (ref %s)", q, ref);
		log_event(LOG_WARN, "imap_store_error", "conn=%llu ref=%s error=\"%s\"", (unsigned long long)s->info.conn_id,
			ref, err ? err : "");
		break;
	}
}

void imap_mbox_quote_name(const char *name, char *out, size_t outsz)
{
	struct buf b;
	buf_init(&b, outsz > 4 ? outsz - 4 : 0);
	buf_appendc(&b, '"');
	buf_append_escaped(&b, name, strlen(name), 100);
	buf_appendc(&b, '"');
	snprintf(out, outsz, "%s", buf_cstr(&b));
	buf_free(&b);
}

/* "(\Seen \Answered $Label)" */
static void flags_list(const struct folder *f, uint32_t flags, uint64_t kw, bool recent, struct buf *out)
{
	static const struct { uint32_t bit; const char *name; } sys[] = {
		{ FOLDER_SEEN, "\\Seen" }, { FOLDER_ANSWERED, "\\Answered" }, { FOLDER_FLAGGED, "\\Flagged" },
		{ FOLDER_DELETED, "\\Deleted" }, { FOLDER_DRAFT, "\\Draft" }, { FOLDER_RECENT, "\\Recent" } };
	bool first = true;
	buf_appendc(out, '(');
	for (size_t i = 0; i < sizeof(sys) / sizeof(sys[0]); i++)
		if ((flags & sys[i].bit) && (recent || sys[i].bit != FOLDER_RECENT)) {
			buf_printf(out, "%s%s", first ? "" : " ", sys[i].name);
			first = false;
		}
	for (int k = 0; k < FOLDER_KEYWORDS_MAX; k++)
		if ((kw >> k) & 1) {
			const char *n = folder_keyword_name(f, k);
			if (n) {
				buf_printf(out, "%s%s", first ? "" : " ", n);
				first = false;
			}
		}
	buf_appendc(out, ')');
}

static void keyword_names(const struct folder *f, struct buf *out)
{
	for (int k = 0; k < folder_keyword_count(f); k++) {
		const char *n = folder_keyword_name(f, k);
		if (n)
			buf_printf(out, " %s", n);
	}
}

/* RFC 7162 §3.2.5.2: VANISHED (EARLIER) and the changed flags, after SELECT QRESYNC. */
static void qresync_report(struct imap_session *s, const struct imap_cmd *c, struct buf *out)
{
	struct folder *f = s->x.sel;
	if (folder_uidvalidity(f) != c->select.uidvalidity)
		return;   /* the client's cache is void: it fetches everything again */
	uint32_t *uids = NULL;
	size_t n = 0;
	bool complete = true;
	uint32_t max = folder_uidnext(f) ? folder_uidnext(f) - 1 : 0;
	if (folder_vanished_since(f, c->select.modseq, &uids, &n, &complete)) {
		struct buf set;
		buf_init(&set, 1 << 20);
		for (size_t i = 0; i < n; i++)
			if (!c->select.known_uids_given || imap_seq_contains(&c->select.known_uids, uids[i], max))
				buf_printf(&set, "%s%" PRIu32, set.len ? "," : "", uids[i]);
		if (set.len)
			buf_printf(out, "* VANISHED (EARLIER) %s\r\n", buf_cstr(&set));
		buf_free(&set);
		free(uids);
	}
	for (size_t i = 0; i < folder_count(f); i++) {
		const struct folder_msg *m = folder_msg_peek(f, i);
		if (m->modseq <= c->select.modseq ||
		    (c->select.known_uids_given && !imap_seq_contains(&c->select.known_uids, m->uid, max)))
			continue;
		buf_printf(out, "* %zu FETCH (UID %" PRIu32 " FLAGS ", i + 1, m->uid);
		flags_list(f, m->flags, m->keywords, true, out);
		buf_printf(out, " MODSEQ (%" PRIu64 "))\r\n", m->modseq);
	}
}

static void select_report(struct imap_session *s, const struct imap_cmd *c, struct buf *out)
{
	struct folder *f = s->x.sel;
	size_t n = folder_count(f), recent = 0, unseen = 0;
	for (size_t i = 0; i < n; i++) {
		const struct folder_msg *m = folder_msg_peek(f, i);
		recent += (m->flags & FOLDER_RECENT) != 0;
		if (!unseen && !(m->flags & FOLDER_SEEN))
			unseen = i + 1;
	}
	buf_appends(out, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft");
	keyword_names(f, out);
	buf_appends(out, ")\r\n");
	if (s->x.sel_readonly) {
		buf_appends(out, "* OK [PERMANENTFLAGS ()] Read-only folder (EXAMINE)\r\n");
	} else {
		buf_appends(out, "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft");
		keyword_names(f, out);
		buf_appends(out, " \\*)] Flags permitted\r\n");
	}
	buf_printf(out, "* %zu EXISTS\r\n* %zu RECENT\r\n", n, recent);
	if (unseen)
		buf_printf(out, "* OK [UNSEEN %zu] First unseen\r\n", unseen);
	buf_printf(out, "* OK [UIDVALIDITY %" PRIu32 "] UIDs valid\r\n* OK [UIDNEXT %" PRIu32 "] Predicted next UID\r\n",
		folder_uidvalidity(f), folder_uidnext(f));
	buf_printf(out, "* OK [HIGHESTMODSEQ %" PRIu64 "] Highest\r\n", folder_highestmodseq(f));
	if (c->select.qresync && s->x.qresync)
		qresync_report(s, c, out);
	imap_reply_tagged(out, c->tag, IMAP_OK, s->x.sel_readonly ? "READ-ONLY" : "READ-WRITE", "%s completed",
		imap_cmd_label(c->name));
}

static void cmd_select(struct imap_session *s, const struct imap_cmd *c, struct buf *out)
{
	bool had = s->x.sel != NULL;
	imap_mbox_close_selected(s);
	if (had && s->x.qresync)   /* RFC 7162 §3.2.11 */
		buf_appends(out, "* OK [CLOSED] Previous folder closed\r\n");
	if (c->select.qresync && !s->x.qresync) {
		imap_reply_tagged(out, c->tag, IMAP_BAD, NULL, "SELECT (QRESYNC ...) needs ENABLE QRESYNC first (RFC 7162 §3.2.5)");
		return;
	}
	if (c->select.condstore)
		s->x.condstore = true;
	char err[300] = "";
	bool readonly = c->name == IMAP_CMD_EXAMINE;
	errno = 0;
	struct folder *f = folder_open(s->root, c->mailbox, readonly, err, sizeof(err));
	if (!f) {
		imap_mbox_store_no(s, out, c->tag, errno == ENOENT ? STORE_NONEXISTENT : STORE_TEMP, c->mailbox, err);
		return;
	}
	s->x.sel = f;
	s->x.sel_readonly = readonly;
	select_report(s, c, out);
}

static void cmd_close(struct imap_session *s, const struct imap_cmd *c, struct buf *out)
{
	char err[300] = "";
	/* RFC 3501 §6.4.2: CLOSE expunges silently, but not after EXAMINE. */
	if (c->name == IMAP_CMD_CLOSE && !s->x.sel_readonly && !imap_exec_expunge_silent(&s->x, err, sizeof(err)))
		log_event(LOG_WARN, "imap_close_expunge", "conn=%llu error=\"%s\"", (unsigned long long)s->info.conn_id, err);
	imap_mbox_close_selected(s);
	imap_reply_tagged(out, c->tag, IMAP_OK, NULL, "%s completed", imap_cmd_label(c->name));
}

static void cmd_create(struct imap_session *s, const struct imap_cmd *c, struct buf *out)
{
	char name[FOLDER_NAME_MAX + 2], err[300] = "";
	snprintf(name, sizeof(name), "%s", c->mailbox);
	size_t n = strlen(name);
	if (n > 1 && name[n - 1] == '/')   /* RFC 3501 §6.3.3: a trailing separator names a parent to be */
		name[n - 1] = '\0';
	enum store_result r = strcmp(name, "INBOX") == 0 ? STORE_EXISTS : folder_create(s->root, name, err, sizeof(err));
	if (r != STORE_OK) {
		imap_mbox_store_no(s, out, c->tag, r, name, err);
		return;
	}
	imap_reply_tagged(out, c->tag, IMAP_OK, NULL, "CREATE completed");
}

static void cmd_delete(struct imap_session *s, const struct imap_cmd *c, struct buf *out)
{
	char err[300] = "";
	if (strcmp(c->mailbox, "INBOX") == 0) {
		imap_mbox_store_no(s, out, c->tag, STORE_CANNOT, c->mailbox, "INBOX cannot be deleted (RFC 3501 §6.3.4)");
		return;
	}
	if (s->x.sel && strcmp(folder_name(s->x.sel), c->mailbox) == 0)
		imap_mbox_close_selected(s);
	enum store_result r = folder_delete(s->root, c->mailbox, err, sizeof(err));
	if (r != STORE_OK) {
		imap_mbox_store_no(s, out, c->tag, r, c->mailbox, err);
		return;
	}
	imap_reply_tagged(out, c->tag, IMAP_OK, NULL, "DELETE completed");
}

static void cmd_rename(struct imap_session *s, const struct imap_cmd *c, struct buf *out)
{
	char err[300] = "";
	enum store_result r = strcmp(c->mailbox2, "INBOX") == 0 ? STORE_EXISTS
		: folder_rename(s->root, c->mailbox, c->mailbox2, err, sizeof(err));
	if (r != STORE_OK) {
		imap_mbox_store_no(s, out, c->tag, r, r == STORE_EXISTS ? c->mailbox2 : c->mailbox, err);
		return;
	}
	imap_reply_tagged(out, c->tag, IMAP_OK, NULL, "RENAME completed");
}

static void cmd_subscribe(struct imap_session *s, const struct imap_cmd *c, struct buf *out)
{
	char err[300] = "";
	bool on = c->name == IMAP_CMD_SUBSCRIBE;
	if (!folder_subscribe(s->root, c->mailbox, on, err, sizeof(err))) {
		imap_mbox_store_no(s, out, c->tag, STORE_TEMP, c->mailbox, err);
		return;
	}
	imap_reply_tagged(out, c->tag, IMAP_OK, NULL, "%s completed", imap_cmd_label(c->name));
}

/* "* STATUS name (MESSAGES 3 UIDNEXT 9 ...)" (RFC 3501 §7.2.4) */
bool imap_mbox_status_line(struct imap_session *s, const char *name, unsigned items, struct buf *out, char *err,
	size_t errsz)
{
	struct folder_status st;
	if (!folder_status(s->root, name, &st, err, errsz))
		return false;
	buf_appends(out, "* STATUS ");
	imap_write_mailbox(out, name, s->x.utf8_accept);
	const char *sep = " (";
#define ITEM(bit, word, fmt, v) if (items & (bit)) { buf_printf(out, "%s" word " %" fmt, sep, v); sep = " "; }
	ITEM(IMAP_STATUS_MESSAGES, "MESSAGES", PRIu32, st.messages)
	ITEM(IMAP_STATUS_RECENT, "RECENT", PRIu32, st.recent)
	ITEM(IMAP_STATUS_UIDNEXT, "UIDNEXT", PRIu32, st.uidnext)
	ITEM(IMAP_STATUS_UIDVALIDITY, "UIDVALIDITY", PRIu32, st.uidvalidity)
	ITEM(IMAP_STATUS_UNSEEN, "UNSEEN", PRIu32, st.unseen)
	ITEM(IMAP_STATUS_HIGHESTMODSEQ, "HIGHESTMODSEQ", PRIu64, st.highestmodseq)
	ITEM(IMAP_STATUS_SIZE, "SIZE", PRIu64, st.size)
#undef ITEM
	buf_appends(out, items ? ")\r\n" : " ()\r\n");
	return true;
}

static void cmd_status(struct imap_session *s, const struct imap_cmd *c, struct buf *out)
{
	char err[300] = "";
	if (!folder_exists(s->root, c->mailbox)) {
		imap_mbox_store_no(s, out, c->tag, STORE_NONEXISTENT, c->mailbox, NULL);
		return;
	}
	if (!imap_mbox_status_line(s, c->mailbox, c->status_items, out, err, sizeof(err))) {
		imap_mbox_store_no(s, out, c->tag, STORE_TEMP, c->mailbox, err);
		return;
	}
	imap_reply_tagged(out, c->tag, IMAP_OK, NULL, "STATUS completed");
}

void imap_mbox_idle_check(struct imap_session *s, struct buf *out)
{
	if (s->x.sel && folder_changed_since_sync(s->x.sel))
		imap_exec_sync(&s->x, out, true);
}

void imap_mbox_run(struct imap_session *s, const struct imap_cmd *c, struct buf *out, enum imap_exec_status *st)
{
	*st = IMAP_EXEC_DONE;
	if (!c) {
		imap_mbox_idle_check(s, out);
		return;
	}
	switch (c->name) {
	case IMAP_CMD_SELECT: case IMAP_CMD_EXAMINE: cmd_select(s, c, out); break;
	case IMAP_CMD_CLOSE: case IMAP_CMD_UNSELECT: cmd_close(s, c, out); break;
	case IMAP_CMD_CREATE: cmd_create(s, c, out); break;
	case IMAP_CMD_DELETE: cmd_delete(s, c, out); break;
	case IMAP_CMD_RENAME: cmd_rename(s, c, out); break;
	case IMAP_CMD_SUBSCRIBE: case IMAP_CMD_UNSUBSCRIBE: cmd_subscribe(s, c, out); break;
	case IMAP_CMD_STATUS: cmd_status(s, c, out); break;
	case IMAP_CMD_LIST: case IMAP_CMD_LSUB: imap_mbox_list(s, c, out); break;
	case IMAP_CMD_APPEND: imap_mbox_append(s, c, out); break;
	case IMAP_CMD_GETQUOTA: case IMAP_CMD_GETQUOTAROOT: imap_mbox_quota(s, c, out); break;
	default:
		imap_reply_tagged(out, c->tag, IMAP_BAD, NULL, "%s cannot be run here", imap_cmd_label(c->name));
		break;
	}
}
