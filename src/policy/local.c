/* local.c - the local rules as decision stages (see policy.h, policy_add_local_stages).
 *
 * The stages that read the directory or a quota file do I/O and run on the decision
 * threads; they only gather findings or judge ownership.  The pure rules (policy.c)
 * judge the findings on the loop thread.  Together they say exactly what the single
 * recipient check said before: postmaster first (RFC 5321 §4.5.1), then relaying
 * (DESIGN invariant 2), then the mailbox. */
#include "policy/policy.h"

#include "conf/conf.h"
#include "directory/directory.h"
#include "store/layout.h"
#include "store/quota.h"
#include "util/log.h"
#include "wire/enh.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define AT_MAIL POLICY_AT(POLICY_AT_MAIL)
#define AT_RCPT POLICY_AT(POLICY_AT_RCPT)
#define AT_FROM POLICY_AT(POLICY_AT_FROM_HEADER)
#define AT_EOD POLICY_AT(POLICY_AT_END_OF_DATA)

static void directory_unreadable(struct verdict *v)
{
	verdict_set(v, VERDICT_TEMP, 451, ENH_TEMP_SYSTEM, CAUSE_LOOKUP_FAILED,
		"temporary failure: the user directory could not be read", "Your mail program will try again later");
}

/* --- MAIL ------------------------------------------------------------------- */

static void stage_submission(void *ctx, struct policy_facts *f, struct verdict *v)
{
	(void)ctx;
	policy_check_mail(&f->client, v);   /* RFC 6409 §4.3 */
}

static bool sender_wanted(void *ctx, const struct policy_facts *f)
{
	(void)ctx;
	return f->login[0] && !f->null_sender;
}

/* A logged-in user sends as one of the addresses the directory gives the login. */
static void stage_sender(void *ctx, struct policy_facts *f, struct verdict *v)
{
	struct policy_local *l = ctx;
	enum dir_result r = directory_sender_owned(l->dir, f->login, f->address);
	if (r == DIR_ERROR)
		directory_unreadable(v);
	else
		policy_check_sender(f->login, f->address, r == DIR_OK, "MAIL FROM", v);
}

/* --- RCPT ------------------------------------------------------------------- */

/* Is there room for the message?  Its size is known when MAIL declared SIZE= (RFC
 * 1870 §6.1); otherwise only a mailbox already full is refused here, and the end of
 * data checks again with the real size.  Delivery checks once more. */
static void find_quota(const struct policy_local *l, struct policy_facts *f)
{
	struct quota_state st;
	char err[256];
	enum quota_verdict qv = quota_check(f->maildir, f->declared_size, &st, err, sizeof(err));
	f->maildir_quota = qv == QUOTA_ERROR || st.defined;   /* unreadable now: look again at the end */
	if (qv == QUOTA_FULL) {
		f->rcpt.mailbox_full = true;
		f->rcpt.full_is_permanent = l->conf->quota_full_permanent;
		f->rcpt.quota_used = st.used_bytes;
		f->rcpt.quota_limit = st.limit_bytes;
		f->rcpt.message_size = f->declared_size;
	}
}

bool policy_recipient_maildir(const struct conf *c, struct directory *dir, const char *address,
	struct dir_recipient *dr, char *path, size_t pathsz)
{
	directory_resolve_recipient(dir, c, address, dr);
	if (!directory_recipient_has_mailbox(dr))
		return false;
	if (store_mailbox_path(c->data_dir, dr->mailbox.domain, dr->mailbox.local, path, pathsz))
		return true;
	dr->kind = DIR_RCPT_TEMPFAIL;
	snprintf(dr->error, sizeof(dr->error), "the mailbox path of %.200s is too long", address);
	return false;
}

/* The facts the rules need, from the same resolution delivery uses (local domains
 * from the configuration and the directory, users, aliases, postmaster). */
static void stage_recipient(void *ctx, struct policy_facts *f, struct verdict *v)
{
	(void)v;   /* findings only: the rules after it judge them */
	struct policy_local *l = ctx;
	struct rcpt_facts *r = &f->rcpt;
	*r = (struct rcpt_facts){ .local = f->local, .domain = f->domain, .user = USER_MISSING };
	if (f->bare_postmaster) {
		r->is_postmaster = true;
		r->domain_local = true;
		r->local = "postmaster";
		r->domain = l->conf->hostname;
		return;
	}
	if (f->domain_literal)
		return;
	struct dir_recipient dr;
	bool found = policy_recipient_maildir(l->conf, l->dir, f->address, &dr, f->maildir, sizeof(f->maildir));
	r->domain_local = dr.kind != DIR_RCPT_NOT_LOCAL;
	r->is_postmaster = r->domain_local && strcasecmp(f->local, "postmaster") == 0;
	r->user = found ? USER_FOUND : dr.kind == DIR_RCPT_TEMPFAIL ? USER_LOOKUP_FAILED : USER_MISSING;
	if (dr.kind == DIR_RCPT_TEMPFAIL)
		log_event(LOG_ERR, "directory_error", "conn=%llu error=\"%s\"", f->conn_id, dr.error);
	snprintf(f->home_node, sizeof(f->home_node), "%s", found ? dr.home_node : "");
	r->via_node = f->client.node_peer;
	r->home_node = f->home_node;
	r->this_node = l->conf->cluster_node;
	if (found && !r->is_postmaster)
		find_quota(l, f);
}

/* When the address last checked mail (the POP3 table lives on the loop thread). */
static void stage_pop_before_smtp(void *ctx, struct policy_facts *f, struct verdict *v)
{
	struct policy_local *l = ctx;
	f->client.pop_window = l->conf->pop_before_smtp;
	f->client.pop_login_age = f->client.pop_window && l->pop_login_age ? l->pop_login_age(l->pop_ctx, f->client_addr)
		: -1;
	policy_check_pop_before_smtp(&f->client, &f->rcpt, v);
}

static void stage_relay(void *ctx, struct policy_facts *f, struct verdict *v)
{
	(void)ctx;
	policy_check_relay(&f->client, &f->rcpt, v);
}

static void stage_mailbox(void *ctx, struct policy_facts *f, struct verdict *v)
{
	(void)ctx;
	policy_check_mailbox(&f->rcpt, v);
}

/* --- the From: of a logged-in user's message (RFC 6409 §6.1) ------------------- */

static bool from_wanted(void *ctx, const struct policy_facts *f)
{
	(void)ctx;
	return f->login[0] && f->n_from > 0;
}

static void stage_from_header(void *ctx, struct policy_facts *f, struct verdict *v)
{
	struct policy_local *l = ctx;
	for (size_t i = 0; i < f->n_from; i++) {
		enum dir_result r = directory_sender_owned(l->dir, f->login, f->from[i]);
		if (r == DIR_ERROR) {
			directory_unreadable(v);
			return;
		}
		if (r != DIR_OK) {
			policy_check_sender(f->login, f->from[i], false, "From: header", v);
			v->code = 550;   /* after DATA: 550, not 553 (RFC 5321 §4.3.2) */
			return;
		}
	}
}

/* --- the end of data: does the message fit some recipient's mailbox? ------------ */

static bool is_postmaster(const char *address)
{
	const char *at = strrchr(address, '@');
	return at ? (size_t)(at - address) == 10 && strncasecmp(address, "postmaster", 10) == 0
		: strcasecmp(address, "postmaster") == 0;
}

/* Refused only when every recipient is local and none has room
 * (policy_check_message_quota): a recipient in another domain, or one whose mailbox
 * had no quota at RCPT (it has room for anything), means the message is queued
 * anyway, and nothing is looked up: no thread for the common case.  (A quota set
 * between RCPT and the end of data is left to delivery, which checks again.) */
static bool quota_wanted(void *ctx, const struct policy_facts *f)
{
	(void)ctx;
	for (size_t i = 0; i < f->n_rcpts; i++)
		if (!f->rcpts[i].domain_local || !f->rcpts[i].quota)
			return false;
	return f->n_rcpts > 0;
}

/* The recipients' Maildirs through the same resolution delivery uses (aliases
 * followed), and their quota at the message's real size: the figure delivery checks
 * again (local_deliver).  Postmaster (RFC 5321 §4.5.1), a directory failure or an
 * unreadable quota count as "not checked": delivery retries and says why. */
static void stage_quota(void *ctx, struct policy_facts *f, struct verdict *v)
{
	struct policy_local *l = ctx;
	struct mailbox_room *rooms = calloc(f->n_rcpts ? f->n_rcpts : 1, sizeof(*rooms));
	if (!rooms)
		return;   /* not checked: delivery checks */
	size_t n = 0, other = 0;
	for (size_t i = 0; i < f->n_rcpts; i++) {
		const char *addr = f->rcpts[i].address;
		char path[POLICY_PATH_MAX], err[256];
		struct dir_recipient dr;
		struct quota_state st;
		if (is_postmaster(addr) || !policy_recipient_maildir(l->conf, l->dir, addr, &dr, path, sizeof(path))) {
			other++;
			continue;
		}
		enum quota_verdict qv = quota_check(path, f->message_size, &st, err, sizeof(err));
		if (qv == QUOTA_ERROR) {
			other++;
			continue;
		}
		rooms[n++] = (struct mailbox_room){ .address = addr, .fits = qv == QUOTA_FITS, .used = st.used_bytes,
			.limit = st.limit_bytes };
	}
	struct message_quota_facts mf = { .size = f->message_size, .mailboxes = rooms, .n_mailboxes = n,
		.n_other = other, .full_is_permanent = l->conf->quota_full_permanent };
	char detail[1024];
	enum message_quota mq = policy_check_message_quota(&mf, detail, sizeof(detail));
	free(rooms);
	policy_message_quota_verdict(mq, f->message_size, detail, v);
}

bool policy_add_local_stages(struct policy_pipeline *p, struct policy_local *l)
{
	unsigned t = l->lookup_timeout_ms ? l->lookup_timeout_ms : POLICY_LOOKUP_TIMEOUT_MS;
	const char *dir_words = "the user directory";
	const struct policy_stage stages[] = {
		{ .name = "submission", .points = AT_MAIL, .decide = stage_submission },
		{ .name = "sender", .words = dir_words, .points = AT_MAIL, .does_io = true, .timeout_ms = t,
			.decide = stage_sender, .wanted = sender_wanted },
		{ .name = "recipient", .words = dir_words, .points = AT_RCPT, .does_io = true, .timeout_ms = t,
			.decide = stage_recipient },
		{ .name = "pop-before-smtp", .points = AT_RCPT, .decide = stage_pop_before_smtp },
		{ .name = "relay", .points = AT_RCPT, .decide = stage_relay },
		{ .name = "mailbox", .points = AT_RCPT, .decide = stage_mailbox },
		{ .name = "from-header", .words = dir_words, .points = AT_FROM, .does_io = true, .timeout_ms = t,
			.decide = stage_from_header, .wanted = from_wanted },
		{ .name = "quota", .words = dir_words, .points = AT_EOD, .does_io = true, .timeout_ms = t,
			.decide = stage_quota, .wanted = quota_wanted },
	};
	for (size_t i = 0; i < sizeof(stages) / sizeof(stages[0]); i++) {
		struct policy_stage st = stages[i];
		st.ctx = l;
		if (!policy_pipeline_add(p, &st))
			return false;
	}
	return true;
}
