/* fuzz_dmarc.c - the DMARC record parser (mailauth/dmarc_record.c) on any bytes, and
 * the Authentication-Results value quoting on the same bytes: the parser stays inside
 * its input and returns a record that holds together; a quoted value never carries a
 * line end or a bare quote out of its quotes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mailauth/authres.h"
#include "mailauth/dmarc.h"

static void check_record(const struct dmarc_record *r)
{
	if (r->pct > 100 || strlen(r->rua) >= sizeof(r->rua) || strlen(r->ruf) >= sizeof(r->ruf))
		__builtin_trap();
	if (strlen(r->fo) >= sizeof(r->fo) || strlen(r->rf) >= sizeof(r->rf))
		__builtin_trap();
	if ((unsigned)r->p > DMARC_P_REJECT || (unsigned)r->sp > DMARC_P_REJECT || (unsigned)r->adkim > DMARC_STRICT)
		__builtin_trap();
}

static void check_value(const char *v)
{
	char out[300];
	size_t n = authres_value(out, sizeof(out), v, false);
	if (n != strlen(out) || n >= sizeof(out))
		__builtin_trap();
	for (size_t i = 0; i < n; i++)
		if (out[i] == '\r' || out[i] == '\n')
			__builtin_trap();
	if (out[0] == '"') {
		/* every quote inside is escaped; the string ends with the closing quote */
		size_t i = 1;
		for (; i < n; i++) {
			if (out[i] == '\\') {
				i++;
				continue;
			}
			if (out[i] == '"')
				break;
		}
		if (i != n - 1)
			__builtin_trap();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dmarc_record r;
	char why[160];
	char *copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);   /* exactly size bytes: an overread is caught */
	enum dmarc_parse st = dmarc_record_parse(copy, size, &r, why, sizeof(why));
	if (st == DMARC_PARSE_OK)
		check_record(&r);
	if (strlen(why) >= sizeof(why))
		__builtin_trap();
	free(copy);
	char v[256];
	size_t n = size < sizeof(v) - 1 ? size : sizeof(v) - 1;
	memcpy(v, data, n);
	v[n] = '\0';
	check_value(v);
	return 0;
}
