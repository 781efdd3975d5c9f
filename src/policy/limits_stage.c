/* limits_stage.c - the outbound limits as decision stages (see policy.h,
 * policy_add_limits_stages), and their words.
 *
 * Counted at the commit (serve/smtp.c: a refused message never counts), checked here
 * against the counters in memory (limits.c): at MAIL messages per hour, at RCPT
 * recipients per day with the transaction's recipients, at the end of data the burst.
 * Only the MAIL stage does I/O (the login's override in the directory, on a decision
 * thread, as the sender stage before it); what it found rides in the transaction's
 * findings (f->txn.limits) for the RCPT checks, which run on the loop.  Two sessions
 * of one account checked at the same moment may pass one message each past the limit:
 * the count is of what was sent, not reserved ahead. */
#include "policy/policy.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "conf/conf.h"
#include "directory/directory.h"
#include "util/log.h"
#include "util/text.h"
#include "wire/enh.h"

#define AT_MAIL POLICY_AT(POLICY_AT_MAIL)
#define AT_RCPT POLICY_AT(POLICY_AT_RCPT)
#define AT_EOD POLICY_AT(POLICY_AT_END_OF_DATA)

/* "15:42 UTC (in 12 minutes)" */
static void when_words(long long resume, long long now, char *out, size_t outsz)
{
	time_t t = (time_t)resume;
	struct tm tm;
	char hm[16] = "?";
	if (gmtime_r(&t, &tm))
		strftime(hm, sizeof(hm), "%H:%M", &tm);
	long long mins = (resume - now + 59) / 60;
	if (mins < 1)
		mins = 1;
	if (mins <= 90)
		snprintf(out, outsz, "%s UTC (in %lld minute%s)", hm, mins, mins == 1 ? "" : "s");
	else if (mins % 60 == 0)
		snprintf(out, outsz, "%s UTC (in %lld hour%s)", hm, mins / 60, mins == 60 ? "" : "s");
	else
		snprintf(out, outsz, "%s UTC (in %lld h %lld min)", hm, mins / 60, mins % 60);
}

void policy_limit_verdict(enum limit_kind scope, const char *key, bool messages, bool override,
	unsigned long long limit, unsigned long long count, size_t txn_rcpts, long long resume, long long now,
	struct verdict *v)
{
	char who[POLICY_LOGIN_MAX + 32], whose[POLICY_LOGIN_MAX + 40], reason[VERDICT_REASON_MAX];
	char hint[VERDICT_HINT_MAX], when[64], fix[160];
	bool acct = scope == LIMIT_ACCOUNT;
	text_format_cut(who, sizeof(who), acct ? "You have" : "Your domain %s has", key);
	snprintf(whose, sizeof(whose), acct ? (override ? "set for your account" : "for your account")
		: "for the domain");
	if (messages)
		text_format_cut(reason, sizeof(reason), "%s sent %llu message%s in the last hour; the limit %s is %llu per hour.",
			who, count, count == 1 ? "" : "s", whose, limit);
	else if (txn_rcpts)
		text_format_cut(reason, sizeof(reason), "%s sent to %llu recipient%s in the last 24 hours, and this message has %zu "
			"more; the limit %s is %llu recipients per day.", who, count, count == 1 ? "" : "s", txn_rcpts, whose, limit);
	else
		text_format_cut(reason, sizeof(reason), "%s sent to %llu recipient%s in the last 24 hours; the limit %s is %llu "
			"recipients per day.", who, count, count == 1 ? "" : "s", whose, limit);
	snprintf(fix, sizeof(fix), "If you need a higher limit, ask your administrator (%s).",
		acct ? "postern user limit" : messages ? "[limits] domain_messages_per_hour" : "[limits] domain_recipients_per_day");
	if (resume >= 0) {
		when_words(resume, now, when, sizeof(when));
		text_format_cut(hint, sizeof(hint), "Sending resumes at %s. %s", when, fix);
	} else {
		text_format_cut(hint, sizeof(hint), "This message cannot take more recipients: send it to those accepted, and the "
			"rest in another message later. %s", fix);
	}
	verdict_set(v, VERDICT_TEMP, 451, ENH_TEMP_NOT_AUTHORIZED, CAUSE_SENDING_LIMIT, reason, hint);
}

static void tell(const struct policy_limits_stage *s, const struct policy_facts *f, enum limit_notice_kind kind,
	enum limit_kind scope, const char *key, const char *name, unsigned long long limit, unsigned long long count,
	long long resume, double baseline, long long now)
{
	if (!s->notice || !policy_limits_notice_due(s->counts, scope, key, kind, now))
		return;
	struct policy_limit_notice n = { .kind = kind, .scope = scope, .limit = limit, .count = count, .resume = resume,
		.baseline = baseline, .held = kind == LIMIT_NOTICE_BURST && s->conf->limits_burst_hold };
	snprintf(n.key, sizeof(n.key), "%s", key);
	snprintf(n.limit_name, sizeof(n.limit_name), "%s", name);
	snprintf(n.client_addr, sizeof(n.client_addr), "%s", f->client_addr);
	s->notice(s->notice_ctx, &n);
}

/* Refuse when one more message (extra = 0) or `extra` more recipients would pass the
 * limit of key; logs event=limit_reached and tells the administrator once a day. */
static bool over(const struct policy_limits_stage *s, struct policy_facts *f, enum limit_kind scope, const char *key,
	bool messages, unsigned long long limit, bool override, struct verdict *v)
{
	if (!limit || !key[0])
		return false;
	long long now = (long long)time(NULL);
	unsigned long long extra = f->txn_rcpts + 1;
	struct limit_usage u;
	policy_limits_usage(s->counts, scope, key, now, limit, limit, extra, 1.0, &u);
	unsigned long long count = messages ? u.messages_hour : u.recipients_day;
	if (messages ? count + 1 <= limit : count + extra <= limit)
		return false;
	long long resume = messages ? u.messages_resume : u.recipients_resume;
	const char *name = scope == LIMIT_ACCOUNT ? (messages ? "messages_per_hour" : "recipients_per_day")
		: (messages ? "domain_messages_per_hour" : "domain_recipients_per_day");
	policy_limit_verdict(scope, key, messages, override, limit, count, messages ? 0 : f->txn_rcpts, resume, now, v);
	log_event(LOG_WARN, "limit_reached", "conn=%llu %s=%s limit=%s max=%llu count=%llu resume=%lld",
		f->conn_id, scope == LIMIT_ACCOUNT ? "account" : "domain", key, name, limit,
		messages ? count : count + f->txn_rcpts, resume);
	tell(s, f, LIMIT_NOTICE_REACHED, scope, key, name, limit, messages ? count : count + f->txn_rcpts, resume, 0, now);
	return true;
}

/* --- MAIL: the login's override, then messages per hour ----------------------------- */

/* A login may have limits of its own whatever [limits] says; a trusted network without
 * one has only its domain's. */
static bool mail_wanted(void *ctx, const struct policy_facts *f)
{
	const struct policy_limits_stage *s = ctx;
	if (f->client.authenticated)
		return true;
	return f->client.trusted_network
		&& (s->conf->limits_domain_messages_per_hour || s->conf->limits_domain_recipients_per_day);
}

/* The account's limits: [limits], or the login's own (postern user limit). */
static void account_limits(const struct policy_limits_stage *s, const struct policy_facts *f,
	struct policy_txn_limits *tl)
{
	tl->messages_per_hour = s->conf->limits_messages_per_hour;
	tl->recipients_per_day = s->conf->limits_recipients_per_day;
	const char *at = strrchr(f->login, '@');
	if (!f->login[0] || !at)
		return;
	char local[POLICY_LOGIN_MAX];
	snprintf(local, sizeof(local), "%.*s", (int)(at - f->login), f->login);
	struct dir_user u;
	enum dir_result r = directory_user_lookup(s->dir, local, at + 1, &u);
	if (r == DIR_ERROR)   /* the defaults hold meanwhile: a directory hiccup is no refusal */
		log_event(LOG_WARN, "limits_lookup_failed", "conn=%llu account=%s error=\"%s\"", f->conn_id, f->login,
			directory_error(s->dir));
	if (r != DIR_OK)
		return;
	if (u.limit_messages_per_hour >= 0) {
		tl->messages_per_hour = (unsigned long long)u.limit_messages_per_hour;
		tl->messages_override = true;
	}
	if (u.limit_recipients_per_day >= 0) {
		tl->recipients_per_day = (unsigned long long)u.limit_recipients_per_day;
		tl->recipients_override = true;
	}
}

static void stage_mail(void *ctx, struct policy_facts *f, struct verdict *v)
{
	const struct policy_limits_stage *s = ctx;
	struct policy_txn_limits *tl = &f->txn.limits;
	*tl = (struct policy_txn_limits){ .checked = true };
	if (f->client.authenticated)
		account_limits(s, f, tl);
	policy_limits_sending_domain(f->login, f->null_sender ? "" : f->domain, tl->domain, sizeof(tl->domain));
	f->txn_rcpts = 0;
	if (!over(s, f, LIMIT_ACCOUNT, f->login, true, tl->messages_per_hour, tl->messages_override, v))
		over(s, f, LIMIT_DOMAIN, tl->domain, true, s->conf->limits_domain_messages_per_hour, false, v);
}

/* --- RCPT: recipients per day, this transaction's included ---------------------------- */

static bool rcpt_wanted(void *ctx, const struct policy_facts *f)
{
	(void)ctx;
	return f->txn.limits.checked;
}

static void stage_rcpt(void *ctx, struct policy_facts *f, struct verdict *v)
{
	const struct policy_limits_stage *s = ctx;
	const struct policy_txn_limits *tl = &f->txn.limits;
	if (!over(s, f, LIMIT_ACCOUNT, f->login, false, tl->recipients_per_day, tl->recipients_override, v))
		over(s, f, LIMIT_DOMAIN, tl->domain, false, s->conf->limits_domain_recipients_per_day, false, v);
}

/* --- the end of data: a burst ----------------------------------------------------- */

static bool burst_wanted(void *ctx, const struct policy_facts *f)
{
	const struct policy_limits_stage *s = ctx;
	return f->login[0] && s->conf->limits_burst_factor > 0;
}

/* This message would make the last hour's count burst_factor times the account's
 * usual hourly volume (never below burst_floor): held with burst_hold, logged always. */
static void stage_burst(void *ctx, struct policy_facts *f, struct verdict *v)
{
	(void)v;
	const struct policy_limits_stage *s = ctx;
	long long now = (long long)time(NULL);
	struct limit_usage u;
	double floor = (double)s->conf->limits_burst_floor;
	policy_limits_usage(s->counts, LIMIT_ACCOUNT, f->login, now, 0, 0, 0, floor > 0 ? floor : 1.0, &u);
	unsigned long long hour = u.messages_hour + 1;
	double threshold = u.baseline * (double)s->conf->limits_burst_factor;
	if ((double)hour < threshold)
		return;
	bool hold = s->conf->limits_burst_hold;
	if (hold) {
		char reason[256];
		text_format_cut(reason, sizeof(reason), "held by the outbound limits: %s sent %llu messages in the last hour, %.0f "
			"times its usual %.1f per hour ([limits] burst_factor)", f->login, hour, (double)s->conf->limits_burst_factor,
			u.baseline);
		policy_facts_hold(f, reason);   /* every recipient held at the commit, the reason in its state */
	}
	bool first = policy_limits_notice_due(s->counts, LIMIT_ACCOUNT, f->login, LIMIT_NOTICE_BURST, now);
	if (hold || first)
		log_event(LOG_WARN, "burst", "conn=%llu account=%s count=%llu usual=%.1f factor=%llu held=%s", f->conn_id, f->login,
			hour, u.baseline, (unsigned long long)s->conf->limits_burst_factor, hold ? "yes" : "no");
	if (first && hold && s->notice) {
		struct policy_limit_notice n = { .kind = LIMIT_NOTICE_BURST, .scope = LIMIT_ACCOUNT, .limit = 0, .count = hour,
			.resume = -1, .baseline = u.baseline, .held = true };
		snprintf(n.key, sizeof(n.key), "%s", f->login);
		snprintf(n.limit_name, sizeof(n.limit_name), "burst_factor");
		snprintf(n.client_addr, sizeof(n.client_addr), "%s", f->client_addr);
		s->notice(s->notice_ctx, &n);
	}
}

bool policy_add_limits_stages(struct policy_pipeline *p, struct policy_limits_stage *s)
{
	const struct policy_stage mail = { .name = "limits", .words = "the sending limits (user directory)", .points = AT_MAIL,
		.does_io = true, .timeout_ms = POLICY_LOOKUP_TIMEOUT_MS, .decide = stage_mail, .wanted = mail_wanted, .ctx = s };
	const struct policy_stage rcpt = { .name = "limits_rcpt", .words = "the sending limits", .points = AT_RCPT,
		.decide = stage_rcpt, .wanted = rcpt_wanted, .ctx = s };
	const struct policy_stage burst = { .name = "burst", .words = "the burst check", .points = AT_EOD,
		.decide = stage_burst, .wanted = burst_wanted, .ctx = s };
	return policy_pipeline_add(p, &mail) && policy_pipeline_add(p, &rcpt) && policy_pipeline_add(p, &burst);
}
