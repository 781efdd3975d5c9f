/* policy.c - recipient decisions (see policy.h).
 *
 * Never an open relay (DESIGN invariant 2): a recipient outside the local domains is
 * accepted only from a logged-in client or a trusted network.  Local parts are never
 * interpreted as routes: "user%other@local", "other!user@local" and
 * "\"user@other\"@local" are just local parts that do not exist here. */
#include "policy/policy.h"

#include "util/parse.h"
#include "wire/enh.h"

#include <stdio.h>
#include <string.h>

void verdict_set(struct verdict *v, enum verdict_kind k, int code, const char *enh,
	enum refusal_cause cause, const char *reason, const char *hint)
{
	v->kind = k;
	v->code = code;
	v->enh = enh;
	v->cause = cause;
	snprintf(v->reason, sizeof(v->reason), "%s", reason ? reason : "");
	snprintf(v->hint, sizeof(v->hint), "%s", hint ? hint : "");
}

static const char *const hint_relay =
	"To send to other domains, log in first: in your mail program turn on "
	"\"My outgoing server (SMTP) requires authentication\" with the same user name and "
	"password as for incoming mail, and use the submission port (587 with STARTTLS, or 465 with SSL/TLS)";

/* "42 minutes", "1 minute", "45 seconds" */
static const char *time_words(unsigned long long s, char *out, size_t outsz)
{
	if (s >= 120)
		snprintf(out, outsz, "%llu minutes", s / 60);
	else if (s >= 60)
		snprintf(out, outsz, "1 minute");
	else
		snprintf(out, outsz, "%llu second%s", s, s == 1 ? "" : "s");
	return out;
}

/* No room in a local mailbox (RFC 3463 X.2.2).  With a declared SIZE that does not
 * fit (RFC 1870 §6.1: the size is known at RCPT), say how much room is left; a
 * message larger than the whole quota can never be delivered, so it is refused
 * permanently whatever full_is_permanent says. */
static void mailbox_full(const struct rcpt_facts *f, struct verdict *v)
{
	char reason[VERDICT_REASON_MAX];
	char u[32], l[32], left[32], m[32];
	unsigned long long room = f->quota_used < f->quota_limit ? f->quota_limit - f->quota_used : 0;
	bool never_fits = f->quota_limit && f->message_size > f->quota_limit;
	if (f->message_size && room)
		snprintf(reason, sizeof(reason), "the mailbox of %.64s@%.100s has %s left (%s of %s used), "
			"and the message is %s (declared with SIZE)", f->local, f->domain, format_size(room, left, sizeof(left)),
			format_size(f->quota_used, u, sizeof(u)), format_size(f->quota_limit, l, sizeof(l)),
			format_size(f->message_size, m, sizeof(m)));
	else if (!f->quota_limit)
		snprintf(reason, sizeof(reason), "the mailbox of %.64s@%.100s is full (it holds as many messages as "
			"it may)", f->local, f->domain);
	else
		snprintf(reason, sizeof(reason), "the mailbox of %.64s@%.100s is full (%s of %s used)", f->local,
			f->domain, format_size(f->quota_used, u, sizeof(u)), format_size(f->quota_limit, l, sizeof(l)));
	if (never_fits)
		verdict_set(v, VERDICT_PERM, 552, ENH_PERM_MAILBOX_FULL, CAUSE_MAILBOX_FULL, reason,
			"The message is larger than the whole mailbox: send a smaller one, e.g. share large files by link");
	else if (f->full_is_permanent)
		verdict_set(v, VERDICT_PERM, 552, ENH_PERM_MAILBOX_FULL, CAUSE_MAILBOX_FULL, reason,
			"The owner of the mailbox must delete mail before more can arrive; send again later");
	else
		verdict_set(v, VERDICT_TEMP, 452, ENH_TEMP_MAILBOX_FULL, CAUSE_MAILBOX_FULL, reason,
			"The owner of the mailbox must delete mail; your mail program will try again later");
}

static bool relay_allowed(const struct policy_client *c)
{
	bool pop_ok = c->pop_window && c->pop_login_age >= 0 && (unsigned long long)c->pop_login_age <= c->pop_window;
	return c->authenticated || c->trusted_network || pop_ok;
}

/* Only a recipient in another domain is relayed; postmaster is always taken. */
static bool is_relay(const struct rcpt_facts *f)
{
	return !f->is_postmaster && !f->domain_local;
}

void policy_check_pop_before_smtp(const struct policy_client *c, const struct rcpt_facts *f, struct verdict *v)
{
	verdict_set(v, VERDICT_OK, 250, ENH_OK_DEST_VALID, CAUSE_NONE, "", "");
	if (!is_relay(f) || relay_allowed(c) || !c->pop_window || c->pop_login_age < 0)
		return;
	char reason[VERDICT_REASON_MAX];
	char ago[32], win[32];
	snprintf(reason, sizeof(reason),
		"relaying denied: you last checked mail %s ago; this server relays for %s "
		"after a mail check (POP-before-SMTP), and you have not logged in",
		time_words((unsigned long long)c->pop_login_age, ago, sizeof(ago)),
		time_words(c->pop_window, win, sizeof(win)));
	verdict_set(v, VERDICT_PERM, 554, ENH_PERM_NOT_AUTHORIZED, CAUSE_POP_EXPIRED, reason,
		"Check for new mail and send again at once, or better: turn on \"My outgoing server (SMTP) "
		"requires authentication\" so sending never depends on when you last checked mail");
}

void policy_check_relay(const struct policy_client *c, const struct rcpt_facts *f, struct verdict *v)
{
	verdict_set(v, VERDICT_OK, 250, ENH_OK_DEST_VALID, CAUSE_NONE, "", "");
	if (!is_relay(f) || relay_allowed(c))
		return;
	char reason[VERDICT_REASON_MAX];
	snprintf(reason, sizeof(reason),
		"relaying denied: %s is not a domain of this server, and this server only relays "
		"mail for clients that have logged in; you have not logged in",
		f->domain);
	verdict_set(v, VERDICT_PERM, 554, ENH_PERM_NOT_AUTHORIZED, CAUSE_RELAY_NOT_LOGGED_IN, reason, hint_relay);
}

void policy_check_mailbox(const struct rcpt_facts *f, struct verdict *v)
{
	verdict_set(v, VERDICT_OK, 250, ENH_OK_DEST_VALID, CAUSE_NONE, "", "");
	if (f->is_postmaster || !f->domain_local)
		return;   /* RFC 5321 §4.5.1: postmaster must be accepted, whatever else is true */
	switch (f->user) {
	case USER_FOUND:
		if (f->via_node && f->home_node && f->home_node[0] && f->this_node && strcmp(f->home_node, f->this_node) != 0) {
			/* A node hands a user's mail only to the user's home node (LMTP, §K). */
			char reason[VERDICT_REASON_MAX];
			snprintf(reason, sizeof(reason), "the mailbox of \"%.64s@%.128s\" lives on its home node %.32s, not on "
				"this node (%.32s)", f->local, f->domain, f->home_node, f->this_node);
			verdict_set(v, VERDICT_PERM, 550, ENH_PERM_BAD_MAILBOX, CAUSE_UNKNOWN_USER, reason,
				"The sending node's view of the user's home node is out of date; it should deliver to that node");
			return;
		}
		if (f->mailbox_full)
			mailbox_full(f, v);
		return;
	case USER_LOOKUP_FAILED:
		verdict_set(v, VERDICT_TEMP, 451, ENH_TEMP_SYSTEM, CAUSE_LOOKUP_FAILED,
			"temporary failure: the user directory could not be read",
			"Nothing is lost: your mail program will try again later");
		return;
	case USER_MISSING: {
		char reason[VERDICT_REASON_MAX];
		snprintf(reason, sizeof(reason), "no mailbox named \"%.64s\" here at %.128s", f->local, f->domain);
		verdict_set(v, VERDICT_PERM, 550, ENH_PERM_BAD_MAILBOX, CAUSE_UNKNOWN_USER, reason,
			"Check the spelling of the address, or ask the recipient for the right one");
		return;
	}
	}
}

/* The three rules in the order the decision pipeline runs them (local.c). */
void policy_check_rcpt(const struct policy_client *c, const struct rcpt_facts *f, struct verdict *v)
{
	policy_check_pop_before_smtp(c, f, v);
	if (v->kind == VERDICT_OK)
		policy_check_relay(c, f, v);
	if (v->kind == VERDICT_OK)
		policy_check_mailbox(f, v);
}

#define ROOMS_NAMED 3   /* mailboxes named in the end-of-data refusal */

static void room_words(const struct mailbox_room *m, bool alone, char *out, size_t outsz)
{
	char u[32], l[32], left[32];
	const char *pre = alone ? "the mailbox of " : "";
	if (!m->limit)
		snprintf(out, outsz, "%s%.200s is full (it holds as many messages as it may)", pre, m->address);
	else if (m->used < m->limit)
		snprintf(out, outsz, "%s%.200s has %s left (%s of %s used)", pre, m->address,
			format_size(m->limit - m->used, left, sizeof(left)), format_size(m->used, u, sizeof(u)),
			format_size(m->limit, l, sizeof(l)));
	else
		snprintf(out, outsz, "%s%.200s is full (%s of %s used)", pre, m->address, format_size(m->used, u, sizeof(u)),
			format_size(m->limit, l, sizeof(l)));
}

enum message_quota policy_check_message_quota(const struct message_quota_facts *f, char *detail, size_t detailsz)
{
	if (detailsz)
		detail[0] = '\0';
	if (f->n_other > 0 || f->n_mailboxes == 0)
		return MQ_ACCEPT;
	bool larger = true;
	for (size_t i = 0; i < f->n_mailboxes; i++) {
		if (f->mailboxes[i].fits)
			return MQ_ACCEPT;
		if (!f->mailboxes[i].limit || f->size <= f->mailboxes[i].limit)
			larger = false;
	}
	size_t len = 0;
	if (f->n_mailboxes > 1)
		len = (size_t)snprintf(detail, detailsz, "no recipient's mailbox has room for it: ");
	for (size_t i = 0; i < f->n_mailboxes && i < ROOMS_NAMED && len < detailsz; i++) {
		char w[400];
		room_words(&f->mailboxes[i], f->n_mailboxes == 1, w, sizeof(w));
		len += (size_t)snprintf(detail + len, detailsz - len, "%s%s", i ? "; " : "", w);
	}
	if (f->n_mailboxes > ROOMS_NAMED && len < detailsz)
		snprintf(detail + len, detailsz - len, "; and %zu more", f->n_mailboxes - ROOMS_NAMED);
	if (larger)
		return MQ_LARGER;
	return f->full_is_permanent ? MQ_FULL_PERMANENT : MQ_FULL;
}

void policy_message_quota_verdict(enum message_quota mq, unsigned long long size, const char *detail,
	struct verdict *v)
{
	char reason[VERDICT_REASON_MAX], sz[32];
	snprintf(reason, sizeof(reason), "it is %s, and %s", format_size(size, sz, sizeof(sz)), detail);
	switch (mq) {
	case MQ_ACCEPT:
		verdict_set(v, VERDICT_OK, 250, ENH_OK, CAUSE_NONE, "", "");
		return;
	case MQ_FULL:
		verdict_set(v, VERDICT_TEMP, 452, ENH_TEMP_MAILBOX_FULL, CAUSE_MAILBOX_FULL, reason,
			"The owner of the mailbox must delete mail; your mail program will try again later");
		return;
	case MQ_FULL_PERMANENT:
		verdict_set(v, VERDICT_PERM, 552, ENH_PERM_MAILBOX_FULL, CAUSE_MAILBOX_FULL, reason,
			"The owner of the mailbox must delete mail before more can arrive; send again later");
		return;
	case MQ_LARGER:
		verdict_set(v, VERDICT_PERM, 552, ENH_PERM_MAILBOX_FULL, CAUSE_MAILBOX_FULL, reason,
			"The message is larger than the whole mailbox: send a smaller one, e.g. share large files by link");
		return;
	}
}

void policy_check_mail(const struct policy_client *c, struct verdict *v)
{
	if (c->submission_port && !c->authenticated) {
		verdict_set(v, VERDICT_PERM, 530, ENH_PERM_SECURITY, CAUSE_AUTH_REQUIRED,
			"authentication required: this is a submission port, and it accepts mail only from users who have logged in",
			"Turn on \"My outgoing server (SMTP) requires authentication\" in your mail program, with the same "
			"user name and password as for incoming mail");
		return;
	}
	verdict_set(v, VERDICT_OK, 250, ENH_OK_ADDRESS, CAUSE_NONE, "", "");
}

void policy_check_sender(const char *login, const char *address, bool owned, const char *where, struct verdict *v)
{
	if (owned) {
		verdict_set(v, VERDICT_OK, 250, ENH_OK_ADDRESS, CAUSE_NONE, "", "");
		return;
	}
	char reason[VERDICT_REASON_MAX], hint[VERDICT_HINT_MAX];
	if (snprintf(reason, sizeof(reason), "sender address rejected: you are logged in as %.100s, and %.100s is not one of your addresses (%s)",
		login, address[0] ? address : "<>", where) >= (int)sizeof(reason))
		reason[sizeof(reason) - 1] = '\0';
	snprintf(hint, sizeof(hint), "Send from the address you log in with (%.120s), or ask your administrator to allow this address for you", login);
	verdict_set(v, VERDICT_PERM, 553, ENH_PERM_NOT_AUTHORIZED, CAUSE_SENDER_NOT_OWNED, reason, hint);
}

bool policy_cause_is_guess(enum refusal_cause c)
{
	return c == CAUSE_UNKNOWN_USER || c == CAUSE_RELAY_NOT_LOGGED_IN || c == CAUSE_POP_EXPIRED;
}

/* The cause id of data/explain.ini's fixed list (what `postern explain` names) for each
 * refusal cause: the label of postern_refusals_total.  A cause without a row counts as
 * "unknown" (test_refusal_ids checks that every row is a valid id). */
static const char *const cause_ids[CAUSE_COUNT] = {
	[CAUSE_RELAY_NOT_LOGGED_IN] = "not_authenticated", [CAUSE_UNKNOWN_USER] = "unknown_recipient",
	[CAUSE_LOOKUP_FAILED] = "server_unavailable", [CAUSE_BAD_ADDRESS] = "syntax_error",
	[CAUSE_NON_ASCII_ADDRESS] = "syntax_error", [CAUSE_TOO_MANY_RECIPIENTS] = "throttled",
	[CAUSE_AUTH_REQUIRED] = "not_authenticated", [CAUSE_SENDER_NOT_OWNED] = "sender_not_owned",
	[CAUSE_TLS_REQUIRED] = "tls_required", [CAUSE_AUTH_FAILED] = "wrong_credentials",
	[CAUSE_THROTTLED] = "throttled", [CAUSE_MAILBOX_FULL] = "mailbox_full",
	[CAUSE_POP_EXPIRED] = "pop_before_smtp_expired", [CAUSE_STAGE_TIMEOUT] = "server_unavailable",
	[CAUSE_SPF_FAIL] = "spf_failed", [CAUSE_SENDER_UNAUTHENTICATED] = "dmarc_failed",
	[CAUSE_AUTH_CHECK_TEMPFAIL] = "sender_authentication_failed", [CAUSE_EDIT_FAILED] = "server_unavailable",
	[CAUSE_CONTENT_FILTER] = "spam_or_policy", [CAUSE_FILTER_UNAVAILABLE] = "server_unavailable",
	[CAUSE_SENDING_LIMIT] = "throttled",
};

const char *policy_cause_id(enum refusal_cause c)
{
	return (unsigned)c < CAUSE_COUNT && cause_ids[c] ? cause_ids[c] : "unknown";
}

const char *policy_cause_name(enum refusal_cause c)
{
	switch (c) {
	case CAUSE_NONE: return "accepted";
	case CAUSE_RELAY_NOT_LOGGED_IN: return "not logged in (relaying denied)";
	case CAUSE_UNKNOWN_USER: return "no such mailbox here";
	case CAUSE_LOOKUP_FAILED: return "temporary directory failure";
	case CAUSE_BAD_ADDRESS: return "not a valid address";
	case CAUSE_NON_ASCII_ADDRESS: return "non-ASCII address without SMTPUTF8";
	case CAUSE_TOO_MANY_RECIPIENTS: return "too many recipients";
	case CAUSE_AUTH_REQUIRED: return "not logged in (authentication required)";
	case CAUSE_SENDER_NOT_OWNED: return "sender address not owned by the login";
	case CAUSE_TLS_REQUIRED: return "login attempted without TLS";
	case CAUSE_AUTH_FAILED: return "login failed";
	case CAUSE_THROTTLED: return "blocked after failed logins";
	case CAUSE_MAILBOX_FULL: return "mailbox full";
	case CAUSE_POP_EXPIRED: return "POP-before-SMTP window expired";
	case CAUSE_STAGE_TIMEOUT: return "a check did not answer in time";
	case CAUSE_SPF_FAIL: return "the sender's domain does not allow this server (SPF fail)";
	case CAUSE_SENDER_UNAUTHENTICATED: return "the sender's domain did not confirm the message (DMARC)";
	case CAUSE_AUTH_CHECK_TEMPFAIL: return "a DKIM or DMARC check could not finish";
	case CAUSE_EDIT_FAILED: return "the content filter's changes could not be stored";
	case CAUSE_CONTENT_FILTER: return "the content filter refused it";
	case CAUSE_FILTER_UNAVAILABLE: return "the content filter did not answer";
	case CAUSE_SENDING_LIMIT: return "the sending limit is reached";
	case CAUSE_COUNT: break;
	}
	return "refused";
}

const char *policy_best_fix(const unsigned counts[CAUSE_COUNT])
{
	/* The most useful fix first.  A failed login explains the refusals after it, so
	 * the reason the login failed comes before "not logged in". */
	if (counts[CAUSE_TLS_REQUIRED])
		return "Fix: set the outgoing server's security to STARTTLS (port 587) or SSL/TLS (port 465): "
			"this server accepts passwords only over an encrypted connection";
	if (counts[CAUSE_THROTTLED])
		return "Fix: wait until the block ends, then check the password saved in every device that sends mail with this account";
	if (counts[CAUSE_AUTH_FAILED])
		return "Fix: check the user name (your full email address) and the password; an app password made "
			"for this device works too (your administrator creates one with: postern app-password add)";
	if (counts[CAUSE_SENDER_NOT_OWNED])
		return "Fix: send from the address you log in with, or ask your administrator to allow this address for you";
	if (counts[CAUSE_POP_EXPIRED])
		return "Fix: turn on \"My outgoing server (SMTP) requires authentication\" in your mail program; "
			"until then, check for new mail right before sending";
	if (counts[CAUSE_RELAY_NOT_LOGGED_IN] || counts[CAUSE_AUTH_REQUIRED])
		return "Fix: log in before sending: turn on \"My outgoing server (SMTP) requires authentication\" in your mail "
			"program, with the same user name and password as for incoming mail";
	if (counts[CAUSE_SPF_FAIL])
		return "Fix: send through a server your domain's SPF record lists (usually your provider's outgoing server, "
			"after logging in), or have the domain's administrator add this server to the record";
	if (counts[CAUSE_SENDING_LIMIT])
		return "Fix: wait until the sending limit allows more (the refusal above says when), or ask your "
			"administrator for a higher limit";
	if (counts[CAUSE_UNKNOWN_USER])
		return "Fix: check the recipient addresses for typing mistakes";
	if (counts[CAUSE_MAILBOX_FULL])
		return "Fix: nothing in your mail program: the recipient must delete mail; send again later";
	if (counts[CAUSE_BAD_ADDRESS] || counts[CAUSE_NON_ASCII_ADDRESS])
		return "Fix: correct the recipient addresses; they are not valid mail addresses";
	if (counts[CAUSE_LOOKUP_FAILED] || counts[CAUSE_STAGE_TIMEOUT])
		return "Fix: nothing on your side; try again in a few minutes";
	if (counts[CAUSE_TOO_MANY_RECIPIENTS])
		return "Fix: send to fewer recipients per message";
	return "Fix: give at least one recipient this server accepts, with RCPT TO";
}
