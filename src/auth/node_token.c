/* node_token.c - the node token (see node_token.h): HMAC-SHA256 by OpenSSL, base64url
 * without padding (RFC 4648 §5), compared in constant time. */
#include "auth/node_token.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAC_LEN 32          /* SHA-256 */
#define MAC_TEXT_LEN 43     /* base64url of 32 bytes, unpadded */

bool node_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n >= DIR_NODE_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return false;
	}
	return true;
}

bool node_secret_load(const char *path, unsigned char *secret, size_t *len, char *err, size_t errlen)
{
	*len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		snprintf(err, errlen, "[cluster] secret_file: cannot read %s: %s: create it (head -c 48 /dev/urandom | "
			"base64 > %s) with the same content on every node, readable by the server only", path, strerror(errno), path);
		return false;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "[cluster] secret_file: %s is not a regular file: point secret_file at the file "
			"holding the shared secret", path);
		close(fd);
		return false;
	}
	if (st.st_mode & 007) {
		snprintf(err, errlen, "[cluster] secret_file: %s has mode %04o: other users could read or change the secret "
			"that admits a node to the cluster; run: chmod o-rwx %s", path, (unsigned)(st.st_mode & 07777), path);
		close(fd);
		return false;
	}
	unsigned char buf[NODE_SECRET_MAX + 1];
	ssize_t n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "[cluster] secret_file: reading %s: %s", path, strerror(errno));
		return false;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		n--;
	if (n > NODE_SECRET_MAX || n < NODE_SECRET_MIN) {
		snprintf(err, errlen, "[cluster] secret_file: %s holds %s%zd bytes; a secret is %d to %d bytes: write a new one "
			"(head -c 48 /dev/urandom | base64 > %s) and copy it to every node", path, n > NODE_SECRET_MAX ? "more than " : "",
			n > NODE_SECRET_MAX ? (ssize_t)NODE_SECRET_MAX : n, NODE_SECRET_MIN, NODE_SECRET_MAX, path);
		OPENSSL_cleanse(buf, sizeof(buf));
		return false;
	}
	memcpy(secret, buf, (size_t)n);
	*len = (size_t)n;
	OPENSSL_cleanse(buf, sizeof(buf));
	return true;
}

/* base64url(HMAC-SHA256(secret, purpose|node|seconds)) into out (MAC_TEXT_LEN + 1). */
static bool mac_text(const unsigned char *secret, size_t len, const char *purpose, const char *node,
	long long seconds, char *out)
{
	char msg[NODE_TOKEN_MAX + 512];
	int m = snprintf(msg, sizeof(msg), "%s|%s|%lld", purpose, node, seconds);
	if (m < 0 || (size_t)m >= sizeof(msg))
		return false;
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned maclen = 0;
	if (!HMAC(EVP_sha256(), secret, (int)len, (const unsigned char *)msg, (size_t)m, mac, &maclen) || maclen != MAC_LEN)
		return false;
	unsigned char b64[4 * ((MAC_LEN + 2) / 3) + 1];
	EVP_EncodeBlock(b64, mac, MAC_LEN);
	for (size_t i = 0; i < MAC_TEXT_LEN; i++)
		out[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : (char)b64[i];
	out[MAC_TEXT_LEN] = '\0';
	OPENSSL_cleanse(mac, sizeof(mac));
	return true;
}

void node_token_make(const unsigned char *secret, size_t len, const char *purpose, const char *node, time_t now,
	char out[NODE_TOKEN_MAX])
{
	char mac[MAC_TEXT_LEN + 1];
	if (!node_name_valid(node) || !mac_text(secret, len, purpose, node, (long long)now, mac)) {
		out[0] = '\0';
		return;
	}
	snprintf(out, NODE_TOKEN_MAX, "%s.%lld.%s", node, (long long)now, mac);
}

bool node_token_check(const unsigned char *secret, size_t len, const char *purpose, const char *token, time_t now,
	char node_out[DIR_NODE_NAME_MAX])
{
	node_out[0] = '\0';
	const char *dot1 = strchr(token, '.');
	const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
	/* At most 12 digits of seconds (10 last until 2286): the number cannot overflow. */
	if (!dot1 || !dot2 || (size_t)(dot1 - token) >= DIR_NODE_NAME_MAX || dot2 - dot1 < 2 || dot2 - dot1 > 13)
		return false;
	char node[DIR_NODE_NAME_MAX];
	memcpy(node, token, (size_t)(dot1 - token));
	node[dot1 - token] = '\0';
	if (!node_name_valid(node))
		return false;
	snprintf(node_out, DIR_NODE_NAME_MAX, "%s", node);
	/* One spelling per token: "017..." would pass with 17...'s MAC (found by fuzz_node_token). */
	if (dot1[1] == '0')
		return false;
	long long seconds = 0;
	for (const char *p = dot1 + 1; p < dot2; p++) {
		if (*p < '0' || *p > '9')
			return false;
		seconds = seconds * 10 + (*p - '0');
	}
	if (seconds > (long long)now + NODE_TOKEN_SKEW || seconds < (long long)now - NODE_TOKEN_SKEW)
		return false;
	if (strlen(dot2 + 1) != MAC_TEXT_LEN)
		return false;
	char want[MAC_TEXT_LEN + 1];
	if (!mac_text(secret, len, purpose, node, seconds, want))
		return false;
	return CRYPTO_memcmp(want, dot2 + 1, MAC_TEXT_LEN) == 0;
}
