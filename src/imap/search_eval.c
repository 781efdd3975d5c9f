/* search_eval.c - whether one message matches a SEARCH key (RFC 3501 §6.4.4, RFC 7162
 * §3.1.5 MODSEQ).  Keys on flags, sizes, dates and numbers read only the store's view;
 * header keys (FROM, SUBJECT, HEADER, SENT*) read the header block from the index (the
 * field keys scan it for their field without building a MIME tree);
 * only BODY and TEXT map the message.  Strings compare case-insensitively on decoded
 * text (RFC 2047 words, transfer encodings and charsets decoded by msg/mime.c). */
#include <string.h>

#include "imap/msgcmd.h"

/* The day a time falls on, for "disregarding time and timezone" (RFC 3501 §6.4.4):
 * dates are compared as UTC days, the parser turning "1-Feb-1994" into its UTC midnight. */
static long long day_of(time_t t)
{
	long long s = (long long)t;
	return s >= 0 ? s / 86400 : -((-s + 86399) / 86400);
}

static bool date_key(enum imap_search_op op, time_t msg, time_t key)
{
	long long a = day_of(msg), b = day_of(key);
	switch (op) {
	case SK_BEFORE: case SK_SENTBEFORE: return a < b;
	case SK_ON: case SK_SENTON: return a == b;
	default: return a >= b;   /* SINCE, SENTSINCE: "within or later than" */
	}
}

static const char *header_key_field(enum imap_search_op op)
{
	switch (op) {
	case SK_FROM: return "From";
	case SK_TO: return "To";
	case SK_CC: return "Cc";
	case SK_BCC: return "Bcc";
	case SK_SUBJECT: return "Subject";
	default: return NULL;
	}
}

static bool keyword_set(struct imap_msgview *v, const char *name)
{
	if (!v->f || !name)
		return false;
	int k = folder_keyword_index(v->f, name, false);
	return k >= 0 && k < 64 && (v->m->keywords & ((uint64_t)1 << k));
}

static bool flag_key(enum imap_search_op op, uint32_t fl, bool *known)
{
	*known = true;
	switch (op) {
	case SK_ANSWERED: return fl & FOLDER_ANSWERED;
	case SK_UNANSWERED: return !(fl & FOLDER_ANSWERED);
	case SK_DELETED: return fl & FOLDER_DELETED;
	case SK_UNDELETED: return !(fl & FOLDER_DELETED);
	case SK_DRAFT: return fl & FOLDER_DRAFT;
	case SK_UNDRAFT: return !(fl & FOLDER_DRAFT);
	case SK_FLAGGED: return fl & FOLDER_FLAGGED;
	case SK_UNFLAGGED: return !(fl & FOLDER_FLAGGED);
	case SK_SEEN: return fl & FOLDER_SEEN;
	case SK_UNSEEN: return !(fl & FOLDER_SEEN);
	case SK_RECENT: return fl & FOLDER_RECENT;
	case SK_OLD: return !(fl & FOLDER_RECENT);
	case SK_NEW: return (fl & FOLDER_RECENT) && !(fl & FOLDER_SEEN);   /* RECENT UNSEEN */
	default: *known = false; return false;
	}
}

static bool content_key(const struct imap_search_key *k, struct imap_msgview *v)
{
	const struct mime_tree *t;
	const char *field = header_key_field(k->op);
	const char *hdr;
	size_t hlen;
	switch (k->op) {
	case SK_HEADER:   /* the header block alone: no MIME parse for a field search */
		return imap_msgview_header(v, &hdr, &hlen) &&
		       mime_header_block_contains(hdr, hlen, k->str ? k->str : "", k->str2 ? k->str2 : "");
	case SK_BODY:
	case SK_TEXT:
		t = imap_msgview_tree(v);
		return t && mime_text_contains(t, k->str ? k->str : "", k->op == SK_TEXT);
	case SK_SENTBEFORE: case SK_SENTON: case SK_SENTSINCE: {
		t = imap_msgview_header_tree(v);
		long zone = 0;
		time_t d = t ? mime_date_tz(t, &zone) : 0;
		/* the date as written in its own zone; none readable: 1970-01-01, as Dovecot compares */
		return date_key(k->op, d ? d + zone : 0, k->date);
	}
	default:
		if (!field)
			return false;
		return imap_msgview_header(v, &hdr, &hlen) && mime_header_block_contains(hdr, hlen, field, k->str ? k->str : "");
	}
}

bool imap_search_match(const struct imap_search_key *k, struct imap_msgview *v, struct imap_search_env *env)
{
	const struct folder_msg *m = v->m;
	bool known;
	bool r = flag_key(k->op, m->flags, &known);
	if (known)
		return r;
	switch (k->op) {
	case SK_ALL: return true;
	case SK_AND:
		for (size_t c = 0; c < k->n_child; c++)
			if (!imap_search_match(&k->child[c], v, env))
				return false;
		return true;
	case SK_OR:
		for (size_t c = 0; c < k->n_child; c++)
			if (imap_search_match(&k->child[c], v, env))
				return true;
		return false;
	case SK_NOT: return k->n_child > 0 && !imap_search_match(&k->child[0], v, env);
	case SK_SEQSET:
		if (k->set.saved)
			return imap_saved_contains(env->x, m->uid);
		return imap_seq_contains(&k->set, env->seq, env->max_seq);
	case SK_UID:
		if (k->set.saved)
			return imap_saved_contains(env->x, m->uid);
		return imap_seq_contains(&k->set, m->uid, env->max_uid);
	case SK_KEYWORD: return keyword_set(v, k->str);
	case SK_UNKEYWORD: return !keyword_set(v, k->str);
	case SK_LARGER: return imap_msgview_dated(v)->size > k->num;
	case SK_SMALLER: return imap_msgview_dated(v)->size < k->num;
	case SK_BEFORE: case SK_ON: case SK_SINCE: return date_key(k->op, imap_msgview_dated(v)->internaldate, k->date);
	case SK_MODSEQ:
		return m->modseq >= k->num;   /* RFC 7162 §3.1.5: "greater than or equal" */
	default: return content_key(k, v);
	}
}
