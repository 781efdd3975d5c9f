/* secure.h - how delivery secures its connection to each MX host, deciding between
 * the three regimes (RFC 8461 §2: DANE takes precedence over MTA-STS):
 *   DANE (dane.h)       the host's TLSA records are DNSSEC-secure: TLS required,
 *                       the peer authenticated by them;
 *   MTA-STS (mta_sts.h) the domain has a policy: in enforce mode only the MX hosts
 *                       it names, only over TLS with a certificate valid for the MX
 *                       name (WebPKI); in testing mode deliver, but log what would
 *                       have failed;
 *   opportunistic       STARTTLS when offered, as before.
 * And the words when a host cannot be used or a connection does not meet the
 * regime, for the queue, the delay notice and the bounce. */
#ifndef POSTERN_DELIVERY_SECURE_H
#define POSTERN_DELIVERY_SECURE_H

#include <stdbool.h>
#include <stddef.h>

#include "delivery/dane.h"
#include "delivery/mta_sts.h"
#include "delivery/smtp_client.h"
#include "net/client.h"

struct conf;
struct dns_resolver;
struct mx_host;

enum host_security {
	HOST_SEC_OPPORTUNISTIC,
	HOST_SEC_DANE,
	HOST_SEC_DANE_TLS_ONLY,     /* TLSA records, none usable: encrypt only */
	HOST_SEC_STS_ENFORCE,
	HOST_SEC_STS_TESTING,
};

struct host_plan {
	enum host_security sec;
	enum smtp_tls_policy tls;
	struct net_tls_params tp;
	const char *names[1];       /* the next-hop domain: RFC 7672 §3.2.2 */
	const char *host, *domain, *qid;
	const struct dane_host *dane;
	const struct sts_found *sts;
	bool sts_mx_ok;             /* testing mode: the host is one the policy names */
	char skip[800];             /* the host must not be used: why */
	char skip_enh[8];
};

/* The policy of the destination domain, logged as event=mta_sts. */
void secure_sts_lookup(const struct sts_context *cx, const char *qid, const char *domain, struct sts_found *out);

/* Plan the connection to host h of domain.  False: the host is not to be used
 * (p->skip, p->skip_enh say why).  dane is the caller's storage for the records. */
bool secure_plan(const struct conf *c, struct dns_resolver *r, const char *qid, const char *domain,
	const struct mx_host *h, bool mx_secure, const struct sts_found *sts, struct dane_host *dane,
	struct host_plan *p);

/* Opening failed at `step` with err: true when it failed the host's security
 * regime, with the words and status for the recipient; false for any other failure. */
bool secure_failure(const struct host_plan *p, enum smtp_open_step step, const char *err, char *words, size_t wsz,
	char *enh, size_t enhsz);

/* Opened: log what was verified (event=dane; event=mta_sts for testing mode). */
void secure_opened(const struct host_plan *p, struct net_client *conn);

#endif
