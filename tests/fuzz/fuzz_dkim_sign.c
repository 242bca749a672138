/*
 * libFuzzer target for dkim_sign() and the relaxed canonicalizers.  The
 * first byte picks the key (RFC 8463's Ed25519 key, or an RSA-2048 key
 * made once) and whether an explicit h= list is used; the rest is the
 * message, in an exactly-sized buffer.  Oracles: a refusal has a reason;
 * a signature is one ASCII header field, CRLF only, continuation lines
 * start with TAB, no line over DKIM_LINE_MAX (d=, s= are short here), and
 * signing again gives the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "message/message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* RFC 8463 appendix A seed (nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=) */
static const unsigned char fuzz_seed[32] = {
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60};

static struct dkim_key *fuzz_key(int rsa)
{
	static struct dkim_key *ed, *rs;
	const char *why = NULL;

	if (ed == NULL && dkim_key_from_ed25519_seed(fuzz_seed, &ed, &why) < 0)
		abort();
	if (rsa && rs == NULL) {
		struct buf pem = BUF_INIT;

		if (dkim_key_generate(DKIM_ALG_RSA_SHA256, &pem, &why) < 0 ||
		    dkim_key_from_pem(pem.data, pem.len, &rs, &why) < 0)
			abort();
		buf_free(&pem);
	}
	return rsa ? rs : ed;
}

static void fuzz_check_header(const char *h, size_t len)
{
	size_t i, col = 0;

	if (len < 18 || memcmp(h, "DKIM-Signature: ", 16) != 0 ||
	    memcmp(h + len - 2, "\r\n", 2) != 0)
		__builtin_trap();
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)h[i];

		if (c == 0 || c >= 0x80 || c == '\n')
			__builtin_trap();
		if (c == '\r') {
			if (i + 1 >= len || h[i + 1] != '\n' || col > DKIM_LINE_MAX)
				__builtin_trap();
			i++;
			if (i + 1 < len && h[i + 1] != '\t')
				__builtin_trap();
			col = 0;
			continue;
		}
		col++;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const list[] = {"From", "Subject", "X-Any", "from", "Received", NULL};
	struct dkim_sign_params p = {.domain = "example.com",
	                             .selector = "fuzz",
	                             .identity = "@mail.example.com",
	                             .timestamp = 1795462200};
	struct buf out = BUF_INIT, again = BUF_INIT, canon = BUF_INIT;
	const char *why = NULL;
	char *msg;
	int flags;

	if (size < 1)
		return 0;
	flags = data[0];
	if (flags & 2)
		p.headers = list;
	msg = malloc(size - 1 ? size - 1 : 1);
	if (msg == NULL)
		return 0;
	memcpy(msg, data + 1, size - 1);

	/* the canonicalizers alone accept anything */
	if (dkim_canon_body(msg, size - 1, &canon) < 0 ||
	    dkim_canon_header(msg, size - 1, &canon) < 0)
		__builtin_trap();

	if (dkim_sign(fuzz_key(flags & 1), &p, msg, size - 1, &out, &why) < 0) {
		if (why == NULL || out.len != 0)
			__builtin_trap();
	} else {
		fuzz_check_header(out.data, out.len);
		if (dkim_sign(fuzz_key(flags & 1), &p, msg, size - 1, &again, &why) < 0 ||
		    again.len != out.len || memcmp(again.data, out.data, out.len) != 0)
			__builtin_trap();
	}
	free(msg);
	buf_free(&out);
	buf_free(&again);
	buf_free(&canon);
	return 0;
}
