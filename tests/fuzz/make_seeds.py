#!/usr/bin/env python3
"""Writes the committed seed inputs of the fuzz targets into tests/fuzz/corpus/.

Not part of the build; the seeds are committed. Run again after changing a
target's input format:

    tests/fuzz/make_seeds.py [VOCAB_TXT]

VOCAB_TXT (optional, e.g. build/testdata/vocab.txt) adds excerpts of the real
bert-base-uncased vocabulary to the vocab.txt seeds. Files already in a
corpus directory (crash inputs kept as regressions) are left alone; seeds are
named seed-*.
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def write(target, name, data):
    directory = os.path.join(HERE, "corpus", target)
    os.makedirs(directory, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(directory, "seed-" + name), "wb") as f:
        f.write(data)


def encode_seeds():
    # byte 0: settings (bit 0 lowercase, then strip_accents, clean_text,
    # handle_chinese_chars); byte 1: bit 0 pair, bit 1 truncate; byte 2:
    # max_length; then text, 0xFF, pair.
    def seed(name, settings, flags, max_length, text, pair=None):
        data = bytes([settings, flags, max_length]) + text.encode("utf-8", "surrogateescape")
        if pair is not None:
            data += b"\xff" + pair.encode("utf-8", "surrogateescape")
        write("tokenizer_encode_fuzzer", name, data)

    uncased_all = 1 + 2 * 0 + 6 * 1 + 12 * 1  # lowercase, accents follow, clean, CJK
    seed("plain", uncased_all, 0, 64, "Hello, world!")
    seed("truncate", uncased_all, 2, 8, "unaffable running the tests hello world")
    seed("pair-truncate", uncased_all, 3, 10, "hello world again and again", "the pair text")
    seed("pair-short", uncased_all, 3, 5, "a b c d e", "f g h i")
    seed("accents", uncased_all, 1, 32, "H\u00e9llo na\u00efve caf\u00e9", "\u00dcber stra\u00dfe")
    seed("cased-strip", 0 + 2 * 2 + 6 + 12, 0, 64, "Caf\u00e9 NA\u00cfVE \u00c5ngstr\u00f6m")
    seed("cjk", uncased_all, 2, 40, "\u4e2d\u56fd\u65e5\u672c mixed \u4e2d\u6587text")
    seed("cjk-off", 1 + 6, 0, 40, "\u4e2d\u56fd\u65e5\u672c\u4e2d\u6587")
    seed("specials", uncased_all, 0, 64, "literal [SEP] and [CLS] and [MASK] tokens [UNK]")
    seed("controls", uncased_all, 2, 20, "\x00\x01\x7f control \t\n\r chars \u200b zero \ufeff")
    seed("no-clean", 1 + 12, 2, 20, "\x00\x01\x7f control \t\n\r chars \u200b zero")
    seed("emoji", uncased_all, 0, 64, "\U0001f600 smile \U0001f600\U0001f600 \U0001f44d\U0001f3fd")
    seed("combining", uncased_all, 0, 64, "e\u0301 a\u0308 \u0301lone n\u0303")
    seed("turkish-greek", 0 + 6 + 12, 0, 64, "\u0130stanbul \u0391\u0392\u0393 \u03b1\u03b2\u03b3 \u0414\u0434")
    seed("long-word", uncased_all, 2, 120, "a" * 150 + " b")
    seed("punctuation", uncased_all, 2, 30, "a.b,c;d:e!f?g(h)i[j]k{l}m<n>o/p\\q|r~s`t^u_v")
    seed("numbers", uncased_all, 0, 64, "3.14159 1,000,000 0x1F 42nd")
    seed("too-small", uncased_all, 1, 2, "hello", "world")
    write("tokenizer_encode_fuzzer", "invalid-utf8",
          bytes([uncased_all, 2, 16]) + b"bad \xc3\x28 bytes \xed\xa0\x80 \xf4\x90\x80\x80")
    write("tokenizer_encode_fuzzer", "invalid-utf8-pair",
          bytes([uncased_all, 3, 16]) + b"fine\xffbad \xc0\xaf")


def vocab_seeds(real_vocab):
    specials = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n"
    write("vocab_file_fuzzer", "small", specials + "hello\nworld\n,\n!\n")
    write("vocab_file_fuzzer", "crlf-trailing",
          "[PAD]\r\n[UNK]\r\n[CLS] \r\n[SEP]\t\r\n[MASK]\r\nhello\u3000\r\n##lo\r\nhel\r\n")
    write("vocab_file_fuzzer", "duplicates", specials + "a\nb\na\n##a\n##b\nab\n[SEP]\n")
    write("vocab_file_fuzzer", "no-final-newline", specials + "un\n##aff\n##able")
    write("vocab_file_fuzzer", "missing-specials", "[PAD]\n[UNK]\nhello\n")
    write("vocab_file_fuzzer", "empty-lines", specials + "\n\n\nx\n\n")
    write("vocab_file_fuzzer", "unicode",
          specials + "\u00e9\n##\u00e9\n\u4e2d\n\u6587\n\U0001f600\n\u0301\n##\u0301\nna\n##\u00efve\n")
    write("vocab_file_fuzzer", "invalid-utf8", specials.encode() + b"ok\nbad\xff\n")
    if real_vocab:
        with open(real_vocab, encoding="utf-8") as f:
            lines = f.read().split("\n")
        for name, start, end in (("real-head", 0, 120), ("real-words", 1996, 2150),
                                 ("real-pieces", 29600, 29760)):
            chosen = lines[:5] if start > 0 else []
            write("vocab_file_fuzzer", name, "\n".join(chosen + lines[start:end]) + "\n")


def tokenizer_json_seeds():
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "un", "##aff",
              "##able", ",", "!", "\u4e2d", "w", "##\u00f6", "##rld", "the", "pair"]
    vocab = {t: i for i, t in enumerate(tokens)}
    added = [{"id": vocab[t], "content": t, "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": True}
             for t in ("[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]")]
    base = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": True,
                       "handle_chinese_chars": True, "strip_accents": None,
                       "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab},
    }

    def seed(name, doc):
        write("tokenizer_json_fuzzer", name, json.dumps(doc, ensure_ascii=False, indent=1))

    seed("bert-processing", base)

    def special(i, t):
        return {"SpecialToken": {"id": i, "type_id": t}}

    def sequence(i, t):
        return {"Sequence": {"id": i, "type_id": t}}

    template = dict(base)
    template["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [special("[CLS]", 0), sequence("A", 0), special("[SEP]", 0)],
        "pair": [special("[CLS]", 0), sequence("A", 0), special("[SEP]", 0), sequence("B", 1),
                 special("[SEP]", 1)],
        "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                           "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}},
    }
    seed("template", template)
    plain = dict(base)
    plain["normalizer"] = None
    plain["padding"] = {"strategy": "BatchLongest", "pad_id": 0, "pad_token": "[PAD]"}
    del plain["added_tokens"]
    seed("no-normalizer-padding", plain)
    old = dict(base)
    old["model"] = {k: v for k, v in base["model"].items() if k != "type"}
    seed("old-format", old)
    gaps = dict(base)
    gaps["model"] = dict(base["model"], vocab=dict(vocab, extra=40))
    gaps["added_tokens"] = added + [{"id": 41, "content": "<new>", "special": True}]
    seed("gaps-added", gaps)
    cased = dict(base)
    cased["normalizer"] = dict(base["normalizer"], lowercase=False, strip_accents=True,
                               handle_chinese_chars=False, clean_text=False)
    seed("cased", cased)
    seed("bpe", dict(base, model={"type": "BPE", "vocab": vocab, "merges": []}))
    seed("bad-added", dict(base, added_tokens=[{"id": 1, "content": "[UNK]", "lstrip": True}]))
    write("tokenizer_json_fuzzer", "malformed", '{"model": {"type": "WordPiece", "vocab": {"a": }')
    write("tokenizer_json_fuzzer", "not-object", "[1, 2, 3]")


def config_seeds():
    def seed(name, text):
        write("model_config_fuzzer", name, text)

    seed("every-field", """labels: "neg" labels: "pos"
max_sequence_length: 128
dtype: BF16
device: DEVICE_CPU
pinned: true
tokenizer { lowercase: false strip_accents: true handle_chinese_chars: true clean_text: false }
batch { max_client_batch_size: 8 max_batch_tokens: 1024 max_queue_delay_us: 500 }
model_file: "traced.pt"
""")
    seed("empty", "")
    seed("defaults", "labels: \"a\"\n")
    seed("comments", "# a comment\nlabels: 'x' # trailing\nbatch: { max_batch_tokens: 0x400 }\n")
    seed("unknown-field", "labels: \"a\"\ncolour: \"red\"\n")
    seed("syntax-error", "batch { max_batch_tokens: }")
    seed("range", "max_sequence_length: 9000\n")
    seed("below-seq", "max_sequence_length: 512 batch { max_batch_tokens: 100 }\n")
    seed("bad-file", "model_file: \"../model.pt\"\n")
    seed("enum-number", "dtype: 2 device: 1\n")
    seed("negative", "batch { max_client_batch_size: -1 }\n")
    seed("empty-label", "labels: \"\"\n")
    seed("escapes", "labels: \"\\303\\251t\\x41\\n\" labels: \"\\u00e9\"\n")


def request_seeds():
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(["protoc", "--proto_path=" + os.path.join(ROOT, "proto"),
                        "--python_out=" + out, "bertserve/v1/inference.proto"], check=True)
        sys.path.insert(0, out)
        from bertserve.v1 import inference_pb2 as pb  # noqa: E402

        def classify(name, model="m", inputs=(("hello world !", ""),), **fields):
            request = pb.ClassifyRequest(model=model, **fields)
            for text, pair in inputs:
                request.inputs.add(text=text, text_pair=pair)
            write("classify_request_fuzzer", name, b"\x00" + request.SerializeToString())

        def tokenize(name, model="m", text="hello world", pair="", **fields):
            request = pb.TokenizeRequest(model=model, input=pb.TextInput(text=text, text_pair=pair),
                                         **fields)
            write("classify_request_fuzzer", name, b"\x01" + request.SerializeToString())

        classify("one")
        classify("batch", inputs=(("hello", ""), ("hello world", "world"), ("!", "hello , !"),
                                  ("world world world world world world world", "")),
                 top_k=2, request_id="r-1")
        classify("raw", inputs=(("hello , world", "world !"),), raw_scores=True, top_k=1)
        classify("no-truncate", inputs=(("hello " * 12, ""),), truncate=False)
        classify("truncate", inputs=(("hello " * 12, "world " * 5),), truncate=True)
        classify("cold", model="cold", inputs=(("world", ""),))
        classify("unknown-model", model="nope")
        classify("bad-name", model="../etc")
        classify("too-many", inputs=(("hello", ""),) * 5)
        classify("empty-text", inputs=(("", "pair"),))
        classify("top-k-range", top_k=-1)
        classify("specials", inputs=(("[CLS] hello [SEP] [MASK]", "[PAD]"),))
        tokenize("tokenize")
        tokenize("tokenize-pair", text="hello , world", pair="world !", truncate=False)
        tokenize("tokenize-cold", model="cold", text="hello " * 10)
        bad = pb.ClassifyRequest(model="m")
        bad.inputs.add(text="PATCHME")
        wire = bad.SerializeToString().replace(b"PATCHME", b"bad\xff\xfe\xfd")
        write("classify_request_fuzzer", "invalid-utf8", b"\x00" + wire)
        write("classify_request_fuzzer", "not-a-message", b"\x00\xff\xff\xff\xff")


def infer_seeds():
    """ModelInferRequest wire bytes (Open Inference Protocol) for infer_request_fuzzer."""
    import struct
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(["protoc", "--proto_path=" + os.path.join(ROOT, "proto"),
                        "--python_out=" + out, "inference/model_config.proto",
                        "inference/grpc_service.proto"], check=True)
        sys.path.insert(0, out)
        from inference import grpc_service_pb2 as pb  # noqa: E402

        def raw_bytes(elements):
            return b"".join(struct.pack("<I", len(e)) + e for e in elements)

        def seed(name, request):
            write("infer_request_fuzzer", name, request.SerializeToString())

        def texts(values, shape=None, raw=False, outputs=(), **parameters):
            request = pb.ModelInferRequest(model_name="m", id="r")
            tensor = request.inputs.add(name="TEXT", datatype="BYTES",
                                        shape=shape or [len(values)])
            if raw:
                request.raw_input_contents.append(raw_bytes(values))
            else:
                tensor.contents.bytes_contents.extend(values)
            for o in outputs:
                request.outputs.add(name=o)
            for key, value in parameters.items():
                if isinstance(value, bool):
                    request.parameters[key].bool_param = value
                else:
                    request.parameters[key].int64_param = value
            return request

        seed("text", texts([b"hello world"]))
        seed("text-batch", texts([b"hello", b"caf\xc3\xa9 !", b""], shape=[3, 1],
                                 outputs=("LOGITS", "PROBABILITIES", "LABEL"), top_k=2))
        seed("text-raw", texts([b"hello", b"world"], raw=True, raw_scores=True))
        truncated = texts([b"hello"], raw=True)
        truncated.raw_input_contents[0] = struct.pack("<I", 5) + b"he"  # past the end
        seed("text-raw-past-end", truncated)
        truncated.raw_input_contents[0] = b"\x05\x00"  # half a length prefix
        seed("text-raw-half-prefix", truncated)
        pair = texts([b"premise"], outputs=("LABEL",))
        pair.inputs.add(name="TEXT_PAIR", datatype="BYTES", shape=[1]).contents.bytes_contents.append(
            b"hypothesis")
        seed("text-pair", pair)
        tokens = pb.ModelInferRequest(model_name="m")
        for name, values in (("input_ids", [101, 7592, 102, 0, 101, 2088, 999, 102]),
                             ("attention_mask", [1, 1, 1, 0, 1, 1, 1, 1]),
                             ("token_type_ids", [0, 0, 0, 0, 0, 0, 1, 1])):
            tokens.inputs.add(name=name, datatype="INT64", shape=[2, 4]).contents.int64_contents.extend(
                values)
        seed("tokens-int64", tokens)
        raw_tokens = pb.ModelInferRequest(model_name="m")
        raw_tokens.inputs.add(name="input_ids", datatype="INT32", shape=[1, 3])
        raw_tokens.raw_input_contents.append(struct.pack("<3i", 101, 7592, 102))
        binary = raw_tokens.outputs.add(name="PROBABILITIES")
        binary.parameters["binary_data"].bool_param = True
        seed("tokens-int32-raw", raw_tokens)


def http_seeds():
    def seed(name, text):
        write("http_request_head_fuzzer", name, text.encode("latin-1"))

    seed("get-metrics", "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9400\r\nAccept: */*\r\n\r\n")
    seed("head-healthz", "HEAD /healthz HTTP/1.0\r\n\r\n")
    seed("bare-lf", "GET /readyz HTTP/1.1\nHost: x\n\n")
    seed("query", "GET /metrics?name[]=up HTTP/1.1\r\n\r\nbody")
    seed("bad-version", "GET / HTTP/2.0\r\n\r\n")
    seed("not-http", "GET / SPDY/3\r\n\r\n")
    seed("bad-line", "GET  /metrics HTTP/1.1\r\n\r\n")
    seed("no-slash", "GET metrics HTTP/1.1\r\n\r\n")
    seed("bad-method", "G(T / HTTP/1.1\r\n\r\n")
    seed("incomplete", "GET /metrics HTTP/1.1\r\nHost: x\r\n")
    seed("post-body", "POST /metrics HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd")
    seed("long-header", "GET / HTTP/1.1\r\nX-Pad: " + "p" * 2000 + "\r\n\r\n")


def main():
    real_vocab = sys.argv[1] if len(sys.argv) > 1 else None
    encode_seeds()
    vocab_seeds(real_vocab)
    tokenizer_json_seeds()
    config_seeds()
    request_seeds()
    infer_seeds()
    http_seeds()


if __name__ == "__main__":
    main()
