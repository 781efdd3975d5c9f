/* fuzz_node_token.c - the node token check (auth/node_token.c): whatever a peer sends
 * after XNODE (LMTP), XCLIENT (POP3, IMAP) or AUTH (the control listener) reaches
 * node_token_check.  The first byte picks the clock (the token's own time, or 1..255 s
 * off it either way), the rest is the token.  A token the check accepts must be the
 * one node_token_make gives for the node and time it names: nothing else may pass. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/node_token.h"

static const unsigned char secret[] = "fuzz-secret-fuzz-secret-fuzz-secret-0123";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 2 * NODE_TOKEN_MAX)
		return 0;
	char token[2 * NODE_TOKEN_MAX + 1];
	memcpy(token, data + 1, size - 1);
	token[size - 1] = '\0';
	/* The token's seconds field, when it has one, so the clock may sit near it. */
	const char *dot = strchr(token, '.');
	long long t = dot ? strtoll(dot + 1, NULL, 10) : 0;
	if (t < 0 || t > 4000000000LL)
		t = 0;
	int off = (int)data[0] - 128;
	char node[DIR_NODE_NAME_MAX];
	bool ok = node_token_check(secret, sizeof(secret) - 1, "control", token, (time_t)(t + off), node);
	if (ok) {
		char want[NODE_TOKEN_MAX];
		node_token_make(secret, sizeof(secret) - 1, "control", node, (time_t)t, want);
		if (strcmp(want, token) != 0 || off > NODE_TOKEN_SKEW || off < -NODE_TOKEN_SKEW)
			abort();
	}
	if (strlen(node) >= DIR_NODE_NAME_MAX || (node[0] && !node_name_valid(node)))
		abort();
	return 0;
}
