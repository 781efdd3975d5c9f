/* edit.c - the materialiser of the end-of-data changes (see edit.h): what
 * policy_edits_apply asks for, on the stage's thread, while the session waits.  The
 * new envelope keeps everything of the old one (arrival, client, HELO, protocol, DSN
 * of the recipients kept) but what the filter changed; the recipients' and sender's
 * ESMTP arguments are read by the same parser as RCPT TO and MAIL FROM
 * (smtp/address.h). */
#include "serve/edit.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "queue/queue.h"
#include "smtp/address.h"
#include "util/log.h"

struct spool_share {
	atomic_uint refs;              /* the connection's and the facts' */
	struct queue_writer *writer;
	bool handed;                   /* the connection dropped the message: the last frees it */
	unsigned long long conn_id;
};

static void share_unref(struct spool_share *s)
{
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (s->handed)
		queue_writer_free(&s->writer);
	free(s);
}

void spool_share_release(struct spool_share **sp, bool hand_writer)
{
	struct spool_share *s = *sp;
	if (!s)
		return;
	*sp = NULL;
	s->handed = hand_writer;
	share_unref(s);
}

static void facts_release(void *ctx)
{
	share_unref(ctx);
}

/* "<a@b>" as given, or a@b put in brackets, then " args": the argument of MAIL/RCPT. */
static bool command_arg(char *out, size_t outsz, const char *keyword, const char *address, const char *args)
{
	bool bracketed = address[0] == '<';
	int n = snprintf(out, outsz, "%s%s%s%s%s%s", keyword, bracketed ? "" : "<", address, bracketed ? "" : ">",
		args && args[0] ? " " : "", args ? args : "");
	return n > 0 && (size_t)n < outsz;
}

static void path_fill(const struct smtp_path *p, struct policy_path *out)
{
	smtp_path_format(p, out->address, sizeof(out->address));
	snprintf(out->local, sizeof(out->local), "%s", p->local);
	snprintf(out->domain, sizeof(out->domain), "%s", p->domain);
	out->null = p->null;
}

static bool parse_sender(void *ctx, const char *address, const char *args, struct policy_path *out, char *err,
	size_t errsz)
{
	(void)ctx;
	char arg[1200];
	struct smtp_path p;
	struct smtp_mail_params mp;
	const char *detail = "it is too long";
	memset(out, 0, sizeof(*out));
	if (!command_arg(arg, sizeof(arg), "FROM:", address, args)
		|| smtp_parse_mail(arg, strlen(arg), &p, &mp, &detail) != ADDR_OK) {
		snprintf(err, errsz, "MAIL FROM would refuse it: %s", detail ? detail : "syntax");
		return false;
	}
	path_fill(&p, out);
	out->body_set = args && strcasestr(args, "BODY=") != NULL;
	out->eightbit = mp.body != BODY_7BIT;
	out->smtputf8 = mp.smtputf8 || p.utf8;
	out->ret = mp.ret;
	snprintf(out->envid, sizeof(out->envid), "%s", mp.envid);
	return true;
}

static bool parse_rcpt(void *ctx, const char *address, const char *args, struct policy_path *out, char *err,
	size_t errsz)
{
	(void)ctx;
	char arg[1200];
	struct smtp_path p;
	struct smtp_rcpt_params rp;
	const char *detail = "it is too long";
	memset(out, 0, sizeof(*out));
	memset(&rp, 0, sizeof(rp));
	if (!command_arg(arg, sizeof(arg), "TO:", address, args)
		|| smtp_parse_rcpt_dsn(arg, strlen(arg), &p, &rp, &detail) != ADDR_OK) {
		snprintf(err, errsz, "RCPT TO would refuse it: %s", detail ? detail : "syntax");
		return false;
	}
	path_fill(&p, out);
	out->smtputf8 = p.utf8;
	out->notify = rp.notify;
	snprintf(out->orcpt, sizeof(out->orcpt), "%s", rp.orcpt);
	return true;
}

/* The envelope of the rewritten file: the old one with the filter's sender and
 * recipients.  False on no memory. */
static bool envelope_build(const struct queue_envelope *old, const struct policy_rewrite *rw,
	struct queue_envelope *ne)
{
	*ne = *old;
	ne->notify = NULL;
	ne->orcpt = NULL;
	ne->n_rcpts = rw->n_rcpts;
	ne->rcpts = calloc(rw->n_rcpts ? rw->n_rcpts : 1, sizeof(*ne->rcpts));
	if (!ne->rcpts)
		return false;
	for (size_t i = 0; i < rw->n_rcpts; i++) {
		const struct policy_rewrite_rcpt *r = &rw->rcpts[i];
		long oi = r->old_index;
		bool old_ok = oi >= 0 && (size_t)oi < old->n_rcpts;
		snprintf(ne->rcpts[i], sizeof(ne->rcpts[i]), "%s", old_ok ? old->rcpts[oi] : r->address);
		unsigned char notify = old_ok ? (old->notify ? old->notify[oi] : 0) : (r->path ? r->path->notify : 0);
		const char *orcpt = old_ok ? (old->orcpt ? old->orcpt[oi] : "") : (r->path ? r->path->orcpt : "");
		if ((notify || orcpt[0]) && !queue_envelope_set_dsn(ne, i, notify, orcpt))
			return false;
		if (!old_ok && r->path && r->path->smtputf8)
			ne->smtputf8 = true;
	}
	if (rw->sender) {
		snprintf(ne->sender, sizeof(ne->sender), "%s", rw->sender->address);
		if (rw->sender->body_set)
			ne->eightbit = rw->sender->eightbit;
		ne->smtputf8 = ne->smtputf8 || rw->sender->smtputf8;
		if (rw->sender->ret)
			ne->ret = rw->sender->ret == 1 ? QUEUE_RET_FULL : QUEUE_RET_HDRS;
		if (rw->sender->envid[0])
			snprintf(ne->envid, sizeof(ne->envid), "%s", rw->sender->envid);
	}
	return true;
}

static bool rewrite(void *ctx, const struct policy_rewrite *rw, unsigned long long *offset, unsigned long long *size,
	char *err, size_t errsz)
{
	struct spool_share *s = ctx;
	struct queue_envelope ne;
	if (!envelope_build(queue_writer_envelope(s->writer), rw, &ne)) {
		queue_envelope_free(&ne);
		snprintf(err, errsz, "out of memory");
		return false;
	}
	struct queue_piece pieces[2] = {
		{ .mem = rw->head, .len = rw->head_len },
		{ .fd = rw->rest_fd, .off = rw->rest_off, .len = rw->rest_len },
	};
	bool ok = queue_writer_rewrite(s->writer, &ne, pieces, 2, err, errsz);
	if (ok) {
		*offset = queue_writer_message_offset(s->writer);
		*size = queue_writer_size(s->writer);
		char q[600];
		log_event(LOG_INFO, "edited", "conn=%llu qid=%s header_edits=%zu body=%s sender=%s rcpts_added=%zu "
			"rcpts_deleted=%zu nrcpt=%zu size=%llu", s->conn_id, ne.qid, rw->n_header_edits,
			rw->body_replaced ? "replaced" : "kept",
			rw->sender ? log_quote(q, sizeof(q), ne.sender, strlen(ne.sender), 300) : "kept",
			rw->n_rcpts_added, rw->n_rcpts_deleted, ne.n_rcpts, *size);
	}
	queue_envelope_free(&ne);
	return ok;
}

struct spool_share *spool_share_new(struct queue_writer *w, unsigned long long conn_id, unsigned long long body_max,
	struct policy_facts *f)
{
	struct spool_share *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	atomic_init(&s->refs, 2);
	s->writer = w;
	s->conn_id = conn_id;
	f->spool = (struct policy_spool){ .rewrite = rewrite, .parse_sender = parse_sender, .parse_rcpt = parse_rcpt,
		.release = facts_release, .ctx = s, .body_max = body_max };
	return s;
}
