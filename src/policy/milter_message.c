/* milter_message.c - the end of data as the content filters see it (policy.h
 * "content filters"): H, the header fields the earlier stages added (in order) then
 * the spooled message's (Postern's Received: first), each sent as its name and the
 * octets after the colon, with the CR LF of a folded value turned into LF as Postfix
 * does; then the body, read from the spool file (read only, within the message's
 * bounds) in chunks of at most 65,535 octets (the protocol's largest packet); then
 * the end of message and the changes each filter asks for.  The header block sent is
 * bounded (HEADER_BLOCK_MAX): a longer one goes on as body. */
#include "policy/milter_stage.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"
#include "util/text.h"

#define BODY_CHUNK 65535u
#define HEADER_BLOCK_MAX (1024u * 1024u)

/* One field [p, p+n) (line ends CR LF, no final one): name and value appended. */
static bool add_field(struct milter_message *m, const char *p, size_t n)
{
	const char *colon = memchr(p, ':', n);
	size_t nlen = colon ? (size_t)(colon - p) : 0;
	while (nlen && (p[nlen - 1] == ' ' || p[nlen - 1] == '\t'))
		nlen--;   /* obsolete "Name :" (RFC 5322 §4.5) */
	for (size_t i = 0; i < nlen; i++)
		if (p[i] <= 32 || p[i] >= 127)
			nlen = 0;   /* RFC 5322 §3.6.8: a name is printable ASCII without spaces */
	if (nlen == 0)
		return true;   /* not a field (RFC 5322 §2.2): nothing a filter could name */
	struct milter_field *grown = realloc(m->fields, (m->n_fields + 1) * sizeof(*grown));
	if (!grown)
		return false;
	m->fields = grown;
	char *name = strndup(p, nlen);
	char *value = malloc(n - (size_t)(colon - p));
	if (!name || !value) {
		free(name);
		free(value);
		return false;
	}
	size_t o = 0;
	for (const char *c = colon + 1; c < p + n; c++) {
		while (*c == '\n' && o > 0 && value[o - 1] == '\r')
			o--;   /* a folded value's CR LF goes as LF (Postfix milter8.c) */
		value[o++] = *c;
	}
	value[o] = '\0';
	m->fields[m->n_fields++] = (struct milter_field){ name, value };
	return true;
}

/* Split a header block (CR LF line ends; a line starting with SP or HT continues the
 * field before it, RFC 5322 §2.2.3) into fields. */
bool milter_message_split(struct milter_message *m, const char *p, size_t n)
{
	size_t start = 0;
	for (size_t i = 0; i + 1 < n; i++) {
		if (p[i] != '\r' || p[i + 1] != '\n')
			continue;
		bool folded = i + 2 < n && (p[i + 2] == ' ' || p[i + 2] == '\t');
		if (folded)
			continue;
		if (i > start && !add_field(m, p + start, i - start))
			return false;
		start = i + 2;
		i++;
	}
	return start >= n || add_field(m, p + start, n - start);
}

void milter_message_close(struct milter_message *m)
{
	for (size_t i = 0; i < m->n_fields; i++) {
		free(m->fields[i].name);
		free(m->fields[i].value);
	}
	free(m->fields);
	m->fields = NULL;
	m->n_fields = 0;
	if (m->fd >= 0)
		close(m->fd);
	m->fd = -1;
}

/* Where the header ends in the first octets of the message: the length of the block
 * (its last CR LF included) and where the body starts. */
static void header_end(const char *buf, size_t got, bool whole, size_t *hlen, size_t *body)
{
	if (got >= 2 && buf[0] == '\r' && buf[1] == '\n') {
		*hlen = 0;   /* no header at all */
		*body = 2;
		return;
	}
	const char *e = NULL;
	for (size_t i = 0; i + 3 < got && !e; i++)
		if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n')
			e = buf + i;
	if (e) {
		*hlen = (size_t)(e - buf) + 2;
		*body = *hlen + 2;
		return;
	}
	/* No empty line within the bound: up to the last line end is header, the rest
	 * body (a message without a body ends its header at its end). */
	size_t last = got;
	if (!whole)
		while (last >= 2 && !(buf[last - 2] == '\r' && buf[last - 1] == '\n'))
			last--;
	*hlen = last;
	*body = last;
}

bool milter_message_open(struct milter_message *m, const struct policy_facts *f)
{
	memset(m, 0, sizeof(*m));
	m->fd = open(f->message_path, O_RDONLY | O_CLOEXEC);
	if (m->fd < 0)
		return false;
	size_t want = f->message_size < HEADER_BLOCK_MAX ? (size_t)f->message_size : HEADER_BLOCK_MAX;
	char *buf = malloc(want + 1);
	ssize_t got = buf ? pread(m->fd, buf, want, (off_t)f->message_offset) : -1;
	if (got < 0 || (size_t)got != want) {
		free(buf);
		milter_message_close(m);
		return false;
	}
	size_t hlen, body;
	header_end(buf, want, want == f->message_size, &hlen, &body);
	bool ok = (!f->added || milter_message_split(m, f->added, f->added_len)) && milter_message_split(m, buf, hlen);
	free(buf);
	m->body_off = f->message_offset + body;
	m->body_end = f->message_offset + f->message_size;
	if (!ok)
		milter_message_close(m);
	return ok;
}

static void queue_macro(const struct policy_facts *f, struct milter_macro *mm)
{
	*mm = (struct milter_macro){ "i", f->queue_id };
}

/* REPLBODY chunks (the filter's new body), into the replacement body (policy.h §B). */
struct body_sink {
	struct policy_facts *f;
	const struct milter_peer *p;
	unsigned long long octets;
	bool refused;
};

static bool body_sink(void *arg, const void *data, size_t n)
{
	struct body_sink *bs = arg;
	bs->octets += n;
	if (!bs->refused && !policy_edit_body_append(bs->f, data, n))
		bs->refused = true;   /* the replacement is spoiled: policy_edits_apply refuses 451 4.3.0 */
	return true;
}

static bool apply_mod(struct policy_facts *f, const struct milter_mod *mod)
{
	const char *v = mod->value ? mod->value : "";
	switch (mod->kind) {
	case MILTER_MOD_ADD_HEADER:
		return policy_edit_header_add(f, mod->name, v);
	case MILTER_MOD_INSERT_HEADER:
		return policy_edit_header_insert(f, mod->index, mod->name, v);
	case MILTER_MOD_CHANGE_HEADER:
		return policy_edit_header_change(f, mod->name, mod->index, v);
	case MILTER_MOD_ADD_RCPT:
		return policy_edit_rcpt_add(f, mod->name, mod->value);
	case MILTER_MOD_DEL_RCPT:
		return policy_edit_rcpt_del(f, mod->name);
	case MILTER_MOD_CHANGE_FROM:
		return policy_edit_sender(f, mod->name, mod->value);
	}
	return false;
}

static const char *mod_name(enum milter_mod_kind k)
{
	static const char *const names[] = { "add_header", "insert_header", "change_header", "add_rcpt", "del_rcpt",
		"change_from" };
	return (unsigned)k < sizeof(names) / sizeof(names[0]) ? names[k] : "unknown";
}

/* The changes a filter asked for at the end of its message, in the order asked (each
 * counts over H as the ones before left it, as libmilter's do).  One the edits refuse
 * (a bad field name, an address MAIL FROM or RCPT TO would refuse) is logged and left
 * out: the message goes on as the filter's other changes leave it. */
static void apply_mods(const struct milter_peer *p, struct policy_facts *f, const struct milter_outcome *out,
	const struct body_sink *bs)
{
	char q[200];
	for (size_t i = 0; i < out->n_mods; i++) {
		const struct milter_mod *mod = &out->mods[i];
		if (apply_mod(f, mod))
			continue;
		const char *what = mod->name ? mod->name : "";
		log_event(LOG_WARN, "milter_edit_refused", "conn=%llu filter=%s edit=%s name=%s", f->conn_id, p->fc.name,
			mod_name(mod->kind), log_quote(q, sizeof(q), what, strlen(what), 128));
	}
	if (out->body_replaced)
		log_event(LOG_INFO, "milter_body_replaced", "conn=%llu filter=%s octets=%llu%s", f->conn_id, p->fc.name,
			bs->octets, bs->refused ? " refused=yes" : "");
}

/* The body, chunk by chunk, until its end or until the filter wants no more. */
static enum milter_verdict send_body(struct milter_peer *p, const struct policy_facts *f,
	const struct milter_message *m, struct milter_outcome *out, struct verdict *v, bool *go_on)
{
	static _Thread_local char chunk[BODY_CHUNK];
	for (unsigned long long off = m->body_off; off < m->body_end;) {
		size_t n = m->body_end - off < BODY_CHUNK ? (size_t)(m->body_end - off) : BODY_CHUNK;
		if (pread(m->fd, chunk, n, (off_t)off) != (ssize_t)n) {
			*go_on = false;
			snprintf(out->failure, sizeof(out->failure), "the spooled message cannot be read");
			milter_judge(p, f, MILTER_FAILED, out, v);
			return MILTER_FAILED;
		}
		enum milter_verdict mv = milter_body(p->mc, chunk, n, out);
		if (mv == MILTER_SKIP)
			return mv;
		if (!(*go_on = milter_judge(p, f, mv, out, v)))
			return mv;
		off += n;
	}
	return MILTER_CONTINUE;
}

void milter_message_send(struct milter_peer *p, struct policy_facts *f, const struct milter_message *m,
	struct verdict *v)
{
	struct milter_macro qm;
	queue_macro(f, &qm);
	struct milter_outcome out;
	memset(&out, 0, sizeof(out));
	bool go_on = milter_judge(p, f, milter_data(p->mc, &qm, 1, &out), &out, v);
	for (size_t i = 0; go_on && i < m->n_fields; i++)
		go_on = milter_judge(p, f, milter_header(p->mc, m->fields[i].name, m->fields[i].value, &out), &out, v);
	if (go_on)
		go_on = milter_judge(p, f, milter_eoh(p->mc, &qm, 1, &out), &out, v);
	if (go_on)
		send_body(p, f, m, &out, v, &go_on);
	if (!go_on) {
		milter_outcome_clear(&out);
		return;
	}
	struct body_sink bs = { .f = f, .p = p };
	enum milter_verdict mv = milter_eom(p->mc, &qm, 1, body_sink, &bs, &out);
	if (mv != MILTER_FAILED)
		p->in_txn = false;   /* the end of message ends the filter's transaction */
	milter_judge(p, f, mv, &out, v);
	bool passed = v->kind == VERDICT_OK && (mv == MILTER_CONTINUE || mv == MILTER_ACCEPT || mv == MILTER_QUARANTINE);
	if (passed)
		apply_mods(p, f, &out, &bs);
	p->done = true;
	milter_outcome_clear(&out);
}

/* After the last filter: a discard wins over a quarantine (policy.h §B), then every
 * change asked for is applied to the spooled message, before the signing stage. */
void milter_message_finish(struct policy_milter_session *ms, struct policy_facts *f, const bool *asked,
	struct verdict *v)
{
	char reason[POLICY_REASON_MAX];
	for (size_t i = 0; i < ms->n; i++) {
		const struct milter_peer *p = &ms->peers[i];
		if (!asked[i] || p->txn != f->txn.milter_txn)
			continue;
		if (p->discard) {
			snprintf(reason, sizeof(reason), "discarded by the content filter (%s)", p->display);
			policy_facts_discard(f, reason);
		} else if (p->quarantine) {
			text_format_cut(reason, sizeof(reason), "quarantined by the content filter (%s)%s%s", p->display,
				p->quarantine_reason[0] ? ": " : "", p->quarantine_reason);
			policy_facts_hold(f, reason);
		}
	}
	if (policy_edits_pending(f))
		policy_edits_apply(f, v);
}
