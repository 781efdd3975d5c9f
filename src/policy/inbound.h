/* inbound.h - what the two files of the inbound checks share (inbound.c runs the
 * checks, inbound_words.c turns what they found into the Authentication-Results
 * field, the quarantine field and the verdict).  Private to src/policy/; the room's
 * interface is policy.h (policy_add_inbound_stage). */
#ifndef POSTERN_POLICY_INBOUND_H
#define POSTERN_POLICY_INBOUND_H

#include <stdbool.h>
#include <stddef.h>

#include "mailauth/dkim.h"
#include "mailauth/dmarc.h"
#include "policy/policy.h"

#define INBOUND_FROM_MAX 8   /* author domains evaluated; more make the check a permerror */
#define INBOUND_DKIM_MAX 8   /* signatures verified */

/* What the checks of one message found. */
struct inbound_check {
	size_t from_fields;                          /* From: fields in the header */
	bool from_unparsed;                          /* one of them held no valid address */
	bool from_too_many;                          /* more than INBOUND_FROM_MAX domains */
	char from[INBOUND_FROM_MAX][DMARC_DOMAIN_MAX];   /* the author domains, distinct */
	size_t n_from;
	struct dkim_outcome dkim[INBOUND_DKIM_MAX];
	size_t n_dkim;
	struct dmarc_outcome dmarc[INBOUND_FROM_MAX];   /* one per author domain */
};

struct conf;
struct authres;

/* The Authentication-Results field for what was found (RFC 8601). */
void inbound_authres(const char *authserv_id, const struct policy_facts *f, const struct inbound_check *ck,
	struct authres *a);
/* Add the fields and set the verdict: the strictest disposition over every author
 * domain (reject, then temporary, then quarantine). */
void inbound_decide(const struct conf *c, struct policy_facts *f, const struct inbound_check *ck, struct verdict *v);
/* The message or the DNS could not be read at all: 451 4.3.0. */
void inbound_unavailable(struct verdict *v);

#endif
