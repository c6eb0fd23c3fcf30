// Writes hf_golden.json: what Hugging Face `tokenizers` (the Rust library,
// through the Node binding @anush008/tokenizers) produces for a set of
// tricky inputs, so hf_golden_test.cc can hold our tokenizer to it.
//
// Not part of the build. To regenerate (needs the real vocab, see
// scripts/bert_vocab_from_npm.py):
//   npm install --no-audit --no-fund --prefix /tmp/hf @anush008/tokenizers
//   NODE_PATH=/tmp/hf/node_modules node tests/tokenizer/testdata/make_hf_golden.js \
//       build-tok/testdata/vocab.txt tests/tokenizer/testdata/hf_golden.json
//
// Each tokenizer is built from a tokenizer.json equivalent to
// BertWordPieceTokenizer(vocab, **normalizer): BertNormalizer,
// BertPreTokenizer, WordPiece, BertProcessing, and the five BERT special
// tokens as added tokens.
'use strict';
const fs = require('fs');
const { Tokenizer } = require('@anush008/tokenizers');

const SMALL_VOCAB = ['[UNK]', '[CLS]', '[SEP]', '[PAD]', '[MASK]', 'want', '##want',
  '##ed', 'wa', 'un', 'runn', '##ing', ',', 'low', 'lowest'];

const CONFIGS = {
  uncased: { vocab: 'real', normalizer: {} },
  cased: { vocab: 'real', normalizer: { lowercase: false } },
  cased_strip: { vocab: 'real', normalizer: { lowercase: false, strip_accents: true } },
  uncased_keep_accents: { vocab: 'real', normalizer: { strip_accents: false } },
  no_chinese: { vocab: 'real', normalizer: { handle_chinese_chars: false } },
  no_clean: { vocab: 'real', normalizer: { clean_text: false } },
  small: { vocab: 'small', normalizer: {} },
};

// [config, text, pair or null, max_length or null (no truncation)]
const CASES = [];
const add = (config, text, pair = null, maxLength = null) =>
  CASES.push([config, text, pair, maxLength]);

const TEXTS = [
  'hello', 'Hello, World!', 'My name is John', 'A, naïve [MASK] AllenNLP sentence.',
  'UNwant\u00E9d,running', ' \tHäLLo!how  \n Are yoU?  ', 'H\u00E9llo', 'ah\u535A\u63A8zz',
  'a\n\'ll !!to?\'d of, can\'t.', '\u200E\u200F', 'Test', '\u00AD', 'test',
  'naïve café résumé', 'Straße', 'İstanbul', 'ΣΊΣΥΦΟΣ', 'ǅemal', 'ﬁne', '\u212B', 'Ａｂｃ',
  '한국어 텍스트', '日本語のテキスト', '中文测试', '的人有', '\u{20000}\u{2A700}x',
  '\u{2B820}a \u{2B920}a', '\u3400\u4DBF\uF900\u{2F800}',
  '¿Qué?', '«quote»', '„Deutsch“', 'हिन्दी।', 'مرحبا، عالم؟', '「日本」', 'wait…', 'a—b', 'a‐b',
  '$5 + 3 = 8', '€100', '^_^', 'a~b|c`d', '#hashtag @user', '100%', '(x)[y]{z}',
  'a\u00A0b', 'a\u3000b', 'a\u2028b', 'a\tb\nc\rd', 'a\u000Bb', 'a\u000Cb', 'a\u0085b',
  'a\u200Bb', '\uFEFFbom', 'a\u0000b', 'a\uFFFDb', 'a\u001Fb', 'a\u180Eb', '\uE000x', 'a\u0378b',
  'a\u0323\u0301', 'a\u0301\u0323', 'e\u0301', 'ệ', 'q\u0307\u0323', 'x\u0315\u0300y',
  '👍🏽 great', '❤️ love', '👨‍👩‍👧 family', '😀😀',
  '[CLS] hello [SEP] world', 'foo[SEP]bar', '[MASK][MASK]', '[mask]', '[UNK]', '[ SEP ]',
  '[SEP', '[PAD]x[CLS]', 'Ünicode[SEP]Ökay',
  'a'.repeat(100), 'a'.repeat(101), 'é'.repeat(101), 'antidisestablishmentarianism',
  '3.14159', '1,000,000', '2023-01-01', "Don't stop", "rock'n'roll", 'e-mail', 'U.S.A.',
  '', '   ', '\u00AD\u200B', 'x',
  'The quick brown fox jumps over the lazy dog.',
  'a\u{1D16D}\u{1D165}b', 'Ⅻ ⅻ ① ²', 'ℌello', 'ÅÄÖ åäö', 'Ꭰ ꭰ', 'Ωmega ω', 'Ǳ ǲ ǳ',
];
for (const config of ['uncased', 'cased', 'cased_strip', 'uncased_keep_accents', 'no_chinese', 'no_clean']) {
  for (const text of TEXTS) add(config, text);
}
for (const text of ['UNwant\u00E9d,running', 'unwanted running', 'unwantedX running', 'lowest low',
  'Test', '\u00AD', 'test', '[MASK] want', 'wa,un']) {
  add('small', text);
}

// Pairs, without and with truncation.
const LONG_A = 'the quick brown fox jumps over the lazy dog and keeps running far away';
const LONG_B = 'a stitch in time saves nine, or so they say in old english proverbs';
add('uncased', 'My name is John', 'pair');
add('uncased', 'Who are you?', 'I am [MASK].');
add('uncased', '', 'only pair');
add('uncased', 'only text', '');
add('uncased', 'naïve', 'Café');
for (const max of [3, 4, 5, 8, 9, 10, 11, 12, 20, 30]) add('uncased', LONG_A, LONG_B, max);
for (const max of [6, 7, 10, 15]) add('uncased', 'short one', LONG_B, max);
for (const max of [6, 7, 10, 15]) add('uncased', LONG_A, 'short one', max);
for (const max of [9, 10, 11]) add('uncased', 'one two three four', 'five six seven eight', max);
for (const max of [2, 3, 5, 10]) add('uncased', LONG_A, null, max);
add('uncased', 'hello world', null, 4);
add('small', 'unwanted running', 'lowest', 5);

function readVocab(path) {
  const lines = fs.readFileSync(path, 'utf8').split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines.map((line) => line.trimEnd());
}

function makeTokenizer(tokens, normalizer) {
  const vocab = {};
  tokens.forEach((token, id) => { vocab[token] = id; });
  const specials = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'].filter((t) => t in vocab);
  return Tokenizer.fromString(JSON.stringify({
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((t) => ({ id: vocab[t], content: t, single_word: false,
      lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: Object.assign({ type: 'BertNormalizer', clean_text: true,
      handle_chinese_chars: true, strip_accents: null, lowercase: true }, normalizer),
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: { type: 'BertProcessing', sep: ['[SEP]', vocab['[SEP]']],
      cls: ['[CLS]', vocab['[CLS]']] },
    decoder: null,
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##',
      max_input_chars_per_word: 100, vocab },
  }));
}

async function main() {
  const [vocabPath, outPath] = process.argv.slice(2);
  if (!vocabPath || !outPath) {
    console.error('usage: make_hf_golden.js VOCAB_TXT OUT_JSON');
    process.exit(2);
  }
  const real = readVocab(vocabPath);
  const out = { generator: 'tests/tokenizer/testdata/make_hf_golden.js',
    tokenizers: 'Hugging Face tokenizers 0.22.2 via @anush008/tokenizers 0.6.0',
    configs: {}, small_vocab: SMALL_VOCAB, cases: [] };
  for (const [name, config] of Object.entries(CONFIGS)) {
    out.configs[name] = Object.assign({ vocab: config.vocab, clean_text: true,
      handle_chinese_chars: true, strip_accents: null, lowercase: true }, config.normalizer);
  }
  for (const [config, text, pair, maxLength] of CASES) {
    const { vocab, normalizer } = CONFIGS[config];
    const tokenizer = makeTokenizer(vocab === 'real' ? real : SMALL_VOCAB, normalizer);
    if (maxLength !== null) tokenizer.setTruncation(maxLength, { strategy: 'LongestFirst' });
    const e = await tokenizer.encode(text, pair);
    out.cases.push({ config, text, pair, max_length: maxLength, ids: e.getIds(),
      tokens: e.getTokens(), offsets: e.getOffsets(), type_ids: e.getTypeIds() });
  }
  // One case per line keeps diffs of a regenerated file readable.
  const { cases, ...header } = out;
  const head = JSON.stringify(header, null, 1).replace(/\n}$/, '');
  const body = cases.map((c) => '  ' + JSON.stringify(c)).join(',\n');
  fs.writeFileSync(outPath, `${head},\n "cases": [\n${body}\n ]\n}\n`);
  console.log(`wrote ${out.cases.length} cases to ${outPath}`);
}

main().catch((e) => { console.error(e); process.exit(1); });
