/*
 * smtp_address_parse(): RFC 5321 paths.  Each case is parsed from an
 * exactly-sized heap copy without a NUL, so ASan catches any read past
 * the given length.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/smtp.h"

#define R4(x) x x x x
#define R8(x) R4(x) R4(x)
#define R16(x) R8(x) R8(x)
#define R32(x) R16(x) R16(x)
#define R64(x) R32(x) R32(x)
/* 63-octet label */
#define LABEL63 R32("a") R16("b") R8("c") R4("d") "eee"

struct address_case {
	const char *in;
	size_t len; /* 0: strlen(in) */
	int flags;
	int ok;
	/* ok: */
	const char *local;
	const char *domain;
	int is_null;
	int is_utf8;
	/* failure, when set: the exact reason */
	const char *why;
};

static const struct address_case address_cases[] = {
    /* valid */
    /* a UTF-8 source route is dropped: the address itself is ASCII
     * (found by fuzz_smtp_address) */
    {.in = "<@\xd0\xab:?@R>",
     .flags = SMTP_ADDRESS_ALLOW_UTF8,
     .ok = 1,
     .local = "?",
     .domain = "r",
     .is_utf8 = 0},
    {.in = "<@a.example,@\xd0\xab.example:user@\xd0\xab.example>",
     .flags = SMTP_ADDRESS_ALLOW_UTF8,
     .ok = 1,
     .local = "user",
     .domain = "\xd0\xab.example",
     .is_utf8 = 1},
    {.in = "<user@example.com>", .ok = 1, .local = "user", .domain = "example.com"},
    {.in = "<User.Name@EXAMPLE.Com>", .ok = 1, .local = "User.Name", .domain = "example.com"},
    {.in = "<user+tag@sub.example.org>", .ok = 1, .local = "user+tag", .domain = "sub.example.org"},
    {.in = "<!#$%&'*+-/=?^_`{|}~@example.com>",
     .ok = 1,
     .local = "!#$%&'*+-/=?^_`{|}~",
     .domain = "example.com"},
    {.in = "<user%other@x.example>", .ok = 1, .local = "user%other", .domain = "x.example"},
    {.in = "<user@localhost>", .ok = 1, .local = "user", .domain = "localhost"},
    {.in = "<u@a-b.c-d.example>", .ok = 1, .local = "u", .domain = "a-b.c-d.example"},
    {.in = "<u@123.example>", .ok = 1, .local = "u", .domain = "123.example"},
    {.in = "<\"john doe\"@example.com>", .ok = 1, .local = "\"john doe\"", .domain = "example.com"},
    {.in = "<\"a\\\"b\"@example.com>", .ok = 1, .local = "\"a\\\"b\"", .domain = "example.com"},
    {.in = "<\"a>b\"@example.com>", .ok = 1, .local = "\"a>b\"", .domain = "example.com"},
    {.in = "<\"a@b\"@example.com>", .ok = 1, .local = "\"a@b\"", .domain = "example.com"},
    {.in = "<\"\"@example.com>", .ok = 1, .local = "\"\"", .domain = "example.com"},
    {.in = "<@a.example,@b.example:user@c.example>",
     .ok = 1,
     .local = "user",
     .domain = "c.example"},
    {.in = "<@a.example:user@c.example>", .ok = 1, .local = "user", .domain = "c.example"},
    {.in = "<user@[192.0.2.1]>", .ok = 1, .local = "user", .domain = "[192.0.2.1]"},
    {.in = "<user@[255.255.255.255]>", .ok = 1, .local = "user", .domain = "[255.255.255.255]"},
    {.in = "<user@[IPv6:2001:db8::1]>", .ok = 1, .local = "user", .domain = "[IPv6:2001:db8::1]"},
    {.in = "<user@[ipv6:2001:DB8::A]>", .ok = 1, .local = "user", .domain = "[IPv6:2001:db8::a]"},
    {.in = "<user@[IPv6:::ffff:192.0.2.1]>",
     .ok = 1,
     .local = "user",
     .domain = "[IPv6:::ffff:192.0.2.1]"},
    {.in = "<>",
     .flags = SMTP_ADDRESS_ALLOW_NULL,
     .ok = 1,
     .local = "",
     .domain = "",
     .is_null = 1},
    /* limits: 64-octet local part, 63-octet label, 256-octet path */
    {.in = "<" R64("x") "@example.com>", .ok = 1, .local = R64("x"), .domain = "example.com"},
    {.in = "<u@" LABEL63 ".example>", .ok = 1, .local = "u", .domain = LABEL63 ".example"},
    {.in = "<u@" LABEL63 "." LABEL63 "." LABEL63 "." R32("e") R16("f") R8("g") "hhhh>",
     .ok = 1,
     .local = "u",
     .domain = LABEL63 "." LABEL63 "." LABEL63 "." R32("e") R16("f") R8("g") "hhhh"},
    /* UTF-8 (RFC 6531) */
    {.in = "<jos\xc3\xa9@example.com>",
     .flags = SMTP_ADDRESS_ALLOW_UTF8,
     .ok = 1,
     .local = "jos\xc3\xa9",
     .domain = "example.com",
     .is_utf8 = 1},
    {.in = "<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a>",
     .flags = SMTP_ADDRESS_ALLOW_UTF8,
     .ok = 1,
     .local = "\xe7\x94\xa8\xe6\x88\xb7",
     .domain = "\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a",
     .is_utf8 = 1},
    {.in = "<\"\xf0\x9f\x98\x80 x\"@EXAMPLE.com>",
     .flags = SMTP_ADDRESS_ALLOW_UTF8,
     .ok = 1,
     .local = "\"\xf0\x9f\x98\x80 x\"",
     .domain = "example.com",
     .is_utf8 = 1},
    {.in = "<" R64("\xc3\xa9") "@example.com>",
     .flags = SMTP_ADDRESS_ALLOW_UTF8,
     .ok = 1,
     .local = R64("\xc3\xa9"),
     .domain = "example.com",
     .is_utf8 = 1},
    {.in = "<user@example.com>",
     .flags = SMTP_ADDRESS_ALLOW_UTF8,
     .ok = 1,
     .local = "user",
     .domain = "example.com"},

    /* invalid */
    {.in = "user@example.com", .why = "path not in angle brackets"},
    {.in = "<user@example.com", .why = "path not in angle brackets"},
    {.in = "user@example.com>", .why = "path not in angle brackets"},
    {.in = "<user@example.com> ", .why = "path not in angle brackets"},
    {.in = "<", .why = "path not in angle brackets"},
    {.in = "", .why = "path not in angle brackets"},
    {.in = "<>", .why = "null path not allowed"},
    {.in = "<user>", .why = "address has no domain"},
    {.in = "<postmaster>", .why = "address has no domain"},
    {.in = "<host!user>", .why = "address has no domain"},
    {.in = "<user@>", .why = "empty domain"},
    {.in = "<@example.com>", .why = "bad source route"},
    {.in = "<@a.example,b.example:u@c.example>", .why = "bad source route"},
    {.in = "<@a.example;u@c.example>", .why = "bad source route"},
    {.in = "<@[192.0.2.1]:u@c.example>", .why = "bad source route"},
    {.in = "<@a.example:@b.example>", .why = "empty local part"},
    {.in = "<@a.example:>", .why = "empty local part"},
    {.in = "<.user@example.com>", .why = "bad dot in local part"},
    {.in = "<user.@example.com>", .why = "bad dot in local part"},
    {.in = "<us..er@example.com>", .why = "bad dot in local part"},
    {.in = "<us er@example.com>", .why = "bad character in local part"},
    {.in = "<us(er)@example.com>", .why = "bad character in local part"},
    {.in = "<a@b@example.com>", .why = "bad character in domain"},
    {.in = "<user@-example.com>", .why = "bad domain label"},
    {.in = "<user@example-.com>", .why = "bad domain label"},
    {.in = "<user@example..com>", .why = "bad domain label"},
    {.in = "<user@.example.com>", .why = "bad domain label"},
    {.in = "<user@example.com.>", .why = "bad domain label"},
    {.in = "<user@exa_mple.com>", .why = "bad character in domain"},
    {.in = "<user@example.com x>", .why = "bad character in domain"},
    {.in = "<\"unterminated@example.com>", .why = "unterminated quoted string"},
    {.in = "<\"bad\x01\"@example.com>", .why = "bad character in quoted string"},
    {.in = "<\"bad\\\x01\"@example.com>", .why = "bad quoted pair"},
    {.in = "<\"q\"x@example.com>", .why = "bad character in local part"},
    {.in = "<" R64("x") "y@example.com>", .why = "local part too long"},
    {.in = "<" R64("\xc3\xa9") "y@example.com>",
     .flags = SMTP_ADDRESS_ALLOW_UTF8,
     .why = "local part too long"},
    {.in = "<u@" LABEL63 "x.example>", .why = "domain label too long"},
    {.in = "<u@" LABEL63 "." LABEL63 "." LABEL63 "." R32("e") R16("f") R8("g") "hhhhh>",
     .why = "path too long"},
    {.in = "<user@[300.1.1.1]>", .why = "bad address literal"},
    {.in = "<user@[1.2.3]>", .why = "bad address literal"},
    {.in = "<user@[1.2.3.4.5]>", .why = "bad address literal"},
    {.in = "<user@[1.2.3.0004]>", .why = "bad address literal"},
    {.in = "<user@[]>", .why = "bad address literal"},
    {.in = "<user@[IPv6:zz::1]>", .why = "bad IPv6 address literal"},
    {.in = "<user@[IPv6:1.2.3.4]>", .why = "bad IPv6 address literal"},
    {.in = "<user@[tag:content]>", .why = "bad address literal"},
    {.in = "<user@[IPv6:::1\0x]>", .len = 19, .why = "bad IPv6 address literal"},
    {.in = "<user@[IPv6:" R16("1234:") "::1]>", .why = "bad IPv6 address literal"},
    {.in = "<user@[1.2.3.4>", .why = "unterminated address literal"},
    {.in = "<user@[1.2.3.4]x>", .why = "bad character in domain"},
    {.in = "<jos\xc3\xa9@example.com>", .why = "non-ASCII address requires SMTPUTF8"},
    {.in = "<user@ex\xc3\xa4mple.com>", .why = "non-ASCII address requires SMTPUTF8"},
    {.in = "<\xc3\x28@example.com>", .flags = SMTP_ADDRESS_ALLOW_UTF8, .why = "malformed UTF-8"},
    {.in = "<\xc0\xaf@example.com>", .flags = SMTP_ADDRESS_ALLOW_UTF8, .why = "malformed UTF-8"},
    {.in = "<\xed\xa0\x80@example.com>",
     .flags = SMTP_ADDRESS_ALLOW_UTF8,
     .why = "malformed UTF-8"},
    {.in = "<\xf4\x90\x80\x80@example.com>",
     .flags = SMTP_ADDRESS_ALLOW_UTF8,
     .why = "malformed UTF-8"},
    {.in = "<u@example.co\xe4>", .flags = SMTP_ADDRESS_ALLOW_UTF8, .why = "malformed UTF-8"},
    {.in = "<u\0x@example.com>", .len = 17, .why = "bad character in local part"},
};

static void test_address_cases(void **state)
{
	for (size_t i = 0; i < sizeof address_cases / sizeof address_cases[0]; i++) {
		const struct address_case *c = &address_cases[i];
		size_t len = c->len ? c->len : strlen(c->in);
		char *copy = malloc(len ? len : 1);
		struct smtp_address a;
		const char *why = NULL;
		int r;

		assert_non_null(copy);
		memcpy(copy, c->in, len);
		memset(&a, 0x5a, sizeof a);
		r = smtp_address_parse(copy, len, c->flags, &a, &why);
		free(copy);
		if (c->ok) {
			if (r != 0)
				fail_msg("case %zu %s: refused: %s", i, c->in, why);
			assert_string_equal(a.local, c->local);
			assert_string_equal(a.domain, c->domain);
			assert_int_equal(a.is_null, c->is_null);
			assert_int_equal(a.is_utf8, c->is_utf8);
		} else {
			if (r != -1)
				fail_msg("case %zu %s: accepted", i, c->in);
			assert_non_null(why);
			if (c->why && strcmp(why, c->why) != 0)
				fail_msg("case %zu %s: why \"%s\", want \"%s\"", i, c->in, why,
				         c->why);
		}
	}
}

/* Every prefix of a valid path is parsed without reading past its end. */
static void test_address_prefixes(void **state)
{
	for (size_t i = 0; i < sizeof address_cases / sizeof address_cases[0]; i++) {
		const struct address_case *c = &address_cases[i];
		size_t len = c->len ? c->len : strlen(c->in);

		for (size_t n = 0; n < len; n++) {
			char *copy = malloc(n ? n : 1);
			struct smtp_address a;
			const char *why = NULL;

			assert_non_null(copy);
			memcpy(copy, c->in, n);
			(void)smtp_address_parse(copy, n, c->flags | SMTP_ADDRESS_ALLOW_NULL, &a,
			                         &why);
			free(copy);
		}
	}
}

struct format_case {
	const char *in;
	int flags;
	size_t size;
	int ok;
	const char *out;
};

static const struct format_case format_cases[] = {
    {.in = "<User@Example.COM>", .size = 64, .ok = 1, .out = "User@example.com"},
    {.in = "<@r.example:u@x.example>", .size = 64, .ok = 1, .out = "u@x.example"},
    {.in = "<\"a b\"@x.example>", .size = 64, .ok = 1, .out = "\"a b\"@x.example"},
    {.in = "<>", .flags = SMTP_ADDRESS_ALLOW_NULL, .size = 1, .ok = 1, .out = ""},
    {.in = "<u@x.example>", .size = 12, .ok = 1, .out = "u@x.example"},
    {.in = "<u@x.example>", .size = 11, .ok = 0},
    {.in = "<u@x.example>", .size = 0, .ok = 0},
};

static void test_address_format(void **state)
{
	for (size_t i = 0; i < sizeof format_cases / sizeof format_cases[0]; i++) {
		const struct format_case *c = &format_cases[i];
		struct smtp_address a;
		char out[128];
		const char *why;

		assert_int_equal(smtp_address_parse(c->in, strlen(c->in), c->flags, &a, &why), 0);
		if (c->ok) {
			assert_int_equal(smtp_address_format(&a, out, c->size), 0);
			assert_string_equal(out, c->out);
		} else {
			assert_int_equal(smtp_address_format(&a, out, c->size), -1);
		}
	}
}

/* A refused parse leaves the output untouched. */
static void test_address_untouched_on_failure(void **state)
{
	struct smtp_address a, before;
	const char *why = NULL;

	memset(&a, 0x33, sizeof a);
	before = a;
	assert_int_equal(smtp_address_parse("<a..b@x.example>", 16, 0, &a, &why), -1);
	assert_memory_equal(&a, &before, sizeof a);
	assert_int_equal(smtp_address_parse("<x>", 3, 0, &a, NULL), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_address_cases),
	    cmocka_unit_test(test_address_prefixes),
	    cmocka_unit_test(test_address_format),
	    cmocka_unit_test(test_address_untouched_on_failure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
