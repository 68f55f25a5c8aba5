/* netpdl-expr.c - NetPDL expressions ($packet[off:len], $currentoffset,
 * buf2int(), arithmetic, comparisons, and/or) compiled once into postfix
 * instructions with their types checked, and evaluated per packet on a
 * fixed stack: no allocation, no strings, every read bounds-checked. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "netpdl-int.h"

enum { T_NUM, T_BUF, T_ERR = -1 };

struct cparse {
    struct netpdl_set *s;
    int proto;
    const char *text, *p;
    uint32_t first;     /* of this expression in s->insn */
    int depth, max_depth;
    int nest;           /* recursion of the parser: parentheses, unary operators */
    char *err;
    size_t errlen;
    int failed;
};

static void cerr(struct cparse *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void cerr(struct cparse *c, const char *fmt, ...)
{
    if (c->failed)
        return;   /* the first error is the one to report */
    c->failed = 1;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int shown = strlen(c->text) > 80 ? 77 : 80;   /* a long expression is shortened */
    snprintf(c->err, c->errlen, "expression '%.*s%s': %s (at offset %d)", shown, c->text,
             strlen(c->text) > 80 ? "..." : "", msg, (int)(c->p - c->text));
}

int pdl_grow(void **arr, uint32_t *cap, uint32_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    uint32_t ncap = *cap ? *cap * 2 : 16;
    void *a = realloc(*arr, ncap * elem);
    if (!a)
        return -1;
    *arr = a;
    *cap = ncap;
    return 0;
}

/* Appends an instruction; returns its index within the expression. */
static uint32_t emit(struct cparse *c, enum pdl_op op, int64_t arg, int push)
{
    struct netpdl_set *s = c->s;
    if (pdl_grow((void **)&s->insn, &s->capinsn, s->ninsn, sizeof *s->insn) < 0) {
        cerr(c, "out of memory");
        return 0;
    }
    s->insn[s->ninsn++] = (struct pdl_insn){(uint8_t)op, arg};
    c->depth += push;
    if (c->depth > c->max_depth)
        c->max_depth = c->depth;
    if (c->depth > PDL_STACK)
        cerr(c, "nested too deeply (at most %d values)", PDL_STACK);
    return s->ninsn - 1 - c->first;
}

static void skip_space(struct cparse *c)
{
    while (isspace((unsigned char)*c->p))
        c->p++;
}

/* Consumes the operator or word op when it comes next. */
static int accept(struct cparse *c, const char *op)
{
    skip_space(c);
    size_t n = strlen(op);
    if (strncmp(c->p, op, n) != 0)
        return 0;
    if (isalpha((unsigned char)op[0]) && (isalnum((unsigned char)c->p[n]) || c->p[n] == '_'))
        return 0;   /* a word must end there */
    /* "<" must not be the start of "<=" or "<<", and so on */
    if (n == 1 && strchr("<>=!&|", op[0]) && c->p[1] && strchr("<>=&|", c->p[1]))
        return 0;
    c->p += n;
    return 1;
}

static int parse_or(struct cparse *c);

static int need_num(struct cparse *c, int t, const char *what)
{
    if (t == T_BUF)
        cerr(c, "%s needs a number, not a buffer (use buf2int())", what);
    return t == T_NUM;
}

static int ident_len(const char *p)
{
    int n = 0;
    if (!isalpha((unsigned char)p[0]) && p[0] != '_')
        return 0;
    while (isalnum((unsigned char)p[n]) || p[n] == '_')
        n++;
    return n;
}

/* A field of the current protocol, by its short name. */
static int field_slot(struct cparse *c, const char *name, int n)
{
    const struct netpdl_set *s = c->s;
    const struct pdl_proto *pr = &s->proto[c->proto];
    size_t pl = strlen(pr->name);
    for (int i = pr->first_slot; i < s->nfields; i++) {
        const char *fn = s->field[i].name;
        if (s->field[i].proto == c->proto && strncmp(fn + pl + 1, name, (size_t)n) == 0 &&
            fn[pl + 1 + n] == 0)
            return i;
    }
    return -1;
}

static int parse_primary(struct cparse *c)
{
    skip_space(c);
    const char *p = c->p;
    if (isdigit((unsigned char)*p)) {
        char *end;
        errno = 0;
        int hex = p[0] == '0' && (p[1] == 'x' || p[1] == 'X');
        unsigned long long v = strtoull(p, &end, hex ? 16 : 10);
        if (errno || isalnum((unsigned char)*end) || v > INT64_MAX) {
            cerr(c, "bad number");
            return T_ERR;
        }
        c->p = end;
        emit(c, OP_NUM, (int64_t)v, 1);
        return T_NUM;
    }
    if (accept(c, "(")) {
        c->nest++;
        int t = parse_or(c);
        c->nest--;
        if (t != T_ERR && !accept(c, ")")) {
            cerr(c, "')' expected");
            return T_ERR;
        }
        return t;
    }
    if (*p == '$') {
        c->p++;
        int n = ident_len(c->p);
        const char *w = c->p;
        c->p += n;
        if (n == 13 && strncmp(w, "currentoffset", 13) == 0) {
            emit(c, OP_CUROFF, 0, 1);
            return T_NUM;
        }
        if ((n == 13 && strncmp(w, "payloadlength", 13) == 0) ||
            (n == 12 && strncmp(w, "packetlength", 12) == 0)) {
            emit(c, OP_PAYLEN, 0, 1);
            return T_NUM;
        }
        if (n == 6 && strncmp(w, "packet", 6) == 0) {
            if (!accept(c, "[")) {
                cerr(c, "'[' expected after $packet");
                return T_ERR;
            }
            c->nest++;
            if (!need_num(c, parse_or(c), "an offset") || !accept(c, ":")) {
                cerr(c, "':' expected in $packet[offset:length]");
                return T_ERR;
            }
            if (!need_num(c, parse_or(c), "a length") || !accept(c, "]")) {
                cerr(c, "']' expected in $packet[offset:length]");
                return T_ERR;
            }
            c->nest--;
            emit(c, OP_PACKET, 0, -1);
            return T_BUF;
        }
        c->p = p;
        cerr(c, "unknown variable (dati knows $packet, $currentoffset, $payloadlength, "
                "$packetlength)");
        return T_ERR;
    }
    int n = ident_len(p);
    if (n == 0) {
        cerr(c, *p ? "unexpected character" : "unexpected end");
        return T_ERR;
    }
    c->p += n;
    int is_b2i = n == 7 && strncmp(p, "buf2int", 7) == 0;
    int is_a2i = n == 9 && strncmp(p, "ascii2int", 9) == 0;
    if (is_b2i || is_a2i) {
        if (!accept(c, "(")) {
            cerr(c, "'(' expected");
            return T_ERR;
        }
        c->nest++;
        int t = parse_or(c);
        c->nest--;
        if (t == T_NUM)
            cerr(c, "%.*s() needs a buffer", n, p);
        if (t != T_BUF || !accept(c, ")")) {
            cerr(c, "')' expected");
            return T_ERR;
        }
        emit(c, is_b2i ? OP_BUF2INT : OP_ASCII2INT, 0, 0);
        return T_NUM;
    }
    skip_space(c);
    if (*c->p == '(') {
        c->p = p;
        cerr(c, "unknown function '%.*s' (dati knows buf2int, ascii2int)", n, p);
        return T_ERR;
    }
    int slot = field_slot(c, p, n);
    if (slot < 0) {
        c->p = p;
        cerr(c, "unknown name '%.*s' (not a field defined before it in this protocol)", n, p);
        return T_ERR;
    }
    emit(c, OP_FIELD, slot, 1);
    c->s->field[slot].referenced = 1;
    if (c->s->field[slot].ftype == FT_BIT)
        return T_NUM;   /* a bit field is its masked value */
    return T_BUF;
}

static int parse_unary(struct cparse *c)
{
    if (c->nest > PDL_STACK) {
        cerr(c, "nested too deeply (at most %d levels)", PDL_STACK);
        return T_ERR;
    }
    enum pdl_op op;
    if (accept(c, "-"))
        op = OP_NEG;
    else if (accept(c, "~") || accept(c, "bitwnot"))
        op = OP_BNOT;
    else if (accept(c, "!") || accept(c, "not"))
        op = OP_LNOT;
    else
        return parse_primary(c);
    c->nest++;
    int t = parse_unary(c);
    c->nest--;
    if (!need_num(c, t, "a unary operator"))
        return T_ERR;
    emit(c, op, 0, 0);
    return T_NUM;
}

/* One level of left-associative binary operators. */
struct binop {
    const char *tok;
    enum pdl_op op;
};

static int parse_level(struct cparse *c, int level);

static const struct binop levels[][6] = {
    {{"|", OP_BOR}, {"bitwor", OP_BOR}},
    {{"^", OP_BXOR}},
    {{"&", OP_BAND}, {"bitwand", OP_BAND}},
    {{"<<", OP_SHL}, {">>", OP_SHR}},
    {{"+", OP_ADD}, {"-", OP_SUB}},
    {{"*", OP_MUL}, {"/", OP_DIV}, {"%", OP_MOD}, {"mod", OP_MOD}},
};
#define NLEVELS (int)(sizeof levels / sizeof levels[0])

static int parse_level(struct cparse *c, int level)
{
    if (level == NLEVELS)
        return parse_unary(c);
    int t = parse_level(c, level + 1);
    for (;;) {
        const struct binop *b = NULL;
        for (int i = 0; i < 6 && levels[level][i].tok; i++) {
            if (accept(c, levels[level][i].tok)) {
                b = &levels[level][i];
                break;
            }
        }
        if (!b)
            return t;
        if (!need_num(c, t, b->tok) || !need_num(c, parse_level(c, level + 1), b->tok))
            return T_ERR;
        emit(c, b->op, 0, -1);
        t = T_NUM;
    }
}

static int parse_cmp(struct cparse *c)
{
    static const struct binop cmps[] = {
        {"==", OP_EQ}, {"!=", OP_NE}, {"<=", OP_LE}, {">=", OP_GE}, {"<", OP_LT}, {">", OP_GT},
    };
    int t = parse_level(c, 0);
    for (size_t i = 0; i < sizeof cmps / sizeof cmps[0]; i++) {
        if (accept(c, cmps[i].tok)) {
            if (!need_num(c, t, cmps[i].tok) ||
                !need_num(c, parse_level(c, 0), cmps[i].tok))
                return T_ERR;
            emit(c, cmps[i].op, 0, -1);
            return T_NUM;
        }
    }
    return t;
}

/* and/or short-circuit, so "$payloadlength > 4 and buf2int($packet[4:1]) == 1"
 * does not fail on a short packet: `and` jumps past its right side on 0
 * (OP_JZ), `or` on nonzero (OP_JNZ). */
static int parse_logic(struct cparse *c, int (*operand)(struct cparse *), const char *word,
                       const char *symbol, enum pdl_op jump)
{
    int t = operand(c);
    while (accept(c, word) || accept(c, symbol)) {
        if (!need_num(c, t, word))
            return T_ERR;
        uint32_t j = emit(c, jump, 0, -1);
        if (!need_num(c, operand(c), word))
            return T_ERR;
        emit(c, OP_BOOL, 0, 0);
        if (!c->failed)
            c->s->insn[c->first + j].arg = c->s->ninsn - c->first;
        t = T_NUM;
    }
    return t;
}

static int parse_and(struct cparse *c)
{
    return parse_logic(c, parse_cmp, "and", "&&", OP_JZ);
}

static int parse_or(struct cparse *c)
{
    return parse_logic(c, parse_and, "or", "||", OP_JNZ);
}

int pdl_expr_compile(struct netpdl_set *s, int proto, const char *text, int want_buf, char *err,
                     size_t errlen)
{
    struct cparse c = {.s = s, .proto = proto, .text = text, .p = text, .first = s->ninsn,
                       .err = err, .errlen = errlen};
    int t = parse_or(&c);
    skip_space(&c);
    if (!c.failed && *c.p)
        cerr(&c, "unexpected text after the expression");
    if (!c.failed && t != (want_buf ? T_BUF : T_NUM))
        cerr(&c, want_buf ? "a buffer is needed here" : "a number is needed here (use buf2int())");
    if (!c.failed &&
        pdl_grow((void **)&s->expr, &s->capexpr, s->nexpr, sizeof *s->expr) < 0)
        cerr(&c, "out of memory");
    if (c.failed) {
        s->ninsn = c.first;
        return -1;
    }
    s->expr[s->nexpr] = (struct pdl_expr){c.first, s->ninsn - c.first};
    return (int)s->nexpr++;
}

struct val {
    int64_t n;
    uint32_t off, len;   /* buffers: payload bytes */
};

int pdl_expr_eval(const struct netpdl_set *s, int expr, const struct netpdl_run *r, uint32_t cur,
                  int64_t *out)
{
    struct val st[PDL_STACK + 1];
    int sp = 0;   /* number of values */
    const struct pdl_expr *e = &s->expr[expr];
    const struct pdl_insn *code = s->insn + e->first;
    const uint8_t *pl = r->payload;
    for (uint32_t pc = 0; pc < e->n; pc++) {
        const struct pdl_insn *in = &code[pc];
        struct val *a = sp >= 2 ? &st[sp - 2] : NULL;   /* left operand of a binary op */
        struct val *b = sp >= 1 ? &st[sp - 1] : NULL;
        uint64_t x = a ? (uint64_t)a->n : 0, y = b ? (uint64_t)b->n : 0;
        switch ((enum pdl_op)in->op) {
        case OP_NUM: st[sp++].n = in->arg; continue;
        case OP_CUROFF: st[sp++].n = cur; continue;
        case OP_PAYLEN: st[sp++].n = r->len; continue;
        case OP_PACKET:
            if (a->n < 0 || b->n < 0 || !BYTES_FITS((uint64_t)a->n, (uint64_t)b->n, r->len))
                return -1;
            a->off = (uint32_t)a->n;
            a->len = (uint32_t)b->n;
            sp--;
            continue;
        case OP_FIELD: {
            int slot = (int)in->arg;
            if (!r->present[slot])
                return -1;
            st[sp].off = r->val[slot].off;
            st[sp].len = r->val[slot].len;
            if (s->field[slot].ftype == FT_BIT) {
                uint64_t w = 0;
                for (uint32_t i = 0; i < st[sp].len; i++)
                    w = w << 8 | pl[st[sp].off + i];
                st[sp].n = (int64_t)((w & s->field[slot].mask) >> s->field[slot].shift);
            }
            sp++;
            continue;
        }
        case OP_BUF2INT: {
            if (b->len == 0 || b->len > 8)
                return -1;
            uint64_t w = 0;
            for (uint32_t i = 0; i < b->len; i++)
                w = w << 8 | pl[b->off + i];
            b->n = (int64_t)w;   /* 8-byte values above INT64_MAX wrap, as in C */
            continue;
        }
        case OP_ASCII2INT: {
            uint64_t w = 0;
            uint32_t i = 0;
            for (; i < b->len && pl[b->off + i] >= '0' && pl[b->off + i] <= '9'; i++) {
                uint64_t d = (uint64_t)(pl[b->off + i] - '0');
                if (w > (INT64_MAX - d) / 10)
                    return -1;   /* checked before: every value up to INT64_MAX */
                w = w * 10 + d;
            }
            if (i == 0)
                return -1;
            b->n = (int64_t)w;
            continue;
        }
        case OP_ADD: a->n = (int64_t)(x + y); break;
        case OP_SUB: a->n = (int64_t)(x - y); break;
        case OP_MUL: a->n = (int64_t)(x * y); break;
        case OP_DIV:
        case OP_MOD:
            if (b->n == 0 || (a->n == INT64_MIN && b->n == -1))
                return -1;
            a->n = in->op == OP_DIV ? a->n / b->n : a->n % b->n;
            break;
        case OP_BAND: a->n = (int64_t)(x & y); break;
        case OP_BOR: a->n = (int64_t)(x | y); break;
        case OP_BXOR: a->n = (int64_t)(x ^ y); break;
        case OP_SHL:
        case OP_SHR:
            if (y > 63)
                return -1;
            a->n = (int64_t)(in->op == OP_SHL ? x << y : x >> y);
            break;
        case OP_EQ: a->n = a->n == b->n; break;
        case OP_NE: a->n = a->n != b->n; break;
        case OP_LT: a->n = a->n < b->n; break;
        case OP_LE: a->n = a->n <= b->n; break;
        case OP_GT: a->n = a->n > b->n; break;
        case OP_GE: a->n = a->n >= b->n; break;
        case OP_NEG: b->n = (int64_t)(0 - y); continue;
        case OP_BNOT: b->n = (int64_t)~y; continue;
        case OP_LNOT: b->n = b->n == 0; continue;
        case OP_BOOL: b->n = b->n != 0; continue;
        case OP_JZ:
            if (b->n == 0) {
                pc = (uint32_t)in->arg - 1;
                continue;
            }
            sp--;
            continue;
        case OP_JNZ:
            if (b->n != 0) {
                b->n = 1;
                pc = (uint32_t)in->arg - 1;
                continue;
            }
            sp--;
            continue;
        }
        sp--;   /* binary operators: two values in, one out */
    }
    *out = st[0].n;
    return 0;
}
