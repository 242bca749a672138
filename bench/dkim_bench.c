/*
 * dkim_bench: the cost of DKIM-signing one message (issue 5), per
 * algorithm, with the signer sluiced uses (src/message/dkim.c): a fresh
 * RSA-2048 and Ed25519 key, a message of SIZE body bytes (4096 default)
 * with the usual headers, signed N times (2000 default) after a warm-up.
 * Prints microseconds per message and messages per second of one core.
 *
 *   dkim_bench [N] [SIZE]      (built by bench/dkim.sh)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "message/message.h"

static double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double bench_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 2000, size = argc > 2 ? atol(argv[2]) : 4096;
	static const char *const names[] = {"rsa-sha256 (2048)", "ed25519-sha256"};
	struct buf msg = BUF_INIT, out = BUF_INIT;
	const char *why = NULL;

	if (n <= 0 || size < 0 || size > 64 * 1024 * 1024)
		return 2;
	buf_append_str(&msg,
	               "Received: from client.example (client.example [192.0.2.1])\r\n"
	               "\tby mx.example.net with ESMTPS id 0123456789abcdef\r\n"
	               "\tfor <bob@example.org>; Mon, 30 Nov 2026 06:00:00 +0000\r\n"
	               "From: Alice <alice@acme.example>\r\nTo: Bob <bob@example.org>\r\n"
	               "Subject: a benchmark message\r\nDate: Mon, 30 Nov 2026 06:00:00 +0000\r\n"
	               "Message-ID: <bench.1@acme.example>\r\nMIME-Version: 1.0\r\n"
	               "Content-Type: text/plain; charset=utf-8\r\n\r\n");
	for (long i = 0; i < size; i += 64)
		buf_append_str(&msg,
		               "The quick brown fox jumps over the lazy dog, 0123456789 ab\r\n");
	printf("message: %zu bytes, %ld signatures per algorithm\n", msg.len, n);
	for (int a = 0; a < 2; a++) {
		struct buf pem = BUF_INIT;
		struct dkim_key *key = NULL;
		struct dkim_sign_params p = {.domain = "acme.example",
		                             .selector = a ? "s20261130e" : "s20261130r",
		                             .timestamp = 1796018400};
		double t0, c0, wall, cpu;

		if (dkim_key_generate(a ? DKIM_ALG_ED25519_SHA256 : DKIM_ALG_RSA_SHA256, &pem,
		                      &why) < 0 ||
		    dkim_key_from_pem(pem.data, pem.len, &key, &why) < 0) {
			fprintf(stderr, "dkim_bench: %s\n", why);
			return 1;
		}
		for (int w = 0; w < 20; w++) {
			buf_reset(&out);
			dkim_sign(key, &p, msg.data, msg.len, &out, &why);
		}
		t0 = bench_now();
		c0 = bench_cpu();
		for (long i = 0; i < n; i++) {
			buf_reset(&out);
			if (dkim_sign(key, &p, msg.data, msg.len, &out, &why) < 0) {
				fprintf(stderr, "dkim_bench: %s\n", why);
				return 1;
			}
		}
		wall = bench_now() - t0;
		cpu = bench_cpu() - c0;
		printf("%-18s %8.1f us/message (CPU %.1f us)  %8.0f messages/s on one core\n",
		       names[a], wall * 1e6 / (double)n, cpu * 1e6 / (double)n, (double)n / cpu);
		dkim_key_free(&key);
		util_wipe(pem.data, pem.len);
		buf_free(&pem);
	}
	buf_free(&msg);
	buf_free(&out);
	return 0;
}
