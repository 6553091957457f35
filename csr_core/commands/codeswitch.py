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

Training data at scale (csr_core/cs_shards/): webdataset tar shards (img2dataset layout) and caption tables,
streamed in constant memory, over several processes (--workers) or a Ray cluster (--ray):
  python -m csr_core codeswitch --langs de,fr --mode ml --shards 'cc3m/{00000..00331}.tar' --out-dir cc3m-mlcs \
      --workers 8
  python -m csr_core codeswitch --langs de --table train.tsv --caption-col title --out train.de.tsv --workers 4
  python -m csr_core codeswitch --langs de --table 'laion/{00000..00099}.parquet' --out-dir laion-de --ray
Output shards keep every member; `<key>.txt` is the switched caption, `<key>.orig.txt` the original and
`<key>.cs.json` the spans, languages, p, mode and seed; sizes.json gives open_clip_train the sample counts. Tables
keep their columns with the caption switched in place, plus `<caption>_orig` and `cs_json`. Each caption is seeded
by --seed and its sample key (tar `__key__`, a `key` column, else the row number; --key text: the caption), so the
output is the same for any number of workers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

NAME = "codeswitch"
HELP = ("code-switch captions (a file, stdin, webdataset shards or caption tables) with MUSE or your own lexicons "
        "(BL-CS, ML-CS, multiword)")


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
    parser.add_argument("--input", default=None, help="caption file, one per line (.gz ok); '-' = stdin (default)")
    parser.add_argument("--output", "--out", default=None,
                        help="output file; '-' = stdout (default). With --table: the output table (.csv, .tsv or "
                             ".parquet; a parquet input can be written as a TSV for open_clip_train)")
    parser.add_argument("--format", choices=("text", "jsonl", "tsv"), default=None,
                        help="text: switched captions; tsv: original<TAB>switched; jsonl: with spans and ratios")
    parser.add_argument("--key", choices=("text", "index", "sample"), default=None,
                        help="what seeds each caption's randomness besides --seed: lines: text (default) or index; "
                             "shards/tables: sample (default: tar key, key column or row number), text or, for "
                             "tables, index (row number)")
    scale = parser.add_argument_group("training data at scale (webdataset shards, caption tables)")
    scale.add_argument("--shards", action="append", default=[], metavar="PATTERN",
                       help="webdataset tar shards, brace patterns as webdataset ('in/{00000..00003}.tar'); repeatable")
    scale.add_argument("--table", action="append", default=[], metavar="PATTERN",
                       help="caption table(s): .csv/.tsv (open_clip CsvDataset) or .parquet (img2dataset)")
    scale.add_argument("--out-dir", default=None, help="output folder (shards, or several tables): same file names")
    scale.add_argument("--caption-ext", default="txt", help="shards: extension of the caption member (default txt)")
    scale.add_argument("--caption-col", default="caption", help="tables: caption column (default caption; "
                       "open_clip's --csv-caption-key default is title)")
    scale.add_argument("--key-col", default=None, help="tables: column whose value seeds each row (default: 'key' "
                       "when the table has it, else the row number)")
    scale.add_argument("--sep", default=None, help="tables: CSV separator (default: from the header line; 'tab' "
                       "or '\\t' for a tab)")
    scale.add_argument("--on-missing", choices=("error", "skip"), default="error",
                       help="a sample without caption (tables: an empty cell): stop with an error (default) or drop it")
    scale.add_argument("--batch-size", type=int, default=2048, help="tables: rows per batch (default 2048)")
    scale.add_argument("--workers", type=int, default=1, help="processes (shards: one shard each; tables: batches)")
    scale.add_argument("--ray", action="store_true", help="run one Ray Data task per shard/table (local Ray with "
                       "--workers CPUs, or the cluster at --ray-address)")
    scale.add_argument("--ray-address", default=None, help="Ray cluster address (default: start a local Ray)")
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
        limit = _io.input_limit()
        data = sys.stdin.buffer.read(limit + 1)
        if len(data) > limit:
            raise DataError(f"<stdin>: more than the {limit >> 20} MiB input limit (raise CSR_MAX_INPUT_MB)")
        name = "<stdin>"
    else:
        data = _io.read_input_bytes(source, "caption file")
        name = f"caption file {source}"
    text, _ = _io.decode_text(data, name)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def _check_output(output: str | None) -> None:
    """Refuse an output that cannot be written before any lexicon loads or caption is switched."""
    from csr_core.errors import CSRError

    if output in (None, "-"):
        return
    if not output:
        raise CSRError("--output is empty: give a file name, or '-' for stdout")
    target = Path(output).expanduser()
    if target.is_dir():
        raise CSRError(f"--output {output}: is a folder; give a file name inside it")
    if not target.parent.is_dir():
        raise CSRError(f"--output {output}: folder {target.parent} does not exist")


def _format_line(result, fmt: str) -> str:
    if fmt == "text":
        return result.text + "\n"
    if fmt == "tsv":
        return f"{result.original}\t{result.text}\n"
    return json.dumps(result.to_dict(), ensure_ascii=False) + "\n"


def _check_scale_args(args: argparse.Namespace) -> None:
    from csr_core.errors import CSRError

    scale = bool(args.shards or args.table)
    if args.shards and args.table:
        raise CSRError("give --shards or --table, not both")
    if not scale:
        given = [flag for flag, value in (("--out-dir", args.out_dir), ("--workers", args.workers != 1),
                                          ("--ray", args.ray), ("--key-col", args.key_col)) if value]
        if given:
            raise CSRError(f"{given[0]} applies to --shards or --table")
        if args.key == "sample":
            raise CSRError("--key sample applies to --shards or --table (lines: text or index)")
        return
    if args.input is not None:
        raise CSRError("--input reads caption lines; with --shards/--table the input is given there")
    if args.format is not None:
        raise CSRError("--format is for caption lines; shards and tables keep their own format")
    if args.shards:
        if args.output is not None:
            raise CSRError("--shards writes a folder: give --out-dir, not --out")
        if args.out_dir is None:
            raise CSRError("--shards needs --out-dir (one output shard per input shard, same names)")
        if args.key == "index":
            raise CSRError("--key index is for tables and lines; shards are keyed by sample key or text")


def _run_scale(args: argparse.Namespace, switcher) -> int:
    from csr_core.cs_shards import SwitchJob, switch_shards, switch_tables

    sep = {"tab": "\t", "\\t": "\t", "comma": ","}.get(args.sep, args.sep) if args.sep else None
    job = SwitchJob(switcher, key=args.key or "sample", caption_ext=args.caption_ext, caption_col=args.caption_col,
                    key_col=args.key_col, on_missing=args.on_missing, sep=sep, batch_size=args.batch_size)
    if args.shards:
        summary = switch_shards(args.shards, args.out_dir, job, workers=args.workers, use_ray=args.ray,
                                ray_address=args.ray_address)
        where = args.out_dir
    else:
        summary = switch_tables(args.table, job, output=args.output, out_dir=args.out_dir, workers=args.workers,
                                use_ray=args.ray, ray_address=args.ray_address)
        where = args.output or args.out_dir
    if not args.quiet:
        stats = summary.stats
        backend = "ray" if args.ray else f"{args.workers} worker(s)"
        print(f"{len(summary.files)} {summary.kind}, {stats.n_samples} captions switched ({stats.n_skipped} skipped) "
              f"-> {where} in {summary.seconds:.1f} s ({summary.captions_per_second:.0f} captions/s, {backend}); "
              f"mode {switcher.mode}, langs {','.join(switcher.langs)}, p={switcher.p:g}, seed {switcher.seed}: "
              f"switch ratio {stats.switch_ratio:.3f} (stopwords left out)", file=sys.stderr)
        for lang in switcher.langs:
            print(f"  {lang}: switch ratio {stats.lang_ratio(lang):.3f} ({stats.by_lang.get(lang, 0)} of "
                  f"{stats.n_content} content words)", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    from csr_core.codeswitch import CodeSwitcher, corpus_switch_ratio
    from csr_core.errors import CSRError

    _check_scale_args(args)
    if not (args.shards or args.table):
        _check_output(args.output)
    lexicons = _load_lexicons(args)
    if not lexicons:
        raise CSRError("no lexicon: give --langs (MUSE dictionaries) and/or --lexicon FILE")
    switcher = CodeSwitcher(lexicons, mode=args.mode, p=args.p, seed=args.seed, langs=args.langs,
                            translation_choice=args.translation_choice)
    if args.shards or args.table:
        return _run_scale(args, switcher)
    captions = _read_lines(args.input or "-")
    keys = range(len(captions)) if args.key == "index" else None
    results = switcher.switch_batch(captions, keys)
    args.output = args.output or "-"
    args.format = args.format or "text"
    text = "".join(_format_line(result, args.format) for result in results)
    if args.output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        from csr_core import _io

        _io.atomic_write_text(args.output, text)  # a crash or Ctrl-C leaves the old file, never half a new one
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
