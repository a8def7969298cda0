/* src/core/guard.c, one character class or token shape at a time: the
 * separators and punctuation that never matter, the shapes that make a
 * number, an operator or an identifier a fact (so two texts with the same
 * words still differ), and the contractions that lose their suffix. */
#include "guard.h"

#include "harness.h"

#include <string.h>

#include "guard_same.h"

static void every_separator_and_mark_is_punctuation(void) {
  SAME("sort\rthe\vlist\fnow", "sort the list now");
  /* inverted marks and guillemets: ¿ ¡ « » */
  SAME("\xc2\xbfsort \xc2\xabthe\xc2\xbb list? \xc2\xa1now!", "sort the list now");
  /* U+2047 (double question mark), from the second row of General Punctuation */
  SAME("sort the list\xe2\x81\x87", "sort the list?");
  /* ‘single quotes’ around a word */
  SAME("the \xe2\x80\x98list\xe2\x80\x99 is long", "the list is long");
}

static void other_non_ascii_bytes_are_word_bytes(void) {
  DIFFERENT("turn 90\xc2\xb0 left", "turn 90 left");  /* ° */
  DIFFERENT("costs 5\xe2\x82\xac", "costs 5");       /* € */
  DIFFERENT("list\xe2\x80", "list");                 /* a cut-off punctuation mark */
}

static void numbers_keep_their_points(void) {
  DIFFERENT("scale by .5", "scale by 5");
  DIFFERENT("release 1.2.3 now", "release 1.2 3 now");
  SAME("release version 1.", "release version 1");
  /* after a word, ".5" is part of it: x.5 is one identifier */
  DIFFERENT("use x.5 here", "use x 5 here");
}

static void qualified_names_are_identifiers(void) {
  DIFFERENT("use std::vector here", "use std vector here");
  DIFFERENT("call os.path first", "call os path first");
  DIFFERENT("print $total now", "print total now");
  SAME("use std::vector here", "use STD::Vector here");
}

static void operators_at_the_ends_and_before_a_parenthesis(void) {
  DIFFERENT("> b", "b >");
  DIFFERENT("if !(done) retry", "if (done) retry");
  DIFFERENT("if !done retry", "if done retry");
  SAME("it failed! retry", "it failed. retry");
  /* stop words next to an operator are facts too */
  DIFFERENT("be > a", "a > be");
}

static void a_noun_names_its_neighbour_wherever_it_stands(void) {
  /* first or last token; the neighbour is then a fact in both texts */
  SAME("function render", "Function RENDER");
  SAME("call render function", "call Render function");
  /* neighbours that name nothing: a number, filler, another noun, a stop word */
  SAME("file 3 of the function", "File 3 of THE Function");
  SAME("field function pls", "Field Function");
}

static void contractions_and_possessives_lose_their_suffix(void) {
  SAME("don\xe2\x80\x99t stop", "do not stop");
  SAME("we've won", "we won");
  SAME("I'm late and they'd go", "I late and they go");
  SAME("ALICE'S NOTES", "alice notes");
  SAME("THEY'D GO, I'M OFF", "they go I off");
  /* any other suffix stays part of the word */
  DIFFERENT("o'er the hill", "o the hill");
  /* "n't" needs a stem: alone it is a word of its own */
  DIFFERENT("n't", "not");
  /* an apostrophe with no letter after it ends the word */
  SAME("the dogs' bowl", "the dogs bowl");
  SAME("walk the dogs'", "walk the dogs");
}

int main(void) {
  RUN(every_separator_and_mark_is_punctuation);
  RUN(other_non_ascii_bytes_are_word_bytes);
  RUN(numbers_keep_their_points);
  RUN(qualified_names_are_identifiers);
  RUN(operators_at_the_ends_and_before_a_parenthesis);
  RUN(a_noun_names_its_neighbour_wherever_it_stands);
  RUN(contractions_and_possessives_lose_their_suffix);
  return TEST_SUMMARY();
}
