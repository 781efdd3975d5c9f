/* fuzz_uidlist.c - dovecot-uidlist text as found on disk (written by Dovecot, by a
 * crashed writer, or by anyone with access to the Maildir).  The reader must not
 * crash; what it keeps must hold: UIDs ascending and non-zero, next UID above every
 * one, names without "/" or control bytes; and what it writes must read back the
 * same (the round trip the IMAP store relies on when it rewrites the list). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/uidlist.h"

static void die(const char *why)
{
	fprintf(stderr, "violation: %s\n", why);
	abort();
}

static void check(const struct uidlist *ul)
{
	for (size_t i = 0; i < ul->n; i++) {
		const struct uidlist_rec *r = &ul->recs[i];
		if (r->uid == 0 || (i && r->uid <= ul->recs[i - 1].uid))
			die("UIDs not ascending");
		if (r->uid >= ul->nextuid && r->uid != UINT32_MAX)
			die("next UID not above a UID");
		for (const char *p = r->name; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == '/')
				die("bad byte in a name");
		if (!r->name[0])
			die("empty name");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct uidlist ul;
	if (!uidlist_parse((const char *)data, size, &ul, NULL))
		return 0;
	check(&ul);
	if (!ul.guid[0])
		memcpy(ul.guid, "00000000000000000000000000000000", 33);
	size_t len;
	char *text = uidlist_format(&ul, &len);
	if (!text)
		die("format failed");
	struct uidlist again;
	if (!uidlist_parse(text, len, &again, NULL))
		die("own output unreadable");
	check(&again);
	if (again.n != ul.n || again.uidvalidity != ul.uidvalidity || again.nextuid != ul.nextuid)
		die("round trip changed the list");
	for (size_t i = 0; i < ul.n; i++)
		if (again.recs[i].uid != ul.recs[i].uid || strcmp(again.recs[i].name, ul.recs[i].name) != 0)
			die("round trip changed a record");
	free(text);
	uidlist_free(&again);
	uidlist_free(&ul);
	return 0;
}
