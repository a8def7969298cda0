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
 *     or "::"; one with a capital letter after its first character
 *     (fooBar, HTTPServer, NULL); one followed by '('; a single letter other
 *     than "a" and "i"; any word between backticks (inline code and fenced
 *     blocks). A word is code-like for both texts as soon as it is code-like
 *     (case folded) in either, so "fooBar" and "FOOBAR" or "`count`" and
 *     "count" are the same fact, and a case or markup change is no miss;
 *   - negations (not, no, never, without, unless, except, "n't" ... ), number
 *     words (one, two, ten, twice, half ...) and words of direction or
 *     polarity (true/false, min/max, ascending/descending, before/after,
 *     more/less ...): flipping one of these flips the answer.
 * Facts compare case-insensitively; a word ending in "n't" and "cannot"
 * count as "not". Prose words outside these classes may differ freely: that
 * is what the similarity threshold judges. */
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

/* A word's canonical form for comparison: "n't" words and "cannot" are "not". */
static void canonical(const token *t, const char **p, size_t *len) {
  *p = t->p;
  *len = t->len;
  if (t->type != T_WORD) return;
  if ((t->len >= 3 && fold((unsigned char)t->p[t->len - 1]) == 't' && t->p[t->len - 2] == '\'' &&
       fold((unsigned char)t->p[t->len - 3]) == 'n') ||
      (t->len == 6 && strncasecmp(t->p, "cannot", 6) == 0)) {
    *p = "not";
    *len = 3;
  }
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
  for (const char *const *k = keywords; *k; k++)
    if (strlen(*k) == len && strncasecmp(*k, p, len) == 0) return 1;
  return 0;
}

static int word_is_code(const char *p, size_t len, int in_code, unsigned char next) {
  if (in_code || next == '(') return 1;
  if (len == 1) return fold((unsigned char)p[0]) != 'a' && fold((unsigned char)p[0]) != 'i';
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c == '_' || c == '$' || c == '.' || c == ':' || is_digit(c)) return 1;
    if (i > 0 && c >= 'A' && c <= 'Z') return 1;
  }
  return 0;
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
    } else if (is_digit(c) || (c == '.' && is_digit(next) && !is_word(prev))) {
      size_t j = i + 1;
      while (j < len && (is_word((unsigned char)s[j]) ||
                         (s[j] == '.' && j + 1 < len && is_alnum((unsigned char)s[j + 1]))))
        j++;
      if (push(ts, s + i, j - i, T_NUM, 0)) return -1;
      i = j;
      line_start = 0;
    } else if (is_word(c)) {
      size_t j = i + 1;
      for (;;) {
        if (j < len && is_word((unsigned char)s[j])) {
          j++;
        } else if (j + 1 < len && (s[j] == '.' || s[j] == '\'') && is_word((unsigned char)s[j + 1])) {
          j += 2; /* os.path, e.g, don't */
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

int po_guard_same_facts(const char *a, size_t alen, const char *b, size_t blen) {
  tokens ta = {0}, tb = {0};
  wordset code = {0};
  int same = 0; /* out of memory: no match, the safe answer */
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
