/* netpdl-load.c - reading NetPDL descriptions with libxml2 and compiling
 * them into a set's flat program: blocks are inlined where included,
 * switches become jumps, expressions and regexes are compiled here, once.
 * Every error names file:line and the reason. Main thread only. */
#define _GNU_SOURCE   /* memmem */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "netpdl-int.h"

#define LOAD_MAX_SIZE (16u << 20)   /* bytes: a description is not a data set */
#define LOAD_MAX_DEPTH 32           /* nested switches and included blocks */
#define LOAD_MAX_CASES 1024         /* per switch */
#define LOAD_MAX_ELEMENTS 1000000   /* per file, once blocks are included: a block
                                     * included twice per level doubles the work */

struct loader {
    struct netpdl_set *s;
    const char *file;
    FILE *errs;
    int nerrors, oom;
    int too_large;                 /* reported once, and compiling stops */
    long elements;                 /* compiled so far, includes expanded */
    int proto;
    xmlNode *format;               /* of the protocol being compiled: its blocks */
    xmlNode *incl[LOAD_MAX_DEPTH]; /* blocks being included, outermost first */
    int nincl, depth;
};

static void lerr(struct loader *ld, const xmlNode *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void lerr(struct loader *ld, const xmlNode *n, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (ld->errs)
        fprintf(ld->errs, "%s:%ld: %s\n", ld->file, n ? xmlGetLineNo(n) : 0L, msg);
    ld->nerrors++;
}

/* A limit on the compiled program: said once, and compiling stops there. */
static void too_large(struct loader *ld, const xmlNode *n, long max, const char *what)
{
    if (!ld->too_large++)
        lerr(ld, n, "description too large: more than %ld %s once blocks are included", max,
             what);
}

static int is(const xmlNode *n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

/* An attribute's value (malloc'd by libxml2: release with xmlFree), or NULL. */
static char *attr(const xmlNode *n, const char *name)
{
    return (char *)xmlGetProp(n, (const xmlChar *)name);
}

static char *xstrdup(struct loader *ld, const char *s)
{
    char *d = strdup(s);
    if (!d)
        ld->oom = 1;
    return d;
}

/* A whole number attribute in [min, max]: decimal or 0x hex. */
static int num_attr(struct loader *ld, const xmlNode *n, const char *name, int64_t min,
                    int64_t max, int64_t *out)
{
    char *v = attr(n, name);
    if (!v) {
        lerr(ld, n, "<%s> needs a %s attribute", n->name, name);
        return -1;
    }
    char *end;
    errno = 0;
    int neg = v[0] == '-';
    int hex = v[neg] == '0' && (v[neg + 1] == 'x' || v[neg + 1] == 'X');
    long long x = strtoll(v, &end, hex ? 16 : 10);
    int bad = !isdigit((unsigned char)v[neg]) || *end || errno || x < min || x > max;
    if (bad)
        lerr(ld, n, "%s='%s' is not a number from %lld to %lld", name, v, (long long)min,
             (long long)max);
    xmlFree(v);
    *out = x;
    return bad ? -1 : 0;
}

/* A bit mask: 1 to 2^64-1, decimal or 0x hex (num_attr stops at INT64_MAX). */
static int mask_attr(struct loader *ld, const xmlNode *n, uint64_t *out)
{
    char *v = attr(n, "mask");
    if (!v) {
        lerr(ld, n, "<%s> needs a mask attribute", n->name);
        return -1;
    }
    int hex = v[0] == '0' && (v[1] == 'x' || v[1] == 'X');
    unsigned long long x = 0;
    int bad = !isdigit((unsigned char)v[0]);   /* strtoull would take "-1" */
    if (!bad) {
        char *end;
        errno = 0;
        x = strtoull(v, &end, hex ? 16 : 10);
        bad = *end || errno || x == 0;
    }
    if (bad)
        lerr(ld, n, "mask='%s' is not a number from 1 to 0xffffffffffffffff", v);
    xmlFree(v);
    *out = x;
    return bad ? -1 : 0;
}

static int valid_name(const char *v)
{
    for (const char *p = v; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
            return 0;
    return *v != 0;
}

/* A token as NetPDL writes it: \xHH, \r, \n, \t, \\ and \0 are escapes. */
static int add_token(struct loader *ld, const xmlNode *n, const char *text)
{
    struct netpdl_set *s = ld->s;
    size_t len = strlen(text);
    uint8_t *b = malloc(len + 1);
    if (!b || pdl_grow((void **)&s->tok, &s->captok, s->ntok, sizeof *s->tok) < 0) {
        free(b);
        ld->oom = 1;
        return -1;
    }
    uint32_t k = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] != '\\') {
            b[k++] = (uint8_t)text[i];
            continue;
        }
        char e = text[++i];
        if (e == 'x' && isxdigit((unsigned char)text[i + 1]) &&
            isxdigit((unsigned char)text[i + 2])) {
            char hex[3] = {text[i + 1], text[i + 2], 0};
            b[k++] = (uint8_t)strtoul(hex, NULL, 16);
            i += 2;
        } else if (e && strchr("rnt\\0", e)) {
            b[k++] = (uint8_t)(e == 'r'   ? '\r'
                               : e == 'n' ? '\n'
                               : e == 't' ? '\t'
                               : e == '0' ? 0
                                          : '\\');
        } else {
            lerr(ld, n, "token '%s': unknown escape (dati knows \\xHH \\r \\n \\t \\\\ \\0)", text);
            free(b);
            return -1;
        }
    }
    if (k == 0) {
        lerr(ld, n, "empty token");
        free(b);
        return -1;
    }
    s->tok[s->ntok] = (struct pdl_token){b, k};
    return (int)s->ntok++;
}

static int add_regex(struct loader *ld, const xmlNode *n, const char *pat, uint32_t options)
{
    struct netpdl_set *s = ld->s;
    for (uint32_t i = 0; i < s->nre; i++)   /* a block included twice: one regex */
        if (s->re[i].options == options && strcmp(s->re[i].src, pat) == 0)
            return (int)i;
    int code;
    PCRE2_SIZE off;
    /* payloads are bytes: a (*UTF) in a pattern is refused */
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                                   options | PCRE2_NEVER_UTF, &code, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        lerr(ld, n, "regex '%.80s' does not compile: %s at offset %zu", pat, (char *)msg,
             (size_t)off);
        return -1;
    }
    char *src = strdup(pat);
    if (!src || pdl_grow((void **)&s->re, &s->capre, s->nre, sizeof *s->re) < 0) {
        free(src);
        pcre2_code_free(re);
        ld->oom = 1;
        return -1;
    }
    s->re[s->nre] = (struct pdl_regex){re, pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0, src,
                                       options};
    return (int)s->nre++;
}

/* Reads a token or regex pair of attributes (e.g. endtoken/endregex):
 * exactly one must be there. */
static int match_attr(struct loader *ld, const xmlNode *n, const char *which, uint32_t re_opts,
                      struct pdl_match *m)
{
    char tname[32], rname[32];
    snprintf(tname, sizeof tname, "%stoken", which);
    snprintf(rname, sizeof rname, "%sregex", which);
    char *t = attr(n, tname), *r = attr(n, rname);
    int rc = -1;
    m->tok = m->re = -1;
    if (!t == !r)
        lerr(ld, n, "field needs either %s or %s", tname, rname);
    else if (t)
        rc = (m->tok = add_token(ld, n, t)) < 0 ? -1 : 0;
    else
        rc = (m->re = add_regex(ld, n, r, re_opts)) < 0 ? -1 : 0;
    xmlFree(t);
    xmlFree(r);
    return rc;
}

static int add_step(struct loader *ld, const xmlNode *n, struct pdl_step st)
{
    struct netpdl_set *s = ld->s;
    if (s->nsteps >= PDL_MAX_STEPS) {
        too_large(ld, n, PDL_MAX_STEPS, "steps");
        return -1;
    }
    if (pdl_grow((void **)&s->step, &s->capsteps, s->nsteps, sizeof *s->step) < 0) {
        ld->oom = 1;
        return -1;
    }
    s->step[s->nsteps] = st;
    return (int)s->nsteps++;
}

/* Compiles a number expression; what names its element in the message.
 * Each inlined copy compiles its own: the total is capped. */
static int compile_expr(struct loader *ld, const xmlNode *n, const char *text, const char *what)
{
    char err[512];
    int e = pdl_expr_compile(ld->s, ld->proto, text, 0, err, sizeof err);
    if (e < 0) {
        lerr(ld, n, "%s: %s", what, err);
        return -1;
    }
    if (ld->s->ninsn > PDL_MAX_INSN) {
        too_large(ld, n, PDL_MAX_INSN, "expression instructions");
        return -1;
    }
    return e;
}

static const struct {
    const char *name;
    enum pdl_ftype type;
} ftypes[] = {
    {"fixed", FT_FIXED},          {"bit", FT_BIT},       {"variable", FT_VARIABLE},
    {"line", FT_LINE},            {"tokenended", FT_TOKENENDED},
    {"tokenwrapped", FT_TOKENWRAPPED}, {"pattern", FT_PATTERN}, {"eatall", FT_EATALL},
    {"padding", FT_PADDING},
};

/* The slot for field `name` of the current protocol: the same name used in
 * two branches (a switch's cases) is one field, shown one way. */
static int field_slot(struct loader *ld, const xmlNode *n, const char *name, enum pdl_ftype t,
                      uint8_t show)
{
    struct netpdl_set *s = ld->s;
    struct pdl_proto *pr = &s->proto[ld->proto];
    char full[256];
    if ((size_t)snprintf(full, sizeof full, "%s.%s", pr->name, name) >= sizeof full) {
        lerr(ld, n, "field name '%s' too long", name);
        return -1;
    }
    for (int i = pr->first_slot; i < s->nfields; i++) {
        struct pdl_field *f = &s->field[i];
        if (strcmp(f->name, full) != 0)
            continue;
        if ((f->ftype == FT_BIT) != (t == FT_BIT) || f->show != show) {
            lerr(ld, n, "field %s already defined at %s:%d as a %s", full, f->file, f->line,
                 f->ftype == FT_BIT                  ? "bit field"
                 : f->show == NETPDL_SHOW_NUMBER     ? "number"
                 : f->show == NETPDL_SHOW_DNSNAME    ? "DNS name"
                                                     : "byte string");
            return -1;
        }
        return i;
    }
    if (s->nfields == NETPDL_MAX_FIELDS) {
        lerr(ld, n, "too many fields (at most %d in the descriptions of one filter)",
             NETPDL_MAX_FIELDS);
        return -1;
    }
    if (show == NETPDL_SHOW_DNSNAME && s->ndnsnames == NETPDL_MAX_DNSNAMES) {
        lerr(ld, n, "too many DNSName fields (at most %d in the descriptions of one filter)",
             NETPDL_MAX_DNSNAMES);
        return -1;
    }
    s->ndnsnames += show == NETPDL_SHOW_DNSNAME;
    struct pdl_field *f = &s->field[s->nfields];
    memset(f, 0, sizeof *f);
    f->name = xstrdup(ld, full);
    f->file = ld->file;
    f->line = (int)xmlGetLineNo(n);
    f->proto = (uint8_t)ld->proto;
    f->ftype = (uint8_t)t;
    f->show = show;
    pr->nslots++;
    return s->nfields++;
}

/* NetPDL's numeric show templates; DNSName (dati's) shows a DNS name that
 * starts at the field as dotted text; everything else shows the bytes. */
static int numeric_template(const char *t)
{
    return t && (strncmp(t, "FieldDec", 8) == 0 || strncmp(t, "FieldHex", 8) == 0 ||
                 strncmp(t, "FieldBin", 8) == 0);
}

static int compile_field(struct loader *ld, const xmlNode *n)
{
    char *type = attr(n, "type"), *name = attr(n, "name"), *tmpl = attr(n, "showtemplate");
    char *expr = NULL, *pat = NULL;
    int rc = -1;
    struct pdl_step st = {.kind = STEP_FIELD, .expr = -1, .end = {-1, -1}, .begin = {-1, -1}};
    size_t i;
    if (!type || !name) {
        lerr(ld, n, "<field> needs type and name attributes");
        goto out;
    }
    if (!valid_name(name)) {
        lerr(ld, n, "field name '%s': letters, digits, _ and - only", name);
        goto out;
    }
    for (i = 0; i < sizeof ftypes / sizeof ftypes[0]; i++)
        if (strcmp(type, ftypes[i].name) == 0)
            break;
    if (i == sizeof ftypes / sizeof ftypes[0]) {
        lerr(ld, n, "field %s: unsupported field type '%s' (dati supports fixed, bit, variable, "
                    "line, tokenended, tokenwrapped, pattern, eatall, padding)", name, type);
        goto out;
    }
    st.ftype = (uint8_t)ftypes[i].type;
    /* NetPDL's other ways to place a token's end (endoffset, enddiscard, ...)
     * would change values silently if ignored: refused */
    for (const xmlAttr *a = n->properties; a; a = a->next) {
        const char *an = (const char *)a->name;
        if ((strncmp(an, "begin", 5) == 0 || strncmp(an, "end", 3) == 0) &&
            strcmp(an, "begintoken") != 0 && strcmp(an, "beginregex") != 0 &&
            strcmp(an, "endtoken") != 0 && strcmp(an, "endregex") != 0) {
            lerr(ld, n, "field %s: attribute %s is not supported by dati", name, an);
            goto out;
        }
    }
    int64_t v;
    uint64_t mask = 0;
    uint8_t show = NETPDL_SHOW_BYTES;
    switch (ftypes[i].type) {
    case FT_FIXED:
        if (num_attr(ld, n, "size", 1, 65535, &v) < 0)
            goto out;
        st.size = (uint32_t)v;
        if (numeric_template(tmpl)) {
            if (v > 8) {
                lerr(ld, n, "field %s: a number is at most 8 bytes (size %d)", name, (int)v);
                goto out;
            }
            show = NETPDL_SHOW_NUMBER;
        }
        break;
    case FT_BIT:
        if (num_attr(ld, n, "size", 1, 8, &v) < 0)
            goto out;
        st.size = (uint32_t)v;
        if (mask_attr(ld, n, &mask) < 0)
            goto out;
        if (v < 8 && mask >> (8 * v)) {
            lerr(ld, n, "field %s: mask wider than size %d bytes", name, (int)v);
            goto out;
        }
        st.mask = mask;
        show = NETPDL_SHOW_NUMBER;
        break;
    case FT_VARIABLE: {
        char what[300];
        if (!(expr = attr(n, "expr"))) {
            lerr(ld, n, "field %s: variable needs an expr attribute", name);
            goto out;
        }
        snprintf(what, sizeof what, "field %s", name);
        if ((st.expr = compile_expr(ld, n, expr, what)) < 0)
            goto out;
        break;
    }
    case FT_TOKENENDED:
        if (match_attr(ld, n, "end", 0, &st.end) < 0)
            goto out;
        break;
    case FT_TOKENWRAPPED:
        if (match_attr(ld, n, "begin", PCRE2_ANCHORED, &st.begin) < 0 ||
            match_attr(ld, n, "end", 0, &st.end) < 0)
            goto out;
        break;
    case FT_PATTERN:
        if (!(pat = attr(n, "pattern"))) {
            lerr(ld, n, "field %s: pattern needs a pattern attribute", name);
            goto out;
        }
        if ((st.end.re = add_regex(ld, n, pat, 0)) < 0)
            goto out;
        break;
    case FT_PADDING:
        if (num_attr(ld, n, "align", 1, 65535, &v) < 0)
            goto out;
        st.size = (uint32_t)v;
        break;
    case FT_LINE:
    case FT_EATALL:
        break;
    }
    if (tmpl && strcmp(tmpl, "DNSName") == 0) {
        if (show != NETPDL_SHOW_BYTES) {
            lerr(ld, n, "field %s: a DNSName is not a number", name);
            goto out;
        }
        show = NETPDL_SHOW_DNSNAME;
    }
    int slot = field_slot(ld, n, name, ftypes[i].type, show);
    if (slot < 0)
        goto out;
    if (st.ftype == FT_BIT) {
        struct pdl_field *f = &ld->s->field[slot];
        if (f->mask && f->mask != st.mask) {
            lerr(ld, n, "field %s already defined at %s:%d with another mask", f->name, f->file,
                 f->line);
            goto out;
        }
        f->mask = st.mask;
        f->shift = (uint8_t)__builtin_ctzll(st.mask);
    }
    st.slot = (uint16_t)slot;
    rc = add_step(ld, n, st) < 0 ? -1 : 0;
out:
    xmlFree(type);
    xmlFree(name);
    xmlFree(tmpl);
    xmlFree(expr);
    xmlFree(pat);
    return rc;
}

static int compile_list(struct loader *ld, const xmlNode *first);

static xmlNode *find_block(struct loader *ld, const char *name)
{
    for (xmlNode *b = ld->format->children; b; b = b->next) {
        if (!is(b, "block"))
            continue;
        char *bn = attr(b, "name");
        int same = bn && strcmp(bn, name) == 0;
        xmlFree(bn);
        if (same)
            return b;
    }
    return NULL;
}

static int compile_include(struct loader *ld, const xmlNode *n)
{
    char *name = attr(n, "name");
    int rc = -1;
    if (!name) {
        lerr(ld, n, "<includeblk> needs a name attribute");
        return -1;
    }
    xmlNode *b = find_block(ld, name);
    if (!b) {
        lerr(ld, n, "no <block name=\"%s\"> in this protocol's <format>", name);
        goto out;
    }
    for (int i = 0; i < ld->nincl; i++) {
        if (ld->incl[i] == b) {
            lerr(ld, n, "block %s includes itself (defined at line %ld)", name,
                 xmlGetLineNo(b));
            goto out;
        }
    }
    if (ld->nincl == LOAD_MAX_DEPTH) {
        lerr(ld, n, "blocks included more than %d deep", LOAD_MAX_DEPTH);
        goto out;
    }
    ld->incl[ld->nincl++] = b;
    rc = compile_list(ld, b->children);
    ld->nincl--;
out:
    xmlFree(name);
    return rc;
}

/* Compiles one case's body, followed by a jump to the switch's end (its
 * target, patched by the caller). */
static int compile_branch(struct loader *ld, const xmlNode *c, uint32_t *jumps, int *njumps)
{
    if (compile_list(ld, c->children) < 0)
        return -1;
    int j = add_step(ld, c, (struct pdl_step){.kind = STEP_JUMP, .expr = -1});
    if (j < 0)
        return -1;
    jumps[(*njumps)++] = (uint32_t)j;
    return 0;
}

static int compile_switch(struct loader *ld, const xmlNode *n)
{
    struct netpdl_set *s = ld->s;
    char *expr = attr(n, "expr");
    int rc = -1, ncases = 0, njumps = 0, has_default = 0;
    struct pdl_case *cases = malloc(LOAD_MAX_CASES * sizeof *cases);
    uint32_t *jumps = malloc((LOAD_MAX_CASES + 1) * sizeof *jumps);
    if (!cases || !jumps) {
        ld->oom = 1;
        goto out;
    }
    if (!expr) {
        lerr(ld, n, "<switch> needs an expr attribute");
        goto out;
    }
    struct pdl_step st = {.kind = STEP_SWITCH, .end = {-1, -1}, .begin = {-1, -1}};
    if ((st.expr = compile_expr(ld, n, expr, "switch")) < 0)
        goto out;
    int sw = add_step(ld, n, st);
    if (sw < 0)
        goto out;
    for (const xmlNode *c = n->children; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE)
            continue;
        if (is(c, "case")) {
            int64_t lo, hi;
            if (ncases == LOAD_MAX_CASES) {
                lerr(ld, c, "too many cases (at most %d)", LOAD_MAX_CASES);
                goto out;
            }
            if (num_attr(ld, c, "value", INT64_MIN, INT64_MAX, &lo) < 0)
                goto out;
            hi = lo;
            if (xmlHasProp(c, (const xmlChar *)"maxvalue") &&
                num_attr(ld, c, "maxvalue", lo, INT64_MAX, &hi) < 0)
                goto out;
            cases[ncases++] = (struct pdl_case){lo, hi, s->nsteps};
            if (compile_branch(ld, c, jumps, &njumps) < 0)
                goto out;
        } else if (is(c, "default")) {
            if (has_default++) {
                lerr(ld, c, "a switch has one <default>");
                goto out;
            }
            s->step[sw].target = s->nsteps;
            if (compile_branch(ld, c, jumps, &njumps) < 0)
                goto out;
        } else {
            lerr(ld, c, "<%s> in a <switch>: dati supports <case> and <default>", c->name);
            goto out;
        }
    }
    uint32_t end = s->nsteps;
    for (int i = 0; i < njumps; i++)
        s->step[jumps[i]].target = end;
    if (!has_default)
        s->step[sw].target = end;
    for (int i = 0; i < ncases; i++) {
        if (pdl_grow((void **)&s->cases, &s->capcases, s->ncases, sizeof *s->cases) < 0) {
            ld->oom = 1;
            goto out;
        }
        s->cases[s->ncases++] = cases[i];
    }
    s->step[sw].case0 = s->ncases - (uint32_t)ncases;
    s->step[sw].ncases = (uint32_t)ncases;
    rc = 0;
out:
    free(cases);
    free(jumps);
    xmlFree(expr);
    return rc;
}

/* <if expr> with <if-true> and <if-false>: a switch on (expr != 0) whose
 * one case is 1 (the true branch, or the end without one) and whose
 * default is the false branch (or the end). */
static int compile_if(struct loader *ld, const xmlNode *n)
{
    struct netpdl_set *s = ld->s;
    char *expr = attr(n, "expr");
    int rc = -1, has[2] = {0, 0};
    uint32_t jumps[2];
    int njumps = 0;
    struct pdl_step st = {.kind = STEP_SWITCH, .end = {-1, -1}, .begin = {-1, -1}};
    if (!expr) {
        lerr(ld, n, "<if> needs an expr attribute");
        return -1;
    }
    if ((st.expr = compile_expr(ld, n, expr, "if")) < 0)
        goto out;
    /* the expression is the last one compiled: make its value 0 or 1 */
    if (pdl_grow((void **)&s->insn, &s->capinsn, s->ninsn, sizeof *s->insn) < 0) {
        ld->oom = 1;
        goto out;
    }
    s->insn[s->ninsn++] = (struct pdl_insn){OP_BOOL, 0};
    s->expr[st.expr].n++;
    int sw = add_step(ld, n, st);
    if (sw < 0)
        goto out;
    uint32_t true_at = 0;
    for (const xmlNode *c = n->children; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE)
            continue;
        int which = is(c, "if-true") ? 1 : is(c, "if-false") ? 0 : -1;
        if (which < 0 || has[which]++) {
            lerr(ld, c, which < 0 ? "<%s> in an <if>: dati supports <if-true> and <if-false>"
                                  : "<%s> twice in one <if>", c->name);
            goto out;
        }
        if (which)
            true_at = s->nsteps;
        else
            s->step[sw].target = s->nsteps;
        if (compile_branch(ld, c, jumps, &njumps) < 0)
            goto out;
    }
    uint32_t end = s->nsteps;
    for (int i = 0; i < njumps; i++)
        s->step[jumps[i]].target = end;
    if (!has[0])
        s->step[sw].target = end;
    /* always a case for 1: with only <if-false>, true must not take it */
    if (pdl_grow((void **)&s->cases, &s->capcases, s->ncases, sizeof *s->cases) < 0) {
        ld->oom = 1;
        goto out;
    }
    s->cases[s->ncases] = (struct pdl_case){1, 1, has[1] ? true_at : end};
    s->step[sw].case0 = s->ncases++;
    s->step[sw].ncases = 1;
    rc = 0;
out:
    xmlFree(expr);
    return rc;
}

static int compile_node(struct loader *ld, const xmlNode *n)
{
    if (ld->depth >= LOAD_MAX_DEPTH) {
        lerr(ld, n, "nested more than %d deep", LOAD_MAX_DEPTH);
        return -1;
    }
    /* steps alone do not bound the work: blocks may include nothing twice */
    if (++ld->elements > LOAD_MAX_ELEMENTS) {
        too_large(ld, n, LOAD_MAX_ELEMENTS, "elements");
        return -1;
    }
    ld->depth++;
    int rc;
    if (is(n, "field"))
        rc = compile_field(ld, n);
    else if (is(n, "block"))
        rc = compile_list(ld, n->children);   /* an inline block only groups */
    else if (is(n, "includeblk"))
        rc = compile_include(ld, n);
    else if (is(n, "switch"))
        rc = compile_switch(ld, n);
    else if (is(n, "if"))
        rc = compile_if(ld, n);
    else {
        lerr(ld, n, "unsupported element <%s> (dati supports field, block, includeblk, switch, "
                    "if; see doc/netpdl.md)", n->name);
        rc = -1;
    }
    ld->depth--;
    return rc;
}

/* Compiles every element of a list; goes on after an error to report more. */
static int compile_list(struct loader *ld, const xmlNode *first)
{
    int rc = 0;
    for (const xmlNode *n = first; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE)
            continue;   /* text, comments */
        if (compile_node(ld, n) < 0)
            rc = -1;
        if (ld->oom || ld->too_large)
            return -1;
    }
    return rc;
}

static const struct pdl_proto *find_proto(const struct netpdl_set *s, const char *name)
{
    for (int i = 0; i < s->nprotos; i++)
        if (strcmp(s->proto[i].name, name) == 0)
            return &s->proto[i];
    return NULL;
}

static void compile_protocol(struct loader *ld, xmlNode *p)
{
    struct netpdl_set *s = ld->s;
    char *name = attr(p, "name");
    if (!name || !valid_name(name)) {
        lerr(ld, p, "<protocol> needs a name of letters, digits, _ and -");
        goto out;
    }
    const struct pdl_proto *other = find_proto(s, name);
    if (other) {
        lerr(ld, p, "protocol %s already defined at %s:%d", name, other->file, other->line);
        goto out;
    }
    if (s->nprotos == NETPDL_MAX_PROTOS) {
        lerr(ld, p, "too many protocols (at most %d in the descriptions of one filter)",
             NETPDL_MAX_PROTOS);
        goto out;
    }
    xmlNode *format = NULL, *fields = NULL;
    for (xmlNode *c = p->children; c; c = c->next)
        if (is(c, "format"))
            format = c;
    for (xmlNode *c = format ? format->children : NULL; c; c = c->next)
        if (is(c, "fields"))
            fields = c;
    if (!fields) {
        lerr(ld, p, "protocol %s has no <format><fields>", name);
        goto out;
    }
    struct pdl_proto *pr = &s->proto[s->nprotos];
    *pr = (struct pdl_proto){xstrdup(ld, name), ld->file, (int)xmlGetLineNo(p), s->nsteps,
                             (uint16_t)s->nfields, 0};
    ld->proto = s->nprotos++;
    if (ld->oom)
        goto out;   /* expressions would read the NULL name */
    ld->format = format;
    if (compile_list(ld, fields->children) == 0)
        add_step(ld, fields, (struct pdl_step){.kind = STEP_END, .expr = -1});
out:
    xmlFree(name);
}

/* Undoes everything added since `m`: a description with errors adds nothing. */
static void rollback(struct netpdl_set *s, const struct netpdl_set *m)
{
    for (int i = m->nprotos; i < s->nprotos; i++)
        free(s->proto[i].name);
    for (int i = m->nfields; i < s->nfields; i++) {
        free(s->field[i].name);
        if (s->wanted[i])
            s->nwanted--;
        s->wanted[i] = 0;
    }
    for (uint32_t i = m->ntok; i < s->ntok; i++)
        free(s->tok[i].bytes);
    for (uint32_t i = m->nre; i < s->nre; i++) {
        pcre2_code_free(s->re[i].code);
        free(s->re[i].src);
    }
    s->nprotos = m->nprotos;
    s->nfields = m->nfields;
    s->ndnsnames = m->ndnsnames;
    s->nsteps = m->nsteps;
    s->ncases = m->ncases;
    s->ninsn = m->ninsn;
    s->nexpr = m->nexpr;
    s->ntok = m->ntok;
    s->nre = m->nre;
}

/* The line of the DOCTYPE, for its message (libxml2 keeps none for it). */
static int doctype_line(const char *text, size_t len)
{
    const char *d = memmem(text, len, "<!DOCTYPE", 9);
    int line = 1;
    for (const char *p = text; d && p < d; p++)
        line += *p == '\n';
    return line;
}

/* libxml2 reports errors as it goes; the first one is the cause. */
struct xml_first_error {
    int line, seen;
    char msg[256];
};

static void keep_first_error(void *ctx, xmlErrorPtr e)
{
    struct xml_first_error *fe = ctx;
    if (fe->seen || !e || e->level < XML_ERR_ERROR)
        return;
    fe->seen = 1;
    fe->line = e->line;
    snprintf(fe->msg, sizeof fe->msg, "%s", e->message ? e->message : "unreadable");
    fe->msg[strcspn(fe->msg, "\n")] = 0;
}

int netpdl_set_load_mem(struct netpdl_set *s, const char *text, size_t len, const char *name,
                        FILE *errs)
{
    char **files = realloc(s->files, (size_t)(s->nfiles + 1) * sizeof *files);
    if (!files)
        return -1;
    s->files = files;
    if (!(files[s->nfiles] = strdup(name)))
        return -1;
    struct loader ld = {.s = s, .file = files[s->nfiles], .errs = errs};
    struct netpdl_set mark = *s;
    if (len > LOAD_MAX_SIZE || len > INT32_MAX) {
        lerr(&ld, NULL, "larger than 16 MiB");
        goto done;
    }
    struct xml_first_error fe = {0, 0, "unreadable"};
    xmlSetStructuredErrorFunc(&fe, keep_first_error);
    xmlDoc *doc = xmlReadMemory(text, (int)len, name, NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
                                    XML_PARSE_BIG_LINES);
    xmlSetStructuredErrorFunc(NULL, NULL);
    if (!doc) {
        if (errs)
            fprintf(errs, "%s:%d: malformed XML: %s\n", name, fe.line, fe.msg);
        ld.nerrors++;
        goto done;
    }
    xmlNode *root = xmlDocGetRootElement(doc);
    if (doc->intSubset || doc->extSubset) {
        /* entities (&f;) would be dropped from lists or change values
         * silently, and expanding them invites entity bombs: refused */
        if (errs)
            fprintf(errs, "%s:%d: a DOCTYPE is not supported (no DTD, no entities)\n", name,
                    doctype_line(text, len));
        ld.nerrors++;
    } else if (root && is(root, "protocol")) {
        compile_protocol(&ld, root);
    } else if (root && is(root, "netpdl")) {
        int any = 0;
        for (xmlNode *p = root->children; p && !ld.oom; p = p->next) {
            if (is(p, "protocol")) {
                compile_protocol(&ld, p);
                any = 1;
            }
        }
        if (!any)
            lerr(&ld, root, "no <protocol> in <netpdl>");
    } else {
        lerr(&ld, root, "the root element is <netpdl> or <protocol>");
    }
    xmlFreeDoc(doc);
done:
    if (ld.oom) {
        rollback(s, &mark);
        free(files[s->nfiles]);
        return -1;
    }
    if (ld.nerrors) {
        rollback(s, &mark);
        free(files[s->nfiles]);
        return ld.nerrors;
    }
    s->nfiles++;
    return 0;
}

int netpdl_set_load(struct netpdl_set *s, const char *path, const char *name, FILE *errs)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    const char *why = NULL;
    if (!f)
        why = strerror(errno);
    else if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode))
        why = "not a regular file";
    else if (st.st_size > LOAD_MAX_SIZE)
        why = "larger than 16 MiB";
    if (why) {
        if (errs)
            fprintf(errs, "%s: cannot read: %s\n", name, why);
        if (f)
            fclose(f);
        return 1;
    }
    char *text = malloc((size_t)st.st_size + 1);
    size_t n = text ? fread(text, 1, (size_t)st.st_size, f) : 0;
    int bad = !text || ferror(f);
    fclose(f);
    if (bad) {
        if (errs)
            fprintf(errs, "%s: cannot read%s\n", name, text ? "" : ": out of memory");
        free(text);
        return 1;
    }
    int rc = netpdl_set_load_mem(s, text, n, name, errs);
    free(text);
    return rc;
}

struct netpdl_set *netpdl_set_create(void)
{
    xmlInitParser();
    return calloc(1, sizeof(struct netpdl_set));
}

void netpdl_set_destroy(struct netpdl_set *s)
{
    if (!s)
        return;
    struct netpdl_set empty = {0};
    rollback(s, &empty);
    for (int i = 0; i < s->nfiles; i++)
        free(s->files[i]);
    free(s->files);
    free(s->step);
    free(s->cases);
    free(s->insn);
    free(s->expr);
    free(s->tok);
    free(s->re);
    free(s);
}

int netpdl_set_lookup(const struct netpdl_set *s, const char *name)
{
    for (int i = 0; s && i < s->nfields; i++)
        if (strcmp(s->field[i].name, name) == 0)
            return i;
    return -1;
}

void netpdl_set_want(struct netpdl_set *s, int slot)
{
    if (s && slot >= 0 && slot < s->nfields && !s->wanted[slot]) {
        s->wanted[slot] = 1;
        s->nwanted++;
    }
}

int netpdl_set_nfields(const struct netpdl_set *s)
{
    return s ? s->nfields : 0;
}

const char *netpdl_field_name(const struct netpdl_set *s, int slot)
{
    return s && slot >= 0 && slot < s->nfields ? s->field[slot].name : NULL;
}
