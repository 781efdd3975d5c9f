/* test_node_token.c - the node token (auth/node_token.h): a token checks for its own
 * purpose and time window only, names its node, and a changed byte, another secret,
 * another purpose or a stale time are refused; the secret file's rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/node_token.h"

static const unsigned char secret[] = "0123456789abcdef0123456789abcdef-shared";
#define SECRET_LEN (sizeof(secret) - 1)

static void test_round_trip(void **state)
{
	(void)state;
	char tok[NODE_TOKEN_MAX], node[DIR_NODE_NAME_MAX];
	node_token_make(secret, SECRET_LEN, "lmtp", "node-2", 1700000000, tok);
	assert_int_equal(strncmp(tok, "node-2.1700000000.", 18), 0);
	assert_null(strchr(tok, ' '));
	assert_true(node_token_check(secret, SECRET_LEN, "lmtp", tok, 1700000000, node));
	assert_string_equal(node, "node-2");
	assert_true(node_token_check(secret, SECRET_LEN, "lmtp", tok, 1700000000 + NODE_TOKEN_SKEW, node));
	assert_true(node_token_check(secret, SECRET_LEN, "lmtp", tok, 1700000000 - NODE_TOKEN_SKEW, node));
}

static void test_refusals(void **state)
{
	(void)state;
	char tok[NODE_TOKEN_MAX], node[DIR_NODE_NAME_MAX];
	node_token_make(secret, SECRET_LEN, "pop3|192.0.2.1|a@example.test", "node1", 1700000000, tok);
	assert_true(node_token_check(secret, SECRET_LEN, "pop3|192.0.2.1|a@example.test", tok, 1700000000, node));
	/* another purpose, another client, stale, early */
	assert_false(node_token_check(secret, SECRET_LEN, "lmtp", tok, 1700000000, node));
	assert_false(node_token_check(secret, SECRET_LEN, "pop3|192.0.2.2|a@example.test", tok, 1700000000, node));
	assert_false(node_token_check(secret, SECRET_LEN, "pop3|192.0.2.1|a@example.test", tok,
		1700000000 + NODE_TOKEN_SKEW + 1, node));
	assert_string_equal(node, "node1");   /* named, for the words of the refusal */
	assert_false(node_token_check(secret, SECRET_LEN, "pop3|192.0.2.1|a@example.test", tok,
		1700000000 - NODE_TOKEN_SKEW - 1, node));
	/* another secret */
	static const unsigned char other[] = "0123456789abcdef0123456789abcdeX-shared";
	assert_false(node_token_check(other, SECRET_LEN, "pop3|192.0.2.1|a@example.test", tok, 1700000000, node));
	/* each byte of the MAC changed; the node or time changed */
	size_t n = strlen(tok);
	for (size_t i = n - 43; i < n; i++) {
		char bad[NODE_TOKEN_MAX];
		memcpy(bad, tok, n + 1);
		bad[i] = bad[i] == 'A' ? 'B' : 'A';
		assert_false(node_token_check(secret, SECRET_LEN, "pop3|192.0.2.1|a@example.test", bad, 1700000000, node));
	}
	char moved[NODE_TOKEN_MAX];
	memcpy(moved, tok, n + 1);
	moved[4] = '2';   /* node1 -> node2 */
	assert_false(node_token_check(secret, SECRET_LEN, "pop3|192.0.2.1|a@example.test", moved, 1700000000, node));
	memcpy(moved, tok, n + 1);
	moved[15] = moved[15] == '9' ? '8' : '9';   /* the time */
	assert_false(node_token_check(secret, SECRET_LEN, "pop3|192.0.2.1|a@example.test", moved, 1700000000, node));
	/* the same time spelt with a leading zero: one spelling per token */
	char padded[NODE_TOKEN_MAX + 1];
	snprintf(padded, sizeof(padded), "node1.0%s", tok + 6);
	assert_false(node_token_check(secret, SECRET_LEN, "pop3|192.0.2.1|a@example.test", padded, 1700000000, node));
	/* garbage */
	static const char *const junk[] = { "", ".", "..", "node1..", "node1.x.y", "NODE.1700000000.abc",
		"node1.1700000000.", "node1.1700000000.short", "a.b.c.d" };
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
		assert_false(node_token_check(secret, SECRET_LEN, "lmtp", junk[i], 1700000000, node));
	/* a bad node name makes no token */
	node_token_make(secret, SECRET_LEN, "lmtp", "Node 1", 1700000000, tok);
	assert_string_equal(tok, "");
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
}

static void test_secret_file(void **state)
{
	(void)state;
	char dir[] = "/tmp/node_token_XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256], err[512];
	snprintf(path, sizeof(path), "%s/secret", dir);
	unsigned char s[NODE_SECRET_MAX];
	size_t len = 99;
	assert_false(node_secret_load(path, s, &len, err, sizeof(err)));   /* missing */
	assert_non_null(strstr(err, "cannot read"));
	write_file(path, "0123456789abcdef0123456789abcdef\n", 0640);
	assert_true(node_secret_load(path, s, &len, err, sizeof(err)));
	assert_int_equal(len, 32);   /* the newline is not part of it */
	write_file(path, "short\n", 0600);
	assert_false(node_secret_load(path, s, &len, err, sizeof(err)));
	assert_non_null(strstr(err, "holds 5 bytes"));
	write_file(path, "0123456789abcdef0123456789abcdef\n", 0644);
	assert_false(node_secret_load(path, s, &len, err, sizeof(err)));
	assert_non_null(strstr(err, "chmod o-rwx"));
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_secret_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
