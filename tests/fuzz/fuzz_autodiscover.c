/* fuzz_autodiscover.c - the Autodiscover POX request scanner (web/autodiscover.c) on
 * any bytes: it stays inside its input, its fields stay terminated within their
 * sizes, and what it returns goes through the address check and the response and
 * error renderers, whose escaped output never carries a raw '<' or '&' of the input. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "directory/directory.h"
#include "web/autodiscover.h"

/* Every '<' in the escaped text is markup the renderer wrote, never input: check the
 * escaped value alone. */
static void check_escaped(const char *in)
{
	struct buf b;
	buf_init(&b, 8 * AUTOCONFIG_ADDRESS_MAX);
	autoconfig_xml_escape(&b, in);
	const char *x = buf_cstr(&b);
	for (const char *p = x; *p; p++) {
		if (*p == '<' || *p == '>' || *p == '"' || *p == '\'')
			__builtin_trap();
		if (*p == '&' && strncmp(p, "&amp;", 5) && strncmp(p, "&lt;", 4) && strncmp(p, "&gt;", 4) &&
			strncmp(p, "&quot;", 6) && strncmp(p, "&apos;", 6))
			__builtin_trap();
		if ((unsigned char)*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r')
			__builtin_trap();
	}
	buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct autodiscover_request r;
	bool ok = autodiscover_parse((const char *)data, size, &r);
	if (strnlen(r.address, sizeof r.address) == sizeof r.address ||
		strnlen(r.schema, sizeof r.schema) == sizeof r.schema ||
		strnlen(r.error, sizeof r.error) == sizeof r.error)
		__builtin_trap();
	if (!ok && r.error[0] == '\0')
		__builtin_trap();      /* every refusal says why */
	struct buf out;
	buf_init(&out, AUTOCONFIG_DOCUMENT_MAX);
	if (!ok) {
		autodiscover_render_error(AUTODISCOVER_ERR_INVALID, r.error, &out);
		buf_free(&out);
		return 0;
	}
	check_escaped(r.address);
	check_escaped(r.schema);
	struct autoconfig_settings s;
	autoconfig_settings_init(&s, "mx.example.test");
	autoconfig_settings_add(&s, ROLE_SUBMISSION, TLS_IMPLICIT, 465);
	autoconfig_settings_add(&s, ROLE_POP3, TLS_IMPLICIT, 995);
	char domain[DIR_ADDRESS_MAX];
	if (autoconfig_address_valid(r.address, domain, sizeof domain)) {
		if (!strchr(r.address, '@') || strlen(domain) == 0)
			__builtin_trap();
		if (!autodiscover_render(&s, r.address, &out) || out.truncated)
			__builtin_trap();
	}
	buf_free(&out);
	return 0;
}
