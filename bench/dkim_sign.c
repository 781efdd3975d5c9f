/* dkim_sign.c - `bench_dkim_sign`: the cost of one DKIM signature per message, as the
 * signing stage pays it (mailauth/dkim.h).  Makes an rsa-2048 and an ed25519 key in a
 * temporary data directory, writes a message (a 1 KiB and a 100 KiB body), then for
 * each key type times N rounds of (a) dkim_sign alone, the key loaded once, (b) the
 * signing stage's work: the key cache asked, the message signed, and (c) the key file
 * read and parsed each time (what the cache saves).  Prints CPU microseconds per message (one thread).  Bounded: N rounds (default 300) and at
 * most 20 s per case.  Usage: bench_dkim_sign [ROUNDS] */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mailauth/dkim.h"

#define CASE_SECONDS 20.0

/* CPU time of this process: the cost itself, whatever else loads the machine (wall
 * time bounds the case). */
static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int write_message(const char *dir, size_t body_kib)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/msg-%zu.eml", dir, body_kib);
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	fprintf(f, "Received: from client by bench.example.test\r\nFrom: Bench <bench@example.test>\r\n"
		"To: someone@remote.test\r\nSubject: a benchmark message\r\nDate: Tue, 01 Dec 2026 12:00:00 +0000\r\n"
		"Message-ID: <bench@example.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n");
	for (size_t i = 0; i < body_kib * 16; i++)
		fprintf(f, "%.62s\r\n", "the quick brown fox jumps over the lazy dog, again and again...");
	fclose(f);
	return open(path, O_RDONLY);
}

static double run_cached(const char *dir, int fd, const char *selector, int rounds, int *done)
{
	char err[512];
	struct dkim_key_cache *cache = dkim_key_cache_new(dir);
	struct dkim_signer s[2];
	struct buf field[2];
	buf_init(&field[0], DKIM_FIELD_MAX);
	buf_init(&field[1], DKIM_FIELD_MAX);
	double t0 = now_s(), c0 = cpu_s();
	for (*done = 0; *done < rounds && now_s() - t0 < CASE_SECONDS; (*done)++) {
		size_t n = dkim_key_cache_signers(cache, "example.test", s, 2, err, sizeof(err));
		size_t pick = strcmp(s[0].selector, selector) == 0 ? 0 : 1;
		if (n != 2 || !dkim_sign(fd, 0, DKIM_TO_END_OF_FILE, &s[pick], 1, time(NULL), &field[0], err, sizeof(err)))
			exit(1);
		dkim_signer_free(&s[0]);
		dkim_signer_free(&s[1]);
	}
	double us = (cpu_s() - c0) * 1e6 / (*done ? *done : 1);
	dkim_key_cache_free(&cache);
	buf_free(&field[0]);
	buf_free(&field[1]);
	return us;
}

enum mode { KEY_KEPT, KEY_CACHED, KEY_READ };

/* CPU microseconds per message.  KEY_KEPT: dkim_sign alone; KEY_CACHED: the signing
 * stage's work (the key cache asked, then the signature); KEY_READ: the key file read
 * and parsed every time. */
static double run(const char *dir, int fd, const char *selector, enum mode mode, int rounds, int *done)
{
	if (mode == KEY_CACHED)
		return run_cached(dir, fd, selector, rounds, done);
	bool with_load = mode == KEY_READ;
	char err[512], pem[512];
	snprintf(pem, sizeof(pem), "%s/dkim/example.test/%s.pem", dir, selector);
	struct dkim_signer s;
	struct buf field;
	buf_init(&field, DKIM_FIELD_MAX);
	if (!with_load && !dkim_signer_load(&s, "example.test", selector, pem, err, sizeof(err))) {
		fprintf(stderr, "bench_dkim_sign: %s\n", err);
		exit(1);
	}
	double t0 = now_s(), c0 = cpu_s();
	for (*done = 0; *done < rounds && now_s() - t0 < CASE_SECONDS; (*done)++) {
		if (with_load && !dkim_signer_load(&s, "example.test", selector, pem, err, sizeof(err)))
			exit(1);
		if (!dkim_sign(fd, 0, DKIM_TO_END_OF_FILE, &s, 1, time(NULL), &field, err, sizeof(err))) {
			fprintf(stderr, "bench_dkim_sign: %s\n", err);
			exit(1);
		}
		if (with_load)
			dkim_signer_free(&s);
	}
	double us = (cpu_s() - c0) * 1e6 / (*done ? *done : 1);
	if (!with_load)
		dkim_signer_free(&s);
	buf_free(&field);
	return us;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 300;
	char dir[] = "/tmp/bench_dkim_XXXXXX";
	if (rounds <= 0 || !mkdtemp(dir))
		return 1;
	struct dkim_key_info ki;
	char err[512];
	if (!dkim_key_generate(dir, "example.test", "rsa", DKIM_ALG_RSA_SHA256, 2048, &ki, err, sizeof(err))
		|| !dkim_key_generate(dir, "example.test", "ed", DKIM_ALG_ED25519_SHA256, 0, &ki, err, sizeof(err))) {
		fprintf(stderr, "bench_dkim_sign: %s\n", err);
		return 1;
	}
	printf("\nDKIM signing cost per message (CPU microseconds; %d rounds each, at most %.0f s)\n", rounds,
		CASE_SECONDS);
	printf("%-10s %-8s %16s %22s %20s\n", "key", "body", "sign (key kept)", "stage (cached keys)", "key file read + sign");
	const size_t sizes[] = { 1, 100 };
	for (size_t i = 0; i < 2; i++) {
		int fd = write_message(dir, sizes[i]);
		if (fd < 0)
			return 1;
		const char *sels[] = { "rsa", "ed" }, *names[] = { "rsa-2048", "ed25519" };
		for (size_t k = 0; k < 2; k++) {
			int n1 = 0, n2 = 0, n3 = 0;
			double a = run(dir, fd, sels[k], KEY_KEPT, rounds, &n1);
			double b = run(dir, fd, sels[k], KEY_CACHED, rounds, &n2);
			double c = run(dir, fd, sels[k], KEY_READ, rounds, &n3);
			char body[16];
			snprintf(body, sizeof(body), "%zu KiB", sizes[i]);
			printf("%-10s %-8s %16.1f %22.1f %20.1f\n", names[k], body, a, b, c);
		}
		close(fd);
	}
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : 1;
}
