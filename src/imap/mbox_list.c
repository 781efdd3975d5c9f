/* mbox_list.c - LIST and LSUB (RFC 3501 §6.3.8-9) with CHILDREN (RFC 3348), the
 * special-use attributes (RFC 6154), LIST-EXTENDED (RFC 5258: the selection options
 * SUBSCRIBED, REMOTE (no remote folders here), RECURSIVEMATCH with CHILDINFO and
 * SPECIAL-USE (RFC 6154 §5.1); the return options SUBSCRIBED, CHILDREN (always
 * given), SPECIAL-USE (always given), STATUS (RFC 5819); several patterns;
 * \NonExistent for a subscription without its folder); APPEND (RFC 3501 §6.3.11, LITERAL+, UIDPLUS APPENDUID, the quota's
 * NO [OVERQUOTA] with the usage); GETQUOTA and GETQUOTAROOT (RFC 9208: one quota
 * root "" per account, from the Maildir's maildirsize). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap/mbox.h"
#include "store/quota.h"
#include "util/log.h"

/* '*' matches anything, '%' anything but the separator '/' (RFC 3501 §6.3.8). */
static bool pattern_match(const char *p, const char *name)
{
	for (; *p; p++) {
		if (*p == '*' || *p == '%') {
			bool any = *p == '*';
			for (const char *n = name;; n++) {
				if (pattern_match(p + 1, n))
					return true;
				if (!*n || (!any && *n == '/'))
					return false;
			}
		}
		if (*p != *name)
			return false;
		name++;
	}
	return *name == '\0';
}

/* Does the folder satisfy the selection options (RFC 5258 §3.1: SUBSCRIBED; RFC 6154
 * §5.1: SPECIAL-USE)?  A subscribed name without a folder is only ever listed by
 * SUBSCRIBED (as \NonExistent) and LSUB. */
static bool list_selected(const struct imap_cmd *c, const struct folder_info *fi)
{
	bool subscribed_only = c->name == IMAP_CMD_LSUB || (c->list.select_opts & IMAP_LIST_SEL_SUBSCRIBED);
	if (subscribed_only && !fi->subscribed)
		return false;
	if ((c->list.select_opts & IMAP_LIST_SEL_SPECIAL_USE) && (fi->special == FOLDER_SPECIAL_NONE || fi->nonexistent))
		return false;
	return subscribed_only || !fi->nonexistent;
}

static bool list_matches(const struct imap_cmd *c, const char *name)
{
	for (size_t k = 0; k < c->list.n_patterns; k++) {
		char pattern[2 * FOLDER_NAME_MAX + 2];
		snprintf(pattern, sizeof(pattern), "%s%s", c->list.reference, c->list.patterns[k]);
		if (pattern_match(pattern, name))
			return true;
	}
	return false;
}

/* RECURSIVEMATCH (RFC 5258 §3.5): a descendant that meets the selection but matches
 * no pattern shows as CHILDINFO on its matching ancestor. */
static bool list_childinfo(const struct imap_cmd *c, const struct folder_info *fi, size_t n, size_t self)
{
	if (!(c->list.select_opts & IMAP_LIST_SEL_RECURSIVEMATCH))
		return false;
	size_t len = strlen(fi[self].name);
	for (size_t j = 0; j < n; j++)
		if (j != self && strncmp(fi[j].name, fi[self].name, len) == 0 && fi[j].name[len] == '/' &&
		    list_selected(c, &fi[j]) && !list_matches(c, fi[j].name))
			return true;
	return false;
}

static void list_line(struct imap_session *s, const struct imap_cmd *c, const struct folder_info *fi, bool selected,
	bool childinfo, struct buf *out)
{
	bool lsub = c->name == IMAP_CMD_LSUB;
	buf_printf(out, "* %s (", lsub ? "LSUB" : "LIST");
	if (fi->nonexistent && c->list.extended)
		buf_appends(out, "\\NonExistent ");   /* implies \Noselect (RFC 5258 §3.4) */
	else if (fi->noselect)
		buf_appends(out, "\\Noselect ");
	if (!lsub) {
		buf_appends(out, fi->has_children ? "\\HasChildren" : "\\HasNoChildren");
		const char *attr = folder_special_attr(fi->special);
		if (attr)
			buf_printf(out, " %s", attr);
		if (fi->subscribed && (c->list.return_opts & IMAP_LIST_RET_SUBSCRIBED ||
		    (selected && c->list.select_opts & IMAP_LIST_SEL_SUBSCRIBED)))
			buf_appends(out, " \\Subscribed");
	} else if (out->len && out->data[out->len - 1] == ' ') {
		out->len--;
	}
	buf_appends(out, ") \"/\" ");
	imap_write_mailbox(out, fi->name, s->x.utf8_accept);
	if (childinfo) {   /* mbox-list-extended (RFC 5258 §6): the criteria the children met */
		unsigned sel = c->list.select_opts;
		buf_printf(out, " (\"CHILDINFO\" (%s%s%s))", sel & IMAP_LIST_SEL_SUBSCRIBED ? "\"SUBSCRIBED\"" : "",
			(sel & IMAP_LIST_SEL_SUBSCRIBED) && (sel & IMAP_LIST_SEL_SPECIAL_USE) ? " " : "",
			sel & IMAP_LIST_SEL_SPECIAL_USE ? "\"SPECIAL-USE\"" : "");
	}
	buf_appends(out, "\r\n");
	if ((c->list.return_opts & IMAP_LIST_RET_STATUS) && !fi->noselect && !fi->nonexistent) {   /* RFC 5819 §2 */
		char err[200];
		imap_mbox_status_line(s, fi->name, c->list.status_items, out, err, sizeof(err));
	}
}

void imap_mbox_list(struct imap_session *s, const struct imap_cmd *c, struct buf *out)
{
	const char *label = imap_cmd_label(c->name);
	if (c->list.n_patterns == 1 && c->list.patterns[0][0] == '\0') {   /* the separator and root */
		buf_printf(out, "* %s (\\Noselect) \"/\" \"\"\r\n", label);
		imap_reply_tagged(out, c->tag, IMAP_OK, NULL, "%s completed", label);
		return;
	}
	struct folder_info *fi = NULL;
	size_t n = 0;
	char err[300] = "";
	if (!folder_list(s->root, &fi, &n, err, sizeof(err))) {
		imap_mbox_store_no(s, out, c->tag, STORE_TEMP, "INBOX", err);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (!list_matches(c, fi[i].name))
			continue;
		bool selected = list_selected(c, &fi[i]);
		bool childinfo = c->name == IMAP_CMD_LIST && list_childinfo(c, fi, n, i);
		if (selected || childinfo)
			list_line(s, c, &fi[i], selected, childinfo, out);
	}
	free(fi);
	imap_reply_tagged(out, c->tag, IMAP_OK, NULL, "%s completed", label);
}

/* --- APPEND -------------------------------------------------------------------- */

static bool append_flags(const struct imap_cmd *c, uint32_t *flags, const char **kw, size_t *n_kw, char *bad,
	size_t badsz)
{
	static const struct { const char *name; uint32_t bit; } sys[] = {
		{ "\\Seen", FOLDER_SEEN }, { "\\Answered", FOLDER_ANSWERED }, { "\\Flagged", FOLDER_FLAGGED },
		{ "\\Deleted", FOLDER_DELETED }, { "\\Draft", FOLDER_DRAFT }, { "\\Recent", 0 } };
	*flags = 0;
	*n_kw = 0;
	for (size_t i = 0; i < c->append.n_flags; i++) {
		const char *f = c->append.flags[i];
		if (f[0] != '\\') {
			if (*n_kw < FOLDER_KEYWORDS_MAX)
				kw[(*n_kw)++] = f;
			continue;
		}
		size_t k;
		for (k = 0; k < sizeof(sys) / sizeof(sys[0]); k++)
			if (strcasecmp(f, sys[k].name) == 0) {
				*flags |= sys[k].bit;
				break;
			}
		if (k == sizeof(sys) / sizeof(sys[0])) {
			snprintf(bad, badsz, "%.60s", f);
			return false;
		}
	}
	return true;
}

static void over_quota(struct imap_session *s, const struct imap_cmd *c, const struct quota_state *q, struct buf *out)
{
	char ref[64], usage[160] = "", count[96] = "";
	imap_next_ref(s, ref, sizeof(ref));
	if (q->limit_bytes)
		snprintf(usage, sizeof(usage), "%" PRIu64 " KiB of %" PRIu64 " KiB used", q->used_bytes / 1024,
			q->limit_bytes / 1024);
	if (q->limit_count)
		snprintf(count, sizeof(count), "%s%" PRIu64 " of at most %" PRIu64 " messages", usage[0] ? ", " : "",
			q->used_count, q->limit_count);
	imap_reply_tagged(out, c->tag, IMAP_NO, "OVERQUOTA", "Mailbox full (%s%s): the message (%zu octets) was not "
		"stored - delete messages and empty the Trash, or ask the administrator for more room (ref %s)", usage, count,
		c->append.len, ref);
	log_event(LOG_INFO, "imap_refused", "conn=%llu ref=%s status=NO code=OVERQUOTA user=%s",
		(unsigned long long)s->info.conn_id, ref, s->login ? s->login : "-");
}

void imap_mbox_append(struct imap_session *s, const struct imap_cmd *c, struct buf *out)
{
	uint32_t flags;
	const char *kw[FOLDER_KEYWORDS_MAX];
	size_t n_kw;
	char bad[64], err[300] = "";
	if (!append_flags(c, &flags, kw, &n_kw, bad, sizeof(bad))) {
		imap_reply_tagged(out, c->tag, IMAP_BAD, NULL, "APPEND: %s is not a system flag (\\Seen \\Answered "
			"\\Flagged \\Deleted \\Draft)", bad);
		return;
	}
	uint64_t max = s->limits.settings.append_max ? s->limits.settings.append_max : IMAP_APPEND_LITERAL_MAX;
	if (c->append.len > max) {
		imap_reply_tagged(out, c->tag, IMAP_NO, "TOOBIG", "The message (%zu octets) is larger than this server "
			"accepts (%" PRIu64 " octets)", c->append.len, max);
		return;
	}
	struct folder_append_src src = { .fd = -1, .data = c->append.data, .len = c->append.len, .flags = flags,
		.keywords = kw, .n_keywords = n_kw, .date = c->append.date_given ? c->append.date : 0 };
	uint32_t uid = 0, validity = 0;
	struct quota_state q;
	memset(&q, 0, sizeof(q));
	enum store_result r = folder_append(s->root, c->mailbox, &src, &uid, &validity, &q, err, sizeof(err));
	if (r == STORE_QUOTA) {
		over_quota(s, c, &q, out);
		return;
	}
	if (r == STORE_NONEXISTENT) {   /* RFC 3501 §6.3.11: TRYCREATE */
		char name[200];
		imap_mbox_quote_name(c->mailbox, name, sizeof(name));
		imap_reply_tagged(out, c->tag, IMAP_NO, "TRYCREATE", "There is no folder named %s; create it first", name);
		return;
	}
	if (r != STORE_OK) {
		imap_mbox_store_no(s, out, c->tag, r, c->mailbox, err);
		return;
	}
	if (s->x.sel && strcmp(folder_name(s->x.sel), c->mailbox) == 0)
		imap_exec_sync(&s->x, out, true);   /* the new EXISTS */
	char code[64];
	snprintf(code, sizeof(code), "APPENDUID %" PRIu32 " %" PRIu32, validity, uid);
	imap_reply_tagged(out, c->tag, IMAP_OK, code, "APPEND completed");
}

/* --- QUOTA (RFC 9208) ---------------------------------------------------------- */

static bool quota_resources(const struct quota_state *q, struct buf *out)
{
	const char *sep = "";
	buf_appends(out, "* QUOTA \"\" (");
	if (q->limit_bytes) {
		buf_printf(out, "STORAGE %" PRIu64 " %" PRIu64, (q->used_bytes + 1023) / 1024, q->limit_bytes / 1024);
		sep = " ";
	}
	if (q->limit_count)
		buf_printf(out, "%sMESSAGE %" PRIu64 " %" PRIu64, sep, q->used_count, q->limit_count);
	buf_appends(out, ")\r\n");
	return true;
}

void imap_mbox_quota(struct imap_session *s, const struct imap_cmd *c, struct buf *out)
{
	struct quota_state q;
	char err[300] = "";
	if (!quota_read(s->root, &q, err, sizeof(err))) {
		imap_mbox_store_no(s, out, c->tag, STORE_TEMP, "INBOX", err);
		return;
	}
	bool limited = q.defined && (q.limit_bytes || q.limit_count);
	if (c->name == IMAP_CMD_GETQUOTAROOT) {
		if (!folder_exists(s->root, c->mailbox)) {
			imap_mbox_store_no(s, out, c->tag, STORE_NONEXISTENT, c->mailbox, NULL);
			return;
		}
		buf_appends(out, "* QUOTAROOT ");
		imap_write_mailbox(out, c->mailbox, s->x.utf8_accept);
		buf_appends(out, limited ? " \"\"\r\n" : "\r\n");
		if (limited)
			quota_resources(&q, out);
		imap_reply_tagged(out, c->tag, IMAP_OK, NULL, "GETQUOTAROOT completed");
		return;
	}
	if (c->quota_root[0] || !limited) {
		imap_reply_tagged(out, c->tag, IMAP_NO, "NONEXISTENT", "No such quota root%s: this account's quota root is "
			"\"\"%s", c->quota_root[0] ? "" : " with limits", limited ? "" : ", and it has no limits");
		return;
	}
	quota_resources(&q, out);
	imap_reply_tagged(out, c->tag, IMAP_OK, NULL, "GETQUOTA completed");
}
