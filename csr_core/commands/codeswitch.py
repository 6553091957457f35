"""Code-switch captions (one per line) with bilingual lexicons: BL-CS, ML-CS, multiword or dictionary translation.

Examples:
  python -m csr_core codeswitch --langs de --p 0.5 --input captions.txt
  zcat train.en.gz | python -m csr_core codeswitch --langs de,fr,cs --mode ml --p 0.5 --seed 0 > train.mlcs.txt
  python -m csr_core codeswitch --lexicon de=my-en-de.tsv --langs de --format jsonl --input caps.txt
  python -m csr_core codeswitch --lexicon wikititles-en-de.txt --mode multiword --p 1 --input caps.txt
  python -m csr_core codeswitch --langs de,fr,pt,zh,ar --mode ml --p 0.5 --input caps.txt   # distant scripts too

Without --lexicon the MUSE EN->X dictionaries are read from the data folder (muse/en-X.dict) or the cache;
--download fetches missing ones from the official MUSE URL. The same seed and captions give the same output.
Adjacent Chinese/Japanese replacements are joined without a space; Arabic is written as the lexicon spells it (no
bidi control characters). The summary on stderr gives each language's switch ratio and lexicon coverage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

NAME = "codeswitch"
HELP = "code-switch captions from a file or stdin with MUSE or your own lexicons (BL-CS, ML-CS, multiword)"


def _csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--lexicon", action="append", default=[], metavar="[LANG=]PATH",
                        help="lexicon file (repeatable); LANG= names its target language when the file name does not "
                             "(en-de.txt). Default: MUSE dictionaries for --langs")
    parser.add_argument("--langs", type=_csv, default=None, help="target languages, comma-separated (e.g. de,fr,cs)")
    parser.add_argument("--mode", default="bl", help="bl (one language), ml (per word a random language), multiword "
                        "(longest 1-3-word match), dictionary (p=1, first translation)")
    parser.add_argument("--p", type=float, default=None, help="switching probability (default 0.5; 1 for dictionary)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--translation-choice", choices=("random", "first"), default=None)
    parser.add_argument("--layout", default="auto", help="lexicon layout: auto, muse, reversed, tsv, multiword")
    parser.add_argument("--swap", action="store_true", help="lexicon files list the target column first (default: "
                        "follow the file name, de-en.txt = German first)")
    parser.add_argument("--drop-identity", action="store_true", help="drop pairs whose translation is the word itself")
    parser.add_argument("--src", default="en", help="source language of the captions (default en)")
    parser.add_argument("--input", default="-", help="caption file, one per line (.gz ok); '-' = stdin (default)")
    parser.add_argument("--output", default="-", help="output file; '-' = stdout (default)")
    parser.add_argument("--format", choices=("text", "jsonl", "tsv"), default="text",
                        help="text: switched captions; tsv: original<TAB>switched; jsonl: with spans and ratios")
    parser.add_argument("--key", choices=("text", "index"), default="text",
                        help="what seeds each caption's randomness besides --seed: its text (default) or line index")
    parser.add_argument("--data-dir", default=None, help="data folder holding muse/ (default: $CSR_DATA_DIR)")
    parser.add_argument("--download", action="store_true", help="download missing MUSE dictionaries")
    parser.add_argument("--quiet", action="store_true", help="no summary on stderr")


def _load_lexicons(args: argparse.Namespace) -> dict:
    from csr_core.lexicon import Lexicon, load_muse, normalize_lang

    lexicons = {}
    for spec in args.lexicon:
        lang, sep, path = spec.partition("=")
        if not sep or "/" in lang or "\\" in lang:
            lang, path = None, spec
        lexicon = Lexicon.from_file(path, args.src, normalize_lang(lang) if lang else None, layout=args.layout,
                                    drop_identity=args.drop_identity, swap=True if args.swap else None)
        lexicons[lexicon.tgt] = lexicon
    for lang in args.langs or []:
        code = normalize_lang(lang)
        if code not in lexicons and not args.lexicon:
            lexicons[code] = load_muse(code, args.data_dir, drop_identity=args.drop_identity, download=args.download)
    return lexicons


def _read_lines(source: str) -> list[str]:
    from csr_core import _io
    from csr_core.errors import DataError

    if source == "-":
        data = sys.stdin.buffer.read()
        name = "<stdin>"
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as error:
            raise DataError(f"cannot read captions from {source}: {error.strerror or error}") from error
        name = source
    text, _ = _io.decode_text(data, name)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def run(args: argparse.Namespace) -> int:
    from csr_core.codeswitch import CodeSwitcher, corpus_switch_ratio
    from csr_core.errors import CSRError

    lexicons = _load_lexicons(args)
    if not lexicons:
        raise CSRError("no lexicon: give --langs (MUSE dictionaries) and/or --lexicon FILE")
    switcher = CodeSwitcher(lexicons, mode=args.mode, p=args.p, seed=args.seed, langs=args.langs,
                            translation_choice=args.translation_choice)
    captions = _read_lines(args.input)
    keys = range(len(captions)) if args.key == "index" else None
    results = switcher.switch_batch(captions, keys)
    out = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8", newline="\n")
    try:
        for result in results:
            if args.format == "text":
                out.write(result.text + "\n")
            elif args.format == "tsv":
                out.write(f"{result.original}\t{result.text}\n")
            else:
                out.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
        else:
            out.flush()
    if not args.quiet:
        for lexicon in switcher.lexicons.values():
            if lexicon.report is not None:
                print(lexicon.report.summary(), file=sys.stderr)
        print(f"{len(results)} captions, mode {switcher.mode}, langs {','.join(switcher.langs)}, p={switcher.p:g}, "
              f"seed {switcher.seed}: switch ratio {corpus_switch_ratio(results):.3f} (stopwords left out)",
              file=sys.stderr)
        for stats in switcher.language_stats(results):
            print(f"  {stats.lang}: switch ratio {stats.switch_ratio:.3f}, lexicon coverage {stats.coverage:.3f} "
                  f"({stats.n_covered} of {stats.n_content} content words)", file=sys.stderr)
    return 0
