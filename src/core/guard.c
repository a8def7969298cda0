/* False-hit guards (see guard.h).
 *
 * Each text is cut into tokens: words, numbers and operator runs; other
 * punctuation and whitespace only separate tokens, so spacing, case, commas
 * and line breaks never matter. The facts of a text are, in order:
 *   - every number ("3", "0.25", "0x1F", "1.2.3");
 *   - every operator run (< > = ! + - * / % & | ^ ~, e.g. "<=", "->", "&&")
 *     and the token on each side of it, so "a > b" differs from "b > a" and
 *     "i < n" from "i <= n". A "!" that ends a sentence and a "-", "*" or
 *     "+" that starts a list item are punctuation, not operators;
 *   - every code-like word: one containing '_', '$', a digit, an inner '.'
 *     or "::"; one with a capital letter after its first character and a
 *     lower-case letter (fooBar, HTTPServer); one followed by '('; a single
 *     letter other than "a" and "i"; any word between backticks (inline code
 *     and fenced blocks); the word that names a function, method, class,
 *     file ... next to that noun ("the function render", "the render
 *     method", "a field called size"), unless it is a determiner, a stop
 *     word or similar filler. A word is code-like for both texts as soon as
 *     it is code-like (case folded) in either, so "fooBar" and "FOOBAR" or
 *     "`count`" and "count" are the same fact, and a case or markup change
 *     is no miss;
 *   - negations (not, no, never, without, unless, except, "n't" ... ), number
 *     words (one, two, ten, twice, half ...) and words of direction or
 *     polarity (true/false, min/max, ascending/descending, before/after,
 *     more/less ...): flipping one of these flips the answer.
 * Facts compare case-insensitively; a word ending in "n't" and "cannot"
 * count as "not".
 *
 * Prose words are compared apart, as the sequence of content words (all
 * words but the stop words below): on a long prompt a one-word change keeps
 * the n-gram similarity high, so the threshold cannot refuse "Paris" for
 * "Lyon". The sequence, not just the multiset, because "from Celsius to
 * Fahrenheit" and its reverse have the same multiset. */
#include "guard.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { T_WORD, T_NUM, T_OP };

typedef struct token {
  const char *p;
  size_t len;
  unsigned char type;
  unsigned char code; /* a code-like word */
  unsigned char fact; /* set for numbers, operators and their neighbours, keywords */
} token;

typedef struct tokens {
  token *t;
  size_t n, cap;
} tokens;

static int is_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int is_alpha(unsigned char c) { return (c | 32) >= 'a' && (c | 32) <= 'z'; }
static int is_alnum(unsigned char c) { return is_alpha(c) || is_digit(c); }
/* Word bytes: letters, digits, '_', '$', and UTF-8 bytes (non-ASCII letters). */
static int is_word(unsigned char c) { return is_alnum(c) || c == '_' || c == '$' || c >= 0x80; }
static int is_op(unsigned char c) { return c && strchr("<>=!+-*/%&|^~", c) != NULL; }
static unsigned char fold(unsigned char c) { return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c; }

/* Stop words, grouped by length (each group is its words concatenated):
 * articles, forms of "be" and "do", the modals of a polite request, a few
 * prepositions that never say which way something goes, and the filler of a
 * request ("please", "could you", "thanks"). Nothing here flips a request:
 * negations, direction words (to, from, into, before, after, up, down ...),
 * quantifiers (all, some, no, any), "or" and pronouns other than "you" are
 * content. */
static const char *const stop_words[] = {
    /* 0 */ "",
    /* 1 */ "a",
    /* 2 */ "anasatbebydohiinisitofonam",
    /* 3 */ "thearewascandidforyouitsheypls",
    /* 4 */ "thatthiswithwerebeendoeswilljustalso",
    /* 5 */ "couldwouldshallthesethosebeingthankhello",
    /* 6 */ "pleasekindlythankssimplyreally",
};
#define STOP_MAX 6

static int is_stop(const char *p, size_t len) {
  if (len == 0 || len > STOP_MAX) return 0;
  char w[STOP_MAX];
  for (size_t i = 0; i < len; i++) w[i] = (char)fold((unsigned char)p[i]);
  const char *g = stop_words[len];
  for (size_t n = strlen(g); n >= len; n -= len, g += len)
    if (memcmp(g, w, len) == 0) return 1;
  return 0;
}

/* Bytes of the non-ASCII punctuation at s[i] (0 when none): no-break space,
 * guillemets, inverted marks, and the General Punctuation block (curly
 * quotes, dashes, ellipsis, typographic spaces). Everything else from 0x80
 * up is part of a word, so accented and non-Latin words are words. */
static size_t punct_len(const char *s, size_t len, size_t i) {
  unsigned char c = (unsigned char)s[i], d = i + 1 < len ? (unsigned char)s[i + 1] : 0;
  if (c == 0xC2 && (d == 0xA0 || d == 0xA1 || d == 0xAB || d == 0xBB || d == 0xBF)) return 2;
  if (c == 0xE2 && (d == 0x80 || d == 0x81) && i + 2 < len) return 3;
  return 0;
}

/* An apostrophe inside a word: ' or a right single quote. */
static size_t apostrophe_len(const char *s, size_t len, size_t i) {
  if (s[i] == '\'') return 1;
  if (i + 2 < len && (unsigned char)s[i] == 0xE2 && (unsigned char)s[i + 1] == 0x80 &&
      (unsigned char)s[i + 2] == 0x99)
    return 3;
  return 0;
}

/* A word byte at s[i]: the punctuation above is not one. */
static int word_at(const char *s, size_t len, size_t i) {
  return is_word((unsigned char)s[i]) && !punct_len(s, len, i);
}

static int push(tokens *ts, const char *p, size_t len, int type, int code) {
  if (ts->n == ts->cap) {
    size_t cap = ts->cap ? ts->cap * 2 : 64;
    token *t = realloc(ts->t, cap * sizeof *t);
    if (!t) return -1;
    ts->t = t;
    ts->cap = cap;
  }
  ts->t[ts->n++] = (token){p, len, (unsigned char)type, (unsigned char)code, 0};
  return 0;
}

/* 1 when the word ends in "n't" (a straight or a curly apostrophe). */
static int ends_in_nt(const char *p, size_t len) {
  if (len < 3 || fold((unsigned char)p[len - 1]) != 't') return 0;
  if (p[len - 2] == '\'') return fold((unsigned char)p[len - 3]) == 'n';
  return len >= 5 && memcmp(p + len - 4, "\xE2\x80\x99", 3) == 0 && fold((unsigned char)p[len - 5]) == 'n';
}

/* A word's canonical form for comparison: "n't" words and "cannot" are "not". */
static void canonical(const token *t, const char **p, size_t *len) {
  *p = t->p;
  *len = t->len;
  if (t->type != T_WORD) return;
  if (ends_in_nt(t->p, t->len) || (t->len == 6 && strncasecmp(t->p, "cannot", 6) == 0)) {
    *p = "not";
    *len = 3;
  }
}

/* Nouns whose neighbour names a code object, and fillers that never do. */
static const char *const code_nouns[] = {"function", "functions", "method", "methods", "class", "struct",
                                         "variable", "field", "module", "macro", "constant", "parameter",
                                         "argument", "file", "column", "flag", "option", "called", "named",
                                         "procedure", "routine", "type", "enum", "endpoint", "table", NULL};
static const char *const fillers[] = {
    "the", "a", "an", "this", "that", "these", "those", "my", "our", "your", "its", "their", "his", "her",
    "each", "every", "any", "some", "all", "same", "new", "old", "following", "whole", "entire", "given",
    "main", "current", "existing", "public", "private", "static", "inner", "outer", "of", "in", "on", "for",
    "to", "with", "and", "or", "is", "are", "be", "by", "from", "as", "one", "which", "whose", "slow", "hot",
    "called", "named", NULL};

static int in_list(const char *const *list, const char *p, size_t len) {
  if (len == 0) return 0;
  unsigned char first = fold((unsigned char)p[0]);
  /* the first letter rules out almost every entry: this runs for every word */
  for (; *list; list++)
    if ((unsigned char)(*list)[0] == first && strlen(*list) == len && strncasecmp(*list, p, len) == 0) return 1;
  return 0;
}

static const char *const keywords[] = {
    /* negation */
    "not", "no", "never", "without", "none", "nothing", "nobody", "nowhere", "neither", "nor", "unless",
    "except",
    /* numbers in words */
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "twenty", "thirty", "fifty", "hundred", "thousand", "million", "billion", "once", "twice", "thrice", "half",
    "double", "triple", "single",
    /* direction and polarity */
    "true", "false", "min", "max", "minimum", "maximum", "ascending", "descending", "increase", "decrease",
    "increasing", "decreasing", "before", "after", "above", "below", "first", "last", "faster", "slower", "more",
    "less", "fewer", "larger", "smaller", "greater", "higher", "lower", "enable", "disable", "enabled",
    "disabled", "include", "exclude", "allow", "deny", "inclusive", "exclusive", "signed", "unsigned", NULL};

static int is_keyword(const token *t) {
  const char *p;
  size_t len;
  canonical(t, &p, &len);
  return in_list(keywords, p, len);
}

static int word_is_code(const char *p, size_t len, int in_code, unsigned char next) {
  if (in_code || next == '(') return 1;
  if (len == 1) return fold((unsigned char)p[0]) != 'a' && fold((unsigned char)p[0]) != 'i';
  int lower = 0, inner_upper = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c == '_' || c == '$' || c == '.' || c == ':' || is_digit(c)) return 1;
    if (c >= 'a' && c <= 'z')
      lower = 1;
    else if (i > 0 && c >= 'A' && c <= 'Z')
      inner_upper = 1;
  }
  /* A word all in capitals is no code sign: a prompt in capitals would make
   * every word, filler included, a fact. The content words compare it. */
  return lower && inner_upper;
}

/* Cuts s into tokens; -1 when out of memory. */
static int tokenize(const char *s, size_t len, tokens *ts) {
  int in_code = 0, line_start = 1;
  size_t i = 0;
  while (i < len) {
    unsigned char c = (unsigned char)s[i];
    unsigned char prev = i ? (unsigned char)s[i - 1] : 0;
    unsigned char next = i + 1 < len ? (unsigned char)s[i + 1] : 0;
    if (c == '`') {
      in_code = !in_code;
      line_start = 0;
      i++;
    } else if (is_space(c)) {
      if (c == '\n') line_start = 1;
      i++;
    } else if (punct_len(s, len, i)) {
      i += punct_len(s, len, i);
      line_start = 0;
    } else if (is_digit(c) || (c == '.' && is_digit(next) && !is_word(prev))) {
      size_t j = i + 1;
      while (j < len && (word_at(s, len, j) ||
                         (s[j] == '.' && j + 1 < len && is_alnum((unsigned char)s[j + 1]))))
        j++;
      if (push(ts, s + i, j - i, T_NUM, 0)) return -1;
      i = j;
      line_start = 0;
    } else if (is_word(c)) {
      size_t j = i + 1;
      for (;;) {
        if (j < len && word_at(s, len, j)) {
          j++;
        } else if (j + 1 < len && (s[j] == '.' || s[j] == '\'') && word_at(s, len, j + 1)) {
          j += 2; /* os.path, e.g, don't */
        } else if (j + 3 < len && apostrophe_len(s, len, j) == 3 && word_at(s, len, j + 3)) {
          j += 4; /* don’t */
        } else if (j + 2 < len && s[j] == ':' && s[j + 1] == ':' && is_word((unsigned char)s[j + 2])) {
          j += 3; /* std::vector */
        } else {
          break;
        }
      }
      unsigned char after = j < len ? (unsigned char)s[j] : 0;
      int code = word_is_code(s + i, j - i, in_code, after);
      if (push(ts, s + i, j - i, T_WORD, code)) return -1;
      i = j;
      line_start = 0;
    } else if (is_op(c)) {
      size_t j = i;
      while (j < len && is_op((unsigned char)s[j])) j++;
      unsigned char after = j < len ? (unsigned char)s[j] : 0;
      int bangs = 1;
      for (size_t k = i; k < j; k++) bangs &= s[k] == '!';
      int punctuation = (bangs && !is_word(after) && after != '(') ||
                        (line_start && j - i == 1 && strchr("-*+", c) && is_space(after));
      if (!punctuation && push(ts, s + i, j - i, T_OP, 0)) return -1;
      i = j;
      line_start = 0;
    } else {
      i++; /* other punctuation separates tokens and is not a fact */
      line_start = 0;
    }
  }
  /* "the function render", "the render method": the neighbour names code */
  for (size_t k = 0; k < ts->n; k++) {
    token *t = &ts->t[k];
    if (t->type != T_WORD || !in_list(code_nouns, t->p, t->len)) continue;
    for (int side = -1; side <= 1; side += 2) {
      if ((side < 0 && k == 0) || (side > 0 && k + 1 == ts->n)) continue;
      token *n = &ts->t[k + (size_t)side];
      if (n->type == T_WORD && !in_list(fillers, n->p, n->len) && !in_list(code_nouns, n->p, n->len) &&
          !is_stop(n->p, n->len))
        n->code = 1;
    }
  }
  return 0;
}

/* ---- a set of case-folded words ------------------------------------------ */

typedef struct wordset {
  uint64_t *h; /* 0 = empty */
  size_t cap;  /* a power of two */
} wordset;

static uint64_t word_hash(const char *p, size_t len) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a over the folded bytes */
  for (size_t i = 0; i < len; i++) h = (h ^ fold((unsigned char)p[i])) * 1099511628211ULL;
  return h ? h : 1;
}

static void wordset_add(wordset *ws, uint64_t h) {
  size_t b = (size_t)h & (ws->cap - 1);
  while (ws->h[b] && ws->h[b] != h) b = (b + 1) & (ws->cap - 1);
  ws->h[b] = h;
}

static int wordset_has(const wordset *ws, uint64_t h) {
  size_t b = (size_t)h & (ws->cap - 1);
  while (ws->h[b]) {
    if (ws->h[b] == h) return 1;
    b = (b + 1) & (ws->cap - 1);
  }
  return 0;
}

/* ---- facts ------------------------------------------------------------------- */

static void mark_facts(tokens *ts, const wordset *code) {
  for (size_t i = 0; i < ts->n; i++) {
    token *t = &ts->t[i];
    if (t->type == T_NUM) {
      t->fact = 1;
    } else if (t->type == T_OP) {
      t->fact = 1;
      if (i > 0) ts->t[i - 1].fact = 1;
      if (i + 1 < ts->n) ts->t[i + 1].fact = 1;
    } else if (wordset_has(code, word_hash(t->p, t->len)) || is_keyword(t)) {
      t->fact = 1;
    }
  }
}

static int same_token(const token *x, const token *y) {
  const char *px, *py;
  size_t lx, ly;
  canonical(x, &px, &lx);
  canonical(y, &py, &ly);
  return lx == ly && strncasecmp(px, py, lx) == 0;
}

static int same_fact_sequence(const tokens *a, const tokens *b) {
  size_t i = 0, j = 0;
  for (;;) {
    while (i < a->n && !a->t[i].fact) i++;
    while (j < b->n && !b->t[j].fact) j++;
    if (i == a->n || j == b->n) return i == a->n && j == b->n;
    if (!same_token(&a->t[i], &b->t[j])) return 0;
    i++;
    j++;
  }
}

/* ---- content words ------------------------------------------------------- */

/* Walks the content words of a text, in order. */
typedef struct word_cursor {
  const char *s;
  size_t len, pos;
  int pending_not; /* the "not" of a contraction just read */
} word_cursor;

/* A contraction's stem when it is not the word minus "n't". */
static void contraction_stem(const char **p, size_t *len) {
  static const char *const odd[][2] = {{"ca", "can"}, {"wo", "will"}, {"sha", "shall"}};
  for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++)
    if (*len == strlen(odd[i][0]) && strncasecmp(*p, odd[i][0], *len) == 0) {
      *p = odd[i][1];
      *len = strlen(*p);
      return;
    }
}

/* The next word of the text, stop words included; 0 at the end. "don't" and
 * "cannot" read as "do" "not" and "can" "not"; "Alice's", "we're", "I'll"
 * lose their suffix, so a contraction or a possessive spelled out is no
 * difference. */
static int next_word(word_cursor *c, const char **p, size_t *len) {
  if (c->pending_not) {
    c->pending_not = 0;
    *p = "not";
    *len = 3;
    return 1;
  }
  const char *s = c->s;
  size_t i = c->pos, n = c->len;
  while (i < n && !word_at(s, n, i)) {
    size_t skip = punct_len(s, n, i);
    i += skip ? skip : 1;
  }
  if (i == n) {
    c->pos = n;
    return 0;
  }
  size_t start = i, apos = 0, alen = 0;
  for (;;) {
    if (i < n && word_at(s, n, i)) {
      i++;
      continue;
    }
    size_t a = i < n ? apostrophe_len(s, n, i) : 0;
    if (a && i + a < n && is_alpha((unsigned char)s[i + a])) {
      apos = i;
      alen = a;
      i += a;
      continue;
    }
    break;
  }
  c->pos = i;
  *p = s + start;
  *len = i - start;
  if (alen) {
    const char *suffix = s + apos + alen;
    size_t slen = i - apos - alen, blen = apos - start;
    if (slen == 1 && fold((unsigned char)suffix[0]) == 't' && blen >= 2 && fold((unsigned char)s[apos - 1]) == 'n') {
      *len = blen - 1; /* "doesn't": "does", then "not" */
      contraction_stem(p, len);
      c->pending_not = 1;
    } else if ((slen == 1 && strchr("sdmSDM", suffix[0])) ||
               (slen == 2 && (strncasecmp(suffix, "re", 2) == 0 || strncasecmp(suffix, "ve", 2) == 0 ||
                              strncasecmp(suffix, "ll", 2) == 0))) {
      *len = blen;
    }
  } else if (*len == 6 && strncasecmp(*p, "cannot", 6) == 0) {
    *len = 3; /* "can", then "not" */
    c->pending_not = 1;
  }
  return 1;
}

static int next_content_word(word_cursor *c, const char **p, size_t *len) {
  while (next_word(c, p, len))
    if (!is_stop(*p, *len)) return 1;
  return 0;
}

int po_guard_same_words(const char *a, size_t alen, const char *b, size_t blen) {
  word_cursor ca = {a, a ? alen : 0, 0, 0}, cb = {b, b ? blen : 0, 0, 0};
  for (;;) {
    const char *pa, *pb;
    size_t la, lb;
    int more_a = next_content_word(&ca, &pa, &la), more_b = next_content_word(&cb, &pb, &lb);
    if (!more_a || !more_b) return more_a == more_b;
    if (la != lb) return 0;
    for (size_t i = 0; i < la; i++)
      if (fold((unsigned char)pa[i]) != fold((unsigned char)pb[i])) return 0;
  }
}

/* ---- both ------------------------------------------------------------------- */

int po_guard_same_facts(const char *a, size_t alen, const char *b, size_t blen) {
  tokens ta = {0}, tb = {0};
  wordset code = {0};
  int same = 0; /* out of memory: no match, the safe answer */
  /* the words first: streaming, no allocation, and it refuses most pairs */
  if (!po_guard_same_words(a, alen, b, blen)) return 0;
  if (tokenize(a, alen, &ta) || tokenize(b, blen, &tb)) goto done;
  size_t words = 0;
  for (size_t i = 0; i < ta.n; i++) words += ta.t[i].code;
  for (size_t i = 0; i < tb.n; i++) words += tb.t[i].code;
  code.cap = 16;
  while (code.cap < 2 * words) code.cap *= 2;
  code.h = calloc(code.cap, sizeof *code.h);
  if (!code.h) goto done;
  for (size_t i = 0; i < ta.n; i++)
    if (ta.t[i].code) wordset_add(&code, word_hash(ta.t[i].p, ta.t[i].len));
  for (size_t i = 0; i < tb.n; i++)
    if (tb.t[i].code) wordset_add(&code, word_hash(tb.t[i].p, tb.t[i].len));
  mark_facts(&ta, &code);
  mark_facts(&tb, &code);
  same = same_fact_sequence(&ta, &tb);
done:
  free(ta.t);
  free(tb.t);
  free(code.h);
  return same;
}
