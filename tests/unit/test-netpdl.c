/* test-netpdl.c - NetPDL descriptions on crafted payloads: every field type
 * (fields cut by the end of the payload, zero-length lines, patterns that
 * do not match), switches (ranges, default, nesting), included blocks, the
 * expression language, several protocols in one set; and descriptions that
 * must be refused at load with file:line and the reason. Payloads are
 * exact-size heap copies so that the sanitizer build catches overreads. */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "extract.h"
#include "netpdl.h"
#include "test.h"

/* strdup() of this string fails, as out of memory would: the loader's
 * calls to strdup() resolve to this one. */
static const char *strdup_fail;

char *strdup(const char *str)
{
    if (strdup_fail && strcmp(str, strdup_fail) == 0)
        return NULL;
    size_t n = strlen(str) + 1;
    char *d = malloc(n);
    return d ? memcpy(d, str, n) : NULL;
}

static struct netpdl_set *set;
static struct netpdl_run run;
static uint8_t *payload;
static char errbuf[4096];

/* Wraps fields (and blocks) in a protocol "p"; loads it into a fresh set.
 * Returns the number of errors; their text is in errbuf. */
static int load_fields(const char *fields, const char *blocks)
{
    char doc[16384];
    snprintf(doc, sizeof doc,
             "<netpdl>\n<protocol name=\"p\">\n<format>\n<fields>\n%s\n</fields>\n%s\n</format>\n"
             "</protocol>\n</netpdl>\n",
             fields, blocks ? blocks : "");
    netpdl_set_destroy(set);
    set = netpdl_set_create();
    FILE *errs = fmemopen(errbuf, sizeof errbuf, "w");
    int n = netpdl_set_load_mem(set, doc, strlen(doc), "t.xml", errs);
    fclose(errs);
    return n;
}

static void packet(const void *bytes, size_t n)
{
    free(payload);
    payload = malloc(n ? n : 1);
    memcpy(payload, bytes, n);
    netpdl_run_begin(&run, set, payload, (uint32_t)n);
}

static void packet_str(const char *s)
{
    packet(s, strlen(s));
}

/* The field's bytes as a string ("<absent>" when absent, "#N" for numbers). */
static const char *val(const char *name)
{
    static char out[1024];
    struct netpdl_span sp;
    uint64_t num;
    enum netpdl_show show;
    if (!netpdl_field(&run, netpdl_set_lookup(set, name), &sp, &num, &show))
        return "<absent>";
    if (show == NETPDL_SHOW_NUMBER)
        snprintf(out, sizeof out, "#%llu", (unsigned long long)num);
    else
        snprintf(out, sizeof out, "%.*s", (int)sp.len, (const char *)payload + sp.off);
    return out;
}

/* The value of an expression over a payload of 64 bytes ("0123456789...")
 * seen as the length of a variable field; -1 when it cannot be evaluated. */
static long long expr(const char *e)
{
    char f[1024];
    snprintf(f, sizeof f,
             "<field type=\"fixed\" name=\"two\" size=\"2\"/>\n"
             "<field type=\"variable\" name=\"v\" expr=\"%s\"/>", e);
    if (load_fields(f, NULL) != 0) {
        fprintf(stderr, "    load failed: %s", errbuf);
        return -2;
    }
    char bytes[64];
    for (int i = 0; i < 64; i++)
        bytes[i] = (char)('0' + i % 10);
    packet(bytes, 64);
    struct netpdl_span sp;
    uint64_t num;
    enum netpdl_show show;
    if (!netpdl_field(&run, netpdl_set_lookup(set, "p.v"), &sp, &num, &show))
        return -1;
    return sp.len;
}

static void test_fixed(void)
{
    CHECK_EQ_INT(load_fields("<field type=\"fixed\" name=\"a\" size=\"3\"/>"
                             "<field type=\"fixed\" name=\"n\" size=\"2\" "
                             "showtemplate=\"FieldDec\"/>"
                             "<field type=\"fixed\" name=\"c\" size=\"4\"/>", NULL), 0);
    packet("abc\x01\x02wxyz", 9);
    CHECK_STR(val("p.a"), "abc");
    CHECK_STR(val("p.n"), "#258");
    CHECK_STR(val("p.c"), "wxyz");
    /* c runs off the end: absent, and so is everything after it */
    packet("abc\x01\x02wxy", 8);
    CHECK_STR(val("p.a"), "abc");
    CHECK_STR(val("p.n"), "#258");
    CHECK_STR(val("p.c"), "<absent>");
    packet("ab", 2);
    CHECK_STR(val("p.a"), "<absent>");
    CHECK_STR(val("p.n"), "<absent>");
    packet("", 0);
    CHECK_STR(val("p.a"), "<absent>");
    CHECK_EQ_INT(netpdl_set_nfields(set), 3);
    CHECK_STR(netpdl_field_name(set, 1), "p.n");
    CHECK_EQ_INT(netpdl_set_lookup(set, "p.zz"), -1);
}

static void test_bit(void)
{
    CHECK_EQ_INT(load_fields("<field type=\"bit\" name=\"hi\" size=\"2\" mask=\"0xf000\"/>"
                             "<field type=\"bit\" name=\"mid\" size=\"2\" mask=\"0x0ff0\"/>"
                             "<field type=\"bit\" name=\"lo\" size=\"2\" mask=\"0x000f\"/>"
                             "<field type=\"fixed\" name=\"after\" size=\"1\"/>"
                             "<field type=\"variable\" name=\"v\" expr=\"hi * 2\"/>", NULL), 0);
    packet("\xab\xcd" "Z" "0123456789abcdefghijklmnopq", 30);
    CHECK_STR(val("p.hi"), "#10");
    CHECK_STR(val("p.mid"), "#188");
    CHECK_STR(val("p.lo"), "#13");
    CHECK_STR(val("p.after"), "Z");     /* the bytes are read once: lo moved on */
    CHECK_STR(val("p.v"), "0123456789abcdefghij");   /* a bit field is a number in expressions */
    /* masks up to bit 63 */
    CHECK_EQ_INT(load_fields("<field type=\"bit\" name=\"top\" size=\"8\" "
                             "mask=\"0x8000000000000000\"/>"
                             "<field type=\"bit\" name=\"all\" size=\"8\" "
                             "mask=\"0xffffffffffffffff\"/>", NULL), 0);
    packet("\x80\0\0\0\0\0\0\x05", 8);
    CHECK_STR(val("p.top"), "#1");
    CHECK_STR(val("p.all"), "#9223372036854775813");
}

static void test_variable(void)
{
    CHECK_EQ_INT(load_fields("<field type=\"fixed\" name=\"len\" size=\"1\"/>"
                             "<field type=\"variable\" name=\"data\" expr=\"buf2int(len)\"/>"
                             "<field type=\"variable\" name=\"rest\" "
                             "expr=\"$payloadlength - $currentoffset\"/>", NULL), 0);
    packet("\x03" "abcdef", 7);
    CHECK_STR(val("p.data"), "abc");
    CHECK_STR(val("p.rest"), "def");
    packet("\x00" "abc", 4);
    CHECK_STR(val("p.data"), "");       /* zero length is a value */
    CHECK_STR(val("p.rest"), "abc");
    packet("\x09" "abc", 4);            /* longer than what is left */
    CHECK_STR(val("p.len"), "\x09");
    CHECK_STR(val("p.data"), "<absent>");
    CHECK_STR(val("p.rest"), "<absent>");
}

static void test_line(void)
{
    CHECK_EQ_INT(load_fields("<field type=\"line\" name=\"l1\"/>"
                             "<field type=\"line\" name=\"l2\"/>"
                             "<field type=\"line\" name=\"l3\"/>"
                             "<field type=\"line\" name=\"l4\"/>", NULL), 0);
    packet_str("first\r\n\r\nthird\nfour");
    CHECK_STR(val("p.l1"), "first");
    CHECK_STR(val("p.l2"), "");         /* a zero-length line */
    CHECK_STR(val("p.l3"), "third");    /* LF alone ends a line too */
    CHECK_STR(val("p.l4"), "four");     /* cut by the end of the payload */
    packet_str("a\n\n");
    CHECK_STR(val("p.l1"), "a");
    CHECK_STR(val("p.l2"), "");
    CHECK_STR(val("p.l3"), "<absent>"); /* nothing left */
    packet_str("\r\n");
    CHECK_STR(val("p.l1"), "");
    CHECK_STR(val("p.l2"), "<absent>");
    packet_str("only\r");
    CHECK_STR(val("p.l1"), "only\r");   /* a CR is stripped only before LF */
}

static void test_tokens(void)
{
    CHECK_EQ_INT(load_fields("<field type=\"tokenended\" name=\"a\" endtoken=\"\\x3a\\x3a\"/>"
                             "<field type=\"tokenended\" name=\"b\" endregex=\" |(?=\\r?\\n)\"/>"
                             "<field type=\"line\" name=\"c\"/>"
                             "<field type=\"tokenwrapped\" name=\"w\" begintoken=\"&lt;\" "
                             "endtoken=\"&gt;\"/>"
                             "<field type=\"eatall\" name=\"rest\"/>", NULL), 0);
    packet_str("key::value more\r\n<wrapped>tail");
    CHECK_STR(val("p.a"), "key");
    CHECK_STR(val("p.b"), "value");
    CHECK_STR(val("p.c"), "more");
    CHECK_STR(val("p.w"), "wrapped");
    CHECK_STR(val("p.rest"), "tail");
    packet_str("key::value\r\n<x>");
    CHECK_STR(val("p.b"), "value");     /* the look-ahead leaves the CRLF to the line */
    CHECK_STR(val("p.c"), "");
    CHECK_STR(val("p.w"), "x");
    CHECK_STR(val("p.rest"), "");       /* eatall at the end: empty, present */
    packet_str("no end token");
    CHECK_STR(val("p.a"), "no end token");   /* cut by the end of the payload */
    CHECK_STR(val("p.b"), "<absent>");
    packet_str("k::v x\nnot wrapped");
    CHECK_STR(val("p.c"), "x");
    CHECK_STR(val("p.w"), "<absent>");  /* no begin token here: decoding stops */
    CHECK_STR(val("p.rest"), "<absent>");
    packet_str("k::v x\n<open");
    CHECK_STR(val("p.w"), "open");
    /* regex begin: anchored at the current offset */
    CHECK_EQ_INT(load_fields("<field type=\"tokenwrapped\" name=\"w\" beginregex=\"[(\\[]\" "
                             "endregex=\"[)\\]]\"/>", NULL), 0);
    packet_str("[in)x");
    CHECK_STR(val("p.w"), "in");
    packet_str("x[in)");
    CHECK_STR(val("p.w"), "<absent>");
}

static void test_pattern(void)
{
    /* the seed's style: look-behind; patterns search from the current
     * offset and do not move it */
    CHECK_EQ_INT(load_fields("<field type=\"line\" name=\"first\"/>"
                             "<field type=\"pattern\" name=\"host\" "
                             "pattern=\"(?&lt;=Host: )[^\\r\\n]*\"/>"
                             "<field type=\"pattern\" name=\"none\" pattern=\"Nothing: .*\"/>"
                             "<field type=\"pattern\" name=\"k\" pattern=\"(?i)key=\\K\\w+\"/>"
                             "<field type=\"line\" name=\"second\"/>", NULL), 0);
    packet_str("GET / HTTP/1.0\r\nX: 1\r\nHost: example.test\r\n\r\nKEY=abc");
    CHECK_STR(val("p.host"), "example.test");
    CHECK_STR(val("p.none"), "<absent>");    /* no match: absent, not the end */
    CHECK_STR(val("p.k"), "abc");
    CHECK_STR(val("p.second"), "X: 1");
    packet_str("Host: before\nline");
    CHECK_STR(val("p.host"), "<absent>");    /* the search starts after "first" */
    /* binary bytes and NULs are data */
    CHECK_EQ_INT(load_fields("<field type=\"pattern\" name=\"b\" pattern=\"\\x00\\xff+\"/>",
                             NULL), 0);
    packet("a\x00\xff\xff" "b", 5);
    struct netpdl_span sp;
    uint64_t num;
    enum netpdl_show show;
    CHECK(netpdl_field(&run, 0, &sp, &num, &show));
    CHECK_EQ_INT(sp.off, 1);
    CHECK_EQ_INT(sp.len, 3);
}

/* A search that fails (here the match limit) is not "no match": the field
 * is absent, decoding stops, the run counts it; a token end is not taken
 * to be missing (that would give the rest of the payload). */
static void test_regex_error(void)
{
    char slow[64];
    memset(slow, 'a', 40);
    strcpy(slow + 40, "cb");   /* (a+)+b tries 2^40 ways before giving up */
    CHECK_EQ_INT(load_fields("<field type=\"pattern\" name=\"none\" pattern=\"zzz\"/>"
                             "<field type=\"pattern\" name=\"bt\" pattern=\"(a+)+b\"/>"
                             "<field type=\"fixed\" name=\"after\" size=\"1\"/>", NULL), 0);
    run.regex_errors = 0;
    packet_str(slow);
    CHECK_STR(val("p.none"), "<absent>");
    CHECK_STR(val("p.bt"), "<absent>");
    CHECK_STR(val("p.after"), "<absent>");
    CHECK_EQ_U64(run.regex_errors, 1);
    packet_str("aab");   /* the same description, a match */
    CHECK_STR(val("p.bt"), "aab");
    CHECK_STR(val("p.after"), "a");
    CHECK_EQ_U64(run.regex_errors, 1);
    CHECK_EQ_INT(load_fields("<field type=\"tokenended\" name=\"t\" endregex=\"(a+)+b\"/>"
                             "<field type=\"eatall\" name=\"rest\"/>", NULL), 0);
    packet_str(slow);
    CHECK_STR(val("p.t"), "<absent>");
    CHECK_STR(val("p.rest"), "<absent>");
    CHECK_EQ_U64(run.regex_errors, 2);
    CHECK_EQ_INT(load_fields("<field type=\"tokenwrapped\" name=\"w\" begintoken=\"a\" "
                             "endregex=\"(a+)+b\"/>", NULL), 0);
    packet_str(slow);
    CHECK_STR(val("p.w"), "<absent>");
    CHECK_EQ_U64(run.regex_errors, 3);
}

/* Once a filter says which fields it uses, patterns nobody uses are not
 * searched, unless an expression names them. */
static void test_wanted(void)
{
    CHECK_EQ_INT(load_fields("<field type=\"pattern\" name=\"a\" pattern=\"a+\"/>"
                             "<field type=\"pattern\" name=\"b\" pattern=\"b+\"/>"
                             "<field type=\"pattern\" name=\"n\" pattern=\"[0-9]\"/>"
                             "<field type=\"variable\" name=\"v\" expr=\"ascii2int(n)\"/>"
                             "<field type=\"eatall\" name=\"rest\"/>", NULL), 0);
    packet_str("2aabb");
    CHECK_STR(val("p.b"), "bb");
    netpdl_set_want(set, netpdl_set_lookup(set, "p.a"));
    netpdl_set_want(set, netpdl_set_lookup(set, "p.v"));
    packet_str("2aabb");
    CHECK_STR(val("p.a"), "aa");
    CHECK_STR(val("p.b"), "<absent>");   /* not wanted: not searched */
    CHECK_STR(val("p.n"), "2");          /* named in v's expression */
    CHECK_STR(val("p.v"), "2a");
    CHECK_STR(val("p.rest"), "abb");
}

static void test_padding(void)
{
    CHECK_EQ_INT(load_fields("<field type=\"fixed\" name=\"a\" size=\"3\"/>"
                             "<field type=\"padding\" name=\"pad\" align=\"4\"/>"
                             "<field type=\"fixed\" name=\"b\" size=\"2\"/>"
                             "<field type=\"padding\" name=\"pad2\" align=\"4\"/>"
                             "<field type=\"fixed\" name=\"c\" size=\"1\"/>", NULL), 0);
    packet_str("abc.de..f");
    CHECK_STR(val("p.pad"), ".");
    CHECK_STR(val("p.b"), "de");
    CHECK_STR(val("p.pad2"), "..");
    CHECK_STR(val("p.c"), "f");
    packet_str("abc.de.");
    CHECK_STR(val("p.pad2"), "<absent>");
}

static void test_switch(void)
{
    const char *fields =
        "<field type=\"fixed\" name=\"kind\" size=\"1\"/>"
        "<switch expr=\"buf2int(kind)\">"
        "  <case value=\"0x41\"><field type=\"fixed\" name=\"a\" size=\"1\"/></case>"
        "  <case value=\"0x30\" maxvalue=\"0x39\"><includeblk name=\"digit\"/></case>"
        "  <default><field type=\"eatall\" name=\"other\"/></default>"
        "</switch>"
        "<field type=\"fixed\" name=\"after\" size=\"1\"/>";
    const char *blocks =
        "<block name=\"digit\">"
        "  <field type=\"fixed\" name=\"d\" size=\"1\"/>"
        "  <switch expr=\"buf2int(d)\">"
        "    <case value=\"0x78\"><field type=\"fixed\" name=\"x\" size=\"1\"/></case>"
        "    <case value=\"0x79\"><field type=\"fixed\" name=\"y\" size=\"1\"/></case>"
        "  </switch>"
        "</block>";
    CHECK_EQ_INT(load_fields(fields, blocks), 0);
    packet_str("Aa!");
    CHECK_STR(val("p.a"), "a");
    CHECK_STR(val("p.d"), "<absent>");
    CHECK_STR(val("p.other"), "<absent>");
    CHECK_STR(val("p.after"), "!");
    packet_str("5x1!");               /* range, then the nested switch */
    CHECK_STR(val("p.a"), "<absent>");
    CHECK_STR(val("p.d"), "x");
    CHECK_STR(val("p.x"), "1");
    CHECK_STR(val("p.y"), "<absent>");
    CHECK_STR(val("p.after"), "!");
    packet_str("9y2!");
    CHECK_STR(val("p.x"), "<absent>");
    CHECK_STR(val("p.y"), "2");
    packet_str("0z!");                /* the nested switch has no case: on after it */
    CHECK_STR(val("p.d"), "z");
    CHECK_STR(val("p.after"), "!");
    packet_str("Zrest");              /* default */
    CHECK_STR(val("p.other"), "rest");
    CHECK_STR(val("p.after"), "<absent>");
    /* a switch whose expression reads past the end stops decoding */
    CHECK_EQ_INT(load_fields("<field type=\"fixed\" name=\"a\" size=\"1\"/>"
                             "<switch expr=\"buf2int($packet[$currentoffset:4])\">"
                             "<default><field type=\"fixed\" name=\"b\" size=\"1\"/></default>"
                             "</switch>", NULL), 0);
    packet_str("12345");
    CHECK_STR(val("p.a"), "1");
    CHECK_STR(val("p.b"), "2");
    packet_str("123");
    CHECK_STR(val("p.a"), "1");
    CHECK_STR(val("p.b"), "<absent>");
}

static void bad(const char *fields, const char *blocks, const char *want);

static void test_if(void)
{
    const char *fields =
        "<field type=\"fixed\" name=\"len\" size=\"1\" showtemplate=\"FieldDec\"/>"
        "<if expr=\"buf2int(len) &gt; 2\">"
        "  <if-true><field type=\"variable\" name=\"long\" expr=\"buf2int(len)\"/></if-true>"
        "  <if-false><field type=\"fixed\" name=\"short\" size=\"1\"/></if-false>"
        "</if>"
        "<if expr=\"$payloadlength - $currentoffset\">"
        "  <if-true><field type=\"eatall\" name=\"rest\"/></if-true>"
        "</if>"
        "<field type=\"fixed\" name=\"after\" size=\"1\"/>";
    CHECK_EQ_INT(load_fields(fields, NULL), 0);
    packet("\x03" "abcde", 6);
    CHECK_STR(val("p.long"), "abc");
    CHECK_STR(val("p.short"), "<absent>");
    CHECK_STR(val("p.rest"), "de");
    CHECK_STR(val("p.after"), "<absent>");
    packet("\x01" "xy", 3);
    CHECK_STR(val("p.long"), "<absent>");
    CHECK_STR(val("p.short"), "x");
    CHECK_STR(val("p.rest"), "y");
    packet("\x01" "x", 2);
    CHECK_STR(val("p.short"), "x");
    CHECK_STR(val("p.rest"), "<absent>");   /* 0: no if-false, on after the if */
    CHECK_STR(val("p.after"), "<absent>");
    packet("\x00" "xz", 3);
    CHECK_STR(val("p.rest"), "z");
    /* only <if-false>: a true condition skips it */
    CHECK_EQ_INT(load_fields("<field type=\"fixed\" name=\"a\" size=\"1\"/>"
                             "<if expr=\"buf2int(a) == 0x31\">"
                             "<if-false><field type=\"fixed\" name=\"f\" size=\"1\"/></if-false>"
                             "</if>"
                             "<field type=\"fixed\" name=\"g\" size=\"1\"/>", NULL), 0);
    packet_str("1xy");
    CHECK_STR(val("p.f"), "<absent>");
    CHECK_STR(val("p.g"), "x");
    packet_str("2xy");
    CHECK_STR(val("p.f"), "x");
    CHECK_STR(val("p.g"), "y");
    bad("<if expr=\"1\"><if-true/><if-true/></if>", NULL, "<if-true> twice in one <if>");
    bad("<if expr=\"1\"><field type=\"eatall\" name=\"x\"/></if>", NULL,
        "<field> in an <if>: dati supports <if-true> and <if-false>");
    bad("<if><if-true/></if>", NULL, "<if> needs an expr attribute");
}

static void test_expressions(void)
{
    /* payload: "0123456789" repeated to 64 bytes; $currentoffset is 2 */
    CHECK_EQ_INT(expr("1 + 2 * 3"), 7);
    CHECK_EQ_INT(expr("(1 + 2) * 3"), 9);
    CHECK_EQ_INT(expr("10 - 4 - 3"), 3);
    CHECK_EQ_INT(expr("17 / 5 + 17 % 5 + 17 mod 5"), 7);
    CHECK_EQ_INT(expr("0x10 | 0x01"), 17);
    CHECK_EQ_INT(expr("0xff bitwand 0x0f"), 15);
    CHECK_EQ_INT(expr("1 &lt;&lt; 4 &gt;&gt; 2"), 4);
    CHECK_EQ_INT(expr("5 ^ 1"), 4);
    CHECK_EQ_INT(expr("-3 + 5"), 2);
    CHECK_EQ_INT(expr("~0 &amp; 7"), 7);
    CHECK_EQ_INT(expr("$currentoffset"), 2);
    CHECK_EQ_INT(expr("$payloadlength - $currentoffset"), 62);
    CHECK_EQ_INT(expr("$packetlength - 60"), 4);
    CHECK_EQ_INT(expr("buf2int($packet[0:1]) - 0x30 + 1"), 1);
    CHECK_EQ_INT(expr("buf2int($packet[1:2]) - 0x3100"), 0x32);
    CHECK_EQ_INT(expr("buf2int(two) == 0x3031"), 1);
    CHECK_EQ_INT(expr("ascii2int($packet[3:2]) + 1"), 35);
    CHECK_EQ_INT(expr("(2 &lt; 3) + (3 &lt;= 3) + (4 &gt; 3) + (3 &gt;= 4) + (1 != 1) + "
                      "(1 == 1)"), 4);
    CHECK_EQ_INT(expr("1 and 2"), 1);
    CHECK_EQ_INT(expr("0 or 0"), 0);
    CHECK_EQ_INT(expr("not 0 + !5"), 1);
    CHECK_EQ_INT(expr("0 and buf2int($packet[100:1])"), 0);   /* short-circuit */
    CHECK_EQ_INT(expr("1 or buf2int($packet[100:1])"), 1);
    CHECK_EQ_INT(expr("$payloadlength &gt; 4 &amp;&amp; 1 || 0"), 1);
    /* evaluation failures: the field is absent */
    CHECK_EQ_INT(expr("buf2int($packet[63:2])"), -1);          /* past the end */
    CHECK_EQ_INT(expr("buf2int($packet[0:9])"), -1);           /* more than 8 bytes */
    CHECK_EQ_INT(expr("buf2int($packet[0-1:1])"), -1);
    CHECK_EQ_INT(expr("1 / 0"), -1);
    CHECK_EQ_INT(expr("1 % 0"), -1);
    CHECK_EQ_INT(expr("1 &lt;&lt; 64"), -1);
    CHECK_EQ_INT(expr("0 - 1"), -1);                           /* a negative length */
    CHECK_EQ_INT(expr("70"), -1);                              /* longer than the payload */
    CHECK_EQ_INT(expr("ascii2int($packet[$currentoffset+8:0])"), -1);   /* no digits */
    CHECK_EQ_INT(expr("0x7fffffffffffffff * 2 + 3"), 1);       /* wraps, no UB */
    /* ascii2int: 19 digits above INT64_MAX / 10 are a number, 20 overflow */
    CHECK_EQ_INT(expr("ascii2int($packet[1:19]) == 1234567890123456789"), 1);
    CHECK_EQ_INT(expr("ascii2int($packet[1:20]) &gt; 0"), -1);
}

static void test_protocols(void)
{
    const char *doc =
        "<netpdl>"
        "<protocol name=\"one\"><format><fields>"
        "<field type=\"fixed\" name=\"a\" size=\"1\"/></fields></format></protocol>"
        "<protocol name=\"two\"><format><fields>"
        "<field type=\"fixed\" name=\"a\" size=\"2\"/></fields></format></protocol>"
        "</netpdl>";
    netpdl_set_destroy(set);
    set = netpdl_set_create();
    CHECK_EQ_INT(netpdl_set_load_mem(set, doc, strlen(doc), "two.xml", NULL), 0);
    const char *root = "<protocol name=\"three\"><format><fields>"
                       "<field type=\"eatall\" name=\"all\"/></fields></format></protocol>";
    CHECK_EQ_INT(netpdl_set_load_mem(set, root, strlen(root), "three.xml", NULL), 0);
    packet_str("xyz");
    CHECK_STR(val("two.a"), "xy");   /* each protocol starts at the payload */
    CHECK_STR(val("one.a"), "x");
    CHECK_STR(val("three.all"), "xyz");
    CHECK_EQ_INT(run.done, 7);
    packet_str("q");
    CHECK_EQ_INT(run.done, 0);
    CHECK_STR(val("one.a"), "q");
    CHECK_EQ_INT(run.done, 1);       /* only the protocol asked for ran */
    CHECK_STR(val("two.a"), "<absent>");
    /* the same protocol again: refused, naming both places; the set keeps
     * what it had */
    const char *again = "<netpdl>\n<protocol name=\"three\"><format><fields>"
                        "<field type=\"eatall\" name=\"x\"/></fields></format></protocol>"
                        "</netpdl>";
    FILE *errs = fmemopen(errbuf, sizeof errbuf, "w");
    CHECK_EQ_INT(netpdl_set_load_mem(set, again, strlen(again), "again.xml", errs), 1);
    fclose(errs);
    CHECK_STR(errbuf, "again.xml:2: protocol three already defined at three.xml:1\n");
    CHECK_EQ_INT(netpdl_set_nfields(set), 3);
    CHECK_EQ_INT(netpdl_set_lookup(set, "three.x"), -1);
    packet_str("abc");
    CHECK_STR(val("three.all"), "abc");
}

/* A description that must be refused with exactly this message. */
static void bad(const char *fields, const char *blocks, const char *want)
{
    CHECK(load_fields(fields, blocks) > 0);
    if (!strstr(errbuf, want)) {
        test_result(0, __FILE__, __LINE__, want);
        fprintf(stderr, "    got: %s", errbuf);
    } else {
        test_result(1, __FILE__, __LINE__, want);
    }
    CHECK_EQ_INT(netpdl_set_nfields(set), 0);
}

static void test_bad(void)
{
    netpdl_set_destroy(set);
    set = netpdl_set_create();
    const char *broken = "<netpdl>\n<protocol name=\"x\">\n<format>\n</netpdl>\n";
    FILE *errs = fmemopen(errbuf, sizeof errbuf, "w");
    CHECK_EQ_INT(netpdl_set_load_mem(set, broken, strlen(broken), "m.xml", errs), 1);
    fclose(errs);
    CHECK_STR(errbuf, "m.xml:4: malformed XML: Opening and ending tag mismatch: format line 3 "
                      "and netpdl\n");
    bad("<field type=\"asn1\" name=\"a\"/>", NULL,
        "t.xml:5: field a: unsupported field type 'asn1'");
    bad("<field type=\"variable\" name=\"a\" expr=\"1 +\"/>", NULL,
        "t.xml:5: field a: expression '1 +': unexpected end");
    bad("<field type=\"variable\" name=\"a\" expr=\"buf2int(3)\"/>", NULL,
        "buf2int() needs a buffer");
    bad("<field type=\"variable\" name=\"a\" expr=\"$packet[0:1]\"/>", NULL,
        "a number is needed here");
    bad("<field type=\"variable\" name=\"a\" expr=\"nosuch + 1\"/>", NULL,
        "unknown name 'nosuch'");
    bad("<field type=\"variable\" name=\"a\" expr=\"$foo\"/>", NULL, "unknown variable");
    bad("<field type=\"variable\" name=\"a\" expr=\"f(1)\"/>", NULL, "unknown function 'f'");
    bad("<field type=\"variable\" name=\"a\" expr=\"1 2\"/>", NULL,
        "unexpected text after the expression");
    bad("<field type=\"pattern\" name=\"a\" pattern=\"(unclosed\"/>", NULL,
        "t.xml:5: regex '(unclosed' does not compile: missing closing parenthesis at offset 9");
    bad("<field type=\"pattern\" name=\"a\" pattern=\"(*UTF)a\"/>", NULL,
        "regex '(*UTF)a' does not compile: using UTF is disabled by the application");
    bad("<includeblk name=\"b1\"/>",
        "<block name=\"b1\"><includeblk name=\"b2\"/></block>\n"
        "<block name=\"b2\">\n<includeblk name=\"b1\"/></block>",
        "t.xml:9: block b1 includes itself (defined at line 7)");
    bad("<includeblk name=\"nope\"/>", NULL, "no <block name=\"nope\">");
    bad("<loop type=\"while\" expr=\"1\"/>", NULL, "t.xml:5: unsupported element <loop>");
    bad("<field type=\"fixed\" name=\"a\"/>", NULL, "<field> needs a size attribute");
    bad("<field type=\"fixed\" name=\"a\" size=\"0\"/>", NULL,
        "size='0' is not a number from 1 to 65535");
    bad("<field type=\"bit\" name=\"a\" size=\"1\" mask=\"0x100\"/>", NULL,
        "mask wider than size 1 bytes");
    bad("<field type=\"bit\" name=\"a\" size=\"8\" mask=\"-1\"/>", NULL,
        "t.xml:5: mask='-1' is not a number from 1 to 0xffffffffffffffff");
    bad("<field type=\"bit\" name=\"a\" size=\"8\" mask=\"0x10000000000000000\"/>", NULL,
        "mask='0x10000000000000000' is not a number from 1 to 0xffffffffffffffff");
    bad("<field type=\"bit\" name=\"a\" size=\"8\" mask=\"0\"/>", NULL,
        "mask='0' is not a number from 1 to 0xffffffffffffffff");
    bad("<field type=\"tokenended\" name=\"a\"/>", NULL, "needs either endtoken or endregex");
    bad("<field type=\"tokenended\" name=\"a\" endtoken=\"\\q\"/>", NULL, "unknown escape");
    bad("<field type=\"tokenended\" name=\"a\" endtoken=\"x\" enddiscard=\"1\"/>", NULL,
        "t.xml:5: field a: attribute enddiscard is not supported by dati");
    bad("<switch expr=\"1\"><case value=\"x\"/></switch>", NULL,
        "value='x' is not a number");
    bad("<switch expr=\"1\"><field type=\"eatall\" name=\"a\"/></switch>", NULL,
        "<field> in a <switch>: dati supports <case> and <default>");
    bad("<field type=\"fixed\" name=\"a\" size=\"1\"/><field type=\"bit\" name=\"a\" size=\"1\" "
        "mask=\"1\"/>", NULL, "t.xml:5: field p.a already defined at t.xml:5 as a byte string");
    bad("<field type=\"fixed\" name=\"a.b\" size=\"1\"/>", NULL, "letters, digits, _ and - only");
    bad("<field type=\"bit\" name=\"a\" size=\"1\" mask=\"1\" showtemplate=\"DNSName\"/>", NULL,
        "t.xml:5: field a: a DNSName is not a number");
    bad("<field type=\"eatall\" name=\"a\" showtemplate=\"DNSName\"/><field type=\"eatall\" "
        "name=\"a\"/>", NULL, "t.xml:5: field p.a already defined at t.xml:5 as a DNS name");
    char names[1024] = "";
    for (int i = 0; i <= NETPDL_MAX_DNSNAMES; i++) {
        char f[100];
        snprintf(f, sizeof f, "<field type=\"eatall\" name=\"n%d\" showtemplate=\"DNSName\"/>", i);
        strcat(names, f);
    }
    bad(names, NULL, "t.xml:5: too many DNSName fields (at most 8 in the descriptions of one filter)");
    /* a refused description takes its DNSName fields back with it */
    char doc[4096];
    snprintf(doc, sizeof doc, "<netpdl><protocol name=\"p\"><format><fields>%.2000s"
             "<field type=\"nope\" name=\"z\"/></fields></format></protocol></netpdl>",
             strstr(names, "<field type=\"eatall\" name=\"n1\""));
    netpdl_set_destroy(set);
    set = netpdl_set_create();
    errs = fmemopen(errbuf, sizeof errbuf, "w");
    CHECK_EQ_INT(netpdl_set_load_mem(set, doc, strlen(doc), "a.xml", errs), 1);
    static const char one[] = "<netpdl><protocol name=\"q\"><format><fields><field "
                              "type=\"eatall\" name=\"n\" showtemplate=\"DNSName\"/>"
                              "</fields></format></protocol></netpdl>";
    CHECK_EQ_INT(netpdl_set_load_mem(set, one, sizeof one - 1, "b.xml", errs), 0);
    fclose(errs);
    /* the parser's recursion is bounded: no stack overflow on deep nesting */
    char deep[4096] = "<field type=\"variable\" name=\"a\" expr=\"";
    for (int i = 0; i < 1000; i++)
        strcat(deep, i % 2 ? "(" : "-");
    strcat(deep, "1\"/>");
    bad(deep, NULL, "nested too deeply (at most 32 levels)");
    CHECK_EQ_INT(expr("((((((((((((((((((((1)))))))))))))))))))) + - - 1"), 2);
    /* every error is reported, not just the first */
    CHECK(load_fields("<field type=\"x\" name=\"a\"/>\n<field type=\"y\" name=\"b\"/>", NULL) == 2);
    /* a block included from many places: too large, said once */
    char fields[2048] = "", blocks[4096] = "";
    strcat(blocks, "<block name=\"b0\"><field type=\"fixed\" name=\"a\" size=\"1\"/></block>\n");
    for (int i = 1; i < 20; i++) {
        char b[200];
        snprintf(b, sizeof b, "<block name=\"b%d\"><includeblk name=\"b%d\"/>"
                              "<includeblk name=\"b%d\"/></block>\n", i, i - 1, i - 1);
        strcat(blocks, b);
    }
    strcat(fields, "<includeblk name=\"b19\"/>");
    CHECK_EQ_INT(load_fields(fields, blocks), 1);
    CHECK(strstr(errbuf, "description too large: more than 65536 steps") != NULL);
}

/* Blocks that include an empty block twice per level: no steps, but 2^30
 * elements to visit. Refused after a bounded amount of work. */
static void test_too_much_work(void)
{
    char blocks[4096] = "<block name=\"b0\"/>\n";
    for (int i = 1; i <= 30; i++) {
        char b[200];
        snprintf(b, sizeof b, "<block name=\"b%d\"><includeblk name=\"b%d\"/>"
                              "<includeblk name=\"b%d\"/></block>\n", i, i - 1, i - 1);
        strcat(blocks, b);
    }
    CHECK_EQ_INT(load_fields("<includeblk name=\"b30\"/>", blocks), 1);
    CHECK_STR(errbuf, "t.xml:9: description too large: more than 1000000 elements once blocks "
                      "are included\n");
    /* an expression in a block included 8192 times: each copy is compiled,
     * and the instructions are capped (16 MiB) */
    char sum[1024] = "1";
    for (int i = 0; i < 99; i++)
        strcat(sum, "+1");
    snprintf(blocks, sizeof blocks, "<block name=\"b0\"><if expr=\"%s\"/></block>\n", sum);
    for (int i = 1; i <= 13; i++) {
        char b[200];
        snprintf(b, sizeof b, "<block name=\"b%d\"><includeblk name=\"b%d\"/>"
                              "<includeblk name=\"b%d\"/></block>\n", i, i - 1, i - 1);
        strcat(blocks, b);
    }
    CHECK_EQ_INT(load_fields("<includeblk name=\"b13\"/>", blocks), 1);
    CHECK_STR(errbuf, "t.xml:7: description too large: more than 1048576 expression "
                      "instructions once blocks are included\n");
    /* 4096 copies are within the cap */
    CHECK_EQ_INT(load_fields("<includeblk name=\"b12\"/>", blocks), 0);
}

/* An entity in <fields> would be dropped silently (and later offsets
 * shift): any DOCTYPE is refused. */
static void test_doctype(void)
{
    const char *doc =
        "<?xml version=\"1.0\"?>\n"
        "<!DOCTYPE netpdl [<!ENTITY f '<field type=\"fixed\" name=\"a\" size=\"1\"/>'>]>\n"
        "<netpdl><protocol name=\"p\"><format><fields>\n"
        "&f;<field type=\"fixed\" name=\"b\" size=\"1\"/>\n"
        "</fields></format></protocol></netpdl>\n";
    netpdl_set_destroy(set);
    set = netpdl_set_create();
    FILE *errs = fmemopen(errbuf, sizeof errbuf, "w");
    CHECK_EQ_INT(netpdl_set_load_mem(set, doc, strlen(doc), "e.xml", errs), 1);
    const char *ext = "<!DOCTYPE netpdl SYSTEM \"netpdl.dtd\">\n<netpdl/>\n";
    CHECK_EQ_INT(netpdl_set_load_mem(set, ext, strlen(ext), "s.xml", errs), 1);
    fclose(errs);
    CHECK_STR(errbuf, "e.xml:2: a DOCTYPE is not supported (no DTD, no entities)\n"
                      "s.xml:1: a DOCTYPE is not supported (no DTD, no entities)\n");
    CHECK_EQ_INT(netpdl_set_nfields(set), 0);
}

/* Out of memory copying the protocol's name: an error, not a NULL name
 * read by the expression compiler. */
static void test_oom_name(void)
{
    /* the first element names a field: the compiler looks it up by name */
    const char *bad_doc = "<protocol name=\"oomp\"><format><fields>"
                          "<field type=\"variable\" name=\"v\" expr=\"n\"/>"
                          "</fields></format></protocol>";
    const char *doc = "<protocol name=\"oomp\"><format><fields>"
                      "<field type=\"fixed\" name=\"n\" size=\"1\"/>"
                      "<field type=\"variable\" name=\"v\" expr=\"buf2int(n)\"/>"
                      "</fields></format></protocol>";
    netpdl_set_destroy(set);
    set = netpdl_set_create();
    strdup_fail = "oomp";
    CHECK_EQ_INT(netpdl_set_load_mem(set, bad_doc, strlen(bad_doc), "o.xml", NULL), -1);
    CHECK_EQ_INT(netpdl_set_load_mem(set, doc, strlen(doc), "o.xml", NULL), -1);
    strdup_fail = NULL;
    CHECK_EQ_INT(netpdl_set_nfields(set), 0);
    CHECK_EQ_INT(netpdl_set_load_mem(set, doc, strlen(doc), "o.xml", NULL), 0);
    packet("\x02xy", 3);
    CHECK_STR(val("oomp.v"), "xy");
}

static void test_file(void)
{
    netpdl_set_destroy(set);
    set = netpdl_set_create();
    FILE *errs = fmemopen(errbuf, sizeof errbuf, "w");
    CHECK_EQ_INT(netpdl_set_load(set, "/nonexistent/x.xml", "x.xml", errs), 1);
    CHECK_EQ_INT(netpdl_set_load(set, "/tmp", "tmpdir", errs), 1);
    fclose(errs);
    CHECK(strstr(errbuf, "x.xml: cannot read: No such file or directory\n") != NULL);
    CHECK(strstr(errbuf, "tmpdir: cannot read: not a regular file\n") != NULL);
    /* the shipped description; the tests run from the top directory */
    CHECK_EQ_INT(netpdl_set_load(set, "protocols/http.xml", "http.xml", stderr), 0);
    packet_str("GET /a?b HTTP/1.1\r\nhost:  h.test\r\nCookie: c=1\r\n\r\n"
               "Referer: in the body\r\n");
    CHECK_STR(val("http.method"), "GET");
    CHECK_STR(val("http.url"), "/a?b");
    CHECK_STR(val("http.version"), "HTTP/1.1");
    CHECK_STR(val("http.host"), "h.test");
    CHECK_STR(val("http.cookie"), "c=1");
    CHECK_STR(val("http.referer"), "<absent>");   /* not among the headers */
    CHECK_STR(val("http.get"), "host:  h.test\r\nCookie: c=1\r\n\r\nReferer: in the body\r\n");
    /* short header lines before Host: 8000 (past PCRE2's default JIT
     * stack before), and 300000, past the worker's 1 MiB JIT stack for a
     * pattern that kept state per line: the shipped ones keep none */
    for (int lines = 8000; lines <= 300000; lines += 292000) {
        char *big = malloc((size_t)lines * 2 + 64);
        char *at = big + sprintf(big, "GET / HTTP/1.1\r\n");
        for (int i = 0; i < lines; i++, at += 2)
            memcpy(at, "a\n", 2);
        strcpy(at, "Host: far.test\r\n\r\n");
        run.regex_errors = 0;
        packet_str(big);
        CHECK_STR(val("http.host"), "far.test");
        CHECK_STR(val("http.cookie"), "<absent>");
        CHECK_EQ_U64(run.regex_errors, 0);
        free(big);
    }
    packet_str("GETX / HTTP/1.1\r\n\r\n");
    CHECK_STR(val("http.method"), "<absent>");
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

/* PROTOCOL_DEF through the configuration and extract_field(), as workers
 * use it; then a reload with a broken description: refused, and the
 * configuration loaded before keeps working. */
static void test_config(void)
{
    char dir[] = "/tmp/test-netpdl-XXXXXX";
    if (!CHECK(mkdtemp(dir)))
        return;
    char xml[256], conf[256];
    snprintf(xml, sizeof xml, "%s/t.xml", dir);
    snprintf(conf, sizeof conf, "%s/t.conf", dir);
    write_file(xml, "<protocol name=\"t\"><format><fields>"
                    "<field type=\"fixed\" name=\"n\" size=\"2\" showtemplate=\"FieldDec\"/>"
                    "<field type=\"line\" name=\"url\"/>"
                    "</fields></format></protocol>");
    write_file(conf, "FILTER_NAME f\nBPF tcp\nPROTOCOL_DEF t.xml\nFIELDS t.url ip.proto t.n\n");
    int nerr;
    struct config *c = config_load(conf, stderr, &nerr);
    if (!CHECK(c != NULL))
        return;
    const struct filter_conf *f = &c->filter[0];
    CHECK_EQ_INT(f->nfields, 3);
    CHECK(f->field_id[0] >= FIELD_COUNT);
    CHECK_EQ_INT(f->field_id[1], FIELD_IP_PROTO);
    CHECK_STR(f->field_key[0], "t.url");

    static uint8_t frame[64];
    memcpy(frame + 40, "\x01\x02/index\r\nrest", 14);
    struct packet p = {.data = frame, .caplen = 54, .flags = PKT_HAS_KEY, .ip_version = 4,
                       .l4_proto = IPPROTO_TCP, .payload_off = 40, .payload_len = 14};
    struct extract_ctx x;
    memset(&x, 0, sizeof x);
    extract_begin(&x, &p);
    extract_use_netpdl(&x, f->netpdl);
    struct field_value v;
    CHECK(extract_field(&x, f->field_id[0], &v));
    CHECK_EQ_INT(v.kind, VALUE_STR);
    CHECK_EQ_INT(v.nparts, 1);
    CHECK_SLICE(v.parts[0], "/index");
    CHECK(extract_field(&x, f->field_id[2], &v));
    CHECK_EQ_INT(v.kind, VALUE_UINT);
    CHECK_EQ_U64(v.num, 0x0102);
    p.l4_proto = IPPROTO_ICMP;   /* no TCP or UDP payload: absent */
    extract_begin(&x, &p);
    extract_use_netpdl(&x, f->netpdl);
    CHECK(!extract_field(&x, f->field_id[0], &v));

    /* reload with a broken description: refused with its error */
    write_file(xml, "<protocol name=\"t\"><format><fields>\n"
                    "<field type=\"line\" name=\"url\"/><field type=\"nope\" name=\"x\"/>"
                    "</fields></format></protocol>");
    char errs[1024] = "";
    FILE *e = fmemopen(errs, sizeof errs, "w");
    struct config *c2 = config_load(conf, e, &nerr);
    fclose(e);
    CHECK(c2 == NULL);
    CHECK_EQ_INT(nerr, 3);   /* the description, its PROTOCOL_DEF line, t.n unknown */
    char want[512];
    snprintf(want, sizeof want, "%s:2: field x: unsupported field type 'nope'", xml);
    CHECK(strstr(errs, want) != NULL);
    snprintf(want, sizeof want, "%s:3: filter f: protocol description refused (1 error above)",
             conf);
    CHECK(strstr(errs, want) != NULL);
    p.l4_proto = IPPROTO_TCP;    /* the configuration loaded before still works */
    extract_begin(&x, &p);
    extract_use_netpdl(&x, f->netpdl);
    CHECK(extract_field(&x, f->field_id[0], &v));
    CHECK_SLICE(v.parts[0], "/index");
    extract_fini(&x);
    config_free(c);
    unlink(xml);
    unlink(conf);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    (void)argc;
    test_fixed();
    test_bit();
    test_variable();
    test_line();
    test_tokens();
    test_pattern();
    test_regex_error();
    test_wanted();
    test_padding();
    test_switch();
    test_if();
    test_expressions();
    test_protocols();
    test_bad();
    test_too_much_work();
    test_doctype();
    test_oom_name();
    test_file();
    test_config();
    netpdl_run_fini(&run);
    netpdl_set_destroy(set);
    free(payload);
    return test_summary(argv[0]);
}
