/* netpdl-int.h - the compiled form of NetPDL descriptions, shared by the
 * loader (netpdl-load.c), the expression compiler (netpdl-expr.c) and the
 * runner (netpdl-run.c). Not for other modules: they use netpdl.h. */
#ifndef DATI_NETPDL_INT_H
#define DATI_NETPDL_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "netpdl.h"

#define PDL_STACK 32          /* expression evaluation stack, values */
#define PDL_MAX_STEPS 65536   /* a program after inlining blocks */
#define PDL_MAX_INSN (1 << 20) /* expression instructions of a set, 16 MiB */

/* Expression instructions, postfix. Types are checked at compile time, so
 * each instruction knows whether it handles numbers or buffers. */
enum pdl_op {
    OP_NUM,       /* push arg */
    OP_CUROFF,    /* push $currentoffset */
    OP_PAYLEN,    /* push $payloadlength (also $packetlength) */
    OP_PACKET,    /* pop len, off: push buffer $packet[off:len] */
    OP_FIELD,     /* push buffer: the value of field slot arg */
    OP_BUF2INT,   /* buffer -> number, big-endian, 1 to 8 bytes */
    OP_ASCII2INT, /* buffer -> number, decimal digits */
    OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MOD,
    OP_BAND, OP_BOR, OP_BXOR, OP_SHL, OP_SHR,
    OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE,
    OP_NEG, OP_BNOT, OP_LNOT,
    OP_JZ,        /* and: top is 0 -> jump to arg keeping it, else pop */
    OP_JNZ,       /* or: top is not 0 -> jump to arg keeping 1, else pop */
    OP_BOOL,      /* top = top != 0 */
};

struct pdl_insn {
    uint8_t op;
    int64_t arg;
};

enum pdl_ftype {
    FT_FIXED, FT_BIT, FT_VARIABLE, FT_LINE, FT_TOKENENDED, FT_TOKENWRAPPED,
    FT_PATTERN, FT_EATALL, FT_PADDING,
};

enum pdl_step_kind { STEP_FIELD, STEP_SWITCH, STEP_JUMP, STEP_END };

/* A literal token (endtoken, begintoken) or a compiled regex: exactly one. */
struct pdl_match {
    int32_t tok;   /* index into set->tok, or -1 */
    int32_t re;    /* index into set->re, or -1 */
};

struct pdl_step {
    uint8_t kind;           /* pdl_step_kind */
    uint8_t ftype;          /* pdl_ftype, for STEP_FIELD */
    uint16_t slot;          /* field slot, for STEP_FIELD */
    uint32_t size;          /* fixed and bit: bytes; padding: alignment */
    uint64_t mask;          /* bit */
    int32_t expr;           /* variable length, switch value: index into set->expr */
    struct pdl_match end;   /* tokenended, tokenwrapped; pattern uses end.re */
    struct pdl_match begin; /* tokenwrapped */
    uint32_t case0, ncases; /* switch: its cases in set->cases */
    uint32_t target;        /* switch: no case matched; jump: where to */
};

struct pdl_case {
    int64_t lo, hi;
    uint32_t target;
};

struct pdl_expr {
    uint32_t first, n;      /* instructions in set->insn */
};

struct pdl_field {
    char *name;             /* "<protocol>.<field>" */
    const char *file;       /* where it was defined, for messages */
    int line;
    uint8_t proto;
    uint8_t ftype;
    uint8_t show;           /* netpdl_show */
    uint64_t mask;          /* bit fields: value = (word & mask) >> shift */
    uint8_t shift;
    uint8_t referenced;     /* named in an expression */
};

struct pdl_proto {
    char *name;
    const char *file;
    int line;
    uint32_t first_step;
    uint16_t first_slot, nslots;
};

struct pdl_token {
    uint8_t *bytes;
    uint32_t len;
};

struct pdl_regex {
    pcre2_code *code;
    int jit;                /* JIT compiled: use pcre2_jit_match */
    char *src;              /* the pattern as written, to share it */
    uint32_t options;
};

struct netpdl_set {
    int nprotos;
    struct pdl_proto proto[NETPDL_MAX_PROTOS];
    int nfields;
    int ndnsnames;          /* fields shown as DNSName */
    struct pdl_field field[NETPDL_MAX_FIELDS];
    struct pdl_step *step;
    uint32_t nsteps, capsteps;
    struct pdl_case *cases;
    uint32_t ncases, capcases;
    struct pdl_insn *insn;
    uint32_t ninsn, capinsn;
    struct pdl_expr *expr;
    uint32_t nexpr, capexpr;
    struct pdl_token *tok;
    uint32_t ntok, captok;
    struct pdl_regex *re;
    uint32_t nre, capre;
    char **files;           /* names of the files loaded, owned */
    int nfiles;
    int nwanted;            /* slots asked for by netpdl_set_want() */
    uint8_t wanted[NETPDL_MAX_FIELDS];
};

/* Compiles text into the set's instructions. Field names resolve against
 * protocol `proto` fields known so far. want_buf: the result must be a
 * buffer (else a number). Returns the expression index, or -1 with the
 * reason in err. */
int pdl_expr_compile(struct netpdl_set *s, int proto, const char *text, int want_buf, char *err,
                     size_t errlen);

/* Evaluates a number expression. Returns 0, or -1 when it reads outside the
 * payload, divides by zero, or names an absent field. */
int pdl_expr_eval(const struct netpdl_set *s, int expr, const struct netpdl_run *r, uint32_t cur,
                  int64_t *out);

/* Grows a dynamic array to hold one more element; -1 when out of memory. */
int pdl_grow(void **arr, uint32_t *cap, uint32_t n, size_t elem);

#endif
