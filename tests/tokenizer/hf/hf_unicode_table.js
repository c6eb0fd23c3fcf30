// Writes what Hugging Face `tokenizers` (Rust, through the Node binding
// @anush008/tokenizers) does with every code point, for
// hf_unicode_table_test.cc:
//   node hf_unicode_table.js NODE_MODULES OUT_TXT
// One line per code point that is not plain (kept by clean_text, not
// whitespace or punctuation, unchanged by lowercase, NFD and strip_accents,
// combining class 0):
//   HEX CLEAN SPLIT LOWER STRIP NFD_BEFORE_1 NFD_AFTER_240
// CLEAN: K kept, D dropped, S mapped to ' ' (BertNormalizer clean_text).
// SPLIT: N none, W whitespace, P punctuation (BertPreTokenizer).
// LOWER, STRIP: the code points (hex, comma-separated) that lowercase and
// strip_accents (NFD, then drop Mn) make of it, '=' when unchanged.
// NFD_BEFORE_1: NFD of it followed by U+0334 (combining class 1);
// NFD_AFTER_240: NFD of U+0345 (class 240) followed by it; '=' when
// unchanged. Together they show its decomposition and whether its
// combining class is 0.
'use strict';
const fs = require('fs');
const path = require('path');

const [modules, outPath] = process.argv.slice(2);
if (!outPath) {
  console.error('usage: hf_unicode_table.js NODE_MODULES OUT_TXT');
  process.exit(2);
}
const hf = require(path.join(modules, '@anush008/tokenizers'));
const only = (options) => hf.bertNormalizer(Object.assign(
  { cleanText: false, handleChineseChars: false, stripAccents: false, lowercase: false }, options));
const clean = only({ cleanText: true });
const strip = only({ stripAccents: true });
const lower = only({ lowercase: true });
const nfd = hf.nfdNormalizer();
const pre = hf.bertPreTokenizer();

const hex = (s) => Array.from(s).map((ch) => ch.codePointAt(0).toString(16)).join(',');
const SEP = '|';  // a starter that no step changes; itself is listed by hand
// Splits normalize(c1 SEP c2 SEP ...) back into one result per code point.
function each(normalizer, strings) {
  const parts = normalizer.normalizeString(strings.join(SEP) + SEP).split(SEP);
  if (parts.length !== strings.length + 1) throw new Error('separator changed');
  return parts.slice(0, -1);
}

const lines = ['7c K P = = = ='];
const all = [];
for (let c = 0; c <= 0x10FFFF; ++c) {
  if ((c < 0xD800 || c > 0xDFFF) && c !== 0x7C) all.push(c);
}
const CHUNK = 4096;
for (let i = 0; i < all.length; i += CHUNK) {
  const cps = all.slice(i, i + CHUNK);
  const chars = cps.map((c) => String.fromCodePoint(c));
  const cleaned = each(clean, chars);
  const stripped = each(strip, chars);
  const lowered = each(lower, chars);
  const before1 = each(nfd, chars.map((ch) => ch + '\u0334'));
  const after240 = each(nfd, chars.map((ch) => '\u0345' + ch));
  // Each code point between two letters: 1 piece (none), 2 (whitespace
  // dropped) or 3 (punctuation isolated).
  const pieces = chars.map(() => 0);
  for (const [, [begin]] of pre.preTokenizeString(chars.map((ch) => 'a' + ch + 'a').join(' '))) {
    ++pieces[Math.floor(begin / 4)];
  }
  cps.forEach((c, k) => {
    const ch = chars[k];
    const cl = cleaned[k] === '' ? 'D' : cleaned[k] === ch ? 'K' : cleaned[k] === ' ' ? 'S' : '?' + hex(cleaned[k]);
    const split = ['?', 'N', 'W', 'P'][pieces[k]] || '?';
    const same = (got, want) => (got === want ? '=' : hex(got));
    const row = [cl, split, same(lowered[k], ch), same(stripped[k], ch),
      same(before1[k], ch + '\u0334'), same(after240[k], '\u0345' + ch)];
    if (row.join(' ') !== 'K N = = = =') lines.push(`${c.toString(16)} ${row.join(' ')}`);
  });
}
fs.writeFileSync(outPath, lines.join('\n') + '\n');
