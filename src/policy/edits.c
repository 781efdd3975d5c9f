/* edits.c - the changes an end-of-data stage asks for (a content filter's milter
 * modifications, RFC-less but as libmilter and Postfix define them: header fields
 * added, inserted, changed and deleted; the body replaced; the sender changed;
 * recipients added and deleted), checked and recorded when asked, and applied in one
 * go by policy_edits_apply: the header sequence H (f->added, then the spooled
 * message's fields) edited in memory, whole fields only, and the rest of the message
 * (or the replacement body, kept in an O_TMPFILE beside the spool file) streamed into
 * a new spool file by the asker's rewrite (serve/ with queue/).  Also the fate of a
 * message that passes: held in the queue, or discarded (see policy.h). */
#include "policy/policy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "util/fileio.h"
#include "util/log.h"
#include "wire/enh.h"

enum header_edit_kind { HE_ADD, HE_INSERT, HE_CHANGE };

struct header_edit {
	enum header_edit_kind kind;
	unsigned index;          /* INSERT: the position; CHANGE: the occurrence (1-based) */
	char *name;              /* CHANGE: the field name looked for */
	char *field;             /* the field as stored ("Name: value\r\n"); CHANGE: NULL deletes */
	size_t field_len;
};

struct rcpt_edit {
	bool add;
	struct policy_path path;
};

struct policy_edits {
	struct header_edit *hdr;
	size_t n_hdr, cap_hdr;
	struct rcpt_edit *rcpt;
	size_t n_rcpt, cap_rcpt;
	size_t text;             /* octets of the stored fields and names */
	bool sender_set;
	struct policy_path sender;
	int body_fd;             /* the replacement body, or -1 */
	unsigned long long body_len;
	bool body_spoiled;       /* a piece was refused: the replacement cannot be used */
	bool body_pending_cr;    /* the last octet given was a CR (already stored as CR LF) */
	bool body_ends_lf;       /* what is stored ends with a line end */
};

void policy_edits_free(struct policy_edits **ep)
{
	struct policy_edits *e = *ep;
	if (!e)
		return;
	for (size_t i = 0; i < e->n_hdr; i++) {
		free(e->hdr[i].name);
		free(e->hdr[i].field);
	}
	free(e->hdr);
	free(e->rcpt);
	if (e->body_fd >= 0)
		close(e->body_fd);
	free(e);
	*ep = NULL;
}

static struct policy_edits *edits_of(struct policy_facts *f)
{
	if (f->point != POLICY_AT_END_OF_DATA)
		return NULL;
	if (!f->edits) {
		f->edits = calloc(1, sizeof(*f->edits));
		if (f->edits)
			f->edits->body_fd = -1;
	}
	return f->edits;
}

bool policy_edits_pending(const struct policy_facts *f)
{
	const struct policy_edits *e = f->edits;
	return e && (e->n_hdr || e->n_rcpt || e->sender_set || e->body_fd >= 0 || e->body_spoiled);
}

static size_t edits_count(const struct policy_edits *e)
{
	return e->n_hdr + e->n_rcpt + (e->sender_set ? 1 : 0);
}

/* --- header fields -------------------------------------------------------------- */

/* RFC 5322 §3.6.8: field-name = 1*ftext, printable US-ASCII except ":". */
static bool name_ok(const char *name)
{
	size_t n = 0;
	for (; name[n]; n++)
		if (name[n] <= 32 || name[n] >= 127 || name[n] == ':')
			return false;
	return n > 0 && n <= POLICY_EDIT_NAME_MAX;
}

/* "Name: value\r\n" as stored (see policy.h for what a value may hold), malloc'd; NULL
 * when the value is not one well-formed field or the field is over its bound. */
static char *field_build(const char *name, const char *value, size_t *lenp)
{
	size_t nl = strlen(name), vl = strlen(value);
	if (nl + vl > POLICY_EDIT_FIELD_MAX)
		return NULL;
	char *out = malloc(nl + 2 * vl + 5);
	if (!out)
		return NULL;
	size_t o = nl;
	memcpy(out, name, nl);
	out[o++] = ':';
	if (value[0] && value[0] != ' ' && value[0] != '\t')
		out[o++] = ' ';
	for (size_t i = 0; i < vl; i++) {
		unsigned char c = (unsigned char)value[i];
		if (c == '\r' && value[i + 1] != '\n')
			goto bad;   /* a bare CR */
		if (c == '\r')
			continue;   /* stored with its LF */
		if (c == '\n') {
			if (value[i + 1] == '\0')
				break;   /* the value's own line end */
			if (value[i + 1] != ' ' && value[i + 1] != '\t')
				goto bad;   /* a second field, or the header's end */
			out[o++] = '\r';
			out[o++] = '\n';
			continue;
		}
		if ((c < 32 && c != '\t') || c == 127)
			goto bad;
		out[o++] = (char)c;
	}
	out[o++] = '\r';
	out[o++] = '\n';
	out[o] = '\0';
	if (o > POLICY_EDIT_FIELD_MAX)
		goto bad;
	*lenp = o;
	return out;
bad:
	free(out);
	return NULL;
}

static bool header_edit_add(struct policy_facts *f, enum header_edit_kind kind, unsigned index, const char *name,
	const char *value)
{
	struct policy_edits *e = name && value ? edits_of(f) : NULL;
	if (!e || !name_ok(name) || edits_count(e) >= POLICY_EDITS_MAX)
		return false;
	struct header_edit he = { .kind = kind, .index = index };
	bool deletes = kind == HE_CHANGE && value[0] == '\0';
	if (!deletes && !(he.field = field_build(name, value, &he.field_len)))
		return false;
	size_t cost = he.field_len + strlen(name);
	if (cost > POLICY_EDIT_TEXT_MAX - e->text || (kind == HE_CHANGE && !(he.name = strdup(name))))
		goto fail;
	if (e->n_hdr == e->cap_hdr) {
		size_t cap = e->cap_hdr ? e->cap_hdr * 2 : 8;
		struct header_edit *p = realloc(e->hdr, cap * sizeof(*p));
		if (!p)
			goto fail;
		e->hdr = p;
		e->cap_hdr = cap;
	}
	e->hdr[e->n_hdr++] = he;
	e->text += cost;
	return true;
fail:
	free(he.field);
	free(he.name);
	return false;
}

bool policy_edit_header_add(struct policy_facts *f, const char *name, const char *value)
{
	return header_edit_add(f, HE_ADD, 0, name, value);
}

bool policy_edit_header_insert(struct policy_facts *f, unsigned index, const char *name, const char *value)
{
	return header_edit_add(f, HE_INSERT, index, name, value);
}

bool policy_edit_header_change(struct policy_facts *f, const char *name, unsigned nth, const char *value)
{
	return header_edit_add(f, HE_CHANGE, nth ? nth : 1, name, value);
}

/* --- the replacement body ------------------------------------------------------- */

/* An unnamed file beside the spool file: on the same filesystem, gone when closed. */
static int body_file(const char *message_path)
{
	char dir[POLICY_PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", message_path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return -1;
	*slash = '\0';
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
		return fd;
	/* A filesystem without O_TMPFILE: a named file, unlinked at once. */
	char tmpl[POLICY_PATH_MAX + 32];
	snprintf(tmpl, sizeof(tmpl), "%s/.body-XXXXXX", dir);
	fd = mkostemp(tmpl, O_CLOEXEC);
	if (fd >= 0)
		unlink(tmpl);
	return fd;
}

/* Store p[0..n) with every line end as CR LF; false on a NUL, over the bound, or a
 * failed write. */
static bool body_store(struct policy_edits *e, const unsigned char *p, size_t n, unsigned long long max)
{
	unsigned char out[8192 * 2];
	while (n) {
		size_t take = n < 8192 ? n : 8192, o = 0;
		for (size_t i = 0; i < take; i++) {
			unsigned char c = p[i];
			if (c == '\0')
				return false;
			if (c == '\n' && e->body_pending_cr) {
				e->body_pending_cr = false;
				continue;   /* the LF of a CR LF, written with the CR */
			}
			e->body_pending_cr = c == '\r';
			if (c == '\r' || c == '\n') {
				out[o++] = '\r';
				out[o++] = '\n';
			} else {
				out[o++] = c;
			}
		}
		if (o > max - e->body_len || !fileio_write_all(e->body_fd, out, o))
			return false;
		e->body_len += o;
		if (o)
			e->body_ends_lf = out[o - 1] == '\n';
		p += take;
		n -= take;
	}
	return true;
}

bool policy_edit_body_append(struct policy_facts *f, const void *p, size_t n)
{
	struct policy_edits *e = edits_of(f);
	if (!e || e->body_spoiled || (n && !p))
		return false;
	if (e->body_fd < 0 && (e->body_fd = body_file(f->message_path)) < 0) {
		log_event(LOG_ERR, "edit_failed", "conn=%llu op=body error=\"%s\"", f->conn_id, strerror(errno));
		e->body_spoiled = true;
		return false;
	}
	unsigned long long max = f->spool.body_max ? f->spool.body_max : POLICY_EDIT_BODY_DEFAULT;
	if (!body_store(e, p, n, max)) {
		e->body_spoiled = true;
		return false;
	}
	return true;
}

/* --- the envelope ------------------------------------------------------------------ */

bool policy_edit_sender(struct policy_facts *f, const char *address, const char *esmtp_args)
{
	struct policy_edits *e = address ? edits_of(f) : NULL;
	if (!e || !f->spool.parse_sender || (!e->sender_set && edits_count(e) >= POLICY_EDITS_MAX))
		return false;
	struct policy_path path;
	char err[200];
	memset(&path, 0, sizeof(path));
	if (!f->spool.parse_sender(f->spool.ctx, address, esmtp_args, &path, err, sizeof(err))) {
		char q[300];
		log_event(LOG_WARN, "edit_refused", "conn=%llu edit=sender address=%s error=\"%s\"", f->conn_id,
			log_quote(q, sizeof(q), address, strlen(address), 200), err);
		return false;
	}
	e->sender = path;
	e->sender_set = true;
	return true;
}

static bool rcpt_edit_add(struct policy_facts *f, bool add, const char *address, const char *esmtp_args)
{
	struct policy_edits *e = address ? edits_of(f) : NULL;
	if (!e || !f->spool.parse_rcpt || edits_count(e) >= POLICY_EDITS_MAX)
		return false;
	struct rcpt_edit re = { .add = add };
	char err[200];
	if (!f->spool.parse_rcpt(f->spool.ctx, address, add ? esmtp_args : NULL, &re.path, err, sizeof(err))) {
		if (add) {
			char q[300];
			log_event(LOG_WARN, "edit_refused", "conn=%llu edit=add_rcpt address=%s error=\"%s\"", f->conn_id,
				log_quote(q, sizeof(q), address, strlen(address), 200), err);
			return false;
		}
		/* Deleting what RCPT would not take: compare it as given, without brackets. */
		memset(&re.path, 0, sizeof(re.path));
		size_t n = strlen(address);
		if (n >= 2 && address[0] == '<' && address[n - 1] == '>')
			snprintf(re.path.address, sizeof(re.path.address), "%.*s", (int)(n - 2), address + 1);
		else
			snprintf(re.path.address, sizeof(re.path.address), "%s", address);
	}
	if (e->n_rcpt == e->cap_rcpt) {
		size_t cap = e->cap_rcpt ? e->cap_rcpt * 2 : 4;
		struct rcpt_edit *p = realloc(e->rcpt, cap * sizeof(*p));
		if (!p)
			return false;
		e->rcpt = p;
		e->cap_rcpt = cap;
	}
	e->rcpt[e->n_rcpt++] = re;
	return true;
}

bool policy_edit_rcpt_add(struct policy_facts *f, const char *address, const char *esmtp_args)
{
	return rcpt_edit_add(f, true, address, esmtp_args);
}

bool policy_edit_rcpt_del(struct policy_facts *f, const char *address)
{
	return rcpt_edit_add(f, false, address, NULL);
}

/* --- the message's fate ------------------------------------------------------------ */

void policy_facts_hold(struct policy_facts *f, const char *reason)
{
	if (f->disposition == POLICY_DISCARD)
		return;
	f->disposition = POLICY_HOLD;
	snprintf(f->disposition_reason, sizeof(f->disposition_reason), "%s", reason && reason[0] ? reason : "held");
}

void policy_facts_discard(struct policy_facts *f, const char *reason)
{
	f->disposition = POLICY_DISCARD;
	snprintf(f->disposition_reason, sizeof(f->disposition_reason), "%s", reason && reason[0] ? reason : "discarded");
}

/* --- applying: the header sequence H ---------------------------------------------- */

struct hfield {
	const char *p;   /* a whole field, folded lines and its CR LF included */
	size_t len;
};

struct hlist {
	struct hfield *v;
	size_t n, cap;
};

static bool hlist_insert(struct hlist *h, size_t at, struct hfield fl)
{
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 32;
		struct hfield *p = realloc(h->v, cap * sizeof(*p));
		if (!p)
			return false;
		h->v = p;
		h->cap = cap;
	}
	if (at > h->n)
		at = h->n;
	memmove(h->v + at + 1, h->v + at, (h->n - at) * sizeof(*h->v));
	h->v[at] = fl;
	h->n++;
	return true;
}

/* A line that begins a field: a field name, optional white space, a colon. */
static bool starts_field(const char *p, size_t n)
{
	size_t i = 0;
	while (i < n && p[i] > 32 && p[i] < 127 && p[i] != ':')
		i++;
	if (i == 0)
		return false;
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	return i < n && p[i] == ':';
}

/* The fields at the start of buf[0..len) into h; *used: where they end (at the
 * blank line, a line that is no field, or the end).  *ended: the header's end was
 * seen within buf (a blank line or a line that is no field). */
static bool fields_parse(const char *buf, size_t len, struct hlist *h, size_t *used, bool *ended)
{
	size_t pos = 0, first = h->n;   /* fields of another buffer come before: never folded into */
	*ended = false;
	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		if (!nl)
			break;   /* a line cut short: not a field we can edit */
		size_t ll = (size_t)(nl - (buf + pos)) + 1;
		const char *line = buf + pos;
		if (line[0] == ' ' || line[0] == '\t') {
			if (h->n == first) {
				*ended = true;
				break;
			}
			h->v[h->n - 1].len += ll;   /* a folded line goes with its field */
		} else if (starts_field(line, ll)) {
			if (!hlist_insert(h, h->n, (struct hfield){ line, ll }))
				return false;
		} else {
			*ended = true;   /* the blank line, or the body without one */
			break;
		}
		pos += ll;
	}
	*used = pos;
	return true;
}

static bool name_is(const struct hfield *fl, const char *name)
{
	size_t nl = strlen(name);
	if (fl->len <= nl || strncasecmp(fl->p, name, nl) != 0)
		return false;
	size_t i = nl;
	while (i < fl->len && (fl->p[i] == ' ' || fl->p[i] == '\t'))
		i++;
	return i < fl->len && fl->p[i] == ':';
}

static bool header_edit_apply(struct hlist *h, struct header_edit *he)
{
	struct hfield fl = { he->field, he->field_len };
	if (he->kind == HE_ADD)
		return hlist_insert(h, h->n, fl);
	if (he->kind == HE_INSERT)
		return hlist_insert(h, he->index, fl);
	unsigned seen = 0;
	for (size_t i = 0; i < h->n; i++) {
		if (!name_is(&h->v[i], he->name) || ++seen < he->index)
			continue;
		if (he->field) {
			/* In its place, under its own name as spelt there ("Subject", not the
			 * filter's "subject"), as sendmail changes only the value. */
			size_t nl = strlen(he->name);
			if (h->v[i].p[nl] == ':')
				memcpy(he->field, h->v[i].p, nl);
			h->v[i] = fl;
		} else {
			memmove(h->v + i, h->v + i + 1, (h->n - i - 1) * sizeof(*h->v));
			h->n--;
		}
		return true;
	}
	return he->field ? hlist_insert(h, h->n, fl) : true;   /* libmilter: past the last, added */
}

/* --- applying: the recipients ------------------------------------------------------ */

struct rcpt_list {
	struct policy_rewrite_rcpt *v;
	size_t n, cap;
};

static bool rcpts_build(const struct policy_facts *f, const struct policy_edits *e, struct rcpt_list *l,
	size_t *added, size_t *deleted)
{
	l->cap = f->n_rcpts + e->n_rcpt + 1;
	l->v = calloc(l->cap, sizeof(*l->v));
	if (!l->v)
		return false;
	for (size_t i = 0; i < f->n_rcpts; i++)
		l->v[l->n++] = (struct policy_rewrite_rcpt){ .address = f->rcpts[i].address, .old_index = (long)i };
	for (size_t k = 0; k < e->n_rcpt; k++) {
		const struct rcpt_edit *re = &e->rcpt[k];
		bool found = false;
		for (size_t i = 0; i < l->n; i++) {
			if (strcasecmp(l->v[i].address, re->path.address) != 0)
				continue;
			found = true;
			if (!re->add) {
				memmove(l->v + i, l->v + i + 1, (l->n - i - 1) * sizeof(*l->v));
				l->n--;
				i--;
				(*deleted)++;
			}
		}
		if (re->add && !found) {
			l->v[l->n++] = (struct policy_rewrite_rcpt){ .address = re->path.address, .old_index = -1,
				.path = &re->path };
			(*added)++;
		}
	}
	return true;
}

/* The recipients the facts will have (built before the rewrite, so that nothing can
 * fail after it): an added one has domain_local and quota false. */
static struct policy_rcpt *rcpts_facts(const struct policy_facts *f, const struct rcpt_list *l)
{
	struct policy_rcpt *nr = calloc(l->n ? l->n : 1, sizeof(*nr));
	if (!nr)
		return NULL;
	for (size_t i = 0; i < l->n; i++) {
		if (l->v[i].old_index >= 0)
			nr[i] = f->rcpts[l->v[i].old_index];
		else
			snprintf(nr[i].address, sizeof(nr[i].address), "%s", l->v[i].address);
	}
	return nr;
}

/* --- applying: the whole ------------------------------------------------------------ */

static void edit_failed(struct policy_facts *f, struct verdict *v, const char *what)
{
	log_event(LOG_ERR, "edit_failed", "conn=%llu error=\"%s\"", f->conn_id, what);
	verdict_set(v, VERDICT_TEMP, 451, ENH_TEMP_SYSTEM, CAUSE_EDIT_FAILED,
		"temporary failure: the changes the content filter asked for could not be stored on this server",
		"Nothing is lost: your mail program will try again later; the server's log says what failed (event=edit_failed)");
}

/* The spooled message's first octets, up to where its header can be edited. */
static char *header_read(const struct policy_facts *f, int fd, size_t *len)
{
	size_t want = f->message_size < POLICY_EDIT_HEADER_MAX ? (size_t)f->message_size : POLICY_EDIT_HEADER_MAX;
	char *buf = malloc(want + 1);
	if (!buf)
		return NULL;
	size_t got = 0;
	while (got < want) {
		ssize_t r = pread(fd, buf + got, want - got, (off_t)(f->message_offset + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	if (got < want) {
		free(buf);
		return NULL;
	}
	*len = got;
	return buf;
}

struct apply {
	int fd;                 /* the spool file, read only */
	char *msg;              /* its header's octets */
	size_t msg_len, msg_used;
	struct hlist h;
	char *head;
	size_t head_len;
	struct rcpt_list rcpts;
	struct policy_rcpt *new_rcpts;   /* what f->rcpts becomes */
	struct policy_rewrite rw;
};

static void apply_free(struct apply *a)
{
	if (a->fd >= 0)
		close(a->fd);
	free(a->msg);
	free(a->h.v);
	free(a->head);
	free(a->rcpts.v);
	free(a->new_rcpts);
}

/* H edited, then the rest (or the blank line and the new body): a->rw's message. */
static const char *build_message(struct policy_facts *f, struct apply *a)
{
	struct policy_edits *e = f->edits;
	bool ended = false;
	size_t added_used = 0;
	if (!fields_parse(f->added ? f->added : "", f->added_len, &a->h, &added_used, &ended))
		return "out of memory";
	if (added_used != f->added_len)
		return "the header fields added by the stages are malformed";
	if (!(a->msg = header_read(f, a->fd, &a->msg_len)))
		return "cannot read the spooled message";
	if (!fields_parse(a->msg, a->msg_len, &a->h, &a->msg_used, &ended))
		return "out of memory";
	if (!ended && a->msg_len < f->message_size)
		return NULL;   /* the header goes on past POLICY_EDIT_HEADER_MAX */
	for (size_t i = 0; i < e->n_hdr; i++)
		if (!header_edit_apply(&a->h, &e->hdr[i]))
			return "out of memory";
	bool body = e->body_fd >= 0;
	if (body && e->body_len && !e->body_ends_lf && !body_store(e, (const unsigned char *)"\r\n", 2, UINT64_MAX))
		return "cannot write the replacement body";
	/* The header ends in its blank line: a new body after it, or a rest without one (a
	 * body line right after the fields, which a field put before it would swallow if
	 * it began with a space) gets it. */
	const char *rest = a->msg + a->msg_used;
	size_t rest_n = a->msg_len - a->msg_used;
	bool blank = body || (rest_n > 0 && !(rest_n >= 2 && rest[0] == '\r' && rest[1] == '\n'));
	size_t total = blank ? 2 : 0;
	for (size_t i = 0; i < a->h.n; i++)
		total += a->h.v[i].len;
	if (!(a->head = malloc(total + 1)))
		return "out of memory";
	for (size_t i = 0; i < a->h.n; i++) {
		memcpy(a->head + a->head_len, a->h.v[i].p, a->h.v[i].len);
		a->head_len += a->h.v[i].len;
	}
	if (blank) {
		memcpy(a->head + a->head_len, "\r\n", 2);
		a->head_len += 2;
	}
	a->rw.head = a->head;
	a->rw.head_len = a->head_len;
	a->rw.rest_fd = body ? e->body_fd : a->fd;
	a->rw.rest_off = body ? 0 : f->message_offset + a->msg_used;
	a->rw.rest_len = body ? e->body_len : f->message_size - a->msg_used;
	a->rw.body_replaced = body;
	a->rw.n_header_edits = e->n_hdr;
	return "";
}

/* The facts as the new spool file has them. */
static void facts_update(struct policy_facts *f, struct apply *a, unsigned long long off, unsigned long long size)
{
	struct policy_edits *e = f->edits;
	free(f->rcpts);
	f->rcpts = a->new_rcpts;
	f->n_rcpts = a->rcpts.n;
	a->new_rcpts = NULL;
	if (e->sender_set) {
		snprintf(f->address, sizeof(f->address), "%s", e->sender.address);
		snprintf(f->local, sizeof(f->local), "%s", e->sender.local);
		snprintf(f->domain, sizeof(f->domain), "%s", e->sender.domain);
		f->null_sender = e->sender.null;
	}
	f->message_offset = off;
	f->message_size = size;
	free(f->added);
	f->added = NULL;
	f->added_len = 0;
}

bool policy_edits_apply(struct policy_facts *f, struct verdict *v)
{
	if (!policy_edits_pending(f))
		return true;
	struct policy_edits *e = f->edits;
	struct apply a = { .fd = -1 };
	const char *why = "";
	bool ok = false;
	if (e->body_spoiled)
		why = "the replacement body could not be stored (too large, a NUL, or the disk)";
	else if (!f->spool.rewrite)
		why = "no way to change the spooled message";
	else if ((a.fd = open(f->message_path, O_RDONLY | O_CLOEXEC)) < 0)
		why = "cannot open the spooled message";
	else if (!rcpts_build(f, e, &a.rcpts, &a.rw.n_rcpts_added, &a.rw.n_rcpts_deleted)
		|| !(a.new_rcpts = rcpts_facts(f, &a.rcpts)))
		why = "out of memory";
	else if ((why = build_message(f, &a)) == NULL) {
		verdict_set(v, VERDICT_PERM, 552, ENH_PERM_TOO_BIG, CAUSE_EDIT_FAILED,
			"the message's header is larger than 1 MB, too large for the changes the content filter asked for",
			"Send the message with a shorter header");
		log_event(LOG_WARN, "edit_failed", "conn=%llu error=\"the header is larger than %u octets\"", f->conn_id,
			POLICY_EDIT_HEADER_MAX);
		apply_free(&a);
		policy_edits_free(&f->edits);
		return false;
	}
	if (!why[0] && a.rcpts.n == 0) {
		/* Postfix and sendmail alike: a message left with no recipient goes nowhere. */
		policy_facts_discard(f, "the content filter removed every recipient");
		ok = true;
	} else if (!why[0]) {
		a.rw.sender = e->sender_set ? &e->sender : NULL;
		a.rw.rcpts = a.rcpts.v;
		a.rw.n_rcpts = a.rcpts.n;
		unsigned long long off = 0, size = 0;
		char err[256] = "";
		if (f->spool.rewrite(f->spool.ctx, &a.rw, &off, &size, err, sizeof(err))) {
			facts_update(f, &a, off, size);
			ok = true;
		} else {
			edit_failed(f, v, err[0] ? err : "the spool file could not be replaced");
		}
	} else {
		edit_failed(f, v, why);
	}
	apply_free(&a);
	policy_edits_free(&f->edits);
	return ok;
}
