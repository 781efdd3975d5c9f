/* spf_stage.c - SPF (RFC 7208) at MAIL FROM as a decision stage (see policy.h,
 * policy_add_spf_stage).  On mx listeners, for a client neither logged in nor
 * trusted, the sender's domain (postmaster@HELO for <>) and the HELO name are
 * checked on a decision thread with a resolver from the pool, the result is logged
 * (event=spf) and kept as a finding for the end-of-data checks (DMARC,
 * Authentication-Results).  Nothing is refused unless [mailauth] spf_fail_refuse
 * says so, and then only a fail by a record that publishes -all (550 5.7.23, RFC
 * 7372 §3.2); a DNS failure is never a refusal here.
 *
 * The stage runs at MAIL only when it may refuse there (spf_fail_refuse = yes) or
 * when no end-of-data check would use the result (dmarc = off): otherwise every
 * MAIL would wait for a DNS round trip (up to spf_timeout when the resolver does not
 * answer) for a result read only after DATA, and the inbound stage runs the same
 * check (policy_spf_check) in its own trip, under its deadline. */
#include "policy/policy.h"

#include "conf/conf.h"
#include "dns/dns.h"
#include "mailauth/spf.h"
#include "util/log.h"
#include "wire/enh.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define AT_MAIL POLICY_AT(POLICY_AT_MAIL)
#define SPF_STAGE_GRACE_MS 5000   /* the stage's timeout: the check's own, and this */

static bool spf_wanted(void *ctx, const struct policy_facts *f)
{
	const struct policy_spf *s = ctx;
	/* Logged-in users and trusted networks send for our own domains: their mail is
	 * signed, not checked (DESIGN: checking is for mail from the Internet). */
	if (s->conf->mailauth_spf != CONF_SPF_CHECK || f->client.submission_port || f->client.authenticated ||
		f->client.trusted_network || conf_is_check_skipped(s->conf, f->client_addr))
		return false;
	/* At MAIL only when it can refuse there, or nothing later would check it. */
	return s->conf->mailauth_spf_fail_refuse || s->conf->mailauth_dmarc != CONF_DMARC_CHECK;
}

static void log_outcome(const struct policy_facts *f, const struct spf_outcome *o, unsigned long long ms)
{
	char domain[300], words[SPF_WORDS_MAX + 64], mech[SPF_MECHANISM_MAX + 32], helo[300];
	log_event(o->result == SPF_TEMPERROR ? LOG_WARN : LOG_INFO, "spf",
		"conn=%llu result=%s identity=%s domain=%s ip=%s mechanism=%s helo_result=%s helo=%s ms=%llu words=%s",
		f->conn_id, spf_result_name(o->result), o->identity == SPF_ID_HELO ? "helo" : "mailfrom",
		log_quote(domain, sizeof(domain), o->domain, strlen(o->domain), 255), o->client_ip,
		log_quote(mech, sizeof(mech), o->mechanism, strlen(o->mechanism), 100),
		o->helo.checked ? spf_result_name(o->helo.result) : "-",
		log_quote(helo, sizeof(helo), o->helo.domain, strlen(o->helo.domain), 255), ms,
		log_quote(words, sizeof(words), o->words, strlen(o->words), SPF_WORDS_MAX));
}

/* RFC 7372 §3.2: 5.7.23 "SPF validation failed". */
static void refuse_fail(const struct spf_outcome *o, struct verdict *v)
{
	char reason[VERDICT_REASON_MAX], hint[VERDICT_HINT_MAX];
	/* The words name the domain, the client and the record's term (and its exp=). */
	snprintf(reason, sizeof(reason), "%.*s", (int)sizeof(reason) - 1, o->words);
	snprintf(hint, sizeof(hint), "If the mail is genuine, the administrator of %.100s must list the server that "
		"sent it (%s) in the domain's SPF record (RFC 7208), or the sender must send through a server it lists",
		o->domain, o->client_ip);
	verdict_set(v, VERDICT_PERM, 550, ENH_PERM_SPF_FAILED, CAUSE_SPF_FAIL, reason, hint);
}

void policy_spf_check(const struct conf *c, struct dns_resolver *r, const char *err, unsigned timeout_ms,
	struct policy_facts *f)
{
	struct spf_outcome *o = &f->txn.spf;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (!r) {
		/* No resolver: as if the DNS did not answer (temperror, never a refusal). */
		memset(o, 0, sizeof(*o));
		o->result = SPF_TEMPERROR;
		snprintf(o->domain, sizeof(o->domain), "%s", f->null_sender ? f->helo : f->domain);
		snprintf(o->client_ip, sizeof(o->client_ip), "%.47s", f->client_addr);
		snprintf(o->words, sizeof(o->words), "the SPF check could not start: %s", err);
	} else {
		struct spf_dns dns = { .lookup = spf_dns_resolver_lookup, .ctx = r };
		struct spf_request rq = { .client_ip = f->client_addr, .helo = f->helo,
			.sender = f->null_sender ? "" : f->address, .receiver = c->hostname,
			.timeout_ms = timeout_ms ? timeout_ms : 1, .check_helo = true };
		spf_check(&rq, &dns, o);
	}
	f->txn.spf_done = true;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	log_outcome(f, o, (unsigned long long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000));
}

static void stage_spf(void *ctx, struct policy_facts *f, struct verdict *v)
{
	struct policy_spf *s = ctx;
	char err[DNS_ERR_MAX] = "";
	struct dns_resolver *r = dns_pool_take(s->pool, err, sizeof(err));
	policy_spf_check(s->conf, r, err, s->timeout_ms, f);
	if (r)
		dns_pool_give(s->pool, r);
	const struct spf_outcome *o = &f->txn.spf;
	if (s->conf->mailauth_spf_fail_refuse && o->result == SPF_FAIL && o->record_has_fail_all)
		refuse_fail(o, v);
}

/* [mailauth] skip_networks: mail from this host (a web application, cron) is not
 * checked, as Postfix's policyd-spf skip_addresses and rspamd's local_addrs do: its
 * envelope and From: name our own domains, whose SPF and DMARC records do not list
 * a loopback address, and an unreachable resolver would hold every such message
 * for the DNS time-outs.  Said once per transaction, at MAIL, on the loop. */
static bool skip_wanted(void *ctx, const struct policy_facts *f)
{
	const struct policy_spf *s = ctx;
	return (s->conf->mailauth_spf == CONF_SPF_CHECK || s->conf->mailauth_dmarc == CONF_DMARC_CHECK) &&
		!f->client.submission_port && !f->client.authenticated && !f->client.trusted_network &&
		conf_is_check_skipped(s->conf, f->client_addr);
}

static void stage_skip(void *ctx, struct policy_facts *f, struct verdict *v)
{
	(void)ctx;
	(void)v;
	log_event(LOG_INFO, "spf", "conn=%llu result=skipped ip=%s reason=\"the client is in [mailauth] skip_networks: "
		"no SPF, DKIM or DMARC checks\"", f->conn_id, f->client_addr);
}

/* The timeout words name the domain: "the SPF check of example.com". */
static const char *spf_words(void *ctx, const struct policy_facts *f, char *out, size_t outsz)
{
	(void)ctx;
	snprintf(out, outsz, "the SPF check of %.*s", (int)(outsz > 40 ? outsz - 40 : 1),
		f->null_sender ? (f->helo[0] ? f->helo : "the HELO name") : f->domain);
	return out;
}

bool policy_add_spf_stage(struct policy_pipeline *p, struct policy_spf *s)
{
	s->timeout_ms = (unsigned)s->conf->mailauth_spf_timeout * 1000u;
	const struct policy_stage st = { .name = "spf", .words = "the SPF check of the sender's domain",
		.points = AT_MAIL, .does_io = true, .timeout_ms = s->timeout_ms + SPF_STAGE_GRACE_MS,
		.decide = stage_spf, .wanted = spf_wanted, .describe = spf_words, .executor = s->executor, .ctx = s };
	const struct policy_stage skip = { .name = "mailauth_skip", .words = "the skip_networks test",
		.points = AT_MAIL, .decide = stage_skip, .wanted = skip_wanted, .ctx = s };
	return policy_pipeline_add(p, &skip) && policy_pipeline_add(p, &st);
}
