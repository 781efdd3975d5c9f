/* inbound.c - the inbound checks at the end of data (see policy.h,
 * policy_add_inbound_stage): for mail that arrives on an mx listener from a client
 * neither logged in nor trusted, verify its DKIM signatures (RFC 6376), take the SPF
 * result found at MAIL or check SPF now (RFC 7208), evaluate the DMARC policy of every From: domain
 * (RFC 7489), add one Authentication-Results field (RFC 8601) and decide:
 *
 *   p=reject, DMARC fails      550 5.7.1, naming the domain's policy and what failed
 *                              (with dmarc_reject = no: as quarantine)
 *   p=quarantine, DMARC fails  delivered, with [mailauth] dmarc_quarantine_header
 *   a check could not finish   451 4.4.3 (the DNS did not answer): never permanent
 *
 * The words are made in inbound_words.c; this file reads the message and runs the
 * checks, on a decision thread (the stage does I/O: the spool file and the DNS). */
#include "policy/inbound.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "dns/dns.h"
#include "mailauth/authres.h"
#include "mailauth/dkim.h"
#include "mailauth/dmarc.h"
#include "msg/header.h"
#include "util/log.h"

#define HEADER_READ_MAX (256 * 1024)   /* the From: fields must be in the first 256 KiB */

struct policy_inbound {
	const struct conf *conf;
	struct dns_pool *pool;             /* shared with the SPF stage; outlives the stage */
	const struct policy_executor *executor;   /* the DNS threads; NULL: the pipeline's */
	unsigned budget_ms;                /* all DNS of one message ([mailauth] dmarc_timeout) */
};

/* The TXT lookups of one message (DKIM keys, DMARC records): each at most a third of
 * the budget, and none past the message's deadline, whatever the number of
 * signatures and From: domains. */
struct txt_ctx {
	struct dns_resolver *r;
	unsigned per_lookup_ms;
	struct timespec deadline;          /* CLOCK_MONOTONIC */
};

static long long ms_until(const struct timespec *t)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long long)(t->tv_sec - now.tv_sec) * 1000 + (t->tv_nsec - now.tv_nsec) / 1000000;
}

static struct timespec after_ms(unsigned ms)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

static void txt_lookup(void *ctx, const char *name, struct dns_result *res)
{
	const struct txt_ctx *t = ctx;
	long long left = ms_until(&t->deadline);
	if (left <= 0) {
		res->type = DNS_TXT;
		res->rcode = DNS_TIMEOUT;
		snprintf(res->error, sizeof(res->error), "the checks' time ([mailauth] dmarc_timeout) was used up");
		return;
	}
	unsigned ms = left < t->per_lookup_ms ? (unsigned)left : t->per_lookup_ms;
	dns_lookup_within(t->r, DNS_TXT, name, ms ? ms : 1, res);
}

/* The header block of the spooled message (from its start to the empty line, at most
 * HEADER_READ_MAX octets), NUL-terminated in *out (freed by the caller). */
static bool read_header(int fd, const struct policy_facts *f, char **out, size_t *len)
{
	size_t want = f->message_size < HEADER_READ_MAX ? (size_t)f->message_size : HEADER_READ_MAX;
	char *b = malloc(want + 1);
	if (!b)
		return false;
	size_t got = 0;
	while (got < want) {
		ssize_t n = pread(fd, b + got, want - got, (off_t)(f->message_offset + got));
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	b[got] = '\0';
	char *end = strstr(b, "\r\n\r\n");
	char *lf = strstr(b, "\n\n");
	if (lf && (!end || lf < end))
		got = (size_t)(lf - b) + 1;
	else if (end)
		got = (size_t)(end - b) + 2;
	b[got] = '\0';
	*out = b;
	*len = got;
	return true;
}

/* The author domains (RFC 7489 §6.6.1): of every mailbox of every From: field,
 * distinct, at most INBOUND_FROM_MAX.  Returns how many From: fields there were. */
static size_t from_domains(const char *h, size_t hl, struct inbound_check *ck)
{
	size_t fields = msg_header_count(h, hl, "From");
	for (size_t i = 0; i < fields; i++) {
		const char *v;
		size_t vl;
		struct msg_address_list list;
		if (!msg_header_find_nth(h, hl, "From", i, &v, &vl) || msg_parse_address_list(v, vl, &list) != MSG_OK) {
			ck->from_unparsed = true;
			continue;
		}
		for (size_t k = 0; k < list.n; k++) {
			const char *at = strrchr(list.mailboxes[k].addr, '@');
			if (!at || !at[1])
				continue;
			bool seen = false;
			for (size_t j = 0; j < ck->n_from && !seen; j++)
				seen = strcmp(ck->from[j], at + 1) == 0;
			if (seen)
				continue;
			if (ck->n_from == INBOUND_FROM_MAX) {
				ck->from_too_many = true;
				break;
			}
			snprintf(ck->from[ck->n_from++], sizeof(ck->from[0]), "%s", at + 1);
		}
	}
	return fields;
}

static void verify_dkim(struct policy_inbound *in, struct txt_ctx *t, int fd, const struct policy_facts *f,
	struct inbound_check *ck)
{
	struct dkim_verify_options o = { .resolver = t->r, .lookup = txt_lookup, .lookup_arg = t,
		.deadline = after_ms(in->budget_ms / 3) };
	ck->n_dkim = dkim_verify(fd, f->message_offset, f->message_size, &o, ck->dkim, INBOUND_DKIM_MAX);
}

static void evaluate_dmarc(struct txt_ctx *t, const struct policy_facts *f, struct inbound_check *ck)
{
	struct dmarc_dkim_sig sigs[INBOUND_DKIM_MAX];
	for (size_t i = 0; i < ck->n_dkim; i++)
		sigs[i] = (struct dmarc_dkim_sig){ .pass = ck->dkim[i].result == DKIM_PASS,
			.temperror = ck->dkim[i].result == DKIM_TEMPERROR, .d = ck->dkim[i].domain, .words = ck->dkim[i].words };
	const struct spf_outcome *spf = &f->txn.spf;
	struct dmarc_check c = {
		.spf_pass = f->txn.spf_done && spf->result == SPF_PASS,
		.spf_temperror = f->txn.spf_done && spf->result == SPF_TEMPERROR,
		.spf_domain = f->txn.spf_done ? spf->domain : NULL,
		.spf_words = f->txn.spf_done ? spf->words : NULL,
		.dkim = sigs, .n_dkim = ck->n_dkim,
		.sample = arc4random_uniform(100),   /* pct (§6.6.4) */
	};
	struct dmarc_dns dns = { txt_lookup, t };
	for (size_t i = 0; i < ck->n_from; i++) {
		c.from_domain = ck->from[i];
		dmarc_evaluate(&dns, &c, &ck->dmarc[i]);
	}
}

/* SPF, when the MAIL stage did not run it (it runs there only to refuse at MAIL):
 * here in the same trip as DKIM and DMARC, within [mailauth] spf_timeout and what is
 * left of the message's deadline. */
static void check_spf(const struct policy_inbound *in, const struct txt_ctx *t, struct policy_facts *f)
{
	if (f->txn.spf_done || in->conf->mailauth_spf != CONF_SPF_CHECK)
		return;
	long long left = ms_until(&t->deadline);
	unsigned ms = (unsigned)in->conf->mailauth_spf_timeout * 1000u;
	if (left < (long long)ms)
		ms = left > 0 ? (unsigned)left : 1;
	policy_spf_check(in->conf, t->r, "", ms, f);
}

static void stage_inbound(void *ctx, struct policy_facts *f, struct verdict *v)
{
	struct policy_inbound *in = ctx;
	struct inbound_check *ck = calloc(1, sizeof(*ck));
	int fd = open(f->message_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	char *h = NULL, err[DNS_ERR_MAX] = "";
	size_t hl = 0;
	struct txt_ctx t = { dns_pool_take(in->pool, err, sizeof(err)), in->budget_ms / 3, after_ms(in->budget_ms) };
	if (!ck || fd < 0 || !t.r || !read_header(fd, f, &h, &hl)) {
		if (!t.r)
			log_event(LOG_ERR, "dns_resolver_failed", "stage=inbound error=\"%s\"", err);
		inbound_unavailable(v);
		goto out;
	}
	ck->from_fields = from_domains(h, hl, ck);
	check_spf(in, &t, f);
	verify_dkim(in, &t, fd, f, ck);
	evaluate_dmarc(&t, f, ck);
	inbound_decide(in->conf, f, ck, v);
out:
	if (t.r)
		dns_pool_give(in->pool, t.r);
	free(h);
	if (fd >= 0)
		close(fd);
	free(ck);
}

static bool inbound_wanted(void *ctx, const struct policy_facts *f)
{
	const struct policy_inbound *in = ctx;
	/* mx listeners only; a logged-in or trusted client's mail is ours to sign, not check */
	return in->conf->mailauth_dmarc == CONF_DMARC_CHECK && !f->client.submission_port && !f->client.authenticated
		&& !f->client.trusted_network && !conf_is_check_skipped(in->conf, f->client_addr);
}

struct policy_inbound *policy_inbound_new(const struct conf *c, struct dns_pool *pool,
	const struct policy_executor *executor)
{
	struct policy_inbound *in = calloc(1, sizeof(*in));
	if (!in)
		return NULL;
	in->conf = c;
	in->pool = pool;
	in->executor = executor;
	in->budget_ms = (unsigned)(c->dmarc_timeout * 1000);
	if (dmarc_psl_error()[0])
		log_event(LOG_WARN, "psl_missing", "error=\"%s\" effect=\"DMARC aligns only identical domains\"", dmarc_psl_error());
	return in;
}

void policy_inbound_free(struct policy_inbound **inp)
{
	free(*inp);
	*inp = NULL;
}

bool policy_add_inbound_stage(struct policy_pipeline *p, struct policy_inbound *in)
{
	struct policy_stage st = {
		.name = "inbound", .words = "the DKIM and DMARC checks", .points = POLICY_AT(POLICY_AT_END_OF_DATA),
		.does_io = true, .timeout_ms = in->budget_ms + 5000, .decide = stage_inbound, .wanted = inbound_wanted,
		.executor = in->executor, .ctx = in,
	};
	return policy_pipeline_add(p, &st);
}
