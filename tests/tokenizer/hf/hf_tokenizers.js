// Hugging Face tokenizers equivalent to BertTokenizer's configurations, shared
// by the reference scripts of this folder.
'use strict';
const fs = require('fs');

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

function readVocab(path) {
  const lines = fs.readFileSync(path, 'utf8').split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines.map((line) => line.trimEnd());
}

// The tokenizer.json of BertWordPieceTokenizer(vocab, **normalizer):
// BertNormalizer, BertPreTokenizer, WordPiece, BertProcessing, and the five
// BERT special tokens as added tokens.
function makeTokenizer(Tokenizer, tokens, normalizer) {
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

module.exports = { SMALL_VOCAB, CONFIGS, readVocab, makeTokenizer };
