/* address.h - the MAIL FROM / RCPT TO argument: a path and its ESMTP parameters.
 *
 * RFC 5321 §4.1.2 (Path, Mailbox, Local-part, Domain, address-literal), §4.1.1.2-3,
 * RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 3030 BINARYMIME, RFC 6531 SMTPUTF8,
 * RFC 4954 AUTH=.  Pure: no state, no I/O. */
#ifndef POSTERN_SMTP_ADDRESS_H
#define POSTERN_SMTP_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 5321 §4.5.3.1: local-part 64 octets, domain 255, path 256.  UTF-8 local parts
 * (RFC 6531) may need more octets than ASCII ones; we keep the RFC bound on the
 * whole path and a generous one on the local part. */
#define SMTP_LOCAL_MAX 128
#define SMTP_DOMAIN_MAX 255
#define SMTP_ADDR_MAX (SMTP_LOCAL_MAX + 3 + SMTP_DOMAIN_MAX)   /* formatted, quoted */

struct smtp_path {
	bool null;                        /* <> */
	bool bare_postmaster;             /* <postmaster> with no domain (RFC 5321 §4.1.1.3) */
	bool source_route;                /* had an @a,@b: route, which is ignored */
	bool utf8;                        /* non-ASCII bytes in local part or domain */
	bool domain_literal;              /* [192.0.2.1] or [IPv6:...] */
	char local[SMTP_LOCAL_MAX + 1];   /* unquoted form (quotes and escapes removed) */
	char domain[SMTP_DOMAIN_MAX + 1]; /* lower-cased; literal kept with brackets */
};

enum smtp_body_type { BODY_7BIT = 0, BODY_8BITMIME, BODY_BINARYMIME };

struct smtp_mail_params {
	bool size_set;
	uint64_t size;
	enum smtp_body_type body;
	bool smtputf8;
	bool auth_set;                    /* AUTH=<mailbox> (RFC 4954 §5), kept for later */
	int ret;                          /* RFC 3461 RET: 0 none, 1 FULL, 2 HDRS */
	char envid[101];                  /* RFC 3461 ENVID, xtext decoded; "" if none */
};

/* RFC 3461 §4.1-4.2 recipient parameters. */
#define SMTP_NOTIFY_NEVER 1
#define SMTP_NOTIFY_SUCCESS 2
#define SMTP_NOTIFY_FAILURE 4
#define SMTP_NOTIFY_DELAY 8

struct smtp_rcpt_params {
	unsigned char notify;             /* 0: not given */
	char orcpt[SMTP_ADDR_MAX + 16];   /* "rfc822;addr" decoded, or "" */
};

enum smtp_addr_status {
	ADDR_OK = 0,
	ADDR_NO_KEYWORD,      /* missing "FROM:" / "TO:"            501 5.5.4 */
	ADDR_SYNTAX,          /* path is not a valid mailbox         501 5.1.3 (RCPT) / 5.1.7 (MAIL) */
	ADDR_TOO_LONG,        /* over the RFC 5321 §4.5.3.1 limits   501 5.1.3 */
	ADDR_NULL_RCPT,       /* RCPT TO:<>                          501 5.1.3 */
	ADDR_PARAM_SYNTAX,    /* malformed parameter                 501 5.5.4 */
	ADDR_PARAM_UNKNOWN,   /* unrecognised parameter              555 5.5.4 */
};

/* arg is what follows "MAIL " / "RCPT " (e.g. "FROM:<a@b> SIZE=10").  On failure
 * *detail points to a static phrase saying what is wrong. */
enum smtp_addr_status smtp_parse_mail(const char *arg, size_t len, struct smtp_path *path,
	struct smtp_mail_params *params, const char **detail);
enum smtp_addr_status smtp_parse_rcpt(const char *arg, size_t len, struct smtp_path *path,
	const char **detail);
/* The same, keeping the DSN parameters. */
enum smtp_addr_status smtp_parse_rcpt_dsn(const char *arg, size_t len, struct smtp_path *path,
	struct smtp_rcpt_params *params, const char **detail);
/* RFC 3461 §4 xtext: "+XX" escapes; false if malformed or too long. */
bool smtp_xtext_decode(const char *in, size_t n, char *out, size_t outsz);

/* "local@domain", the local part quoted again if it needs it; "" for the null path,
 * "postmaster" for the bare one.  Returns out. */
const char *smtp_path_format(const struct smtp_path *p, char *out, size_t outsz);

#endif
