/* signing.c - the DKIM signing stage at END_OF_DATA (RFC 6376 §5, mailauth/dkim.h):
 * mail that a logged-in user or a trusted network sends to another domain is signed
 * with the active keys of its From: domain, once, last among the stages (after any
 * content change), on a decision thread (signing never blocks the event loop).  The
 * DKIM-Signature fields go in front of the message through policy_facts_add_header;
 * what earlier stages added (Authentication-Results) is not signed. */
#include "policy/policy.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "mailauth/dkim.h"
#include "util/log.h"

#define SIGN_TIMEOUT_MS 10000
#define SIGNERS_MAX 2   /* one rsa, one ed25519 */

/* Outbound from our own users only: a logged-in client or a trusted network, with at
 * least one recipient in another domain (mail between local mailboxes never leaves). */
static bool signing_wanted(void *ctx, const struct policy_facts *f)
{
	const struct conf *c = ((const struct policy_signing *)ctx)->conf;
	if (!c->dkim_signing || f->point != POLICY_AT_END_OF_DATA)
		return false;
	if (!f->client.authenticated && !f->client.trusted_network)
		return false;
	for (size_t i = 0; i < f->n_rcpts; i++)
		if (!f->rcpts[i].domain_local)
			return true;
	return false;
}

static void add_fields(struct policy_facts *f, struct buf *fields, const struct dkim_signer *s, size_t n,
	const char *domain)
{
	char selectors[160] = "";
	for (size_t i = 0; i < n; i++) {
		if (!policy_facts_add_header(f, buf_cstr(&fields[i]))) {
			log_event(LOG_WARN, "dkim_sign_failed", "conn=%llu domain=%s reason=\"the added header block is full\"",
				f->conn_id, domain);
			return;
		}
		size_t used = strlen(selectors);
		snprintf(selectors + used, sizeof(selectors) - used, "%s%s:%s", i ? "," : "", s[i].selector,
			s[i].alg == DKIM_ALG_RSA_SHA256 ? "rsa-sha256" : "ed25519-sha256");
	}
	log_event(LOG_INFO, "dkim_signed", "conn=%llu domain=%s selectors=%s", f->conn_id, domain, selectors);
}

/* A message that cannot be signed (no key for its From: domain, a key file that cannot
 * be read) still goes: unsigned mail may be junked, refused mail is lost to the user.
 * The log line says why. */
static void stage_sign(void *ctx, struct policy_facts *f, struct verdict *v)
{
	struct policy_signing *ps = ctx;
	(void)v;
	char domain[DNS_NAME_MAX], err[512];
	int fd = open(f->message_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || !dkim_from_domain(fd, f->message_offset, f->message_size, domain, sizeof(domain))) {
		log_event(LOG_INFO, "dkim_unsigned", "conn=%llu reason=\"%s\"", f->conn_id,
			fd < 0 ? "the spooled message cannot be opened" : "no single From: address to sign for");
		if (fd >= 0)
			close(fd);
		return;
	}
	struct dkim_signer signers[SIGNERS_MAX];
	size_t n = dkim_key_cache_signers(ps->keys, domain, signers, SIGNERS_MAX, err, sizeof(err));
	if (n == 0) {
		log_event(LOG_DEBUG, "dkim_unsigned", "conn=%llu domain=%s reason=\"no active DKIM key\"", f->conn_id, domain);
		close(fd);
		return;
	}
	struct buf fields[SIGNERS_MAX];
	for (size_t i = 0; i < SIGNERS_MAX; i++)
		buf_init(&fields[i], DKIM_FIELD_MAX);
	if (dkim_sign(fd, f->message_offset, f->message_size, signers, n, time(NULL), fields, err, sizeof(err)))
		add_fields(f, fields, signers, n, domain);
	else
		log_event(LOG_WARN, "dkim_sign_failed", "conn=%llu domain=%s reason=\"%s\"", f->conn_id, domain, err);
	for (size_t i = 0; i < SIGNERS_MAX; i++)
		buf_free(&fields[i]);
	for (size_t i = 0; i < n; i++)
		dkim_signer_free(&signers[i]);
	close(fd);
}

bool policy_signing_init(struct policy_signing *s, const struct conf *c)
{
	s->conf = c;
	s->keys = dkim_key_cache_new(c->data_dir);
	s->executor = NULL;   /* the pipeline's, unless the server gives it threads */
	return s->keys != NULL;
}

void policy_signing_free(struct policy_signing *s)
{
	dkim_key_cache_free(&s->keys);
}

bool policy_add_signing_stage(struct policy_pipeline *p, struct policy_signing *s)
{
	struct policy_stage st = {
		.name = "dkim_sign",
		.words = "the DKIM signing",
		.points = POLICY_AT(POLICY_AT_END_OF_DATA),
		.does_io = true,
		.timeout_ms = SIGN_TIMEOUT_MS,
		.decide = stage_sign,
		.wanted = signing_wanted,
		.executor = s->executor,
		.ctx = s,
	};
	return policy_pipeline_add(p, &st);
}
