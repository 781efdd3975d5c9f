/* mta_sts.h - SMTP MTA Strict Transport Security (RFC 8461) for delivery.
 *
 * The parts: the TXT record at _mta-sts.DOMAIN (§3.1) and the policy file served at
 * https://mta-sts.DOMAIN/.well-known/mta-sts.txt (§3.2), parsed strictly (both
 * come from the network); MX matching (§4.1); and sts_policy_for(), which finds the
 * policy that applies to a domain: the cached one while its id is current and its
 * max_age lasts, otherwise a fresh fetch over HTTPS with the certificate checked
 * (§3.3), kept in <data_dir>/mta-sts/ (§5.1).  Blocking: it runs on delivery
 * threads, every step bounded in time and size. */
#ifndef POSTERN_DELIVERY_MTA_STS_H
#define POSTERN_DELIVERY_MTA_STS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define STS_ID_MAX 33            /* §3.1: 1*32 alphanumerics */
#define STS_MAX_MX 16
#define STS_POLICY_MAX (64u << 10)   /* §3.3: senders may limit the size; 64 KiB */
#define STS_MAX_AGE_MAX 31557600u    /* §3.2: at most about a year */
#define STS_FETCH_RETRY_S 600        /* a failed fetch is not repeated sooner (§3.3) */

enum sts_mode { STS_MODE_NONE, STS_MODE_TESTING, STS_MODE_ENFORCE };

struct sts_policy {
	enum sts_mode mode;
	char mx[STS_MAX_MX][256];   /* patterns, lower case, "*.example.net" allowed */
	size_t n_mx;
	uint32_t max_age;           /* seconds */
};

/* §3.1: "v=STSv1; id=...;" with optional other fields.  False (err says) for a
 * record that is not a valid STSv1 record. */
bool sts_parse_txt(const char *txt, size_t len, char *id, size_t idsz, char *err, size_t errlen);
/* §3.2: version, mode, max_age, mx lines ("key: value", LF or CRLF). */
bool sts_parse_policy(const char *text, size_t len, struct sts_policy *p, char *err, size_t errlen);
/* §4.1: host matches one of the policy's mx patterns (a "*." matches exactly one
 * leftmost label). */
bool sts_mx_matches(const struct sts_policy *p, const char *host);
const char *sts_mode_name(enum sts_mode m);

/* What applies to a domain now. */
struct sts_found {
	bool have;                   /* a policy applies (any mode) */
	struct sts_policy policy;
	char id[STS_ID_MAX];
	char source[16];             /* "fetched", "cached" */
	char note[600];              /* why there is none, or what went wrong on the way */
};

struct dns_resolver;
struct net_cancel;
struct sts_context {
	struct dns_resolver *resolver;
	const char *data_dir;        /* the cache lives in <data_dir>/mta-sts/ */
	const char *ca_file;         /* extra CAs for the HTTPS fetch, or NULL */
	unsigned port;               /* 443 */
	unsigned timeout_ms;         /* per connect and per read of the fetch */
	const struct net_cancel *cancel;
};

void sts_policy_for(const struct sts_context *cx, const char *domain, time_t now, struct sts_found *out);

/* Parts, for tests and fuzzing: an HTTP/1.x response (status line, headers, body)
 * as fetched; the body is the policy text.  False (err says) for anything but a
 * 200 with a text/plain body (§3.2), redirects included (§3.3). */
bool sts_http_response(const char *resp, size_t len, const char **body, size_t *body_len, char *err, size_t errlen);

#endif
