// Writes COUNT seeded random multi-script texts (and some pairs) with what
// Hugging Face `tokenizers` (Rust, through the Node binding
// @anush008/tokenizers) makes of them, for hf_random_test.cc:
//   node hf_random_cases.js NODE_MODULES VOCAB_TXT OUT_JSON SEED COUNT
// The texts mix Latin with precomposed and combining accents, CJK, Hangul,
// Cyrillic, Greek, Arabic, Devanagari, emoji, controls, every kind of
// whitespace, punctuation, special tokens written literally, words around the
// 100-character WordPiece limit, and random code points from the whole range
// (which is what finds the characters whose Unicode data differ between
// Hugging Face's crates and utf8proc).
'use strict';
const fs = require('fs');
const path = require('path');
const { makeTokenizer, readVocab, CONFIGS, SMALL_VOCAB } = require('./hf_tokenizers.js');

function rng(seed) {  // mulberry32
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = ('the of and to in is was he for it with as his on be at by had are but from or ' +
  'she an they which you one were all we her can there has more unwanted running transformers ' +
  'tokenization naive cafe resume international university approximately hello world don\'t ' +
  'e-mail u.s.a. 3.14 1,000 2023-01-01 rock\'n\'roll').split(' ');
const RANGES = {
  latin: [[0x41, 0x5A], [0x61, 0x7A], [0xC0, 0x24F], [0x1E00, 0x1EFF]],
  marks: [[0x300, 0x36F], [0x483, 0x489], [0x591, 0x5C7], [0x64B, 0x65F], [0x93C, 0x94D],
    [0xE31, 0xE3A], [0x1AB0, 0x1AFF], [0x1DC0, 0x1DFF], [0x20D0, 0x20F0], [0xFE20, 0xFE2F]],
  cjk: [[0x4E00, 0x9FFF], [0x3400, 0x4DBF], [0x20000, 0x2A6DF], [0x2A700, 0x2B81F],
    [0x2B800, 0x2B9FF], [0xF900, 0xFAFF], [0x2F800, 0x2FA1F], [0x3040, 0x30FF],
    [0xAC00, 0xD7A3], [0x1100, 0x11FF], [0x3130, 0x318F], [0xFF00, 0xFFEF]],
  scripts: [[0x370, 0x3FF], [0x400, 0x52F], [0x600, 0x6FF], [0x590, 0x5FF], [0x900, 0x97F],
    [0xE00, 0xE7F], [0x10A0, 0x10FF], [0x1C80, 0x1C8F], [0xA7C0, 0xA7FF], [0x10400, 0x104FF],
    [0x10D00, 0x10FFF], [0x1E900, 0x1E95F], [0x13A0, 0x13FF], [0xAB70, 0xABBF], [0x2C00, 0x2C7F]],
  emoji: [[0x1F300, 0x1F64F], [0x1F900, 0x1FAFF], [0x2600, 0x27BF], [0x1F3FB, 0x1F3FF],
    [0x200D, 0x200D], [0xFE0F, 0xFE0F]],
  controls: [[0x0, 0x1F], [0x7F, 0x9F], [0xAD, 0xAD], [0x200B, 0x200F], [0x2060, 0x2064],
    [0xFEFF, 0xFEFF], [0xE000, 0xE00F], [0xF0000, 0xF0003], [0x378, 0x379], [0xFFFD, 0xFFFD],
    [0x110BD, 0x110BD], [0x13430, 0x1343F], [0x1BCA0, 0x1BCA3], [0xE0001, 0xE0001], [0x890, 0x891]],
  spaces: [[0x20, 0x20], [0x9, 0xD], [0x85, 0x85], [0xA0, 0xA0], [0x1680, 0x1680],
    [0x2000, 0x200A], [0x2028, 0x2029], [0x202F, 0x202F], [0x205F, 0x205F], [0x3000, 0x3000],
    [0x180E, 0x180E]],
  punct: [[0x21, 0x2F], [0x3A, 0x40], [0x5B, 0x60], [0x7B, 0x7E], [0xA1, 0xBF], [0x2010, 0x2027],
    [0x2030, 0x205E], [0x2E00, 0x2E5D], [0x3001, 0x3003], [0x3008, 0x3011], [0xFF01, 0xFF0F],
    [0x55A, 0x55F], [0x964, 0x965], [0x61D, 0x61F], [0x1B7D, 0x1B7F], [0x166D, 0x166E]],
};
const SPECIALS = ['[SEP]', '[CLS]', '[MASK]', '[UNK]', '[PAD]', '[SE', 'P]', '[sep]', '[[SEP]]'];

function generator(rand) {
  const int = (n) => Math.floor(rand() * n);
  const pick = (a) => a[int(a.length)];
  const fromRanges = (ranges) => {
    const [lo, hi] = pick(ranges);
    return String.fromCodePoint(lo + int(hi - lo + 1));
  };
  const anyCodePoint = () => {
    for (;;) {
      const c = rand() < 0.6 ? int(0x30000) : int(0x110000);
      if (c < 0xD800 || c > 0xDFFF) return String.fromCodePoint(c);
    }
  };
  const piece = () => {
    const r = rand();
    if (r < 0.25) {
      const w = pick(WORDS);
      return rand() < 0.3 ? w.toUpperCase() : rand() < 0.3 ? w[0].toUpperCase() + w.slice(1) : w;
    }
    if (r < 0.35) return fromRanges(RANGES.latin) + (rand() < 0.5 ? fromRanges(RANGES.marks) : '');
    if (r < 0.42) return fromRanges(RANGES.marks);
    if (r < 0.52) return fromRanges(RANGES.cjk);
    if (r < 0.60) return fromRanges(RANGES.scripts);
    if (r < 0.64) return fromRanges(RANGES.emoji);
    if (r < 0.68) return fromRanges(RANGES.controls);
    if (r < 0.78) return fromRanges(RANGES.spaces);
    if (r < 0.86) return fromRanges(RANGES.punct);
    if (r < 0.88) return pick(SPECIALS);
    if (r < 0.90) {  // a word near the 100-character limit
      const n = 95 + int(12);
      let w = '';
      for (let i = 0; i < n; ++i) w += rand() < 0.9 ? String.fromCharCode(97 + int(26)) : fromRanges(RANGES.latin);
      return w;
    }
    if (r < 0.92) return String(int(100000));
    return anyCodePoint();
  };
  return () => {
    const n = 1 + int(rand() < 0.8 ? 12 : 60);
    let s = '';
    for (let i = 0; i < n; ++i) {
      s += piece();
      if (rand() < 0.4) s += ' ';
    }
    return s;
  };
}

async function main() {
  const [modules, vocabPath, outPath, seedArg, countArg] = process.argv.slice(2);
  if (!countArg) {
    console.error('usage: hf_random_cases.js NODE_MODULES VOCAB_TXT OUT_JSON SEED COUNT');
    process.exit(2);
  }
  const { Tokenizer } = require(path.join(modules, '@anush008/tokenizers'));
  const rand = rng(Number(seedArg));
  const text = generator(rand);
  const real = readVocab(vocabPath);
  const names = Object.keys(CONFIGS);
  const tokenizers = {};
  for (const name of names) {
    tokenizers[name] = makeTokenizer(Tokenizer,
      CONFIGS[name].vocab === 'real' ? real : SMALL_VOCAB, CONFIGS[name].normalizer);
  }
  const cases = [];
  for (let i = 0; i < Number(countArg); ++i) {
    const config = names[Math.floor(rand() * names.length)];
    const a = text();
    const pair = rand() < 0.25 ? text() : null;
    const special = pair === null ? 2 : 3;
    const maxLength = rand() < 0.5 ? null : special + Math.floor(rand() * 40);
    const tokenizer = tokenizers[config];
    if (maxLength === null) tokenizer.setTruncation(100000, { strategy: 'LongestFirst' });
    else tokenizer.setTruncation(maxLength, { strategy: 'LongestFirst' });
    const e = await tokenizer.encode(a, pair);
    cases.push({ config, text: a, pair, max_length: maxLength, ids: e.getIds(),
      tokens: e.getTokens(), offsets: e.getOffsets(), type_ids: e.getTypeIds(),
      truncated: e.getOverflowing().length > 0 });
  }
  const configs = {};
  for (const name of names) {
    configs[name] = Object.assign({ vocab: CONFIGS[name].vocab, clean_text: true,
      handle_chinese_chars: true, strip_accents: null, lowercase: true }, CONFIGS[name].normalizer);
  }
  fs.writeFileSync(outPath, JSON.stringify({ seed: Number(seedArg), configs,
    small_vocab: SMALL_VOCAB, cases }));
}

main().catch((e) => { console.error(e); process.exit(1); });
