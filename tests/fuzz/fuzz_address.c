/* fuzz_address.c - MAIL FROM / RCPT TO arguments.  The first byte picks the mode;
 * on success the path is formatted, and the formatted address must parse again to
 * the same mailbox. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/address.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	bool mail = data[0] & 1;
	size_t len = size - 1;
	char *arg = malloc(len ? len : 1);
	if (!arg)
		return 0;
	memcpy(arg, data + 1, len);
	struct smtp_path p;
	struct smtp_mail_params prm;
	const char *detail = NULL;
	enum smtp_addr_status st = mail ? smtp_parse_mail(arg, len, &p, &prm, &detail)
		: smtp_parse_rcpt(arg, len, &p, &detail);
	if (st != ADDR_OK) {
		if (!detail)
			abort();
		free(arg);
		return 0;
	}
	if (strlen(p.local) > SMTP_LOCAL_MAX || strlen(p.domain) > SMTP_DOMAIN_MAX)
		abort();
	char out[SMTP_ADDR_MAX + 1];
	smtp_path_format(&p, out, sizeof(out));
	if (strlen(out) >= sizeof(out))
		abort();
	/* small buffers never overflow */
	char small[8];
	smtp_path_format(&p, small, sizeof(small));
	if (!p.null && !p.bare_postmaster) {
		/* round trip: "TO:<formatted>" parses to the same mailbox */
		char again[SMTP_ADDR_MAX + 8];
		int n = snprintf(again, sizeof(again), "TO:<%s>", out);
		struct smtp_path q;
		if (n < 0 || (size_t)n >= sizeof(again))
			abort();
		if (smtp_parse_rcpt(again, (size_t)n, &q, &detail) != ADDR_OK) {
			fprintf(stderr, "round trip: \"%s\" does not parse again (%s)\n", again, detail);
			abort();
		}
		if (strcmp(p.local, q.local) != 0 || strcmp(p.domain, q.domain) != 0) {
			fprintf(stderr, "round trip changed the mailbox: \"%s\"\n", again);
			abort();
		}
	}
	free(arg);
	return 0;
}
