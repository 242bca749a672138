/*
 * dkim_write DIR: generate an RSA-2048 and an Ed25519 key, write their TXT
 * record values to DIR/rsa.txt and DIR/ed25519.txt, and sign each test
 * message with both: DIR/<case>.eml is the Ed25519 signature, the RSA
 * signature, then the message.  dkim_check.py verifies them with
 * python3-dkim.  Selectors: "rsa" and "ed" under example.com.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "message/message.h"

struct write_case {
	const char *name;
	const char *msg; /* NULL: built in main (long lines) */
};

static const struct write_case write_cases[] = {
    {"plain", "From: Joe <joe@example.com>\r\n"
              "To: Suzie <suzie@example.org>\r\n"
              "Subject: Is dinner ready?\r\n"
              "Date: Mon, 23 Nov 2026 19:30:00 +0000\r\n"
              "Message-ID: <1@example.com>\r\n"
              "\r\n"
              "Hi.\r\n\r\nWe lost the game.  Are you hungry yet?  \r\n\r\nJoe.\r\n\r\n\r\n"},
    {"8bit", "From: Joe <joe@example.com>\r\n"
             "To: suzie@example.org\r\n"
             "Subject: =?utf-8?q?caf=C3=A9?=\r\n"
             "Date: Mon, 23 Nov 2026 19:30:00 +0000\r\n"
             "MIME-Version: 1.0\r\n"
             "Content-Type: text/plain; charset=iso-8859-1\r\n"
             "Content-Transfer-Encoding: 8bit\r\n"
             "\r\n"
             "Caf\xe9 cr\xe8me br\xfbl\xe9"
             "e\t\t \r\n\xff\xfe\x80\r\n"},
    {"smtputf8",
     "From: =?utf-8?q?J=C3=B6rg?= <j\xc3\xb6rg@example.com>\r\n"
     "To: \xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a\r\n"
     "Subject: Gr\xc3\xbc\xc3\x9f"
     "e  aus   K\xc3\xb6ln \xe2\x98\x95\r\n"
     "Date: Mon, 23 Nov 2026 19:30:00 +0000\r\n"
     "MIME-Version: 1.0\r\n"
     "Content-Type: text/plain; charset=utf-8\r\n"
     "Content-Transfer-Encoding: 8bit\r\n"
     "\r\n"
     "Gr\xc3\xbc\xc3\x9f"
     "e \xe2\x80\x94 \xf0\x9f\x93\xa8\r\n"},
    {"longline", NULL},
    {"multipart", "From: Joe <joe@example.com>\r\n"
                  "To: a@example.org,\r\n  b@example.org\r\n"
                  "Cc: c@example.org\r\n"
                  "Subject: a multipart\r\n  message, folded\r\n"
                  "Date: Mon, 23 Nov 2026 19:30:00 +0000\r\n"
                  "MIME-Version: 1.0\r\n"
                  "Content-Type: multipart/alternative;\r\n\tboundary=\"b1\"\r\n"
                  "List-Unsubscribe: <mailto:u@example.com>\r\n"
                  "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
                  "\r\n"
                  "preamble\r\n"
                  "--b1\r\n"
                  "Content-Type: text/plain; charset=utf-8\r\n"
                  "\r\n"
                  "plain   part \t\r\n"
                  "\r\n"
                  "--b1\r\n"
                  "Content-Type: text/html; charset=utf-8\r\n"
                  "Content-Transfer-Encoding: quoted-printable\r\n"
                  "\r\n"
                  "<p>html=3D</p>\r\n"
                  "--b1--\r\n"
                  "\r\n"
                  "\r\n"},
};

static int write_file(const char *dir, const char *name, const char *data, size_t len)
{
	char path[4096];
	FILE *f;

	if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
		return -1;
	f = fopen(path, "wb");
	if (f == NULL)
		return -1;
	if (fwrite(data, 1, len, f) != len) {
		fclose(f);
		return -1;
	}
	return fclose(f);
}

static struct dkim_key *write_key(enum dkim_alg alg, const char *dir, const char *file)
{
	struct buf pem = BUF_INIT, rec = BUF_INIT;
	struct dkim_key *key = NULL;
	const char *why = NULL;

	if (dkim_key_generate(alg, &pem, &why) < 0 ||
	    dkim_key_from_pem(pem.data, pem.len, &key, &why) < 0 ||
	    dkim_key_dns_record(key, &rec) < 0 || write_file(dir, file, rec.data, rec.len) < 0) {
		fprintf(stderr, "dkim_write: key: %s\n", why ? why : "write failed");
		exit(1);
	}
	util_wipe(pem.data, pem.len);
	buf_free(&pem);
	buf_free(&rec);
	return key;
}

int main(int argc, char **argv)
{
	struct dkim_key *rsa, *ed;
	struct buf longmsg = BUF_INIT;
	size_t i, k;

	if (argc != 2) {
		fprintf(stderr, "usage: dkim_write DIR\n");
		return 2;
	}
	rsa = write_key(DKIM_ALG_RSA_SHA256, argv[1], "rsa.txt");
	ed = write_key(DKIM_ALG_ED25519_SHA256, argv[1], "ed25519.txt");

	/* 998-octet lines: a References header and a body line */
	buf_append_str(&longmsg, "From: Joe <joe@example.com>\r\nTo: s@example.org\r\n"
	                         "Subject: long lines\r\nReferences:");
	for (k = strlen("References:"); k + 10 <= 998; k += 10)
		buf_append_str(&longmsg, " <1@b.com>");
	for (; k < 998; k++)
		buf_append_str(&longmsg, "x");
	buf_append_str(&longmsg, "\r\nDate: Mon, 23 Nov 2026 19:30:00 +0000\r\n\r\n");
	for (k = 0; k < 998; k++)
		buf_append(&longmsg, k % 50 == 49 ? " " : "y", 1);
	buf_append_str(&longmsg, "\r\nend\r\n");

	for (i = 0; i < sizeof write_cases / sizeof write_cases[0]; i++) {
		const char *msg = write_cases[i].msg != NULL ? write_cases[i].msg : longmsg.data;
		size_t len = write_cases[i].msg != NULL ? strlen(msg) : longmsg.len;
		struct dkim_sign_params p = {
		    .domain = "example.com", .selector = "ed", .timestamp = 1795462200};
		struct buf out = BUF_INIT;
		const char *why = NULL;
		char name[64];

		/* Both sign the unsigned message; neither covers the other. */
		if (dkim_sign(ed, &p, msg, len, &out, &why) < 0)
			goto fail;
		p.selector = "rsa";
		p.identity = "joe@example.com";
		if (dkim_sign(rsa, &p, msg, len, &out, &why) < 0)
			goto fail;
		if (buf_append(&out, msg, len) < 0)
			goto fail;
		snprintf(name, sizeof name, "%s.eml", write_cases[i].name);
		if (write_file(argv[1], name, out.data, out.len) < 0) {
			why = "write failed";
			goto fail;
		}
		buf_free(&out);
		continue;
	fail:
		fprintf(stderr, "dkim_write: %s: %s\n", write_cases[i].name, why);
		return 1;
	}
	buf_free(&longmsg);
	dkim_key_free(&rsa);
	dkim_key_free(&ed);
	return 0;
}
