/* spf_internal.h - what spf.c (check_host) and spf_check.c (identities, words) share;
 * not for other rooms, which use mailauth/spf.h. */
#ifndef POSTERN_MAILAUTH_SPF_INTERNAL_H
#define POSTERN_MAILAUTH_SPF_INTERNAL_H

#include <stdint.h>
#include <sys/socket.h>

#include "mailauth/spf.h"

/* RFC 7208 §4.6.4 */
#define SPF_DNS_TERMS_MAX 10
#define SPF_VOID_MAX 2
#define SPF_MX_MAX 10
#define SPF_PTR_MAX 10

#define SPF_WHY_MAX 400

enum lookup_outcome { LOOKUP_OK, LOOKUP_VOID, LOOKUP_ERROR };
enum match_outcome { MATCH_NO, MATCH_YES, MATCH_TEMPERROR, MATCH_PERMERROR };

/* One evaluation of one identity. */
struct spf_eval {
	const struct spf_dns *dns;
	uint64_t deadline;               /* monotonic ms */
	unsigned timeout_ms;
	int family;                      /* AF_INET / AF_INET6 */
	unsigned char ip[16];
	struct spf_macro_vars vars;      /* domain is set per record */
	unsigned terms, voids;
	bool ptr_done, ptr_void, ptr_void_counted;
	char validated[SPF_PTR_MAX][SPF_DOMAIN_MAX];
	size_t n_validated;
	char why[SPF_WHY_MAX];                   /* why a temperror / permerror / none */
};

/* What check_host() found for one domain. */
struct host_result {
	enum spf_result result;
	char domain[SPF_DOMAIN_MAX];     /* the record that decided (after redirect=) */
	char mechanism[SPF_MECHANISM_MAX];
	bool record_has_fail_all;
	char exp[SPF_DOMAIN_MAX];        /* that record's exp= domain-spec, as written */
};

enum lookup_outcome spf_lookup(struct spf_eval *e, enum dns_type type, const char *name, struct dns_result *res);
void spf_check_host(struct spf_eval *e, const char *domain, unsigned depth, struct host_result *out);
void spf_explain(struct spf_eval *e, const struct host_result *hr, char *out, size_t outsz);
/* %{p} (vars.validated_name; ctx is the struct spf_eval). */
const char *spf_validated_name(void *ctx, const char *domain);

#endif
